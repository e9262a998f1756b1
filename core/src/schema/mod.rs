//! Standard schemas: the versioned field lists of each kind of e-licence and base record,
//! the validation of records against them, and the compatibility of successive versions.
//!
//! A [`Schema`] is loaded from JSON ([`Schema::from_json`] parses and checks it), validates
//! [`RawRecord`]s (field name to text, as imported or received) into [`Record`]s holding
//! the canonical text of each value, and says whether a proposed next version is
//! compatible ([`Schema::check_successor`]).

mod compat;
mod definition;
mod field;
mod record;
mod reference;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use compat::{Incompatibility, Narrowing};
pub use definition::{ClaimMatch, MAX_STRING_LEN, Schema, SchemaError};
pub use field::{Classification, ClassificationError, FieldSpec, FieldType, MAX_FIELD_NAME_LEN, check_field_name};
pub use record::{FieldProblem, RawRecord, Record, RecordError};
pub use reference::SchemaRef;
