//! Resident IDs (居民身份号码), GB 11643-1999.

use serde::{Deserialize, Serialize};

use super::date::{DateFault, date_fault, digits_value};
use super::region::{is_province_code, not_a_province};
use super::{Date, IdentError, IdentKind, Span, string_ident};

const IDENT: IdentKind = IdentKind::ResidentId;

/// ISO 7064 MOD 11-2 weights of characters 1-17 (2^(18-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for each value of (weighted sum mod 11).
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// An 18-character PRC resident ID (公民身份号码), GB 11643-1999.
///
/// Layout, 1-based character positions:
/// - 1-6: administrative-division code of the place of first registration (GB/T 2260); the
///   first two digits must be a province-level code;
/// - 7-14: date of birth, `YYYYMMDD`, a real calendar date from
///   [`ResidentId::MIN_BIRTH_YEAR`] on (the clock is not read: a future date is accepted);
/// - 15-17: sequence number, odd for men and even for women;
/// - 18: ISO 7064 MOD 11-2 check character, a digit or `X`.
///
/// A lowercase `x` is accepted on input and stored as `X`.
///
/// Resident IDs are personal data: do not put them in logs, metrics or trace attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResidentId {
    /// 17 ASCII digits then a digit or `X`.
    text: String,
    /// Characters 7-14, already checked.
    birth_date: Date,
}

string_ident!(ResidentId);

impl ResidentId {
    /// The length of a resident ID, in characters.
    pub const LEN: usize = 18;

    /// The earliest birth year accepted. GB 11643 itself illustrates the check character
    /// with a birth year of 1880, so records of people born in the 19th century are valid.
    pub const MIN_BIRTH_YEAR: u16 = 1800;

    /// Parses a resident ID; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        if s.is_empty() {
            return Err(IdentError::Empty { ident: IDENT });
        }
        let count = s.chars().count();
        if count != Self::LEN {
            return Err(IdentError::WrongLength { ident: IDENT, expected: Self::LEN, actual: count });
        }
        let mut text = String::with_capacity(Self::LEN);
        for (i, c) in s.chars().enumerate() {
            let position = i + 1;
            if position < Self::LEN {
                if !c.is_ascii_digit() {
                    return Err(IdentError::bad_char(
                        IDENT,
                        position,
                        c,
                        "expected a digit (only the last character may be 'X')",
                    ));
                }
                text.push(c);
            } else {
                match c {
                    '0'..='9' | 'X' => text.push(c),
                    'x' => text.push('X'),
                    _ => {
                        return Err(IdentError::bad_char(IDENT, position, c, "expected a digit or 'X'"));
                    }
                }
            }
        }
        // `text` is 18 ASCII characters from here on: byte slicing is safe.
        let province = &text[0..2];
        if !is_province_code(province) {
            return Err(IdentError::bad_part(IDENT, Span::new(1, 2), province, not_a_province(province)));
        }
        let birth_date = birth_date_of(&text[6..10], &text[10..12], &text[12..14])?;
        let expected = check_char_of(&text.as_bytes()[..17]);
        let found = char::from(text.as_bytes()[17]);
        if found != expected {
            return Err(IdentError::CheckChar { ident: IDENT, position: Self::LEN, found, expected });
        }
        Ok(Self { text, birth_date })
    }

    /// Builds a valid resident ID from its parts, computing the check character: for demo
    /// data and tests. `sequence` is 0 to 999 (odd for a man, even for a woman).
    pub fn from_parts(region: &str, year: u16, month: u8, day: u8, sequence: u16) -> Result<Self, IdentError> {
        let count = region.chars().count();
        if count != 6 {
            return Err(IdentError::malformed(IDENT, format!("region code must be 6 digits, got {count} characters")));
        }
        if let Some((i, c)) = region.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(IdentError::bad_char(IDENT, i + 1, c, "expected a digit (characters 1-6 are the region code)"));
        }
        if year > 9999 || month > 99 || day > 99 {
            // Would not fit the YYYYMMDD layout; report it the way `parse` would.
            birth_date_of(&year.to_string(), &month.to_string(), &day.to_string())?;
        }
        if sequence > 999 {
            return Err(IdentError::bad_part(
                IDENT,
                Span::new(15, 17),
                sequence.to_string(),
                format!("sequence {sequence} does not fit in 3 digits (000 to 999)"),
            ));
        }
        let mut text = format!("{region}{year:04}{month:02}{day:02}{sequence:03}");
        text.push(Self::compute_check_char(&text)?);
        Self::parse(&text)
    }

    /// The check character (a digit or `X`) of the 17 digits `first17`: for demo data.
    pub fn compute_check_char(first17: &str) -> Result<char, IdentError> {
        let count = first17.chars().count();
        if count != 17 {
            return Err(IdentError::malformed(
                IDENT,
                format!("check character is computed from 17 digits, got {count} characters"),
            ));
        }
        if let Some((i, c)) = first17.chars().enumerate().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(IdentError::bad_char(IDENT, i + 1, c, "expected a digit (only the last character may be 'X')"));
        }
        Ok(check_char_of(first17.as_bytes()))
    }

    /// The canonical text: 17 digits and a digit or uppercase `X`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Characters 1-6: the administrative-division code of first registration.
    pub fn region_code(&self) -> &str {
        &self.text[0..6]
    }

    /// Characters 7-14: the date of birth.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// Characters 15-17: the sequence number, 0 to 999.
    pub fn sequence(&self) -> u16 {
        // Three ASCII digits: at most 999.
        digits_value(&self.text[14..17]).map_or(0, |v| v as u16)
    }

    /// Whether the sequence number is odd, which GB 11643 assigns to men.
    pub fn is_male(&self) -> bool {
        self.sequence() % 2 == 1
    }

    /// Character 18: the check character, a digit or `X`.
    pub fn check_char(&self) -> char {
        char::from(self.text.as_bytes()[17])
    }
}

