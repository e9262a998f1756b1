//! Records: field values as text, validated against a schema into canonical text.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::field::{FieldType, quoted_list};
use crate::ident::{CreditCode, Date, IdentError, ResidentId};

/// A record as received (from an import file or a request): field name to value text.
/// An empty value counts as absent.
pub type RawRecord = BTreeMap<String, String>;

/// A record whose every field was validated against a schema: field name to the
/// canonical text of its value (see [`Schema::validate`](super::Schema::validate)).
/// Absent fields, and fields that were empty on input, have no entry.
///
/// Serializes as a JSON object of strings. There is no `Deserialize`: read stored records
/// back as a [`RawRecord`] and validate them again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Record(BTreeMap<String, String>);

impl Record {
    /// The canonical value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The fields present, in name order, with their canonical values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of fields present.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no field is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The map of field names to canonical values.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The map of field names to canonical values, by value.
    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }

    /// Only the fields named in `fields` (the ones present). The result holds valid
    /// values but may lack required fields: it is an answer, not a full record.
    pub fn project(&self, fields: &BTreeSet<String>) -> Record {
        Record(self.0.iter().filter(|(k, _)| fields.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub(super) fn from_validated(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

/// A record that does not fit its schema: which field, and which rule it breaks.
///
/// Messages do not repeat the value (it may be personal data), except for the characters
/// an identifier error points at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?} {problem}")]
pub struct RecordError {
    /// The field name, as received.
    pub field: String,
    /// The rule it breaks.
    pub problem: FieldProblem,
}

/// The rule a field value breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// The field is not in the schema.
    #[error("is not in the schema")]
    Unknown,
    /// A required field is absent or empty.
    #[error("is required but missing")]
    Missing,
    /// A string is longer than the field's `max_len`.
    #[error("is {len} characters long, the limit is {max}")]
    TooLong {
        /// The value's length in characters.
        len: usize,
        /// The field's limit.
        max: u32,
    },
    /// Not an integer.
    #[error("is not an integer: expected decimal digits with an optional sign")]
    NotInteger,
    /// An integer outside the field's range (or outside 64 bits).
    #[error("is out of range: {}", range_text(*min, *max))]
    OutOfRange {
        /// The field's minimum, if any.
        min: Option<i64>,
        /// The field's maximum, if any.
        max: Option<i64>,
    },
    /// Not a decimal number.
    #[error("is not a decimal number: expected digits with an optional sign and decimal point, e.g. -12.50")]
    NotDecimal,
    /// A decimal with more digits after the point than the field's scale.
    #[error("has {} after the decimal point, the limit is {scale}", if *digits == 1 { "1 digit".to_owned() } else { format!("{digits} digits") })]
    TooManyDecimals {
        /// Significant digits after the point (trailing zeros do not count).
        digits: usize,
        /// The field's scale.
        scale: u8,
    },
    /// Not a date.
    #[error("is not a date: {0}")]
    BadDate(IdentError),
    /// Neither `true` nor `false`.
    #[error("must be \"true\" or \"false\"")]
    NotBoolean,
    /// Not one of the enum's values.
    #[error("must be one of {}", quoted_list(allowed))]
    NotInEnum {
        /// The values allowed.
        allowed: Vec<String>,
    },
    /// Not a valid resident ID.
    #[error("is not a valid resident ID: {0}")]
    BadResidentId(IdentError),
    /// Not a valid credit code.
    #[error("is not a valid credit code: {0}")]
    BadCreditCode(IdentError),
}

fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("it must be from {min} to {max}"),
        (Some(min), None) => format!("it must be at least {min}"),
        (None, Some(max)) => format!("it must be at most {max}"),
        (None, None) => "it does not fit in 64 bits".into(),
    }
}

/// The canonical text of `value` (non-empty) for a field of type `field_type`.
pub(super) fn canonical_value(field_type: &FieldType, value: &str) -> Result<String, FieldProblem> {
    match field_type {
        FieldType::String { max_len } => {
            // Fast path: a value of no more bytes than the limit has no more characters.
            let limit = *max_len as usize;
            if value.len() > limit {
                let len = value.chars().count();
                if len > limit {
                    return Err(FieldProblem::TooLong { len, max: *max_len });
                }
            }
            Ok(value.to_owned())
        }
        FieldType::Integer { min, max } => canonical_integer(value, *min, *max),
        FieldType::Decimal { scale } => canonical_decimal(value, *scale),
        FieldType::Date => Date::parse(value).map(|d| d.to_string()).map_err(FieldProblem::BadDate),
        FieldType::Boolean => match value {
            "true" | "false" => Ok(value.to_owned()),
            _ => Err(FieldProblem::NotBoolean),
        },
        FieldType::Enum { values } => {
            if values.iter().any(|v| v == value) {
                Ok(value.to_owned())
            } else {
                Err(FieldProblem::NotInEnum { allowed: values.clone() })
            }
        }
        FieldType::ResidentId => ResidentId::parse(value).map(String::from).map_err(FieldProblem::BadResidentId),
        FieldType::CreditCode => CreditCode::parse(value).map(String::from).map_err(FieldProblem::BadCreditCode),
    }
}

/// Splits an optional leading sign: (`true` if negative, the rest).
fn split_sign(value: &str) -> (bool, &str) {
    if let Some(rest) = value.strip_prefix('-') {
        (true, rest)
    } else {
        (false, value.strip_prefix('+').unwrap_or(value))
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn canonical_integer(value: &str, min: Option<i64>, max: Option<i64>) -> Result<String, FieldProblem> {
    let (negative, digits) = split_sign(value);
    if !all_digits(digits) {
        return Err(FieldProblem::NotInteger);
    }
    let significant = digits.trim_start_matches('0');
    // 19 digits always fit in an i128; more never fit in an i64.
    let out_of_range = FieldProblem::OutOfRange { min, max };
    if significant.len() > 19 {
        return Err(out_of_range);
    }
    let magnitude: i128 =
        if significant.is_empty() { 0 } else { significant.parse().map_err(|_| FieldProblem::NotInteger)? };
    let number = if negative { -magnitude } else { magnitude };
    let Ok(number) = i64::try_from(number) else {
        return Err(out_of_range);
    };
    if min.is_some_and(|m| number < m) || max.is_some_and(|m| number > m) {
        return Err(out_of_range);
    }
    Ok(number.to_string())
}

fn canonical_decimal(value: &str, scale: u8) -> Result<String, FieldProblem> {
    let (negative, number) = split_sign(value);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(FieldProblem::NotDecimal);
    }
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let frac_part = frac_part.unwrap_or("").trim_end_matches('0');
    if frac_part.len() > usize::from(scale) {
        return Err(FieldProblem::TooManyDecimals { digits: frac_part.len(), scale });
    }
    let zero = int_part == "0" && frac_part.is_empty();
    let mut out = String::with_capacity(int_part.len() + frac_part.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(frac_part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(field_type: &FieldType, input: &str, expected: Result<&str, &str>) {
        let got = canonical_value(field_type, input).map_err(|p| p.to_string());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "{field_type}: {input:?}");
    }

    #[test]
    fn integer_table() {
        let any = FieldType::Integer { min: None, max: None };
        let age = FieldType::Integer { min: Some(0), max: Some(150) };
        let pos = FieldType::Integer { min: Some(1), max: None };
        let neg = FieldType::Integer { min: None, max: Some(-1) };
        check(&any, "42", Ok("42"));
        check(&any, "+42", Ok("42"));
        check(&any, "-0042", Ok("-42"));
        check(&any, "-0", Ok("0"));
        check(&any, "000", Ok("0"));
        check(&any, "9223372036854775807", Ok("9223372036854775807"));
        check(&any, "-9223372036854775808", Ok("-9223372036854775808"));
        check(&any, "0000000000000000000000000001", Ok("1"));
        check(&any, "9223372036854775808", Err("is out of range: it does not fit in 64 bits"));
        check(&any, "99999999999999999999999", Err("is out of range: it does not fit in 64 bits"));
        for bad in ["1.5", "1e3", " 1", "1 ", "-", "+", "--1", "+-1", "１", "0x10"] {
            check(&any, bad, Err("is not an integer: expected decimal digits with an optional sign"));
        }
        check(&age, "150", Ok("150"));
        check(&age, "151", Err("is out of range: it must be from 0 to 150"));
        check(&age, "-1", Err("is out of range: it must be from 0 to 150"));
        check(&pos, "0", Err("is out of range: it must be at least 1"));
        check(&neg, "0", Err("is out of range: it must be at most -1"));
    }

    #[test]
    fn decimal_table() {
        let money = FieldType::Decimal { scale: 2 };
        let whole = FieldType::Decimal { scale: 0 };
        check(&money, "12.50", Ok("12.5"));
        check(&money, "+0012.00", Ok("12"));
        check(&money, "-0.00", Ok("0"));
        check(&money, "-0.05", Ok("-0.05"));
        check(&money, "0", Ok("0"));
        check(&money, "100", Ok("100"));
        check(&money, "1.2300000", Ok("1.23"));
        check(&money, "123456789012345678901234567890.99", Ok("123456789012345678901234567890.99"));
        check(&money, "1.234", Err("has 3 digits after the decimal point, the limit is 2"));
        check(&whole, "1.5", Err("has 1 digit after the decimal point, the limit is 0"));
        check(&whole, "7.000", Ok("7"));
        for bad in [".5", "5.", "1,000.00", "1.2.3", "abc", "-", "1e2", " 1", "١"] {
            check(
                &money,
                bad,
                Err("is not a decimal number: expected digits with an optional sign and decimal point, e.g. -12.50"),
            );
        }
    }

    #[test]
    fn other_types_table() {
        check(&FieldType::String { max_len: 3 }, "深圳市", Ok("深圳市"));
        check(&FieldType::String { max_len: 3 }, "深圳市a", Err("is 4 characters long, the limit is 3"));
        check(&FieldType::Date, "2024-02-29", Ok("2024-02-29"));
        check(
            &FieldType::Date,
            "2023-02-29",
            Err(
                "is not a date: characters 9-10 of the date are '29': day 29 does not exist in February 2023 (28 days, 2023 is not a leap year)",
            ),
        );
        check(&FieldType::Boolean, "true", Ok("true"));
        check(&FieldType::Boolean, "false", Ok("false"));
        check(&FieldType::Boolean, "TRUE", Err("must be \"true\" or \"false\""));
        check(&FieldType::Boolean, "1", Err("must be \"true\" or \"false\""));
        let status = FieldType::Enum { values: vec!["active".into(), "revoked".into()] };
        check(&status, "active", Ok("active"));
        check(&status, "Active", Err("must be one of \"active\", \"revoked\""));
        check(&FieldType::ResidentId, "11010519491231002x", Ok("11010519491231002X"));
        check(
            &FieldType::ResidentId,
            "110105194912310021",
            Err(
                "is not a valid resident ID: character 18 of the resident ID is '1', the check character should be 'X'",
            ),
        );
        check(&FieldType::CreditCode, "91350100m000100y43", Ok("91350100M000100Y43"));
        check(
            &FieldType::CreditCode,
            "91350100M000100Y44",
            Err(
                "is not a valid credit code: character 18 of the credit code is '4', the check character should be '3'",
            ),
        );
    }
}
