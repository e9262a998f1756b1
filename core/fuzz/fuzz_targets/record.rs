#![no_main]
// Input: a schema document, a newline, then a record as a JSON object of strings.
libfuzzer_sys::fuzz_target!(|s: &str| {
    let Some((schema, record)) = s.split_once('\n') else { return };
    let (Ok(schema), Ok(record)) = (exchange_core::schema::Schema::from_json(schema), serde_json::from_str(record))
    else {
        return;
    };
    let _ = schema.validate(&record);
});
