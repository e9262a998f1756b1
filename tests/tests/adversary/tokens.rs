//! Consent tokens by RFC 8725, attacked with the catalog's own signing key (read from the
//! federation's key file, as a thief of that file could): a token that says more than the
//! catalog ever issues is refused however well it is signed. Each refusal is precise, returns
//! no data, and is logged.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use exchange_core::token::{ConsentClaims, MAX_TOKEN_LIFETIME_SECS};
use exchange_localnet::data::{HCB, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL, Scope, face_scan_consent};
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic::Code;

const FIELDS: [&str; 2] = ["name", "status"];

/// A token with a header of the case's own, signed by the catalog's key.
fn sign_with_header(fed: &TestFed, header: &serde_json::Value, claims: &ConsentClaims) -> String {
    let key =
        exchange_pki::keyfile::read_signing_key(&fed.net.dir().join("keys/token.pem")).must("catalog signing key");
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).must("claims json"));
    let signature = ed25519_dalek::Signer::sign(&key, format!("{h}.{body}").as_bytes());
    format!("{h}.{body}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_saying_more_than_the_catalog_issues_are_refused() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let (consent, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &FIELDS)], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();

    // The catalog's own token is served: the refusals below are about what each forgery says.
    hcb.run_query(record_query(&landlord_id, &FIELDS, &token, "tok-baseline")).await.must("the real token is served");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let (header_b64, claims_b64) = (parts[0], parts[1]);
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).must("b64")).must("header json");
    let real: ConsentClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).must("b64")).must("claims json");
    assert_eq!((real.jti.as_str(), real.aud.as_str()), (consent.id.as_str(), PSB));
    let now = now_ms() / 1000;

    let with_crit = |crit: serde_json::Value| {
        let mut h = header.clone();
        h["crit"] = crit;
        h["x-exchange-ext"] = serde_json::json!(true);
        h
    };
    let cases: Vec<(&str, String, ReasonCode, &str)> = vec![
        (
            "tok-crit-unknown",
            sign_with_header(&fed, &with_crit(serde_json::json!(["x-exchange-ext"])), &real),
            ReasonCode::ConsentTokenRefused,
            "crit",
        ),
        (
            "tok-crit-empty",
            sign_with_header(&fed, &with_crit(serde_json::json!([])), &real),
            ReasonCode::ConsentTokenRefused,
            "crit",
        ),
        (
            "tok-iat-future",
            fed.forge_token(ConsentClaims { iat: now + 86_400, ..real.clone() }),
            ReasonCode::ConsentTokenInvalid,
            "in the future",
        ),
        (
            "tok-lifetime-years",
            fed.forge_token(ConsentClaims { exp: now + 3 * 365 * 86_400, ..real.clone() }),
            ReasonCode::ConsentTokenInvalid,
            "may live",
        ),
        // Separate keys (issue 16, item 8): a token signed by the catalog's checkpoint key or
        // its configuration key is no token, whatever it says.
        (
            "tok-checkpoint-key",
            fed.forge_token_with("checkpoint.pem", real.clone()),
            ReasonCode::ConsentTokenInvalid,
            "is not a known catalog key",
        ),
        (
            "tok-config-key",
            fed.forge_token_with("configuration.pem", real.clone()),
            ReasonCode::ConsentTokenInvalid,
            "is not a known catalog key",
        ),
        (
            "tok-sub-kind",
            fed.forge_token(ConsentClaims { sub_kind: "organisation".into(), ..real.clone() }),
            ReasonCode::ConsentWrongSubject,
            "another subject",
        ),
    ];
    assert!(real.exp - real.iat <= MAX_TOKEN_LIFETIME_SECS, "the catalog's own token is within the limit");

    let mut wrong = Vec::new();
    for (trace, forged, reason, words) in &cases {
        let (code, got, message) = refusal(hcb.run_query(record_query(&landlord_id, &FIELDS, forged, trace)).await);
        if (code, got) != (Code::PermissionDenied, *reason) || !message.contains(words) {
            wrong.push(format!(
                "{trace}: expected PERMISSION_DENIED {reason:?} naming {words:?}, got {code:?} {got:?}: {message}"
            ));
        }
        assert!(!message.contains(&landlord_id), "{trace}: the message repeats the subject id");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Each refusal reached the central log once, with its reason and no data served.
    for (trace, _, reason, _) in &cases {
        let entries = fed.central_entries(trace).await;
        assert_eq!(entries.len(), 1, "{trace}: one central entry");
        assert_eq!(entries[0].reason_code, *reason as i32, "{trace}: the logged reason");
        assert!(entries[0].fields.is_empty(), "{trace}: no field served");
    }
}

/// The claims of a token, as anyone holding it can read them.
fn claims_of(token: &str) -> ConsentClaims {
    let body = token.split('.').nth(1).must("a JWT body");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).must("base64url")).must("claims json")
}

