//! Tests of schema checking, record validation and version compatibility.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::testing::{BUSINESS_LICENCE_JSON, any_schema, business_licence, field};
use super::*;
use crate::ident::{CreditCode, SubjectId};

fn raw(pairs: &[(&str, &str)]) -> RawRecord {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A valid business licence record as received.
fn good_licence() -> RawRecord {
    raw(&[
        ("licence_no", "SZ-2024-000123"),
        ("credit_code", "91440300708461136t"),
        ("name", "深圳市某某科技有限公司"),
        ("legal_rep_id", "11010519491231002x"),
        ("reg_capital", "+01000000.50"),
        ("employees", "0120"),
        ("established", "2024-02-29"),
        ("revoked", "false"),
        ("status", "active"),
    ])
}

#[test]
fn fixture_round_trips_through_json() {
    let schema = business_licence();
    let json = serde_json::to_string(&schema).expect("serialize");
    assert_eq!(Schema::from_json(&json), Ok(schema.clone()));
    assert_eq!(schema.reference.to_string(), "std.licence.business@1");
    assert!(serde_json::to_string(&schema).expect("serialize").contains("\"holder_field\":\"credit_code\""));
    let _ = BUSINESS_LICENCE_JSON;
}

#[test]
fn accessors() {
    let schema = business_licence();
    assert_eq!(schema.field("reg_capital").map(|f| &f.field_type), Some(&FieldType::Decimal { scale: 2 }));
    assert!(schema.field("nope").is_none());
    assert_eq!(schema.personal_fields().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["legal_rep_id"]);
    assert!(schema.has_personal_data());
    let mut public = schema.clone();
    public.fields.retain(|f| !f.classification.is_personal());
    assert!(!public.has_personal_data());
}

/// Checks `Schema::from_json` on the fixture with one edit applied.
fn check_schema(edit: impl FnOnce(&mut serde_json::Value), expected: Result<(), &str>) {
    let mut doc: serde_json::Value = serde_json::from_str(BUSINESS_LICENCE_JSON).expect("fixture");
    edit(&mut doc);
    let got = Schema::from_json(&doc.to_string()).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(got, expected.map_err(str::to_owned), "{doc}");
}

#[test]
fn check_table() {
    use serde_json::json;
    check_schema(|_| {}, Ok(()));
    check_schema(|d| d["holder_field"] = json!(null), Ok(()));
    check_schema(
        |d| d["fields"][2]["name"] = json!("Name"),
        Err(
            "field name \"Name\" is not valid: character 1 of the field name is 'N', capital letters are not allowed, use lowercase",
        ),
    );
    check_schema(|d| d["fields"][2]["name"] = json!("licence_no"), Err("field \"licence_no\" is defined twice"));
    check_schema(
        |d| d["key_field"] = json!("licence_number"),
        Err("the key field \"licence_number\" is not one of the schema's fields"),
    );
    check_schema(
        |d| d["fields"][0]["required"] = json!(false),
        Err("the key field \"licence_no\" must be required: every record needs its key"),
    );
    check_schema(
        |d| d["holder_field"] = json!("holder"),
        Err("the holder field \"holder\" is not one of the schema's fields"),
    );
    check_schema(
        |d| d["fields"][1]["required"] = json!(false),
        Err("the holder field \"credit_code\" must be required: every licence has a holder"),
    );
    check_schema(
        |d| d["holder_field"] = json!("name"),
        Err("the holder field \"name\" is of type string, it must be resident_id or credit_code"),
    );
    check_schema(
        |d| d["fields"][2]["type"]["max_len"] = json!(0),
        Err("field \"name\": max_len 0 must be from 1 to 65536"),
    );
    check_schema(
        |d| d["fields"][2]["type"]["max_len"] = json!(65_537),
        Err("field \"name\": max_len 65537 must be from 1 to 65536"),
    );
    check_schema(
        |d| d["fields"][5]["type"] = json!({"type": "integer", "min": 5, "max": 4}),
        Err("field \"employees\": min 5 is greater than max 4"),
    );
    check_schema(
        |d| d["fields"][8]["type"]["values"] = json!([]),
        Err("field \"status\": an enum needs at least one value"),
    );
    check_schema(
        |d| d["fields"][8]["type"]["values"] = json!(["a", ""]),
        Err("field \"status\": an enum value cannot be empty"),
    );
    check_schema(
        |d| d["fields"][8]["type"]["values"] = json!(["a", "b", "a"]),
        Err("field \"status\": enum value \"a\" is listed twice"),
    );
    check_schema(
        |d| d["fields"][0]["colour"] = json!("red"),
        Err(
            "the schema is not valid JSON or has the wrong shape: unknown field `colour`, expected one of `name`, `type`, `required`, `classification`, `label_zh`, `label_en` at line 1 column 46",
        ),
    );
    check_schema(
        |d| d["reference"] = json!("std.licence.business@0"),
        Err(
            "the schema is not valid JSON or has the wrong shape: character 22 of the schema reference is '0', versions start at 1 at line 1 column 1501",
        ),
    );
}

/// Checks `validate` of the fixture schema on the good record with some fields replaced
/// (an empty replacement value is kept as an empty string; `None` removes the field).
fn check_record(changes: &[(&str, Option<&str>)], expected: Result<&[(&str, &str)], &str>) {
    let mut record = good_licence();
    for (name, value) in changes {
        match value {
            Some(v) => record.insert((*name).to_owned(), (*v).to_owned()),
            None => record.remove(*name),
        };
    }
    let got = business_licence().validate(&record);
    match expected {
        Ok(pairs) => {
            let record = got.unwrap_or_else(|e| panic!("{changes:?}: {e}"));
            let expected_map = raw(pairs);
            assert_eq!(record.as_map(), &expected_map, "{changes:?}");
        }
        Err(message) => {
            assert_eq!(got.map_err(|e| e.to_string()), Err(message.to_owned()), "{changes:?}");
        }
    }
}

#[test]
fn validate_table() {
    let canonical: &[(&str, &str)] = &[
        ("licence_no", "SZ-2024-000123"),
        ("credit_code", "91440300708461136T"),
        ("name", "深圳市某某科技有限公司"),
        ("legal_rep_id", "11010519491231002X"),
        ("reg_capital", "1000000.5"),
        ("employees", "120"),
        ("established", "2024-02-29"),
        ("revoked", "false"),
        ("status", "active"),
    ];
    check_record(&[], Ok(canonical));
    // Optional fields may be absent or empty; both leave no entry.
    check_record(
        &[("legal_rep_id", None), ("reg_capital", Some("")), ("employees", None), ("revoked", Some(""))],
        Ok(&[
            ("licence_no", "SZ-2024-000123"),
            ("credit_code", "91440300708461136T"),
            ("name", "深圳市某某科技有限公司"),
            ("established", "2024-02-29"),
            ("status", "active"),
        ]),
    );
    check_record(&[("colour", Some("red"))], Err("field \"colour\" is not in the schema"));
    check_record(&[("colour", Some(""))], Err("field \"colour\" is not in the schema"));
    check_record(&[("name", None)], Err("field \"name\" is required but missing"));
    check_record(&[("name", Some(""))], Err("field \"name\" is required but missing"));
    check_record(&[("name", Some(&"名".repeat(101)))], Err("field \"name\" is 101 characters long, the limit is 100"));
    check_record(
        &[("employees", Some("12.0"))],
        Err("field \"employees\" is not an integer: expected decimal digits with an optional sign"),
    );
    check_record(&[("employees", Some("-1"))], Err("field \"employees\" is out of range: it must be at least 0"));
    check_record(
        &[("reg_capital", Some("1,000"))],
        Err(
            "field \"reg_capital\" is not a decimal number: expected digits with an optional sign and decimal point, e.g. -12.50",
        ),
    );
    check_record(
        &[("reg_capital", Some("0.125"))],
        Err("field \"reg_capital\" has 3 digits after the decimal point, the limit is 2"),
    );
    check_record(
        &[("established", Some("2023-02-29"))],
        Err(
            "field \"established\" is not a date: characters 9-10 of the date are '29': day 29 does not exist in February 2023 (28 days, 2023 is not a leap year)",
        ),
    );
    check_record(&[("revoked", Some("no"))], Err("field \"revoked\" must be \"true\" or \"false\""));
    check_record(
        &[("status", Some("closed"))],
        Err("field \"status\" must be one of \"active\", \"cancelled\", \"revoked\""),
    );
    check_record(
        &[("legal_rep_id", Some("110105194912310021"))],
        Err(
            "field \"legal_rep_id\" is not a valid resident ID: character 18 of the resident ID is '1', the check character should be 'X'",
        ),
    );
    check_record(
        &[("credit_code", Some("91440300708461136O"))],
        Err(
            "field \"credit_code\" is not a valid credit code: character 18 of the credit code is 'O', which is not in the credit-code alphabet (digits and capital letters; I, O, Z, S and V are never used)",
        ),
    );
}

#[test]
fn record_accessors_and_subject() {
    let schema = business_licence();
    let record = schema.validate(&good_licence()).expect("valid");
    assert_eq!(record.get("status"), Some("active"));
    assert_eq!(record.get("nope"), None);
    assert_eq!(record.len(), 9);
    assert_eq!(record.iter().next(), Some(("credit_code", "91440300708461136T")));
    let wanted: BTreeSet<String> = ["name", "status", "not_a_field"].iter().map(|s| (*s).to_owned()).collect();
    let projected = record.project(&wanted);
    assert_eq!(projected.iter().collect::<Vec<_>>(), [("name", "深圳市某某科技有限公司"), ("status", "active")]);
    assert_eq!(
        serde_json::to_string(&projected).expect("serialize"),
        r#"{"name":"深圳市某某科技有限公司","status":"active"}"#
    );
    assert_eq!(
        schema.subject(&record),
        Some(SubjectId::Organisation(CreditCode::parse("91440300708461136T").expect("valid")))
    );
    // A base record keyed by resident ID is about that person.
    let mut population = schema.clone();
    population.holder_field = None;
    population.key_field = "legal_rep_id".into();
    if let Some(f) = population.fields.iter_mut().find(|f| f.name == "legal_rep_id") {
        f.required = true;
    }
    let record = population.validate(&good_licence()).expect("valid");
    assert_eq!(population.subject(&record).map(|s| s.to_string()), Some("11010519491231002X".to_owned()));
    assert_eq!(record.clone().into_inner().len(), 9);
}

/// Checks `check_successor` from the fixture to the fixture bumped to version 2 with one
/// edit applied.
fn check_successor(edit: impl FnOnce(&mut Schema), expected: &[&str]) {
    let previous = business_licence();
    let mut next = previous.clone();
    next.reference = previous.reference.next().expect("version 2");
    edit(&mut next);
    let got: Vec<String> = match previous.check_successor(&next) {
        Ok(()) => Vec::new(),
        Err(found) => found.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(got, expected, "{next:?}");
}

fn field_mut<'a>(schema: &'a mut Schema, name: &str) -> &'a mut FieldSpec {
    schema.fields.iter_mut().find(|f| f.name == name).unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn successor_table() {
    use Classification::*;
    check_successor(|_| {}, &[]);
    // Allowed changes.
    check_successor(|s| s.fields.push(field("website", FieldType::String { max_len: 200 }, false, Public)), &[]);
    check_successor(|s| field_mut(s, "name").field_type = FieldType::String { max_len: 200 }, &[]);
    check_successor(|s| field_mut(s, "employees").field_type = FieldType::Integer { min: None, max: None }, &[]);
    check_successor(|s| field_mut(s, "reg_capital").field_type = FieldType::Decimal { scale: 4 }, &[]);
    check_successor(
        |s| {
            field_mut(s, "status").field_type = FieldType::Enum {
                values: vec!["active".into(), "cancelled".into(), "revoked".into(), "suspended".into()],
            }
        },
        &[],
    );
    check_successor(|s| field_mut(s, "name").required = false, &[]);
    check_successor(|s| field_mut(s, "employees").classification = Sensitive, &[]);
    check_successor(|s| s.title_en = "Business licence (2025)".into(), &[]);
    check_successor(|s| s.fields.reverse(), &[]);

    // Refused changes.
    check_successor(
        |s| s.fields.push(field("website", FieldType::String { max_len: 200 }, true, Public)),
        &["field \"website\" is new and required: add it as optional"],
    );
    check_successor(
        |s| s.fields.retain(|f| f.name != "revoked"),
        &["field \"revoked\" was removed: fields cannot be removed, only added"],
    );
    check_successor(
        |s| field_mut(s, "employees").field_type = FieldType::String { max_len: 20 },
        &["field \"employees\" changed type from integer to string"],
    );
    check_successor(
        |s| field_mut(s, "name").field_type = FieldType::String { max_len: 50 },
        &["field \"name\" max_len narrowed from 100 to 50: values valid in the previous version would be refused"],
    );
    check_successor(
        |s| field_mut(s, "employees").field_type = FieldType::Integer { min: Some(1), max: Some(100_000) },
        &[
            "field \"employees\" minimum raised from 0 to 1: values valid in the previous version would be refused",
            "field \"employees\" gained a maximum of 100000: values valid in the previous version would be refused",
        ],
    );
    check_successor(
        |s| field_mut(s, "reg_capital").field_type = FieldType::Decimal { scale: 0 },
        &["field \"reg_capital\" scale narrowed from 2 to 0: values valid in the previous version would be refused"],
    );
    check_successor(
        |s| field_mut(s, "status").field_type = FieldType::Enum { values: vec!["active".into()] },
        &[
            "field \"status\" lost enum values \"cancelled\", \"revoked\": values valid in the previous version would be refused",
        ],
    );
    check_successor(
        |s| field_mut(s, "revoked").required = true,
        &["field \"revoked\" became required: records without it would no longer be valid"],
    );
    check_successor(
        |s| field_mut(s, "legal_rep_id").classification = Public,
        &["field \"legal_rep_id\" lowered from personal to public"],
    );
    check_successor(
        |s| s.key_field = "credit_code".into(),
        &[
            "the key field changed from \"licence_no\" to \"credit_code\": records would no longer be found by their key",
        ],
    );
    check_successor(
        |s| s.holder_field = None,
        &["the holder field changed from \"credit_code\" to none: licences would no longer be found by holder"],
    );
    check_successor(
        |s| s.reference = SchemaRef::parse("std.licence.business@3").expect("valid"),
        &["version 3 does not follow version 1: the next version must be 2"],
    );
    check_successor(
        |s| s.reference = SchemaRef::parse("std.licence.company@2").expect("valid"),
        &[
            "the schema name changed from \"std.licence.business\" to \"std.licence.company\": a new name is a new schema, not a new version",
        ],
    );
    check_successor(
        |s| field_mut(s, "status").field_type = FieldType::Enum { values: vec![] },
        &[
            "the new version is not a valid schema: field \"status\": an enum needs at least one value",
            "field \"status\" lost enum values \"active\", \"cancelled\", \"revoked\": values valid in the previous version would be refused",
        ],
    );
}

proptest! {
    /// Validation never panics, whatever the field names and values.
    #[test]
    fn validate_never_panics(
        schema in any_schema(),
        extra in proptest::collection::btree_map("\\PC{0,12}", "\\PC{0,40}", 0..4),
        values in proptest::collection::vec("\\PC{0,40}|[0-9+.-]{0,24}|[0-9X]{18}", 8),
    ) {
        let mut record: RawRecord = schema.fields.iter().map(|f| f.name.clone()).zip(values).collect();
        let _ = schema.validate(&record);
        record.extend(extra);
        let _ = schema.validate(&record);
    }

    /// The canonical values of a validated record validate again to themselves.
    #[test]
    fn canonical_values_are_stable(
        scale in 0u8..6,
        value in "[+-]?[0-9]{1,20}(\\.[0-9]{1,8})?",
    ) {
        let schema = Schema {
            reference: SchemaRef::parse("std.test@1").expect("valid"),
            title_zh: String::new(),
            title_en: String::new(),
            key_field: "n".into(),
            holder_field: None,
            fields: vec![
                field("n", FieldType::Decimal { scale }, true, Classification::Public),
                field("i", FieldType::Integer { min: None, max: None }, false, Classification::Public),
            ],
        };
        let integer = value.split('.').next().unwrap_or_default().to_owned();
        let raw_record = raw(&[("n", &value), ("i", &integer)]);
        if let Ok(record) = schema.validate(&raw_record) {
            let again = schema.validate(record.as_map()).expect("canonical values are valid");
            prop_assert_eq!(again, record);
        }
    }

    /// A schema is always compatible with itself bumped by one version.
    #[test]
    fn bumped_schema_is_a_compatible_successor(schema in any_schema()) {
        prop_assert_eq!(schema.check(), Ok(()));
        let mut next = schema.clone();
        next.reference = schema.reference.next().expect("version < 1000");
        prop_assert_eq!(schema.check_successor(&next), Ok(()));
        // and never with itself unbumped.
        prop_assert!(schema.check_successor(&schema).is_err());
    }

    /// Schemas survive a JSON round trip.
    #[test]
    fn schema_json_round_trip(schema in any_schema()) {
        let json = serde_json::to_string(&schema).expect("serialize");
        prop_assert_eq!(Schema::from_json(&json), Ok(schema));
    }

    /// Loading never panics on arbitrary text.
    #[test]
    fn from_json_never_panics(s in "\\PC{0,200}") {
        let _ = Schema::from_json(&s);
    }
}

#[test]
fn claims_compare_in_canonical_form() {
    let schema = business_licence();
    let held = schema.validate(&good_licence()).expect("valid record");
    let code = held.get("credit_code");
    // The lowercase claim canonicalises to the held uppercase code.
    assert_eq!(schema.match_claim("credit_code", "91440300708461136t", code), ClaimMatch::Match);
    assert_eq!(schema.match_claim("reg_capital", "1000000.5", held.get("reg_capital")), ClaimMatch::Match);
    assert_eq!(schema.match_claim("employees", "121", held.get("employees")), ClaimMatch::NoMatch);
    // A value that breaks the field's type, or an empty one, never matches.
    assert_eq!(schema.match_claim("employees", "many", held.get("employees")), ClaimMatch::NoMatch);
    assert_eq!(schema.match_claim("name", "", held.get("name")), ClaimMatch::NoMatch);
    assert_eq!(schema.match_claim("name", "x", None), ClaimMatch::Absent);
    assert_eq!(schema.canonical_claim("no_such_field", "x"), None);
    assert_eq!(schema.canonical_claim("employees", "+007").as_deref(), Some("7"));
}
