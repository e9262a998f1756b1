//! Backup and restore on real daemons over mutual TLS, as the runbook tells them
//! (deploy/README.md, "Backup and restore"): an online backup of the catalog and of a node
//! while the federation runs; strangers refused; restores that refuse a backup whose manifest
//! does not match its content, or a data directory that is not empty, and keep nothing
//! half-written; a restored catalog to which the nodes re-ship what it lacks without writing
//! anything new, whose log is consistent with a head an auditor kept from before the backup,
//! and which answers LOG_FORK for a head taken between the backup and the crash; a node
//! restored from a backup older than what it shipped, which resumes numbering after what the
//! central log holds instead of reusing its numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use exchange_client_sdk::Error;
use exchange_client_sdk::log::verify_consistency_proof;
use exchange_localnet::CATALOG;
use exchange_localnet::data::{AUDIT, HCB, OPS, POPULATION, PSB, RENTAL};
use exchange_proto::v1::*;
use exchange_tests::*;
use serde_json::Value;

/// Runs a daemon binary's subcommand: exit code, stdout, stderr.
fn run(daemon: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exchange_localnet::default_bin_dir().must("binaries").join(daemon))
        .args(args)
        .output()
        .must("run the daemon's command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `exchange-catalog backup` with `dept`'s certificate.
fn catalog_backup(fed: &TestFed, dept: &str, to: &Path) -> (i32, String, String) {
    let files = fed.net.tls_files(dept);
    let config = path(&fed.net.dir().join("catalog.toml"));
    let (cert, key, to) = (path(&files.cert), path(&files.key), path(to));
    run("exchange-catalog", &["backup", "--config", &config, "--cert", &cert, "--key", &key, "--to", &to])
}

/// The highest sequence of each node's entries in the central log.
async fn central_sequences(fed: &TestFed) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in fed.whole_log().await {
        if let Some(e) = entry.event.filter(|e| e.kind != EventKind::Admin as i32) {
            let seq = out.entry(e.recorder.clone()).or_insert(0);
            *seq = (*seq).max(e.sequence);
        }
    }
    out
}

async fn last_written(fed: &TestFed) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for dept in fed.net.nodes() {
        let status = fed.client(&dept).log_status(&dept).await.must("log status");
        out.insert(dept, status.last_written);
    }
    out
}

