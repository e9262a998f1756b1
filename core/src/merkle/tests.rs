use std::cell::Cell;

use proptest::prelude::*;

use super::*;

/// The eight leaf inputs of RFC 6962's worked examples, as transparency-dev/merkle's
/// `testonly/constants.go` lists them.
const LEAF_INPUTS: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// The roots of the trees over the first 0..=8 of [`LEAF_INPUTS`] (same source).
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// The complete-subtree hashes of the 8-leaf tree, in the stored-hash order of Go's
/// `tlog` (leaf 0, leaf 1, node(0..2), leaf 2, leaf 3, node(2..4), node(0..4), ...), from
/// the `NodeHashes` of the same source.
const STORED_8: [&str; 15] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(hex: &str) -> Hash {
    Hash::from_hex(hex).expect("hex hash")
}

fn entry(i: u64) -> Vec<u8> {
    format!("access event {i}").into_bytes()
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&entry(i))).collect()
}

/// A tree built through the `HashReader` path, as the catalog builds it: the stored hashes
/// of leaf n come from `hashes_to_store` reading the hashes stored so far.
fn store_via_reader(leaves: &[Hash]) -> Vec<Hash> {
    let mut store = Vec::new();
    for (n, &leaf) in leaves.iter().enumerate() {
        let n = n as u64;
        assert_eq!(store.len() as u64, stored_hash_count(n));
        let new = hashes_to_store(n, leaf, &store).expect("hashes_to_store");
        store.extend(new);
    }
    store
}

// RFC 9162 §2.1.3.1 and §2.1.4.1, written as the standard writes them, over leaf hashes.

fn split(n: usize) -> usize {
    1 << (n - 1).ilog2()
}

fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() == 1 {
        return Vec::new();
    }
    let k = split(d.len());
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(root_from_leaves(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(root_from_leaves(&d[..k]));
        p
    }
}

fn ref_subproof(m: usize, d: &[Hash], known: bool) -> Vec<Hash> {
    if m == d.len() {
        return if known { Vec::new() } else { vec![root_from_leaves(d)] };
    }
    let k = split(d.len());
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], known);
        p.push(root_from_leaves(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(root_from_leaves(&d[..k]));
        p
    }
}

fn flip(hash: Hash, byte: usize, bit: u8) -> Hash {
    let mut bytes = hash.to_bytes();
    bytes[byte % HASH_LEN] ^= 1 << (bit % 8);
    Hash::from_bytes(bytes)
}

// Known answers.

#[test]
fn hashing_known_answers() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(empty_root().to_bytes(), <[u8; 32]>::from(sha2::Sha256::digest(b"")));
    assert_eq!(leaf_hash(b""), h(ROOTS[1]));
    let mut tree = MemoryTree::new();
    assert_eq!(tree.root(), h(ROOTS[0]));
    for (i, input) in LEAF_INPUTS.iter().enumerate() {
        assert_eq!(tree.append(input), i as u64);
        assert_eq!(tree.root(), h(ROOTS[i + 1]), "root of size {}", i + 1);
    }
    let stored: Vec<Hash> = STORED_8.iter().map(|s| h(s)).collect();
    assert_eq!(tree.stored_hashes(), stored.as_slice());
    let leaf_hashes: Vec<Hash> = LEAF_INPUTS.iter().map(|e| leaf_hash(e)).collect();
    for size in 0..=8 {
        assert_eq!(root_from_leaves(&leaf_hashes[..size]), h(ROOTS[size]));
        assert_eq!(tree_root(size as u64, &stored).expect("tree_root"), h(ROOTS[size]));
    }
}

