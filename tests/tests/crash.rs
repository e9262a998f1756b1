//! A node killed with SIGKILL: while a client drives queries, and in the middle of an import.
//! After restart every answer the client received has its entry in the node's log (found in
//! the central log by answer digest once shipped), none is doubled, and the interrupted
//! import left nothing behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use exchange_client_sdk::NodeAnswer;
use exchange_localnet::data::{self, HCB, POPULATION, PSB, RENTAL};
use exchange_tests::*;

/// Queries each driver sends at most (the kill comes well before).
const MAX_QUERIES: usize = 2_000;
/// Answers received before the kill.
const KILL_AFTER: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_log_entry_and_leaves_no_partial_import() {
    let mut fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) =
        fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name", "status"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();

    // Two drivers query until the node dies; each answer received is kept.
    let received = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for driver in 0..2 {
        let (hcb, token, id, received) = (hcb.clone(), token.clone(), landlord_id.clone(), received.clone());
        drivers.push(tokio::spawn(async move {
            let mut digests = Vec::new();
            for i in 0..MAX_QUERIES {
                match hcb.run_query(record_query(&id, &["name"], &token, &format!("crash-{driver}-{i}"))).await {
                    Ok(NodeAnswer::Record(answer)) => {
                        digests.push(*answer.digest());
                        received.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(other) => panic!("unexpected answer from {}", other.node()),
                    Err(_) => break,
                }
            }
            digests
        }));
    }
    wait_for("answers before the kill", Duration::from_secs(60), || {
        let n = received.load(Ordering::SeqCst);
        async move { (n >= KILL_AFTER).then_some(()) }
    })
    .await;
    fed.net.kill(PSB).await.must("SIGKILL the node");
    let mut digests = Vec::new();
    for d in drivers {
        digests.extend(d.await.expect("driver"));
    }
    assert!(digests.len() as u64 >= KILL_AFTER);
    assert!(digests.len() < 2 * MAX_QUERIES, "the kill stopped the drivers");

    // An import killed halfway: more people than the node holds, in one all-or-nothing import.
    fed.net.restart(PSB).await.must("restart after the first kill");
    let psb = fed.client(PSB).clone();
    let before = population_count(&psb).await;
    let newcomers: Vec<data::Row> =
        data::generate(fed.data.persons.len() + 40_000).persons.split_off(fed.data.persons.len());
    let (header, chunks) = import_request(POPULATION, "crash-import", &newcomers, None);
    let sent = Arc::new(AtomicU64::new(0));
    let import = {
        let (psb, sent) = (psb.clone(), sent.clone());
        tokio::spawn(async move { psb.import(header, chunks, move |n| sent.store(n, Ordering::SeqCst)).await })
    };
    wait_for("an eighth of the import sent", Duration::from_secs(60), || {
        let n = sent.load(Ordering::SeqCst);
        async move { (n >= 5_000).then_some(()) }
    })
    .await;
    fed.net.kill(PSB).await.must("SIGKILL the node mid-import");
    assert!(import.await.expect("import task").is_err(), "the import cannot have completed");
    fed.net.restart(PSB).await.must("restart after the second kill");
    assert_eq!(population_count(&psb).await, before, "the interrupted import left records behind");
    // The same file imports whole afterwards: nothing of it was kept.
    let (header, chunks) = import_request(POPULATION, "crash-import", &newcomers, None);
    let summary = psb.import(header, chunks, |_| {}).await.must("import again");
    assert_eq!(summary.inserted, newcomers.len() as u64, "{summary:?}");

    // Every answer received is in the log once; nothing is doubled.
    let shipped = fed.net.wait_for_shipping().await.must("shipping after restart");
    let log = fed.whole_log().await;
    let mut by_digest: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    let mut by_sequence: BTreeMap<u64, u32> = BTreeMap::new();
    for entry in &log {
        let e = entry.event.as_ref().expect("event");
        if e.recorder == PSB {
            *by_sequence.entry(e.sequence).or_default() += 1;
            if !e.answer_digest.is_empty() {
                *by_digest.entry(e.answer_digest.clone()).or_default() += 1;
            }
        }
    }
    for digest in &digests {
        assert_eq!(by_digest.get(&digest[..]), Some(&1), "answer {} is not logged exactly once", hex(digest));
    }
    let last = shipped[PSB].last_written;
    assert_eq!(by_sequence.len() as u64, last, "every written entry shipped");
    assert!(by_sequence.values().all(|n| *n == 1), "an entry doubled in the central log");
    println!("{} answers received before the kill, all logged; {last} node entries shipped once", digests.len());
}

async fn population_count(psb: &exchange_client_sdk::ExchangeClient) -> u64 {
    psb.describe_datasets(PSB)
        .await
        .must("describe")
        .into_iter()
        .find(|d| d.id == POPULATION)
        .map(|d| d.record_count)
        .expect("population dataset")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
