//! A tree in memory, and the naive reference definition of the root.

use super::stored::{fold_subtrees, push_subtree_indexes};
use super::{
    Hash, HashReader, MerkleError, consistency_proof, empty_root, hashes_to_store, inclusion_proof, leaf_hash,
    node_hash, stored_hash_count, stored_hash_index, tree_root,
};

/// A log tree whose stored hashes live in a `Vec`, laid out as the catalog lays them out in
/// storage: element `i` is the hash at stored-hash index `i`. For tests, tools and small logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    size: u64,
    stored: Vec<Hash>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored hashes, by index (see [`stored_hash_index`]).
    pub fn stored_hashes(&self) -> &[Hash] {
        &self.stored
    }

    /// Appends a log entry and returns its leaf index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends a leaf by its hash and returns its leaf index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let n = self.size;
        let mut hash = leaf;
        self.stored.push(hash);
        for level in 0..n.trailing_ones() {
            // The left sibling completed earlier, so it is stored (below self.stored.len()).
            let sibling = stored_hash_index(level as u8, (n >> level) - 1) as usize;
            hash = node_hash(self.stored[sibling], hash);
            self.stored.push(hash);
        }
        self.size += 1;
        debug_assert_eq!(self.stored.len() as u64, stored_hash_count(self.size));
        n
    }

    /// The stored hashes to write when appending `leaf`, computed through the
    /// [`HashReader`] path (what the catalog does), without appending it.
    pub fn hashes_to_store(&self, leaf: Hash) -> Result<Vec<Hash>, MerkleError> {
        hashes_to_store(self.size, leaf, self)
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        let mut indexes = Vec::new();
        push_subtree_indexes(0, self.size, &mut indexes);
        // Every complete subtree of the current tree is stored.
        let roots: Vec<Hash> = indexes.iter().map(|&i| self.stored[i as usize]).collect();
        fold_subtrees(&roots)
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        tree_root(size, self)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        inclusion_proof(index, size, self)
    }

    /// The consistency proof from the first `old_size` to the first `new_size` leaves.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(new_size)?;
        consistency_proof(old_size, new_size, self)
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.size {
            return Err(MerkleError::SizeBeyondTree { size, tree_size: self.size });
        }
        Ok(())
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.stored.read_hashes(indexes)
    }
}

/// RFC 9162 §2.1.1 `MTH(D[n])` over leaf hashes, written as the standard defines it:
/// the empty root for no leaves, the leaf hash for one, and otherwise the node over the
/// largest power of two strictly below `n` leaves on the left and the rest on the right.
///
/// `O(n)` hashing; the reference that the stored-hash code is tested against.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = 1 << (leaves.len() - 1).ilog2();
            let (left, right) = leaves.split_at(k);
            node_hash(root_from_leaves(left), root_from_leaves(right))
        }
    }
}
