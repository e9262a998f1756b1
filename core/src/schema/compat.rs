//! Compatibility between successive versions of a schema.
//!
//! The rule: every record valid under version N stays valid under version N+1, with the same
//! key, and no field becomes less protected. So a new version may add optional fields,
//! make a field optional, widen a string's `max_len`, an integer's range or a decimal's
//! scale, add enum values and raise a classification; anything else is a new schema.

use std::collections::BTreeSet;
use std::fmt;

use super::definition::{Schema, SchemaError};
use super::field::{Classification, FieldSpec, FieldType, quoted_list};

/// One way in which a proposed next version breaks compatibility with the previous one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Incompatibility {
    /// The next version is not itself a well-formed schema.
    #[error("the new version is not a valid schema: {0}")]
    Invalid(SchemaError),
    /// The schema name differs.
    #[error("the schema name changed from {from:?} to {to:?}: a new name is a new schema, not a new version")]
    NameChanged {
        /// The previous name.
        from: String,
        /// The proposed name.
        to: String,
    },
    /// The version is not the previous one plus one.
    #[error("version {next} does not follow version {previous}: the next version must be {}", u64::from(*previous) + 1)]
    VersionNotNext {
        /// The previous version.
        previous: u32,
        /// The proposed version.
        next: u32,
    },
    /// The key field differs.
    #[error("the key field changed from {from:?} to {to:?}: records would no longer be found by their key")]
    KeyFieldChanged {
        /// The previous key field.
        from: String,
        /// The proposed key field.
        to: String,
    },
    /// The holder field differs.
    #[error(
        "the holder field changed from {} to {}: licences would no longer be found by holder",
        or_none(from),
        or_none(to)
    )]
    HolderFieldChanged {
        /// The previous holder field.
        from: Option<String>,
        /// The proposed holder field.
        to: Option<String>,
    },
    /// A field was removed.
    #[error("field {field:?} was removed: fields cannot be removed, only added")]
    FieldRemoved {
        /// The field.
        field: String,
    },
    /// A new field is required.
    #[error("field {field:?} is new and required: add it as optional")]
    RequiredFieldAdded {
        /// The field.
        field: String,
    },
    /// An optional field became required.
    #[error("field {field:?} became required: records without it would no longer be valid")]
    MadeRequired {
        /// The field.
        field: String,
    },
    /// A field changed type.
    #[error("field {field:?} changed type from {from} to {to}")]
    FieldRetyped {
        /// The field.
        field: String,
        /// The previous type name.
        from: &'static str,
        /// The proposed type name.
        to: &'static str,
    },
    /// A field kept its type but accepts fewer values.
    #[error("field {field:?} {change}: values valid in the previous version would be refused")]
    Narrowed {
        /// The field.
        field: String,
        /// How it was narrowed.
        change: Narrowing,
    },
    /// A field's classification was lowered.
    #[error("field {field:?} lowered from {from} to {to}")]
    ClassificationLowered {
        /// The field.
        field: String,
        /// The previous classification.
        from: Classification,
        /// The proposed classification.
        to: Classification,
    },
}

/// How a field's type was narrowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Narrowing {
    /// A string's `max_len` decreased.
    MaxLen {
        /// Previous.
        from: u32,
        /// Proposed.
        to: u32,
    },
    /// An integer's minimum was raised or added.
    Minimum {
        /// Previous (`None`: no minimum).
        from: Option<i64>,
        /// Proposed.
        to: i64,
    },
    /// An integer's maximum was lowered or added.
    Maximum {
        /// Previous (`None`: no maximum).
        from: Option<i64>,
        /// Proposed.
        to: i64,
    },
    /// A decimal's scale decreased.
    Scale {
        /// Previous.
        from: u8,
        /// Proposed.
        to: u8,
    },
    /// Enum values were removed.
    EnumValuesRemoved {
        /// The values removed, in their previous order.
        values: Vec<String>,
    },
}

impl fmt::Display for Narrowing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxLen { from, to } => write!(f, "max_len narrowed from {from} to {to}"),
            Self::Minimum { from: Some(from), to } => {
                write!(f, "minimum raised from {from} to {to}")
            }
            Self::Minimum { from: None, to } => write!(f, "gained a minimum of {to}"),
            Self::Maximum { from: Some(from), to } => {
                write!(f, "maximum lowered from {from} to {to}")
            }
            Self::Maximum { from: None, to } => write!(f, "gained a maximum of {to}"),
            Self::Scale { from, to } => write!(f, "scale narrowed from {from} to {to}"),
            Self::EnumValuesRemoved { values } => {
                let s = if values.len() == 1 { "" } else { "s" };
                write!(f, "lost enum value{s} {}", quoted_list(values))
            }
        }
    }
}

