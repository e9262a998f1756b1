//! The pipeline over the in-memory store, no TLS: a requester with a valid identity tries to
//! get more than its grant and consent allow, and every refusal is checked for its reason,
//! for what came back, and for what the access log holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use exchange_core::policy::GrantTerms;
use exchange_core::schema::Schema;
use exchange_core::token::{ConsentClaims, TokenIssuer, TokenVerifier};
use exchange_pki::PeerIdentity;
use exchange_proto::v1::*;
use exchange_store::{KvStore, MemoryStore, ScanRange};
use prost::Message as _;

use super::get_record::GetRecord;
use super::list_licences::ListLicences;
use super::match_record::MatchRecord;
use super::verify_licence::VerifyLicence;
use super::{Ask, Form, Prepared};
use crate::accesslog::AccessLog;
use crate::db::{ACCESS_LOG, Db, TABLES};
use crate::error::NodeError;
use crate::fedconfig::{FedState, Snapshot, now_ms};
use crate::service::{Node, NodeSettings};
use crate::shipper::ShipperStatus;

const PSB: &str = "gov.sz.psb";
const HCB: &str = "gov.sz.hcb";
const POP: &str = "gov.sz.psb/population";
const BIZ: &str = "gov.sz.psb/business-licence";
const PURPOSE: &str = "SZ-HCB-ZLBA-001";
const ORIGIN: &str = "exchange.test/log";
const PERSON: &str = "11010519491231002X";
const OTHER: &str = "110105194912310038";
const ORG: &str = "91350100M000100Y43";

struct Harness {
    node: Node,
    store: Arc<MemoryStore>,
    issuer: TokenIssuer,
}

fn schema(file: &str) -> Arc<Schema> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/schemas").join(file);
    let json = std::fs::read_to_string(path).expect("schema file");
    Arc::new(Schema::from_json(&json).expect("schema"))
}

fn member(dept: &str, roles: &[Role]) -> Member {
    Member {
        dept_id: dept.into(),
        cert_fingerprints: vec![fingerprint(dept).to_vec()],
        roles: roles.iter().map(|r| *r as i32).collect(),
        status: MemberStatus::Active as i32,
        ..Default::default()
    }
}

fn fingerprint(dept: &str) -> [u8; 32] {
    let mut f = [0u8; 32];
    f[..dept.len().min(32)].copy_from_slice(&dept.as_bytes()[..dept.len().min(32)]);
    f
}

fn peer(dept: &str) -> Result<PeerIdentity, String> {
    Ok(PeerIdentity { dept_id: dept.into(), fingerprint: fingerprint(dept), not_after_unix: i64::MAX })
}

fn grant(dataset: &str, fields: &[&str], rate: u32) -> GrantTerms {
    GrantTerms {
        id: format!("grant-{dataset}"),
        requester: HCB.into(),
        dataset: dataset.into(),
        purposes: BTreeSet::from([PURPOSE.to_string()]),
        fields: fields.iter().map(|f| f.to_string()).collect(),
        consent_required: false,
        rate_limit_per_minute: rate,
        expires_at_ms: None,
    }
}

fn dataset(id: &str, kind: DatasetKind, schema: &str, personal: bool) -> Dataset {
    Dataset {
        id: id.into(),
        provider: PSB.into(),
        kind: kind as i32,
        schema: schema.into(),
        personal_data: personal,
        share_class: ShareClass::Conditional as i32,
        ..Default::default()
    }
}

