//! Names the build profile in the binary, so that every report says what it measured.

fn main() {
    // OUT_DIR is <target>/<profile>/build/exchange-bench-<hash>/out.
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    let profile = std::path::Path::new(&out)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".into());
    let opt = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "?".into());
    let assertions = if std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_some() { "on" } else { "off" };
    println!("cargo:rustc-env=EXCHANGE_BENCH_PROFILE={profile} (opt-level {opt}, debug assertions {assertions})");
    println!("cargo:rerun-if-changed=build.rs");
}
