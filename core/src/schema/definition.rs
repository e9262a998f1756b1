//! The standard schema itself: its well-formedness and record validation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::field::{FieldSpec, FieldType, check_field_name};
use super::record::{FieldProblem, RawRecord, Record, RecordError, canonical_value};
use super::reference::SchemaRef;
use crate::ident::{CreditCode, IdentError, ResidentId, SubjectId};

/// The most characters a string field's `max_len` may allow.
pub const MAX_STRING_LEN: u32 = 65_536;

/// A standard schema: the fields of one version of a kind of e-licence or base record.
///
/// Deserializing does not check well-formedness: call [`Schema::check`], or load with
/// [`Schema::from_json`], which does both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Name and version, e.g. `std.licence.business@1`.
    pub reference: SchemaRef,
    /// The title shown to people, in Chinese.
    pub title_zh: String,
    /// The title shown to people, in English.
    pub title_en: String,
    /// The field that identifies a record: the subject's resident ID or credit code for a
    /// base record, the licence number for a licence. Must be a required field.
    pub key_field: String,
    /// For licences, the field holding the holder's resident ID or credit code. Must be a
    /// required field of type `resident_id` or `credit_code`.
    #[serde(default)]
    pub holder_field: Option<String>,
    /// The fields, in display order.
    pub fields: Vec<FieldSpec>,
}

/// Why a schema is not well-formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The text is not a schema document.
    #[error("the schema is not valid JSON or has the wrong shape: {0}")]
    Json(String),
    /// A field name breaks the naming rule.
    #[error("field name {name:?} is not valid: {source}")]
    BadFieldName {
        /// The name.
        name: String,
        /// The rule it breaks.
        source: IdentError,
    },
    /// Two fields have the same name.
    #[error("field {name:?} is defined twice")]
    DuplicateField {
        /// The name.
        name: String,
    },
    /// The key field is not one of the fields.
    #[error("the key field {name:?} is not one of the schema's fields")]
    NoSuchKeyField {
        /// The key field's name.
        name: String,
    },
    /// The key field is optional.
    #[error("the key field {name:?} must be required: every record needs its key")]
    OptionalKeyField {
        /// The key field's name.
        name: String,
    },
    /// The holder field is not one of the fields.
    #[error("the holder field {name:?} is not one of the schema's fields")]
    NoSuchHolderField {
        /// The holder field's name.
        name: String,
    },
    /// The holder field is optional.
    #[error("the holder field {name:?} must be required: every licence has a holder")]
    OptionalHolderField {
        /// The holder field's name.
        name: String,
    },
    /// The holder field does not hold a subject identifier.
    #[error("the holder field {name:?} is of type {type_name}, it must be resident_id or credit_code")]
    HolderNotSubject {
        /// The holder field's name.
        name: String,
        /// Its type.
        type_name: &'static str,
    },
    /// A string field's `max_len` is out of bounds.
    #[error("field {field:?}: max_len {max_len} must be from 1 to {MAX_STRING_LEN}")]
    BadMaxLen {
        /// The field.
        field: String,
        /// The `max_len` given.
        max_len: u32,
    },
    /// An integer field's range is empty.
    #[error("field {field:?}: min {min} is greater than max {max}")]
    EmptyRange {
        /// The field.
        field: String,
        /// The minimum given.
        min: i64,
        /// The maximum given.
        max: i64,
    },
    /// An enum field has no values.
    #[error("field {field:?}: an enum needs at least one value")]
    EmptyEnum {
        /// The field.
        field: String,
    },
    /// An enum field has an empty value (which would read as absent).
    #[error("field {field:?}: an enum value cannot be empty")]
    EmptyEnumValue {
        /// The field.
        field: String,
    },
    /// An enum field lists a value twice.
    #[error("field {field:?}: enum value {value:?} is listed twice")]
    DuplicateEnumValue {
        /// The field.
        field: String,
        /// The value.
        value: String,
    },
}

impl Schema {
    /// Parses a schema document (JSON) and checks that it is well-formed.
    pub fn from_json(json: &str) -> Result<Self, SchemaError> {
        let schema: Self = serde_json::from_str(json).map_err(|e| SchemaError::Json(e.to_string()))?;
        schema.check()?;
        Ok(schema)
    }