#[test]
fn stored_hash_index_matches_go_tlog() {
    // Computed with Go's tlog.StoredHashIndex (through its tlog_tiles 0.2.0 port).
    let table: [(u8, [u64; 9]); 5] = [
        (0, [0, 1, 3, 4, 7, 8, 10, 11, 15]),
        (1, [2, 5, 9, 12, 17, 20, 24, 27, 33]),
        (2, [6, 13, 21, 28, 37, 44, 52, 59, 69]),
        (3, [14, 29, 45, 60, 77, 92, 108, 123, 141]),
        (4, [30, 61, 93, 124, 157, 188, 220, 251, 285]),
    ];
    for (level, row) in table {
        for (n, want) in row.into_iter().enumerate() {
            assert_eq!(stored_hash_index(level, n as u64), want, "({level}, {n})");
        }
    }
    let counts = [0, 1, 3, 4, 7, 8, 10, 11, 15, 16, 18, 19, 22, 23, 25, 26, 31];
    for (n, want) in counts.into_iter().enumerate() {
        assert_eq!(stored_hash_count(n as u64), want, "count({n})");
    }
    assert_eq!(stored_hash_index(7, 12345), 3_160_568);
    assert_eq!(stored_hash_index(0, 1_000_000_007), 1_999_999_998);
    assert_eq!(stored_hash_count(1_000_000_007), 1_999_999_998);
}

#[test]
fn hash_encodings() {
    let hash = h(ROOTS[8]);
    assert_eq!(hash.to_string(), ROOTS[8]);
    assert_eq!(format!("{hash:?}"), format!("Hash({})", ROOTS[8]));
    assert_eq!(hash.to_base64(), "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=");
    assert_eq!(Hash::from_base64(&hash.to_base64()), Ok(hash));
    assert_eq!(Hash::from_hex(&ROOTS[8].to_uppercase()), Ok(hash));
    assert_eq!(Hash::from_slice(hash.as_bytes()), Ok(hash));
    assert_eq!(Hash::from_slice(&[0; 31]), Err(HashError::WrongLength { len: 31 }));
    assert_eq!(Hash::from_slice(&[0; 33]), Err(HashError::WrongLength { len: 33 }));
    assert_eq!(Hash::from_hex("zz"), Err(HashError::InvalidHex));
    assert_eq!(Hash::from_hex("abcd"), Err(HashError::WrongLength { len: 2 }));
    assert_eq!(Hash::from_base64("not base64!"), Err(HashError::InvalidBase64));
    assert_eq!(Hash::from_base64("ZG9uJ3QgY2FyZSAx"), Err(HashError::WrongLength { len: 12 }));
    // Unpadded and non-canonical base64 are refused.
    assert_eq!(Hash::from_base64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg"), Err(HashError::InvalidBase64));
    assert_eq!(Hash::from_base64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh="), Err(HashError::InvalidBase64));
}

// Table-driven refusals, on the 8-leaf tree of RFC 6962's examples.

fn tree8() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for input in LEAF_INPUTS {
        tree.append(input);
    }
    tree
}

#[test]
fn inclusion_refusals() {
    let tree = tree8();
    let leaf = leaf_hash(LEAF_INPUTS[2]);
    let proof = tree.inclusion_proof(2, 8).expect("inclusion_proof");
    let root = tree.root();
    let other = tree.root_at(7).expect("root_at");

    fn check(leaf: Hash, index: u64, size: u64, proof: &[Hash], root: Hash, want: Result<(), ProofError>) {
        assert_eq!(
            verify_inclusion(leaf, index, size, proof, root),
            want,
            "index {index}, size {size}, proof of {} hashes",
            proof.len()
        );
    }
    let mut longer = proof.clone();
    longer.push(root);
    let mut flipped = proof.clone();
    flipped[1] = flip(flipped[1], 7, 3);
    let wrong_len = |actual| Err(ProofError::WrongProofLength { expected: 3, actual });

    check(leaf, 2, 8, &proof, root, Ok(()));
    check(leaf, 8, 8, &proof, root, Err(ProofError::IndexOutOfRange { index: 8, size: 8 }));
    check(leaf, 0, 0, &[], root, Err(ProofError::IndexOutOfRange { index: 0, size: 0 }));
    check(leaf, 2, 8, &proof[..2], root, wrong_len(2));
    check(leaf, 2, 8, &longer, root, wrong_len(4));
    check(leaf, 2, 8, &[], root, wrong_len(0));
    let computed = match verify_inclusion(leaf, 2, 8, &proof, other) {
        Err(ProofError::RootMismatch { expected, computed }) => {
            assert_eq!(expected, other);
            computed
        }
        other => panic!("expected a root mismatch, got {other:?}"),
    };
    assert_eq!(computed, root);
    assert!(matches!(verify_inclusion(leaf, 2, 8, &flipped, root), Err(ProofError::RootMismatch { .. })));
    assert!(matches!(verify_inclusion(leaf, 3, 8, &proof, root), Err(ProofError::RootMismatch { .. })));
    // A single-leaf tree: the leaf is the root and the proof is empty.
    let one = leaf_hash(LEAF_INPUTS[0]);
    check(one, 0, 1, &[], one, Ok(()));
    check(one, 0, 1, &[one], one, Err(ProofError::WrongProofLength { expected: 0, actual: 1 }));
}

#[test]
fn consistency_refusals() {
    let tree = tree8();
    let (r3, r8) = (tree.root_at(3).expect("root_at"), tree.root());
    let proof = tree.consistency_proof(3, 8).expect("consistency_proof");
    assert_eq!(proof.len(), 4);

    fn check(old: u64, new: u64, proof: &[Hash], r1: Hash, r2: Hash, want: Result<(), ProofError>) {
        assert_eq!(verify_consistency(old, new, proof, r1, r2), want, "{old} -> {new}");
    }
    let wrong_len = |actual| Err(ProofError::WrongProofLength { expected: 4, actual });
    let mut longer = proof.clone();
    longer.push(r8);

    check(3, 8, &proof, r3, r8, Ok(()));
    check(8, 3, &proof, r8, r3, Err(ProofError::SizesOutOfOrder { old_size: 8, new_size: 3 }));
    check(0, 8, &proof, empty_root(), r8, Err(ProofError::EmptyOldTree));
    check(0, 0, &[], empty_root(), empty_root(), Err(ProofError::EmptyOldTree));
    check(8, 8, &[], r8, r8, Ok(()));
    check(8, 8, &[r8], r8, r8, Err(ProofError::WrongProofLength { expected: 0, actual: 1 }));
    check(8, 8, &[], r3, r8, Err(ProofError::RootsDiffer { size: 8 }));
    check(3, 8, &[], r3, r8, wrong_len(0));
    check(3, 8, &proof[..3], r3, r8, wrong_len(3));
    check(3, 8, &longer, r3, r8, wrong_len(5));
    assert!(matches!(verify_consistency(3, 8, &proof, r8, r8), Err(ProofError::OldRootMismatch { .. })));
    assert!(matches!(verify_consistency(3, 8, &proof, r3, r3), Err(ProofError::NewRootMismatch { .. })));
}

// Storage-side errors.

/// A reader that counts its calls and the indexes it was asked for.
struct Counting<'a> {
    store: &'a [Hash],
    calls: Cell<usize>,
    asked: Cell<usize>,
}

