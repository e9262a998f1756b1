//! Typed identifiers: every identifier that crosses a boundary is parsed once into one of
//! these types, which cannot hold an invalid value.
//!
//! Each type has `parse(&str) -> Result<Self, IdentError>` (also [`FromStr`]), `as_str()`,
//! `Display` giving back the canonical text, and serde as a string that goes through `parse`.
//! Parsers accept the lenient input people type (a lowercase `x` in a resident ID, a
//! lowercase credit code or licence number) and store the canonical form.
//!
//! Every parser reports the first problem it finds as an [`IdentError`] that names the
//! 1-based character position and the rule, e.g. `character 18 of the resident ID is '5',
//! the check character should be 'X'`.
//!
//! [`FromStr`]: std::str::FromStr

mod codes;
mod credit;
mod date;
mod error;
mod names;
mod reason;
mod region;
mod resident;
mod screen;
mod subject;

pub use codes::{LicenceId, PurposeCode, TraceId};
pub use credit::CreditCode;
pub use date::{Date, days_in_month, is_leap_year};
pub use error::{IdentError, IdentKind, Span};
pub use names::{DatasetId, DeptId};
pub use reason::Reason;
pub use region::{PROVINCE_CODES, is_province_code};
pub use resident::ResidentId;
pub use screen::{FoundIdentifier, find_identifier};
pub use subject::{SubjectId, SubjectKind, SubjectKindError};

pub(crate) use names::{LabelRules, check_labels};

/// Implements the string-like traits of an identifier type that has
/// `fn parse(&str) -> Result<Self, IdentError>` and `fn as_str(&self) -> &str`:
/// `FromStr`, `Display`, `AsRef<str>`, `TryFrom<String>`, `TryFrom<&str>` and
/// `From<Self> for String` (the last two are what `#[serde(try_from, into)]` use).
macro_rules! string_ident {
    ($ty:ty) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::ident::IdentError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::ident::IdentError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::ident::IdentError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.as_str().to_owned()
            }
        }
    };
}
pub(crate) use string_ident;

/// Counts the characters of `s`, refusing early when it is empty or has more than `max`
/// characters, so that a huge input is not walked to the end.
pub(crate) fn check_len(ident: IdentKind, s: &str, min: usize, max: usize) -> Result<usize, IdentError> {
    if s.is_empty() {
        return Err(IdentError::Empty { ident });
    }
    let count = s.chars().count();
    if count < min {
        return Err(IdentError::TooShort { ident, min, actual: count });
    }
    if count > max {
        return Err(IdentError::TooLong { ident, max, actual: count });
    }
    Ok(count)
}
