//! Attacks on the catalog and the central log: see the suite's documentation in `main.rs`.
//!
//! Each member sees only the entries it is a party to.

use exchange_client_sdk::NodeQuery;
use exchange_client_sdk::localnet::data::{AUDIT, GSC, HCB, OPENING, POPULATION, RENTAL};
use exchange_client_sdk::log::{verify_inclusion_of, verify_inclusion_proof};
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic::Code;

/// The refusal of a call that must be refused: its status code, reason and message.
fn refused<T: std::fmt::Debug>(result: exchange_client_sdk::Result<T>) -> (Code, ReasonCode, String) {
    match result {
        Err(exchange_client_sdk::Error::Refused { code, reason, message, .. }) => (code, reason, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A population-record query for `subject` by the service centre, for business opening.
fn opening_query(subject: &str, token: &str, trace: &str) -> NodeQuery {
    NodeQuery::Record(GetRecordRequest {
        context: ctx(OPENING, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        fields: vec!["name".into()],
        consent_token: token.into(),
        version: 0,
    })
}

/// Whether `dept` is a party (requester or provider) of `event`.
fn party(event: &AccessEvent, dept: &str) -> bool {
    event.requester == dept || event.provider == dept
}

/// Regression (issue 16): the housing bureau walked `GetInclusionProof` over the whole log
/// and read the entries of other departments' queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_only_the_entries_it_is_a_party_to() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    // The housing bureau and the service centre both read the landlord's population record.
    let (_, hcb_token) = fed.consent_token(HCB, &landlord_id, &[POPULATION], &["name"], RENTAL, POPULATION).await;
    fed.client(HCB)
        .run_query(record_query(&landlord_id, &["name"], &hcb_token, "adv-vis-hcb"))
        .await
        .must("the housing bureau's read");
    let (_, gsc_token) = fed.consent_token(GSC, &landlord_id, &[POPULATION], &["name"], OPENING, POPULATION).await;
    fed.client(GSC).run_query(opening_query(&landlord_id, &gsc_token, "adv-vis-gsc")).await.must("the centre's read");
    let gsc_read = fed.central_entries("adv-vis-gsc").await;
    assert_eq!(gsc_read.len(), 1, "{gsc_read:?}");

    let auditor = fed.client(AUDIT);
    let hcb = fed.client(HCB);
    let head = auditor.verified_tree_head(None).await.must("tree head");
    let all = fed.whole_log().await;
    assert_eq!(all.len() as u64, head.size());

    // The walk: hashes for every entry, the entry only where the bureau is a party.
    let (mut shown, mut hidden) = (0, 0);
    for held in &all {
        let event = held.event.as_ref().expect("an auditor reads every event");
        let proof = hcb.inclusion_proof(held.index, head.size()).await.must("inclusion proof");
        if party(event, HCB) {
            shown += 1;
            assert_eq!(proof.entry.as_ref(), Some(held), "entry {}", held.index);
            verify_inclusion_proof(&proof, &head).must("the bureau's own entry verifies");
        } else {
            hidden += 1;
            assert!(proof.entry.is_none(), "entry {} leaked to {HCB}: {event:?}", held.index);
            // The hashes are real: they prove the entry to whoever holds it.
            verify_inclusion_of(held, &proof, &head).must("hashes only, and they verify");
        }
        // An auditor still gets every entry.
        let whole = auditor.inclusion_proof(held.index, head.size()).await.must("auditor's proof");
        assert_eq!(whole.entry.as_ref(), Some(held), "entry {}", held.index);
    }
    assert!(shown > 0 && hidden > 0, "shown {shown}, hidden {hidden}");

    // Audit queries follow the same rule, whatever the filter asks for.
    let mine = hcb.query_access_log(QueryAccessLogRequest::default()).await.must("own entries").entries;
    let expected: Vec<&LogEntry> =
        all.iter().filter(|e| e.event.as_ref().is_some_and(|ev| party(ev, HCB))).take(mine.len()).collect();
    assert!(!mine.is_empty());
    assert_eq!(mine.iter().collect::<Vec<_>>(), expected, "the bureau's page is its own entries in order");
    let others = hcb
        .query_access_log(QueryAccessLogRequest { requester: GSC.into(), ..Default::default() })
        .await
        .must("asking for the centre's entries");
    assert!(others.entries.is_empty(), "{:?}", others.entries);
    let by_trace = hcb
        .query_access_log(QueryAccessLogRequest { trace_id: "adv-vis-gsc".into(), ..Default::default() })
        .await
        .must("asking for the centre's trace");
    assert!(by_trace.entries.is_empty(), "{:?}", by_trace.entries);
    let (code, reason, _) = refused(hcb.log_entries(0, 10).await);
    assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::RoleRequired));

    // As a portal, the bureau sees the landlord's entries only in the subject's own view,
    // the centre's read included; its proof of that entry carries hashes only.
    let view = hcb
        .subject_access_view(SubjectAccessViewRequest { subject: person(&landlord_id), from_unix_ms: 0, page: None })
        .await
        .must("subject view");
    let centre = view
        .entries
        .iter()
        .find(|e| e.event.as_ref().is_some_and(|ev| ev.trace_id == "adv-vis-gsc"))
        .expect("the centre's read is in the landlord's view");
    let proof = hcb.inclusion_proof(centre.index, head.size()).await.must("proof of the centre's read");
    assert!(proof.entry.is_none(), "a portal's proof carries hashes only");
    verify_inclusion_of(centre, &proof, &head).must("the portal proves the entry it holds");
    let digest = &centre.event.as_ref().expect("event").subject_digest;
    assert!(view.entries.iter().all(|e| e.event.as_ref().is_some_and(|ev| ev.subject_digest == *digest)));
    let by_digest = hcb
        .query_access_log(QueryAccessLogRequest { subject_digest: digest.clone(), ..Default::default() })
        .await
        .must("asking by digest");
    assert!(by_digest.entries.iter().all(|e| e.event.as_ref().is_some_and(|ev| party(ev, HCB))));
}
