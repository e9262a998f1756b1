//! Verification of what the federation sends: node answer signatures and the signed
//! federation configuration. Pure functions, no I/O: the client calls them on every answer
//! before the caller sees it.

use std::collections::{BTreeMap, HashSet};
use std::ops::Deref;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use exchange_core::answer_group::{group_root, group_statement_digest, verify_statement};
use exchange_core::checkpoint::NoteVerifier;
use exchange_core::digest::{Digest32, key_id, verify_config_by_any, verify_digest};
use exchange_core::merkle::Hash;
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

/// The group statements (canonical form version 3) whose node signature a client has
/// verified, so that the other answers of the same group commit cost a hash path instead of
/// an Ed25519 verification. An entry is the exact triple verified (node key, statement
/// digest, signature bytes): an answer that brings another signature, another key or another
/// root is verified in full. Bounded: two generations of [`VerifiedGroups::GENERATION`]
/// entries, the older dropped whole when the newer fills.
#[derive(Debug, Default)]
pub struct VerifiedGroups {
    generations: Mutex<[HashSet<GroupKey>; 2]>,
}

type GroupKey = ([u8; 32], Digest32, [u8; 64]);

impl VerifiedGroups {
    /// Entries per generation.
    pub const GENERATION: usize = 4096;

    fn contains(&self, key: &GroupKey) -> bool {
        let g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        g[0].contains(key) || g[1].contains(key)
    }

    fn insert(&self, key: GroupKey) {
        let mut g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        if g[0].len() >= Self::GENERATION {
            g[1] = std::mem::take(&mut g[0]);
        }
        g[0].insert(key);
    }

