//! The canonical form's test vectors (`docs/canonical-vectors.json`, read at run time) checked
//! against the implementation the node signs with and the SDK verifies with: for each vector,
//! the canonical bytes, their SHA-256 and the Ed25519 signature under the vectors' test key
//! (version 2's signature over the digest alone); then the vectors' digests signed as one
//! group commit (version 3): the group statement, its SHA-256 and signature, and each
//! vector's leaf index and inclusion path.
//!
//! The inputs are proto3-JSON objects (original field names, 64-bit integers as strings,
//! enums as numbers, bytes as base64), so that a program in another language can check the
//! same file. `EXCHANGE_BLESS_VECTORS=1` rewrites the expected values from the implementation
//! (after a deliberate change of the form, which also changes its version).

use ed25519_dalek::SigningKey;
use exchange_core::answer_group::{AnswerGroup, GROUP_DOMAIN, group_root, group_statement, verify_statement};
use exchange_core::digest::{ANSWER_DOMAIN, key_id, sha256, sign_digest, verify_digest};
use exchange_proto::canonical::SignedAnswer;
use exchange_proto::v1::*;
use serde_json::Value;

fn vectors_path() -> std::path::PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    std::path::Path::new(&dir).join("../docs/canonical-vectors.json")
}

fn text(v: &Value, name: &str) -> String {
    v.get(name).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn int(v: &Value, name: &str) -> i128 {
    match v.get(name) {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.parse().unwrap_or_else(|_| panic!("{name}: not an integer: {s:?}")),
        Some(Value::Number(n)) => n.as_i64().map(i128::from).unwrap_or_else(|| panic!("{name}: not an integer")),
        Some(Value::Bool(b)) => i128::from(*b),
        Some(other) => panic!("{name}: not an integer: {other}"),
    }
}

fn u64_of(v: &Value, name: &str) -> u64 {
    u64::try_from(int(v, name)).expect("a uint64")
}

fn i64_of(v: &Value, name: &str) -> i64 {
    i64::try_from(int(v, name)).expect("an int64")
}

fn i32_of(v: &Value, name: &str) -> i32 {
    i32::try_from(int(v, name)).expect("an enum number")
}

fn list<'a>(v: &'a Value, name: &str) -> impl Iterator<Item = &'a Value> {
    v.get(name).and_then(Value::as_array).into_iter().flatten()
}

fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let d = ALPHABET.iter().position(|a| *a == c).unwrap_or_else(|| panic!("not base64: {s:?}"));
        acc = (acc << 6) | d as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn subject(v: Option<&Value>) -> Option<Subject> {
    v.filter(|v| !v.is_null()).map(|v| Subject { kind: i32_of(v, "kind"), id: text(v, "id") })
}

fn field_values(v: &Value) -> Vec<FieldValue> {
    list(v, "fields").map(|f| FieldValue { name: text(f, "name"), value: text(f, "value") }).collect()
}

fn header(v: &Value) -> Option<AnswerHeader> {
    v.get("header").map(|h| AnswerHeader {
        node: text(h, "node"),
        requester: text(h, "requester"),
        dataset: text(h, "dataset"),
        purpose_code: text(h, "purpose_code"),
        trace_id: text(h, "trace_id"),
        served_at_unix_ms: i64_of(h, "served_at_unix_ms"),
        log_sequence: u64_of(h, "log_sequence"),
    })
}

fn question(v: &Value) -> Option<Question> {
    v.get("question").map(|q| Question {
        licence_id: text(q, "licence_id"),
        subject: subject(q.get("subject")),
        claimed_holder: subject(q.get("claimed_holder")),
        claims: list(q, "claims")
            .map(|c| ClaimDigest { name: text(c, "name"), value_sha256: base64(&text(c, "value_sha256")) })
            .collect(),
        version: u64_of(q, "version"),
        fields: list(q, "fields").map(|f| f.as_str().unwrap_or_default().to_string()).collect(),
    })
}

