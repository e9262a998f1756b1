//! Verification of what the federation sends: node answer signatures and the signed
//! federation configuration. Pure functions, no I/O: the client calls them on every answer
//! before the caller sees it.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use exchange_core::checkpoint::NoteVerifier;
use exchange_core::digest::{Digest32, key_id, verify_config_by_any, verify_digest};
use exchange_proto::canonical::SignedAnswer;
use exchange_proto::v1::{FederationConfig, KeyPurpose, Member, MemberStatus, Question, SignedFederationConfig};
use prost::Message as _;

use crate::error::{Error, Result};

/// An answer whose node signature was verified: the only way the SDK hands out node data.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified<T> {
    answer: T,
    node: String,
    key_id: String,
    digest: Digest32,
}

impl<T> Verified<T> {
    /// The verified answer.
    pub fn answer(&self) -> &T {
        &self.answer
    }

    /// The verified answer, by value.
    pub fn into_inner(self) -> T {
        self.answer
    }

    /// The department whose node signed it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The id of the node key that signed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The canonical digest that was signed (it is also in the node's access log entry).
    pub fn digest(&self) -> &Digest32 {
        &self.digest
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.answer
    }
}

/// What a caller asked, to check an answer against: the node asked, the caller itself, the
/// dataset and the question ([`exchange_proto::canonical::Asked`] gives it for every request
/// and batch item).
#[derive(Clone, Debug, PartialEq)]
pub struct Expected<'a> {
    /// The department whose node was asked.
    pub node: &'a str,
    /// The caller's own department.
    pub requester: &'a str,
    /// The dataset asked.
    pub dataset: &'a str,
    /// The question asked.
    pub question: Question,
}

/// Verifies a node answer: recomputes its canonical digest and compares it with the signed
/// one, checks that the header names the node asked, the caller and the dataset asked, that
/// the answer repeats the question asked (licence number or subject, claimed holder, claimed
/// values, version and fields: a genuine answer to another question is refused), and
/// verifies the Ed25519 signature under the node's key from the verified federation
/// configuration. Any mismatch is [`Error::BadSignature`].
///
/// ```
/// use exchange_client_sdk::verify::{Expected, verify_answer};
/// use exchange_proto::canonical::Asked;
/// use exchange_proto::v1::{GetRecordRequest, RecordAnswer};
///
/// let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
/// let request = GetRecordRequest { dataset: "gov.sz.psb/population".into(), ..Default::default() };
/// let expected = Expected {
///     node: "gov.sz.psb",
///     requester: "gov.sz.hcb",
///     dataset: &request.dataset,
///     question: request.question(),
/// };
/// // An unsigned answer is never data.
/// assert!(verify_answer(RecordAnswer::default(), &expected, &key).is_err());
/// ```
pub fn verify_answer<A: SignedAnswer>(
    answer: A,
    expected: &Expected<'_>,
    node_key: &VerifyingKey,
) -> Result<Verified<A>> {
    let Expected { node, requester, dataset, question } = expected;
    let (node, requester) = (*node, *requester);
    let bad = |what: String| Err(Error::BadSignature(format!("answer from {node}: {what}")));
    let Some(signature) = answer.signature() else {
        return bad("it carries no signature".into());
    };
    let Some(header) = answer.header() else {
        return bad("it carries no header".into());
    };
    if header.node != node {
        return bad(format!("its header names node {:?}, not the node asked", header.node));
    }
    if header.requester != requester {
        return bad(format!("its header names requester {:?}, not {requester}", header.requester));
    }
    if header.dataset != *dataset {
        return bad(format!("its header names dataset {:?}, not the dataset asked", header.dataset));
    }
    if signature.node != node {
        return bad(format!("it is signed by {:?}, not by the node asked", signature.node));
    }
    let expected_key_id = key_id(node_key.as_bytes());
    if signature.key_id != expected_key_id {
        return bad(format!(
            "it is signed with key {:?}, but the federation configuration gives the node key {expected_key_id}",
            signature.key_id
        ));
    }
    let digest = answer.canonical_digest();
    if signature.digest[..] != digest[..] {
        return bad("its digest does not match its content: the answer was altered".into());
    }
    if let Err(e) = verify_digest(node_key, &digest, &signature.signature) {
        return bad(e.to_string());
    }
    // A genuine signature over another question (a verdict on another licence, a match of
    // other claims) is not the answer to this one.
    match answer.question() {
        Some(q) if q == question => {}
        Some(q) => return bad(format!("it answers another question than the one asked ({})", differs(q, question))),
        None => return bad("it does not repeat the question it answers".into()),
    }
    Ok(Verified { node: node.to_owned(), key_id: expected_key_id, digest, answer })
}