impl HashReader for Counting<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.calls.set(self.calls.get() + 1);
        self.asked.set(self.asked.get() + indexes.len());
        self.store.read_hashes(indexes)
    }
}

struct Broken(usize);

impl HashReader for Broken {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        match self.0 {
            0 => Err(MerkleError::Storage("disk on fire".into())),
            drop => Ok(vec![empty_root(); indexes.len().saturating_sub(drop)]),
        }
    }
}

#[test]
fn reader_errors_are_reported_not_panicked() {
    let store = store_via_reader(&leaves(100));
    assert!(matches!(tree_root(5, &Broken(0)), Err(MerkleError::Storage(_))));
    assert!(matches!(
        inclusion_proof(3, 100, &Broken(1)),
        Err(MerkleError::ReaderMismatch { returned, requested }) if returned + 1 == requested
    ));
    assert!(matches!(
        hashes_to_store(7, empty_root(), &Broken(1)),
        Err(MerkleError::ReaderMismatch { requested: 3, returned: 2 })
    ));
    assert!(matches!(consistency_proof(3, 101, &store), Err(MerkleError::MissingHash { .. })));
    assert!(matches!(inclusion_proof(100, 100, &store), Err(MerkleError::IndexOutOfRange { index: 100, size: 100 })));
    assert!(matches!(consistency_proof(7, 6, &store), Err(MerkleError::SizesOutOfOrder { old_size: 7, new_size: 6 })));
    assert!(matches!(consistency_proof(0, 6, &store), Err(MerkleError::EmptyOldTree)));
    assert_eq!(consistency_proof(6, 6, &store).expect("consistency_proof"), Vec::<Hash>::new());
    for size in [MAX_TREE_SIZE + 1, u64::MAX] {
        assert!(matches!(tree_root(size, &store), Err(MerkleError::TreeTooLarge { .. })));
        assert!(matches!(inclusion_proof(0, size, &store), Err(MerkleError::TreeTooLarge { .. })));
        assert!(matches!(consistency_proof(1, size, &store), Err(MerkleError::TreeTooLarge { .. })));
        assert!(matches!(hashes_to_store(size, empty_root(), &store), Err(MerkleError::TreeTooLarge { .. })));
    }
    let tree = tree8();
    for result in
        [tree.root_at(9).map(|_| ()), tree.inclusion_proof(0, 9).map(|_| ()), tree.consistency_proof(1, 9).map(|_| ())]
    {
        assert!(matches!(result, Err(MerkleError::SizeBeyondTree { size: 9, tree_size: 8 })));
    }
}

