//! Schema references: `std.licence.business@1`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ident::{IdentError, IdentKind, LabelRules, Span, check_labels};

const IDENT: IdentKind = IdentKind::SchemaRef;

const NAME_RULES: LabelRules = LabelRules {
    ident: IDENT,
    min_labels: 2,
    max_labels: 8,
    max_len: SchemaRef::MAX_NAME_LEN,
    underscore: true,
    example: "std.licence.business",
};

/// A reference to one version of a standard schema, `<name>@<version>`, e.g.
/// `std.licence.business@1`.
///
/// The name is 2 to 8 labels separated by `.`, each a lowercase letter followed by
/// lowercase letters, digits, `_` and `-` (not at the end), at most 64 characters; the
/// version is a decimal number from 1, without leading zeros. Ordered by name, then by
/// version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchemaRef {
    name: String,
    version: u32,
}

impl SchemaRef {
    /// The most characters a schema name may have.
    pub const MAX_NAME_LEN: usize = 64;

    /// Parses `<name>@<version>`.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        if s.is_empty() {
            return Err(IdentError::Empty { ident: IDENT });
        }
        let Some((name, version)) = s.rsplit_once('@') else {
            return Err(IdentError::malformed(IDENT, "must look like <name>@<version>, e.g. std.licence.business@1"));
        };
        check_name(name)?;
        let at = name.chars().count() + 1;
        let version = parse_version(version, at)?;
        Ok(Self { name: name.to_owned(), version })
    }

    /// The reference to version `version` (from 1) of the schema `name`.
    pub fn new(name: &str, version: u32) -> Result<Self, IdentError> {
        check_name(name)?;
        if version == 0 {
            let at = name.chars().count() + 1;
            return Err(IdentError::bad_part(IDENT, Span::at(at + 1), "0", "versions start at 1"));
        }
        Ok(Self { name: name.to_owned(), version })
    }

    /// The schema name, e.g. `std.licence.business`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, from 1.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The reference to the next version of the same schema, or `None` at `u32::MAX`.
    pub fn next(&self) -> Option<Self> {
        Some(Self { name: self.name.clone(), version: self.version.checked_add(1)? })
    }
}

fn check_name(name: &str) -> Result<(), IdentError> {
    if name.is_empty() {
        return Err(IdentError::malformed(IDENT, "has no name before '@' (e.g. std.licence.business@1)"));
    }
    let count = name.chars().count();
    if count > SchemaRef::MAX_NAME_LEN {
        return Err(IdentError::malformed(
            IDENT,
            format!("name is {count} characters long, the limit is {}", SchemaRef::MAX_NAME_LEN),
        ));
    }
    check_labels(name, &NAME_RULES)
}

/// Parses the version after the `@` at 1-based position `at`.
fn parse_version(text: &str, at: usize) -> Result<u32, IdentError> {
    if text.is_empty() {
        return Err(IdentError::malformed(IDENT, "has no version after '@' (e.g. std.licence.business@1)"));
    }
    for (i, c) in text.chars().enumerate() {
        let position = at + 1 + i;
        if !c.is_ascii_digit() {
            return Err(IdentError::bad_char(IDENT, position, c, "expected a digit (the version is a number from 1)"));
        }
        if i == 0 && c == '0' {
            let rule = if text.len() == 1 { "versions start at 1" } else { "a version has no leading zeros" };
            return Err(IdentError::bad_char(IDENT, position, c, rule));
        }
    }
    // Only ASCII digits from here.
    let span = Span::new(at + 1, at + text.len());
    text.parse::<u32>()
        .map_err(|_| IdentError::bad_part(IDENT, span, text, format!("the version is larger than {}", u32::MAX)))
}

impl fmt::Display for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl std::str::FromStr for SchemaRef {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SchemaRef {
    type Error = IdentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SchemaRef> for String {
    fn from(r: SchemaRef) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Result<(&str, u32), &str>) {
        let got = SchemaRef::parse(input);
        if let Ok(r) = &got {
            assert_eq!(r.to_string(), input, "display gives back the input");
        }
        assert_eq!(
            got.map(|r| (r.name().to_owned(), r.version())).map_err(|e| e.to_string()),
            expected.map(|(n, v)| (n.to_owned(), v)).map_err(str::to_owned),
            "input {input:?}"
        );
    }

    #[test]
    fn parse_table() {
        check("std.licence.business@1", Ok(("std.licence.business", 1)));
        check("std.record.legal_entity@12", Ok(("std.record.legal_entity", 12)));
        check("std.x@4294967295", Ok(("std.x", u32::MAX)));
        check("", Err("the schema reference is empty"));
        check(
            "std.licence.business",
            Err("the schema reference must look like <name>@<version>, e.g. std.licence.business@1"),
        );
        check("@1", Err("the schema reference has no name before '@' (e.g. std.licence.business@1)"));
        check("std.licence@", Err("the schema reference has no version after '@' (e.g. std.licence.business@1)"));
        check("std.licence@0", Err("character 13 of the schema reference is '0', versions start at 1"));
        check("std.licence@01", Err("character 13 of the schema reference is '0', a version has no leading zeros"));
        check(
            "std.licence@v1",
            Err("character 13 of the schema reference is 'v', expected a digit (the version is a number from 1)"),
        );
        check(
            "std.licence@4294967296",
            Err("characters 13-22 of the schema reference are '4294967296': the version is larger than 4294967295"),
        );
        check(
            "std@1",
            Err(
                "the schema reference has 1 label, it needs 2 to 8 labels separated by '.' (e.g. std.licence.business)",
            ),
        );
        check(
            "std.Licence@1",
            Err("character 5 of the schema reference is 'L', capital letters are not allowed, use lowercase"),
        );
        check("std.licence_@1", Err("character 12 of the schema reference is '_', a label cannot end with '-' or '_'"));
        check(
            "std.a@b@1",
            Err("character 6 of the schema reference is '@', expected a lowercase letter, a digit, '-', '_' or '.'"),
        );
    }

    #[test]
    fn next_and_serde() {
        let r = SchemaRef::new("std.licence.business", 1).expect("valid");
        assert_eq!(r.next().map(|n| n.to_string()), Some("std.licence.business@2".to_owned()));
        assert_eq!(SchemaRef::new("std.x", u32::MAX).expect("valid").next(), None);
        assert!(SchemaRef::new("std.x", 0).is_err());
        assert_eq!(serde_json::to_string(&r).expect("serialize"), "\"std.licence.business@1\"");
        assert!(serde_json::from_str::<SchemaRef>("\"std@1\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            if let Ok(r) = SchemaRef::parse(&s) {
                prop_assert_eq!(r.to_string(), s);
            }
        }
    }
}
