//! Unified social credit codes (统一社会信用代码), GB 32100-2015.

use serde::{Deserialize, Serialize};

use super::region::{is_province_code, not_a_province};
use super::{IdentError, IdentKind, Span, string_ident};

const IDENT: IdentKind = IdentKind::CreditCode;

/// The 31 characters of the code, in value order: digits and capital letters without
/// I, O, Z, S and V.
pub(crate) const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of characters 1-17 (3^(i-1) mod 31).
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

const NOT_IN_ALPHABET: &str =
    "which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)";

/// The value (index in [`ALPHABET`]) of an uppercase character.
fn value_of(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// An 18-character unified social credit code of a legal person or other organisation,
/// GB 32100-2015.
///
/// Layout, 1-based character positions, all from the 31-character alphabet
/// `0123456789ABCDEFGHJKLMNPQRTUWXY`:
/// - 1: registration authority (e.g. `9` market regulation, `5` civil affairs, `1` state organs);
/// - 2: entity type within that authority;
/// - 3-8: administrative-division code (6 digits, GB/T 2260), the first two a province code;
/// - 9-17: organisation code (GB 11714 body and check character);
/// - 18: check character: with weights 3^(i-1) mod 31, `c = 31 - (sum mod 31)`, 31 becoming 0.
///
/// Lowercase input is accepted and stored uppercase. The GB 11714 check character inside
/// the organisation code (character 17) is not verified: character 18 covers every
/// single-character mistake already.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CreditCode(String);

string_ident!(CreditCode);

impl CreditCode {
    /// The length of a credit code, in characters.
    pub const LEN: usize = 18;

    /// Parses a credit code; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        if s.is_empty() {
            return Err(IdentError::Empty { ident: IDENT });
        }
        let count = s.chars().count();
        if count != Self::LEN {
            return Err(IdentError::WrongLength { ident: IDENT, expected: Self::LEN, actual: count });
        }
        let text = upper_alphabet(s)?;
        let province = &text[2..4];
        if !is_province_code(province) {
            return Err(IdentError::bad_part(IDENT, Span::new(3, 4), province, not_a_province(province)));
        }
        let expected = check_char_of(&text.as_bytes()[..17]);
        let found = char::from(text.as_bytes()[17]);
        if found != expected {
            return Err(IdentError::CheckChar { ident: IDENT, position: Self::LEN, found, expected });
        }
        Ok(Self(text))
    }

    /// Builds a valid credit code from its parts, computing the check character: for demo
    /// data and tests. `region` is the 6-digit division code, `organisation` the 9
    /// characters of the organisation code.
    pub fn from_parts(
        authority: char,
        entity_type: char,
        region: &str,
        organisation: &str,
    ) -> Result<Self, IdentError> {
        for (part, len, what) in [(region, 6, "region code"), (organisation, 9, "organisation code")] {
            let count = part.chars().count();
            if count != len {
                return Err(IdentError::malformed(IDENT, format!("{what} must be {len} characters, got {count}")));
            }
        }
        let mut text = String::with_capacity(Self::LEN);
        text.push(authority);
        text.push(entity_type);
        text.push_str(region);
        text.push_str(organisation);
        let check = Self::compute_check_char(&text)?;
        text.push(check);
        Self::parse(&text)
    }

    /// The check character of the first 17 characters `first17` (lowercase accepted):
    /// for demo data.
    pub fn compute_check_char(first17: &str) -> Result<char, IdentError> {
        let count = first17.chars().count();
        if count != 17 {
            return Err(IdentError::malformed(
                IDENT,
                format!("check character is computed from 17 characters, got {count}"),
            ));
        }
        let text = upper_alphabet(first17)?;
        Ok(check_char_of(text.as_bytes()))
    }

    /// The canonical text: 18 uppercase characters of the credit-code alphabet.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Character 1: the registration authority (e.g. `9` market regulation).
    pub fn registration_authority(&self) -> char {
        char::from(self.0.as_bytes()[0])
    }

    /// Character 2: the entity type within the registration authority.
    pub fn entity_type(&self) -> char {
        char::from(self.0.as_bytes()[1])
    }

    /// Characters 3-8: the administrative-division code of the registering authority.
    pub fn region_code(&self) -> &str {
        &self.0[2..8]
    }

    /// Characters 9-17: the organisation code (GB 11714).
    pub fn organisation_code(&self) -> &str {
        &self.0[8..17]
    }

    /// Character 18: the check character.
    pub fn check_char(&self) -> char {
        char::from(self.0.as_bytes()[17])
    }
}

/// Uppercases `s` and checks every character is in the alphabet and characters 3-8 are
/// digits.
fn upper_alphabet(s: &str) -> Result<String, IdentError> {
    let mut text = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        let position = i + 1;
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii() || value_of(upper as u8).is_none() {
            return Err(IdentError::bad_char(IDENT, position, c, NOT_IN_ALPHABET));
        }
        if (3..=8).contains(&position) && !upper.is_ascii_digit() {
            return Err(IdentError::bad_char(
                IDENT,
                position,
                c,
                "expected a digit (characters 3-8 are the region code)",
            ));
        }
        text.push(upper);
    }
    Ok(text)
}