#[test]
fn one_read_of_logarithmically_many_hashes() {
    let store = store_via_reader(&leaves(1000));
    let reader = |store| Counting { store, calls: Cell::new(0), asked: Cell::new(0) };
    for size in [1u64, 2, 3, 7, 8, 9, 255, 256, 257, 999, 1000] {
        let bound = 2 * size.ilog2() as usize + 2;
        let r = reader(&store);
        tree_root(size, &r).expect("tree_root");
        assert_eq!((r.calls.get(), r.asked.get() <= bound), (1, true), "root {size}");
        let r = reader(&store);
        inclusion_proof(size / 2, size, &r).expect("inclusion_proof");
        assert!(r.calls.get() <= 1 && r.asked.get() <= bound, "inclusion {size}");
        let r = reader(&store);
        consistency_proof(size.div_ceil(3), size, &r).expect("consistency_proof");
        assert!(r.calls.get() <= 1 && r.asked.get() <= bound, "consistency {size}");
        let r = reader(&store);
        hashes_to_store(size - 1, empty_root(), &r).expect("hashes_to_store");
        assert!(r.calls.get() <= 1 && r.asked.get() <= bound, "append {size}");
    }
}

// Every proof of every tree up to 300 leaves.

const EXHAUSTIVE_MAX: u64 = 300;
/// Up to this size, proofs are also compared with the RFC's recursive definitions.
const REFERENCE_MAX: u64 = 64;
/// Up to this size every byte of every proof element is flipped in turn; above it, one byte
/// of every element.
const FLIP_EVERY_BYTE_MAX: u64 = 16;

#[test]
fn every_inclusion_proof_up_to_300_leaves() {
    let all = leaves(EXHAUSTIVE_MAX);
    let store = store_via_reader(&all);
    let mut memory = MemoryTree::new();
    for &leaf in &all {
        memory.append_leaf_hash(leaf);
    }
    assert_eq!(memory.stored_hashes(), store.as_slice());

    for size in 1..=EXHAUSTIVE_MAX {
        let root = tree_root(size, &store).expect("tree_root");
        assert_eq!(root, root_from_leaves(&all[..size as usize]), "root of {size}");
        assert_eq!(memory.root_at(size).expect("root_at"), root);
        let smaller_root = tree_root(size - 1, &store).expect("tree_root");
        for index in 0..size {
            let leaf = all[index as usize];
            let proof = inclusion_proof(index, size, &store).expect("inclusion_proof");
            assert_eq!(proof.len(), inclusion_proof_len(index, size));
            assert_eq!(verify_inclusion(leaf, index, size, &proof, root), Ok(()));
            if size <= REFERENCE_MAX {
                assert_eq!(proof, ref_path(index as usize, &all[..size as usize]));
            }
            let refused = |i: u64, s: u64, p: &[Hash], r: Hash| {
                assert!(
                    verify_inclusion(leaf, i, s, p, r).is_err(),
                    "inclusion of {index} in {size} accepted as {i} in {s} with {} hashes",
                    p.len()
                );
            };
            refused(index + 1, size, &proof, root);
            if index > 0 {
                refused(index - 1, size, &proof, root);
            }
            refused(index, size / 2, &proof, root);
            refused(index, size, &proof, smaller_root);
            refused(index, size, &proof, flip(root, 0, 0));
            if let Some((_, shorter)) = proof.split_last() {
                refused(index, size, shorter, root);
                refused(index, size, &proof[1..], root);
            }
            let mut longer = proof.clone();
            longer.push(leaf);
            refused(index, size, &longer, root);
            longer.rotate_right(1);
            refused(index, size, &longer, root);
            let flips: Vec<usize> =
                if size <= FLIP_EVERY_BYTE_MAX { (0..HASH_LEN).collect() } else { vec![(index as usize) % HASH_LEN] };
            for at in 0..proof.len() {
                for &byte in &flips {
                    let mut bad = proof.clone();
                    bad[at] = flip(bad[at], byte, byte as u8);
                    refused(index, size, &bad, root);
                }
            }
        }
    }
}

