//! Signed answers: a node that signs with a key other than the one registered for it in the
//! federation configuration (stolen certificate, mis-deployed key, a man in the middle with
//! the node's TLS identity) gets its answers refused by the SDK as BadSignature, never as data;
//! once the operator registers the new key (a rotation), its answers verify again.

use exchange_client_sdk::{Error, NodeQuery};
use exchange_localnet::data::{HCB, OPS, PNR, PROPERTY_CERTIFICATE, RENTAL};
use exchange_proto::v1::{GetLicenceRequest, ReasonCode, UpdateMemberRequest};
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

/// A node's key rotated the runbook's way (publish, switch the node by SIGHUP, switch the
/// registration, retire): every answer during the rotation verifies, and after retirement an
/// answer signed with the retired key is refused as a bad signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_node_key_rotates_without_refusals() {
    let mut fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (landlord_id, cert_no) = (landlord["id_number"].clone(), property["cert_no"].clone());
    let (_, token) = fed
        .consent_token(HCB, &landlord_id, &[(PROPERTY_CERTIFICATE, &["address"])], RENTAL, PROPERTY_CERTIFICATE)
        .await;
    let request = GetLicenceRequest {
        context: ctx(RENTAL, "rotation"),
        dataset: PROPERTY_CERTIFICATE.into(),
        licence_id: cert_no,
        fields: vec!["address".into()],
        consent_token: token,
        version: 0,
    };
    let hcb = fed.client(HCB).clone();
    let ops = fed.client(OPS).clone();
    let key_file = fed.net.dir().join(format!("keys/{PNR}-signing.pem"));
    let old = exchange_pki::keyfile::read_signing_key(&key_file).must("the node's key");
    let new = ed25519_dalek::SigningKey::from_bytes(&[77u8; 32]);
    let id = |k: &ed25519_dalek::SigningKey| exchange_core::digest::key_id(k.verifying_key().as_bytes());
    let answer = hcb.get_licence(request.clone()).await.must("served under the registered key");
    assert_eq!(answer.key_id(), id(&old));

    // 1. Publish the next key; the node learns it with the configuration.
    let update = |f: fn(&mut UpdateMemberRequest, Vec<u8>), key: &ed25519_dalek::SigningKey| {
        let mut r = UpdateMemberRequest { dept_id: PNR.into(), ..Default::default() };
        f(&mut r, key.verifying_key().as_bytes().to_vec());
        r
    };
    ops.update_member(update(|r, k| r.publish_node_key = k, &new)).await.must("publish the next key");
    fed.net.wait_for_configuration().await.must("the node holds the published key");
    assert_eq!(hcb.get_licence(request.clone()).await.must("still the old key").key_id(), id(&old));

    // 2. The node switches on SIGHUP, without a restart: every answer meanwhile verifies.
    exchange_pki::keyfile::write_signing_key(&key_file, &new).must("the next key in place");
    let pid = fed.net.pid(PNR).must("the node runs");
    let status = std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status().must("kill -HUP");
    assert!(status.success());
    let mut switched = false;
    for _ in 0..200 {
        let answer = hcb.get_licence(request.clone()).await.must("no answer refused during the switch");
        if answer.key_id() == id(&new) {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(switched, "the node signs with the published key after SIGHUP");

    // 3. The registration switches; the old key stays published. 4. The old key is retired.
    ops.update_member(update(|r, k| r.node_signing_key = k, &new)).await.must("switch the registration");
    assert_eq!(hcb.get_licence(request.clone()).await.must("served after the switch").key_id(), id(&new));
    // Retiring the key the node signs with is refused.
    let refused = ops.update_member(update(|r, k| r.retire_node_key = k, &new)).await.expect_err("current key");
    assert!(
        matches!(
            refused,
            Error::Refused { code: tonic::Code::FailedPrecondition, reason: ReasonCode::InvalidState, .. }
        ),
        "{refused}"
    );
    ops.update_member(update(|r, k| r.retire_node_key = k, &old)).await.must("retire the old key");
    hcb.refresh_config().await.must("the configuration without the old key");

    // After retirement an answer signed by the retired key is refused.
    fed.net.kill(PNR).await.must("stop the node");
    exchange_pki::keyfile::write_signing_key(&key_file, &old).must("the retired key back");
    fed.net.restart(PNR).await.must("restart the node");
    match hcb.get_licence(request).await {
        Err(Error::BadSignature(message)) => assert!(message.contains(PNR), "{message}"),
        Err(other) => panic!("expected BadSignature, got {other}"),
        Ok(_) => panic!("an answer signed by a retired key was returned as data"),
    }
}
