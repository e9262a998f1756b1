//! The Python client (`clients/python/`, grpcio and stubs generated from `proto/`) against a
//! real federation: this test starts the federation, writes canonical-form vectors computed
//! by the Rust implementation, and runs the client's pytest suite with the housing bureau's
//! profile, a landlord of the demo data and the vectors' file in its environment. The suite
//! covers the rental filing scenario end to end, a verified licence verdict for business
//! opening, a refusal with its reason, tampered answers
//! refused by the client's verifier, the batch forms (each item verified on its own, a
//! refused item with its reason beside answered ones, tampered batch answers refused), and
//! the canonical bytes of every answer kind and the question of every request and batch item.

use std::path::PathBuf;
use std::process::Command;

use exchange_localnet::data::{GSC, HCB};
use exchange_proto::canonical::{Asked, SignedAnswer};
use exchange_proto::v1::*;
use exchange_tests::*;
use prost::Message;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn header(node: &str, dataset: &str, served_at_unix_ms: i64) -> Option<AnswerHeader> {
    Some(AnswerHeader {
        node: node.into(),
        requester: HCB.into(),
        dataset: dataset.into(),
        purpose_code: "SZ-HCB-ZLBA-001".into(),
        trace_id: "vector-跟踪".into(),
        served_at_unix_ms,
        log_sequence: u64::MAX - 1,
    })
}

fn subject(kind: SubjectKind, id: &str) -> Option<Subject> {
    Some(Subject { kind: kind as i32, id: id.into() })
}

fn fields(pairs: &[(&str, &str)]) -> Vec<FieldValue> {
    pairs.iter().map(|(n, v)| FieldValue { name: (*n).into(), value: (*v).into() }).collect()
}

fn vector<A: SignedAnswer + Message>(name: &str, ty: &str, answer: &A) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "type": ty,
        "message": hex(&answer.encode_to_vec()),
        "canonical": hex(&answer.canonical_bytes()),
        "digest": hex(&answer.canonical_digest()),
    })
}

fn with_request<R: Asked + Message>(mut v: serde_json::Value, ty: &str, request: &R) -> serde_json::Value {
    v["request_type"] = ty.into();
    v["request"] = hex(&request.encode_to_vec()).into();
    v["question"] = hex(&request.question().encode_to_vec()).into();
    v
}

fn with_item<I: Asked + Message>(ty: &str, item: &I) -> serde_json::Value {
    serde_json::json!({
        "type": ty,
        "message": hex(&item.encode_to_vec()),
        "question": hex(&item.question().encode_to_vec()),
    })
}

