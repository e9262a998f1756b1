//! The stored-hash layout and everything computed from it: new hashes to store on append,
//! roots, inclusion proofs and consistency proofs.

use super::{Hash, MerkleError, empty_root, node_hash};

/// The largest tree size the functions over stored hashes accept: 2^62 leaves. Below it no
/// index arithmetic can overflow; a log will not get near it.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Reads stored hashes by their index (see [`stored_hash_index`]).
///
/// The catalog implements it over RocksDB; `[Hash]` and `Vec<Hash>` implement it over memory
/// (the hash stored at index `i` is element `i`).
pub trait HashReader {
    /// Returns the hashes stored at `indexes`, in the same order and as many.
    ///
    /// The functions of this module ask for all the hashes they need in one call, at most
    /// `2·log₂(size) + 2` of them, without duplicates, not necessarily sorted. A hash that is not
    /// stored is an error ([`MerkleError::MissingHash`]), and so is a storage failure
    /// ([`MerkleError::Storage`]); an answer of the wrong length is refused with
    /// [`MerkleError::ReaderMismatch`].
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&index| {
                usize::try_from(index).ok().and_then(|i| self.get(i)).copied().ok_or(MerkleError::MissingHash { index })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.as_slice().read_hashes(indexes)
    }
}

/// The index at which the node at `level` (leaves are level 0) and position `n` within its
/// level is stored: the hashes are numbered in the order in which their subtrees complete,
/// as Go's `tlog.StoredHashIndex` numbers them.
///
/// The node must lie in a tree of at most [`MAX_TREE_SIZE`] leaves, that is
/// `(n + 1) · 2^level ≤ MAX_TREE_SIZE`; beyond that the result is meaningless (it never panics).
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    // The node completes with its last leaf, `last`. The hashes stored before that leaf are
    // those of the complete subtrees of a tree of `last` leaves, 2·last − popcount(last); the
    // leaf itself comes next, then its completed ancestors, one per level.
    let last = n.wrapping_add(1).checked_shl(u32::from(level)).unwrap_or(0).wrapping_sub(1);
    stored_hash_count(last).wrapping_add(u64::from(level))
}

/// The number of hashes stored for a tree of `size` leaves: `2·size − popcount(size)`, the
/// number of its complete subtrees. It is also the index at which the hashes of leaf `size`
/// are stored when it is appended.
///
/// Meaningful for `size ≤ MAX_TREE_SIZE`; beyond that the arithmetic wraps (it never panics).
pub fn stored_hash_count(size: u64) -> u64 {
    size.wrapping_mul(2).wrapping_sub(u64::from(size.count_ones()))
}

/// The hashes to store when appending the leaf with hash `leaf` as leaf number `n` (counting
/// from 0) to a tree of `n` leaves whose stored hashes `reader` holds.
///
/// They are the leaf hash, then the root of each subtree the leaf completes, bottom up, and
/// belong at indexes `stored_hash_count(n)`, `stored_hash_count(n) + 1`, … in that order. The
/// reader is asked, in one call, for the left siblings of those subtrees (at most `log₂ n`).
pub fn hashes_to_store<R>(n: u64, leaf: Hash, reader: &R) -> Result<Vec<Hash>, MerkleError>
where
    R: HashReader + ?Sized,
{
    if n >= MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size: n.saturating_add(1) });
    }
    // Each trailing one bit of n is a level at which leaf n completes a subtree: the node
    // (level, n >> level) gets its left sibling (level, (n >> level) - 1). Ask for the
    // siblings highest level first, which is increasing index order.
    let completed = n.trailing_ones();
    let indexes: Vec<u64> =
        (0..completed).rev().map(|level| stored_hash_index(level as u8, (n >> level) - 1)).collect();
    let siblings = read_exact(reader, &indexes)?;

    let mut hashes = Vec::with_capacity(siblings.len() + 1);
    let mut hash = leaf;
    hashes.push(hash);
    for sibling in siblings.iter().rev() {
        hash = node_hash(*sibling, hash);
        hashes.push(hash);
    }
    Ok(hashes)
}

