//! A catalog outage: nodes keep serving from their cached, verified configuration up to the
//! configured maximum age, then refuse with UNAVAILABLE; when the catalog returns they serve
//! again and their shippers catch up, every entry in the central log exactly once, the log
//! before the outage a prefix of the log after it (consistency proof).

use std::collections::BTreeMap;
use std::time::Duration;

use exchange_client_sdk::log::verify_consistency_proof;
use exchange_localnet::CATALOG;
use exchange_localnet::data::{AUDIT, HCB, POPULATION, PSB, RENTAL};
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic_health::pb::health_check_response::ServingStatus;

/// Runs a daemon's `health` subcommand (the container and Kubernetes probe) against `dept`'s
/// port, with `extra` arguments: its exit code and what it printed.
fn probe_with(fed: &TestFed, daemon: &str, dept: &str, extra: &[&str]) -> (i32, String) {
    let port = fed.net.port(dept).must("port");
    let out = std::process::Command::new(exchange_localnet::default_bin_dir().must("binaries").join(daemon))
        .args(["health", "--addr", &format!("https://127.0.0.1:{port}"), "--ca"])
        .arg(fed.net.dir().join("pki/ca.crt"))
        .args(extra)
        .output()
        .must("run the health probe");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The readiness probe: [`probe_with`] and no extra argument.
fn probe(fed: &TestFed, daemon: &str, dept: &str) -> (i32, String) {
    probe_with(fed, daemon, dept, &[])
}

/// The smallest maximum age a node accepts.
const MAX_AGE_SECS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_from_cache_then_refuse_and_catch_up_after_the_outage() {
    let mut fed = TestFed::start(Setup { config_max_age_secs: MAX_AGE_SECS, ..Setup::default() }).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let auditor = fed.client(AUDIT).clone();
    hcb.run_query(record_query(&landlord_id, &["name"], &token, "before")).await.must("served before");
    // (The health is re-evaluated every second.)
    wait_for("health says SERVING before the outage", Duration::from_secs(30), || async {
        (fed.node_health(PSB).await == ServingStatus::Serving).then_some(())
    })
    .await;
    fed.net.wait_for_shipping().await.must("shipped before");
    let before = auditor.verified_tree_head(None).await.must("tree head before");

    assert_eq!(
        probe(&fed, "exchange-node", PSB),
        (0, format!("https://127.0.0.1:{}: SERVING\n", fed.net.port(PSB).must("port")))
    );
    assert_eq!(probe(&fed, "exchange-catalog", CATALOG).0, 0, "the catalog's probe");

    // The nodes count the age of their configuration from its signed `issued_at`: a change
    // of the configuration (a revoked consent) just before the outage starts its age afresh.
    let (spare, _) =
        fed.consent_token(HCB, &fed.citizen(5)["id_number"], &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    hcb.revoke_consent(&spare.id, "outage suite").await.must("revoke a spare consent");
    fed.net.wait_for_configuration().await.must("nodes take the new configuration");
    fed.net.kill(CATALOG).await.must("stop the catalog");
    // Served from the cached configuration, signed answers as ever.
    hcb.run_query(record_query(&landlord_id, &["name"], &token, "during")).await.must("served during the outage");
    // Past the maximum age: refused, UNAVAILABLE with CONFIG_STALE.
    let error = wait_for("the configuration goes stale", Duration::from_secs(30), || {
        let hcb = hcb.clone();
        let token = token.clone();
        let id = landlord_id.clone();
        async move { hcb.run_query(record_query(&id, &["name"], &token, "stale")).await.err() }
    })
    .await;
    assert_eq!(error.reason(), Some(ReasonCode::ConfigStale), "{error}");
    assert!(matches!(error, exchange_client_sdk::Error::Refused { code: tonic::Code::Unavailable, .. }), "{error}");
    // The health service tells the truth: the node refuses everything, so it is not serving.
    wait_for("health says NOT_SERVING", Duration::from_secs(30), || async {
        (fed.node_health(PSB).await == ServingStatus::NotServing).then_some(())
    })
    .await;
    let (code, printed) = probe(&fed, "exchange-node", PSB);
    assert_eq!(code, 1, "the probe fails while the node refuses everything: {printed}");
    assert!(printed.ends_with("NOT_SERVING\n"), "{printed}");
    // The liveness probe passes: the node is alive and waits for the catalog; a restart
    // would not bring the catalog back.
    let (code, printed) = probe_with(&fed, "exchange-node", PSB, &["--liveness"]);
    assert_eq!(code, 0, "the liveness probe passes while the node is NOT_SERVING: {printed}");
    assert!(printed.ends_with("NOT_SERVING\n"), "{printed}");
    let (code, printed) = probe_with(&fed, "exchange-catalog", CATALOG, &["--liveness"]);
    assert_eq!(code, 1, "the liveness probe fails where no daemon answers: {printed}");
    let status = fed.client(PSB).log_status(PSB).await.must("status during the outage");
    assert!(status.lag >= 2, "the entries of the outage wait to be shipped: {status:?}");
    assert!(!status.last_error.is_empty(), "the shipper reports why it cannot ship: {status:?}");

    fed.net.restart(CATALOG).await.must("restart the catalog");
    wait_for("the node serves again", Duration::from_secs(30), || {
        let hcb = hcb.clone();
        let token = token.clone();
        let id = landlord_id.clone();
        async move { hcb.run_query(record_query(&id, &["name"], &token, "after")).await.ok() }
    })
    .await;
    let shipped = fed.net.wait_for_shipping().await.must("catch up");
    wait_for("health says SERVING again", Duration::from_secs(30), || async {
        (fed.node_health(PSB).await == ServingStatus::Serving).then_some(())
    })
    .await;

    // Every node entry is in the central log exactly once.
    let log = fed.whole_log().await;
    let mut seen: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for entry in &log {
        let e = entry.event.as_ref().expect("event");
        if e.recorder != exchange_localnet::CATALOG_ID {
            *seen.entry((e.recorder.clone(), e.sequence)).or_default() += 1;
        }
    }
    for (dept, status) in &shipped {
        for sequence in 1..=status.last_written {
            assert_eq!(seen.get(&(dept.clone(), sequence)), Some(&1), "{dept} entry {sequence}");
        }
    }
    assert!(seen.values().all(|n| *n == 1), "an entry doubled");
    for trace in ["during", "stale"] {
        assert!(!fed.central_entries(trace).await.is_empty(), "{trace} entries shipped after the outage");
    }

    // The log after the outage extends the log before it.
    let after = auditor.verified_tree_head(None).await.must("tree head after");
    assert!(after.size() > before.size());
    let proof = auditor.consistency_proof(before.size(), after.size()).await.must("consistency proof");
    verify_consistency_proof(&proof, before.size(), before.root(), &after)
        .must("the log before is a prefix of the log after");
}

/// Issue 16, item 5: nodes checked the catalog only by the DNS name in its certificate, so a
/// member whose certificate carries that name could pose as the catalog, take the access log
/// and, replaying signed configurations, keep the nodes "connected". Here the catalog daemon
/// itself, with its signing key and its data, serves under the housing bureau's certificate
/// issued with the catalog's names: if the nodes took it for the catalog its heartbeats would
/// keep them fresh. They refuse it in the TLS handshake (it names another department), ship
/// nothing to it, and go CONFIG_STALE after their maximum age as in an outage; the SDK refuses
/// it too. With the real catalog back, they serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_posing_as_the_catalog_is_refused_and_nodes_go_stale() {
    let mut fed = TestFed::start(Setup { config_max_age_secs: MAX_AGE_SECS, ..Setup::default() }).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    hcb.run_query(record_query(&landlord_id, &["name"], &token, "before-impostor")).await.must("served before");
    fed.net.wait_for_shipping().await.must("shipped before");

    // The housing bureau's certificate with the catalog's DNS name and address.
    let dir = fed.net.dir().to_path_buf();
    let ca = exchange_pki::FederationCa::load_from_dir(dir.join("pki")).must("the federation CA");
    let impostor = ca
        .issue(&exchange_pki::CertSpec::new(HCB, exchange_pki::CertKind::Server).with_loopback())
        .must("a certificate with the catalog's names");
    impostor.write_files(dir.join("pki"), "impostor").must("write the impostor's files");
    let config = std::fs::read_to_string(dir.join("catalog.toml")).must("the catalog's configuration");
    let catalog_cert = format!("pki/{}", exchange_localnet::CATALOG_ID);
    let posing = config
        .replace(&format!("{catalog_cert}.crt"), "pki/impostor.crt")
        .replace(&format!("{catalog_cert}.key"), "pki/impostor.key");
    assert_ne!(posing, config, "the impostor's configuration names its certificate");
    std::fs::write(dir.join("impostor.toml"), posing).must("write the impostor's configuration");
    let log_before = std::fs::read_to_string(fed.net.log_path(PSB)).must("the node's log").len();

    fed.net.kill(CATALOG).await.must("stop the catalog");
    let bin = exchange_localnet::default_bin_dir().must("binaries").join("exchange-catalog");
    let log = std::fs::File::create(dir.join("logs/impostor.log")).must("the impostor's log");
    let mut fake = tokio::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(dir.join("impostor.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().must("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .must("start the impostor");
    // It serves: its health answers over TLS (the probe checks only the CA).
    wait_for("the impostor serves", Duration::from_secs(30), || async {
        (probe(&fed, "exchange-catalog", CATALOG).0 == 0).then_some(())
    })
    .await;

    // The node refuses it in the handshake, and says why in its log.
    wait_for("the node refuses the impostor", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(fed.net.log_path(PSB)).ok()?;
        text.get(log_before..)?.contains("not the pinned server").then_some(())
    })
    .await;
    // The SDK refuses it as well.
    match fed.net.client(HCB).await.must("a fresh client").list_members().await {
        Err(exchange_client_sdk::Error::Tls(message)) => {
            assert!(message.contains("urn:exchange:dept:gov.sz.exchange"), "{message}")
        }
        other => panic!("the SDK must refuse the impostor in the handshake, got {other:?}"),
    }
    // Past the maximum age the node refuses queries, as in an outage, and ships nothing.
    let error = wait_for("the configuration goes stale", Duration::from_secs(30), || {
        let hcb = hcb.clone();
        let token = token.clone();
        let id = landlord_id.clone();
        async move { hcb.run_query(record_query(&id, &["name"], &token, "impostor")).await.err() }
    })
    .await;
    assert_eq!(error.reason(), Some(ReasonCode::ConfigStale), "{error}");
    assert!(matches!(error, exchange_client_sdk::Error::Refused { code: tonic::Code::Unavailable, .. }), "{error}");
    let status = fed.client(PSB).log_status(PSB).await.must("status under the impostor");
    assert!(status.lag >= 1, "nothing is shipped to the impostor: {status:?}");

    // The real catalog back: the nodes take its configuration and serve again.
    fake.kill().await.must("stop the impostor");
    fed.net.restart(CATALOG).await.must("restart the catalog");
    wait_for("the node serves again", Duration::from_secs(30), || {
        let hcb = hcb.clone();
        let token = token.clone();
        let id = landlord_id.clone();
        async move { hcb.run_query(record_query(&id, &["name"], &token, "after-impostor")).await.ok() }
    })
    .await;
    fed.net.wait_for_shipping().await.must("catch up with the real catalog");
    assert!(!fed.central_entries("impostor").await.is_empty(), "entries of the impostor's time reach the real log");
}
