//! **Test support.** The conformance suite: what every [`KvStore`] implementation must do.
//!
//! An implementation is correct when [`run_all`] passes against it; the suite, not the
//! implementation at hand, is the contract (as TiKV's `engine_traits_tests` is for its
//! engines). Run it from a test of each implementation:
//!
//! ```
//! use exchange_store::{MemoryStore, conformance};
//!
//! conformance::run_all(|| MemoryStore::new(&conformance::TABLES));
//! ```
//!
//! The checks panic on failure, like assertions, naming what was expected. Behaviour that
//! only an implementation with files has (persistence across reopen, locking) is tested
//! beside that implementation.

use std::collections::BTreeMap;

use crate::{Durability, KeyValue, KvStore, ScanRange, StoreError, WriteBatch};

/// The tables a store under test must be opened with, and only these.
pub const TABLES: [&str; 2] = ["alpha", "beta"];

const A: &str = TABLES[0];
const B: &str = TABLES[1];

/// One check: its name and the function that runs it on a fresh, empty store.
pub type Check = (&'static str, fn(&dyn KvStore));

/// Every check of the suite.
pub const CHECKS: &[Check] = &[
    ("get_put_delete", get_put_delete),
    ("overwrite", overwrite),
    ("delete_absent_key", delete_absent_key),
    ("empty_value_is_not_absent", empty_value_is_not_absent),
    ("large_value", large_value),
    ("tables_are_separate", tables_are_separate),
    ("batch_applies_in_order", batch_applies_in_order),
    ("batch_is_atomic_across_tables", batch_is_atomic_across_tables),
    ("batch_with_unknown_table_writes_nothing", batch_with_unknown_table_writes_nothing),
    ("batch_with_empty_key_writes_nothing", batch_with_empty_key_writes_nothing),
    ("empty_batch", empty_batch),
    ("both_durabilities", both_durabilities),
    ("scan_orders_by_unsigned_bytes", scan_orders_by_unsigned_bytes),
    ("scan_prefix_bounds", scan_prefix_bounds),
    ("scan_prefix_with_ff_bytes", scan_prefix_with_ff_bytes),
    ("scan_start_after_end", scan_start_after_end),
    ("scan_reverse", scan_reverse),
    ("scan_limit", scan_limit),
    ("scan_empty_range", scan_empty_range),
    ("scan_pages_forward_and_backward", scan_pages_forward_and_backward),
    ("multi_get_missing_and_duplicate_keys", multi_get_missing_and_duplicate_keys),
    ("get_cached_agrees_with_get", get_cached_agrees_with_get),
    ("unknown_table_is_an_error", unknown_table_is_an_error),
    ("sync_wal_and_flush_keep_data", sync_wal_and_flush_keep_data),
    ("concurrent_writers", concurrent_writers),
];

/// Runs every check, each on a fresh store from `make`, which must return an empty store
/// opened with exactly [`TABLES`]. Panics at the first failed check.
pub fn run_all<S: KvStore>(mut make: impl FnMut() -> S) {
    for (name, check) in CHECKS {
        // Printed so that a failure's captured output names the check.
        eprintln!("conformance check: {name}");
        check(&make());
    }
}

type Pairs = Vec<KeyValue>;

fn ok<T>(what: &str, result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: unexpected error: {error} ({error:?})"),
    }
}

fn put(store: &dyn KvStore, table: &str, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(table, key, value);
    ok("put", store.write(batch, Durability::Buffered));
}

fn delete(store: &dyn KvStore, table: &str, key: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.delete(table, key);
    ok("delete", store.write(batch, Durability::Buffered));
}

fn get(store: &dyn KvStore, table: &str, key: &[u8]) -> Option<Vec<u8>> {
    ok("get", store.get(table, key))
}

fn scan(store: &dyn KvStore, range: ScanRange, limit: usize) -> Pairs {
    ok("scan", store.scan(A, range, limit))
}

fn scan_keys(store: &dyn KvStore, range: ScanRange, limit: usize) -> Vec<Vec<u8>> {
    scan(store, range, limit).into_iter().map(|(k, _)| k).collect()
}

