//! Digests with a fixed, documented encoding: the keyed digest of a subject id, the
//! canonical digest of an answer, key ids, and the Ed25519 signature over an answer digest.
//!
//! The canonical answer encoding is what the node signs and the SDK re-computes, so it must
//! never depend on a serializer's whims (protobuf encodings are not canonical). It is a
//! domain-separated sequence of labelled, typed, length-prefixed items:
//!
//! ```text
//! "exchange.v1/answer/v2\0" kind-len(u16 BE) kind
//! then per item: label-len(u16 BE) label tag(u8) value
//!   tag 1 text:   len(u32 BE) UTF-8 bytes
//!   tag 2 u64:    8 bytes BE
//!   tag 3 i64:    8 bytes BE (two's complement)
//!   tag 4 bytes:  len(u32 BE) bytes
//!   tag 5 list:   count(u32 BE), announcing `count` repetitions of the items that follow
//! ```
//! The digest is SHA-256 of that byte string. `docs/canonical-form.md` specifies it byte by
//! byte (canonical form version 2, the version in the domain string), with test vectors.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

/// A 32-byte SHA-256 digest.
pub type Digest32 = [u8; 32];

/// The id of an Ed25519 public key: hex of the first 8 bytes of its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// SHA-256 of arbitrary bytes (the digest of a claimed value in a signed answer's question).
pub fn sha256(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// Hex SHA-256 of arbitrary bytes (used for schema and certificate fingerprints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Computes keyed digests of subject ids (HMAC-SHA-256 under the federation key), the only
/// form in which a subject may appear outside its provider's node.
#[derive(Clone)]
pub struct SubjectDigester {
    key: [u8; 32],
    key_id: String,
}

impl fmt::Debug for SubjectDigester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectDigester").field("key_id", &self.key_id).field("key", &"<hidden>").finish()
    }
}

impl SubjectDigester {
    /// A digester under `key`.
    pub fn new(key: [u8; 32]) -> Self {
        let key_id = hex::encode(&Sha256::digest(key)[..8]);
        Self { key, key_id }
    }

    /// The id of the key (safe to show): hex of the first 8 bytes of SHA-256 of the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The hex digest of a subject id given in canonical form with its kind (`person` or
    /// `organisation`), so that equal strings of different kinds never collide.
    pub fn digest(&self, kind: &str, canonical_id: &str) -> String {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA-256 takes keys of any length"),
        };
        mac.update(b"exchange.v1/subject\0");
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(canonical_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The domain-separation string of the canonical answer form, with its version (2: answers
/// bind their question).
pub const ANSWER_DOMAIN: &[u8] = b"exchange.v1/answer/v2\0";

/// Builds the canonical digest of an answer (see the module doc for the encoding). The node
/// and the SDK feed the same items in the same order through one shared function per answer
/// type, in the proto crate's `canonical` module.
#[derive(Clone)]
pub struct CanonicalHasher {
    hasher: Sha256,
    transcript: Option<Vec<u8>>,
}

impl fmt::Debug for CanonicalHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CanonicalHasher")
    }
}

impl CanonicalHasher {
    /// Starts the digest of an answer of `kind` (e.g. `get_record`).
    pub fn new(kind: &str) -> Self {
        Self::start(kind, None)
    }

    /// Like [`CanonicalHasher::new`], also keeping the bytes hashed ([`CanonicalHasher::transcript`]),
    /// for test vectors and for checking another implementation.
    pub fn recording(kind: &str) -> Self {
        Self::start(kind, Some(Vec::new()))
    }

    fn start(kind: &str, transcript: Option<Vec<u8>>) -> Self {
        let mut h = Self { hasher: Sha256::new(), transcript };
        h.update(ANSWER_DOMAIN);
        h.update(&Self::len16(kind.len()).to_be_bytes());
        h.update(kind.as_bytes());
        h
    }

    fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        if let Some(t) = self.transcript.as_mut() {
            t.extend_from_slice(bytes);
        }
    }

    /// The bytes hashed so far, when recording.
    pub fn transcript(&self) -> Option<&[u8]> {
        self.transcript.as_deref()
    }

    fn len16(len: usize) -> u16 {
        u16::try_from(len).unwrap_or(u16::MAX)
    }