/// The check character of 17 ASCII digits.
fn check_char_of(digits: &[u8]) -> char {
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w).sum();
    char::from(CHECK_CHARS[(sum % 11) as usize])
}

/// Checks the birth date in characters 7-14, given as its year, month and day texts.
fn birth_date_of(y: &str, m: &str, d: &str) -> Result<Date, IdentError> {
    let year_span = Span::new(7, 10);
    let year = digits_value(y).unwrap_or(u32::MAX);
    let Ok(year) = u16::try_from(year) else {
        return Err(IdentError::bad_part(IDENT, year_span, y, "not a 4-digit year"));
    };
    if year < ResidentId::MIN_BIRTH_YEAR {
        return Err(IdentError::bad_part(
            IDENT,
            year_span,
            y,
            format!("birth year {year} is before {}", ResidentId::MIN_BIRTH_YEAR),
        ));
    }
    // Month and day texts have at most 2 digits here, or came from `from_parts` as u8.
    let month = u8::try_from(digits_value(m).unwrap_or(u32::MAX)).unwrap_or(u8::MAX);
    let day = u8::try_from(digits_value(d).unwrap_or(u32::MAX)).unwrap_or(u8::MAX);
    match date_fault(year, month, day) {
        None => Date::new(year, month, day),
        Some(DateFault::Year(r)) => Err(IdentError::bad_part(IDENT, year_span, y, r)),
        Some(DateFault::Month(r)) => Err(IdentError::bad_part(IDENT, Span::new(11, 12), m, r)),
        Some(DateFault::Day(r)) => Err(IdentError::bad_part(IDENT, Span::new(13, 14), d, r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = ResidentId::parse(input).map(|id| id.to_string()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn parse_table() {
        // Valid, including the examples of GB 11643 itself.
        check("11010519491231002X", Ok("11010519491231002X"));
        check("11010519491231002x", Ok("11010519491231002X"));
        check("440524188001010014", Ok("440524188001010014"));
        check("110101199003074514", Ok("110101199003074514"));
        check("440305200002290010", Ok("440305200002290010"));

        check("", Err("the resident ID is empty"));
        check("11010519491231002", Err("the resident ID must be exactly 18 characters long, got 17"));
        check("11010519491231002XX", Err("the resident ID must be exactly 18 characters long, got 19"));
        check(
            "1101051949123100２X",
            Err("character 17 of the resident ID is '２', expected a digit (only the last character may be 'X')"),
        );
        check(
            "1101051949123100X2",
            Err("character 17 of the resident ID is 'X', expected a digit (only the last character may be 'X')"),
        );
        check("11010519491231002Y", Err("character 18 of the resident ID is 'Y', expected a digit or 'X'"));
        check("110105194912310025", Err("character 18 of the resident ID is '5', the check character should be 'X'"));
        check("110105194912310021", Err("character 18 of the resident ID is '1', the check character should be 'X'"));
        check(
            "990105194912310021",
            Err(
                "characters 1-2 of the resident ID are '99': 99 is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)",
            ),
        );
        check(
            "000000194912310021",
            Err(
                "characters 1-2 of the resident ID are '00': 00 is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)",
            ),
        );
        check("110105194913310021", Err("characters 11-12 of the resident ID are '13': 13 is not a month (01 to 12)"));
        check("110105194900310021", Err("characters 11-12 of the resident ID are '00': 0 is not a month (01 to 12)"));
        check(
            "110105194902290021",
            Err(
                "characters 13-14 of the resident ID are '29': day 29 does not exist in February 1949 (28 days, 1949 is not a leap year)",
            ),
        );
        check(
            "110105194904310021",
            Err("characters 13-14 of the resident ID are '31': day 31 does not exist in April 1949 (30 days)"),
        );
        check(
            "110105179912310021",
            Err("characters 7-10 of the resident ID are '1799': birth year 1799 is before 1800"),
        );
    }

    #[test]
    fn accessors() {
        let id = ResidentId::parse("11010519491231002x").expect("valid");
        assert_eq!(id.region_code(), "110105");
        assert_eq!(id.birth_date(), Date::new(1949, 12, 31).expect("date"));
        assert_eq!(id.sequence(), 2);
        assert!(!id.is_male());
        assert_eq!(id.check_char(), 'X');
        assert!(ResidentId::parse("440524188001010014").expect("valid").is_male());
    }

    #[test]
    fn error_positions() {
        let err = ResidentId::parse("110105194913310021").expect_err("bad month");
        assert_eq!(err.ident(), IdentKind::ResidentId);
        assert_eq!(err.span(), Some(Span::new(11, 12)));
        let err = ResidentId::parse("110105194912310025").expect_err("bad check");
        assert_eq!(err.span(), Some(Span::at(18)));
    }

    #[test]
    fn compute_check_char_table() {
        for (input, expected) in [
            ("11010519491231002", Ok('X')),
            ("44052418800101001", Ok('4')),
            ("4405241880010100", Err("the resident ID check character is computed from 17 digits, got 16 characters")),
            (
                "4405241880010100A",
                Err("character 17 of the resident ID is 'A', expected a digit (only the last character may be 'X')"),
            ),
        ] {
            let got = ResidentId::compute_check_char(input).map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned), "{input}");
        }
    }

    #[test]
    fn from_parts_table() {
        let ok =
            |r, y, m, d, s| ResidentId::from_parts(r, y, m, d, s).map(|id| id.to_string()).map_err(|e| e.to_string());
        assert_eq!(ok("110105", 1949, 12, 31, 2), Ok("11010519491231002X".to_owned()));
        assert_eq!(ok("440524", 1880, 1, 1, 1), Ok("440524188001010014".to_owned()));
        assert_eq!(
            ok("11010", 1949, 12, 31, 2),
            Err("the resident ID region code must be 6 digits, got 5 characters".to_owned())
        );
        assert_eq!(
            ok("11a105", 1949, 12, 31, 2),
            Err("character 3 of the resident ID is 'a', expected a digit (characters 1-6 are the region code)"
                .to_owned())
        );
        assert_eq!(
            ok("110105", 1949, 2, 30, 2),
            Err("characters 13-14 of the resident ID are '30': day 30 does not exist in February 1949 (28 days)"
                .to_owned())
        );
        assert_eq!(
            ok("110105", 1949, 120, 3, 2),
            Err("characters 11-12 of the resident ID are '120': 120 is not a month (01 to 12)".to_owned())
        );
        assert_eq!(
            ok("110105", 12345, 1, 3, 2),
            Err("characters 7-10 of the resident ID are '12345': year 12345 has more than 4 digits".to_owned())
        );
        assert_eq!(
            ok("110105", 1949, 12, 31, 1000),
            Err("characters 15-17 of the resident ID are '1000': sequence 1000 does not fit in 3 digits (000 to 999)"
                .to_owned())
        );
        assert_eq!(
            ok("100105", 1949, 12, 31, 1),
            Err("characters 1-2 of the resident ID are '10': 10 is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)".to_owned())
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let id: ResidentId = serde_json::from_str("\"11010519491231002x\"").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"11010519491231002X\"");
        let err = serde_json::from_str::<ResidentId>("\"110105194912310025\"").expect_err("bad check");
        assert!(err.to_string().contains("the check character should be 'X'"), "{err}");
    }

    fn region() -> impl Strategy<Value = String> {
        (proptest::sample::select(super::super::PROVINCE_CODES.to_vec()), 0u32..10_000)
            .prop_map(|(p, rest)| format!("{p}{rest:04}"))
    }

    fn valid_id() -> impl Strategy<Value = ResidentId> {
        (region(), ResidentId::MIN_BIRTH_YEAR..=2100u16, 1u8..=12, 1u8..=31, 0u16..=999).prop_filter_map(
            "real date",
            |(r, y, m, d, s)| {
                Date::is_valid(y, m, d)
                    .then(|| ResidentId::from_parts(&r, y, m, d, s).expect("valid parts give a valid id"))
            },
        )
    }

    proptest! {
        #[test]
        fn from_parts_parses_back(id in valid_id()) {
            prop_assert_eq!(ResidentId::parse(id.as_str()), Ok(id.clone()));
            prop_assert_eq!(ResidentId::parse(&id.as_str().to_lowercase()), Ok(id));
        }

        /// MOD 11-2 detects every single-character substitution.
        #[test]
        fn any_single_substitution_fails(
            id in valid_id(),
            position in 0usize..18,
            replacement in proptest::sample::select("0123456789X".chars().collect::<Vec<_>>()),
        ) {
            let mut chars: Vec<char> = id.as_str().chars().collect();
            prop_assume!(chars[position] != replacement);
            chars[position] = replacement;
            let mutated: String = chars.into_iter().collect();
            prop_assert!(ResidentId::parse(&mutated).is_err(), "{} was accepted", mutated);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = ResidentId::parse(&s);
        }
    }
}