fn licence(l: &Value) -> Licence {
    Licence {
        licence_id: text(l, "licence_id"),
        holder: subject(l.get("holder")),
        status: i32_of(l, "status"),
        valid_from: text(l, "valid_from"),
        valid_until: text(l, "valid_until"),
        version: u64_of(l, "version"),
        fields: field_values(l),
        historical: int(l, "historical") != 0,
        current_status: i32_of(l, "current_status"),
        current_version: u64_of(l, "current_version"),
    }
}

/// The canonical bytes and digest of a vector's answer, by its message type.
fn canonical(kind: &str, a: &Value) -> (Vec<u8>, [u8; 32]) {
    fn of<A: SignedAnswer>(answer: A) -> (Vec<u8>, [u8; 32]) {
        (answer.canonical_bytes(), answer.canonical_digest())
    }
    match kind {
        "get_licence" => of(LicenceAnswer {
            header: header(a),
            question: question(a),
            licence: a.get("licence").map(licence),
            signature: None,
        }),
        "verify_licence" => of(VerifyLicenceAnswer {
            header: header(a),
            question: question(a),
            verdict: i32_of(a, "verdict"),
            version: u64_of(a, "version"),
            fields: field_values(a),
            signature: None,
        }),
        "list_licences" => of(ListLicencesAnswer {
            header: header(a),
            question: question(a),
            licences: list(a, "licences").map(licence).collect(),
            signature: None,
        }),
        "get_record" => of(RecordAnswer {
            header: header(a),
            question: question(a),
            record: a.get("record").map(|r| Record {
                subject: subject(r.get("subject")),
                version: u64_of(r, "version"),
                fields: field_values(r),
            }),
            signature: None,
        }),
        "match_record" => of(MatchAnswer {
            header: header(a),
            question: question(a),
            version: u64_of(a, "version"),
            matches: list(a, "matches")
                .map(|m| FieldMatch { name: text(m, "name"), result: i32_of(m, "result") })
                .collect(),
            signature: None,
        }),
        other => panic!("unknown answer kind {other}"),
    }
}