    fn len32(len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX)
    }

    fn label(&mut self, label: &str, tag: u8) {
        self.update(&Self::len16(label.len()).to_be_bytes());
        self.update(label.as_bytes());
        self.update(&[tag]);
    }

    /// Adds a text item.
    pub fn text(&mut self, label: &str, value: &str) -> &mut Self {
        self.label(label, 1);
        self.update(&Self::len32(value.len()).to_be_bytes());
        self.update(value.as_bytes());
        self
    }

    /// Adds an unsigned integer item.
    pub fn u64(&mut self, label: &str, value: u64) -> &mut Self {
        self.label(label, 2);
        self.update(&value.to_be_bytes());
        self
    }

    /// Adds a signed integer item.
    pub fn i64(&mut self, label: &str, value: i64) -> &mut Self {
        self.label(label, 3);
        self.update(&value.to_be_bytes());
        self
    }

    /// Adds a bytes item.
    pub fn bytes(&mut self, label: &str, value: &[u8]) -> &mut Self {
        self.label(label, 4);
        self.update(&Self::len32(value.len()).to_be_bytes());
        self.update(value);
        self
    }

    /// Announces a list of `count` entries; the entries' items follow.
    pub fn list(&mut self, label: &str, count: usize) -> &mut Self {
        self.label(label, 5);
        self.update(&Self::len32(count).to_be_bytes());
        self
    }

    /// The digest.
    pub fn finish(&self) -> Digest32 {
        self.hasher.clone().finalize().into()
    }
}

/// Why an answer signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not 64 bytes.
    #[error("signature is {0} bytes, expected 64")]
    BadLength(usize),
    /// The digest in the answer differs from the one recomputed from its content.
    #[error("answer digest does not match its content: the answer was altered")]
    DigestMismatch,
    /// The signature does not verify under the node key.
    #[error("signature does not verify under the node's key")]
    Invalid,
    /// A configuration is signed by a key that is not one of the trusted configuration keys
    /// (another key of the catalog's, a token or checkpoint key, included).
    #[error("signed with key {signed_by:?}, not a trusted configuration key ({trusted})")]
    UntrustedKey {
        /// The key id the signature names.
        signed_by: String,
        /// The trusted key ids.
        trusted: String,
    },
}

/// Signs an answer digest with a node key.
pub fn sign_digest(key: &SigningKey, digest: &Digest32) -> [u8; 64] {
    key.sign(digest).to_bytes()
}

/// Verifies a node's signature over an answer digest (strict Ed25519).
pub fn verify_digest(key: &VerifyingKey, digest: &Digest32, signature: &[u8]) -> Result<(), SignatureError> {
    let sig = Signature::from_slice(signature).map_err(|_| SignatureError::BadLength(signature.len()))?;
    key.verify_strict(digest, &sig).map_err(|_| SignatureError::Invalid)
}

const CONFIG_DOMAIN: &[u8] = b"exchange.v1/federation-config\0";

/// The bytes the catalog signs for a federation configuration: a domain tag and the exact
/// encoded body as transported, so that verifying needs no re-encoding.
pub fn config_signing_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONFIG_DOMAIN.len() + body.len());
    message.extend_from_slice(CONFIG_DOMAIN);
    message.extend_from_slice(body);
    message
}

/// Signs an encoded federation configuration body.
pub fn sign_config(key: &SigningKey, body: &[u8]) -> [u8; 64] {
    key.sign(&config_signing_message(body)).to_bytes()
}

/// Verifies the catalog's signature over an encoded federation configuration body (strict
/// Ed25519).
pub fn verify_config(key: &VerifyingKey, body: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let sig = Signature::from_slice(signature).map_err(|_| SignatureError::BadLength(signature.len()))?;
    key.verify_strict(&config_signing_message(body), &sig).map_err(|_| SignatureError::Invalid)
}