#[test]
fn every_consistency_proof_up_to_300_leaves() {
    let all = leaves(EXHAUSTIVE_MAX);
    let store = store_via_reader(&all);
    let roots: Vec<Hash> = (0..=EXHAUSTIVE_MAX).map(|size| tree_root(size, &store).expect("tree_root")).collect();
    for new in 1..=EXHAUSTIVE_MAX {
        let new_root = roots[new as usize];
        for old in 1..=new {
            let old_root = roots[old as usize];
            let proof = consistency_proof(old, new, &store).expect("consistency_proof");
            assert_eq!(proof.len(), consistency_proof_len(old, new), "{old} -> {new}");
            assert_eq!(verify_consistency(old, new, &proof, old_root, new_root), Ok(()), "{old} -> {new}");
            if new <= REFERENCE_MAX && old < new {
                assert_eq!(proof, ref_subproof(old as usize, &all[..new as usize], true));
            }
            let refused = |o: u64, n: u64, p: &[Hash], r1: Hash, r2: Hash| {
                assert!(
                    verify_consistency(o, n, p, r1, r2).is_err(),
                    "consistency {old} -> {new} accepted as {o} -> {n} with {} hashes",
                    p.len()
                );
            };
            refused(old + 1, new, &proof, old_root, new_root);
            refused(old - 1, new, &proof, old_root, new_root);
            refused(old, new / 2, &proof, old_root, new_root);
            refused(old / 2, new, &proof, old_root, new_root);
            refused(old, new, &proof, flip(old_root, 1, 1), new_root);
            refused(old, new, &proof, old_root, flip(new_root, 2, 2));
            if old < new {
                refused(old, new, &proof, new_root, old_root);
                refused(old, new, &proof[1..], old_root, new_root);
                refused(old, new, &proof[..proof.len() - 1], old_root, new_root);
            }
            let mut longer = proof.clone();
            longer.push(old_root);
            refused(old, new, &longer, old_root, new_root);
            longer.rotate_right(1);
            refused(old, new, &longer, old_root, new_root);
            let flips: Vec<usize> =
                if new <= FLIP_EVERY_BYTE_MAX { (0..HASH_LEN).collect() } else { vec![(old as usize) % HASH_LEN] };
            for at in 0..proof.len() {
                for &byte in &flips {
                    let mut bad = proof.clone();
                    bad[at] = flip(bad[at], byte, byte as u8);
                    refused(old, new, &bad, old_root, new_root);
                }
            }
        }
    }
}

// Random trees, larger ones, and random corruptions.