fn manifest(stdout: &str) -> Value {
    serde_json::from_str(stdout).must("the backup prints its manifest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_verified_and_the_federation_heals() {
    let mut fed = TestFed::start(Setup::default()).await;
    let backups = fed.net.dir().join("backups");
    std::fs::create_dir_all(&backups).must("backups folder");
    let landlord = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let auditor = fed.client(AUDIT).clone();
    hcb.run_query(record_query(&landlord, &["name"], &token, "before-backup")).await.must("served");
    fed.net.wait_for_shipping().await.must("shipped");
    // The head an auditor keeps from before the backup.
    let before = auditor.verified_tree_head(None).await.must("head before the backup");

    // Online backups, while the federation runs. Strangers are refused.
    let catalog_copy = backups.join("catalog-1");
    let (code, _, err) = catalog_backup(&fed, HCB, &catalog_copy);
    assert!(code != 0 && err.contains("PermissionDenied") && err.contains("operator"), "{err}");
    assert!(!catalog_copy.exists(), "a refused backup writes nothing");
    let (code, out, err) = catalog_backup(&fed, OPS, &catalog_copy);
    assert_eq!(code, 0, "{err}");
    let recorded = manifest(&out);
    let head = &recorded["state"]["catalog"];
    let recorded_size = head["tree_size"].as_u64().must("tree size");
    assert!(recorded_size >= before.size(), "{recorded}");
    let recorded_root = exchange_core::merkle::Hash::from_hex(head["root"].as_str().must("root")).must("hex root");
    let (code, _, err) = catalog_backup(&fed, OPS, &catalog_copy);
    assert!(code != 0 && err.contains("InvalidArgument") && err.contains("already exists"), "{err}");
    let (code, _, err) = catalog_backup(&fed, OPS, Path::new("relative/backup"));
    assert!(code != 0 && err.contains("not an absolute path"), "{err}");

    let node_copy = backups.join("psb-1");
    let psb_config = path(&fed.net.dir().join(format!("{PSB}.toml")));
    let (code, out, err) = run("exchange-node", &["backup", "--config", &psb_config, "--to", &path(&node_copy)]);
    assert_eq!(code, 0, "{err}");
    let node_state = manifest(&out)["state"]["node"].clone();
    let node_backup_sequence = node_state["last_sequence"].as_u64().must("last sequence");
    assert!(node_backup_sequence > 0 && node_state["config_version"].as_u64().must("version") > 0, "{node_state}");
    // Another member's certificate cannot back a node up, even a valid one of the federation.
    let stranger = {
        let files = fed.net.tls_files(HCB);
        let identity = files.load().must("identity");
        let url = format!("https://localhost:{}", fed.net.port(PSB).must("port"));
        let channel = exchange_pki::pinned_https_endpoint(&url, &identity, "localhost", PSB)
            .must("endpoint")
            .connect()
            .await
            .must("connect");
        node_client::NodeClient::new(channel)
            .backup(BackupRequest { dir: path(&backups.join("stolen")) })
            .await
            .expect_err("a stranger's backup")
    };
    assert_eq!(stranger.code(), tonic::Code::PermissionDenied, "{stranger:?}");
    assert_eq!(exchange_proto::refusal::reason_code(&stranger), ReasonCode::RoleRequired);
    assert!(!backups.join("stolen").exists());

    // The federation keeps running: more entries, and a catalog act (a revoked consent) that
    // the restore will lose. An auditor takes a head now, between the backup and the crash.
    for i in 0..3 {
        hcb.run_query(record_query(&landlord, &["name"], &token, &format!("after-backup-{i}"))).await.must("served");
    }
    let (spare, _) =
        fed.consent_token(HCB, &fed.citizen(5)["id_number"], &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    hcb.revoke_consent(&spare.id, "backup suite").await.must("revoke");
    fed.net.wait_for_shipping().await.must("shipped");
    let between = auditor.verified_tree_head(None).await.must("head between backup and crash");
    let written = last_written(&fed).await;
    assert!(written[PSB] > node_backup_sequence, "PSB wrote after its backup: {written:?}");

    // The catalog is lost. Restore refuses a non-empty data_dir, and altered backups.
    fed.net.kill(CATALOG).await.must("stop the catalog");
    let data_dir = fed.net.data_dir(CATALOG);
    let catalog_config = path(&fed.net.dir().join("catalog.toml"));
    let restore =
        |from: &Path| run("exchange-catalog", &["restore", "--config", &catalog_config, "--from", &path(from)]);
    let (code, _, err) = restore(&catalog_copy);
    assert!(code != 0 && err.contains("is not empty"), "{err}");
    std::fs::rename(&data_dir, fed.net.dir().join("catalog-data.lost")).must("move the lost data aside");

    let altered = backups.join("catalog-altered");
    copy_tree(&catalog_copy, &altered);
    let text = std::fs::read_to_string(altered.join("MANIFEST.json")).must("manifest");
    let mut forged: Value = serde_json::from_str(&text).must("json");
    forged["state"]["catalog"]["tree_size"] = Value::from(recorded_size + 1);
    std::fs::write(altered.join("MANIFEST.json"), forged.to_string()).must("write");
    let (code, _, err) = restore(&altered);
    assert!(code != 0 && err.contains("does not name the size and root the manifest records"), "{err}");
    std::fs::write(altered.join("MANIFEST.json"), &text).must("write");
    let sst = std::fs::read_dir(altered.join("data"))
        .must("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .must("a table file");
    let mut bytes = std::fs::read(&sst).must("read");
    bytes[0] ^= 0xff;
    std::fs::write(&sst, bytes).must("write");
    let (code, _, err) = restore(&altered);
    assert!(code != 0 && err.contains("does not match the manifest"), "{err}");
    assert!(!data_dir.exists(), "a refused restore leaves nothing in data_dir");
    assert!(no_leftovers(fed.net.dir()), "nor a temporary copy");

    let (code, out, err) = restore(&catalog_copy);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("central log of {recorded_size} entries")), "{out}");
    fed.net.restart(CATALOG).await.must("start the restored catalog");

    // The nodes re-ship what the restored catalog lacks, though they write nothing new.
    wait_for("the nodes re-ship what the restored catalog lacks", Duration::from_secs(60), || async {
        let held = central_sequences(&fed).await;
        written.iter().all(|(dept, seq)| *seq == 0 || held.get(dept) == Some(seq)).then_some(())
    })
    .await;
    // Grow the log past the head taken between backup and crash.
    let mut i = 0;
    let after = loop {
        let head = auditor.verified_tree_head(None).await.must("head after");
        if head.size() >= between.size() {
            break head;
        }
        hcb.run_query(record_query(&landlord, &["name"], &token, &format!("after-restore-{i}"))).await.must("served");
        fed.net.wait_for_shipping().await.must("shipped");
        i += 1;
    };
    // The restored log extends the head recorded in the backup and the auditor's older head.
    for (size, root) in [(recorded_size, recorded_root), (before.size(), before.root())] {
        let proof = auditor.consistency_proof_from(size, &root, after.size()).await.must("consistency");
        verify_consistency_proof(&proof, size, root, &after).must("the restored log extends the earlier head");
    }
    // A head taken between the backup and the crash is of a lost history: a clear refusal.
    match auditor.consistency_proof_from(between.size(), &between.root(), after.size()).await {
        Err(Error::Refused { code, reason, message, .. }) => {
            assert_eq!((code, reason), (tonic::Code::FailedPrecondition, ReasonCode::LogFork), "{message}");
            assert!(message.contains("does not extend"), "{message}");
        }
        other => panic!("expected LOG_FORK, got {other:?}"),
    }
    let (code, out, err) =
        fed.cli(AUDIT, &["audit", "consistency", &between.size().to_string(), "--old-root", &between.root().to_hex()]);
    assert!(code != 0 && format!("{out}{err}").contains("LOG_FORK"), "{out}{err}");

    // A node restored from a backup older than what it shipped resumes after the central log.
    let held = central_sequences(&fed).await[PSB];
    fed.net.kill(PSB).await.must("stop PSB");
    let psb_data = fed.net.data_dir(PSB);
    let node_restore = |from: &Path| run("exchange-node", &["restore", "--config", &psb_config, "--from", &path(from)]);
    let (code, _, err) = node_restore(&node_copy);
    assert!(code != 0 && err.contains("is not empty"), "{err}");
    std::fs::rename(&psb_data, fed.net.dir().join("psb-data.lost")).must("move aside");
    let (code, out, err) = node_restore(&node_copy);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("up to sequence {node_backup_sequence}")), "{out}");
    // While the catalog cannot be asked, the restored node refuses to start (and writes
    // nothing); once it can, the node starts.
    fed.net.kill(CATALOG).await.must("stop the catalog");
    let refused = fed.net.restart(PSB).await.expect_err("a restored node without the catalog");
    let log = std::fs::read_to_string(fed.net.log_path(PSB)).must("the node's log");
    assert!(log.contains("must learn from the catalog which of its entries"), "{refused:#}");
    fed.net.restart(CATALOG).await.must("start the catalog again");
    fed.net.restart(PSB).await.must("start the restored node");
    hcb.run_query(record_query(&landlord, &["name"], &token, "after-node-restore")).await.must("served");
    let entries = fed.central_entries("after-node-restore").await;
    let psb_entries: Vec<u64> = entries.iter().filter(|e| e.recorder == PSB).map(|e| e.sequence).collect();
    assert_eq!(psb_entries, vec![held + 1], "numbering resumed after what the central log held");
    let refusals = auditor
        .query_access_log(QueryAccessLogRequest {
            requester: PSB.into(),
            outcome: Outcome::Refused as i32,
            ..Default::default()
        })
        .await
        .must("refusals")
        .entries;
    assert!(
        refusals.iter().all(|e| e.event.as_ref().is_none_or(|ev| ev.reason_code != ReasonCode::EntryConflict as i32)),
        "no entry of the restored node conflicted with the central log"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).must("create");
    for entry in std::fs::read_dir(from).must("list") {
        let entry = entry.must("entry");
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().must("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).must("copy");
        }
    }
}

fn no_leftovers(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).all(|e| !e.file_name().to_string_lossy().contains(".restore-")))
        .unwrap_or(false)
}
