#![no_main]
libfuzzer_sys::fuzz_target!(|s: &str| {
    let _ = exchange_core::ident::ResidentId::parse(s);
});