/// One consent over two datasets (the landlord's record and certificate), dataset by
/// dataset: each token carries exactly the fields consented for its own dataset, and a name
/// both schemas hold (`address`) is consented only where the subject said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consented_fields_are_kept_per_dataset() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let scopes: [Scope<'_>; 2] = [(POPULATION, &["name", "status"]), (PROPERTY_CERTIFICATE, &["area", "address"])];
    let (consent, population) = fed.consent_token(HCB, &landlord_id, &scopes, RENTAL, POPULATION).await;
    assert_eq!(claims_of(&population).fld, ["name", "status"], "the population token holds its own scope only");
    let property = fed.client(HCB).issue_consent_token(&consent.id, PROPERTY_CERTIFICATE).await.must("second token");
    assert_eq!(claims_of(&property.token).fld, ["address", "area"], "the certificate token holds its own scope");
    assert_eq!(consent.scopes.len(), 2, "the consent keeps its scopes: {consent:?}");

    // A scope's fields are its own dataset's: `area` is no field of the population record.
    let consents_before = recorded_consents(&fed).await;
    let hcb = fed.client(HCB);
    let wrong_field = face_scan_consent(&landlord_id, HCB, &[(POPULATION, &["name", "area"])], RENTAL, "E2E");
    let (code, reason, field, message) = catalog_refusal(hcb.record_consent(wrong_field).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::FieldNotInSchema), "{message}");
    assert_eq!(field, "scopes[0].fields[1]", "{message}");
    assert!(message.contains("area") && message.contains(POPULATION), "{message}");

    // A dataset twice, or both forms at once, is refused: the consent must say one thing.
    let twice =
        face_scan_consent(&landlord_id, HCB, &[(POPULATION, &["name"]), (POPULATION, &["status"])], RENTAL, "E2E");
    let (code, _, field, message) = catalog_refusal(hcb.record_consent(twice).await);
    assert_eq!((code, field.as_str()), (Code::InvalidArgument, "scopes[1].dataset"), "{message}");
    let mut both = face_scan_consent(&landlord_id, HCB, &[(POPULATION, &["name"])], RENTAL, "E2E");
    both.datasets = vec![POPULATION.into()];
    both.fields = vec!["name".into()];
    let (code, _, field, message) = catalog_refusal(hcb.record_consent(both).await);
    assert_eq!((code, field.as_str()), (Code::InvalidArgument, "scopes"), "{message}");

    // The one-list shorthand cannot say whose `address` the subject meant: refused, naming
    // both datasets, instead of consenting it for both.
    let mut shorthand = face_scan_consent(&landlord_id, HCB, &[], RENTAL, "E2E");
    shorthand.datasets = vec![POPULATION.into(), PROPERTY_CERTIFICATE.into()];
    shorthand.fields = vec!["name".into(), "address".into(), "area".into()];
    let (code, reason, field, message) = catalog_refusal(hcb.record_consent(shorthand.clone()).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::MalformedRequest), "{message}");
    assert_eq!(field, "fields[1]", "{message}");
    assert!(message.contains(POPULATION) && message.contains(PROPERTY_CERTIFICATE), "{message}");
    // A shorthand dataset that gets no field is refused too.
    shorthand.fields = vec!["name".into()];
    let (code, _, field, message) = catalog_refusal(hcb.record_consent(shorthand.clone()).await);
    assert_eq!((code, field.as_str()), (Code::InvalidArgument, "fields"), "{message}");
    assert!(message.contains(PROPERTY_CERTIFICATE), "{message}");
    assert_eq!(recorded_consents(&fed).await, consents_before, "a refused consent is not kept");

    // An unambiguous shorthand still works, and is kept as scopes.
    shorthand.fields = vec!["name".into(), "area".into()];
    let kept = hcb.record_consent(shorthand).await.must("an unambiguous shorthand");
    let scopes: Vec<(&str, Vec<&str>)> =
        kept.scopes.iter().map(|s| (s.dataset.as_str(), s.fields.iter().map(String::as_str).collect())).collect();
    assert_eq!(scopes, [(POPULATION, vec!["name"]), (PROPERTY_CERTIFICATE, vec!["area"])]);
}

/// The catalog's refusal of a call: status, reason, field and message.
fn catalog_refusal<T: std::fmt::Debug>(result: exchange_client_sdk::Result<T>) -> (Code, ReasonCode, String, String) {
    match result {
        Err(exchange_client_sdk::Error::Refused { code, reason, field, message, .. }) => (code, reason, field, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// How many consents the central log says were recorded.
async fn recorded_consents(fed: &TestFed) -> usize {
    fed.whole_log().await.iter().filter_map(|e| e.event.as_ref()).filter(|e| e.action == "consent.record").count()
}
