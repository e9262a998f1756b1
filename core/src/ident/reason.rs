//! The free-text reason of a query (申请事由).

use serde::{Deserialize, Serialize};

use super::{IdentError, IdentKind, string_ident};

/// The reason a requester gives for a query (申请事由), shown to auditors and to the data
/// subject: surrounding whitespace is trimmed, then 1 to 200 characters (Unicode
/// characters, not bytes) with no control characters (no line breaks or tabs inside).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

string_ident!(Reason);

impl Reason {
    /// The most characters a reason may have, after trimming.
    pub const MAX_CHARS: usize = 200;

    /// Parses a reason. Character positions in errors count from the start of `s` as
    /// given, before trimming.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::Reason;
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(IdentError::Empty { ident });
        }
        let count = trimmed.chars().count();
        if count > Self::MAX_CHARS {
            return Err(IdentError::TooLong { ident, max: Self::MAX_CHARS, actual: count });
        }
        let leading = s.len() - s.trim_start().len();
        let offset = s[..leading].chars().count();
        if let Some((i, c)) = trimmed.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(IdentError::bad_char(
                ident,
                offset + i + 1,
                c,
                "control characters (line breaks, tabs, ...) are not allowed",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The trimmed text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = Reason::parse(input).map(|r| r.to_string()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn parse_table() {
        check("办理房屋租赁登记备案", Ok("办理房屋租赁登记备案"));
        check("  rental registration  ", Ok("rental registration"));
        check(&"事".repeat(200), Ok(&"事".repeat(200)));
        check("", Err("a reason (申请事由) is required: say why the data is needed"));
        check(" \t\n", Err("a reason (申请事由) is required: say why the data is needed"));
        check(&"事".repeat(201), Err("the reason (申请事由) is 201 characters long, the limit is 200"));
        check(
            "  办理\n备案",
            Err(
                "character 5 of the reason (申请事由) is '\\n', control characters (line breaks, tabs, ...) are not allowed",
            ),
        );
        check(
            "a\u{7}b",
            Err(
                "character 2 of the reason (申请事由) is '\\u{7}', control characters (line breaks, tabs, ...) are not allowed",
            ),
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,210}|[\\s\\x00-\\x1f]{0,5}.{0,5}") {
            if let Ok(r) = Reason::parse(&s) {
                prop_assert_eq!(Reason::parse(r.as_str()), Ok(r.clone()));
                prop_assert!(r.as_str().chars().count() <= Reason::MAX_CHARS);
            }
        }
    }
}
