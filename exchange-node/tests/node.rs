//! The node over real mTLS and real RocksDB, against a real in-process catalog.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use exchange_core::answer_group::{group_root, group_statement_digest, verify_statement};
use exchange_core::ident::ResidentId;
use exchange_core::merkle::Hash;
use exchange_node::config::{NodeConfig, NodeConfigFile};
use exchange_pki::{CertKind, CertSpec, FederationCa, IssuedCert, LoadedIdentity};
use exchange_proto::canonical::SignedAnswer;
use exchange_proto::refusal;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use exchange_store::{FailingStore, RocksStore};
use tonic::transport::Channel;

const CATALOG: &str = "gov.sz.exchange";
const OPS: &str = "gov.sz.ops";
const PSB: &str = "gov.sz.psb";
const HCB: &str = "gov.sz.hcb";
const PORTAL: &str = "gov.sz.portal";
const POP: &str = "gov.sz.psb/population";
const BIZ: &str = "gov.sz.psb/business-licence";
const PURPOSE: &str = "SZ-HCB-ZLBA-001";
const PERSON: &str = "11010519491231002X";
const ORG: &str = "91350100M000100Y43";

struct Fed {
    dir: tempfile::TempDir,
    ca: FederationCa,
    catalog: Option<exchange_catalog::server::RunningCatalog>,
    catalog_addr: std::net::SocketAddr,
    catalog_key: String,
    node_key: SigningKey,
    /// One certificate per department (members are registered with its fingerprint).
    certs: BTreeMap<&'static str, IssuedCert>,
}

fn schema_json(name: &str) -> String {
    let path = manifest_dir().join("../deploy/schemas").join(name);
    std::fs::read_to_string(&path).expect("schema file")
}

fn identity(f: &Fed, dept: &str) -> LoadedIdentity {
    let cert = &f.certs[dept];
    LoadedIdentity::from_pem(f.ca.cert_pem(), &cert.cert_pem, &cert.key_pem).expect("identity")
}

async fn channel(f: &Fed, dept: &str, addr: std::net::SocketAddr) -> Channel {
    let tls = exchange_pki::client_tls_config(&identity(f, dept), "localhost").expect("tls");
    exchange_pki::https_endpoint(&format!("https://{addr}"), tls).expect("endpoint").connect().await.expect("connect")
}

async fn catalog_client(f: &Fed, dept: &str) -> CatalogClient<Channel> {
    CatalogClient::new(channel(f, dept, f.catalog_addr).await)
}

