//! The Merkle-tree math of the central access log: RFC 9162 (Certificate Transparency 2.0)
//! §2.1 hashing, proofs and proof verification, over Go `sumdb/tlog`'s stored-hash layout.
//!
//! # Hashing
//!
//! A leaf is `SHA-256(0x00 || entry)` ([`leaf_hash`]), an interior node is
//! `SHA-256(0x01 || left || right)` ([`node_hash`]) and the empty tree's root is
//! `SHA-256("")` ([`empty_root`]). The tree over `n` leaves is RFC 9162's `MTH`: the left
//! subtree holds the largest power of two strictly below `n` leaves ([`root_from_leaves`] is
//! that definition, written naively, as the reference the property tests compare against).
//!
//! # Stored hashes
//!
//! A log stores every hash that will never change: the root of every *complete* (perfect)
//! subtree, leaves included. They are numbered densely in the order they become complete,
//! which is the order of Crosby and Wallach, "Efficient Data Structures for Tamper-Evident
//! Logging" §3.3, as used by Go's `golang.org/x/mod/sumdb/tlog` and C2SP tlog-tiles:
//! appending leaf `n` stores the leaf hash, then one hash per subtree that the leaf completes
//! ([`hashes_to_store`]), at indexes `stored_hash_count(n)..stored_hash_count(n + 1)`.
//! The node at `level` (leaves are level 0) and position `n` within that level is stored at
//! [`stored_hash_index`]`(level, n)`; a tree of `n` leaves holds
//! [`stored_hash_count`]`(n) = 2n − popcount(n)` hashes.
//!
//! Every root, inclusion proof and consistency proof, at any past size, is assembled from at
//! most `O(log n)` stored hashes fetched in a single [`HashReader::read_hashes`] call: the
//! catalog keeps them in RocksDB under their index, [`MemoryTree`] keeps them in a `Vec`.
//!
//! # Proofs
//!
//! Proofs travel as lists of 32-byte hashes, ordered as RFC 9162 §2.1.3.1 (`PATH`) and
//! §2.1.4.1 (`PROOF`) define them. [`verify_inclusion`] and [`verify_consistency`] are the
//! verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, step by step, and each refusal
//! is a [`ProofError`] that names the check that failed. The RFC defines consistency only for
//! `0 < old_size < new_size`; at equal sizes the proof must be empty and the roots equal, and
//! a proof from the empty tree is refused (it would prove nothing), as transparency-dev's
//! verifier and test vectors do.
//!
//! # Why our own code and not `tlog_tiles`
//!
//! We weighed `tlog_tiles` 0.2.0 (Cloudflare azul's port of Go's `sumdb/tlog`), whose math we
//! want to stay compatible with. Run against all 196 transparency-dev vectors (with the input
//! mapping of `tests/merkle_vectors.rs`) its `check_record`/`check_tree` agree with every
//! expectation, so the math is sound. We still write our own, because:
//! - its verifiers return a bare `InvalidProof`/`InvalidInput(String)`, and we want the
//!   RFC 9162 §2.1.3.2/§2.1.4.2 algorithms with errors that say which check failed;
//! - its `HashReader` returns `tlog_tiles::Error`, which cannot carry our storage error,
//!   and it `assert!`s (panics) when a reader returns the wrong number of hashes, i.e. on data
//!   from the disk; here that is [`MerkleError::ReaderMismatch`];
//! - it would bring `url` (with the `idna`/ICU stack) into an I/O-free math crate, plus a
//!   second major version of `base64` and of `thiserror`.
//!
//! What we keep from it is the layout: [`stored_hash_index`] and [`hashes_to_store`] follow
//! Go's numbering exactly (pinned by known answers in the tests), so the stored hashes could
//! later be served as C2SP tiles.

mod memory;
mod stored;
mod verify;

#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

