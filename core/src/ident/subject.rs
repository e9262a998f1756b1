//! Data subjects: the person or organisation a record or licence is about.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CreditCode, IdentError, ResidentId};

/// The kind of a data subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// A citizen, identified by a [`ResidentId`].
    Person,
    /// A legal person or other organisation, identified by a [`CreditCode`].
    Organisation,
}

impl SubjectKind {
    /// The lowercase name: `person` or `organisation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Organisation => "organisation",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`SubjectKind`] from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a subject kind: expected \"person\" or \"organisation\"")]
pub struct SubjectKindError(pub String);

impl std::str::FromStr for SubjectKind {
    type Err = SubjectKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "person" => Ok(Self::Person),
            "organisation" => Ok(Self::Organisation),
            other => Err(SubjectKindError(other.to_owned())),
        }
    }
}

/// A data subject: a person by resident ID or an organisation by credit code.
///
/// Serde form: `{"kind": "person", "id": "11010519491231002X"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum SubjectId {
    /// A citizen.
    Person(ResidentId),
    /// A legal person or other organisation.
    Organisation(CreditCode),
}

impl SubjectId {
    /// Parses `s` as the identifier of a subject of `kind`.
    pub fn parse(kind: SubjectKind, s: &str) -> Result<Self, IdentError> {
        match kind {
            SubjectKind::Person => ResidentId::parse(s).map(Self::Person),
            SubjectKind::Organisation => CreditCode::parse(s).map(Self::Organisation),
        }
    }

    /// Whether this is a person or an organisation.
    pub fn kind(&self) -> SubjectKind {
        match self {
            Self::Person(_) => SubjectKind::Person,
            Self::Organisation(_) => SubjectKind::Organisation,
        }
    }

    /// The canonical identifier text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Person(id) => id.as_str(),
            Self::Organisation(code) => code.as_str(),
        }
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ResidentId> for SubjectId {
    fn from(id: ResidentId) -> Self {
        Self::Person(id)
    }
}

impl From<CreditCode> for SubjectId {
    fn from(code: CreditCode) -> Self {
        Self::Organisation(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_by_kind() {
        for (kind, input, expected) in [
            (SubjectKind::Person, "11010519491231002x", Ok("11010519491231002X")),
            (SubjectKind::Organisation, "91350100m000100y43", Ok("91350100M000100Y43")),
            (
                SubjectKind::Person,
                "91350100M000100Y43",
                Err("character 9 of the resident ID is 'M', expected a digit (only the last character may be 'X')"),
            ),
            (
                SubjectKind::Organisation,
                "11010519491231002X",
                Err(
                    "characters 3-4 of the credit code are '01': 01 is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)",
                ),
            ),
        ] {
            let got = SubjectId::parse(kind, input);
            if let Ok(id) = &got {
                assert_eq!(id.kind(), kind);
            }
            assert_eq!(
                got.map(|id| id.to_string()).map_err(|e| e.to_string()),
                expected.map(str::to_owned).map_err(str::to_owned),
                "{kind} {input}"
            );
        }
    }

    #[test]
    fn kind_text_and_serde() {
        assert_eq!("person".parse(), Ok(SubjectKind::Person));
        assert_eq!("organisation".parse(), Ok(SubjectKind::Organisation));
        assert_eq!(
            "company".parse::<SubjectKind>().map_err(|e| e.to_string()),
            Err("\"company\" is not a subject kind: expected \"person\" or \"organisation\"".to_owned())
        );
        let id = SubjectId::parse(SubjectKind::Person, "11010519491231002X").expect("valid");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, r#"{"kind":"person","id":"11010519491231002X"}"#);
        assert_eq!(serde_json::from_str::<SubjectId>(&json).expect("valid"), id);
        assert!(serde_json::from_str::<SubjectId>(r#"{"kind":"person","id":"110105194912310021"}"#).is_err());
    }
}
