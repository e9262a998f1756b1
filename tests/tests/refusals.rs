//! The refusal matrix over a real federation: every case is refused with the exact gRPC
//! status and reason, a message naming the failed check, no data, and (where the caller is
//! known, i.e. past the TLS handshake) an entry in the node's access log that reaches the
//! central log.

use std::time::Duration;

use exchange_client_sdk::NodeQuery;
use exchange_core::token::ConsentClaims;
use exchange_localnet::data::{
    AMR, BUSINESS_LICENCE, GSC, HCB, OPENING, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL,
};
use exchange_pki::{CertKind, CertSpec, FederationCa};
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const LANDLORD_FIELDS: [&str; 3] = ["id_number", "name", "status"];

struct Expect {
    trace: String,
    reason: ReasonCode,
}

fn claims(consent_id: &str, subject: &str) -> ConsentClaims {
    let now = now_ms() / 1000;
    ConsentClaims {
        iss: String::new(),
        aud: PSB.into(),
        sub: subject.into(),
        sub_kind: "person".into(),
        req: HCB.into(),
        ds: POPULATION.into(),
        fld: LANDLORD_FIELDS.map(String::from).to_vec(),
        pur: RENTAL.into(),
        iat: now,
        nbf: now,
        exp: now + 120,
        jti: consent_id.into(),
    }
}

/// The node of `dept` reached over TLS with the given configuration, bypassing the SDK.
async fn raw_node(
    fed: &TestFed,
    dept: &str,
    tls: ClientTlsConfig,
) -> Result<NodeClient<tonic::transport::Channel>, String> {
    let port = fed.net.port(dept).expect("node port");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(NodeClient::new(channel))
}

