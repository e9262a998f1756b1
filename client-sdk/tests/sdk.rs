//! The SDK against a real catalog over mutual TLS on 127.0.0.1.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{CATALOG_ID, Federation, OPS, ORIGIN, POPULATION_SCHEMA};
use ed25519_dalek::SigningKey;
use exchange_client_sdk::log::{
    audit_verify_all, verify_consistency_proof, verify_inclusion_of, verify_inclusion_proof,
};
use exchange_client_sdk::{ClientConfig, ClientIdentity, Error, ExchangeClient, RetryPolicy};
use exchange_pki::{CertKind, CertSpec, FederationCa};
use exchange_proto::v1::*;
use tonic::Code;

const POPULATION: &str = "gov.sz.psb/population";
const PURPOSE: &str = "SZ-HCB-ZLBA-001";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn member(fed: &Federation, dept: &str, role: Role, node_key: Option<&SigningKey>) -> Member {
    Member {
        cert_fingerprints: vec![fed.fingerprint(dept)],
        dept_id: dept.into(),
        name: format!("{dept} name"),
        endpoint: if node_key.is_some() { "https://127.0.0.1:9".into() } else { String::new() },
        node_signing_key: node_key.map(|k| k.verifying_key().as_bytes().to_vec()).unwrap_or_default(),
        roles: vec![role as i32],
        ..Default::default()
    }
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, reason: ReasonCode) {
    match result {
        Err(Error::Refused { code: c, reason: r, message, .. }) => {
            assert_eq!((c, r), (code, reason), "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a refusal {code:?}/{reason:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_calls_configuration_and_log_proofs() {
    let fed = Federation::start().await;
    let ops = fed.client(OPS).await;
    let node_key = SigningKey::from_bytes(&[5; 32]);

    // Members.
    ops.register_member(member(&fed, "gov.sz.psb", Role::Department, Some(&node_key))).await.expect("register psb");
    ops.register_member(member(&fed, "gov.sz.hcb", Role::Department, None)).await.expect("register hcb");
    ops.register_member(member(&fed, "gov.sz.portal", Role::Portal, None)).await.expect("register portal");
    assert_refused(
        ops.register_member(member(&fed, "gov.sz.hcb", Role::Department, None)).await,
        Code::AlreadyExists,
        ReasonCode::AlreadyExists,
    );
    let members = ops.list_members().await.expect("list members");
    assert_eq!(members.len(), 4);
    assert_eq!(ops.get_member("gov.sz.psb").await.expect("get member").node_signing_key.len(), 32);

    // Schemas.
    let schema = ops.register_schema(POPULATION_SCHEMA).await.expect("register schema");
    assert_eq!(schema.reference, "std.record.population@1");
    assert_eq!(ops.get_schema("std.record.population", 0).await.expect("get schema").reference, schema.reference);
    assert_eq!(ops.list_schemas(false).await.expect("list schemas").len(), 1);
    assert!(matches!(ops.register_schema("{not json").await, Err(Error::InvalidInput(_))));

    // A dataset, a grant applied for and approved.
    let psb = fed.client("gov.sz.psb").await;
    let hcb = fed.client("gov.sz.hcb").await;
    let dataset = psb
        .publish_dataset(Dataset {
            id: POPULATION.into(),
            kind: DatasetKind::Record as i32,
            schema: schema.reference.clone(),
            share_class: ShareClass::Conditional as i32,
            legal_basis: "户口登记条例".into(),
            description_en: "Population records".into(),
            ..Default::default()
        })
        .await
        .expect("publish");
    assert!(dataset.personal_data);
    assert_refused(
        hcb.publish_dataset(Dataset { id: "gov.sz.psb/other".into(), ..dataset.clone() }).await,
        Code::PermissionDenied,
        ReasonCode::RoleRequired,
    );
    let listed = hcb.list_datasets(ListDatasetsRequest { query: "population".into(), ..Default::default() }).await;
    assert_eq!(listed.expect("list datasets").datasets.len(), 1);

    let grant = hcb
        .apply_grant(ApplyGrantRequest {
            dataset: POPULATION.into(),
            purposes: vec![PURPOSE.into()],
            fields: vec!["name".into(), "birth_date".into()],
            legal_basis: "住房租赁条例".into(),
            service_item: "房屋租赁登记备案".into(),
            ..Default::default()
        })
        .await
        .expect("apply");
    assert_eq!(grant.status, GrantStatus::Pending as i32);
    assert!(grant.consent_required, "personal data always needs consent");
    assert_refused(hcb.approve_grant(&grant.id, "").await, Code::PermissionDenied, ReasonCode::RoleRequired);
    let approved = psb.approve_grant(&grant.id, "ok").await.expect("approve");
    assert_eq!(approved.status, GrantStatus::Approved as i32);
    assert_refused(psb.approve_grant(&grant.id, "").await, Code::FailedPrecondition, ReasonCode::InvalidState);
    assert_eq!(hcb.list_grants(ListGrantsRequest::default()).await.expect("list grants").len(), 1);

    // Consent and a token.
    let portal = fed.client("gov.sz.portal").await;
    let consent = portal
        .record_consent(RecordConsentRequest {
            subject: Some(Subject { kind: SubjectKind::Person as i32, id: "11010519491231002X".into() }),
            requester: "gov.sz.hcb".into(),
            scopes: vec![ConsentScope { dataset: POPULATION.into(), fields: vec!["name".into(), "birth_date".into()] }],
            purpose_code: PURPOSE.into(),
            expires_at_unix_ms: now_ms() + 24 * 3600 * 1000,
            evidence: Some(ConsentEvidence {
                method: ConsentMethod::FaceScan as i32,
                channel: ConsentChannel::Online as i32,
                reference: "FS-0001".into(),
            }),
            application_id: "ZL-2024-0001".into(),
            ..Default::default()
        })
        .await
        .expect("record consent");
    let token = hcb.issue_consent_token(&consent.id, POPULATION).await.expect("token");
    assert_eq!(token.consent_id, consent.id);
    assert_eq!(token.token.split('.').count(), 3, "a JWT");
    assert_refused(
        psb.issue_consent_token(&consent.id, POPULATION).await,
        Code::PermissionDenied,
        ReasonCode::RoleRequired,
    );

    // The federation configuration, verified with the pinned key.
    let view = hcb.refresh_config().await.expect("configuration");
    assert_eq!(view.log_origin(), ORIGIN);
    assert_eq!(view.node("gov.sz.psb").and_then(|n| n.key), Some(node_key.verifying_key()));
    assert_eq!(view.config().grants.len(), 1);
    let stranger_key = SigningKey::from_bytes(&[1; 32]).verifying_key();
    let wrong_pin = ExchangeClient::connect(ClientConfig::new(
        fed.identity("gov.sz.hcb"),
        fed.endpoint.clone(),
        "localhost",
        CATALOG_ID,
        stranger_key,
    ))
    .await
    .expect("connect");
    assert!(matches!(wrong_pin.refresh_config().await, Err(Error::BadSignature(_))));
    assert!(matches!(wrong_pin.verified_tree_head(None).await, Err(Error::BadSignature(_))));

    // A node the configuration does not know is a configuration error, after one refresh.
    let unknown = hcb.get_record(GetRecordRequest { dataset: "gov.sz.nobody/data".into(), ..Default::default() }).await;
    assert!(matches!(unknown, Err(Error::Config(_))), "{unknown:?}");

    // The signed tree head, inclusion proofs, a consistency proof, the whole log.
    let head1 = ops.verified_tree_head(None).await.expect("tree head");
    assert!(head1.size() >= 8, "every administrative act is logged: {}", head1.size());
    // The housing bureau reads the entries it is a party to; of the others it gets the
    // proof's hashes, which verify with the entry an auditor holds.
    let mut hidden = 0;
    for index in 0..head1.size() {
        let proof = hcb.inclusion_proof(index, head1.size()).await.expect("inclusion proof");
        let whole = ops.inclusion_proof(index, head1.size()).await.expect("auditor's proof");
        let held = whole.entry.clone().expect("an auditor reads every entry");
        let event = held.event.clone().expect("event");
        let party = event.requester == "gov.sz.hcb" || event.provider == "gov.sz.hcb";
        assert_eq!(proof.entry.is_some(), party, "entry {index}: {event:?}");
        if party {
            verify_inclusion_proof(&proof, &head1).expect("inclusion verifies");
        } else {
            hidden += 1;
            assert!(verify_inclusion_proof(&proof, &head1).is_err(), "nothing to hash");
            verify_inclusion_of(&held, &proof, &head1).expect("the hashes verify the held entry");
        }
        verify_inclusion_proof(&whole, &head1).expect("inclusion verifies for the auditor");
    }
    assert!(hidden > 0, "the operator's own acts are not the housing bureau's to read");
    hcb.revoke_grant(&grant.id, "done").await.expect("revoke");
    let head2 = ops.verified_tree_head(None).await.expect("tree head");
    assert!(head2.size() > head1.size());
    let proof = ops.consistency_proof(head1.size(), head2.size()).await.expect("consistency proof");
    verify_consistency_proof(&proof, head1.size(), head1.root(), &head2).expect("consistency verifies");
    assert!(verify_consistency_proof(&proof, head1.size(), head2.root(), &head2).is_err());

    let mut calls = 0;
    let report = audit_verify_all(&ops, &head2, |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .await
    .expect("audit");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries_checked, head2.size());
    assert_eq!(report.recomputed_root, head2.root());
    assert!(calls >= 1);

    // Reading raw entries needs the auditor role.
    assert_refused(hcb.log_entries(0, 10).await, Code::PermissionDenied, ReasonCode::RoleRequired);
    let page = ops.query_access_log(QueryAccessLogRequest { dataset: POPULATION.into(), ..Default::default() }).await;
    assert!(!page.expect("audit query").entries.is_empty());
    let view = portal
        .subject_access_view(SubjectAccessViewRequest {
            subject: Some(Subject { kind: SubjectKind::Person as i32, id: "11010519491231002X".into() }),
            ..Default::default()
        })
        .await
        .expect("subject view");
    assert_eq!(view.entries.len(), 1, "the consent record");

    fed.catalog.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_members_and_foreign_certificates_are_told_apart() {
    let fed = Federation::start().await;

    // A federation certificate for a department that is not a member: refused by the catalog.
    let stranger = fed.client("gov.sz.stranger").await;
    assert_refused(stranger.list_members().await, Code::Unauthenticated, ReasonCode::UnknownMember);

    // A certificate of another CA: refused in the TLS handshake, reported as TLS.
    let other = FederationCa::generate("Other CA").expect("CA");
    let cert = other.issue(&CertSpec::new(OPS, CertKind::Client)).expect("cert");
    let anchors = format!("{}{}", fed.ca.cert_pem(), other.cert_pem());
    let identity = ClientIdentity::from_pem(&anchors, &cert.cert_pem, &cert.key_pem).expect("identity");
    let mut config = ClientConfig::new(identity, fed.endpoint.clone(), "localhost", CATALOG_ID, fed.catalog_key);
    config.retry = RetryPolicy::none();
    // The server refuses the handshake; whether the client reads the alert before the
    // connection closes is a race in TLS 1.3 (the client finishes its side first), so the
    // refusal shows as the TLS alert or as the connection closed (or the pipe broken) under
    // the connect or the first call.
    let refused = match ExchangeClient::connect(config).await {
        Ok(foreign) => foreign.list_members().await.map(|_| ()),
        Err(error) => Err(error),
    };
    match refused {
        Err(Error::Tls(message)) => {
            assert!(message.to_lowercase().contains("unknownca") || message.contains("alert"), "{message}")
        }
        Err(Error::Unavailable(message) | Error::Transport(message)) => {
            assert!(message.contains("connection closed") || message.contains("broken pipe"), "{message}")
        }
        other => panic!("expected the handshake to be refused, got {other:?}"),
    }

    // Nobody listening: unavailable, after bounded retries.
    let addr = fed.catalog.addr;
    let ops = fed.identity(OPS);
    let key = fed.catalog_key;
    fed.catalog.stop().await.expect("stop");
    let mut config = ClientConfig::new(ops, format!("https://{addr}"), "localhost", CATALOG_ID, key);
    config.timeout = Duration::from_secs(2);
    config.retry =
        RetryPolicy { attempts: 2, initial_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(20) };
    let gone = ExchangeClient::connect(config).await.expect("connect");
    let result = gone.list_members().await;
    assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
}
