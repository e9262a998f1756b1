//! The catalog's token key rotated the runbook's way on real daemons (`exchange-catalog keys
//! next|switch|retire`, each followed by SIGHUP): a token signed by the previous key is served
//! until the key is retired, tokens signed after the switch carry the new key id, and after
//! retirement the old token is refused with CONSENT_TOKEN_INVALID. Nodes and clients follow
//! without a restart or a new pin.

use exchange_client_sdk::Error;
use exchange_localnet::CATALOG;
use exchange_localnet::data::{HCB, PROPERTY_CERTIFICATE, RENTAL};
use exchange_proto::v1::{GetLicenceRequest, ReasonCode};
use exchange_tests::*;

fn keys_step(fed: &TestFed, step: &str) {
    let out =
        std::process::Command::new(exchange_localnet::default_bin_dir().must("binaries").join("exchange-catalog"))
            .args(["keys", step, "--purpose", "token", "--dir"])
            .arg(fed.net.dir().join("keys"))
            .output()
            .must("run exchange-catalog keys");
    assert!(out.status.success(), "keys {step}: {}", String::from_utf8_lossy(&out.stderr));
}

/// SIGHUP to the catalog, then waits until every node holds a configuration newer than
/// `before` (the reload publishes one).
async fn reload(fed: &TestFed, before: u64) -> u64 {
    let pid = fed.net.pid(CATALOG).must("the catalog runs");
    let status = std::process::Command::new("kill").arg("-HUP").arg(pid.to_string()).status().must("kill -HUP");
    assert!(status.success());
    for _ in 0..200 {
        let version = fed.net.wait_for_configuration().await.must("configuration");
        if version > before {
            return version;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the catalog published no configuration after SIGHUP");
}

fn token_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().must("header");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).must("base64url");
    let header: serde_json::Value = serde_json::from_slice(&json).must("json");
    header["kid"].as_str().must("kid").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_key_rotates_without_refusing_live_tokens() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (landlord_id, cert_no) = (landlord["id_number"].clone(), property["cert_no"].clone());
    let request = |token: String| GetLicenceRequest {
        context: ctx(RENTAL, "token-rotation"),
        dataset: PROPERTY_CERTIFICATE.into(),
        licence_id: cert_no.clone(),
        fields: vec!["address".into()],
        consent_token: token,
        version: 0,
    };
    let token =
        || fed.consent_token(HCB, &landlord_id, &[(PROPERTY_CERTIFICATE, &["address"])], RENTAL, PROPERTY_CERTIFICATE);
    let hcb = fed.client(HCB).clone();
    let (_, old_token) = token().await;
    let old_kid = token_kid(&old_token);
    hcb.get_licence(request(old_token.clone())).await.must("served under the first token key");

    let v0 = fed.net.wait_for_configuration().await.must("configuration");
    keys_step(&fed, "next");
    let v1 = reload(&fed, v0).await;
    hcb.get_licence(request(old_token.clone())).await.must("the next key published: old tokens still served");

    keys_step(&fed, "switch");
    let v2 = reload(&fed, v1).await;
    let (_, new_token) = token().await;
    assert_ne!(token_kid(&new_token), old_kid, "tokens are signed with the new key after the switch");
    hcb.get_licence(request(new_token.clone())).await.must("a token of the new key");
    hcb.get_licence(request(old_token.clone())).await.must("a live token of the previous key until retired");

    keys_step(&fed, "retire");
    reload(&fed, v2).await;
    hcb.get_licence(request(new_token)).await.must("the new key's tokens");
    match hcb.get_licence(request(old_token)).await {
        Err(e @ Error::Refused { .. }) => {
            assert_eq!(e.reason(), Some(ReasonCode::ConsentTokenInvalid), "{e}");
            assert!(e.to_string().contains(&old_kid), "{e}");
        }
        Err(other) => panic!("expected CONSENT_TOKEN_INVALID, got {other}"),
        Ok(_) => panic!("a token signed by a retired key was served"),
    }
}