fn or_none(field: &Option<String>) -> String {
    match field {
        Some(name) => format!("{name:?}"),
        None => "none".into(),
    }
}

impl Schema {
    /// Checks that `next` may be published as the version after `self`: same name, version
    /// plus one, well-formed, and compatible.
    ///
    /// Compatible means: every record valid under `self` stays valid under `next`, with the
    /// same key and holder fields, and no field becomes less protected. So `next` may add
    /// optional fields, make a field optional, widen a string's `max_len`, an integer's
    /// range or a decimal's scale, add enum values and raise a classification; it may not
    /// remove a field, add a required one, make one required, change a type, narrow one,
    /// or lower a classification.
    ///
    /// Returns every incompatibility found, in a stable order.
    pub fn check_successor(&self, next: &Schema) -> Result<(), Vec<Incompatibility>> {
        let mut found = Vec::new();
        if let Err(e) = next.check() {
            found.push(Incompatibility::Invalid(e));
        }
        let (prev_ref, next_ref) = (&self.reference, &next.reference);
        if prev_ref.name() != next_ref.name() {
            found.push(Incompatibility::NameChanged {
                from: prev_ref.name().to_owned(),
                to: next_ref.name().to_owned(),
            });
        }
        if prev_ref.version().checked_add(1) != Some(next_ref.version()) {
            found.push(Incompatibility::VersionNotNext { previous: prev_ref.version(), next: next_ref.version() });
        }
        if self.key_field != next.key_field {
            found.push(Incompatibility::KeyFieldChanged { from: self.key_field.clone(), to: next.key_field.clone() });
        }
        if self.holder_field != next.holder_field {
            found.push(Incompatibility::HolderFieldChanged {
                from: self.holder_field.clone(),
                to: next.holder_field.clone(),
            });
        }
        for old in &self.fields {
            match next.field(&old.name) {
                None => found.push(Incompatibility::FieldRemoved { field: old.name.clone() }),
                Some(new) => compare_field(old, new, &mut found),
            }
        }
        for new in &next.fields {
            if new.required && self.field(&new.name).is_none() {
                found.push(Incompatibility::RequiredFieldAdded { field: new.name.clone() });
            }
        }
        if found.is_empty() { Ok(()) } else { Err(found) }
    }
}

fn compare_field(old: &FieldSpec, new: &FieldSpec, found: &mut Vec<Incompatibility>) {
    let field = || old.name.clone();
    if new.required && !old.required {
        found.push(Incompatibility::MadeRequired { field: field() });
    }
    let mut narrowed = |change| {
        found.push(Incompatibility::Narrowed { field: field(), change });
    };
    match (&old.field_type, &new.field_type) {
        (FieldType::String { max_len: from }, FieldType::String { max_len: to }) => {
            if to < from {
                narrowed(Narrowing::MaxLen { from: *from, to: *to });
            }
        }
        (FieldType::Integer { min: old_min, max: old_max }, FieldType::Integer { min: new_min, max: new_max }) => {
            if let Some(to) = *new_min
                && old_min.is_none_or(|from| to > from)
            {
                narrowed(Narrowing::Minimum { from: *old_min, to });
            }
            if let Some(to) = *new_max
                && old_max.is_none_or(|from| to < from)
            {
                narrowed(Narrowing::Maximum { from: *old_max, to });
            }
        }
        (FieldType::Decimal { scale: from }, FieldType::Decimal { scale: to }) => {
            if to < from {
                narrowed(Narrowing::Scale { from: *from, to: *to });
            }
        }
        (FieldType::Enum { values: from }, FieldType::Enum { values: to }) => {
            let kept: BTreeSet<&String> = to.iter().collect();
            let removed: Vec<String> = from.iter().filter(|v| !kept.contains(v)).cloned().collect();
            if !removed.is_empty() {
                narrowed(Narrowing::EnumValuesRemoved { values: removed });
            }
        }
        (FieldType::Date, FieldType::Date)
        | (FieldType::Boolean, FieldType::Boolean)
        | (FieldType::ResidentId, FieldType::ResidentId)
        | (FieldType::CreditCode, FieldType::CreditCode) => {}
        (from, to) => {
            found.push(Incompatibility::FieldRetyped { field: field(), from: from.type_name(), to: to.type_name() })
        }
    }
    if new.classification < old.classification {
        found.push(Incompatibility::ClassificationLowered {
            field: field(),
            from: old.classification,
            to: new.classification,
        });
    }
}