    /// Checks that the schema is well-formed: valid and distinct field names, key and
    /// holder fields that exist and are required (the holder a resident ID or credit
    /// code), non-empty enums of distinct non-empty values, string `max_len` from 1 to
    /// 65536, integer `min <= max`. Reports the first problem found.
    pub fn check(&self) -> Result<(), SchemaError> {
        let mut names = BTreeSet::new();
        for field in &self.fields {
            check_field_name(&field.name)
                .map_err(|source| SchemaError::BadFieldName { name: field.name.clone(), source })?;
            if !names.insert(field.name.as_str()) {
                return Err(SchemaError::DuplicateField { name: field.name.clone() });
            }
            check_field_type(&field.name, &field.field_type)?;
        }
        let key = &self.key_field;
        match self.field(key) {
            None => return Err(SchemaError::NoSuchKeyField { name: key.clone() }),
            Some(spec) if !spec.required => {
                return Err(SchemaError::OptionalKeyField { name: key.clone() });
            }
            Some(_) => {}
        }
        if let Some(holder) = &self.holder_field {
            match self.field(holder) {
                None => return Err(SchemaError::NoSuchHolderField { name: holder.clone() }),
                Some(spec) if !spec.required => {
                    return Err(SchemaError::OptionalHolderField { name: holder.clone() });
                }
                Some(spec) if !spec.field_type.is_subject_id() => {
                    return Err(SchemaError::HolderNotSubject {
                        name: holder.clone(),
                        type_name: spec.field_type.type_name(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields classified personal or sensitive, in schema order.
    pub fn personal_fields(&self) -> impl Iterator<Item = &FieldSpec> {
        self.fields.iter().filter(|f| f.classification.is_personal())
    }

    /// Whether any field is personal or sensitive, so that queries need consent.
    pub fn has_personal_data(&self) -> bool {
        self.personal_fields().next().is_some()
    }

    /// Validates a record as received against the schema, giving the canonical text of
    /// each field present. Reports the first problem: a field not in the schema (even
    /// empty), then, in schema order, a required field absent or empty, or a value that
    /// breaks its type.
    ///
    /// Values are not trimmed. Canonical forms: resident IDs with an uppercase `X`, credit
    /// codes uppercase, integers in plain decimal (`+007` → `7`, `-0` → `0`), decimals
    /// without `+`, leading zeros or trailing fraction zeros (`+012.50` → `12.5`,
    /// `-0.00` → `0`); strings, dates, booleans and enum values as given.
    pub fn validate(&self, raw: &RawRecord) -> Result<Record, RecordError> {
        if let Some(unknown) = raw.keys().find(|name| self.field(name).is_none()) {
            return Err(RecordError { field: unknown.clone(), problem: FieldProblem::Unknown });
        }
        let mut out = BTreeMap::new();
        for spec in &self.fields {
            match raw.get(&spec.name).map(String::as_str) {
                None | Some("") => {
                    if spec.required {
                        return Err(RecordError { field: spec.name.clone(), problem: FieldProblem::Missing });
                    }
                }
                Some(value) => {
                    let canonical = canonical_value(&spec.field_type, value)
                        .map_err(|problem| RecordError { field: spec.name.clone(), problem })?;
                    out.insert(spec.name.clone(), canonical);
                }
            }
        }
        Ok(Record::from_validated(out))
    }

    /// The canonical text of a claimed value of field `name` (as [`Schema::validate`] would
    /// store it), or `None` when the field is not in the schema or the value is empty or
    /// breaks the field's type.
    pub fn canonical_claim(&self, name: &str, value: &str) -> Option<String> {
        let spec = self.field(name)?;
        if value.is_empty() {
            return None;
        }
        canonical_value(&spec.field_type, value).ok()
    }

    /// Compares a claimed value of field `name` with the held canonical value (`held`,
    /// `None` when the record holds none) in canonical form, revealing nothing of the held
    /// value: a claim that does not canonicalise never matches.
    pub fn match_claim(&self, name: &str, value: &str, held: Option<&str>) -> ClaimMatch {
        match held {
            None => ClaimMatch::Absent,
            Some(held) if self.canonical_claim(name, value).as_deref() == Some(held) => ClaimMatch::Match,
            Some(_) => ClaimMatch::NoMatch,
        }
    }

    /// The data subject a validated record is about: the holder of a licence (the holder
    /// field), or for a base record the subject its key identifies (when the key field is a
    /// resident ID or credit code). `None` when neither applies or the value is absent.
    pub fn subject(&self, record: &Record) -> Option<SubjectId> {
        let name = self.holder_field.as_deref().unwrap_or(&self.key_field);
        let value = record.get(name)?;
        match self.field(name)?.field_type {
            FieldType::ResidentId => ResidentId::parse(value).ok().map(SubjectId::Person),
            FieldType::CreditCode => CreditCode::parse(value).ok().map(SubjectId::Organisation),
            _ => None,
        }
    }
}

/// The result of comparing one claimed value with a held record (核验).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimMatch {
    /// The claimed value equals the held one in canonical form.
    Match,
    /// It does not (or it is not a valid value of the field).
    NoMatch,
    /// The record holds no value for the field.
    Absent,
}

fn check_field_type(field: &str, field_type: &FieldType) -> Result<(), SchemaError> {
    match field_type {
        FieldType::String { max_len } => {
            if !(1..=MAX_STRING_LEN).contains(max_len) {
                return Err(SchemaError::BadMaxLen { field: field.to_owned(), max_len: *max_len });
            }
        }
        FieldType::Integer { min: Some(min), max: Some(max) } if min > max => {
            return Err(SchemaError::EmptyRange { field: field.to_owned(), min: *min, max: *max });
        }
        FieldType::Enum { values } => {
            if values.is_empty() {
                return Err(SchemaError::EmptyEnum { field: field.to_owned() });
            }
            let mut seen = BTreeSet::new();
            for value in values {
                if value.is_empty() {
                    return Err(SchemaError::EmptyEnumValue { field: field.to_owned() });
                }
                if !seen.insert(value) {
                    return Err(SchemaError::DuplicateEnumValue { field: field.to_owned(), value: value.clone() });
                }
            }
        }
        FieldType::Integer { .. }
        | FieldType::Decimal { .. }
        | FieldType::Date
        | FieldType::Boolean
        | FieldType::ResidentId
        | FieldType::CreditCode => {}
    }
    Ok(())
}
