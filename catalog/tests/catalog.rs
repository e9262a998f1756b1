//! The catalog over real mutual TLS on loopback, against real RocksDB: every RPC, the
//! refusals, the Merkle log's proofs at many sizes, and a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_catalog::config::{CatalogConfig, CatalogConfigFile, TlsSection, write_secret, write_signing_key};
use exchange_catalog::server::{RunningCatalog, start, start_with_store};
use exchange_core::checkpoint::{NoteVerifier, open_checkpoint};
use exchange_core::digest::verify_config;
use exchange_core::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use exchange_core::token::{TokenExpectation, TokenVerifier};
use exchange_pki::{CertKind, CertSpec, FederationCa, TlsFiles, client_tls_config, https_endpoint};
use exchange_proto::refusal;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::*;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

const OPERATOR: &str = "gov.sz.ops";
const PSB: &str = "gov.sz.psb";
const HCB: &str = "gov.sz.hcb";
const AMR: &str = "gov.sz.amr";
const PORTAL: &str = "gov.sz.ft.gsc";
const AUDITOR: &str = "gov.sz.audit";
const ORIGIN: &str = "exchange.sz.test/log";
const CITIZEN: &str = "11010519491231002X";
const TENANT: &str = "440524188001010014";

const POPULATION: &str = r#"{
  "reference": "std.record.population@1",
  "title_zh": "人口基础信息", "title_en": "Population record",
  "key_field": "id_number", "holder_field": null,
  "fields": [
    {"name": "id_number", "type": {"type": "resident_id"}, "required": true, "classification": "personal", "label_zh": "身份证号", "label_en": "ID number"},
    {"name": "name", "type": {"type": "string", "max_len": 50}, "required": true, "classification": "personal", "label_zh": "姓名", "label_en": "Name"},
    {"name": "status", "type": {"type": "enum", "values": ["normal", "deceased"]}, "required": true, "classification": "internal", "label_zh": "状态", "label_en": "Status"}
  ]
}"#;

struct Federation {
    dir: tempfile::TempDir,
    catalog_key: VerifyingKey,
    token_key: VerifyingKey,
    checkpoint_key: VerifyingKey,
    /// Each department's certificate fingerprint (members are registered with it).
    fingerprints: std::collections::BTreeMap<String, [u8; 32]>,
}

impl Federation {
    fn new() -> Self {
        exchange_pki::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        ca.write_files(dir.path().join("pki"), "ca").expect("write ca");
        let server =
            ca.issue(&CertSpec::new("gov.sz.exchange", CertKind::Server).with_loopback()).expect("server cert");
        server.write_files(dir.path().join("pki"), "catalog").expect("write catalog cert");
        let mut fingerprints = std::collections::BTreeMap::new();
        for dept in [OPERATOR, PSB, HCB, AMR, PORTAL, AUDITOR, "gov.sz.stranger"] {
            let cert = ca.issue(&CertSpec::new(dept, CertKind::Client)).expect("client cert");
            cert.write_files(dir.path().join("pki"), dept).expect("write client cert");
            fingerprints.insert(dept.to_string(), cert.fingerprint);
        }
        let key = SigningKey::from_bytes(&[42; 32]);
        write_signing_key(&dir.path().join("keys/configuration.pem"), &key).expect("signing key");
        let token = SigningKey::from_bytes(&[43; 32]);
        write_signing_key(&dir.path().join("keys/token.pem"), &token).expect("token key");
        let checkpoint = SigningKey::from_bytes(&[44; 32]);
        write_signing_key(&dir.path().join("keys/checkpoint.pem"), &checkpoint).expect("checkpoint key");
        write_secret(&dir.path().join("keys/subject-digest.key"), hex::encode([7u8; 32]).as_bytes())
            .expect("digest key");
        Self {
            catalog_key: key.verifying_key(),
            token_key: token.verifying_key(),
            checkpoint_key: checkpoint.verifying_key(),
            dir,
            fingerprints,
        }
    }

    fn config(&self) -> CatalogConfig {
        let file = CatalogConfigFile {
            catalog_id: "gov.sz.exchange".into(),
            listen: "127.0.0.1:0".into(),
            data_dir: PathBuf::from("data"),
            log_origin: ORIGIN.into(),
            token_lifetime_secs: 120,
            config_heartbeat_secs: 1,
            metrics_listen: None,
            metrics_remote: false,
            tls: TlsSection {
                ca_cert: "pki/ca.crt".into(),
                cert: "pki/catalog.crt".into(),
                key: "pki/catalog.key".into(),
            },
            keys_dir: "keys".into(),
            subject_digest_key: "keys/subject-digest.key".into(),
            bootstrap_members: vec![exchange_catalog::config::BootstrapMember {
                dept_id: OPERATOR.into(),
                name: "运维".into(),
                roles: vec!["operator".into()],
                cert_fingerprints: vec![hex::encode(self.fingerprints[OPERATOR])],
            }],
        };
        CatalogConfig::from_file(file, self.dir.path()).expect("config")
    }

    async fn client(&self, running: &RunningCatalog, dept: &str) -> CatalogClient<Channel> {
        client_from(self.dir.path(), running, dept).await
    }
}

