//! Field specifications: names, types and classifications.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ident::{IdentError, IdentKind};

/// How sensitive a field is, from least to most; the order is meaningful
/// (`Public < Internal < Personal < Sensitive`), and a new schema version may raise a
/// field's classification but never lower it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// May be published (a company's name, a licence's validity).
    Public,
    /// For government use, not about a person (internal status codes).
    Internal,
    /// Personal information: a query needs the subject's consent.
    Personal,
    /// Sensitive personal information (health, religion, biometrics, finances): consent and
    /// the strictest handling.
    Sensitive,
}

impl Classification {
    /// Whether the field is personal information, which needs the subject's consent:
    /// true for [`Personal`](Self::Personal) and [`Sensitive`](Self::Sensitive).
    pub fn is_personal(self) -> bool {
        matches!(self, Self::Personal | Self::Sensitive)
    }

    /// The lowercase name, as in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Personal => "personal",
            Self::Sensitive => "sensitive",
        }
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Classification`] from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a classification: expected public, internal, personal or sensitive")]
pub struct ClassificationError(pub String);

impl std::str::FromStr for Classification {
    type Err = ClassificationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public" => Ok(Self::Public),
            "internal" => Ok(Self::Internal),
            "personal" => Ok(Self::Personal),
            "sensitive" => Ok(Self::Sensitive),
            other => Err(ClassificationError(other.to_owned())),
        }
    }
}

/// The type of a field's value. Values travel as text; this says which texts are valid
/// and what their canonical form is (see [`Schema::validate`](super::Schema::validate)).
///
/// Serde form, internally tagged: `{"type": "string", "max_len": 50}`, `{"type": "date"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", from = "FieldTypeDe")]
pub enum FieldType {
    /// Any text of at most `max_len` Unicode characters (1 to 65536).
    String {
        /// The most characters allowed.
        max_len: u32,
    },
    /// A whole number in 64 bits: an optional sign and decimal digits.
    Integer {
        /// The smallest value allowed, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        /// The largest value allowed, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    /// A decimal number with at most `scale` digits after the point (`12.5`, `-0.25`).
    Decimal {
        /// The most digits allowed after the decimal point (after trailing zeros are dropped).
        scale: u8,
    },
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// `true` or `false`.
    Boolean,
    /// One of a fixed list of values.
    Enum {
        /// The values allowed, non-empty and distinct.
        values: Vec<String>,
    },
    /// A resident ID (GB 11643).
    ResidentId,
    /// A unified social credit code (GB 32100).
    CreditCode,
}

/// What a [`FieldType`] deserializes through: the same form, but variants without
/// parameters are empty structs so that `deny_unknown_fields` refuses stray keys there too
/// (serde ignores extra keys next to the tag of a unit variant).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FieldTypeDe {
    String {
        max_len: u32,
    },
    Integer {
        #[serde(default)]
        min: Option<i64>,
        #[serde(default)]
        max: Option<i64>,
    },
    Decimal {
        scale: u8,
    },
    Date {},
    Boolean {},
    Enum {
        values: Vec<String>,
    },
    ResidentId {},
    CreditCode {},
}

impl From<FieldTypeDe> for FieldType {
    fn from(de: FieldTypeDe) -> Self {
        match de {
            FieldTypeDe::String { max_len } => Self::String { max_len },
            FieldTypeDe::Integer { min, max } => Self::Integer { min, max },
            FieldTypeDe::Decimal { scale } => Self::Decimal { scale },
            FieldTypeDe::Date {} => Self::Date,
            FieldTypeDe::Boolean {} => Self::Boolean,
            FieldTypeDe::Enum { values } => Self::Enum { values },
            FieldTypeDe::ResidentId {} => Self::ResidentId,
            FieldTypeDe::CreditCode {} => Self::CreditCode,
        }
    }
}

impl FieldType {
    /// The type's name as in schema files: `string`, `integer`, `resident_id`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::String { .. } => "string",
            Self::Integer { .. } => "integer",
            Self::Decimal { .. } => "decimal",
            Self::Date => "date",
            Self::Boolean => "boolean",
            Self::Enum { .. } => "enum",
            Self::ResidentId => "resident_id",
            Self::CreditCode => "credit_code",
        }
    }

    /// Whether values of this type identify a data subject (resident ID or credit code).
    pub fn is_subject_id(&self) -> bool {
        matches!(self, Self::ResidentId | Self::CreditCode)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String { max_len } => write!(f, "string of at most {max_len} characters"),
            Self::Integer { min, max } => {
                f.write_str("integer")?;
                match (min, max) {
                    (Some(min), Some(max)) => write!(f, " from {min} to {max}"),
                    (Some(min), None) => write!(f, " from {min}"),
                    (None, Some(max)) => write!(f, " up to {max}"),
                    (None, None) => Ok(()),
                }
            }
            Self::Decimal { scale } => write!(f, "decimal with at most {scale} decimal places"),
            Self::Enum { values } => write!(f, "one of {}", quoted_list(values)),
            Self::Date | Self::Boolean | Self::ResidentId | Self::CreditCode => f.write_str(self.type_name()),
        }
    }
}

