//! Test fixtures and proptest strategies for schemas (compiled for tests only).

use proptest::prelude::*;

use super::{Classification, FieldSpec, FieldType, Schema, SchemaRef};

/// A field spec for tests.
pub(crate) fn field(name: &str, field_type: FieldType, required: bool, classification: Classification) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        field_type,
        required,
        classification,
        label_zh: format!("{name} 标签"),
        label_en: name.replace('_', " "),
    }
}

/// The business licence schema, version 1, as a JSON document.
pub(crate) const BUSINESS_LICENCE_JSON: &str = r#"{
  "reference": "std.licence.business@1",
  "title_zh": "营业执照",
  "title_en": "Business licence",
  "key_field": "licence_no",
  "holder_field": "credit_code",
  "fields": [
    {"name": "licence_no", "type": {"type": "string", "max_len": 64}, "required": true, "classification": "public", "label_zh": "证照编号", "label_en": "Licence number"},
    {"name": "credit_code", "type": {"type": "credit_code"}, "required": true, "classification": "public", "label_zh": "统一社会信用代码", "label_en": "Unified social credit code"},
    {"name": "name", "type": {"type": "string", "max_len": 100}, "required": true, "classification": "public", "label_zh": "名称", "label_en": "Name"},
    {"name": "legal_rep_id", "type": {"type": "resident_id"}, "required": false, "classification": "personal", "label_zh": "法定代表人身份证号", "label_en": "Legal representative ID"},
    {"name": "reg_capital", "type": {"type": "decimal", "scale": 2}, "required": false, "classification": "public", "label_zh": "注册资本", "label_en": "Registered capital"},
    {"name": "employees", "type": {"type": "integer", "min": 0}, "required": false, "classification": "internal", "label_zh": "从业人数", "label_en": "Employees"},
    {"name": "established", "type": {"type": "date"}, "required": true, "classification": "public", "label_zh": "成立日期", "label_en": "Date established"},
    {"name": "revoked", "type": {"type": "boolean"}, "required": false, "classification": "public", "label_zh": "已吊销", "label_en": "Revoked"},
    {"name": "status", "type": {"type": "enum", "values": ["active", "cancelled", "revoked"]}, "required": true, "classification": "internal", "label_zh": "登记状态", "label_en": "Status"}
  ]
}"#;

/// The business licence schema, version 1.
pub(crate) fn business_licence() -> Schema {
    Schema::from_json(BUSINESS_LICENCE_JSON).expect("fixture is a valid schema")
}

fn field_type() -> impl Strategy<Value = FieldType> {
    prop_oneof![
        (1u32..=65_536).prop_map(|max_len| FieldType::String { max_len }),
        (proptest::option::of(-1000i64..1000), proptest::option::of(0i64..1000)).prop_map(|(min, max)| {
            match (min, max) {
                (Some(a), Some(b)) if a > b => FieldType::Integer { min: Some(b), max: Some(a) },
                _ => FieldType::Integer { min, max },
            }
        }),
        (0u8..=6).prop_map(|scale| FieldType::Decimal { scale }),
        Just(FieldType::Date),
        Just(FieldType::Boolean),
        proptest::collection::btree_set("[a-z]{1,8}", 1..5)
            .prop_map(|values| FieldType::Enum { values: values.into_iter().collect() }),
        Just(FieldType::ResidentId),
        Just(FieldType::CreditCode),
    ]
}

fn classification() -> impl Strategy<Value = Classification> {
    prop_oneof![
        Just(Classification::Public),
        Just(Classification::Internal),
        Just(Classification::Personal),
        Just(Classification::Sensitive),
    ]
}

/// Any well-formed schema of 1 to 8 fields; the first field is the required key, and a
/// holder field is set when some field is a required subject ID.
pub(crate) fn any_schema() -> impl Strategy<Value = Schema> {
    (
        "[a-z]{1,6}(\\.[a-z][a-z0-9_]{0,6}[a-z0-9]){1,3}",
        1u32..1000,
        proptest::collection::btree_set("[a-z][a-z0-9_]{0,12}", 1..8),
        proptest::collection::vec((field_type(), any::<bool>(), classification()), 8),
        any::<bool>(),
    )
        .prop_map(|(name, version, names, specs, with_holder)| {
            let fields: Vec<FieldSpec> = names
                .into_iter()
                .zip(specs)
                .enumerate()
                .map(|(i, (name, (t, required, c)))| field(&name, t, required || i == 0, c))
                .collect();
            let key_field = fields[0].name.clone();
            let holder_field = fields
                .iter()
                .find(|f| with_holder && f.required && f.field_type.is_subject_id())
                .map(|f| f.name.clone());
            Schema {
                reference: SchemaRef::new(&name, version).expect("strategy gives valid names"),
                title_zh: "测试".into(),
                title_en: "Test".into(),
                key_field,
                holder_field,
                fields,
            }
        })
}