#[derive(Debug, Clone)]
enum Corruption {
    IndexPlusOne,
    IndexMinusOne,
    SizeHalved,
    FlipBit { at: usize, byte: usize, bit: u8 },
    Remove { at: usize },
    Insert { at: usize, hash: [u8; 32] },
    WrongRoot { byte: usize, bit: u8 },
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::IndexPlusOne),
        Just(Corruption::IndexMinusOne),
        Just(Corruption::SizeHalved),
        (any::<usize>(), 0..HASH_LEN, 0..8u8).prop_map(|(at, byte, bit)| Corruption::FlipBit { at, byte, bit }),
        any::<usize>().prop_map(|at| Corruption::Remove { at }),
        (any::<usize>(), any::<[u8; 32]>()).prop_map(|(at, hash)| Corruption::Insert { at, hash }),
        (0..HASH_LEN, 0..8u8).prop_map(|(byte, bit)| Corruption::WrongRoot { byte, bit }),
    ]
}

/// Applies `c` to (position, size, proof, root); `None` when it does not apply (an index
/// below 0, an element of an empty proof).
fn corrupt(
    c: &Corruption,
    position: u64,
    size: u64,
    proof: &[Hash],
    root: Hash,
) -> Option<(u64, u64, Vec<Hash>, Hash)> {
    let mut proof = proof.to_vec();
    let (mut position, mut size, mut root) = (position, size, root);
    match *c {
        Corruption::IndexPlusOne => position += 1,
        Corruption::IndexMinusOne => position = position.checked_sub(1)?,
        Corruption::SizeHalved => size /= 2,
        Corruption::FlipBit { at, byte, bit } => {
            let at = at.checked_rem(proof.len())?;
            proof[at] = flip(proof[at], byte, bit);
        }
        Corruption::Remove { at } => {
            let at = at.checked_rem(proof.len())?;
            proof.remove(at);
        }
        Corruption::Insert { at, hash } => proof.insert(at % (proof.len() + 1), Hash::from(hash)),
        Corruption::WrongRoot { byte, bit } => root = flip(root, byte, bit),
    }
    Some((position, size, proof, root))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_inclusion_proofs(
        size in 1u64..2000,
        index_seed in any::<u64>(),
        c in corruption(),
    ) {
        let all = leaves(size);
        let store = store_via_reader(&all);
        let index = index_seed % size;
        let root = tree_root(size, &store)?;
        prop_assert_eq!(root, root_from_leaves(&all));
        let proof = inclusion_proof(index, size, &store)?;
        let leaf = all[index as usize];
        prop_assert_eq!(verify_inclusion(leaf, index, size, &proof, root), Ok(()));
        if let Some((i, s, p, r)) = corrupt(&c, index, size, &proof, root) {
            prop_assert!(verify_inclusion(leaf, i, s, &p, r).is_err(), "{:?} accepted", c);
        }
    }

    #[test]
    fn random_consistency_proofs(
        new in 1u64..2000,
        old_seed in any::<u64>(),
        c in corruption(),
    ) {
        let all = leaves(new);
        let store = store_via_reader(&all);
        let old = old_seed % new + 1;
        let (old_root, new_root) = (tree_root(old, &store)?, tree_root(new, &store)?);
        prop_assert_eq!(old_root, root_from_leaves(&all[..old as usize]));
        let proof = consistency_proof(old, new, &store)?;
        prop_assert_eq!(verify_consistency(old, new, &proof, old_root, new_root), Ok(()));
        if let Some((o, n, p, r)) = corrupt(&c, old, new, &proof, new_root) {
            prop_assert!(verify_consistency(o, n, &p, old_root, r).is_err(), "{:?} accepted", c);
        }
        // The same corruptions applied to the old side (the old size halved).
        if let Some((o, halved, p, r)) = corrupt(&c, old, old, &proof, old_root) {
            let o = if matches!(c, Corruption::SizeHalved) { halved } else { o };
            prop_assert!(verify_consistency(o, new, &p, r, new_root).is_err(), "{:?} accepted", c);
        }
    }

    #[test]
    fn hash_text_round_trips(bytes in any::<[u8; 32]>()) {
        let hash = Hash::from(bytes);
        prop_assert_eq!(Hash::from_hex(&hash.to_string()), Ok(hash));
        prop_assert_eq!(Hash::from_base64(&hash.to_base64()), Ok(hash));
        prop_assert_eq!(Hash::from_slice(hash.as_ref()), Ok(hash));
    }
}