fn keys(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

/// Puts each key into table A with the value `v:` + key.
fn fill(store: &dyn KvStore, fill_keys: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for key in fill_keys {
        batch.put(A, *key, value_of(key));
    }
    ok("fill", store.write(batch, Durability::Buffered));
}

fn value_of(key: &[u8]) -> Vec<u8> {
    [b"v:".as_slice(), key].concat()
}

/// A put is read back, a delete removes it.
pub fn get_put_delete(store: &dyn KvStore) {
    assert_eq!(get(store, A, b"k"), None, "a fresh store is empty");
    put(store, A, b"k", b"v");
    assert_eq!(get(store, A, b"k"), Some(b"v".to_vec()));
    delete(store, A, b"k");
    assert_eq!(get(store, A, b"k"), None, "deleted key is absent");
    assert_eq!(scan(store, ScanRange::all(), usize::MAX), Pairs::new(), "deleted key is not scanned");
}

/// A second put replaces the value.
pub fn overwrite(store: &dyn KvStore) {
    put(store, A, b"k", b"first, and longer");
    put(store, A, b"k", b"second");
    assert_eq!(get(store, A, b"k"), Some(b"second".to_vec()));
    assert_eq!(scan(store, ScanRange::all(), usize::MAX).len(), 1, "an overwritten key is scanned once");
}

/// Deleting an absent key succeeds and changes nothing.
pub fn delete_absent_key(store: &dyn KvStore) {
    put(store, A, b"k", b"v");
    delete(store, A, b"other");
    assert_eq!(get(store, A, b"k"), Some(b"v".to_vec()));
}

/// An empty value is stored, read back as `Some(empty)` and scanned.
pub fn empty_value_is_not_absent(store: &dyn KvStore) {
    put(store, A, b"k", b"");
    assert_eq!(get(store, A, b"k"), Some(Vec::new()));
    assert_eq!(ok("multi_get", store.multi_get(A, &keys(&[b"k"]))), vec![Some(Vec::new())]);
    assert_eq!(scan(store, ScanRange::all(), 10), vec![(b"k".to_vec(), Vec::new())]);
}

/// A 1 MiB value with every byte value round-trips.
pub fn large_value(store: &dyn KvStore) {
    let value: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    put(store, A, b"big", &value);
    assert!(get(store, A, b"big") == Some(value.clone()), "1 MiB value read back unchanged");
    let scanned = scan(store, ScanRange::prefix(b"big"), 1);
    assert!(scanned.len() == 1 && scanned[0].1 == value, "1 MiB value scanned unchanged");
}

/// The same key in two tables holds two values.
pub fn tables_are_separate(store: &dyn KvStore) {
    put(store, A, b"k", b"in alpha");
    put(store, B, b"k", b"in beta");
    assert_eq!(get(store, A, b"k"), Some(b"in alpha".to_vec()));
    assert_eq!(get(store, B, b"k"), Some(b"in beta".to_vec()));
    delete(store, A, b"k");
    assert_eq!(get(store, B, b"k"), Some(b"in beta".to_vec()), "a delete in alpha leaves beta alone");
    assert_eq!(ok("scan", store.scan(B, ScanRange::all(), 10)).len(), 1);
}

/// Operations on the same key apply in batch order: the last one wins.
pub fn batch_applies_in_order(store: &dyn KvStore) {
    let mut batch = WriteBatch::new();
    batch.put(A, b"put-then-delete", b"v").delete(A, b"put-then-delete");
    batch.delete(A, b"delete-then-put").put(A, b"delete-then-put", b"v");
    batch.put(A, b"put-twice", b"1").put(A, b"put-twice", b"2");
    ok("write", store.write(batch, Durability::Sync));
    assert_eq!(get(store, A, b"put-then-delete"), None);
    assert_eq!(get(store, A, b"delete-then-put"), Some(b"v".to_vec()));
    assert_eq!(get(store, A, b"put-twice"), Some(b"2".to_vec()));
}

/// One batch writes to several tables.
pub fn batch_is_atomic_across_tables(store: &dyn KvStore) {
    put(store, B, b"old", b"v");
    let mut batch = WriteBatch::new();
    batch.put(A, b"entry/1", b"e").put(B, b"index/1", b"i").delete(B, b"old");
    assert_eq!(batch.len(), 3);
    ok("write", store.write(batch, Durability::Sync));
    assert_eq!(get(store, A, b"entry/1"), Some(b"e".to_vec()));
    assert_eq!(get(store, B, b"index/1"), Some(b"i".to_vec()));
    assert_eq!(get(store, B, b"old"), None);
}

/// A batch naming an unknown table anywhere (even last) is refused whole.
pub fn batch_with_unknown_table_writes_nothing(store: &dyn KvStore) {
    put(store, A, b"k", b"before");
    let mut batch = WriteBatch::new();
    batch.put(A, b"k", b"after").put(B, b"new", b"v").delete(A, b"other").put("no-such-table", b"x", b"v");
    match store.write(batch, Durability::Sync) {
        Err(StoreError::UnknownTable(table)) => assert_eq!(table, "no-such-table"),
        other => panic!("batch with an unknown table: expected UnknownTable, got {other:?}"),
    }
    assert_eq!(get(store, A, b"k"), Some(b"before".to_vec()), "nothing of the refused batch is written");
    assert_eq!(get(store, B, b"new"), None, "nothing of the refused batch is written");
}

/// A batch with an empty key anywhere is refused whole; reading the empty key finds nothing.
pub fn batch_with_empty_key_writes_nothing(store: &dyn KvStore) {
    let mut batch = WriteBatch::new();
    batch.put(A, b"k", b"v").put(B, b"", b"v");
    match store.write(batch, Durability::Sync) {
        Err(StoreError::EmptyKey { table }) => assert_eq!(table, B),
        other => panic!("batch with an empty key: expected EmptyKey, got {other:?}"),
    }
    assert_eq!(get(store, A, b"k"), None, "nothing of the refused batch is written");
    let mut batch = WriteBatch::new();
    batch.delete(A, b"");
    assert!(matches!(store.write(batch, Durability::Sync), Err(StoreError::EmptyKey { .. })), "empty key delete");
    assert_eq!(get(store, A, b""), None);
    assert_eq!(ok("multi_get", store.multi_get(A, &keys(&[b""]))), vec![None]);
}

/// An empty batch succeeds and writes nothing.
pub fn empty_batch(store: &dyn KvStore) {
    assert!(WriteBatch::new().is_empty());
    ok("write", store.write(WriteBatch::new(), Durability::Sync));
    ok("write", store.write(WriteBatch::new(), Durability::Buffered));
    assert_eq!(scan(store, ScanRange::all(), usize::MAX), Pairs::new());
}

/// Both durabilities write, and are read back at once.
pub fn both_durabilities(store: &dyn KvStore) {
    for (durability, key) in [(Durability::Sync, b"sync"), (Durability::Buffered, b"buff")] {
        let mut batch = WriteBatch::new();
        batch.put(A, key, b"v");
        ok("write", store.write(batch, durability));
        assert_eq!(get(store, A, key), Some(b"v".to_vec()), "{durability:?} write is read back");
    }
}

/// Keys are ordered by unsigned bytes, a prefix before its extensions, whatever the order
/// they were written in.
pub fn scan_orders_by_unsigned_bytes(store: &dyn KvStore) {
    let expected: [&[u8]; 8] = [b"\x00", b"\x01", b"\x01\x00", b"\x01\x01", b"\x02", b"\x7f", b"\x80", b"\xff\xff"];
    let mut shuffled = expected;
    shuffled.reverse();
    shuffled.swap(1, 5);
    fill(store, &shuffled);
    assert_eq!(scan_keys(store, ScanRange::all(), usize::MAX), keys(&expected));
    let pairs = scan(store, ScanRange::all(), usize::MAX);
    assert!(pairs.iter().all(|(k, v)| *v == value_of(k)), "each key scanned with its own value");
}

/// A prefix scan returns exactly the keys with that prefix.
pub fn scan_prefix_bounds(store: &dyn KvStore) {
    fill(store, &[b"a", b"aa", b"ab", b"ab\x00", b"abc", b"ab\xff", b"ac", b"b"]);
    assert_eq!(scan_keys(store, ScanRange::prefix(b"ab"), 100), keys(&[b"ab", b"ab\x00", b"abc", b"ab\xff"]));
    assert_eq!(scan_keys(store, ScanRange::prefix(b"a"), 100).len(), 7);
    assert_eq!(scan_keys(store, ScanRange::prefix(b"abd"), 100), Vec::<Vec<u8>>::new());
    assert_eq!(scan_keys(store, ScanRange::prefix(b""), 100).len(), 8, "the empty prefix is every key");
}

/// Prefixes ending in 0xff bytes, or made of them only, are bounded correctly.
pub fn scan_prefix_with_ff_bytes(store: &dyn KvStore) {
    fill(
        store,
        &[
            b"\x01\xfe",
            b"\x01\xff",
            b"\x01\xff\x00",
            b"\x01\xff\xff\xff",
            b"\x02",
            b"\xff",
            b"\xff\xff",
            b"\xff\xff\x01",
        ],
    );
    assert_eq!(
        scan_keys(store, ScanRange::prefix(b"\x01\xff"), 100),
        keys(&[b"\x01\xff", b"\x01\xff\x00", b"\x01\xff\xff\xff"])
    );
    assert_eq!(scan_keys(store, ScanRange::prefix(b"\xff\xff"), 100), keys(&[b"\xff\xff", b"\xff\xff\x01"]));
    assert_eq!(scan_keys(store, ScanRange::prefix(b"\xff"), 100), keys(&[b"\xff", b"\xff\xff", b"\xff\xff\x01"]));
    assert_eq!(scan_keys(store, ScanRange::prefix(b"\xff\xff").reverse(), 1), keys(&[b"\xff\xff\x01"]));
}

/// `start` is inclusive, `after` and `end` exclusive, on present and absent keys alike.
pub fn scan_start_after_end(store: &dyn KvStore) {
    fill(store, &[b"k1", b"k2", b"k3", b"k4", b"k5"]);
    let all = ScanRange::all();
    assert_eq!(scan_keys(store, all.clone().start(b"k2"), 100), keys(&[b"k2", b"k3", b"k4", b"k5"]));
    assert_eq!(scan_keys(store, all.clone().after(b"k2"), 100), keys(&[b"k3", b"k4", b"k5"]));
    assert_eq!(scan_keys(store, all.clone().end(b"k3"), 100), keys(&[b"k1", b"k2"]));
    assert_eq!(scan_keys(store, all.clone().start(b"k2").end(b"k4"), 100), keys(&[b"k2", b"k3"]));
    assert_eq!(scan_keys(store, all.clone().after(b"k2").end(b"k4"), 100), keys(&[b"k3"]));
    // Bounds between stored keys.
    assert_eq!(scan_keys(store, all.clone().start(b"k2a").end(b"k4a"), 100), keys(&[b"k3", b"k4"]));
    assert_eq!(scan_keys(store, all.clone().after(b"k"), 2), keys(&[b"k1", b"k2"]));
    assert_eq!(scan_keys(store, all.after(b"k5"), 100), Vec::<Vec<u8>>::new());
}

/// A reversed scan visits the same keys from the largest down.
pub fn scan_reverse(store: &dyn KvStore) {
    fill(store, &[b"a", b"log/1", b"log/2", b"log/3", b"log0", b"z"]);
    assert_eq!(
        scan_keys(store, ScanRange::all().reverse(), 100),
        keys(&[b"z", b"log0", b"log/3", b"log/2", b"log/1", b"a"])
    );
    // "The last key with a prefix": the next key after it ("log0") is not taken.
    assert_eq!(scan(store, ScanRange::prefix(b"log/").reverse(), 1), vec![(b"log/3".to_vec(), value_of(b"log/3"))]);
    assert_eq!(scan_keys(store, ScanRange::prefix(b"log/").reverse().end(b"log/3"), 100), keys(&[b"log/2", b"log/1"]));
    assert_eq!(
        scan_keys(store, ScanRange::prefix(b"log/").reverse().after(b"log/1"), 100),
        keys(&[b"log/3", b"log/2"])
    );
    assert_eq!(scan_keys(store, ScanRange::prefix(b"nothing").reverse(), 1), Vec::<Vec<u8>>::new());
}

/// `limit` caps the count from the first key visited; 0 returns nothing.
pub fn scan_limit(store: &dyn KvStore) {
    fill(store, &[b"1", b"2", b"3", b"4"]);
    assert_eq!(scan_keys(store, ScanRange::all(), 0), Vec::<Vec<u8>>::new());
    assert_eq!(scan_keys(store, ScanRange::all(), 2), keys(&[b"1", b"2"]));
    assert_eq!(scan_keys(store, ScanRange::all().reverse(), 2), keys(&[b"4", b"3"]));
    assert_eq!(scan_keys(store, ScanRange::all(), 4).len(), 4);
    assert_eq!(scan_keys(store, ScanRange::all(), 5).len(), 4);
}

/// A range that no key can fall in (start past end) scans nothing, without error.
pub fn scan_empty_range(store: &dyn KvStore) {
    fill(store, &[b"a", b"b", b"c"]);
    for range in [
        ScanRange::all().start(b"c").end(b"a"),
        ScanRange::all().start(b"b").end(b"b"),
        ScanRange::all().after(b"b").end(b"b\x00"),
        ScanRange::prefix(b"a").start(b"b"),
    ] {
        assert!(range.is_empty());
        assert_eq!(scan_keys(store, range.clone(), 100), Vec::<Vec<u8>>::new(), "{range:?}");
        assert_eq!(scan_keys(store, range.reverse(), 100), Vec::<Vec<u8>>::new());
    }
}

/// Paging with `after` (forward) and `end` (backward) visits every key once.
pub fn scan_pages_forward_and_backward(store: &dyn KvStore) {
    let all: Vec<Vec<u8>> = (0..50u32).map(|i| format!("p/{i:03}").into_bytes()).collect();
    fill(store, &all.iter().map(Vec::as_slice).collect::<Vec<_>>());
    put(store, A, b"q", b"outside the prefix");

    let mut forward = Vec::new();
    let mut range = ScanRange::prefix(b"p/");
    loop {
        let page = scan_keys(store, range.clone(), 7);
        let Some(last) = page.last().cloned() else { break };
        forward.extend(page);
        range = range.after(last);
    }
    assert_eq!(forward, all, "forward pages");

    let mut backward = Vec::new();
    let mut range = ScanRange::prefix(b"p/").reverse();
    loop {
        let page = scan_keys(store, range.clone(), 7);
        let Some(last) = page.last().cloned() else { break };
        backward.extend(page);
        range = range.end(last);
    }
    backward.reverse();
    assert_eq!(backward, all, "backward pages");
}

/// `multi_get` answers one entry per key, in order, `None` for the absent ones.
pub fn multi_get_missing_and_duplicate_keys(store: &dyn KvStore) {
    fill(store, &[b"h/1", b"h/3", b"h/5"]);
    let asked = keys(&[b"h/5", b"h/2", b"h/1", b"h/5", b"h/9"]);
    let expected = vec![Some(value_of(b"h/5")), None, Some(value_of(b"h/1")), Some(value_of(b"h/5")), None];
    assert_eq!(ok("multi_get", store.multi_get(A, &asked)), expected);
    assert_eq!(ok("multi_get", store.multi_get(A, &[])), Vec::<Option<Vec<u8>>>::new());
    assert_eq!(ok("multi_get", store.multi_get(B, &asked)), vec![None; 5], "other table");
}

/// Every method refuses a table that was not declared, with its name.
pub fn unknown_table_is_an_error(store: &dyn KvStore) {
    let unknown = |what: &str, result: Result<(), StoreError>| match result {
        Err(StoreError::UnknownTable(table)) => assert_eq!(table, "gamma", "{what}"),
        other => panic!("{what} on an unknown table: expected UnknownTable, got {other:?}"),
    };
    unknown("get", store.get("gamma", b"k").map(drop));
    unknown("multi_get", store.multi_get("gamma", &keys(&[b"k"])).map(drop));
    unknown("multi_get of no key", store.multi_get("gamma", &[]).map(drop));
    unknown("scan", store.scan("gamma", ScanRange::all(), 10).map(drop));
    unknown("scan with limit 0", store.scan("gamma", ScanRange::all(), 0).map(drop));
    let mut batch = WriteBatch::new();
    batch.delete("gamma", b"k");
    unknown("write", store.write(batch, Durability::Buffered));
}

/// `get_cached`, whenever it answers, answers what `get` does: a value, an empty value, an
/// absent key, before and after a flush and a delete; an unknown table is an error.
pub fn get_cached_agrees_with_get(store: &dyn KvStore) {
    let agree = |table: &str, key: &[u8]| {
        let cached = ok("get_cached", store.get_cached(table, key));
        if let Some(value) = cached {
            assert_eq!(value, get(store, table, key), "get_cached of {key:?} in {table}");
        }
    };
    put(store, A, b"k", b"v");
    put(store, A, b"e", b"");
    put(store, B, b"k", b"w");
    for round in 0..2 {
        for key in [&b"k"[..], b"e", b"absent", b""] {
            agree(A, key);
            agree(B, key);
        }
        if round == 0 {
            ok("flush", store.flush());
        }
    }
    delete(store, A, b"k");
    agree(A, b"k");
    assert!(matches!(store.get_cached("gamma", b"k"), Err(StoreError::UnknownTable(t)) if t == "gamma"));
}

/// `sync_wal` and `flush` succeed, on an empty store and after writes, and lose nothing.
pub fn sync_wal_and_flush_keep_data(store: &dyn KvStore) {
    ok("sync_wal", store.sync_wal());
    ok("flush", store.flush());
    put(store, A, b"k", b"v");
    put(store, B, b"k", b"w");
    ok("sync_wal", store.sync_wal());
    ok("flush", store.flush());
    delete(store, A, b"k");
    ok("flush", store.flush());
    assert_eq!(get(store, A, b"k"), None, "a delete after a flush hides the flushed value");
    assert_eq!(get(store, B, b"k"), Some(b"w".to_vec()));
}

/// Writers on several threads lose nothing, and each batch lands whole.
pub fn concurrent_writers(store: &dyn KvStore) {
    const THREADS: u32 = 8;
    const BATCHES: u32 = 50;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..BATCHES {
                    let key = format!("{t}/{i:03}");
                    let mut batch = WriteBatch::new();
                    batch.put(A, key.as_bytes(), key.as_bytes()).put(B, key.as_bytes(), b"");
                    ok("concurrent write", store.write(batch, Durability::Buffered));
                }
            });
        }
    });
    let expected = (THREADS * BATCHES) as usize;
    let a: BTreeMap<Vec<u8>, Vec<u8>> = scan(store, ScanRange::all(), usize::MAX).into_iter().collect();
    assert_eq!(a.len(), expected);
    assert!(a.iter().all(|(k, v)| k == v), "each value is its own key");
    assert_eq!(ok("scan", store.scan(B, ScanRange::all(), usize::MAX)).len(), expected);
}

