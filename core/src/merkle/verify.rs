//! Proof verification, as RFC 9162 §2.1.3.2 and §2.1.4.2 write it.

use super::{Hash, node_hash};

/// Why a proof was refused. Each variant is one check of RFC 9162 §2.1.3.2 or §2.1.4.2, or
/// one of the conditions around them (sizes out of order, equal sizes, the empty tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size (§2.1.3.2 step 1).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {old_size} is greater than new tree size {new_size}")]
    SizesOutOfOrder {
        /// The old (first) tree size.
        old_size: u64,
        /// The new (second) tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyOldTree,
    /// The proof has too many or too few hashes for these sizes (§2.1.3.2 steps 4 and 5,
    /// §2.1.4.2 steps 1, 6 and 7; at equal sizes the proof must be empty).
    #[error("proof has {actual} hashes, expected {expected} for these tree sizes")]
    WrongProofLength {
        /// The number of hashes a valid proof has.
        expected: usize,
        /// The number of hashes given.
        actual: usize,
    },
    /// The inclusion proof does not lead to the given root (§2.1.3.2 step 5).
    #[error("inclusion proof leads to root {computed}, not to the given root {expected}")]
    RootMismatch {
        /// The root given.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
    /// The consistency proof does not rebuild the old root (§2.1.4.2 step 7, `fr`).
    #[error("consistency proof leads to old root {computed}, not to the given old root {expected}")]
    OldRootMismatch {
        /// The old root given.
        expected: Hash,
        /// The old root the proof leads to.
        computed: Hash,
    },
    /// The consistency proof does not lead to the new root (§2.1.4.2 step 7, `sr`).
    #[error("consistency proof leads to new root {computed}, not to the given new root {expected}")]
    NewRootMismatch {
        /// The new root given.
        expected: Hash,
        /// The new root the proof leads to.
        computed: Hash,
    },
    /// Two trees of the same size with different roots: not the same tree.
    #[error("the two trees have the same size {size} but different roots")]
    RootsDiffer {
        /// The common size.
        size: u64,
    },
}

/// Number of significant bits: 0 for 0, 64 for `u64::MAX`.
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves
/// (0 when `index ≥ size`, where there is no proof).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    // Below the level where the paths to `index` and to the last leaf part, every level has
    // a sibling; above it, only the levels where `index` is a right child do.
    let inner = bit_len(index ^ (size - 1));
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The number of hashes in the consistency proof from `old_size` to `new_size` leaves (0 when
/// `old_size` is 0 or not below `new_size`, where the proof is empty or there is none).
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size >= new_size {
        return 0;
    }
    // The proof is the inclusion proof of the old tree's last leaf, without the levels below
    // the old tree's rightmost complete subtree, plus that subtree's root unless it is the
    // whole old tree (a power of two), which the verifier already has.
    let shift = old_size.trailing_zeros();
    let seed = usize::from(!old_size.is_power_of_two());
    inclusion_proof_len(old_size - 1, new_size) - shift as usize + seed
}

/// Verifies that `proof` proves that the leaf with hash `leaf` is leaf number `index` of the
/// tree of `size` leaves with root `root`: RFC 9162 §2.1.3.2, step by step.
pub fn verify_inclusion(leaf: Hash, index: u64, size: u64, proof: &[Hash], root: Hash) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf, index, size, proof)?;
    if computed != root {
        return Err(ProofError::RootMismatch { expected: root, computed });
    }
    Ok(())
}

/// The root of the tree of `size` leaves in which `proof` is the inclusion proof of the leaf
/// with hash `leaf` at `index`: steps 1 to 5 of RFC 9162 §2.1.3.2 without the final
/// comparison, for a verifier that learns the root from the proof and checks a signature
/// over it (a node's signed group of answers) rather than comparing it with a root it holds.
pub fn root_from_inclusion(leaf: Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, ProofError> {
    let wrong_length =
        || ProofError::WrongProofLength { expected: inclusion_proof_len(index, size), actual: proof.len() };
    // 1. leaf_index must be below tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let (mut fn_, mut sn) = (index, size - 1);
    // 3. r = hash.
    let mut r = leaf;
    // 4. Fold in each proof element.
    for &p in proof {
        if sn == 0 {
            return Err(wrong_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. sn must be 0; r is the root.
    if sn != 0 {
        return Err(wrong_length());
    }
    Ok(r)
}

/// Verifies that `proof` proves that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`: RFC 9162 §2.1.4.2, step by
/// step, for `0 < old_size < new_size`.
///
/// At equal sizes the proof must be empty and the roots equal. A proof from the empty tree
/// (`old_size == 0`) is refused: every tree extends the empty tree, so it proves nothing, and
/// a client that has no earlier checkpoint has nothing to check.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: Hash,
    new_root: Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength { expected: 0, actual: proof.len() });
        }
        if old_root != new_root {
            return Err(ProofError::RootsDiffer { size: old_size });
        }
        return Ok(());
    }
    let wrong_length =
        || ProofError::WrongProofLength { expected: consistency_proof_len(old_size, new_size), actual: proof.len() };
    // 1. An empty consistency_path fails.
    let Some((&first, rest)) = proof.split_first() else {
        return Err(wrong_length());
    };
    // 2. If first is an exact power of 2, prepend first_hash to the path.
    let (seed, path) = if old_size.is_power_of_two() { (old_root, proof) } else { (first, rest) };
    // 3. fn = first - 1, sn = second - 1.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    // 4. If LSB(fn) is set, shift both right until it is not.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. fr = sr = the first value of the path.
    let (mut fr, mut sr) = (seed, seed);
    // 6. Fold in each subsequent value.
    for &c in path {
        if sn == 0 {
            return Err(wrong_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, fr);
            sr = node_hash(c, sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7. fr must be first_hash, sr second_hash, and sn 0.
    if sn != 0 {
        return Err(wrong_length());
    }
    if fr != old_root {
        return Err(ProofError::OldRootMismatch { expected: old_root, computed: fr });
    }
    if sr != new_root {
        return Err(ProofError::NewRootMismatch { expected: new_root, computed: sr });
    }
    Ok(())
}