fn get_record(subject: &str, token: &str, trace: &str) -> GetRecordRequest {
    GetRecordRequest {
        context: ctx(RENTAL, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        fields: vec!["name".into()],
        consent_token: token.into(),
        version: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_precise_returns_no_data_and_is_logged() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let cert_no = property["cert_no"].clone();
    let tenant_id =
        fed.data.persons.iter().map(|p| p["id_number"].clone()).find(|id| *id != landlord_id).expect("a tenant");
    let (consent, token) =
        fed.consent_token(HCB, &landlord_id, &[(POPULATION, &LANDLORD_FIELDS)], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let mut logged: Vec<Expect> = Vec::new();
    let mut wrong: Vec<String> = Vec::new();

    // The served baseline: exactly the requested ∩ granted ∩ consented fields.
    let served = hcb.run_query(record_query(&landlord_id, &["name", "status"], &token, "ok-1")).await.must("served");
    let exchange_client_sdk::NodeAnswer::Record(answer) = served else { panic!("a record answer") };
    let names: Vec<&str> =
        answer.answer().record.as_ref().expect("record").fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["name", "status"]);

    let mut case = |name: &str,
                    result: exchange_client_sdk::Result<exchange_client_sdk::NodeAnswer>,
                    code: Code,
                    reason: ReasonCode,
                    words: &[&str]| {
        let (got_code, got_reason, message) = refusal(result);
        if (got_code, got_reason) != (code, reason) {
            wrong.push(format!("{name}: expected {code:?} {reason:?}, got {got_code:?} {got_reason:?}: {message}"));
        }
        let lower = message.to_lowercase();
        for w in words {
            if !lower.contains(&w.to_lowercase()) {
                wrong.push(format!("{name}: the message should name {w:?}: {message}"));
            }
        }
        assert!(!message.contains(&landlord_id), "{name}: the message repeats the subject id: {message}");
        logged.push(Expect { trace: name.to_string(), reason });
    };

    // Grants.
    let amr = fed.client(AMR).clone();
    case(
        "no-grant",
        amr.run_query(NodeQuery::Record(GetRecordRequest {
            context: ctx(RENTAL, "no-grant"),
            ..get_record(&landlord_id, &token, "no-grant")
        }))
        .await,
        Code::PermissionDenied,
        ReasonCode::NoGrant,
        &["grant"],
    );
    case(
        "purpose-not-granted",
        hcb.run_query(NodeQuery::Record(GetRecordRequest {
            context: ctx(OPENING, "purpose-not-granted"),
            ..get_record(&landlord_id, &token, "purpose-not-granted")
        }))
        .await,
        Code::PermissionDenied,
        ReasonCode::PurposeNotGranted,
        &["purpose"],
    );
    case(
        "field-not-granted",
        hcb.run_query(record_query(&landlord_id, &["name", "birth_date"], &token, "field-not-granted")).await,
        Code::PermissionDenied,
        ReasonCode::FieldNotGranted,
        &["birth_date"],
    );
    let (_, narrow) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    case(
        "field-not-consented",
        hcb.run_query(record_query(&landlord_id, &["name", "status"], &narrow, "field-not-consented")).await,
        Code::PermissionDenied,
        ReasonCode::FieldNotConsented,
        &["status"],
    );

    // The short grant has expired by now, or will within its life: wait for it, bounded.
    // While it lives, the query is refused for want of consent (business licences hold
    // personal data), under the same trace.
    let licence_no = fed.data.businesses[0]["licence_no"].clone();
    let expired_grant = wait_for("the short grant expires", Duration::from_secs(30), || {
        let hcb = hcb.clone();
        let licence_no = licence_no.clone();
        async move {
            let result = hcb
                .run_query(NodeQuery::Licence(GetLicenceRequest {
                    context: ctx(RENTAL, "grant-expired"),
                    dataset: BUSINESS_LICENCE.into(),
                    licence_id: licence_no,
                    fields: vec!["status".into()],
                    consent_token: String::new(),
                    version: 0,
                }))
                .await;
            let expired = result.as_ref().err().and_then(|e| e.reason()) == Some(ReasonCode::GrantExpired);
            expired.then_some(result)
        }
    })
    .await;
    case("grant-expired", expired_grant, Code::PermissionDenied, ReasonCode::GrantExpired, &["expired"]);

    // Consent tokens.
    case(
        "token-missing",
        hcb.run_query(record_query(&landlord_id, &["name"], "", "token-missing")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentRequired,
        &["consent"],
    );
    let now = now_ms() / 1000;
    let forged = |c: ConsentClaims| fed.forge_token(c);
    let expired =
        forged(ConsentClaims { iat: now - 600, nbf: now - 600, exp: now - 300, ..claims(&consent.id, &landlord_id) });
    case(
        "token-expired",
        hcb.run_query(record_query(&landlord_id, &["name"], &expired, "token-expired")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenExpired,
        &["expired"],
    );
    let early = forged(ConsentClaims { nbf: now + 600, exp: now + 900, ..claims(&consent.id, &landlord_id) });
    case(
        "token-not-yet-valid",
        hcb.run_query(record_query(&landlord_id, &["name"], &early, "token-not-yet-valid")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenNotYetValid,
        &["not valid before"],
    );
    let other_audience = forged(ConsentClaims { aud: "gov.sz.pnr".into(), ..claims(&consent.id, &landlord_id) });
    case(
        "token-wrong-audience",
        hcb.run_query(record_query(&landlord_id, &["name"], &other_audience, "token-wrong-audience")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentWrongAudience,
        &["provider", "gov.sz.pnr"],
    );
    let other_requester = forged(ConsentClaims { req: GSC.into(), ..claims(&consent.id, &landlord_id) });
    case(
        "token-wrong-requester",
        hcb.run_query(record_query(&landlord_id, &["name"], &other_requester, "token-wrong-requester")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentWrongRequester,
        &["issued to gov.sz.ft.gsc", "caller gov.sz.hcb"],
    );
    case(
        "token-wrong-subject",
        hcb.run_query(record_query(&tenant_id, &["name"], &token, "token-wrong-subject")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentWrongSubject,
        &["subject"],
    );
    let other_dataset =
        forged(ConsentClaims { ds: "gov.sz.psb/household".into(), ..claims(&consent.id, &landlord_id) });
    case(
        "token-wrong-dataset",
        hcb.run_query(record_query(&landlord_id, &["name"], &other_dataset, "token-wrong-dataset")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentWrongDataset,
        &["dataset"],
    );
    let payload = base64_url(&serde_json::to_vec(&claims(&consent.id, &landlord_id)).expect("claims json"));
    let unsigned = format!("{}.{payload}.", base64_url(br#"{"alg":"none","typ":"JWT"}"#));
    case(
        "token-alg-none",
        hcb.run_query(record_query(&landlord_id, &["name"], &unsigned, "token-alg-none")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenRefused,
        &["algorithm none", "EdDSA"],
    );
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&consent.id, &landlord_id),
        &jsonwebtoken::EncodingKey::from_secret(fed.net.catalog_key().as_bytes()),
    )
    .expect("hs256 token");
    case(
        "token-hs256-public-key",
        hcb.run_query(record_query(&landlord_id, &["name"], &hmac, "token-hs256-public-key")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenRefused,
        &["HS256", "EdDSA"],
    );
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let foreign = exchange_core::token::TokenIssuer::new(exchange_localnet::LOG_ORIGIN, &stranger)
        .expect("issuer")
        .issue(claims(&consent.id, &landlord_id))
        .expect("token");
    case(
        "token-other-key",
        hcb.run_query(record_query(&landlord_id, &["name"], &foreign, "token-other-key")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenInvalid,
        &["token"],
    );
    let oversized = format!("{}.{}.sig", base64_url(br#"{"alg":"EdDSA"}"#), "A".repeat(5000));
    case(
        "token-oversized",
        hcb.run_query(record_query(&landlord_id, &["name"], &oversized, "token-oversized")).await,
        Code::PermissionDenied,
        ReasonCode::ConsentTokenRefused,
        &["4096"],
    );

    // Request shape.
    let no_reason = GetRecordRequest {
        context: Some(QueryContext {
            purpose_code: RENTAL.into(),
            reason: String::new(),
            trace_id: "reason-missing".into(),
        }),
        ..get_record(&landlord_id, &token, "reason-missing")
    };
    case(
        "reason-missing",
        hcb.run_query(NodeQuery::Record(no_reason)).await,
        Code::InvalidArgument,
        ReasonCode::ReasonInvalid,
        &["reason"],
    );
    let long_reason = GetRecordRequest {
        context: Some(QueryContext {
            purpose_code: RENTAL.into(),
            reason: "因".repeat(201),
            trace_id: "reason-too-long".into(),
        }),
        ..get_record(&landlord_id, &token, "reason-too-long")
    };
    case(
        "reason-too-long",
        hcb.run_query(NodeQuery::Record(long_reason)).await,
        Code::InvalidArgument,
        ReasonCode::ReasonInvalid,
        &["200"],
    );
    let mut bad_id = landlord_id.clone();
    let last = if bad_id.ends_with('0') { "1" } else { "0" };
    bad_id.replace_range(17.., last);
    case(
        "malformed-resident-id",
        hcb.run_query(record_query(&bad_id, &["name"], &token, "malformed-resident-id")).await,
        Code::InvalidArgument,
        ReasonCode::MalformedIdentifier,
        &["check"],
    );
    let gsc = fed.client(GSC).clone();
    let company = fed.data.businesses[0].clone();
    let mut bad_code = company["credit_code"].clone();
    let last = if bad_code.ends_with('0') { "1" } else { "0" };
    bad_code.replace_range(17.., last);
    case(
        "malformed-credit-code",
        gsc.run_query(NodeQuery::VerifyLicence(VerifyLicenceRequest {
            context: ctx(OPENING, "malformed-credit-code"),
            dataset: BUSINESS_LICENCE.into(),
            licence_id: company["licence_no"].clone(),
            holder: Some(Subject { kind: SubjectKind::Organisation as i32, id: bad_code }),
            fields: vec![],
            consent_token: String::new(),
        }))
        .await,
        Code::InvalidArgument,
        ReasonCode::MalformedIdentifier,
        &["check"],
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let items: Vec<GetRecordRequest> = (0..101).map(|_| get_record(&landlord_id, &token, "batch-too-large")).collect();
    let batch = hcb
        .batch_get_records(BatchGetRecordsRequest {
            context: ctx(RENTAL, "batch-too-large"),
            dataset: POPULATION.into(),
            items: items
                .into_iter()
                .map(|r| RecordItem { subject: r.subject, fields: r.fields, consent_token: r.consent_token })
                .collect(),
        })
        .await;
    match batch {
        Err(exchange_client_sdk::Error::Refused { code, reason, message, .. }) => {
            assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::BatchTooLarge), "{message}");
            assert!(message.contains("100"), "the message names the limit: {message}");
            logged.push(Expect { trace: "batch-too-large".into(), reason: ReasonCode::BatchTooLarge });
        }
        other => panic!("a batch of 101 must be refused, got {other:?}"),
    }

    // Rate limit: the grant allows TIGHT_RATE_PER_MINUTE a minute (with the holder's consent:
    // the certificates hold personal data).
    let certificate = fed.data.properties[0]["cert_no"].clone();
    let (_, holder_token) = fed
        .consent_token(
            GSC,
            &fed.data.properties[0]["holder_id"],
            &[(PROPERTY_CERTIFICATE, &["cert_no", "area"])],
            OPENING,
            PROPERTY_CERTIFICATE,
        )
        .await;
    let rated = |trace: &str| {
        NodeQuery::Licence(GetLicenceRequest {
            context: ctx(OPENING, trace),
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: certificate.clone(),
            fields: vec!["cert_no".into(), "area".into()],
            consent_token: holder_token.clone(),
            version: 0,
        })
    };
    let mut refused = None;
    for i in 0..=TIGHT_RATE_PER_MINUTE {
        match gsc.run_query(rated(&format!("rate-{i}"))).await {
            Ok(_) => assert!(i < TIGHT_RATE_PER_MINUTE, "query {i} beyond the rate limit was served"),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (i, error) = refused.expect("the rate limit refuses");
    assert_eq!(i, TIGHT_RATE_PER_MINUTE, "refused too early: {error}");
    match &error {
        exchange_client_sdk::Error::Refused { code, reason, retry_after, .. } => {
            assert_eq!((*code, *reason), (Code::ResourceExhausted, ReasonCode::RateLimited));
            assert!(retry_after.is_some_and(|d| d > Duration::ZERO), "RATE_LIMITED says when to retry: {error}");
        }
        other => panic!("expected RATE_LIMITED, got {other}"),
    }
    logged.push(Expect { trace: format!("rate-{i}"), reason: ReasonCode::RateLimited });

    // A certificate for another department than the one the request names: the housing
    // bureau loading records into the population base of public security.
    let (header, chunks) = import_request(POPULATION, "not-mine", &fed.data.persons[..1], None);
    match hcb.import(header, chunks, |_| {}).await {
        Err(exchange_client_sdk::Error::Refused { code, message, .. }) => {
            assert_eq!(code, Code::PermissionDenied, "{message}");
            assert!(message.contains(PSB), "the message names the dataset's owner: {message}");
        }
        other => panic!("an import into another department's dataset must be refused, got {other:?}"),
    }

    // No client certificate: refused before any handler runs (there is no caller to log).
    let ca = Certificate::from_pem(std::fs::read(fed.net.dir().join("pki/ca.crt")).expect("ca"));
    let anonymous = ClientTlsConfig::new().ca_certificate(ca.clone()).domain_name("localhost");
    let mut node = raw_node(&fed, PSB, anonymous).await.expect("TLS without a client certificate connects");
    let status = node.get_record(get_record(&landlord_id, &token, "anonymous")).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("certificate"), "{status:?}");

    // A certificate from another CA: the handshake itself fails.
    let other_ca = FederationCa::generate("another federation").expect("ca");
    let impostor = other_ca.issue(&CertSpec::new(HCB, CertKind::Client)).expect("cert");
    let foreign_tls = ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(Identity::from_pem(&impostor.cert_pem, &impostor.key_pem))
        .domain_name("localhost");
    match raw_node(&fed, PSB, foreign_tls).await {
        Err(_) => {}
        Ok(mut node) => {
            let status = node.get_record(get_record(&landlord_id, &token, "foreign-ca")).await.expect_err("refused");
            assert!(
                // The handshake is refused; in TLS 1.3 the client may send its request before
                // it reads the alert, so the call ends as whichever the connection's end looks like.
                matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Unauthenticated | Code::Cancelled),
                "a foreign certificate must not reach a handler: {status:?}"
            );
        }
    }

    // Every refusal with a known caller is in the central log, once, refused, with its reason.
    for expect in &logged {
        let mut entries = fed.central_entries(&expect.trace).await;
        if expect.trace == "grant-expired" {
            // Queries before the expiry were refused for want of consent, under the same trace.
            entries.retain(|e| e.reason_code != ReasonCode::ConsentRequired as i32);
        }
        assert_eq!(entries.len(), 1, "{}: {entries:?}", expect.trace);
        let e = &entries[0];
        assert_eq!(e.outcome, Outcome::Refused as i32, "{}", expect.trace);
        assert_eq!(e.reason_code, expect.reason as i32, "{}", expect.trace);
        assert!(e.fields.is_empty(), "{}: a refusal returns no field", expect.trace);
        // Refusals of a query that named a well-formed subject carry its digest, so that the
        // subject's own view shows attempts too; never the id in clear.
        let names_subject = expect.trace.starts_with("token-")
            || ["no-grant", "purpose-not-granted", "field-not-granted", "field-not-consented"]
                .contains(&expect.trace.as_str());
        assert_eq!(
            !e.subject_digest.is_empty(),
            names_subject,
            "{}: subject digest {:?}",
            expect.trace,
            e.subject_digest
        );
        assert!(!e.subject_digest.contains(&landlord_id), "{}", expect.trace);
    }
    let served = fed.central_entries("ok-1").await;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].fields, ["name", "status"]);
    assert_eq!(served[0].outcome, Outcome::Served as i32);
    let _ = cert_no;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