/// For stores with files: [`KvStore::checkpoint`] makes a consistent copy while writers run.
/// `store` must be empty and opened with [`TABLES`]; `dir` must not exist (its parent must);
/// `open` opens a copy as a store of the same kind. Checks that the copy holds every write
/// acknowledged before the checkpoint, each concurrent batch whole or not at all, none of the
/// writes after it; that it is independent of the original; and that a checkpoint into an
/// existing directory is refused and leaves that directory as it was.
pub fn checkpoint_is_a_consistent_copy<S: KvStore>(
    store: &S,
    dir: &std::path::Path,
    open: impl Fn(&std::path::Path) -> S,
) {
    put(store, A, b"before", b"1");
    put(store, B, b"before", b"2");
    ok("sync_wal", store.sync_wal());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("w/{i:06}");
                let mut batch = WriteBatch::new();
                batch.put(A, key.as_bytes(), key.as_bytes()).put(B, key.as_bytes(), key.as_bytes());
                ok("write during the checkpoint", store.write(batch, Durability::Buffered));
                i += 1;
            }
        });
        ok("checkpoint", store.checkpoint(dir));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if writer.join().is_err() {
            panic!("the writer during the checkpoint panicked");
        }
    });
    put(store, A, b"after", b"3");
    let copy = open(dir);
    assert_eq!(get(&copy, A, b"before"), Some(b"1".to_vec()), "the copy holds what was written before");
    assert_eq!(get(&copy, B, b"before"), Some(b"2".to_vec()));
    assert_eq!(get(&copy, A, b"after"), None, "the copy holds nothing written after the checkpoint");
    let a: Vec<Vec<u8>> =
        ok("scan copy", copy.scan(A, ScanRange::prefix(b"w/"), usize::MAX)).into_iter().map(|(k, _)| k).collect();
    let b: Vec<Vec<u8>> =
        ok("scan copy", copy.scan(B, ScanRange::prefix(b"w/"), usize::MAX)).into_iter().map(|(k, _)| k).collect();
    assert_eq!(a, b, "every batch written during the checkpoint is in the copy whole, or not at all");
    // A prefix of the writer's sequence: writes are never reordered.
    let expected: Vec<Vec<u8>> = (0..a.len()).map(|i| format!("w/{i:06}").into_bytes()).collect();
    assert_eq!(a, expected, "the copy holds a prefix of the writes");
    put(&copy, A, b"copy-only", b"4");
    assert_eq!(get(store, A, b"copy-only"), None, "the copy is independent of the original");
    drop(copy);
    let listing = |d: &std::path::Path| -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> =
            ok("list", std::fs::read_dir(d).map_err(io_error)).filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        names
    };
    let before = listing(dir);
    assert!(store.checkpoint(dir).is_err(), "a checkpoint into an existing directory is refused");
    assert_eq!(listing(dir), before, "and leaves that directory as it was");
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Backend { operation: "list a directory".into(), location: "conformance".into(), source: Box::new(e) }
}
