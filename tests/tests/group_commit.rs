//! Group commit: under concurrency, queries share the disk syncs of the node's access log,
//! so that durability does not cost one sync per query; every answer is still logged.

use exchange_localnet::data::{HCB, POPULATION, PSB, RENTAL};
use exchange_tests::*;

/// Queries in flight at once.
const CONCURRENT: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_share_log_syncs() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let psb = fed.client(PSB).clone();
    let before = psb.log_status(PSB).await.must("status before");

    let queries = (0..CONCURRENT).map(|i| {
        let hcb = hcb.clone();
        let query = record_query(&landlord_id, &["name"], &token, &format!("group-{i}"));
        async move { hcb.run_query(query).await }
    });
    let answers = futures::future::join_all(queries).await;
    assert!(answers.iter().all(Result::is_ok), "every query served");

    let after = psb.log_status(PSB).await.must("status after");
    let entries = after.last_written - before.last_written;
    let syncs = after.log_syncs - before.log_syncs;
    assert_eq!(entries, CONCURRENT as u64, "one entry per answer");
    assert!(syncs < entries, "{syncs} syncs for {entries} entries: queries did not share syncs");
    println!("{entries} entries written durably in {syncs} syncs");
}
