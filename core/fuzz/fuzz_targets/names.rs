#![no_main]
use exchange_core::{ident::*, schema::SchemaRef};
libfuzzer_sys::fuzz_target!(|s: &str| {
    let _ = (DeptId::parse(s), DatasetId::parse(s), LicenceId::parse(s), PurposeCode::parse(s));
    let _ = (Reason::parse(s), TraceId::parse(s), Date::parse(s), SchemaRef::parse(s));
});