/// Answers of every kind, with the edge cases of the encoding: absent header, question and
/// payload, UTF-8 beyond ASCII, negative and extreme integers, repeated and unsorted fields.
fn canonical_vectors() -> serde_json::Value {
    let org = subject(SubjectKind::Organisation, "91440300708461136T");
    let person = subject(SubjectKind::Person, "11010519491231002X");
    let licence = Licence {
        licence_id: "SZ-AMR-2026-000001".into(),
        holder: org.clone(),
        status: LicenceStatus::Valid as i32,
        valid_from: "2026-01-01".into(),
        valid_until: "".into(),
        version: 3,
        fields: fields(&[("address", "深圳市福田区"), ("name", "深圳某某科技有限公司")]),
        historical: true,
        current_status: LicenceStatus::Revoked as i32,
        current_version: 4,
    };
    let get_licence = GetLicenceRequest {
        dataset: "gov.sz.amr/business-licence".into(),
        licence_id: licence.licence_id.clone(),
        fields: vec!["name".into(), "address".into(), "name".into()],
        version: 3,
        ..Default::default()
    };
    let verify = VerifyLicenceRequest {
        dataset: get_licence.dataset.clone(),
        licence_id: licence.licence_id.clone(),
        holder: org.clone(),
        fields: vec!["name".into()],
        ..Default::default()
    };
    let list = ListLicencesRequest { dataset: get_licence.dataset.clone(), holder: org.clone(), ..Default::default() };
    let record = GetRecordRequest {
        dataset: "gov.sz.psb/population".into(),
        subject: person.clone(),
        fields: vec!["status".into(), "name".into()],
        ..Default::default()
    };
    let matching = MatchRecordRequest {
        dataset: record.dataset.clone(),
        subject: person.clone(),
        claims: vec![
            ClaimedValue { name: "name".into(), value: "张三".into() },
            ClaimedValue { name: "birth_date".into(), value: "".into() },
        ],
        ..Default::default()
    };
    let sig = Some(AnswerSignature {
        node: "x".into(),
        key_id: "y".into(),
        digest: vec![1; 32],
        signature: vec![2; 64],
        ..Default::default()
    });
    let mut vectors = vec![
        with_request(
            vector(
                "get_licence, historical",
                "LicenceAnswer",
                &LicenceAnswer {
                    header: header("gov.sz.amr", &get_licence.dataset, 1_767_225_600_123),
                    licence: Some(licence.clone()),
                    signature: sig.clone(),
                    question: Some(get_licence.question()),
                },
            ),
            "GetLicenceRequest",
            &get_licence,
        ),
        vector("get_licence, empty", "LicenceAnswer", &LicenceAnswer::default()),
        with_request(
            vector(
                "verify_licence",
                "VerifyLicenceAnswer",
                &VerifyLicenceAnswer {
                    header: header("gov.sz.amr", &verify.dataset, -1),
                    verdict: Verdict::HolderMismatch as i32,
                    version: 3,
                    fields: fields(&[("name", "")]),
                    signature: sig.clone(),
                    question: Some(verify.question()),
                },
            ),
            "VerifyLicenceRequest",
            &verify,
        ),
        with_request(
            vector(
                "list_licences",
                "ListLicencesAnswer",
                &ListLicencesAnswer {
                    header: header("gov.sz.amr", &list.dataset, i64::MIN),
                    licences: vec![licence.clone(), Licence { holder: None, ..licence.clone() }],
                    signature: None,
                    question: Some(list.question()),
                },
            ),
            "ListLicencesRequest",
            &list,
        ),
        with_request(
            vector(
                "get_record",
                "RecordAnswer",
                &RecordAnswer {
                    header: header("gov.sz.psb", &record.dataset, 1_767_225_600_000),
                    record: Some(Record { subject: person.clone(), version: 7, fields: fields(&[("name", "张三")]) }),
                    signature: sig.clone(),
                    question: Some(record.question()),
                },
            ),
            "GetRecordRequest",
            &record,
        ),
        vector(
            "get_record, no record",
            "RecordAnswer",
            &RecordAnswer { header: header("a", "b", 0), ..Default::default() },
        ),
        with_request(
            vector(
                "match_record",
                "MatchAnswer",
                &MatchAnswer {
                    header: header("gov.sz.psb", &matching.dataset, 5),
                    version: 2,
                    matches: vec![
                        FieldMatch { name: "name".into(), result: MatchResult::Match as i32 },
                        FieldMatch { name: "birth_date".into(), result: MatchResult::Absent as i32 },
                    ],
                    signature: sig,
                    question: Some(matching.question()),
                },
            ),
            "MatchRecordRequest",
            &matching,
        ),
    ];
    // Each batch item's question, beside the question of its single-call request (in order).
    let token = || "token".to_string();
    let items = [
        with_item(
            "LicenceItem",
            &LicenceItem {
                licence_id: get_licence.licence_id.clone(),
                fields: get_licence.fields.clone(),
                consent_token: token(),
            },
        ),
        with_item(
            "VerifyItem",
            &VerifyItem {
                licence_id: verify.licence_id.clone(),
                holder: verify.holder.clone(),
                fields: verify.fields.clone(),
                consent_token: token(),
            },
        ),
        with_item(
            "HolderItem",
            &HolderItem { holder: list.holder.clone(), fields: vec!["b".into(), "a".into()], consent_token: token() },
        ),
        with_item(
            "RecordItem",
            &RecordItem { subject: record.subject.clone(), fields: record.fields.clone(), consent_token: token() },
        ),
        with_item(
            "MatchItem",
            &MatchItem { subject: matching.subject.clone(), claims: matching.claims.clone(), consent_token: token() },
        ),
    ];
    for (v, item) in vectors.iter_mut().filter(|v| v.get("request").is_some()).zip(items) {
        v["item"] = item;
    }
    serde_json::Value::Array(vectors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_passes_its_suite_against_a_real_federation() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (id, name, status) = (landlord["id_number"].clone(), landlord["name"].clone(), landlord["status"].clone());
    let cert_no = property["cert_no"].clone();
    let tenant = fed
        .data
        .persons
        .iter()
        .find(|p| p["status"] == "normal" && p["id_number"] != id)
        .must("a second citizen")
        .clone();
    let company = fed.data.businesses.iter().find(|b| b["status"] == "active").must("an active company").clone();
    let dir = tempfile::tempdir().must("temporary folder");
    let vectors = dir.path().join("canonical-vectors.json");
    std::fs::write(&vectors, canonical_vectors().to_string()).must("write the canonical vectors");

    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").must("CARGO_MANIFEST_DIR"))
        .parent()
        .must("the repository root")
        .to_path_buf();
    let out = Command::new("python3")
        .args(["-m", "pytest", "clients/python/tests", "-q", "-p", "no:cacheprovider"])
        .current_dir(&root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("EXCHANGE_PROFILE", fed.net.profile_path(HCB))
        .env("EXCHANGE_LANDLORD_ID", &id)
        .env("EXCHANGE_LANDLORD_NAME", &name)
        .env("EXCHANGE_LANDLORD_STATUS", &status)
        .env("EXCHANGE_LANDLORD_CERT", &cert_no)
        .env("EXCHANGE_TENANT_ID", &tenant["id_number"])
        .env("EXCHANGE_TENANT_NAME", &tenant["name"])
        .env("EXCHANGE_TENANT_STATUS", &tenant["status"])
        .env("EXCHANGE_GSC_PROFILE", fed.net.profile_path(GSC))
        .env("EXCHANGE_COMPANY_CODE", &company["credit_code"])
        .env("EXCHANGE_COMPANY_LICENCE", &company["licence_no"])
        .env("EXCHANGE_CANONICAL_VECTORS", &vectors)
        .env("EXCHANGE_PROTO_DIR", root.join("proto"))
        .output()
        .must("python3 -m pytest (./scripts/test installs grpcio, grpcio-tools, cryptography and pytest when missing)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client's tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // On success pytest -q prints its dots and counts only.
    eprintln!("{stdout}");
    assert!(stdout.contains(" passed") && !stdout.contains("skipped"), "{stdout}");
}
