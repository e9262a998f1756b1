//! Dotted names: department IDs and dataset IDs (and, through [`check_labels`], schema
//! names and field names elsewhere in the crate).

use serde::{Deserialize, Serialize};

use super::{IdentError, IdentKind, string_ident};

/// The rules of a dotted lowercase name such as `gov.sz.amr`.
pub(crate) struct LabelRules {
    /// The identifier named in errors.
    pub ident: IdentKind,
    /// The fewest labels allowed.
    pub min_labels: usize,
    /// The most labels allowed.
    pub max_labels: usize,
    /// The most characters allowed in the whole name.
    pub max_len: usize,
    /// Whether `_` is allowed inside a label (as `-` always is).
    pub underscore: bool,
    /// An example of a valid name, shown in errors.
    pub example: &'static str,
}

const LABEL_START: &str = "expected a lowercase letter (each label starts with one)";
const CAPITAL: &str = "capital letters are not allowed, use lowercase";
const EMPTY_LABEL: &str = "a label cannot be empty (no dot at the start or end, no two dots in a row)";
const BAD_END: &str = "a label cannot end with '-' or '_'";
const INSIDE: &str = "expected a lowercase letter, a digit, '-' or '.'";
const INSIDE_UNDERSCORE: &str = "expected a lowercase letter, a digit, '-', '_' or '.'";

/// Checks that `s` is `min_labels` to `max_labels` labels separated by `.`, each a
/// lowercase letter followed by lowercase letters, digits, `-` (and `_` if allowed), not
/// ending with `-` or `_`, in at most `max_len` characters.
pub(crate) fn check_labels(s: &str, rules: &LabelRules) -> Result<(), IdentError> {
    let ident = rules.ident;
    super::check_len(ident, s, 1, rules.max_len)?;
    let inside = if rules.underscore { INSIDE_UNDERSCORE } else { INSIDE };
    let mut labels = 1;
    let mut at_label_start = true;
    let mut prev = '.';
    let mut count = 0;
    for (i, c) in s.chars().enumerate() {
        let position = i + 1;
        count = position;
        let rule = match c {
            'a'..='z' => None,
            '.' if at_label_start => Some(EMPTY_LABEL),
            '.' if prev == '-' || prev == '_' => {
                return Err(IdentError::bad_char(ident, position - 1, prev, BAD_END));
            }
            '.' => None,
            'A'..='Z' => Some(CAPITAL),
            _ if at_label_start => Some(LABEL_START),
            '0'..='9' | '-' => None,
            '_' if rules.underscore => None,
            _ => Some(inside),
        };
        if let Some(rule) = rule {
            return Err(IdentError::bad_char(ident, position, c, rule));
        }
        if c == '.' {
            labels += 1;
            at_label_start = true;
        } else {
            at_label_start = false;
        }
        prev = c;
    }
    if at_label_start {
        return Err(IdentError::bad_char(ident, count, '.', EMPTY_LABEL));
    }
    if prev == '-' || prev == '_' {
        return Err(IdentError::bad_char(ident, count, prev, BAD_END));
    }
    if labels < rules.min_labels || labels > rules.max_labels {
        let plural = if labels == 1 { "" } else { "s" };
        return Err(IdentError::malformed(
            ident,
            format!(
                "has {labels} label{plural}, it needs {} to {} labels separated by '.' (e.g. {})",
                rules.min_labels, rules.max_labels, rules.example
            ),
        ));
    }
    Ok(())
}

const DEPT_RULES: LabelRules = LabelRules {
    ident: IdentKind::DeptId,
    min_labels: 2,
    max_labels: 8,
    max_len: DeptId::MAX_LEN,
    underscore: false,
    example: "gov.sz.amr",
};

/// A department ID, e.g. `gov.sz.amr`: 2 to 8 labels separated by `.`, each a lowercase
/// letter followed by lowercase letters, digits and `-` (not at the end), at most 64
/// characters in all. It is also the department's identity in its mTLS certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeptId(String);

string_ident!(DeptId);

impl DeptId {
    /// The most characters a department ID may have.
    pub const MAX_LEN: usize = 64;