async fn start_catalog() -> Fed {
    exchange_pki::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = FederationCa::generate("Exchange test CA").expect("ca");
    ca.write_files(dir.path(), "ca").expect("write ca");
    let cert = ca.issue(&CertSpec::new(CATALOG, CertKind::Both).with_loopback()).expect("issue");
    cert.write_files(dir.path(), "catalog").expect("write");
    let certs = [OPS, PSB, HCB, PORTAL]
        .into_iter()
        .map(|dept| (dept, ca.issue(&CertSpec::new(dept, CertKind::Both).with_loopback()).expect("issue")))
        .collect::<BTreeMap<_, _>>();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    exchange_catalog::config::write_signing_key(&dir.path().join("keys/configuration.pem"), &key).expect("key");
    for (name, seed) in [("token.pem", 8u8), ("checkpoint.pem", 10u8)] {
        exchange_catalog::config::write_signing_key(
            &dir.path().join("keys").join(name),
            &SigningKey::from_bytes(&[seed; 32]),
        )
        .expect("key");
    }
    exchange_catalog::config::write_secret(&dir.path().join("digest.key"), hex::encode([9u8; 32]).as_bytes())
        .expect("digest key");
    let file: exchange_catalog::config::CatalogConfigFile = toml::from_str(&format!(
        r#"
        catalog_id = "{CATALOG}"
        listen = "127.0.0.1:0"
        data_dir = "catalog-data"
        log_origin = "exchange.test/log"
        keys_dir = "keys"
        subject_digest_key = "digest.key"
        [tls]
        ca_cert = "ca.crt"
        cert = "catalog.crt"
        key = "catalog.key"
        [[bootstrap_members]]
        dept_id = "{OPS}"
        name = "operator"
        roles = ["operator"]
        cert_fingerprints = ["{ops_fingerprint}"]
        "#,
        ops_fingerprint = certs[OPS].fingerprint_hex(),
    ))
    .expect("catalog config");
    let config = exchange_catalog::config::CatalogConfig::from_file(file, dir.path()).expect("catalog config");
    let catalog = exchange_catalog::server::start(config).await.expect("catalog start");
    let catalog_addr = catalog.addr;
    let node_key = SigningKey::from_bytes(&[11u8; 32]);
    let f = Fed {
        dir,
        ca,
        catalog: Some(catalog),
        catalog_addr,
        catalog_key: hex::encode(key.verifying_key().as_bytes()),
        node_key,
        certs,
    };
    let mut ops = catalog_client(&f, OPS).await;
    for (dept, role, signing) in [
        (PSB, Role::Department, f.node_key.verifying_key().as_bytes().to_vec()),
        (HCB, Role::Department, Vec::new()),
        (PORTAL, Role::Portal, Vec::new()),
    ] {
        ops.register_member(RegisterMemberRequest {
            member: Some(Member {
                dept_id: dept.into(),
                name: dept.into(),
                node_signing_key: signing,
                roles: vec![role as i32],
                cert_fingerprints: vec![f.certs[dept].fingerprint.to_vec()],
                ..Default::default()
            }),
        })
        .await
        .expect("register member");
    }
    for s in ["population.json", "business-licence.json"] {
        ops.register_schema(RegisterSchemaRequest { definition_json: schema_json(s) }).await.expect("schema");
    }
    f
}

