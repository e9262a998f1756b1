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

/// A member's answers of one round, by the signature they carry: the group size that
/// signature's answers give, and the leaf indices seen under it.
type GroupsBySignature = std::collections::BTreeMap<Vec<u8>, (u64, std::collections::BTreeSet<u64>)>;

/// The signature of a verified record answer, with its group size and index.
fn group_of(answer: &exchange_client_sdk::NodeAnswer) -> (Vec<u8>, u64, u64) {
    let exchange_client_sdk::NodeAnswer::Record(verified) = answer else { panic!("a record answer") };
    let s = verified.answer().signature.as_ref().expect("signed");
    (s.signature.clone(), s.group_size, s.group_index)
}

/// Canonical form version 3: the answers of one group commit carry one signature, over a
/// tree that holds only the answers of one requester. Two members query the same node at
/// once; each verifies its answers through the SDK (one Ed25519 check per group), and no
/// answer's tree holds another member's answer: the number of a member's answers under a
/// signature is exactly the group size that signature's answers give, and no signature is
/// shared between members. While one member queries alone, there is one signature per
/// group commit of the node's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_is_signed_once_per_requester() {
    use exchange_localnet::data::{GSC, OPENING};
    use exchange_proto::v1::GetRecordRequest;
    use std::collections::BTreeSet;

    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, hcb_token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let (_, gsc_token) = fed.consent_token(GSC, &landlord_id, &[(POPULATION, &["name"])], OPENING, POPULATION).await;
    let (hcb, gsc, psb) = (fed.client(HCB).clone(), fed.client(GSC).clone(), fed.client(PSB).clone());
    let gsc_query = |i: usize| {
        exchange_client_sdk::NodeQuery::Record(GetRecordRequest {
            context: ctx(OPENING, &format!("gsc-group-{i}")),
            dataset: POPULATION.into(),
            subject: person(&landlord_id),
            fields: vec!["name".into()],
            consent_token: gsc_token.clone(),
            version: 0,
        })
    };

    // One member alone: one signature per group commit.
    let before = psb.log_status(PSB).await.must("status before");
    let alone = futures::future::join_all((0..CONCURRENT).map(|i| {
        let query = record_query(&landlord_id, &["name"], &hcb_token, &format!("alone-{i}"));
        let hcb = hcb.clone();
        async move { hcb.run_query(query).await.must("served and verified") }
    }))
    .await;
    let after = psb.log_status(PSB).await.must("status after");
    let signatures: BTreeSet<Vec<u8>> = alone.iter().map(|a| group_of(a).0).collect();
    let syncs = after.log_syncs - before.log_syncs;
    assert_eq!(signatures.len() as u64, syncs, "one signature per group commit");
    assert!(signatures.len() < CONCURRENT, "{} signatures for {CONCURRENT} answers", signatures.len());
    assert!(hcb.verified_groups().len() >= signatures.len(), "each group's signature checked and remembered");

    // Two members at once, each several rounds, until their queries shared commits.
    let mut shared_commit = false;
    for round in 0..10 {
        let before = psb.log_status(PSB).await.must("status before");
        let hcb_answers = (0..CONCURRENT / 2).map(|i| {
            let query = record_query(&landlord_id, &["name"], &hcb_token, &format!("mixed-{round}-{i}"));
            let hcb = hcb.clone();
            async move { hcb.run_query(query).await.must("HCB served and verified") }
        });
        let gsc_answers = (0..CONCURRENT / 2).map(|i| {
            let query = gsc_query(round * CONCURRENT + i);
            let gsc = gsc.clone();
            async move { gsc.run_query(query).await.must("GSC served and verified") }
        });
        let (hcb_answers, gsc_answers) =
            tokio::join!(futures::future::join_all(hcb_answers), futures::future::join_all(gsc_answers));
        let after = psb.log_status(PSB).await.must("status after");
        let mut by_member: Vec<GroupsBySignature> = Vec::new();
        for answers in [&hcb_answers, &gsc_answers] {
            let mut groups = GroupsBySignature::new();
            for a in answers {
                let (signature, size, index) = group_of(a);
                let g = groups.entry(signature).or_insert((size, BTreeSet::new()));
                assert_eq!(g.0, size, "one size per signature");
                assert!(g.1.insert(index), "one answer per leaf");
            }
            for (size, leaves) in groups.values() {
                assert_eq!(leaves.len() as u64, *size, "a member's tree holds its own answers only");
            }
            by_member.push(groups);
        }
        assert!(by_member[0].keys().all(|s| !by_member[1].contains_key(s)), "no signature shared by two members");
        let groups = (by_member[0].len() + by_member[1].len()) as u64;
        let syncs = after.log_syncs - before.log_syncs;
        // Fewer commits than trees: some commit held both members' answers, in two trees.
        if syncs < groups {
            shared_commit = true;
            break;
        }
    }
    assert!(shared_commit, "in ten rounds no group commit held both members' answers");
}
