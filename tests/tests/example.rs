//! The SDK's example program (`client-sdk/examples/rental_filing.rs`), the one a department
//! developer copies, run as it is against a real federation: it must approve a filing whose
//! parties hold valid records and certificates.

use std::process::Command;

use exchange_localnet::data::HCB;
use exchange_localnet::default_bin_dir;
use exchange_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rental_filing_example_approves_against_a_real_federation() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let tenant = fed
        .data
        .persons
        .iter()
        .find(|p| p["id_number"] != landlord["id_number"] && p["status"] == "normal")
        .expect("a tenant");
    let example = default_bin_dir().must("binaries").join("examples/rental_filing");
    assert!(example.exists(), "{} is built by cargo build --workspace --all-targets", example.display());
    let out = Command::new(example)
        .env("EXCHANGE_CATALOG", fed.net.catalog_endpoint())
        .env("EXCHANGE_CATALOG_ID", exchange_localnet::CATALOG_ID)
        .env("EXCHANGE_CATALOG_KEY", hex_key(fed.net.catalog_key().as_bytes()))
        .env("EXCHANGE_TLS_DIR", fed.net.dir().join("pki"))
        .env("HOUSING_DEPT", HCB)
        .env("PORTAL_DEPT", HCB)
        .env("TENANT_ID", &tenant["id_number"])
        .env("LANDLORD_ID", &landlord["id_number"])
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("approved with no manual step"), "{stdout}");
    assert_eq!(stdout.matches("signature verified").count(), 2, "{stdout}");
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