async fn client_from(dir: &Path, running: &RunningCatalog, dept: &str) -> CatalogClient<Channel> {
    let files = TlsFiles {
        ca_cert: dir.join("pki/ca.crt"),
        cert: dir.join(format!("pki/{dept}.crt")),
        key: dir.join(format!("pki/{dept}.key")),
    };
    let identity = files.load().expect("load client identity");
    let tls = client_tls_config(&identity, "localhost").expect("client tls");
    let channel = https_endpoint(&format!("https://localhost:{}", running.addr.port()), tls)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    CatalogClient::new(channel)
}

fn assert_refused(status: &tonic::Status, code: Code, reason: ReasonCode, words: &str) {
    assert_eq!(status.code(), code, "status {status:?}");
    assert_eq!(refusal::reason_code(status), reason, "status {status:?}");
    assert!(status.message().contains(words), "message {:?} should contain {words:?}", status.message());
}

/// A member record with the department's certificate fingerprint (any one for a department
/// without a certificate here).
fn member(fed: &Federation, dept: &str, roles: &[Role]) -> Member {
    Member {
        cert_fingerprints: vec![fed.fingerprints.get(dept).copied().unwrap_or([1; 32]).to_vec()],
        dept_id: dept.into(),
        name: format!("{dept} name"),
        roles: roles.iter().map(|r| *r as i32).collect(),
        ..Default::default()
    }
}

async fn setup_members(fed: &Federation, op: &mut CatalogClient<Channel>) {
    let node_key = SigningKey::from_bytes(&[9; 32]).verifying_key();
    for (dept, roles) in [
        (PSB, vec![Role::Department]),
        (HCB, vec![Role::Department, Role::Portal]),
        (AMR, vec![Role::Department]),
        (PORTAL, vec![Role::Portal]),
        (AUDITOR, vec![Role::Auditor]),
    ] {
        let mut m = member(fed, dept, &roles);
        m.endpoint = "https://127.0.0.1:7501".into();
        m.node_signing_key = node_key.as_bytes().to_vec();
        op.register_member(RegisterMemberRequest { member: Some(m) }).await.expect("register member");
    }
}