fn node_config(f: &Fed, data: &str) -> NodeConfig {
    let cert = &f.certs[PSB];
    let stem = format!("psb-{data}");
    cert.write_files(f.dir.path(), &stem).expect("write");
    exchange_node::config::write_signing_key(&f.dir.path().join("node.pem"), &f.node_key).expect("node key");
    let file: NodeConfigFile = toml::from_str(&format!(
        r#"
        dept_id = "{PSB}"
        listen = "127.0.0.1:0"
        data_dir = "{data}"
        catalog_endpoint = "https://{addr}"
        catalog_id = "{CATALOG}"
        signing_key = "node.pem"
        catalog_public_key = "{key}"
        config_max_age_secs = 60
        [tls]
        ca_cert = "ca.crt"
        cert = "{stem}.crt"
        key = "{stem}.key"
        [[datasets]]
        id = "{POP}"
        kind = "record"
        schema = "std.record.population@1"
        share_class = "conditional"
        legal_basis = "居民身份证法"
        [[datasets]]
        id = "{BIZ}"
        kind = "licence"
        schema = "std.licence.business@1"
        share_class = "conditional"
        legal_basis = "市场主体登记管理条例"
        [[datasets]]
        id = "gov.sz.psb/secret"
        kind = "record"
        schema = "std.record.population@1"
        share_class = "not_shared"
        legal_basis = "保密"
        "#,
        addr = f.catalog_addr,
        key = f.catalog_key,
    ))
    .expect("node config");
    NodeConfig::from_file(file, f.dir.path()).expect("node config")
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn node_client(f: &Fed, dept: &str, addr: std::net::SocketAddr) -> NodeClient<Channel> {
    NodeClient::new(channel(f, dept, addr).await)
}

fn ctx(reason: &str) -> Option<QueryContext> {
    Some(QueryContext { purpose_code: PURPOSE.into(), reason: reason.into(), trace_id: "case-1".into() })
}

fn person() -> Option<Subject> {
    Some(Subject { kind: SubjectKind::Person as i32, id: PERSON.into() })
}

/// Checks a node answer as canonical form version 3 says: its digest, its path to the group's
/// root and the node's signature over the group statement.
fn check_signed<A: SignedAnswer>(a: &A, f: &Fed) {
    let sig = a.signature().expect("signature");
    let digest = a.canonical_digest();
    assert_eq!(sig.digest, digest.to_vec());
    assert!(sig.group_size >= 1, "signed as a group (version 3)");
    let path: Vec<Hash> = sig.group_path.iter().map(|h| Hash::from_slice(h).expect("32 bytes")).collect();
    let root = group_root(&digest, sig.group_index, sig.group_size, &path).expect("the path folds");
    let statement = group_statement_digest(&sig.node, sig.group_size, &root);
    verify_statement(&f.node_key.verifying_key(), &statement, &sig.signature).expect("signature verifies");
}

fn reason_of(s: &tonic::Status) -> ReasonCode {
    refusal::reason_code(s)
}

/// Sets up grants and consent; returns (node, consent token for PERSON, consent id).
async fn grant_and_consent(f: &Fed, node: &exchange_node::server::RunningNode, rate: u32) -> (String, String) {
    let mut hcb = catalog_client(f, HCB).await;
    let mut psb = catalog_client(f, PSB).await;
    wait_for("datasets published", async || {
        let snap = node.node_snapshot_version();
        snap.is_some() && psb.get_dataset(GetDatasetRequest { id: "gov.sz.psb/secret".into() }).await.is_ok()
    })
    .await;
    for (dataset, fields) in [
        (POP, vec!["name", "gender", "status"]),
        (BIZ, vec!["licence_no", "credit_code", "entity_name", "status", "legal_rep_name"]),
    ] {
        let g = hcb
            .apply_grant(ApplyGrantRequest {
                dataset: dataset.into(),
                purposes: vec![PURPOSE.into()],
                fields: fields.into_iter().map(String::from).collect(),
                consent_required: true,
                rate_limit_per_minute: rate,
                legal_basis: "租赁条例".into(),
                service_item: "房屋租赁登记备案".into(),
                ..Default::default()
            })
            .await
            .expect("apply")
            .into_inner();
        psb.approve_grant(DecideGrantRequest { grant_id: g.id, note: String::new() }).await.expect("approve");
    }
    let (token, consent_id) = consent_token(f, person(), POP, &["name", "gender", "status"], "face-1").await;
    wait_for("grants reach the node", async || node.node.has_grant(HCB, POP) && node.node.has_grant(HCB, BIZ)).await;
    (token, consent_id)
}

/// A face-scan consent of `subject` for HCB on `dataset` and `fields`, recorded by the portal,
/// and HCB's token for it: (token, consent id).
async fn consent_token(
    f: &Fed,
    subject: Option<Subject>,
    dataset: &str,
    fields: &[&str],
    reference: &str,
) -> (String, String) {
    let mut portal = catalog_client(f, PORTAL).await;
    let consent = portal
        .record_consent(RecordConsentRequest {
            subject,
            requester: HCB.into(),
            scopes: vec![ConsentScope {
                dataset: dataset.into(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            }],
            purpose_code: PURPOSE.into(),
            expires_at_unix_ms: exchange_node::fedconfig::now_ms() + 3_600_000,
            evidence: Some(ConsentEvidence {
                method: ConsentMethod::FaceScan as i32,
                channel: ConsentChannel::Online as i32,
                reference: reference.into(),
            }),
            application_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("consent")
        .into_inner();
    let mut hcb = catalog_client(f, HCB).await;
    let token = hcb
        .issue_consent_token(IssueConsentTokenRequest { consent_id: consent.id.clone(), dataset: dataset.into() })
        .await
        .expect("token")
        .into_inner();
    (token.token, consent.id)
}

/// The company ORG's consent for HCB on the business licences, and its token: the dataset
/// holds personal data (the legal representative), so every query of it needs one.
async fn company_token(f: &Fed) -> String {
    let org = Some(Subject { kind: SubjectKind::Organisation as i32, id: ORG.into() });
    consent_token(f, org, BIZ, &["licence_no", "entity_name", "status"], "face-2").await.0
}

async fn seed(f: &Fed, addr: std::net::SocketAddr) {
    let mut own = node_client(f, PSB, addr).await;
    let fields: HashMap<String, String> = [
        ("id_number", PERSON),
        ("name", "张三"),
        ("gender", "male"),
        ("birth_date", "1949-12-31"),
        ("address", "深圳市福田区"),
        ("status", "normal"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let change = own
        .upsert_record(UpsertRecordRequest { dataset: POP.into(), fields: fields.clone() })
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(change.version, 1);
    let again =
        own.upsert_record(UpsertRecordRequest { dataset: POP.into(), fields }).await.expect("upsert").into_inner();
    assert!(!again.changed);
    let lic: HashMap<String, String> = [
        ("licence_no", "BL-0001"),
        ("credit_code", ORG),
        ("entity_name", "深圳示例科技有限公司"),
        ("legal_rep_name", "李四"),
        ("founded", "2015-06-01"),
        ("status", "active"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    own.issue_licence(IssueLicenceRequest {
        dataset: BIZ.into(),
        fields: lic,
        valid_from: "2015-06-01".into(),
        valid_until: String::new(),
    })
    .await
    .expect("issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_refusals_import_and_shipping() {
    let f = start_catalog().await;
    let node = exchange_node::server::start(node_config(&f, "node-data")).await.expect("node start");
    let (token, _consent) = grant_and_consent(&f, &node, 0).await;
    seed(&f, node.addr).await;
    let mut hcb = node_client(&f, HCB, node.addr).await;

    // GetRecord: exactly the granted fields, signed.
    let a = hcb
        .get_record(GetRecordRequest {
            context: ctx("租赁备案 A-1"),
            dataset: POP.into(),
            subject: person(),
            fields: vec![],
            consent_token: token.clone(),
            version: 0,
        })
        .await
        .expect("get record")
        .into_inner();
    let names: Vec<&str> = a.record.as_ref().expect("record").fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["gender", "name", "status"]);
    check_signed(&a, &f);
    assert!(a.header.as_ref().expect("header").log_sequence > 0);

    // MatchRecord: never a held value.
    let m = hcb
        .match_record(MatchRecordRequest {
            context: ctx("核验"),
            dataset: POP.into(),
            subject: person(),
            claims: vec![
                ClaimedValue { name: "name".into(), value: "张三".into() },
                ClaimedValue { name: "gender".into(), value: "female".into() },
            ],
            consent_token: token.clone(),
        })
        .await
        .expect("match")
        .into_inner();
    assert_eq!(
        m.matches.iter().map(|x| x.result).collect::<Vec<_>>(),
        [MatchResult::Match as i32, MatchResult::NoMatch as i32]
    );
    check_signed(&m, &f);

    // Licences of a personal-data dataset: every form needs a token, a bare verdict too, and
    // a known and an unknown number are refused alike without one.
    for number in ["bl-0001", "BL-9999"] {
        let e = hcb
            .verify_licence(VerifyLicenceRequest {
                context: ctx("核验执照"),
                dataset: BIZ.into(),
                licence_id: number.into(),
                ..Default::default()
            })
            .await
            .expect_err("consent needed");
        assert_eq!((e.code(), reason_of(&e)), (tonic::Code::PermissionDenied, ReasonCode::ConsentRequired));
    }
    let company = company_token(&f).await;
    let v = hcb
        .verify_licence(VerifyLicenceRequest {
            context: ctx("核验执照"),
            dataset: BIZ.into(),
            licence_id: "bl-0001".into(),
            consent_token: company.clone(),
            ..Default::default()
        })
        .await
        .expect("verify")
        .into_inner();
    assert_eq!(v.verdict, Verdict::Valid as i32);
    assert!(v.fields.is_empty());
    check_signed(&v, &f);
    let unknown = hcb
        .verify_licence(VerifyLicenceRequest {
            context: ctx("核验执照"),
            dataset: BIZ.into(),
            licence_id: "BL-9999".into(),
            consent_token: company,
            ..Default::default()
        })
        .await
        .expect("verify unknown")
        .into_inner();
    assert_eq!(unknown.verdict, Verdict::Unknown as i32);
    let e = hcb
        .get_licence(GetLicenceRequest {
            context: ctx("查询"),
            dataset: BIZ.into(),
            licence_id: "BL-0001".into(),
            fields: vec!["entity_name".into()],
            consent_token: String::new(),
            version: 0,
        })
        .await
        .expect_err("consent needed");
    assert_eq!(reason_of(&e), ReasonCode::ConsentRequired);

    // Batch: each item its own status.
    let b = hcb
        .batch_get_records(BatchGetRecordsRequest {
            context: ctx("批量"),
            dataset: POP.into(),
            items: vec![
                RecordItem { subject: person(), fields: vec!["name".into()], consent_token: token.clone() },
                RecordItem {
                    subject: Some(Subject { kind: 1, id: "110105194912310021".into() }),
                    fields: vec![],
                    consent_token: token.clone(),
                },
            ],
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(b.items[0].status.as_ref().expect("status").code, 0);
    check_signed(b.items[0].answer.as_ref().expect("answer"), &f);
    assert_eq!(b.items[1].status.as_ref().expect("status").reason_code, ReasonCode::MalformedIdentifier as i32);

    // Refusals.
    let cases: Vec<(GetRecordRequest, tonic::Code, ReasonCode)> = vec![
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: person(),
                fields: vec!["address".into()],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::FieldNotGranted,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: person(),
                fields: vec!["photo".into()],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::InvalidArgument,
            ReasonCode::FieldNotInSchema,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: person(),
                fields: vec![],
                consent_token: String::new(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::ConsentRequired,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: person(),
                fields: vec![],
                consent_token: "a.b.c".into(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::ConsentTokenInvalid,
        ),
        (
            GetRecordRequest {
                context: ctx(""),
                dataset: POP.into(),
                subject: person(),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::InvalidArgument,
            ReasonCode::ReasonInvalid,
        ),
        (
            GetRecordRequest {
                context: ctx(&"长".repeat(201)),
                dataset: POP.into(),
                subject: person(),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::InvalidArgument,
            ReasonCode::ReasonInvalid,
        ),
        (
            GetRecordRequest {
                context: Some(QueryContext {
                    purpose_code: "OTHER-PURPOSE".into(),
                    reason: "x".into(),
                    trace_id: String::new(),
                }),
                dataset: POP.into(),
                subject: person(),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::PurposeNotGranted,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: Some(Subject { kind: 1, id: "110105194912310021".into() }),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::InvalidArgument,
            ReasonCode::MalformedIdentifier,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: POP.into(),
                subject: Some(Subject { kind: 1, id: "440524188001010014".into() }),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::ConsentWrongSubject,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: "gov.sz.psb/secret".into(),
                subject: person(),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::PermissionDenied,
            ReasonCode::DatasetNotShared,
        ),
        (
            GetRecordRequest {
                context: ctx("x"),
                dataset: "gov.sz.psb/nothing".into(),
                subject: person(),
                fields: vec![],
                consent_token: token.clone(),
                version: 0,
            },
            tonic::Code::InvalidArgument,
            ReasonCode::UnknownDataset,
        ),
    ];
    for (i, (req, code, reason)) in cases.into_iter().enumerate() {
        let e = hcb.get_record(req).await.expect_err("refused");
        assert_eq!((e.code(), reason_of(&e)), (code, reason), "case {i}: {}", e.message());
    }
    // No grant: the portal has none.
    let mut portal = node_client(&f, PORTAL, node.addr).await;
    let e = portal
        .get_record(GetRecordRequest {
            context: ctx("x"),
            dataset: POP.into(),
            subject: person(),
            fields: vec![],
            consent_token: token.clone(),
            version: 0,
        })
        .await
        .expect_err("no grant");
    assert_eq!(reason_of(&e), ReasonCode::NoGrant);
    // Batch too large.
    let e = hcb
        .batch_get_records(BatchGetRecordsRequest {
            context: ctx("批量"),
            dataset: POP.into(),
            items: vec![RecordItem { subject: person(), fields: vec![], consent_token: token.clone() }; 101],
        })
        .await
        .expect_err("too large");
    assert_eq!(reason_of(&e), ReasonCode::BatchTooLarge);
    // Provider-side writes only by the node's own department.
    let e = hcb
        .upsert_record(UpsertRecordRequest { dataset: POP.into(), fields: HashMap::new() })
        .await
        .expect_err("not own");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);

    // Import: a bad line near the end of 5,000 leaves nothing; a good import is idempotent.
    let mut own = node_client(&f, PSB, node.addr).await;
    let rows = |bad: bool| {
        let mut records = Vec::new();
        for i in 0..5000u64 {
            let id = ResidentId::from_parts(
                "440305",
                1980 + (i % 20) as u16,
                1 + (i % 12) as u8,
                1 + (i % 28) as u8,
                (i / 240) as u16 + 1,
            )
            .expect("id")
            .to_string();
            let gender = if bad && i == 4990 { "unknown" } else { "female" };
            let fields: HashMap<String, String> = [
                ("id_number", id.as_str()),
                ("name", "王五"),
                ("gender", gender),
                ("birth_date", "1980-01-01"),
                ("status", "normal"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            records.push(ImportRecord { line: i + 1, fields, ..Default::default() });
        }
        let mut msgs = vec![ImportRequest {
            part: Some(import_request::Part::Header(ImportHeader {
                dataset: POP.into(),
                format: ImportFormat::JsonLines as i32,
                source_name: "pop.jsonl".into(),
                import_id: "i1".into(),
            })),
        }];
        for chunk in records.chunks(500) {
            msgs.push(ImportRequest {
                part: Some(import_request::Part::Chunk(ImportChunk { records: chunk.to_vec() })),
            });
        }
        tokio_stream::iter(msgs)
    };
    let before = own.describe_datasets(DescribeDatasetsRequest {}).await.expect("describe").into_inner();
    let count =
        |d: &DescribeDatasetsResponse| d.datasets.iter().find(|x| x.id == POP).map(|x| x.record_count).unwrap_or(0);
    let e = own.import(rows(true)).await.expect_err("bad import");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("line 4991") && e.message().contains("gender"), "{}", e.message());
    let after = own.describe_datasets(DescribeDatasetsRequest {}).await.expect("describe").into_inner();
    assert_eq!(count(&after), count(&before));
    let s = own.import(rows(false)).await.expect("import").into_inner();
    assert_eq!((s.records_read, s.unchanged), (5000, 0));
    let s2 = own.import(rows(false)).await.expect("re-import").into_inner();
    assert_eq!((s2.inserted, s2.updated, s2.unchanged), (0, 0, s.inserted + s.updated));

    // Shipping: every local entry reaches the central log exactly once.
    let written = own.get_log_status(GetLogStatusRequest {}).await.expect("status").into_inner().last_written;
    assert!(written > 10);
    wait_for("log shipped", async || {
        own.get_log_status(GetLogStatusRequest {})
            .await
            .map(|s| s.into_inner().last_shipped >= written)
            .unwrap_or(false)
    })
    .await;
    let mut audit = catalog_client(&f, PSB).await;
    let entries = audit.get_log_entries(GetLogEntriesRequest { start: 0, count: 1000 }).await;
    if let Ok(entries) = entries {
        let mut seqs: Vec<u64> = entries
            .into_inner()
            .entries
            .into_iter()
            .filter_map(|e| e.event)
            .filter(|e| e.recorder == PSB)
            .map(|e| e.sequence)
            .collect();
        seqs.sort_unstable();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "each entry once, in order");
    }
    node.stop().await.expect("stop node");
    if let Some(c) = f.catalog {
        c.stop().await.expect("stop catalog");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unwritable_access_log_refuses_and_rate_limit_applies() {
    let f = start_catalog().await;
    let config = node_config(&f, "node-fail");
    let store =
        Arc::new(FailingStore::new(RocksStore::open(&config.data_dir, exchange_node::db::TABLES).expect("open")));
    let faults = store.faults();
    let node = exchange_node::server::start_with_store(config, store.clone()).await.expect("node start");
    let (token, _) = grant_and_consent(&f, &node, 3).await;
    seed(&f, node.addr).await;
    let mut hcb = node_client(&f, HCB, node.addr).await;
    let req = || GetRecordRequest {
        context: ctx("租赁备案"),
        dataset: POP.into(),
        subject: person(),
        fields: vec![],
        consent_token: token.clone(),
        version: 0,
    };
    faults.fail_writes(true);
    let e = hcb.get_record(req()).await.expect_err("fail-closed");
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::Unavailable, ReasonCode::AccessLogUnavailable));
    faults.fail_writes(false);
    hcb.get_record(req()).await.expect("served again");
    hcb.get_record(req()).await.expect("second within the quota");
    let e = hcb.get_record(req()).await.expect_err("rate limited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(refusal::of(&e).expect("refusal").retry_after_ms > 0);

    // A data change is kept only with its DATA_CHANGE entry: in one write, or not at all.
    let db = exchange_node::db::Db::new(store.clone());
    let subject =
        exchange_core::ident::SubjectId::parse(exchange_core::ident::SubjectKind::Person, PERSON).expect("subject");
    let version = || {
        db.get_json::<exchange_node::db::StoredRecord>(
            exchange_node::db::RECORDS,
            &exchange_node::db::record_key(POP, &subject),
        )
        .expect("read")
        .expect("record")
        .version
    };
    let changes = |version: u64| {
        use exchange_store::KvStore as _;
        use prost::Message as _;
        db.store()
            .scan(exchange_node::db::ACCESS_LOG, exchange_store::ScanRange::all(), 100_000)
            .expect("scan the log")
            .into_iter()
            .map(|(_, v)| AccessEvent::decode(v.as_slice()).expect("entry"))
            .filter(|e| e.kind == EventKind::DataChange as i32 && e.action == "upsert_record")
            .filter(|e| e.record_versions == [version])
            .count()
    };
    let renamed = |name: &str| -> HashMap<String, String> {
        [
            ("id_number", PERSON),
            ("name", name),
            ("gender", "male"),
            ("birth_date", "1949-12-31"),
            ("address", "深圳市福田区"),
            ("status", "normal"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let mut own = node_client(&f, PSB, node.addr).await;
    assert_eq!(version(), 1);
    faults.fail_writes(true);
    let e = own
        .upsert_record(UpsertRecordRequest { dataset: POP.into(), fields: renamed("张三丰") })
        .await
        .expect_err("the change cannot be logged");
    assert_eq!((e.code(), reason_of(&e)), (tonic::Code::Unavailable, ReasonCode::AccessLogUnavailable));
    faults.fail_writes(false);
    assert_eq!((version(), changes(2)), (1, 0), "a refused change is not kept");
    // One more write passes, then the disk is full: the change and its entry share their fate.
    faults.fail_writes_after(1);
    let result = own.upsert_record(UpsertRecordRequest { dataset: POP.into(), fields: renamed("张三丰") }).await;
    faults.clear();
    match result {
        Ok(change) => {
            let change = change.into_inner();
            assert_eq!((change.version, version(), changes(2)), (2, 2, 1), "the change is kept with its entry");
        }
        Err(e) => {
            assert_eq!(reason_of(&e), ReasonCode::AccessLogUnavailable, "{}", e.message());
            assert_eq!((version(), changes(2)), (1, 0), "a refused change is not kept");
        }
    }
    node.stop().await.expect("stop node");
    if let Some(c) = f.catalog {
        c.stop().await.expect("stop catalog");
    }
}

/// This package's folder, read when the test runs (cargo sets it): the compile-time value
/// would name whichever clone first built this binary, the target folder being shared.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
