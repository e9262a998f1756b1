//! Tampering: an entry of the central log altered, or removed, in the catalog's storage
//! behind its back is detected by `exchange audit verify`, which names the first bad index
//! and exits with 4 (verification failure).

use exchange_catalog::db::{LOG_LEAVES, TABLES};
use exchange_localnet::CATALOG;
use exchange_localnet::data::PSB;
use exchange_localnet::data::{AUDIT, HCB, POPULATION, RENTAL};
use exchange_proto::v1::QueryAccessLogRequest;
use exchange_store::keys::encode_u64;
use exchange_store::{Durability, KvStore, RocksStore, WriteBatch};
use exchange_tests::*;

/// Runs `exchange audit verify` as the auditor: (exit code, stdout + stderr).
fn audit_verify(fed: &TestFed) -> (i32, String) {
    let (code, out, err) = fed.cli(AUDIT, &["audit", "verify"]);
    (code, format!("{out}{err}"))
}

/// Changes the catalog's storage while the catalog is stopped, then starts it again.
async fn behind_its_back(fed: &mut TestFed, change: impl FnOnce(&RocksStore)) {
    fed.net.kill(CATALOG).await.must("stop the catalog");
    {
        let store = RocksStore::open(fed.net.data_dir(CATALOG), TABLES).must("open the catalog's RocksDB");
        change(&store);
    }
    fed.net.restart(CATALOG).await.must("restart the catalog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_or_removed_entry_is_named_by_audit_verify() {
    let mut fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    for i in 0..5 {
        fed.client(HCB)
            .run_query(record_query(&landlord_id, &["name"], &token, &format!("tamper-{i}")))
            .await
            .must("query");
    }
    fed.net.wait_for_shipping().await.must("shipping");
    let (code, text) = audit_verify(&fed);
    assert_eq!(code, 0, "an untouched log verifies:\n{text}");
    // The auditor sees each node's shipping state from the command line.
    let (code, out, err) = fed.cli(AUDIT, &["--json", "audit", "node-status", PSB]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).must("node-status JSON");
    assert_eq!(status["lag"], 0, "{out}");
    assert!(status["last_written"].as_u64().is_some_and(|n| n >= 5), "{out}");
    // A department may not read another's node status.
    let (code, _, err) = fed.cli(HCB, &["audit", "node-status", PSB]);
    assert_eq!(code, 2, "refused: {err}");

    let index_of = |trace: &'static str| {
        let auditor = fed.client(AUDIT).clone();
        async move {
            let page = auditor
                .query_access_log(QueryAccessLogRequest { trace_id: trace.into(), ..Default::default() })
                .await
                .must("find the entry");
            assert_eq!(page.entries.len(), 1, "{trace}");
            page.entries[0].index
        }
    };
    let altered = index_of("tamper-2").await;
    let removed = index_of("tamper-3").await;

    // Altered: the entry's reason rewritten, same length, still a well-formed event.
    let mut original = Vec::new();
    behind_its_back(&mut fed, |store| {
        original = store.get(LOG_LEAVES, &encode_u64(altered)).must("read").expect("the entry exists");
        let forged = replace(&original, b"e2e case tamper-2", b"e2e case tamper-9");
        let mut batch = WriteBatch::new();
        batch.put(LOG_LEAVES, encode_u64(altered).to_vec(), forged);
        store.write(batch, Durability::Sync).must("alter");
    })
    .await;
    let (code, text) = audit_verify(&fed);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains(&format!("first bad entry {altered}")), "{text}");

    // Removed: the altered entry put back, a later one deleted.
    behind_its_back(&mut fed, |store| {
        let mut batch = WriteBatch::new();
        batch.put(LOG_LEAVES, encode_u64(altered).to_vec(), original.clone());
        batch.delete(LOG_LEAVES, encode_u64(removed).to_vec());
        store.write(batch, Durability::Sync).must("remove");
    })
    .await;
    let (code, text) = audit_verify(&fed);
    assert_eq!(code, 4, "{text}");
    assert!(text.contains(&format!("first bad entry {removed}")), "{text}");
}

/// `haystack` with the one occurrence of `from` replaced by `to` (same length).
fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = haystack.windows(from.len()).position(|w| w == from).expect("the text is in the entry");
    let mut out = haystack.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}
