//! The `exchange` command line, run as a binary.

// The same in-process catalog the SDK's own tests run against (one copy, in the SDK's tests).
#[path = "../../client-sdk/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Output;

use common::{CATALOG_ID, Federation, OPS};
use exchange_pki::TlsFiles;
use exchange_proto::v1::{Member, Role};

const BIN: &str = env!("CARGO_BIN_EXE_exchange");

fn run_sync(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("EXCHANGE_PROFILE")
        .env_remove("EXCHANGE_CATALOG")
        .output()
        .expect("run exchange")
}

async fn run(args: Vec<String>) -> Output {
    tokio::process::Command::new(BIN)
        .args(&args)
        .env_remove("EXCHANGE_PROFILE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run exchange")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_works_everywhere() {
    for args in [
        vec!["--help"],
        vec!["ca", "issue", "--help"],
        vec!["member", "register", "--help"],
        vec!["import", "--help"],
        vec!["query", "record", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["help", "grant"],
    ] {
        let out = run_sync(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_1() {
    let out = run_sync(&["member", "register", "--dept", "gov.sz.x"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = run_sync(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    // Missing connection settings are a local error, named.
    let out = run_sync(&["member", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--catalog"), "{}", text(&out.stderr));
}

#[test]
fn ca_init_and_issue_write_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_dir = dir.path().join("ca");
    let out = run_sync(&["ca", "init", "--dir", ca_dir.to_str().expect("path"), "--name", "Test CA"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(ca_dir.join("ca.crt").is_file() && ca_dir.join("ca.key").is_file());

    let node_dir = dir.path().join("psb");
    let out = run_sync(&[
        "--json",
        "ca",
        "issue",
        "--ca-dir",
        ca_dir.to_str().expect("path"),
        "--dept",
        "gov.sz.psb",
        "--kind",
        "both",
        "--loopback",
        "--out",
        node_dir.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["dept_id"], "gov.sz.psb");
    assert_eq!(json["fingerprint"].as_str().map(str::len), Some(64));
    let files = TlsFiles::in_dir(&node_dir, "gov.sz.psb");
    let loaded = files.load().expect("the issued files load as an identity");
    assert_eq!(loaded.dept_id(), "gov.sz.psb");
    assert!(loaded.is_server_cert() && loaded.is_client_cert());

    // A server certificate without any name is refused locally.
    let out = run_sync(&[
        "ca",
        "issue",
        "--ca-dir",
        ca_dir.to_str().expect("path"),
        "--dept",
        "gov.sz.amr",
        "--kind",
        "server",
        "--out",
        dir.path().join("amr").to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

fn conn(fed: &Federation, files: &TlsFiles) -> Vec<String> {
    vec![
        "--catalog".into(),
        fed.endpoint.clone(),
        "--catalog-key".into(),
        hex::encode(fed.catalog_key.as_bytes()),
        "--catalog-id".into(),
        CATALOG_ID.into(),
        "--ca".into(),
        files.ca_cert.display().to_string(),
        "--cert".into(),
        files.cert.display().to_string(),
        "--key".into(),
        files.key.display().to_string(),
    ]
}

fn with(mut base: Vec<String>, args: &[&str]) -> Vec<String> {
    base.extend(args.iter().map(|s| s.to_string()));
    base
}

fn write_profile(path: &Path, fed: &Federation, files: &TlsFiles) {
    let profile = format!(
        "catalog = \"{}\"\ncatalog_name = \"localhost\"\ncatalog_id = \"{CATALOG_ID}\"\ncatalog_key = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        fed.endpoint,
        hex::encode(fed.catalog_key.as_bytes()),
        files.ca_cert.display(),
        files.cert.display(),
        files.key.display()
    );
    std::fs::write(path, profile).expect("write profile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_or_exit_2_with_the_reason() {
    let fed = Federation::start().await;
    let ops_files = fed.write_identity(OPS);
    let ops = conn(&fed, &ops_files);

    // An operator registers a department, with its certificate's fingerprint.
    let hcb_fingerprint = hex::encode(fed.fingerprint("gov.sz.hcb"));
    let out = run(with(
        ops.clone(),
        &[
            "member",
            "register",
            "--dept",
            "gov.sz.hcb",
            "--name",
            "住房和建设局",
            "--role",
            "department",
            "--cert-fingerprint",
            hcb_fingerprint.as_str(),
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("gov.sz.hcb"));

    let out = run(with(ops.clone(), &["--json", "member", "list"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(members.as_array().map(Vec::len), Some(2));

    // The department is not an operator: refused, exit 2, with the reason.
    let hcb_files = fed.write_identity("gov.sz.hcb");
    let profile = fed.file("hcb.toml");
    write_profile(&profile, &fed, &hcb_files);
    let out = run(vec![
        "--profile".into(),
        profile.display().to_string(),
        "member".into(),
        "register".into(),
        "--dept".into(),
        "gov.sz.x".into(),
        "--name".into(),
        "X".into(),
        "--role".into(),
        "department".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("ROLE_REQUIRED") && stderr.contains("operator"), "{stderr}");

    // A stranger: unknown member, exit 2; with --json the refusal is machine-readable.
    let stranger_files = fed.write_identity("gov.sz.stranger");
    let out = run(with(conn(&fed, &stranger_files), &["--json", "schema", "list"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(error["refusal"]["reason"], "UNKNOWN_MEMBER");
    assert_eq!(error["exit_code"], 2);

    // Audit: the head verifies, an entry is proved, the whole log verifies.
    let out = run(with(ops.clone(), &["--json", "audit", "head"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let head: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(head["size"].as_u64().is_some_and(|s| s >= 2));
    let out = run(with(ops.clone(), &["audit", "prove", "0"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("inclusion: verified"));
    let out = run(with(ops.clone(), &["audit", "consistency", "1"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(with(ops.clone(), &["--json", "audit", "verify"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);

    // A wrong pinned key: verification failure, exit 4.
    let mut wrong = ops.clone();
    wrong[3] = hex::encode(ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key().as_bytes());
    let out = run(with(wrong, &["config"])).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));

    // The SDK sees what the CLI did.
    let client = fed.client(OPS).await;
    let hcb: Member = client.get_member("gov.sz.hcb").await.expect("member");
    assert_eq!(hcb.roles, vec![Role::Department as i32]);

    fed.catalog.stop().await.expect("stop");
}