    /// Parses a department ID; see the type documentation for the rules.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        check_labels(s, &DEPT_RULES)?;
        Ok(Self(s.to_owned()))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, left to right (`gov`, `sz`, `amr`).
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

/// A dataset ID, `<provider department>/<name>`, e.g. `gov.sz.psb/population`; the name
/// is a lowercase letter followed by up to 63 lowercase letters, digits, `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetId {
    /// The whole text (first field: ordering is by text).
    text: String,
    /// The part before `/`.
    provider: DeptId,
    /// Byte offset of the name in `text`.
    name_start: usize,
}

string_ident!(DatasetId);

impl DatasetId {
    /// The most characters the name part may have.
    pub const MAX_NAME_LEN: usize = 64;

    /// Parses a dataset ID. Errors in the department part are reported as department ID
    /// errors, whose character positions are also positions in the dataset ID.
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        let ident = IdentKind::DatasetId;
        if s.is_empty() {
            return Err(IdentError::Empty { ident });
        }
        let Some((dept, name)) = s.split_once('/') else {
            return Err(IdentError::malformed(ident, "must look like <department>/<name>, e.g. gov.sz.psb/population"));
        };
        let provider = DeptId::parse(dept)?;
        check_name(name, dept.chars().count() + 1)?;
        Ok(Self { text: s.to_owned(), provider, name_start: dept.len() + 1 })
    }

    /// The dataset `name` of department `provider`.
    pub fn new(provider: &DeptId, name: &str) -> Result<Self, IdentError> {
        check_name(name, provider.as_str().len() + 1)?;
        Ok(Self {
            text: format!("{provider}/{name}"),
            provider: provider.clone(),
            name_start: provider.as_str().len() + 1,
        })
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The department that provides the dataset (the part before `/`).
    pub fn provider(&self) -> &DeptId {
        &self.provider
    }

    /// The dataset's name within its provider (the part after `/`).
    pub fn name(&self) -> &str {
        &self.text[self.name_start..]
    }
}