fn population_dataset() -> Dataset {
    Dataset {
        id: format!("{PSB}/population"),
        kind: DatasetKind::Record as i32,
        schema: "std.record.population@1".into(),
        share_class: ShareClass::Conditional as i32,
        legal_basis: "《居民身份证法》第十三条".into(),
        description_zh: "人口基础库".into(),
        description_en: "Population base records".into(),
        update_cycle: "daily".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_end_to_end() {
    let fed = Federation::new();
    let running = start(fed.config()).await.expect("start catalog");
    let mut op = fed.client(&running, OPERATOR).await;
    let mut psb = fed.client(&running, PSB).await;
    let mut hcb = fed.client(&running, HCB).await;
    let mut portal = fed.client(&running, PORTAL).await;
    let mut auditor = fed.client(&running, AUDITOR).await;

    // Members: only operators register; unknown certificates are refused.
    setup_members(&fed, &mut op).await;
    let err = psb
        .register_member(RegisterMemberRequest { member: Some(member(&fed, "gov.sz.x", &[Role::Department])) })
        .await
        .expect_err("needs operator");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "operator");
    let err = op
        .register_member(RegisterMemberRequest { member: Some(member(&fed, PSB, &[Role::Department])) })
        .await
        .expect_err("dup");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = op
        .register_member(RegisterMemberRequest { member: Some(member(&fed, "Gov..Bad", &[Role::Department])) })
        .await
        .expect_err("bad id");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedIdentifier, "member.dept_id");
    let mut stranger = fed.client(&running, "gov.sz.stranger").await;
    let err = stranger.list_members(ListMembersRequest {}).await.expect_err("unknown member");
    assert_refused(&err, Code::Unauthenticated, ReasonCode::UnknownMember, "gov.sz.stranger");
    let members = psb.list_members(ListMembersRequest {}).await.expect("list").into_inner().members;
    assert_eq!(members.len(), 6);
    let updated = op
        .update_member(UpdateMemberRequest {
            dept_id: AMR.into(),
            endpoint: "https://127.0.0.1:7503".into(),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.endpoint, "https://127.0.0.1:7503");
    let err = op
        .update_member(UpdateMemberRequest {
            dept_id: AMR.into(),
            endpoint: "http://plain".into(),
            ..Default::default()
        })
        .await
        .expect_err("plain http");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedRequest, "https");

    // Schemas: version 1, then an incompatible version 2 is refused with the reason.
    let sv = op
        .register_schema(RegisterSchemaRequest { definition_json: POPULATION.into() })
        .await
        .expect("schema")
        .into_inner();
    assert_eq!(sv.reference, "std.record.population@1");
    let v2_bad = POPULATION.replace("population@1", "population@2").replace(
        r#""classification": "internal", "label_zh": "状态""#,
        r#""classification": "public", "label_zh": "状态""#,
    );
    let err = op.register_schema(RegisterSchemaRequest { definition_json: v2_bad }).await.expect_err("incompatible");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::SchemaIncompatible, "status");
    let v2_good = POPULATION.replace("population@1", "population@2").replace(
        r#"{"name": "status""#,
        r#"{"name": "district", "type": {"type": "string", "max_len": 20}, "required": false, "classification": "public", "label_zh": "辖区", "label_en": "District"},
    {"name": "status""#,
    );
    op.register_schema(RegisterSchemaRequest { definition_json: v2_good }).await.expect("compatible v2");
    let latest = psb
        .get_schema(GetSchemaRequest { name: "std.record.population".into(), version: 0 })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(latest.reference, "std.record.population@2");
    let err = op.register_schema(RegisterSchemaRequest { definition_json: "{".into() }).await.expect_err("bad json");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedRequest, "definition_json");
    assert_eq!(
        psb.list_schemas(ListSchemasRequest { all_versions: true }).await.expect("list").into_inner().schemas.len(),
        2
    );

    // Datasets: a provider publishes only its own.
    let ds = psb
        .publish_dataset(PublishDatasetRequest { dataset: Some(population_dataset()) })
        .await
        .expect("publish")
        .into_inner();
    assert!(ds.personal_data);
    let err =
        hcb.publish_dataset(PublishDatasetRequest { dataset: Some(population_dataset()) }).await.expect_err("not own");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "own datasets");
    let mut secret = population_dataset();
    secret.id = format!("{PSB}/secret");
    secret.share_class = ShareClass::NotShared as i32;
    psb.publish_dataset(PublishDatasetRequest { dataset: Some(secret) }).await.expect("publish not shared");
    let found = hcb
        .list_datasets(ListDatasetsRequest { query: "人口".into(), ..Default::default() })
        .await
        .expect("search")
        .into_inner()
        .datasets;
    assert_eq!(found.len(), 2);

    // Grants: apply, refusals, approval by the provider only.
    let apply = |fields: Vec<&str>| ApplyGrantRequest {
        dataset: format!("{PSB}/population"),
        purposes: vec!["SZ-HCB-ZLBA-001".into()],
        fields: fields.into_iter().map(String::from).collect(),
        consent_required: false,
        rate_limit_per_minute: 60,
        expires_at_unix_ms: 0,
        legal_basis: "《深圳市房屋租赁管理条例》".into(),
        service_item: "房屋租赁登记备案".into(),
    };
    let err = hcb.apply_grant(apply(vec!["name", "photo"])).await.expect_err("field not in schema");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::FieldNotInSchema, "photo");
    let mut not_shared = apply(vec!["name"]);
    not_shared.dataset = format!("{PSB}/secret");
    let err = hcb.apply_grant(not_shared).await.expect_err("not shared");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::DatasetNotShared, "not shared");
    let mut missing = apply(vec!["name"]);
    missing.dataset = format!("{PSB}/nothing");
    let err = hcb.apply_grant(missing).await.expect_err("missing dataset");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::UnknownDataset, "not in the catalog");
    let grant = hcb.apply_grant(apply(vec!["name", "status"])).await.expect("apply").into_inner();
    assert!(grant.consent_required, "personal fields force consent");
    assert_eq!(grant.status, GrantStatus::Pending as i32);
    let decide = DecideGrantRequest { grant_id: grant.id.clone(), note: String::new() };
    let err = hcb.approve_grant(decide.clone()).await.expect_err("requester cannot approve");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "only the provider");
    let approved = psb.approve_grant(decide.clone()).await.expect("approve").into_inner();
    assert_eq!(approved.status, GrantStatus::Approved as i32);
    let err = psb.reject_grant(decide.clone()).await.expect_err("already decided");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::InvalidState, "not pending");
    let listed = hcb.list_grants(ListGrantsRequest::default()).await.expect("list grants").into_inner().grants;
    assert_eq!(listed.len(), 1);

    // The federation configuration is signed and carries the grant; watch sees changes.
    let signed = psb.get_federation_config(GetFederationConfigRequest::default()).await.expect("config").into_inner();
    verify_config(&fed.catalog_key, &signed.body, &signed.signature).expect("config signature");
    let config = FederationConfig::decode(signed.body.as_slice()).expect("decode config");
    assert_eq!(config.grants.len(), 1);
    assert_eq!(config.grants[0].fields, vec!["name".to_string(), "status".to_string()]);
    let mut watch =
        psb.watch_federation_config(GetFederationConfigRequest::default()).await.expect("watch").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("first")
        .expect("ok")
        .expect("some");
    let first_version = FederationConfig::decode(first.body.as_slice()).expect("decode").version;
    assert_eq!(first_version, config.version);

    // Consent: recorded by a portal, tokened for the requester only, revocation pushed.
    let consent_req = RecordConsentRequest {
        subject: Some(Subject { kind: SubjectKind::Person as i32, id: CITIZEN.to_lowercase() }),
        requester: HCB.into(),
        scopes: vec![ConsentScope {
            dataset: format!("{PSB}/population"),
            fields: vec!["name".into(), "status".into()],
        }],
        purpose_code: "SZ-HCB-ZLBA-001".into(),
        expires_at_unix_ms: now_ms() + 3_600_000,
        evidence: Some(ConsentEvidence {
            method: ConsentMethod::FaceScan as i32,
            channel: ConsentChannel::Online as i32,
            reference: "face-2026-0001".into(),
        }),
        application_id: "ZL-2026-000123".into(),
        ..Default::default()
    };
    let err = hcb.record_consent(consent_req.clone()).await;
    assert!(err.is_ok(), "hcb also holds the portal role");
    let consent = portal.record_consent(consent_req.clone()).await.expect("record consent").into_inner();
    let mut past = consent_req.clone();
    past.expires_at_unix_ms = now_ms() - 1;
    let err = portal.record_consent(past).await.expect_err("past expiry");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedRequest, "future");
    let mut bad_id = consent_req.clone();
    bad_id.subject = Some(Subject { kind: SubjectKind::Person as i32, id: "110105194912310021".into() });
    let err = portal.record_consent(bad_id).await.expect_err("bad check digit");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedIdentifier, "subject.id");
    let token_req = IssueConsentTokenRequest { consent_id: consent.id.clone(), dataset: format!("{PSB}/population") };
    let err = psb.issue_consent_token(token_req.clone()).await.expect_err("not the requester");
    assert_eq!(err.code(), Code::PermissionDenied);
    let token = hcb.issue_consent_token(token_req.clone()).await.expect("token").into_inner();
    let verifier = TokenVerifier::new(ORIGIN, &[fed.token_key]);
    let verified = verifier
        .verify(
            &token.token,
            &TokenExpectation {
                audience: PSB,
                requester: HCB,
                subject: CITIZEN,
                subject_kind: "person",
                dataset: &format!("{PSB}/population"),
                purpose: "SZ-HCB-ZLBA-001",
            },
            now_ms() / 1000,
        )
        .expect("token verifies");
    assert_eq!(verified.consent_id(), consent.id);
    portal
        .revoke_consent(RevokeConsentRequest { consent_id: consent.id.clone(), reason: "withdrawn".into() })
        .await
        .expect("revoke");
    let pushed = wait_for_config(&mut watch, |c| c.revoked_consents.iter().any(|r| r.consent_id == consent.id)).await;
    assert!(pushed.version > first_version);
    let err = hcb.issue_consent_token(token_req).await.expect_err("revoked");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::ConsentRevoked, "revoked");

    // One application, several parties: each subject's consent is recorded and tokened on its own.
    let mut tenant_req = consent_req.clone();
    tenant_req.subject = Some(Subject { kind: SubjectKind::Person as i32, id: TENANT.into() });
    let landlord = portal.record_consent(consent_req.clone()).await.expect("landlord consent").into_inner();
    let tenant = portal.record_consent(tenant_req).await.expect("tenant consent").into_inner();
    assert_ne!(landlord.id, tenant.id);
    assert_eq!(landlord.application_id, tenant.application_id);
    for (consent, subject) in [(&landlord, CITIZEN), (&tenant, TENANT)] {
        let t = hcb
            .issue_consent_token(IssueConsentTokenRequest {
                consent_id: consent.id.clone(),
                dataset: format!("{PSB}/population"),
            })
            .await
            .expect("token per party")
            .into_inner();
        let expectation = TokenExpectation {
            audience: PSB,
            requester: HCB,
            subject,
            subject_kind: "person",
            dataset: &format!("{PSB}/population"),
            purpose: "SZ-HCB-ZLBA-001",
        };
        verifier.verify(&t.token, &expectation, now_ms() / 1000).expect("each party's token names that party");
    }

    // Getting single objects, and the rest of a grant's life: reject and revoke.
    assert_eq!(
        psb.get_member(GetMemberRequest { dept_id: HCB.into() }).await.expect("member").into_inner().dept_id,
        HCB
    );
    let err = psb.get_member(GetMemberRequest { dept_id: "gov.sz.none".into() }).await.expect_err("no such member");
    assert_eq!(err.code(), Code::NotFound);
    let d = hcb.get_dataset(GetDatasetRequest { id: format!("{PSB}/population") }).await.expect("dataset").into_inner();
    assert_eq!(d.schema, "std.record.population@1");
    let err = hcb.get_dataset(GetDatasetRequest { id: format!("{PSB}/nothing") }).await.expect_err("no such dataset");
    assert_eq!(err.code(), Code::NotFound);
    let second = hcb.apply_grant(apply(vec!["status"])).await.expect("second grant").into_inner();
    let third = hcb.apply_grant(apply(vec!["name"])).await.expect("third grant").into_inner();
    let rejected = psb
        .reject_grant(DecideGrantRequest { grant_id: third.id.clone(), note: "no legal basis for names".into() })
        .await
        .expect("reject")
        .into_inner();
    assert_eq!(rejected.status, GrantStatus::Rejected as i32);
    assert_eq!(rejected.decision_note, "no legal basis for names");
    let mut amr_early = fed.client(&running, AMR).await;
    let err = amr_early
        .revoke_grant(DecideGrantRequest { grant_id: second.id.clone(), note: String::new() })
        .await
        .expect_err("a third party cannot revoke");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "only the requester");
    let revoked = hcb
        .revoke_grant(DecideGrantRequest { grant_id: second.id.clone(), note: "case closed".into() })
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.status, GrantStatus::Revoked as i32);
    // A second revocation is a retry: answered as done (and publishing, had the first failed).
    let again = psb
        .revoke_grant(DecideGrantRequest { grant_id: second.id, note: String::new() })
        .await
        .expect("twice")
        .into_inner();
    assert_eq!(again.status, GrantStatus::Revoked as i32);
    let err = psb
        .revoke_grant(DecideGrantRequest { grant_id: rejected.id.clone(), note: String::new() })
        .await
        .expect_err("a rejected grant");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::InvalidState, "nothing to revoke");

    // Digest key only for departments that provide personal data.
    let err = hcb.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await.expect_err("a requester only");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "provides no published dataset");
    assert_eq!(
        psb.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await.expect("key").into_inner().key.len(),
        32
    );
    let err = auditor.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await.expect_err("auditor");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::RoleRequired, "department");

    // The central log: appends idempotent by sequence, gaps refused, proofs verify.
    let head0 = auditor.get_tree_head(GetTreeHeadRequest {}).await.expect("head").into_inner();
    let vkey = NoteVerifier::new(ORIGIN, fed.checkpoint_key).expect("verifier");
    let cp0 = open_checkpoint(&head0.checkpoint, &vkey).expect("signed head");
    assert_eq!(cp0.size(), head0.size);
    assert!(head0.size > 10, "administrative acts are logged: {}", head0.size);
    let events = |from: u64, n: u64| AppendAccessLogRequest {
        events: (from..from + n).map(|seq| query_event(PSB, seq)).collect(),
    };
    let r = psb.append_access_log(events(1, 5)).await.expect("append").into_inner();
    assert_eq!((r.appended, r.duplicates, r.next_sequence), (5, 0, 6));
    let r = psb.append_access_log(events(3, 5)).await.expect("retried batch").into_inner();
    assert_eq!((r.appended, r.duplicates, r.next_sequence), (2, 3, 8));
    // A different entry under a number already held is a rewritten history: refused, the
    // new entries of its batch too, and the refusal logged once however often it is retried.
    let mut rewritten = events(4, 5);
    rewritten.events[1].trace_id = "trace-rewritten".into();
    for _ in 0..3 {
        let err = psb.append_access_log(rewritten.clone()).await.expect_err("rewritten entry");
        assert_refused(
            &err,
            Code::FailedPrecondition,
            ReasonCode::EntryConflict,
            "another entry under gov.sz.psb's sequence 5",
        );
    }
    let r = psb.append_access_log(events(8, 0)).await.expect("empty batch: where the catalog stands").into_inner();
    assert_eq!((r.appended, r.next_sequence), (0, 8), "nothing of the refused batch was appended");
    let conflicts = auditor
        .query_access_log(QueryAccessLogRequest {
            requester: PSB.into(),
            outcome: Outcome::Refused as i32,
            ..Default::default()
        })
        .await
        .expect("refusals")
        .into_inner()
        .entries
        .into_iter()
        .filter(|e| e.event.as_ref().is_some_and(|ev| ev.reason_code == ReasonCode::EntryConflict as i32))
        .count();
    assert_eq!(conflicts, 1, "the conflict is logged once");
    let err = psb.append_access_log(events(10, 2)).await.expect_err("gap");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::SequenceGap, "expects sequence 8");
    let mut clear = events(8, 1);
    clear.events[0].subject_digest = CITIZEN.into();
    let err = psb.append_access_log(clear).await.expect_err("clear subject");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedRequest, "subject_digest");
    let mut foreign = events(8, 1);
    foreign.events[0].recorder = AMR.into();
    let err = psb.append_access_log(foreign).await.expect_err("foreign recorder");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = psb.append_access_log(events(8, 1001)).await.expect_err("oversized batch");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::BatchTooLarge, "at most 1000");
    let err = auditor.append_access_log(events(1, 1)).await.expect_err("auditor cannot append");
    assert_eq!(err.code(), Code::PermissionDenied);

    let head1 = auditor.get_tree_head(GetTreeHeadRequest {}).await.expect("head").into_inner();
    let cp1 = open_checkpoint(&head1.checkpoint, &vkey).expect("signed head");
    let root1 = Hash::from_slice(&head1.root_hash).expect("root");
    assert_eq!(cp1.root(), root1);
    for index in [0, head0.size - 1, head1.size - 1] {
        let p = auditor
            .get_inclusion_proof(GetInclusionProofRequest { index, tree_size: 0 })
            .await
            .expect("proof")
            .into_inner();
        let leaf = p.entry.as_ref().expect("entry").leaf.clone();
        verify_inclusion(leaf_hash(&leaf), index, head1.size, &hashes(&p.path), root1).expect("inclusion verifies");
    }
    let c = auditor
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: head0.size,
            new_size: head1.size,
            ..Default::default()
        })
        .await
        .expect("consistency")
        .into_inner();
    verify_consistency(head0.size, head1.size, &hashes(&c.path), cp0.root(), root1).expect("consistency verifies");
    // A head of another history (here: a forged root) is told apart from a bad proof.
    let c = auditor
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: head0.size,
            new_size: head1.size,
            old_root: cp0.root().as_bytes().to_vec(),
        })
        .await
        .expect("consistency with the right old root")
        .into_inner();
    verify_consistency(head0.size, head1.size, &hashes(&c.path), cp0.root(), root1).expect("consistency verifies");
    let err = auditor
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: head0.size,
            new_size: head1.size,
            old_root: vec![7; 32],
        })
        .await
        .expect_err("a forked head");
    assert_refused(&err, Code::FailedPrecondition, ReasonCode::LogFork, "does not extend");
    let err = auditor
        .get_consistency_proof(GetConsistencyProofRequest { old_size: head0.size, new_size: 0, old_root: vec![7; 31] })
        .await
        .expect_err("a root of the wrong length");
    assert_refused(&err, Code::InvalidArgument, ReasonCode::MalformedRequest, "old_root");
    let err = auditor
        .get_inclusion_proof(GetInclusionProofRequest { index: head1.size, tree_size: 0 })
        .await
        .expect_err("beyond the log");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Audit queries: an auditor sees all, a department its own, a portal a subject's view.
    let q = QueryAccessLogRequest { provider: PSB.into(), outcome: Outcome::Served as i32, ..Default::default() };
    let page = auditor.query_access_log(q.clone()).await.expect("query").into_inner();
    assert!(page.entries.iter().any(|e| e.event.as_ref().is_some_and(|ev| ev.action == "get_record")));
    let by_trace = auditor
        .query_access_log(QueryAccessLogRequest { trace_id: "trace-3".into(), ..Default::default() })
        .await
        .expect("by trace")
        .into_inner();
    assert_eq!(by_trace.entries.len(), 1, "retries did not double entry 3");
    let paged = auditor
        .query_access_log(QueryAccessLogRequest {
            requester: HCB.into(),
            page: Some(PageRequest { page_size: 3, page_token: String::new() }),
            ..Default::default()
        })
        .await
        .expect("paged")
        .into_inner();
    assert_eq!(paged.entries.len(), 3);
    assert!(!paged.next_page_token.is_empty());
    let own = hcb.query_access_log(QueryAccessLogRequest::default()).await.expect("own view").into_inner();
    assert!(own.entries.iter().all(|e| e.event.as_ref().is_some_and(|ev| ev.requester == HCB || ev.provider == HCB)));
    let view = portal
        .subject_access_view(SubjectAccessViewRequest {
            subject: Some(Subject { kind: SubjectKind::Person as i32, id: CITIZEN.into() }),
            ..Default::default()
        })
        .await
        .expect("subject view")
        .into_inner();
    let actions: Vec<String> =
        view.entries.iter().filter_map(|e| e.event.as_ref().map(|ev| ev.action.clone())).collect();
    assert!(
        actions.contains(&"consent.record".to_string()) && actions.contains(&"consent.revoke".to_string()),
        "{actions:?}"
    );
    assert!(
        view.entries.iter().all(|e| !String::from_utf8_lossy(&e.leaf).contains(CITIZEN)),
        "the subject id never appears in clear in the log"
    );
    let err = auditor.subject_access_view(SubjectAccessViewRequest::default()).await.expect_err("portal only");
    assert_eq!(err.code(), Code::PermissionDenied);

    // Suspension takes effect on the next call.
    op.suspend_member(SuspendMemberRequest { dept_id: AMR.into(), reason: "audit finding".into() })
        .await
        .expect("suspend");
    let mut amr = fed.client(&running, AMR).await;
    let err = amr.list_members(ListMembersRequest {}).await.expect_err("suspended");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::MemberSuspended, "suspended");

    // A restart keeps everything.
    let size_before = head1.size;
    running.stop().await.expect("stop");
    let running = start(fed.config()).await.expect("restart");
    let mut auditor = fed.client(&running, AUDITOR).await;
    let head2 = auditor.get_tree_head(GetTreeHeadRequest {}).await.expect("head").into_inner();
    assert!(head2.size > size_before, "restart logged nothing lost: {} vs {size_before}", head2.size);
    let c = auditor
        .get_consistency_proof(GetConsistencyProofRequest {
            old_size: size_before,
            new_size: head2.size,
            ..Default::default()
        })
        .await
        .expect("consistency after restart")
        .into_inner();
    verify_consistency(
        size_before,
        head2.size,
        &hashes(&c.path),
        root1,
        Hash::from_slice(&head2.root_hash).expect("root"),
    )
    .expect("the log after restart extends the log before");
    let mut psb = fed.client(&running, PSB).await;
    let r = psb.append_access_log(events(8, 1)).await.expect("append after restart").into_inner();
    assert_eq!(r.next_sequence, 9, "the sequence cursor survived the restart");
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_verify_at_every_size_up_to_ten_thousand() {
    let fed = Federation::new();
    let running = start(fed.config()).await.expect("start");
    let mut op = fed.client(&running, OPERATOR).await;
    setup_members(&fed, &mut op).await;
    let mut psb = fed.client(&running, PSB).await;
    let mut auditor = fed.client(&running, AUDITOR).await;
    let base = auditor.get_tree_head(GetTreeHeadRequest {}).await.expect("head").into_inner().size;
    let mut heads: Vec<(u64, Hash)> = Vec::new();
    let mut seq = 1;
    for batch in [1u64, 2, 3, 10, 84, 900, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000] {
        let events = (seq..seq + batch).map(|s| query_event(PSB, s)).collect();
        psb.append_access_log(AppendAccessLogRequest { events }).await.expect("append");
        seq += batch;
        let head = auditor.get_tree_head(GetTreeHeadRequest {}).await.expect("head").into_inner();
        heads.push((head.size, Hash::from_slice(&head.root_hash).expect("root")));
    }
    let (size, root) = *heads.last().expect("heads");
    assert!(size >= base + 10_000);
    // Inclusion of entries spread over the whole log, against the final head.
    for index in (0..size).step_by(397).chain([size - 1]) {
        let p = auditor
            .get_inclusion_proof(GetInclusionProofRequest { index, tree_size: size })
            .await
            .expect("proof")
            .into_inner();
        let leaf = p.entry.expect("entry").leaf;
        verify_inclusion(leaf_hash(&leaf), index, size, &hashes(&p.path), root).expect("inclusion");
    }
    // Consistency between every pair of heads, and inclusion against an older head.
    for (i, (old_size, old_root)) in heads.iter().enumerate() {
        for (new_size, new_root) in &heads[i..] {
            if old_size == new_size {
                continue;
            }
            let c = auditor
                .get_consistency_proof(GetConsistencyProofRequest {
                    old_size: *old_size,
                    new_size: *new_size,
                    ..Default::default()
                })
                .await
                .expect("consistency")
                .into_inner();
            verify_consistency(*old_size, *new_size, &hashes(&c.path), *old_root, *new_root).expect("consistency");
        }
        let p = auditor
            .get_inclusion_proof(GetInclusionProofRequest { index: old_size - 1, tree_size: *old_size })
            .await
            .expect("proof at old size")
            .into_inner();
        verify_inclusion(
            leaf_hash(&p.entry.expect("entry").leaf),
            old_size - 1,
            *old_size,
            &hashes(&p.path),
            *old_root,
        )
        .expect("inclusion at an older size");
    }
    // Re-reading every entry rebuilds the same root.
    let mut tree = exchange_core::merkle::MemoryTree::new();
    let mut start = 0;
    while start < size {
        let page =
            auditor.get_log_entries(GetLogEntriesRequest { start, count: 1000 }).await.expect("entries").into_inner();
        assert!(!page.entries.is_empty());
        for e in &page.entries {
            assert_eq!(e.index, tree.size());
            tree.append(&e.leaf);
        }
        start += page.entries.len() as u64;
    }
    assert_eq!(tree.root(), root);
    running.stop().await.expect("stop");
}