/// Which parts of two questions differ (names only: never the values, which may be personal).
fn differs(got: &Question, asked: &Question) -> String {
    let mut parts = Vec::new();
    if got.licence_id != asked.licence_id {
        parts.push("licence number");
    }
    if got.subject != asked.subject {
        parts.push("subject");
    }
    if got.claimed_holder != asked.claimed_holder {
        parts.push("claimed holder");
    }
    if got.claims != asked.claims {
        parts.push("claims");
    }
    if got.version != asked.version {
        parts.push("version");
    }
    if got.fields != asked.fields {
        parts.push("fields");
    }
    parts.join(", ")
}

/// A node as the verified federation configuration describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The department.
    pub dept_id: String,
    /// Its node endpoint, `https://host:port` (empty when it runs no node).
    pub endpoint: String,
    /// Its node signing key, if registered.
    pub key: Option<VerifyingKey>,
    /// Every key its answers verify under: the signing key first, then the keys published
    /// beside it (its next key during a rotation, its previous one until retired).
    pub keys: Vec<VerifyingKey>,
    /// Whether the member is suspended.
    pub suspended: bool,
}

/// A federation configuration whose catalog signature was verified.
#[derive(Clone, Debug)]
pub struct FederationView {
    config: FederationConfig,
    nodes: BTreeMap<String, NodeInfo>,
    verified_at: Instant,
}

impl FederationView {
    /// The decoded configuration.
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    /// How long ago its signature was verified (when this client fetched it).
    pub fn age(&self) -> Duration {
        self.verified_at.elapsed()
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.config.version
    }

    /// The log origin of the central access log.
    pub fn log_origin(&self) -> &str {
        &self.config.log_origin
    }

    /// The catalog's public keys in force for `purpose` (signing or published beside), as
    /// this verified configuration lists them.
    pub fn catalog_keys(&self, purpose: KeyPurpose) -> Vec<VerifyingKey> {
        self.config.catalog_keys_for(purpose)
    }

    /// The verifiers of the central log's checkpoints: each checkpoint key in force under
    /// the log origin (never a configuration or token key).
    pub fn log_verifiers(&self) -> Result<Vec<NoteVerifier>> {
        self.catalog_keys(KeyPurpose::Checkpoint)
            .iter()
            .map(|k| crate::log::log_verifier(self.log_origin(), k))
            .collect()
    }

    /// A member's node, if the member is known.
    pub fn node(&self, dept_id: &str) -> Option<&NodeInfo> {
        self.nodes.get(dept_id)
    }

    /// A member.
    pub fn member(&self, dept_id: &str) -> Option<&Member> {
        self.config.members.iter().find(|m| m.dept_id == dept_id)
    }
}

/// Verifies the catalog's signature over a federation configuration with one of the
/// `trusted` configuration keys (the pinned ones, and those the last verified configuration
/// listed) and decodes it. A configuration signed by any other key (the catalog's token or
/// checkpoint key included), or altered, is refused with [`Error::BadSignature`].
pub fn verify_federation_config(signed: &SignedFederationConfig, trusted: &[VerifyingKey]) -> Result<FederationView> {
    verify_config_by_any(trusted, &signed.key_id, &signed.body, &signed.signature)
        .map_err(|e| Error::BadSignature(format!("federation configuration: {e}")))?;
    let config = FederationConfig::decode(signed.body.as_slice())
        .map_err(|e| Error::Config(format!("signed configuration does not decode: {e}")))?;
    let mut nodes = BTreeMap::new();
    for m in &config.members {
        let key = (!m.node_signing_key.is_empty()).then(|| node_key(m, &m.node_signing_key)).transpose()?;
        let mut keys: Vec<VerifyingKey> = key.into_iter().collect();
        for published in &m.node_published_keys {
            keys.push(node_key(m, published)?);
        }
        nodes.insert(
            m.dept_id.clone(),
            NodeInfo {
                dept_id: m.dept_id.clone(),
                endpoint: m.endpoint.clone(),
                key,
                keys,
                suspended: m.status == MemberStatus::Suspended as i32,
            },
        );
    }
    Ok(FederationView { config, nodes, verified_at: Instant::now() })
}