/// Checks the name part of a dataset ID; `slash` is the 1-based position of the `/`.
fn check_name(name: &str, slash: usize) -> Result<(), IdentError> {
    let ident = IdentKind::DatasetId;
    if name.is_empty() {
        return Err(IdentError::malformed(ident, "has no name after '/' (e.g. gov.sz.psb/population)"));
    }
    let count = name.chars().count();
    if count > DatasetId::MAX_NAME_LEN {
        return Err(IdentError::malformed(
            ident,
            format!("name is {count} characters long, the limit is {}", DatasetId::MAX_NAME_LEN),
        ));
    }
    for (i, c) in name.chars().enumerate() {
        let position = slash + 1 + i;
        let rule = match c {
            'a'..='z' => continue,
            'A'..='Z' => CAPITAL,
            '/' => "only one '/' is allowed",
            _ if i == 0 => "expected a lowercase letter (a dataset name starts with one)",
            '0'..='9' | '_' | '-' => continue,
            _ => "expected a lowercase letter, a digit, '_' or '-'",
        };
        return Err(IdentError::bad_char(ident, position, c, rule));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_dept(input: &str, expected: Result<(), &str>) {
        let got = DeptId::parse(input).map(|id| {
            assert_eq!(id.as_str(), input);
        });
        assert_eq!(got.map_err(|e| e.to_string()), expected.map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn dept_table() {
        check_dept("gov.sz.amr", Ok(()));
        check_dept("gov.sz", Ok(()));
        check_dept("a.b.c.d.e.f.g.h", Ok(()));
        check_dept("gov.sz.hr-ss2", Ok(()));
        check_dept("", Err("the department ID is empty"));
        check_dept(
            "gov",
            Err("the department ID has 1 label, it needs 2 to 8 labels separated by '.' (e.g. gov.sz.amr)"),
        );
        check_dept(
            "a.b.c.d.e.f.g.h.i",
            Err("the department ID has 9 labels, it needs 2 to 8 labels separated by '.' (e.g. gov.sz.amr)"),
        );
        check_dept(
            "gov.sz.Amr",
            Err("character 8 of the department ID is 'A', capital letters are not allowed, use lowercase"),
        );
        check_dept(
            "gov.sz.2amr",
            Err("character 8 of the department ID is '2', expected a lowercase letter (each label starts with one)"),
        );
        check_dept("gov.sz-.amr", Err("character 7 of the department ID is '-', a label cannot end with '-' or '_'"));
        check_dept("gov.sz.amr-", Err("character 11 of the department ID is '-', a label cannot end with '-' or '_'"));
        check_dept(
            "gov..amr",
            Err(
                "character 5 of the department ID is '.', a label cannot be empty (no dot at the start or end, no two dots in a row)",
            ),
        );
        check_dept(
            ".gov.amr",
            Err(
                "character 1 of the department ID is '.', a label cannot be empty (no dot at the start or end, no two dots in a row)",
            ),
        );
        check_dept(
            "gov.amr.",
            Err(
                "character 8 of the department ID is '.', a label cannot be empty (no dot at the start or end, no two dots in a row)",
            ),
        );
        check_dept(
            "gov.s_z",
            Err("character 6 of the department ID is '_', expected a lowercase letter, a digit, '-' or '.'"),
        );
        check_dept(
            "gov.深圳",
            Err("character 5 of the department ID is '深', expected a lowercase letter (each label starts with one)"),
        );
        check_dept(&format!("gov.{}", "a".repeat(61)), Err("the department ID is 65 characters long, the limit is 64"));
    }

    fn check_dataset(input: &str, expected: Result<(&str, &str), &str>) {
        let got = DatasetId::parse(input)
            .map(|id| (id.provider().to_string(), id.name().to_owned()))
            .map_err(|e| e.to_string());
        let expected = expected.map(|(p, n)| (p.to_owned(), n.to_owned())).map_err(str::to_owned);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn dataset_table() {
        check_dataset("gov.sz.psb/population", Ok(("gov.sz.psb", "population")));
        check_dataset("gov.sz.amr/business_licence-v2", Ok(("gov.sz.amr", "business_licence-v2")));
        check_dataset("", Err("the dataset ID is empty"));
        check_dataset(
            "gov.sz.psb",
            Err("the dataset ID must look like <department>/<name>, e.g. gov.sz.psb/population"),
        );
        check_dataset("/population", Err("the department ID is empty"));
        check_dataset(
            "gov.SZ.psb/population",
            Err("character 5 of the department ID is 'S', capital letters are not allowed, use lowercase"),
        );
        check_dataset("gov.sz.psb/", Err("the dataset ID has no name after '/' (e.g. gov.sz.psb/population)"));
        check_dataset(
            "gov.sz.psb/1population",
            Err("character 12 of the dataset ID is '1', expected a lowercase letter (a dataset name starts with one)"),
        );
        check_dataset("gov.sz.psb/pop/ulation", Err("character 15 of the dataset ID is '/', only one '/' is allowed"));
        check_dataset(
            "gov.sz.psb/pop.ulation",
            Err("character 15 of the dataset ID is '.', expected a lowercase letter, a digit, '_' or '-'"),
        );
        check_dataset(
            &format!("gov.sz.psb/{}", "a".repeat(65)),
            Err("the dataset ID name is 65 characters long, the limit is 64"),
        );
    }

    #[test]
    fn dataset_new_and_serde() {
        let dept = DeptId::parse("gov.sz.psb").expect("valid");
        let id = DatasetId::new(&dept, "population").expect("valid");
        assert_eq!(id, DatasetId::parse("gov.sz.psb/population").expect("valid"));
        assert_eq!(serde_json::to_string(&id).expect("serialize"), "\"gov.sz.psb/population\"");
        let back: DatasetId = serde_json::from_str("\"gov.sz.psb/population\"").expect("valid");
        assert_eq!(back, id);
        assert!(DatasetId::new(&dept, "Pop").is_err());
        assert_eq!(dept.labels().collect::<Vec<_>>(), ["gov", "sz", "psb"]);
    }

    proptest! {
        #[test]
        fn valid_names_parse_back(s in "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z]([a-z0-9-]{0,5}[a-z0-9])?){1,6}", n in "[a-z][a-z0-9_-]{0,40}") {
            let dept = DeptId::parse(&s).expect("matches the rules");
            prop_assert_eq!(dept.to_string(), s.clone());
            let full = format!("{s}/{n}");
            let id = DatasetId::parse(&full).expect("matches the rules");
            prop_assert_eq!(id.provider(), &dept);
            prop_assert_eq!(id.name(), n.as_str());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = DeptId::parse(&s);
            let _ = DatasetId::parse(&s);
        }
    }
}