/// The root of the tree of the first `size` leaves (RFC 9162 `MTH`), from at most
/// `log₂(size) + 1` stored hashes.
pub fn tree_root<R>(size: u64, reader: &R) -> Result<Hash, MerkleError>
where
    R: HashReader + ?Sized,
{
    check_size(size)?;
    let plan = Plan::new(&[(0, size)]);
    let hashes = read_exact(reader, &plan.indexes)?;
    Ok(plan.hashes(&hashes).first().copied().unwrap_or(empty_root()))
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves: RFC 9162
/// §2.1.3.1 `PATH(index, D[size])`, siblings from the leaf up.
pub fn inclusion_proof<R>(index: u64, size: u64, reader: &R) -> Result<Vec<Hash>, MerkleError>
where
    R: HashReader + ?Sized,
{
    check_size(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let plan = Plan::new(&inclusion_ranges(index, size));
    let hashes = read_exact(reader, &plan.indexes)?;
    Ok(plan.hashes(&hashes))
}

/// The consistency proof between the trees of the first `old_size` and the first `new_size`
/// leaves: RFC 9162 §2.1.4.1 `PROOF(old_size, D[new_size])`. It is empty when the sizes are
/// equal; a proof from the empty tree is refused, as it would prove nothing.
pub fn consistency_proof<R>(old_size: u64, new_size: u64, reader: &R) -> Result<Vec<Hash>, MerkleError>
where
    R: HashReader + ?Sized,
{
    check_size(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Err(MerkleError::EmptyOldTree);
    }
    let plan = Plan::new(&consistency_ranges(old_size, new_size));
    let hashes = read_exact(reader, &plan.indexes)?;
    Ok(plan.hashes(&hashes))
}

fn check_size(size: u64) -> Result<(), MerkleError> {
    if size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { size });
    }
    Ok(())
}

/// Asks `reader` for `indexes` and checks that it answered with as many hashes.
fn read_exact<R>(reader: &R, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>
where
    R: HashReader + ?Sized,
{
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(MerkleError::ReaderMismatch { requested: indexes.len(), returned: hashes.len() });
    }
    Ok(hashes)
}

/// The largest power of two strictly below `n`, for `n ≥ 2`: where RFC 9162 splits `D[n]`.
fn split_point(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

/// The leaf ranges `[lo, hi)` whose `MTH` make up `PATH(index, D[size])`, in proof order.
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    // PATH(m, D[lo:hi]) = PATH(m, one half) : MTH(other half). Walk down from the root,
    // noting the half not taken, then put the walk in leaf-to-root order.
    let mut ranges = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    ranges
}

/// The leaf ranges whose `MTH` make up `PROOF(old_size, D[new_size])`, in proof order, for
/// `0 < old_size ≤ new_size`.
fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<(u64, u64)> {
    // SUBPROOF(m, D[lo:hi], b): if m is the whole range, [] when b (the verifier knows that
    // root) else [MTH(D[lo:hi])]; otherwise with k the split point, either
    // SUBPROOF(m, left, b) : MTH(right) or SUBPROOF(m - k, right, false) : MTH(left).
    let mut ranges = Vec::new();
    let (mut lo, mut hi, mut m, mut known) = (0, new_size, old_size, true);
    loop {
        if m == hi - lo {
            if !known {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            m -= k;
            lo += k;
            known = false;
        }
    }
    ranges.reverse();
    ranges
}

/// Pushes the stored indexes of the complete subtrees that tile `[lo, hi)`, largest first,
/// and returns how many. `lo` must be a multiple of the largest power of two not above
/// `hi − lo`, which holds for every subtree of RFC 9162's tree.
pub(super) fn push_subtree_indexes(mut lo: u64, hi: u64, indexes: &mut Vec<u64>) -> usize {
    let mut count = 0;
    while lo < hi {
        let level = (hi - lo).ilog2();
        debug_assert_eq!(lo % (1 << level), 0, "unaligned subtree [{lo}, {hi})");
        indexes.push(stored_hash_index(level as u8, lo >> level));
        lo += 1 << level;
        count += 1;
    }
    count
}

/// `MTH` of a range from the roots of the complete subtrees that tile it, largest first:
/// each split of RFC 9162 cuts off the largest power of two, so the tree leans right.
pub(super) fn fold_subtrees(roots: &[Hash]) -> Hash {
    let mut iter = roots.iter().rev();
    let Some(&last) = iter.next() else {
        return empty_root();
    };
    iter.fold(last, |right, &left| node_hash(left, right))
}

/// The stored hashes needed for a list of ranges, so that they are read in one call.
struct Plan {
    indexes: Vec<u64>,
    counts: Vec<usize>,
}

impl Plan {
    fn new(ranges: &[(u64, u64)]) -> Self {
        let mut indexes = Vec::new();
        let counts = ranges.iter().map(|&(lo, hi)| push_subtree_indexes(lo, hi, &mut indexes)).collect();
        Self { indexes, counts }
    }

    /// The `MTH` of each range, given the hashes read at `self.indexes`.
    fn hashes(&self, read: &[Hash]) -> Vec<Hash> {
        let mut rest = read;
        self.counts
            .iter()
            .map(|&count| {
                let (roots, tail) = rest.split_at(count.min(rest.len()));
                rest = tail;
                fold_subtrees(roots)
            })
            .collect()
    }
}