fn query_event(recorder: &str, seq: u64) -> AccessEvent {
    AccessEvent {
        recorder: recorder.into(),
        sequence: seq,
        // A fixed time per sequence: a retried batch is the same bytes, as a node's is.
        time_unix_ms: 1_780_000_000_000 + seq as i64,
        kind: EventKind::Query as i32,
        requester: HCB.into(),
        provider: recorder.into(),
        dataset: format!("{recorder}/population"),
        action: "get_record".into(),
        purpose_code: "SZ-HCB-ZLBA-001".into(),
        reason: "租赁备案 ZL-2026-000123".into(),
        subject_digest: "ab".repeat(32),
        fields: vec!["name".into()],
        record_versions: vec![1],
        consent_id: "c-1".into(),
        trace_id: format!("trace-{seq}"),
        outcome: Outcome::Served as i32,
        reason_code: 0,
        answer_digest: vec![seq as u8; 32],
        note: String::new(),
    }
}

fn hashes(path: &[Vec<u8>]) -> Vec<Hash> {
    path.iter().map(|h| Hash::from_slice(h).expect("32-byte hash")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

async fn wait_for_config(
    watch: &mut tonic::Streaming<SignedFederationConfig>,
    done: impl Fn(&FederationConfig) -> bool,
) -> FederationConfig {
    // Bounded: the revocation must arrive within a few seconds.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let signed = watch.message().await.expect("stream").expect("open");
            let config = FederationConfig::decode(signed.body.as_slice()).expect("decode");
            if done(&config) {
                return config;
            }
        }
    })
    .await
    .expect("the change reached the watcher within 5 seconds")
}