/// A node key of member `m` as the configuration lists it.
fn node_key(m: &Member, bytes: &[u8]) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Config(format!("member {}: node signing key is not 32 bytes", m.dept_id)))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| Error::Config(format!("member {}: node signing key is not an Ed25519 key: {e}", m.dept_id)))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use exchange_core::digest::{sign_config, sign_digest};
    use exchange_proto::canonical::Asked;
    use exchange_proto::v1::{
        AnswerHeader, AnswerSignature, FieldValue, GetLicenceRequest, GetRecordRequest, LicenceAnswer, MatchAnswer,
        Record, RecordAnswer, Subject, VerifyLicenceAnswer, VerifyLicenceRequest,
    };

    use super::*;

    const NODE: &str = "gov.sz.psb";
    const ME: &str = "gov.sz.hcb";
    const DATASET: &str = "gov.sz.psb/population";

    fn node_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn sign<A: SignedAnswer>(mut answer: A, key: &SigningKey) -> A {
        let digest = answer.canonical_digest();
        answer.set_signature(AnswerSignature {
            node: NODE.into(),
            key_id: key_id(key.verifying_key().as_bytes()),
            digest: digest.to_vec(),
            signature: sign_digest(key, &digest).to_vec(),
        });
        answer
    }

    fn header() -> Option<AnswerHeader> {
        Some(AnswerHeader {
            node: NODE.into(),
            requester: ME.into(),
            dataset: DATASET.into(),
            purpose_code: "SZ-HCB-ZLBA-001".into(),
            trace_id: "t-1".into(),
            served_at_unix_ms: 1_700_000_000_000,
            log_sequence: 42,
        })
    }

    fn record_answer() -> RecordAnswer {
        sign(
            RecordAnswer {
                header: header(),
                record: Some(Record {
                    subject: Some(Subject { kind: 1, id: "11010519491231002X".into() }),
                    version: 3,
                    fields: vec![
                        FieldValue { name: "address".into(), value: "深圳市福田区".into() },
                        FieldValue { name: "name".into(), value: "张三".into() },
                    ],
                }),
                signature: None,
                question: Some(record_request().question()),
            },
            &node_key(),
        )
    }

    fn record_request() -> GetRecordRequest {
        GetRecordRequest {
            dataset: DATASET.into(),
            subject: Some(Subject { kind: 1, id: "11010519491231002X".into() }),
            fields: vec!["name".into(), "address".into()],
            ..Default::default()
        }
    }

    fn expected(question: Question) -> Expected<'static> {
        Expected { node: NODE, requester: ME, dataset: DATASET, question }
    }

    fn verify(answer: RecordAnswer) -> Result<Verified<RecordAnswer>> {
        verify_answer(answer, &expected(record_request().question()), &node_key().verifying_key())
    }

    fn assert_bad(result: Result<Verified<RecordAnswer>>, needle: &str) {
        match result {
            Err(Error::BadSignature(message)) => assert!(message.contains(needle), "{message}"),
            other => panic!("expected BadSignature containing {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_genuine_answer_verifies() {
        let verified = verify(record_answer()).expect("genuine answer");
        assert_eq!(verified.node(), NODE);
        assert_eq!(verified.record.as_ref().map(|r| r.version), Some(3));
        assert_eq!(verified.digest(), &record_answer().canonical_digest());
    }

    #[test]
    fn a_changed_field_value_is_rejected() {
        let mut a = record_answer();
        if let Some(r) = a.record.as_mut() {
            r.fields[1].value = "李四".into();
        }
        assert_bad(verify(a), "altered");
    }

    #[test]
    fn an_added_field_is_rejected() {
        let mut a = record_answer();
        if let Some(r) = a.record.as_mut() {
            r.fields.push(FieldValue { name: "phone".into(), value: "13800000000".into() });
        }
        assert_bad(verify(a), "altered");
    }

    #[test]
    fn a_changed_header_is_rejected() {
        let mut a = record_answer();
        if let Some(h) = a.header.as_mut() {
            h.log_sequence = 43;
        }
        assert_bad(verify(a), "altered");
        let mut a = record_answer();
        if let Some(h) = a.header.as_mut() {
            h.requester = "gov.sz.other".into();
        }
        assert_bad(verify(a), "requester");
        let mut a = record_answer();
        if let Some(h) = a.header.as_mut() {
            h.node = "gov.sz.amr".into();
        }
        assert_bad(verify(a), "header names node");
    }

    #[test]
    fn a_recomputed_digest_without_the_key_is_rejected() {
        // The attacker alters the answer and recomputes the digest, but cannot sign it.
        let mut a = record_answer();
        if let Some(r) = a.record.as_mut() {
            r.fields[1].value = "李四".into();
        }
        let digest = a.canonical_digest();
        if let Some(s) = a.signature.as_mut() {
            s.digest = digest.to_vec();
        }
        assert_bad(verify(a), "does not verify");
    }

    #[test]
    fn a_swapped_signature_is_rejected() {
        // The signature of another genuine answer.
        let mut other = record_answer();
        if let Some(h) = other.header.as_mut() {
            h.log_sequence = 99;
        }
        let other = sign(RecordAnswer { signature: None, ..other }, &node_key());
        let mut a = record_answer();
        a.signature = other.signature.clone();
        assert_bad(verify(a), "altered");
        let mut a = record_answer();
        if let (Some(s), Some(o)) = (a.signature.as_mut(), other.signature.as_ref()) {
            s.signature = o.signature.clone();
        }
        assert_bad(verify(a), "does not verify");
    }

    #[test]
    fn a_signature_by_an_unknown_key_is_rejected() {
        let stranger = SigningKey::from_bytes(&[10; 32]);
        let a = sign(RecordAnswer { signature: None, ..record_answer() }, &stranger);
        assert_bad(verify(a.clone()), "signed with key");
        // Even if it claims the node's key id.
        let mut a = a;
        if let Some(s) = a.signature.as_mut() {
            s.key_id = key_id(node_key().verifying_key().as_bytes());
        }
        assert_bad(verify(a), "does not verify");
    }

    #[test]
    fn missing_signature_or_header_is_rejected() {
        assert_bad(verify(RecordAnswer { signature: None, ..record_answer() }), "no signature");
        assert_bad(verify(RecordAnswer { header: None, ..record_answer() }), "no header");
        let mut a = record_answer();
        if let Some(s) = a.signature.as_mut() {
            s.signature.truncate(10);
        }
        assert_bad(verify(a), "64");
    }

    #[test]
    fn other_answer_kinds_verify_too() {
        let key = node_key();
        let vk = key.verifying_key();
        let asked = VerifyLicenceRequest { licence_id: "SZ-AMR-2026-000001".into(), ..Default::default() };
        let v = sign(
            VerifyLicenceAnswer {
                header: header(),
                verdict: 1,
                version: 2,
                question: Some(asked.question()),
                ..Default::default()
            },
            &key,
        );
        assert!(verify_answer(v.clone(), &expected(asked.question()), &vk).is_ok());
        let mut tampered = v;
        tampered.verdict = 3;
        assert!(matches!(verify_answer(tampered, &expected(asked.question()), &vk), Err(Error::BadSignature(_))));
        let get = GetLicenceRequest { licence_id: "SZ-AMR-2026-000001".into(), version: 1, ..Default::default() };
        let l = sign(LicenceAnswer { header: header(), question: Some(get.question()), ..Default::default() }, &key);
        assert!(verify_answer(l, &expected(get.question()), &vk).is_ok());
        let m = sign(
            MatchAnswer {
                header: header(),
                version: 1,
                question: Some(record_request().question()),
                ..Default::default()
            },
            &key,
        );
        assert!(verify_answer(m, &expected(record_request().question()), &vk).is_ok());
    }

    #[test]
    fn a_genuine_answer_to_another_question_is_rejected() {
        let key = node_key();
        let vk = key.verifying_key();
        let verdict_on = |licence: &str, holder: Option<Subject>| VerifyLicenceRequest {
            licence_id: licence.into(),
            holder,
            ..Default::default()
        };
        let on_a = verdict_on("SZ-AMR-2026-000001", None);
        let valid_a = sign(
            VerifyLicenceAnswer {
                header: header(),
                verdict: 1,
                version: 1,
                question: Some(on_a.question()),
                ..Default::default()
            },
            &key,
        );
        // Shown as the verdict on licence B, or for a claimed holder, it is refused.
        let on_b = verdict_on("SZ-AMR-2026-000002", None);
        match verify_answer(valid_a.clone(), &expected(on_b.question()), &vk) {
            Err(Error::BadSignature(m)) => {
                assert!(m.contains("another question") && m.contains("licence number"), "{m}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let holder = Some(Subject { kind: 2, id: "91440300708461136T".into() });
        let claimed = verdict_on("SZ-AMR-2026-000001", holder);
        assert!(matches!(
            verify_answer(valid_a.clone(), &expected(claimed.question()), &vk),
            Err(Error::BadSignature(_))
        ));
        // Rewriting the question the answer repeats breaks the signature.
        let mut rewritten = valid_a;
        rewritten.question = Some(on_b.question());
        match verify_answer(rewritten, &expected(on_b.question()), &vk) {
            Err(Error::BadSignature(m)) => assert!(m.contains("altered"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A record for other fields, or from another dataset, is not the one asked.
        let mut other_fields = record_request();
        other_fields.fields.push("phone".into());
        assert!(matches!(
            verify_answer(record_answer(), &expected(other_fields.question()), &vk),
            Err(Error::BadSignature(_))
        ));
        let elsewhere = Expected { dataset: "gov.sz.psb/other", ..expected(record_request().question()) };
        assert!(matches!(verify_answer(record_answer(), &elsewhere, &vk), Err(Error::BadSignature(_))));
    }

    #[test]
    fn federation_config_is_verified_with_the_pinned_key() {
        let catalog = SigningKey::from_bytes(&[11; 32]);
        let node = node_key();
        let body = FederationConfig {
            version: 7,
            members: vec![Member {
                dept_id: NODE.into(),
                endpoint: "https://127.0.0.1:7401".into(),
                node_signing_key: node.verifying_key().as_bytes().to_vec(),
                status: MemberStatus::Active as i32,
                ..Default::default()
            }],
            log_origin: "exchange.test/log".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let signed = SignedFederationConfig {
            signature: sign_config(&catalog, &body).to_vec(),
            key_id: key_id(catalog.verifying_key().as_bytes()),
            body: body.clone(),
        };
        let view = verify_federation_config(&signed, &[catalog.verifying_key()]).expect("genuine configuration");
        assert_eq!(view.version(), 7);
        assert_eq!(view.node(NODE).and_then(|n| n.key), Some(node.verifying_key()));
        assert_eq!(view.log_origin(), "exchange.test/log");

        let mut altered = signed.clone();
        altered.body[0] ^= 1;
        assert!(matches!(verify_federation_config(&altered, &[catalog.verifying_key()]), Err(Error::BadSignature(_))));
        let stranger = SigningKey::from_bytes(&[12; 32]);
        assert!(matches!(verify_federation_config(&signed, &[stranger.verifying_key()]), Err(Error::BadSignature(_))));
        let forged = SignedFederationConfig {
            signature: sign_config(&stranger, &body).to_vec(),
            key_id: key_id(catalog.verifying_key().as_bytes()),
            body,
        };
        assert!(matches!(verify_federation_config(&forged, &[catalog.verifying_key()]), Err(Error::BadSignature(_))));
    }
}
