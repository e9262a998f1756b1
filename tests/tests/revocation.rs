//! Revocation: a consent revoked at the catalog is refused by every node that serves it,
//! pushed to the nodes through the watched federation configuration.

use std::time::{Duration, Instant};

use exchange_client_sdk::NodeQuery;
use exchange_localnet::data::{HCB, POPULATION, PROPERTY_CERTIFICATE, RENTAL, Scope};
use exchange_proto::v1::*;
use exchange_tests::*;

/// The promise is 2 s; the bound is wider so that a loaded CI machine does not fail a
/// correct build. The measured time is printed.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_consent_is_refused_by_every_node() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let cert_no = property["cert_no"].clone();
    let scopes: [Scope<'_>; 2] =
        [(POPULATION, &["id_number", "name", "status"]), (PROPERTY_CERTIFICATE, &["cert_no", "holder_id", "address"])];
    let (consent, population_token) = fed.consent_token(HCB, &landlord_id, &scopes, RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let property_token = hcb.issue_consent_token(&consent.id, PROPERTY_CERTIFICATE).await.must("token").token;
    let queries = vec![
        record_query(&landlord_id, &["name"], &population_token, "revocation"),
        NodeQuery::Licence(GetLicenceRequest {
            context: ctx(RENTAL, "revocation"),
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: cert_no,
            fields: vec!["holder_id".into(), "address".into()],
            consent_token: property_token,
            version: 0,
        }),
    ];
    for answer in hcb.fan_out(queries.clone()).await {
        answer.must("served before the revocation");
    }

    hcb.revoke_consent(&consent.id, "the citizen withdrew consent in the app").await.must("revoke");
    let revoked_at = Instant::now();
    for query in queries {
        let elapsed = wait_for("the revocation reaches the node", BOUND, || {
            let hcb = hcb.clone();
            let query = query.clone();
            async move {
                match hcb.run_query(query).await {
                    Ok(_) => None,
                    Err(e) => Some((e, revoked_at.elapsed())),
                }
            }
        })
        .await;
        let (error, took) = elapsed;
        assert_eq!(error.reason(), Some(ReasonCode::ConsentRevoked), "{error}");
        println!("revocation effective after {took:?}");
    }
    // Both refusals are in the central log, after the served answers.
    let entries = fed.central_entries("revocation").await;
    let outcomes: Vec<(String, i32, i32)> =
        entries.iter().map(|e| (e.dataset.clone(), e.outcome, e.reason_code)).collect();
    let refused: Vec<_> = outcomes.iter().filter(|o| o.1 == Outcome::Refused as i32).collect();
    assert_eq!(refused.len(), 2, "{outcomes:?}");
    assert!(refused.iter().all(|o| o.2 == ReasonCode::ConsentRevoked as i32), "{outcomes:?}");
}