/// A node of the public-security bureau holding one person's record and one company's
/// business licence, and the housing bureau granted `grants`.
async fn harness(grants: Vec<GrantTerms>) -> Harness {
    let store = Arc::new(MemoryStore::new(TABLES));
    let kv: Arc<dyn KvStore> = store.clone();
    let (log, _writer) = AccessLog::start(kv.clone(), 0, exchange_store::Durability::Sync);
    let token_key = SigningKey::from_bytes(&[3u8; 32]);
    let issuer = TokenIssuer::new(ORIGIN, &token_key).expect("issuer");
    let datasets = vec![
        dataset(POP, DatasetKind::Record, "std.record.population@1", true),
        dataset(BIZ, DatasetKind::Licence, "std.licence.business@1", false),
    ];
    let mut by_pair: HashMap<(String, String), Vec<GrantTerms>> = HashMap::new();
    for g in grants {
        by_pair.entry((g.requester.clone(), g.dataset.clone())).or_default().push(g);
    }
    let snapshot = Snapshot {
        version: 1,
        issued_at_ms: now_ms(),
        members: [member(PSB, &[Role::Department]), member(HCB, &[Role::Department])]
            .into_iter()
            .map(|m| (m.dept_id.clone(), m))
            .collect(),
        grants: by_pair,
        schemas: HashMap::from([
            ("std.record.population@1".to_string(), schema("population.json")),
            ("std.licence.business@1".to_string(), schema("business-licence.json")),
        ]),
        datasets: datasets.iter().map(|d| (d.id.clone(), d.clone())).collect(),
        revoked: HashSet::new(),
        verifier: TokenVerifier::new(ORIGIN, &[token_key.verifying_key()]),
        config_keys: Vec::new(),
    };
    let fed = Arc::new(FedState::new(vec![SigningKey::from_bytes(&[1u8; 32]).verifying_key()], 60_000));
    fed.offer(snapshot, now_ms()).expect("configuration taken");
    fed.set_digest_key(&SubjectDigestKey { key_id: "k1".into(), key: vec![9u8; 32] });
    let settings =
        NodeSettings { dept: PSB.into(), signing_key: SigningKey::from_bytes(&[5u8; 32]), datasets, max_batch: 10 };
    let node = Node::new(settings, Db::new(kv), fed, log, Arc::new(ShipperStatus::new(0)), Arc::new(Mutex::new(())));
    let record = UpsertRecordRequest {
        dataset: POP.into(),
        fields: [
            ("id_number", PERSON),
            ("name", "张三"),
            ("gender", "male"),
            ("birth_date", "1949-12-31"),
            ("address", "深圳市福田区"),
            ("status", "normal"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    node.upsert_record(peer(PSB), record).await.expect("record stored");
    let licence = IssueLicenceRequest {
        dataset: BIZ.into(),
        fields: [
            ("licence_no", "SZ-BL-0001"),
            ("credit_code", ORG),
            ("entity_name", "深圳示例有限公司"),
            ("legal_rep_name", "张三"),
            ("founded", "2019-06-01"),
            ("status", "active"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        valid_from: "2020-01-01".into(),
        valid_until: String::new(),
    };
    node.issue_licence(peer(PSB), licence).await.expect("licence issued");
    Harness { node, store, issuer }
}

impl Harness {
    fn token(&self, subject: &str, kind: &str, dataset: &str, fields: &[&str]) -> String {
        let now = now_ms() / 1000;
        self.issuer
            .issue(ConsentClaims {
                iss: ORIGIN.into(),
                aud: PSB.into(),
                sub: subject.into(),
                sub_kind: kind.into(),
                req: HCB.into(),
                ds: dataset.into(),
                fld: fields.iter().map(|f| f.to_string()).collect(),
                pur: PURPOSE.into(),
                iat: now,
                nbf: now,
                exp: now + 600,
                jti: "consent-1".into(),
            })
            .expect("token")
    }

    async fn prepare(&self, who: &str, dataset: &str, kind: DatasetKind) -> Result<Prepared, NodeError> {
        let context =
            QueryContext { purpose_code: PURPOSE.into(), reason: "租赁备案".into(), trace_id: "trace-1".into() };
        self.node.prepare(peer(who), "test", dataset, kind, Some(&context)).await
    }

    async fn serve<F: Form>(&self, dataset: &str, asked: Ask<'_>) -> Result<F::Answer, NodeError> {
        let p = self.prepare(HCB, dataset, F::KIND).await?;
        self.node.serve::<F>(&p, "", &asked).await
    }

    /// The queries' entries in the access log (the DATA_CHANGE entries of the set-up left out).
    fn queries_logged(&self) -> Vec<AccessEvent> {
        self.store
            .scan(ACCESS_LOG, ScanRange::all(), 1000)
            .expect("scan")
            .into_iter()
            .map(|(_, v)| AccessEvent::decode(v.as_slice()).expect("entry"))
            .filter(|e| e.kind == EventKind::Query as i32)
            .collect()
    }
}

fn person() -> Subject {
    Subject { kind: SubjectKind::Person as i32, id: PERSON.into() }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn a_stranger_is_refused_before_any_work_and_leaves_no_entry() {
    let h = harness(vec![grant(POP, &["name"], 0)]).await;
    let context = QueryContext { purpose_code: PURPOSE.into(), reason: "租赁备案".into(), trace_id: String::new() };
    let anonymous =
        h.node.prepare(Err("no client certificate".into()), "get_record", POP, DatasetKind::Record, Some(&context));
    assert!(matches!(anonymous.await, Err(NodeError::Unauthenticated(_))));
    let unknown = h.node.prepare(peer("gov.sz.unknown"), "get_record", POP, DatasetKind::Record, Some(&context));
    assert!(matches!(unknown.await, Err(NodeError::UnknownMember(_))));
    assert!(h.queries_logged().is_empty(), "a stranger's call is counted, never logged");
    assert_eq!(h.node.strangers.total(), 2);
}

#[tokio::test]
async fn personal_data_needs_consent_whatever_the_fields_and_nothing_is_read_without_it() {
    let h = harness(vec![grant(POP, &["name", "status"], 0)]).await;
    let fields = strings(&["status"]);
    let subject = person();
    let asked = Ask { subject: Some(&subject), fields: &fields, ..Ask::default() };
    let err = h.serve::<GetRecord>(POP, asked).await.expect_err("no consent");
    assert_eq!(err.reason(), ReasonCode::ConsentRequired);
    let logged = h.queries_logged();
    assert_eq!(logged.len(), 1, "the refusal is logged once");
    assert_eq!(logged[0].outcome, Outcome::Refused as i32);
    assert!(logged[0].fields.is_empty() && logged[0].answer_digest.is_empty());
    assert!(!logged[0].subject_digest.is_empty(), "the subject's own view shows the attempt");
}

#[tokio::test]
async fn an_answer_carries_granted_and_consented_fields_only() {
    let h = harness(vec![grant(POP, &["name", "address", "status"], 0)]).await;
    let token = h.token(PERSON, "person", POP, &["name", "gender"]);
    let subject = person();
    for (asked, refused) in
        [(&["name", "gender"], ReasonCode::FieldNotGranted), (&["name", "address"], ReasonCode::FieldNotConsented)]
    {
        let fields = strings(asked);
        let ask = Ask { subject: Some(&subject), fields: &fields, token: &token, ..Ask::default() };
        let err = h.serve::<GetRecord>(POP, ask).await.expect_err("more than allowed");
        assert_eq!(err.reason(), refused, "{asked:?}");
    }
    // No field named: every field both granted and consented, and no other.
    let ask = Ask { subject: Some(&subject), token: &token, ..Ask::default() };
    let answer = h.serve::<GetRecord>(POP, ask).await.expect("served");
    let record = answer.record.expect("record");
    let names: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["name"], "address and status are not consented, gender not granted");
    let logged = h.queries_logged();
    assert_eq!(logged.len(), 3, "two refusals and one answer");
    let served = &logged[2];
    assert_eq!(served.outcome, Outcome::Served as i32);
    assert_eq!(served.fields, ["name"]);
    assert_eq!(served.answer_digest, answer.signature.expect("signed").digest, "the log holds the signed digest");
    let header = answer.header.expect("header");
    assert_eq!(header.served_at_unix_ms, served.time_unix_ms, "one clock reading per request");
    assert!(logged[..2].iter().all(|e| e.outcome == Outcome::Refused as i32 && e.fields.is_empty()));
}

#[tokio::test]
async fn a_consent_for_one_subject_opens_nothing_of_another() {
    let h = harness(vec![grant(POP, &["name"], 0)]).await;
    let token = h.token(PERSON, "person", POP, &["name"]);
    let fields = strings(&["name"]);
    let other = Subject { kind: SubjectKind::Person as i32, id: OTHER.into() };
    let asked = Ask { subject: Some(&other), fields: &fields, token: &token, ..Ask::default() };
    let err = h.serve::<GetRecord>(POP, asked).await.expect_err("another subject");
    assert_eq!(err.reason(), ReasonCode::ConsentWrongSubject);
    assert!(h.queries_logged().iter().all(|e| e.fields.is_empty()));
}

#[tokio::test]
async fn an_unknown_subject_costs_the_rate_limit_like_a_known_one() {
    let h = harness(vec![grant(BIZ, &["licence_no", "entity_name"], 2)]).await;
    let fields = strings(&["entity_name"]);
    let nobody_id = "91110000100000000R";
    let nobody = Subject { kind: SubjectKind::Organisation as i32, id: nobody_id.into() };
    let token = h.token(nobody_id, "organisation", BIZ, &["entity_name"]);
    for _ in 0..2 {
        let asked = Ask { subject: Some(&nobody), fields: &fields, token: &token, ..Ask::default() };
        let listed = h.serve::<ListLicences>(BIZ, asked).await.expect("an empty list is an answer");
        assert!(listed.licences.is_empty());
    }
    let company = Subject { kind: SubjectKind::Organisation as i32, id: ORG.into() };
    let token = h.token(ORG, "organisation", BIZ, &["entity_name"]);
    let asked = Ask { subject: Some(&company), fields: &fields, token: &token, ..Ask::default() };
    let err = h.serve::<ListLicences>(BIZ, asked).await.expect_err("over the limit");
    assert!(matches!(err, NodeError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn a_verdict_without_the_key_field_hides_number_and_fields() {
    let h = harness(vec![grant(BIZ, &["entity_name"], 0)]).await;
    let company = Subject { kind: SubjectKind::Organisation as i32, id: ORG.into() };
    let token = h.token(ORG, "organisation", BIZ, &["entity_name"]);
    let asked = Ask { licence_id: "SZ-BL-0001", claimed_holder: Some(&company), token: &token, ..Ask::default() };
    let answer = h.serve::<VerifyLicence>(BIZ, asked).await.expect("verdict");
    assert_eq!(answer.verdict, Verdict::Valid as i32);
    assert!(answer.fields.is_empty(), "no field asked, none shown");
    let question = answer.question.expect("the question is signed back");
    assert_eq!(question.licence_id, "SZ-BL-0001");
    assert_eq!(question.claimed_holder.expect("holder").id, ORG);
    let unknown = Ask { licence_id: "SZ-BL-9999", claimed_holder: Some(&company), token: &token, ..Ask::default() };
    let answer = h.serve::<VerifyLicence>(BIZ, unknown).await.expect("unknown is a verdict");
    assert_eq!(answer.verdict, Verdict::Unknown as i32);
}

#[tokio::test]
async fn a_match_claims_each_field_once_and_never_reveals_the_value() {
    let h = harness(vec![grant(POP, &["name"], 0)]).await;
    let token = h.token(PERSON, "person", POP, &["name"]);
    let subject = person();
    let twice = [
        ClaimedValue { name: "name".into(), value: "李四".into() },
        ClaimedValue { name: "name".into(), value: "张三".into() },
    ];
    let asked = Ask { subject: Some(&subject), claims: &twice, token: &token, ..Ask::default() };
    let err = h.serve::<MatchRecord>(POP, asked).await.expect_err("a field claimed twice");
    assert_eq!(err.reason(), ReasonCode::MalformedRequest);
    let once = [ClaimedValue { name: "name".into(), value: "张三".into() }];
    let asked = Ask { subject: Some(&subject), claims: &once, token: &token, ..Ask::default() };
    let answer = h.serve::<MatchRecord>(POP, asked).await.expect("match");
    assert_eq!(answer.matches.len(), 1);
    assert_eq!(answer.matches[0].result, MatchResult::Match as i32);
    let bytes = answer.encode_to_vec();
    assert!(!bytes.windows("张三".len()).any(|w| w == "张三".as_bytes()), "the held value never leaves");
}

#[tokio::test]
async fn every_batch_item_runs_the_whole_pipeline() {
    let h = harness(vec![grant(POP, &["name"], 0)]).await;
    let token = h.token(PERSON, "person", POP, &["name"]);
    let fields = strings(&["name"]);
    let subject = person();
    let other = Subject { kind: SubjectKind::Person as i32, id: OTHER.into() };
    let malformed = Subject { kind: SubjectKind::Person as i32, id: "110105194912310022".into() };
    let items = [
        Ask { subject: Some(&subject), fields: &fields, token: &token, ..Ask::default() },
        Ask { subject: Some(&other), fields: &fields, token: &token, ..Ask::default() },
        Ask { subject: Some(&malformed), fields: &fields, token: &token, ..Ask::default() },
    ];
    let p = h.prepare(HCB, POP, DatasetKind::Record).await.expect("prepared");
    let results = h.node.serve_batch::<GetRecord>(&p, &items).await.expect("batch");
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().expect_err("other subject").reason(), ReasonCode::ConsentWrongSubject);
    assert_eq!(results[2].as_ref().expect_err("bad check digit").reason(), ReasonCode::MalformedIdentifier);
    assert_eq!(h.queries_logged().len(), 3, "every item is logged, answer or refusal");
    let too_many = vec![Ask::default(); 11];
    let err = h.node.serve_batch::<GetRecord>(&p, &too_many).await.expect_err("over the batch limit");
    assert_eq!(err.reason(), ReasonCode::BatchTooLarge);
}
