//! The demo federation end to end, as a newcomer runs it (`exchange demo --exit`): a catalog
//! and three nodes as separate processes over mTLS, data imported, both scenarios, the audit
//! trail verified with inclusion proofs.

use std::process::Command;

use exchange_localnet::default_bin_dir;

#[test]
fn the_demo_runs_both_scenarios_and_verifies_the_audit_trail() {
    let bin_dir = default_bin_dir().expect("binary folder");
    for needed in ["exchange", "exchange-catalog", "exchange-node"] {
        assert!(
            bin_dir.join(needed).exists(),
            "{needed} missing in {}: ./scripts/test builds the workspace's binaries before the tests",
            bin_dir.display()
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin_dir.join("exchange"))
        .args(["demo", "--exit", "--persons", "2000", "--data-dir"])
        .arg(dir.path().join("federation"))
        .output()
        .expect("run exchange demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "decision: APPROVED automatically",
        "identity match (no held value revealed): name: MATCH_RESULT_MATCH, birth_date: MATCH_RESULT_MATCH",
        "VERDICT_VALID",
        "FIELD_NOT_GRANTED",
        "ZL-2026-000123: 3 entries",
        "KB-2026-000456: 3 entries",
        "the citizen's own view: who read my data",
        "gov.sz.hcb read gov.sz.pnr/property-certificate for SZ-HCB-ZLBA-001",
        "all scenarios passed (2000 citizens, 400 companies, 667 properties",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
    assert_eq!(stdout.matches("inclusion ✔").count(), 6, "{stdout}");
    // The citizen's view is proved by the portal with the entries it holds (its proofs carry
    // hashes only): at least the two reads of the rental filing.
    assert!(stdout.matches("in the signed log ✔").count() >= 2, "{stdout}");
    // The operator learns what to pin from check-config, without handing out the key file.
    let check = Command::new(bin_dir.join("exchange-catalog"))
        .args(["check-config", "--config"])
        .arg(dir.path().join("federation/catalog.toml"))
        .output()
        .expect("run exchange-catalog check-config");
    let checked = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{checked}{}", String::from_utf8_lossy(&check.stderr));
    let pinned = stdout.split("pinned key ").nth(1).and_then(|s| s.get(..64)).expect("the demo prints the pinned key");
    assert!(
        checked.contains(&format!("catalog public key (nodes' catalog_public_key, clients' --catalog-key): {pinned}")),
        "{checked}"
    );
    assert!(checked.contains("access log verifier key (auditors' --log-key): localnet.exchange.sz/log+"), "{checked}");
    assert!(!stdout.contains('✘'), "{stdout}");
    // Personal data never reaches a daemon's log: the demo data is deterministic, so every
    // resident id it holds can be looked for.
    let data = exchange_localnet::data::generate(2000);
    for log in ["catalog", "gov.sz.psb", "gov.sz.amr", "gov.sz.pnr"] {
        let text = std::fs::read_to_string(dir.path().join(format!("federation/logs/{log}.log"))).expect("daemon log");
        assert!(!text.is_empty(), "{log}.log is empty: the daemons log their start");
        for person in &data.persons {
            let id = &person["id_number"];
            assert!(!text.contains(id.as_str()), "resident id {id} in {log}.log");
        }
    }
}

#[test]
fn the_demo_refuses_a_folder_that_is_not_empty() {
    let bin_dir = default_bin_dir().expect("binary folder");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("precious.txt"), "keep me").expect("write");
    let out = Command::new(bin_dir.join("exchange"))
        .args(["demo", "--exit", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run exchange demo");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("precious.txt")).expect("read"), "keep me");
}

/// The README's first command as a newcomer runs it: the demo keeps the federation running,
/// the printed profile commands work against it, and Ctrl-C (SIGINT) stops everything.
#[test]
fn the_running_demo_answers_its_printed_commands_and_stops_on_ctrl_c() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let bin_dir = default_bin_dir().expect("binary folder");
    let dir = tempfile::tempdir().expect("tempdir");
    let fed_dir = dir.path().join("federation");
    let mut demo = Command::new(bin_dir.join("exchange"))
        .args(["demo", "--persons", "500", "--data-dir"])
        .arg(&fed_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start exchange demo");
    let stdout = demo.stdout.take().expect("stdout");
    let mut seen = String::new();
    // Bounded by the demo itself: it either prints the line or ends (closing stdout).
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("demo output");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C stops it") {
            break;
        }
    }
    assert!(seen.contains("Ctrl-C stops it"), "the demo did not reach its running state:\n{seen}");

    let profile = fed_dir.join("profiles/gov.sz.audit.toml");
    let verify = Command::new(bin_dir.join("exchange"))
        .arg("--profile")
        .arg(&profile)
        .args(["audit", "verify"])
        .output()
        .expect("run the printed command");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok: true"));

    let interrupted = Command::new("kill").arg("-INT").arg(demo.id().to_string()).status().expect("kill -INT");
    assert!(interrupted.success());
    let status = demo.wait().expect("the demo stops");
    assert!(status.success(), "Ctrl-C is a normal stop: {status:?}");
    // Its daemons went with it: nobody serves the catalog's port any more.
    let after = Command::new(bin_dir.join("exchange"))
        .arg("--profile")
        .arg(&profile)
        .args(["--timeout", "2", "audit", "head"])
        .output()
        .expect("run exchange after the stop");
    assert_eq!(after.status.code(), Some(3), "unavailable after Ctrl-C: {}", String::from_utf8_lossy(&after.stderr));
}
