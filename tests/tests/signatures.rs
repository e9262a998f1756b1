//! Signed answers: a node that signs with a key other than the one registered for it in the
//! federation configuration (stolen certificate, mis-deployed key, a man in the middle with
//! the node's TLS identity) gets its answers refused by the SDK as BadSignature, never as data;
//! once the operator registers the new key (a rotation), its answers verify again.

use exchange_client_sdk::{Error, NodeQuery};
use exchange_localnet::data::{HCB, OPS, PNR, PROPERTY_CERTIFICATE, RENTAL};
use exchange_proto::v1::{GetLicenceRequest, UpdateMemberRequest};
use exchange_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_signed_with_an_unregistered_key_are_refused() {
    let mut fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (landlord_id, cert_no) = (landlord["id_number"].clone(), property["cert_no"].clone());
    let (_, token) = fed
        .consent_token(HCB, &landlord_id, &[(PROPERTY_CERTIFICATE, &["address"])], RENTAL, PROPERTY_CERTIFICATE)
        .await;
    let query = NodeQuery::Licence(GetLicenceRequest {
        context: ctx(RENTAL, "signature"),
        dataset: PROPERTY_CERTIFICATE.into(),
        licence_id: cert_no,
        fields: vec!["address".into()],
        consent_token: token,
        version: 0,
    });
    let hcb = fed.client(HCB).clone();
    hcb.run_query(query.clone()).await.must("served under the registered key");

    // The node restarts with another signing key; the catalog still lists the registered one.
    fed.net.kill(PNR).await.must("stop the node");
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    exchange_pki::keyfile::write_signing_key(&fed.net.dir().join(format!("keys/{PNR}-signing.pem")), &stranger)
        .must("replace the key");
    fed.net.restart(PNR).await.must("restart the node");
    match hcb.run_query(query.clone()).await {
        Err(Error::BadSignature(message)) => assert!(message.contains(PNR), "{message}"),
        Err(other) => panic!("expected BadSignature, got {other}"),
        Ok(answer) => panic!("an answer signed by an unregistered key was returned as data by {}", answer.node()),
    }

    // Key rotation, as the runbook does it: the operator registers the node's new key; the
    // SDK, seeing an answer under a key it does not know, re-reads the signed configuration
    // and accepts the answer only under the key registered there.
    fed.client(OPS)
        .update_member(UpdateMemberRequest {
            dept_id: PNR.into(),
            node_signing_key: stranger.verifying_key().as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .must("register the new key");
    let answer = hcb.run_query(query).await.must("served under the rotated key");
    assert_eq!(answer.node(), PNR);
}