/// A committed revocation is always published: when the publication's write fails after the
/// change's, the revocation is answered with an error, the old configuration stays the one
/// watchers hold, and the retried revocation publishes it (it does not answer "nothing to
/// revoke" while nodes keep serving the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_publication_failed_is_published_by_its_retry() {
    let fed = Federation::new();
    let mut config = fed.config();
    // No heartbeat writes in between: the injected failure must hit the publication.
    config.config_heartbeat = Duration::from_secs(3600);
    let store = exchange_store::FailingStore::new(
        exchange_store::RocksStore::open(&config.data_dir, exchange_catalog::db::TABLES).expect("open store"),
    );
    let faults = store.faults();
    let running = start_with_store(config, std::sync::Arc::new(store)).await.expect("start catalog");
    let mut op = fed.client(&running, OPERATOR).await;
    let mut psb = fed.client(&running, PSB).await;
    let mut hcb = fed.client(&running, HCB).await;
    setup_members(&fed, &mut op).await;
    op.register_schema(RegisterSchemaRequest { definition_json: POPULATION.into() }).await.expect("schema");
    psb.publish_dataset(PublishDatasetRequest { dataset: Some(population_dataset()) }).await.expect("dataset");
    let grant = hcb
        .apply_grant(ApplyGrantRequest {
            dataset: format!("{PSB}/population"),
            purposes: vec!["SZ-HCB-ZLBA-001".into()],
            fields: vec!["status".into()],
            consent_required: false,
            rate_limit_per_minute: 60,
            expires_at_unix_ms: 0,
            legal_basis: "《深圳市房屋租赁管理条例》".into(),
            service_item: "房屋租赁登记备案".into(),
        })
        .await
        .expect("apply")
        .into_inner();
    psb.approve_grant(DecideGrantRequest { grant_id: grant.id.clone(), note: String::new() }).await.expect("approve");
    let mut watch =
        hcb.watch_federation_config(GetFederationConfigRequest::default()).await.expect("watch").into_inner();
    let before = wait_for_config(&mut watch, |c| c.grants.iter().any(|g| g.id == grant.id)).await;

    // The revocation's own write passes, its publication's write fails.
    faults.fail_writes_after(1);
    let err = psb
        .revoke_grant(DecideGrantRequest { grant_id: grant.id.clone(), note: "case closed".into() })
        .await
        .expect_err("the publication failed");
    assert!(matches!(err.code(), Code::Internal | Code::Unavailable), "{err:?}");
    let held = psb.get_federation_config(GetFederationConfigRequest::default()).await.expect("config").into_inner();
    let held = FederationConfig::decode(held.body.as_slice()).expect("decode");
    assert_eq!(held.version, before.version, "nothing new was published");

    // The retry publishes the committed revocation and answers it as done.
    faults.clear();
    let retried = psb
        .revoke_grant(DecideGrantRequest { grant_id: grant.id.clone(), note: "case closed".into() })
        .await
        .expect("the retry succeeds")
        .into_inner();
    assert_eq!(retried.status, GrantStatus::Revoked as i32);
    let after = wait_for_config(&mut watch, |c| !c.grants.iter().any(|g| g.id == grant.id)).await;
    assert!(after.version > before.version);
    running.stop().await.expect("stop");
}