    /// How many verified statements are remembered.
    pub fn len(&self) -> usize {
        let g = self.generations.lock().unwrap_or_else(PoisonError::into_inner);
        g[0].len() + g[1].len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies a node answer: recomputes its canonical digest and compares it with the signed
/// one, checks that the header names the node asked, the caller and the dataset asked, that
/// the answer repeats the question asked (licence number or subject, claimed holder, claimed
/// values, version and fields: a genuine answer to another question is refused), and
/// verifies the Ed25519 signature under the node's key from the verified federation
/// configuration: over the group statement its inclusion path leads to (canonical form
/// version 3), or over its digest alone (version 2, `group_size` 0, from nodes not yet
/// upgraded). Any mismatch is [`Error::BadSignature`].
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
    verify_answer_in(answer, expected, node_key, None)
}

/// [`verify_answer`], remembering in `groups` the group statements verified, and taking a
/// statement found there as verified (the client's path: one Ed25519 verification per group
/// commit rather than per answer).
pub fn verify_answer_in<A: SignedAnswer>(
    answer: A,
    expected: &Expected<'_>,
    node_key: &VerifyingKey,
    groups: Option<&VerifiedGroups>,
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
    if signature.group_size == 0 {
        // Version 2: the signature covers this answer's digest alone.
        if signature.group_index != 0 || !signature.group_path.is_empty() {
            return bad("it gives a group path but no group size".into());
        }
        if let Err(e) = verify_digest(node_key, &digest, &signature.signature) {
            return bad(e.to_string());
        }
    } else {
        let path: std::result::Result<Vec<Hash>, _> =
            signature.group_path.iter().map(|h| Hash::from_slice(h)).collect();
        let Ok(path) = path else {
            return bad("a hash of its group path is not 32 bytes".into());
        };
        let root = match group_root(&digest, signature.group_index, signature.group_size, &path) {
            Ok(root) => root,
            Err(e) => return bad(format!("its group path does not hold: {e}")),
        };
        let statement = group_statement_digest(node, signature.group_size, &root);
        let Ok(sig) = <[u8; 64]>::try_from(signature.signature.as_slice()) else {
            return bad(format!("signature is {} bytes, expected 64", signature.signature.len()));
        };
        let remembered = (*node_key.as_bytes(), statement, sig);
        if !groups.is_some_and(|g| g.contains(&remembered)) {
            if let Err(e) = verify_statement(node_key, &statement, &sig) {
                return bad(e.to_string());
            }
            if let Some(g) = groups {
                g.insert(remembered);
            }
        }
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
            ..Default::default()
        });
        answer
    }

    /// Signs `answers` as one group commit (canonical form version 3), as a node does.
    fn sign_group(answers: Vec<RecordAnswer>, key: &SigningKey) -> Vec<RecordAnswer> {
        use exchange_core::answer_group::AnswerGroup;
        let digests: Vec<_> = answers.iter().map(|a| a.canonical_digest()).collect();
        let group = AnswerGroup::new(&digests).expect("a group");
        let signature = group.sign(NODE, key);
        answers
            .into_iter()
            .enumerate()
            .map(|(i, mut a)| {
                let path = group.path(i as u64).expect("a path");
                a.set_signature(AnswerSignature {
                    node: NODE.into(),
                    key_id: key_id(key.verifying_key().as_bytes()),
                    digest: digests[i].to_vec(),
                    signature: signature.to_vec(),
                    group_size: group.size(),
                    group_index: i as u64,
                    group_path: path.iter().map(|h| h.as_bytes().to_vec()).collect(),
                });
                a
            })
            .collect()
    }

    /// Five answers of one group commit (log sequences 40..45).
    fn group_of_answers() -> Vec<RecordAnswer> {
        let answers = (0..5)
            .map(|i| {
                let mut a = RecordAnswer { signature: None, ..record_answer() };
                if let Some(h) = a.header.as_mut() {
                    h.log_sequence = 40 + i;
                }
                a
            })
            .collect();
        sign_group(answers, &node_key())
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
    fn every_answer_of_a_signed_group_verifies_with_one_signature_check() {
        let groups = VerifiedGroups::default();
        let key = node_key().verifying_key();
        for a in group_of_answers() {
            let verified = verify_answer_in(a, &expected(record_request().question()), &key, Some(&groups));
            assert!(verified.is_ok(), "{verified:?}");
        }
        assert_eq!(groups.len(), 1, "one statement for the whole group");
    }

    #[test]
    fn a_group_answer_with_another_path_index_size_or_signature_is_rejected() {
        let answers = group_of_answers();
        let groups = VerifiedGroups::default();
        let key = node_key().verifying_key();
        let check = |a: RecordAnswer| verify_answer_in(a, &expected(record_request().question()), &key, Some(&groups));
        assert!(check(answers[0].clone()).is_ok(), "the group's statement is now remembered");
        let with = |f: &dyn Fn(&mut AnswerSignature)| {
            let mut a = answers[2].clone();
            if let Some(s) = a.signature.as_mut() {
                f(s);
            }
            a
        };
        // Another answer's path or position leads to another root: no signature covers it.
        let other_path = answers[3].signature.as_ref().map(|s| s.group_path.clone()).unwrap_or_default();
        assert_bad(check(with(&|s| s.group_path = other_path.clone())), "does not verify");
        assert_bad(check(with(&|s| s.group_index = 3)), "does not verify");
        assert_bad(check(with(&|s| s.group_index = 5)), "group path does not hold");
        assert_bad(check(with(&|s| s.group_size = 6)), "does not verify");
        assert_bad(check(with(&|s| s.group_path.pop().map(drop).unwrap_or(()))), "group path does not hold");
        assert_bad(check(with(&|s| s.group_path[0].truncate(31))), "32 bytes");
        // The remembered statement does not excuse another signature over it.
        assert_bad(check(with(&|s| s.signature[0] ^= 1)), "does not verify");
        // A version 2 signature with a group path is malformed.
        assert_bad(check(with(&|s| s.group_size = 0)), "no group size");
        // An altered answer under a genuine path.
        let mut a = answers[2].clone();
        if let Some(r) = a.record.as_mut() {
            r.version = 4;
        }
        assert_bad(check(a), "altered");
        assert!(check(answers[2].clone()).is_ok(), "the genuine one still verifies");
    }

    #[test]
    fn a_group_statement_signed_by_another_key_is_rejected() {
        let stranger = SigningKey::from_bytes(&[10; 32]);
        let answers: Vec<_> = group_of_answers().into_iter().map(|a| RecordAnswer { signature: None, ..a }).collect();
        let mut forged = sign_group(answers, &stranger);
        // The forger claims the node's key id; the statement does not verify under its key.
        if let Some(s) = forged[1].signature.as_mut() {
            s.key_id = key_id(node_key().verifying_key().as_bytes());
        }
        let groups = VerifiedGroups::default();
        let result = verify_answer_in(
            forged[1].clone(),
            &expected(record_request().question()),
            &node_key().verifying_key(),
            Some(&groups),
        );
        assert_bad(result, "does not verify");
        assert!(groups.is_empty(), "nothing refused is remembered");
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
