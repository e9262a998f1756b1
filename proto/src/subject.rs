//! The one conversion between the contract's [`Subject`] and the domain's [`SubjectId`]:
//! a service parses the subject of a request here, and builds the subject of an answer here.

use std::fmt;

use exchange_core::ident::{IdentError, SubjectId, SubjectKind};

use crate::v1::{self, Subject};

/// Why a request's subject is not a subject id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectError {
    /// No subject was given.
    Missing,
    /// The kind is neither PERSON nor ORGANISATION.
    Kind,
    /// The id is not a valid id of its kind.
    Id(IdentError),
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is required"),
            Self::Kind => f.write_str("must be PERSON or ORGANISATION"),
            Self::Id(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SubjectError {}

/// The domain kind of a proto kind number, `None` for UNSPECIFIED or an unknown number.
pub fn kind_of(kind: i32) -> Option<SubjectKind> {
    match v1::SubjectKind::try_from(kind) {
        Ok(v1::SubjectKind::Person) => Some(SubjectKind::Person),
        Ok(v1::SubjectKind::Organisation) => Some(SubjectKind::Organisation),
        _ => None,
    }
}

/// The proto kind number of a domain kind.
pub fn kind_number(kind: SubjectKind) -> i32 {
    match kind {
        SubjectKind::Person => v1::SubjectKind::Person as i32,
        SubjectKind::Organisation => v1::SubjectKind::Organisation as i32,
    }
}

/// Parses the subject of a request (its id checked, check character included).
pub fn parse(subject: Option<&Subject>) -> Result<SubjectId, SubjectError> {
    let s = subject.ok_or(SubjectError::Missing)?;
    let kind = kind_of(s.kind).ok_or(SubjectError::Kind)?;
    SubjectId::parse(kind, &s.id).map_err(SubjectError::Id)
}

/// The proto form of a subject id, in canonical form.
pub fn to_proto(s: &SubjectId) -> Subject {
    Subject { kind: kind_number(s.kind()), id: s.as_str().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_convert_both_ways() {
        let person = Subject { kind: 1, id: "11010519491231002x".into() };
        let id = parse(Some(&person)).expect("a valid resident id");
        assert_eq!(to_proto(&id), Subject { kind: 1, id: "11010519491231002X".into() }, "canonical form");
        assert_eq!(parse(None), Err(SubjectError::Missing));
        assert_eq!(parse(Some(&Subject { kind: 0, ..person.clone() })), Err(SubjectError::Kind));
        assert!(matches!(parse(Some(&Subject { kind: 2, ..person })), Err(SubjectError::Id(_))));
        assert_eq!(kind_of(kind_number(SubjectKind::Organisation)), Some(SubjectKind::Organisation));
    }
}
