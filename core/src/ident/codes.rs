//! Short codes: licence numbers, purpose codes and trace IDs.

use serde::{Deserialize, Serialize};

use super::{IdentError, IdentKind, check_len, string_ident};

/// A licence number (证照编号): 4 to 64 characters of `A-Z`, `0-9` and `-`, starting and
/// ending with a letter or digit, with no `--`. Lowercase letters are accepted and stored
/// uppercase.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LicenceId(String);

string_ident!(LicenceId);

impl LicenceId {
    /// The fewest characters a licence number may have.
    pub const MIN_LEN: usize = 4;
    /// The most characters a licence number may have.
    pub const MAX_LEN: usize = 64;

    /// Parses a licence number; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::LicenceId;
        let count = check_len(ident, s, Self::MIN_LEN, Self::MAX_LEN)?;
        let mut text = String::with_capacity(count);
        let mut prev = ' ';
        for (i, c) in s.chars().enumerate() {
            let position = i + 1;
            let rule = match c {
                'A'..='Z' | '0'..='9' => None,
                'a'..='z' => None,
                '-' if position == 1 => Some("a licence number must start with a letter or digit"),
                '-' if position == count => Some("a licence number must end with a letter or digit"),
                '-' if prev == '-' => Some("'--' is not allowed"),
                '-' => None,
                _ => Some("expected a letter, a digit or '-'"),
            };
            if let Some(rule) = rule {
                return Err(IdentError::bad_char(ident, position, c, rule));
            }
            text.push(c.to_ascii_uppercase());
            prev = c;
        }
        Ok(Self(text))
    }

    /// The canonical text (uppercase).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A purpose code: the code of the government service item (事项编码) a query serves, e.g.
/// `SZ-HCB-ZLBA-001`. 2 to 64 characters: a letter or digit, then letters, digits, `.`,
/// `_` and `-`. Lowercase letters are accepted and stored uppercase, so that codes compare
/// equal however they were typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PurposeCode(String);

string_ident!(PurposeCode);

impl PurposeCode {
    /// The fewest characters a purpose code may have.
    pub const MIN_LEN: usize = 2;
    /// The most characters a purpose code may have.
    pub const MAX_LEN: usize = 64;

    /// Parses a purpose code; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::PurposeCode;
        let count = check_len(ident, s, Self::MIN_LEN, Self::MAX_LEN)?;
        let mut text = String::with_capacity(count);
        for (i, c) in s.chars().enumerate() {
            let rule = match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' => None,
                '.' | '_' | '-' if i == 0 => Some("a purpose code must start with a letter or digit"),
                '.' | '_' | '-' => None,
                _ => Some("expected a letter, a digit, '.', '_' or '-'"),
            };
            if let Some(rule) = rule {
                return Err(IdentError::bad_char(ident, i + 1, c, rule));
            }
            text.push(c.to_ascii_uppercase());
        }
        Ok(Self(text))
    }

    /// The canonical text (uppercase).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller-supplied trace ID, carried into the access log so a caller can find its own
/// requests: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`, kept as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceId(String);

string_ident!(TraceId);

impl TraceId {
    /// The most characters a trace ID may have.
    pub const MAX_LEN: usize = 64;

    /// Parses a trace ID; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::TraceId;
        check_len(ident, s, 1, Self::MAX_LEN)?;
        if let Some((i, c)) =
            s.chars().enumerate().find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(IdentError::bad_char(ident, i + 1, c, "expected a letter, a digit, '.', '_', ':' or '-'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The text, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Checks one parser on a table row: `Ok(canonical)` or `Err(message)`.
    fn check<T: std::fmt::Display>(
        parse: fn(&str) -> Result<T, IdentError>,
        input: &str,
        expected: Result<&str, &str>,
    ) {
        let got = parse(input).map(|v| v.to_string()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn licence_table() {
        let p = LicenceId::parse;
        check(p, "SZ-2024-000123", Ok("SZ-2024-000123"));
        check(p, "sz-2024-000123", Ok("SZ-2024-000123"));
        check(p, "A1B2", Ok("A1B2"));
        check(p, "", Err("the licence number is empty"));
        check(p, "A1B", Err("the licence number is 3 characters long, the minimum is 4"));
        check(p, &"A".repeat(65), Err("the licence number is 65 characters long, the limit is 64"));
        check(
            p,
            "-SZ2024",
            Err("character 1 of the licence number is '-', a licence number must start with a letter or digit"),
        );
        check(
            p,
            "SZ2024-",
            Err("character 7 of the licence number is '-', a licence number must end with a letter or digit"),
        );
        check(p, "SZ--2024", Err("character 4 of the licence number is '-', '--' is not allowed"));
        check(p, "SZ 2024", Err("character 3 of the licence number is ' ', expected a letter, a digit or '-'"));
        check(p, "粤2024-01", Err("character 1 of the licence number is '粤', expected a letter, a digit or '-'"));
    }

    #[test]
    fn purpose_table() {
        let p = PurposeCode::parse;
        check(p, "SZ-HCB-ZLBA-001", Ok("SZ-HCB-ZLBA-001"));
        check(p, "sz-hcb.zlba_001", Ok("SZ-HCB.ZLBA_001"));
        check(p, "A1", Ok("A1"));
        check(p, "", Err("the purpose code is empty"));
        check(p, "A", Err("the purpose code is 1 character long, the minimum is 2"));
        check(p, &"A".repeat(65), Err("the purpose code is 65 characters long, the limit is 64"));
        check(
            p,
            "-SZ",
            Err("character 1 of the purpose code is '-', a purpose code must start with a letter or digit"),
        );
        check(p, "SZ/HCB", Err("character 3 of the purpose code is '/', expected a letter, a digit, '.', '_' or '-'"));
    }

    #[test]
    fn trace_table() {
        let p = TraceId::parse;
        check(p, "a", Ok("a"));
        check(p, "req:2024-01-01.AbC_9", Ok("req:2024-01-01.AbC_9"));
        check(p, "", Err("the trace ID is empty"));
        check(p, &"a".repeat(65), Err("the trace ID is 65 characters long, the limit is 64"));
        check(p, "req 1", Err("character 4 of the trace ID is ' ', expected a letter, a digit, '.', '_', ':' or '-'"));
    }

    #[test]
    fn serde_goes_through_parse() {
        let id: LicenceId = serde_json::from_str("\"sz-0001\"").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"SZ-0001\"");
        assert!(serde_json::from_str::<LicenceId>("\"SZ--0001\"").is_err());
        assert!(serde_json::from_str::<PurposeCode>("\"-x\"").is_err());
        assert!(serde_json::from_str::<TraceId>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,70}") {
            let _ = LicenceId::parse(&s);
            let _ = PurposeCode::parse(&s);
            let _ = TraceId::parse(&s);
        }

        #[test]
        fn valid_licence_numbers_parse(s in "[A-Za-z0-9]{1,10}(-[A-Za-z0-9]{1,10}){0,4}") {
            prop_assume!(s.len() >= 4);
            let id = LicenceId::parse(&s).expect("matches the rules");
            prop_assert_eq!(id.as_str(), s.to_ascii_uppercase());
            prop_assert_eq!(LicenceId::parse(id.as_str()), Ok(id.clone()));
        }
    }
}