/// The check character of 17 uppercase alphabet characters.
fn check_char_of(chars: &[u8]) -> char {
    let sum: u32 = chars.iter().zip(WEIGHTS).map(|(&c, w)| value_of(c).unwrap_or(0) * w).sum();
    let c = (31 - sum % 31) % 31;
    char::from(ALPHABET[c as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = CreditCode::parse(input).map(|id| id.to_string()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn parse_table() {
        check("91350100M000100Y43", Ok("91350100M000100Y43"));
        check("91350100m000100y43", Ok("91350100M000100Y43"));
        check("91110000802100433B", Ok("91110000802100433B"));
        check("911100001000128855", Ok("911100001000128855"));
        check("91440300708461136T", Ok("91440300708461136T"));
        check("91310000MA1FL1MMXL", Ok("91310000MA1FL1MMXL"));

        check("", Err("the credit code is empty"));
        check("91350100M000100Y4", Err("the credit code must be exactly 18 characters long, got 17"));
        check(
            "91350100I000100Y43",
            Err(
                "character 9 of the credit code is 'I', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)",
            ),
        );
        check(
            "91350100o000100Y43",
            Err(
                "character 9 of the credit code is 'o', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)",
            ),
        );
        check(
            "91350100M000100Y4-",
            Err(
                "character 18 of the credit code is '-', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)",
            ),
        );
        check(
            "9135010中M000100Y43",
            Err(
                "character 8 of the credit code is '中', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)",
            ),
        );
        check(
            "913501A0M000100Y43",
            Err("character 7 of the credit code is 'A', expected a digit (characters 3-8 are the region code)"),
        );
        check(
            "91990100M000100Y43",
            Err(
                "characters 3-4 of the credit code are '99': 99 is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)",
            ),
        );
        check("91350100M000100Y44", Err("character 18 of the credit code is '4', the check character should be '3'"));
        check("91350100M000100Y34", Err("character 18 of the credit code is '4', the check character should be '0'"));
    }

    #[test]
    fn accessors() {
        let code = CreditCode::parse("91350100M000100Y43").expect("valid");
        assert_eq!(code.registration_authority(), '9');
        assert_eq!(code.entity_type(), '1');
        assert_eq!(code.region_code(), "350100");
        assert_eq!(code.organisation_code(), "M000100Y4");
        assert_eq!(code.check_char(), '3');
    }

    #[test]
    fn from_parts_and_compute() {
        let code = CreditCode::from_parts('9', '1', "350100", "m000100y4").expect("valid");
        assert_eq!(code.as_str(), "91350100M000100Y43");
        assert_eq!(CreditCode::compute_check_char("91440300708461136"), Ok('T'));
        assert_eq!(
            CreditCode::from_parts('9', '1', "3501", "M000100Y4").map_err(|e| e.to_string()),
            Err("the credit code region code must be 6 characters, got 4".to_owned())
        );
        assert_eq!(
            CreditCode::from_parts('S', '1', "350100", "M000100Y4").map_err(|e| e.to_string()),
            Err("character 1 of the credit code is 'S', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)".to_owned())
        );
        assert_eq!(
            CreditCode::compute_check_char("9135").map_err(|e| e.to_string()),
            Err("the credit code check character is computed from 17 characters, got 4".to_owned())
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let code: CreditCode = serde_json::from_str("\"91350100m000100y43\"").expect("valid");
        assert_eq!(serde_json::to_string(&code).expect("serialize"), "\"91350100M000100Y43\"");
        assert!(serde_json::from_str::<CreditCode>("\"91350100M000100Y44\"").is_err());
    }

    fn alphabet_char() -> impl Strategy<Value = char> {
        proptest::sample::select(ALPHABET.iter().map(|&b| char::from(b)).collect::<Vec<_>>())
    }

    fn valid_code() -> impl Strategy<Value = CreditCode> {
        (
            alphabet_char(),
            alphabet_char(),
            proptest::sample::select(super::super::PROVINCE_CODES.to_vec()),
            0u32..10_000,
            proptest::collection::vec(alphabet_char(), 9),
        )
            .prop_map(|(a, t, p, rest, org)| {
                let region = format!("{p}{rest:04}");
                let org: String = org.into_iter().collect();
                CreditCode::from_parts(a, t, &region, &org).expect("valid parts give a valid code")
            })
    }

    proptest! {
        #[test]
        fn from_parts_parses_back(code in valid_code()) {
            prop_assert_eq!(CreditCode::parse(code.as_str()), Ok(code.clone()));
            prop_assert_eq!(CreditCode::parse(&code.as_str().to_lowercase()), Ok(code));
        }

        /// The MOD 31 check detects every single-character substitution.
        #[test]
        fn any_single_substitution_fails(
            code in valid_code(),
            position in 0usize..18,
            replacement in alphabet_char(),
        ) {
            let mut chars: Vec<char> = code.as_str().chars().collect();
            prop_assume!(chars[position] != replacement);
            chars[position] = replacement;
            let mutated: String = chars.into_iter().collect();
            prop_assert!(CreditCode::parse(&mutated).is_err(), "{} was accepted", mutated);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = CreditCode::parse(&s);
        }
    }
}
