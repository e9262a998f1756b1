//! Runs every RFC 9162 inclusion and consistency proof vector of transparency-dev/merkle
//! against `exchange_core::merkle::{verify_inclusion, verify_consistency}`.
//!
//! The vectors live outside the repository, in `shared/testdata/merkle` beside the clone
//! (or under `$EXCHANGE_SHARED_DIR/testdata/merkle`); see the README there for the format.
//! A missing directory, or fewer vectors than expected, fails the test: it never passes by
//! finding nothing.
//!
//! The vectors are byte strings for Go's verifier, which takes `[]byte` everywhere; ours takes
//! 32-byte [`Hash`]es. They are mapped as Go treats them:
//! - a leaf hash that is not 32 bytes is refused, as Go refuses it ("leafHash has unexpected
//!   size") and as our decoding refuses it ([`Hash::from_slice`]);
//! - a root or proof element that is not 32 bytes (`""` as garbage around a proof,
//!   `"don't care"` roots) is opaque to Go: roots are only compared, proof elements only
//!   counted and hashed. We replace each such value by a 32-byte stand-in,
//!   `SHA-256("exchange vector stand-in" || 0x00 || bytes)`, which keeps equal values equal and
//!   different values different, so that the verifier's own checks, not our decoding, have to
//!   refuse these cases. Happy-path files are checked to contain no stand-in.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use exchange_core::merkle::{Hash, ProofError, verify_consistency, verify_inclusion};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// transparency-dev/merkle at 417fb0c has 98 files in each folder.
const MIN_INCLUSION_FILES: usize = 98;
const MIN_CONSISTENCY_FILES: usize = 98;

fn vectors_dir() -> PathBuf {
    match std::env::var_os("EXCHANGE_SHARED_DIR") {
        Some(shared) => PathBuf::from(shared).join("testdata/merkle"),
        None => manifest_dir().join("../../shared/testdata/merkle"),
    }
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
}

fn files(kind: &str, min: usize) -> Vec<PathBuf> {
    let dir = vectors_dir().join(kind);
    assert!(
        dir.is_dir(),
        "RFC 9162 {kind} vectors not found at {}: put transparency-dev/merkle's testdata in \
         shared/testdata/merkle beside the repository, or set EXCHANGE_SHARED_DIR",
        dir.display()
    );
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    assert!(
        files.len() >= min,
        "found {} {kind} vectors under {}, expected at least {min}",
        files.len(),
        dir.display()
    );
    files
}

/// A decoded vector value: a genuine 32-byte hash, or a stand-in for other bytes.
struct Decoded {
    hash: Hash,
    stand_in: bool,
}

fn bytes(value: &Value, field: &str) -> Vec<u8> {
    let text = value.as_str().unwrap_or_else(|| panic!("{field} is not a string"));
    STANDARD.decode(text).unwrap_or_else(|e| panic!("{field} is not base64: {e}"))
}

fn opaque(value: &Value, field: &str) -> Decoded {
    let bytes = bytes(value, field);
    match Hash::from_slice(&bytes) {
        Ok(hash) => Decoded { hash, stand_in: false },
        Err(_) => {
            let mut hasher = Sha256::new();
            hasher.update(b"exchange vector stand-in\0");
            hasher.update(&bytes);
            Decoded { hash: Hash::from_bytes(hasher.finalize().into()), stand_in: true }
        }
    }
}

fn proof(value: &Value) -> Vec<Decoded> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(|item| opaque(item, "proof")).collect(),
        other => panic!("proof is neither null nor a list: {other}"),
    }
}

fn number(vector: &Value, field: &str) -> u64 {
    vector[field].as_u64().unwrap_or_else(|| panic!("{field} is not an unsigned integer"))
}

/// What a vector expects and what happened.
struct Outcome {
    want_err: bool,
    result: Result<(), String>,
    any_stand_in: bool,
}

fn run_inclusion(vector: &Value) -> Outcome {
    let root = opaque(&vector["root"], "root");
    let proof = proof(&vector["proof"]);
    let any_stand_in = root.stand_in || proof.iter().any(|d| d.stand_in);
    let hashes: Vec<Hash> = proof.iter().map(|d| d.hash).collect();
    let result = match Hash::from_slice(&bytes(&vector["leafHash"], "leafHash")) {
        Err(e) => Err(format!("leaf hash refused when decoded: {e}")),
        Ok(leaf) => verify_inclusion(leaf, number(vector, "leafIdx"), number(vector, "treeSize"), &hashes, root.hash)
            .map_err(|e: ProofError| e.to_string()),
    };
    Outcome { want_err: vector["wantErr"].as_bool().expect("wantErr is a bool"), result, any_stand_in }
}

fn run_consistency(vector: &Value) -> Outcome {
    let root1 = opaque(&vector["root1"], "root1");
    let root2 = opaque(&vector["root2"], "root2");
    let proof = proof(&vector["proof"]);
    let any_stand_in = root1.stand_in || root2.stand_in || proof.iter().any(|d| d.stand_in);
    let hashes: Vec<Hash> = proof.iter().map(|d| d.hash).collect();
    let result = verify_consistency(number(vector, "size1"), number(vector, "size2"), &hashes, root1.hash, root2.hash)
        .map_err(|e| e.to_string());
    Outcome { want_err: vector["wantErr"].as_bool().expect("wantErr is a bool"), result, any_stand_in }
}

/// Runs every file of one kind; returns (accepted as expected, refused as expected).
fn run_all(kind: &str, min: usize, run: fn(&Value) -> Outcome) -> (usize, usize) {
    let files = files(kind, min);
    let (mut accepted, mut refused) = (0, 0);
    let mut failures = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let vector: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let outcome = run(&vector);
        let name = path.strip_prefix(vectors_dir()).unwrap_or(path).display();
        match (&outcome.result, outcome.want_err) {
            (Ok(()), false) => {
                accepted += 1;
                let happy = path.file_name().is_some_and(|f| f == "happy-path.json");
                if happy && outcome.any_stand_in {
                    failures.push(format!("{name}: a happy path with a non-32-byte value"));
                }
            }
            (Err(_), true) => refused += 1,
            (Ok(()), true) => failures.push(format!("{name}: accepted, but the vector expects a refusal")),
            (Err(e), false) => failures.push(format!("{name}: refused ({e}), but the vector expects success")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {kind} vectors disagree:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(accepted > 0 && refused > 0, "{kind}: {accepted} accepted, {refused} refused");
    (accepted, refused)
}

#[test]
fn every_inclusion_vector() {
    let (accepted, refused) = run_all("inclusion", MIN_INCLUSION_FILES, run_inclusion);
    assert!(accepted >= 6 && refused >= 90, "{accepted} accepted, {refused} refused");
}

#[test]
fn every_consistency_vector() {
    let (accepted, refused) = run_all("consistency", MIN_CONSISTENCY_FILES, run_consistency);
    assert!(accepted >= 6 && refused >= 90, "{accepted} accepted, {refused} refused");
}

/// This package's folder, read when the test runs (cargo sets it): the compile-time value
/// would name whichever clone first built this binary, the target folder being shared.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
