//! Answers signed per group commit (canonical form version 3).
//!
//! A node writes the access-log entries of concurrent queries in one synced group commit. In
//! version 3 it signs the group once instead of each answer: the answers' canonical digests
//! (version 2's, unchanged) are the leaves of an RFC 9162 Merkle tree, in the order of their
//! log sequence numbers, and the node signs a short *group statement* naming itself, the
//! number of leaves and the tree's root. Each answer carries its leaf index, the group's size
//! and its inclusion path; a verifier recomputes the digest, folds the path into the root
//! ([`group_root`]) and checks the one signature over the statement, which it may remember
//! for the group's other answers (it is the same statement and the same signature).
//!
//! The statement is
//!
//! ```text
//! "exchange.v1/answer-group/v3\0"   28 bytes
//! node_len u16 BE, node             the signing department, UTF-8
//! size     u64 BE                   leaves in the group (≥ 1)
//! root     32 bytes                 RFC 9162 root over leaf_hash(digest) of every answer
//! ```
//!
//! and the node signs its SHA-256 ([`group_statement_digest`]) with Ed25519, as version 2
//! signed an answer's digest. The domain strings keep every signed message apart: no answer
//! digest is a statement digest, nor the reverse. `docs/canonical-form.md` §4 specifies it,
//! with vectors.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest32, SignatureError};
use crate::merkle::{Hash, MemoryTree, ProofError, leaf_hash, root_from_inclusion};

/// The domain-separation string of the group statement, with its version (3).
pub const GROUP_DOMAIN: &[u8] = b"exchange.v1/answer-group/v3\0";

/// The bytes of the statement a node signs for a group of `size` answers with Merkle root
/// `root` (see the module doc).
pub fn group_statement(node: &str, size: u64, root: &Hash) -> Vec<u8> {
    let node_len = u16::try_from(node.len()).unwrap_or(u16::MAX);
    let node = &node.as_bytes()[..usize::from(node_len)];
    let mut out = Vec::with_capacity(GROUP_DOMAIN.len() + 2 + node.len() + 8 + 32);
    out.extend_from_slice(GROUP_DOMAIN);
    out.extend_from_slice(&node_len.to_be_bytes());
    out.extend_from_slice(node);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(root.as_bytes());
    out
}

/// SHA-256 of [`group_statement`]: the 32 bytes the node's Ed25519 signature covers.
pub fn group_statement_digest(node: &str, size: u64, root: &Hash) -> Digest32 {
    Sha256::digest(group_statement(node, size, root)).into()
}

/// The leaf of an answer in its group: `SHA-256(0x00 || digest)`.
pub fn answer_leaf(digest: &Digest32) -> Hash {
    leaf_hash(digest)
}

/// The root of the group an answer claims: its digest folded with its inclusion path at
/// `index` in a group of `size` answers. A path of the wrong length, or an index outside the
/// group, is refused.
pub fn group_root(digest: &Digest32, index: u64, size: u64, path: &[Hash]) -> Result<Hash, ProofError> {
    root_from_inclusion(answer_leaf(digest), index, size, path)
}

/// A group of answer digests, as the node signs it: the tree over them, its root, and the
/// inclusion path of each answer.
#[derive(Clone, Debug)]
pub struct AnswerGroup {
    tree: MemoryTree,
    root: Hash,
}

impl AnswerGroup {
    /// The group of `digests`, in log order. An empty group has no statement to sign:
    /// `None`.
    pub fn new(digests: &[Digest32]) -> Option<Self> {
        if digests.is_empty() {
            return None;
        }
        let mut tree = MemoryTree::new();
        for d in digests {
            tree.append_leaf_hash(answer_leaf(d));
        }
        let root = tree.root();
        Some(Self { tree, root })
    }

    /// The number of answers.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The inclusion path of answer `index` (empty for a group of one); `None` outside the
    /// group.
    pub fn path(&self, index: u64) -> Option<Vec<Hash>> {
        self.tree.inclusion_proof(index, self.size()).ok()
    }

    /// The statement's digest for `node`.
    pub fn statement_digest(&self, node: &str) -> Digest32 {
        group_statement_digest(node, self.size(), &self.root)
    }

    /// Signs the group's statement for `node` with its key.
    pub fn sign(&self, node: &str, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.statement_digest(node)).to_bytes()
    }
}

/// Verifies a node's signature over a group statement digest (strict Ed25519: non-canonical
/// encodings and small-order keys are refused).
pub fn verify_statement(key: &VerifyingKey, statement: &Digest32, signature: &[u8]) -> Result<(), SignatureError> {
    let sig = Signature::from_slice(signature).map_err(|_| SignatureError::BadLength(signature.len()))?;
    key.verify_strict(statement, &sig).map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;

    fn digests(n: usize) -> Vec<Digest32> {
        (0..n).map(|i| sha256(format!("answer {i}").as_bytes())).collect()
    }

    #[test]
    fn every_answer_of_a_group_folds_to_the_signed_root() {
        let key = SigningKey::from_bytes(&[7; 32]);
        for n in 1..=17 {
            let ds = digests(n);
            let group = AnswerGroup::new(&ds).expect("a group");
            let signature = group.sign("gov.sz.psb", &key);
            for (i, d) in ds.iter().enumerate() {
                let path = group.path(i as u64).expect("a path");
                let root = group_root(d, i as u64, n as u64, &path).expect("a root");
                assert_eq!(root, group.root(), "n={n} i={i}");
                let statement = group_statement_digest("gov.sz.psb", n as u64, &root);
                assert_eq!(verify_statement(&key.verifying_key(), &statement, &signature), Ok(()));
            }
        }
    }

    #[test]
    fn a_group_of_one_has_an_empty_path_and_the_leaf_as_root() {
        let ds = digests(1);
        let group = AnswerGroup::new(&ds).expect("a group");
        assert_eq!(group.path(0), Some(vec![]));
        assert_eq!(group.root(), answer_leaf(&ds[0]));
        assert!(AnswerGroup::new(&[]).is_none());
    }

    #[test]
    fn another_answer_position_size_or_node_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let ds = digests(5);
        let group = AnswerGroup::new(&ds).expect("a group");
        let signature = group.sign("gov.sz.psb", &key);
        let path = group.path(2).expect("a path");
        let verifies = |d: &Digest32, i: u64, n: u64, node: &str| {
            group_root(d, i, n, &path).ok().is_some_and(|root| {
                verify_statement(&key.verifying_key(), &group_statement_digest(node, n, &root), &signature).is_ok()
            })
        };
        assert!(verifies(&ds[2], 2, 5, "gov.sz.psb"));
        assert!(!verifies(&ds[3], 2, 5, "gov.sz.psb"), "another answer under answer 2's path");
        assert!(!verifies(&ds[2], 3, 5, "gov.sz.psb"), "another position");
        assert!(!verifies(&ds[2], 2, 6, "gov.sz.psb"), "another size");
        assert!(!verifies(&ds[2], 2, 5, "gov.sz.amr"), "another node");
        assert_eq!(group_root(&ds[2], 5, 5, &path).err(), Some(ProofError::IndexOutOfRange { index: 5, size: 5 }));
    }

    #[test]
    fn the_statement_is_domain_separated_from_answer_digests() {
        let statement = group_statement("n", 1, &Hash::from_bytes([0; 32]));
        assert!(statement.starts_with(GROUP_DOMAIN));
        assert!(!statement.starts_with(crate::digest::ANSWER_DOMAIN));
        assert_eq!(statement.len(), GROUP_DOMAIN.len() + 2 + 1 + 8 + 32);
    }
}