/// `"a", "b", "c"`.
pub(crate) fn quoted_list(values: &[String]) -> String {
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
}

/// One field of a standard schema.
///
/// Serde form: `{"name": "reg_capital", "type": {"type": "decimal", "scale": 2},
/// "required": false, "classification": "public", "label_zh": "注册资本",
/// "label_en": "Registered capital"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The field name: a lowercase letter, then lowercase letters, digits and `_`, at most
    /// 64 characters.
    pub name: String,
    /// The type of the field's values.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Whether every record must have a (non-empty) value.
    pub required: bool,
    /// How sensitive the field is.
    pub classification: Classification,
    /// The label shown to people, in Chinese.
    pub label_zh: String,
    /// The label shown to people, in English.
    pub label_en: String,
}

/// The most characters a field name may have.
pub const MAX_FIELD_NAME_LEN: usize = 64;

/// Checks a field name: a lowercase letter, then lowercase letters, digits and `_`, at most
/// [`MAX_FIELD_NAME_LEN`] characters.
pub fn check_field_name(name: &str) -> Result<(), IdentError> {
    let ident = IdentKind::FieldName;
    if name.is_empty() {
        return Err(IdentError::Empty { ident });
    }
    let count = name.chars().count();
    if count > MAX_FIELD_NAME_LEN {
        return Err(IdentError::TooLong { ident, max: MAX_FIELD_NAME_LEN, actual: count });
    }
    for (i, c) in name.chars().enumerate() {
        let rule = match c {
            'a'..='z' => continue,
            'A'..='Z' => "capital letters are not allowed, use lowercase",
            _ if i == 0 => "expected a lowercase letter (a field name starts with one)",
            '0'..='9' | '_' => continue,
            _ => "expected a lowercase letter, a digit or '_'",
        };
        return Err(IdentError::bad_char(ident, i + 1, c, rule));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_order_and_text() {
        use Classification::*;
        assert!(Public < Internal && Internal < Personal && Personal < Sensitive);
        for (c, personal, text) in [
            (Public, false, "public"),
            (Internal, false, "internal"),
            (Personal, true, "personal"),
            (Sensitive, true, "sensitive"),
        ] {
            assert_eq!(c.is_personal(), personal);
            assert_eq!(c.to_string(), text);
            assert_eq!(text.parse(), Ok(c));
            assert_eq!(serde_json::to_string(&c).expect("serialize"), format!("\"{text}\""));
        }
        assert!("secret".parse::<Classification>().is_err());
    }

    #[test]
    fn field_type_serde() {
        for (json, expected) in [
            (r#"{"type":"string","max_len":50}"#, FieldType::String { max_len: 50 }),
            (r#"{"type":"integer"}"#, FieldType::Integer { min: None, max: None }),
            (r#"{"type":"integer","min":0,"max":150}"#, FieldType::Integer { min: Some(0), max: Some(150) }),
            (r#"{"type":"decimal","scale":2}"#, FieldType::Decimal { scale: 2 }),
            (r#"{"type":"date"}"#, FieldType::Date),
            (r#"{"type":"boolean"}"#, FieldType::Boolean),
            (r#"{"type":"enum","values":["a","b"]}"#, FieldType::Enum { values: vec!["a".into(), "b".into()] }),
            (r#"{"type":"resident_id"}"#, FieldType::ResidentId),
            (r#"{"type":"credit_code"}"#, FieldType::CreditCode),
        ] {
            let parsed: FieldType = serde_json::from_str(json).expect(json);
            assert_eq!(parsed, expected);
            assert_eq!(serde_json::to_string(&parsed).expect("serialize"), json);
        }
        for bad in [
            r#"{"type":"string","max_len":50,"min":1}"#,
            r#"{"type":"string"}"#,
            r#"{"type":"text"}"#,
            r#"{"type":"date","scale":2}"#,
        ] {
            assert!(serde_json::from_str::<FieldType>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_name_table() {
        for (name, expected) in [
            ("reg_capital", Ok(())),
            ("a", Ok(())),
            ("id2", Ok(())),
            ("", Err("the field name is empty")),
            ("Name", Err("character 1 of the field name is 'N', capital letters are not allowed, use lowercase")),
            (
                "_name",
                Err("character 1 of the field name is '_', expected a lowercase letter (a field name starts with one)"),
            ),
            ("reg-capital", Err("character 4 of the field name is '-', expected a lowercase letter, a digit or '_'")),
            (&"a".repeat(65), Err("the field name is 65 characters long, the limit is 64")),
        ] {
            assert_eq!(check_field_name(name).map_err(|e| e.to_string()), expected.map_err(str::to_owned), "{name:?}");
        }
    }
}
