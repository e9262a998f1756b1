//! Screening of the free text that reaches the central access log: a valid resident id or
//! unified social credit code in a trace id, a reason or a note would put a subject id in
//! the log in clear, where subject ids appear only as a keyed digest. Such text is refused
//! before anything is logged, with a message naming the field and the kind of identifier,
//! never the identifier itself.

use exchange_core::ident::find_identifier;

use crate::error::{CatalogError, Result};

/// Refuses `text` of `field` when it holds a valid resident id or credit code.
pub fn no_identifier(field: &str, text: &str) -> Result<()> {
    match find_identifier(text) {
        Some((found, at)) => Err(CatalogError::identifier_in_clear(field, found, at)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use exchange_proto::v1::ReasonCode;

    use super::*;

    fn check(text: &str, refused: Option<&str>) {
        match (no_identifier("reason", text), refused) {
            (Ok(()), None) => {}
            (Err(CatalogError::InvalidArgument { field, message, reason }), Some(kind)) => {
                assert_eq!(field, "reason");
                assert_eq!(reason, ReasonCode::IdentifierInClear);
                assert!(message.contains(kind), "{message}");
                for id in ["11010519491231002X", "91350100M000100Y43"] {
                    assert!(!message.contains(id), "the message repeats the identifier: {message}");
                }
            }
            (other, expected) => panic!("{text:?}: got {other:?}, expected refusal {expected:?}"),
        }
    }

    #[test]
    fn identifiers_in_free_text_are_refused_without_being_repeated() {
        check("租赁备案 ZL-2026-000123", None);
        check("0123456789abcdef0123456789abcdef", None);
        check("", None);
        check("11010519491231002X", Some("resident ID"));
        check("核验 11010519491231002X 的身份", Some("resident ID"));
        check("91350100M000100Y43", Some("credit code"));
    }
}