/// Verifies a configuration signed by one of the `trusted` configuration keys (the pinned
/// current and next keys, or those the last verified configuration listed, so that the
/// catalog can switch to its next key by publication): the key named by `signed_key_id` must
/// be trusted, and the signature must verify under it. A valid signature by any other key,
/// the catalog's token or checkpoint keys included, is refused.
pub fn verify_config_by_any(
    trusted: &[VerifyingKey],
    signed_key_id: &str,
    body: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let key =
        trusted.iter().find(|k| key_id(k.as_bytes()) == signed_key_id).ok_or_else(|| SignatureError::UntrustedKey {
            signed_by: signed_key_id.chars().take(32).collect(),
            trusted: trusted.iter().map(|k| key_id(k.as_bytes())).collect::<Vec<_>>().join(", "),
        })?;
    verify_config(key, body, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_verify_under_a_trusted_key_only() {
        let current = SigningKey::from_bytes(&[1; 32]);
        let next = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let trusted = [current.verifying_key(), next.verifying_key()];
        let body = b"configuration";
        for signer in [&current, &next] {
            let id = key_id(signer.verifying_key().as_bytes());
            assert_eq!(verify_config_by_any(&trusted, &id, body, &sign_config(signer, body)), Ok(()));
        }
        let id = key_id(other.verifying_key().as_bytes());
        let refused = verify_config_by_any(&trusted, &id, body, &sign_config(&other, body));
        assert!(matches!(refused, Err(SignatureError::UntrustedKey { .. })), "{refused:?}");
        // Naming a trusted key does not help a signature by another.
        let id = key_id(current.verifying_key().as_bytes());
        assert_eq!(verify_config_by_any(&trusted, &id, body, &sign_config(&other, body)), Err(SignatureError::Invalid));
    }

    #[test]
    fn subject_digest_is_keyed_and_kind_separated() {
        let a = SubjectDigester::new([1; 32]);
        let b = SubjectDigester::new([2; 32]);
        let id = "11010519491231002X";
        assert_eq!(a.digest("person", id), a.digest("person", id));
        assert_ne!(a.digest("person", id), b.digest("person", id));
        assert_ne!(a.digest("person", id), a.digest("organisation", id));
        assert_eq!(a.digest("person", id).len(), 64);
        assert!(!format!("{a:?}").contains("0101"));
    }

    #[test]
    fn canonical_digest_is_unambiguous() {
        let d1 = CanonicalHasher::new("k").text("a", "bc").text("d", "").finish();
        let d2 = CanonicalHasher::new("k").text("a", "b").text("d", "c").finish();
        let d3 = CanonicalHasher::new("k").text("a", "bc").text("d", "").finish();
        assert_ne!(d1, d2);
        assert_eq!(d1, d3);
        let d4 = CanonicalHasher::new("j").text("a", "bc").text("d", "").finish();
        assert_ne!(d1, d4);
        let n1 = CanonicalHasher::new("k").u64("v", 1).finish();
        let n2 = CanonicalHasher::new("k").i64("v", 1).finish();
        assert_ne!(n1, n2);
    }

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let digest = CanonicalHasher::new("get_record").text("field", "value").finish();
        let sig = sign_digest(&key, &digest);
        assert_eq!(verify_digest(&key.verifying_key(), &digest, &sig), Ok(()));
        let other = CanonicalHasher::new("get_record").text("field", "valuf").finish();
        assert_eq!(verify_digest(&key.verifying_key(), &other, &sig), Err(SignatureError::Invalid));
        assert_eq!(verify_digest(&key.verifying_key(), &digest, &sig[..10]), Err(SignatureError::BadLength(10)));
        let stranger = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(verify_digest(&stranger.verifying_key(), &digest, &sig), Err(SignatureError::Invalid));
    }

    #[test]
    fn config_signatures_bind_the_exact_body() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let sig = sign_config(&key, b"body");
        assert_eq!(verify_config(&key.verifying_key(), b"body", &sig), Ok(()));
        assert_eq!(verify_config(&key.verifying_key(), b"bodz", &sig), Err(SignatureError::Invalid));
        // A config signature is not an answer signature over the same bytes.
        let digest: Digest32 = Sha256::digest(b"body").into();
        assert_eq!(verify_digest(&key.verifying_key(), &digest, &sig), Err(SignatureError::Invalid));
    }

    #[test]
    fn key_id_is_stable_hex() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let id = key_id(key.verifying_key().as_bytes());
        assert_eq!(id.len(), 16);
        assert_eq!(id, key_id(key.verifying_key().as_bytes()));
    }
}