/// A suspended member's watch stream ends at once (it does not go on receiving the
/// federation's configurations), and reconnecting is refused MEMBER_SUSPENDED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_members_watch_stream_ends() {
    let fed = Federation::new();
    let running = start(fed.config()).await.expect("start catalog");
    let mut op = fed.client(&running, OPERATOR).await;
    setup_members(&fed, &mut op).await;
    let mut amr = fed.client(&running, AMR).await;
    let mut watch =
        amr.watch_federation_config(GetFederationConfigRequest::default()).await.expect("watch").into_inner();
    watch.message().await.expect("first message").expect("the current configuration");
    op.suspend_member(SuspendMemberRequest { dept_id: AMR.into(), reason: "audit finding".into() })
        .await
        .expect("suspend");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the suspended member's stream is still open after 5 seconds");
    let mut again = fed.client(&running, AMR).await;
    let err = again.watch_federation_config(GetFederationConfigRequest::default()).await.expect_err("suspended");
    assert_refused(&err, Code::PermissionDenied, ReasonCode::MemberSuspended, AMR);
    running.stop().await.expect("stop");
}

/// While nothing changes, the catalog re-signs the configuration (same version, same content,
/// a newer `issued_at`), so that nodes can tell a live catalog from a stalled one by the
/// signature alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_is_re_signed_while_nothing_changes() {
    let fed = Federation::new();
    let running = start(fed.config()).await.expect("start catalog");
    let mut op = fed.client(&running, OPERATOR).await;
    let mut watch =
        op.watch_federation_config(GetFederationConfigRequest::default()).await.expect("watch").into_inner();
    let signed = watch.message().await.expect("stream").expect("the current configuration");
    let first = FederationConfig::decode(signed.body.as_slice()).expect("decode");
    let heartbeat = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let signed = watch.message().await.expect("stream").expect("open");
            let config = FederationConfig::decode(signed.body.as_slice()).expect("decode");
            if config.issued_at_unix_ms > first.issued_at_unix_ms {
                return (signed, config);
            }
        }
    })
    .await;
    let (signed, config) = heartbeat.expect("a re-signed configuration within 10 seconds (the heartbeat is 1 s)");
    verify_config(&fed.catalog_key, &signed.body, &signed.signature).expect("signed by the catalog");
    assert_eq!(config.version, first.version, "a heartbeat is not a new version");
    assert_eq!(FederationConfig { issued_at_unix_ms: first.issued_at_unix_ms, ..config }, first, "nor new content");
    running.stop().await.expect("stop");
}