pub use memory::{MemoryTree, root_from_leaves};
pub use stored::{
    HashReader, MAX_TREE_SIZE, consistency_proof, hashes_to_store, inclusion_proof, stored_hash_count,
    stored_hash_index, tree_root,
};
pub use verify::{
    ProofError, consistency_proof_len, inclusion_proof_len, root_from_inclusion, verify_consistency, verify_inclusion,
};

/// The length of a [`struct@Hash`] in bytes.
pub const HASH_LEN: usize = 32;

/// The SHA-256 of the empty string: the root of the empty tree.
const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// A SHA-256 value in the tree: a leaf hash, an interior node hash or a root.
///
/// Displayed (and debugged) as lowercase hex; C2SP checkpoints carry it in base64
/// ([`Hash::to_base64`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; HASH_LEN]);

impl Hash {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// Takes a hash from a byte slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        <[u8; HASH_LEN]>::try_from(bytes).map(Self).map_err(|_| HashError::WrongLength { len: bytes.len() })
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, HashError> {
        let bytes = hex::decode(text).map_err(|_| HashError::InvalidHex)?;
        Self::from_slice(&bytes)
    }

    /// Parses the standard, padded base64 (RFC 4648 §4) of 32 bytes, as in C2SP checkpoints
    /// and the RFC 9162 test vectors.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        let bytes = STANDARD.decode(text).map_err(|_| HashError::InvalidBase64)?;
        Self::from_slice(&bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The 32 bytes, by value.
    pub const fn to_bytes(self) -> [u8; HASH_LEN] {
        self.0
    }

    /// Lowercase hex, 64 digits (the same as `Display`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Standard, padded base64 (RFC 4648 §4), 44 characters.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }
}

impl From<Hash> for [u8; HASH_LEN] {
    fn from(hash: Hash) -> Self {
        hash.0
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// Why bytes or text are not a [`struct@Hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The value is not 32 bytes long.
    #[error("a hash is {HASH_LEN} bytes, got {len}")]
    WrongLength {
        /// The length found, in bytes.
        len: usize,
    },
    /// The text is not hex.
    #[error("a hash in hex must be {} hex digits", 2 * HASH_LEN)]
    InvalidHex,
    /// The text is not standard padded base64.
    #[error("a hash in base64 must be standard padded base64 (RFC 4648 section 4)")]
    InvalidBase64,
}

/// Why a tree operation over stored hashes failed.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// An inclusion proof was asked for a leaf that is not in the tree of that size.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size asked for.
        size: u64,
    },
    /// A consistency proof was asked from a larger tree to a smaller one.
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    SizesOutOfOrder {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// A consistency proof was asked from the empty tree, which proves nothing.
    #[error("a consistency proof from the empty tree proves nothing; ask from size 1 or more")]
    EmptyOldTree,
    /// A tree size beyond [`MAX_TREE_SIZE`].
    #[error("tree size {size} is larger than the supported maximum {MAX_TREE_SIZE}")]
    TreeTooLarge {
        /// The size asked for.
        size: u64,
    },
    /// A tree size beyond the leaves actually appended (for [`MemoryTree`]).
    #[error("tree size {size} is beyond the current tree size {tree_size}")]
    SizeBeyondTree {
        /// The size asked for.
        size: u64,
        /// The number of leaves in the tree.
        tree_size: u64,
    },
    /// The reader does not hold the stored hash at this index.
    #[error("stored hash {index} is missing")]
    MissingHash {
        /// The stored-hash index.
        index: u64,
    },
    /// The reader answered with a different number of hashes than were asked for.
    #[error("hash reader returned {returned} hashes for {requested} indexes")]
    ReaderMismatch {
        /// How many indexes were asked for.
        requested: usize,
        /// How many hashes came back.
        returned: usize,
    },
    /// The storage behind the reader failed.
    #[error("read stored hashes")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The hash of a log entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    Hash(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// The root of the empty tree: `SHA-256("")`.
pub const fn empty_root() -> Hash {
    EMPTY_ROOT
}
