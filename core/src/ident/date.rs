//! Calendar dates (proleptic Gregorian), as used in resident IDs and schema date fields.

use serde::{Deserialize, Serialize};

use super::{IdentError, IdentKind, Span};

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Whether `year` is a Gregorian leap year (divisible by 4, except centuries not divisible
/// by 400: 2000 is, 1900 is not).
pub fn is_leap_year(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// The number of days in `month` (1-12) of `year`, or `None` when `month` is not a month.
pub fn days_in_month(year: u16, month: u8) -> Option<u8> {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if is_leap_year(year) => Some(29),
        2 => Some(28),
        _ => None,
    }
}

/// Which part of a date is wrong, and why (the text follows the part's digits).
#[derive(Debug)]
pub(crate) enum DateFault {
    Year(String),
    Month(String),
    Day(String),
}

/// The first problem with a year, month and day, or `None` for a real date in 1..=9999.
pub(crate) fn date_fault(year: u16, month: u8, day: u8) -> Option<DateFault> {
    if year == 0 {
        return Some(DateFault::Year("there is no year 0".into()));
    }
    if year > 9999 {
        return Some(DateFault::Year(format!("year {year} has more than 4 digits")));
    }
    let Some(days) = days_in_month(year, month) else {
        return Some(DateFault::Month(format!("{month} is not a month (01 to 12)")));
    };
    if day == 0 || day > days {
        let name = MONTH_NAMES[usize::from(month - 1)];
        let leap_note = if month == 2 && day == 29 { format!(", {year} is not a leap year") } else { String::new() };
        return Some(DateFault::Day(format!("day {day} does not exist in {name} {year} ({days} days{leap_note})")));
    }
    None
}

/// Parses exactly `n` ASCII digits; `None` if any character is not a digit.
pub(crate) fn digits_value(s: &str) -> Option<u32> {
    s.bytes()
        .try_fold(0u32, |acc, b| b.is_ascii_digit().then(|| acc.saturating_mul(10).saturating_add(u32::from(b - b'0'))))
}

/// A real calendar date between 0001-01-01 and 9999-12-31.
///
/// Text form `YYYY-MM-DD` (ISO 8601 calendar date); ordering is chronological.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// The date `year-month-day`, if it exists.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, IdentError> {
        match date_fault(year, month, day) {
            None => Ok(Self { year, month, day }),
            Some(fault) => {
                let ident = IdentKind::Date;
                Err(match fault {
                    DateFault::Year(r) => IdentError::bad_part(ident, Span::new(1, 4), year.to_string(), r),
                    DateFault::Month(r) => IdentError::bad_part(ident, Span::new(6, 7), format!("{month:02}"), r),
                    DateFault::Day(r) => IdentError::bad_part(ident, Span::new(9, 10), format!("{day:02}"), r),
                })
            }
        }
    }

    /// Whether `year-month-day` is a real date (year 1 to 9999, leap years included).
    pub fn is_valid(year: u16, month: u8, day: u8) -> bool {
        date_fault(year, month, day).is_none()
    }

    /// Parses `YYYY-MM-DD`, exactly 10 characters.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::Date;
        if s.is_empty() {
            return Err(IdentError::Empty { ident });
        }
        let count = s.chars().count();
        if count != 10 {
            return Err(IdentError::malformed(
                ident,
                format!("must look like YYYY-MM-DD (10 characters, e.g. 2024-02-29), got {count} characters"),
            ));
        }
        for (i, c) in s.chars().enumerate() {
            let position = i + 1;
            if position == 5 || position == 8 {
                if c != '-' {
                    return Err(IdentError::bad_char(ident, position, c, "expected '-' (dates look like YYYY-MM-DD)"));
                }
            } else if !c.is_ascii_digit() {
                return Err(IdentError::bad_char(ident, position, c, "expected a digit (dates look like YYYY-MM-DD)"));
            }
        }
        // All 10 characters are ASCII now, so byte slicing is safe.
        let (y, m, d) = (&s[0..4], &s[5..7], &s[8..10]);
        let year = digits_value(y).unwrap_or(0);
        let month = digits_value(m).unwrap_or(0);
        let day = digits_value(d).unwrap_or(0);
        // Every value has at most 4 digits: the conversions cannot fail.
        let (year, month, day) = (year as u16, month as u8, day as u8);
        match date_fault(year, month, day) {
            None => Ok(Self { year, month, day }),
            Some(DateFault::Year(r)) => Err(IdentError::bad_part(ident, Span::new(1, 4), y, r)),
            Some(DateFault::Month(r)) => Err(IdentError::bad_part(ident, Span::new(6, 7), m, r)),
            Some(DateFault::Day(r)) => Err(IdentError::bad_part(ident, Span::new(9, 10), d, r)),
        }
    }

    /// The year, 1 to 9999.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, 1 to 31.
    pub fn day(&self) -> u8 {
        self.day
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::str::FromStr for Date {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Date {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<(u16, u8, u8), &str>) {
        let got = Date::parse(input).map(|d| (d.year(), d.month(), d.day())).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn parse_table() {
        check("2024-02-29", Ok((2024, 2, 29)));
        check("2000-02-29", Ok((2000, 2, 29)));
        check("0001-01-01", Ok((1, 1, 1)));
        check("9999-12-31", Ok((9999, 12, 31)));
        check("", Err("the date is empty"));
        check(
            "2024-2-29",
            Err("the date must look like YYYY-MM-DD (10 characters, e.g. 2024-02-29), got 9 characters"),
        );
        check("2024/02/29", Err("character 5 of the date is '/', expected '-' (dates look like YYYY-MM-DD)"));
        check("2024-0a-29", Err("character 7 of the date is 'a', expected a digit (dates look like YYYY-MM-DD)"));
        check(
            "2023-02-29",
            Err(
                "characters 9-10 of the date are '29': day 29 does not exist in February 2023 (28 days, 2023 is not a leap year)",
            ),
        );
        check(
            "1900-02-29",
            Err(
                "characters 9-10 of the date are '29': day 29 does not exist in February 1900 (28 days, 1900 is not a leap year)",
            ),
        );
        check("2024-04-31", Err("characters 9-10 of the date are '31': day 31 does not exist in April 2024 (30 days)"));
        check(
            "2024-01-00",
            Err("characters 9-10 of the date are '00': day 0 does not exist in January 2024 (31 days)"),
        );
        check("2024-13-01", Err("characters 6-7 of the date are '13': 13 is not a month (01 to 12)"));
        check("0000-01-01", Err("characters 1-4 of the date are '0000': there is no year 0"));
    }

    #[test]
    fn days_in_month_table() {
        for (y, m, expected) in [
            (2024, 2, Some(29)),
            (2023, 2, Some(28)),
            (1900, 2, Some(28)),
            (2000, 2, Some(29)),
            (2023, 12, Some(31)),
            (2023, 11, Some(30)),
            (2023, 0, None),
            (2023, 13, None),
        ] {
            assert_eq!(days_in_month(y, m), expected, "{y}-{m}");
        }
    }

    #[test]
    fn new_reports_positions_of_the_text_form() {
        let err = Date::new(2023, 2, 30).expect_err("no February 30");
        assert_eq!(err.span(), Some(Span::new(9, 10)));
        assert!(Date::is_valid(2024, 2, 29));
        assert!(!Date::is_valid(2024, 13, 1));
    }

    #[test]
    fn serde_goes_through_parse() {
        let d: Date = serde_json::from_str("\"2024-02-29\"").expect("valid date");
        assert_eq!(serde_json::to_string(&d).expect("serialize"), "\"2024-02-29\"");
        assert!(serde_json::from_str::<Date>("\"2023-02-29\"").is_err());
    }

    proptest! {
        #[test]
        fn display_parses_back(y in 1u16..=9999, m in 1u8..=12, d in 1u8..=31) {
            if let Ok(date) = Date::new(y, m, d) {
                prop_assert_eq!(Date::parse(&date.to_string()), Ok(date));
            } else {
                prop_assert!(d > 28);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,12}") {
            let _ = Date::parse(&s);
        }

        #[test]
        fn order_is_chronological(a in (1u16..=9999, 1u8..=12, 1u8..=28), b in (1u16..=9999, 1u8..=12, 1u8..=28)) {
            let da = Date::new(a.0, a.1, a.2).expect("day <= 28 always exists");
            let db = Date::new(b.0, b.1, b.2).expect("day <= 28 always exists");
            prop_assert_eq!(da.cmp(&db), a.cmp(&b));
        }
    }
}