#[test]
fn the_canonical_vectors_hold() {
    let path = vectors_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value = serde_json::from_str(&raw).expect("the vectors are JSON");
    assert_eq!(doc["canonical_form"], 3);
    assert_eq!(doc["group_domain"].as_str().map(str::as_bytes), Some(GROUP_DOMAIN));
    assert_eq!(doc["domain"].as_str().map(str::as_bytes), Some(ANSWER_DOMAIN));
    let seed: [u8; 32] = hex::decode(text(&doc["signing_key"], "seed_hex"))
        .expect("hex seed")
        .try_into()
        .expect("a 32-byte Ed25519 seed");
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    let bless = std::env::var("EXCHANGE_BLESS_VECTORS").is_ok_and(|v| v == "1");
    if bless {
        doc["signing_key"]["public_key_hex"] = hex::encode(public.as_bytes()).into();
        doc["signing_key"]["key_id"] = key_id(public.as_bytes()).into();
    }
    assert_eq!(text(&doc["signing_key"], "public_key_hex"), hex::encode(public.as_bytes()));
    assert_eq!(text(&doc["signing_key"], "key_id"), key_id(public.as_bytes()));
    let count = doc["vectors"].as_array().map_or(0, Vec::len);
    assert!(count >= 5, "a vector per answer kind");
    let mut kinds = std::collections::BTreeSet::new();
    let mut digests = Vec::new();
    for i in 0..count {
        let v = &mut doc["vectors"][i];
        let name = text(v, "name");
        let kind = text(v, "kind");
        kinds.insert(kind.clone());
        // A match vector gives the claimed values its question holds as digests.
        if let Some(claimed) = v.get("claimed_values").and_then(Value::as_array) {
            let digests: Vec<Vec<u8>> =
                list(&v["answer"]["question"], "claims").map(|c| base64(&text(c, "value_sha256"))).collect();
            let values: Vec<Vec<u8>> =
                claimed.iter().map(|c| sha256(c.as_str().unwrap_or_default().as_bytes()).to_vec()).collect();
            assert_eq!(digests, values, "{name}: value_sha256 is SHA-256 of the claimed value");
        }
        let (bytes, digest) = canonical(&kind, &v["answer"]);
        assert!(bytes.starts_with(ANSWER_DOMAIN), "{name}");
        assert_eq!(sha256(&bytes), digest, "{name}: the digest is SHA-256 of the canonical bytes");
        let signature = sign_digest(&key, &digest);
        assert!(verify_digest(&public, &digest, &signature).is_ok(), "{name}");
        digests.push(digest);
        if bless {
            v["canonical_hex"] = hex::encode(&bytes).into();
            v["sha256_hex"] = hex::encode(digest).into();
            v["signature_hex"] = hex::encode(signature).into();
            continue;
        }
        assert_eq!(text(v, "canonical_hex"), hex::encode(&bytes), "{name}: canonical bytes");
        assert_eq!(text(v, "sha256_hex"), hex::encode(digest), "{name}: SHA-256");
        assert_eq!(text(v, "signature_hex"), hex::encode(signature), "{name}: Ed25519 signature");
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["get_licence", "get_record", "list_licences", "match_record", "verify_licence"]
    );
    // Version 3: the vectors' answers as one group commit, in file order.
    let node = text(&doc["group"], "node");
    assert!(!node.is_empty(), "the group names its node");
    let group = AnswerGroup::new(&digests).expect("a group");
    let statement = group_statement(&node, group.size(), &group.root());
    let signature = group.sign(&node, &key);
    for (i, digest) in digests.iter().enumerate() {
        let path = group.path(i as u64).expect("a path");
        let root = group_root(digest, i as u64, group.size(), &path).expect("the path folds");
        assert_eq!(root, group.root());
        let hexes: Vec<Value> = path.iter().map(|h| Value::from(h.to_hex())).collect();
        let v = &mut doc["vectors"][i];
        if bless {
            v["group_index"] = i.into();
            v["group_path_hex"] = hexes.into();
            continue;
        }
        assert_eq!(v["group_index"], i, "{i}: group index");
        assert_eq!(v["group_path_hex"], Value::from(hexes), "{i}: group path");
    }
    assert!(verify_statement(&public, &sha256(&statement), &signature).is_ok());
    let g = &mut doc["group"];
    if bless {
        g["size"] = group.size().into();
        g["root_hex"] = group.root().to_hex().into();
        g["statement_hex"] = hex::encode(&statement).into();
        g["statement_sha256_hex"] = hex::encode(sha256(&statement)).into();
        g["signature_hex"] = hex::encode(signature).into();
    } else {
        assert_eq!(g["size"], group.size(), "group size");
        assert_eq!(text(g, "root_hex"), group.root().to_hex(), "group root");
        assert_eq!(text(g, "statement_hex"), hex::encode(&statement), "group statement");
        assert_eq!(text(g, "statement_sha256_hex"), hex::encode(sha256(&statement)), "statement SHA-256");
        assert_eq!(text(g, "signature_hex"), hex::encode(signature), "group signature");
    }
    if bless {
        let out = serde_json::to_string_pretty(&doc).expect("JSON") + "\n";
        std::fs::write(&path, out).expect("write the vectors");
    }
}

/// The independent checker written from `docs/canonical-form.md` (Python 3, standard library
/// only) agrees with the vectors: what a department implementing the form in another
/// language would run.
#[test]
fn the_standard_library_checker_agrees() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("../docs/check_canonical_vectors.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(vectors_path())
        .output()
        .unwrap_or_else(|e| panic!("run python3 {}: {e}", script.display()));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("ok     group of"), "{printed}");
    assert!(!printed.contains("FAILED"), "{printed}");
}
