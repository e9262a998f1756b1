//! The storage contract: [`KvStore`] and the types its methods take.

use std::path::Path;
use std::sync::Arc;

use crate::StoreError;
use crate::keys::prefix_end;

/// A key and its value, as [`KvStore::scan`] returns them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An ordered key-value store over named tables, with atomic multi-table batches.
///
/// Keys are byte strings ordered lexicographically by unsigned byte (so `[0x01] < [0x01, 0x00]
/// < [0x02] < [0xff]`); values are byte strings (possibly empty). Tables are declared when the
/// store is opened (RocksDB column families, or a key prefix in a distributed store); any other
/// table name is a [`StoreError::UnknownTable`], never a panic.
///
/// Every method blocks the calling thread: call them from async code through
/// [`blocking`](crate::blocking) or [`AsyncStore`](crate::AsyncStore).
///
/// The contract is what [`conformance::run_all`](crate::conformance::run_all) checks; an
/// implementation is correct when it passes that suite.
pub trait KvStore: Send + Sync + 'static {
    /// Reads the value of `key` in `table`, or `None` if it is absent.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads `key` of `table` only if that needs no I/O (the value, or its absence, is in
    /// memory: RocksDB's memtables and block cache): `Ok(Some(value))` then, `Ok(None)` when
    /// the read would have to wait for the disk. An async caller runs this on its own thread
    /// and goes through [`blocking`](crate::blocking) with [`get`](Self::get) only on
    /// `Ok(None)`, so that a read of microseconds costs no thread hop.
    ///
    /// A store that cannot tell answers `Ok(None)` for every key of a known table; a store
    /// held in memory answers every read. An unknown table is an error, as for `get`.
    fn get_cached(&self, table: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError>;

    /// Reads many keys of one table at once; the answer has one entry per key, in the order
    /// of `keys` (duplicates included), `None` for an absent key.
    fn multi_get(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Returns at most `limit` key-value pairs of `table` whose keys fall in `range`, in
    /// ascending key order, or descending if the range is [reversed](ScanRange::reverse).
    /// A `limit` of 0 returns nothing; pass `usize::MAX` for no limit.
    fn scan(&self, table: &str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError>;

    /// Applies every operation of `batch`, in order, atomically: afterwards, readers see all
    /// of them or none, across tables, and a failed write (unknown table, empty key, I/O)
    /// writes nothing at all. An empty batch does nothing (it is not a sync barrier: call
    /// [`sync_wal`](Self::sync_wal) for that).
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError>;

    /// Makes every write acknowledged so far durable, as if each had been written with
    /// [`Durability::Sync`] (a group commit: many buffered writes, one sync).
    fn sync_wal(&self) -> Result<(), StoreError>;

    /// Persists in-memory state to the store's long-term files (RocksDB: flushes the
    /// memtables of every table), e.g. before a backup or a shutdown.
    fn flush(&self) -> Result<(), StoreError>;

    /// Writes a consistent, openable copy of the whole store into the directory `dir`,
    /// which must not exist yet (its parent must), while the store stays open for reads and
    /// writes: the copy holds every write acknowledged before the call and none that starts
    /// after it returns, atomic batches whole or not at all. A failed checkpoint leaves no
    /// `dir` behind. RocksDB: a checkpoint (hard links to the immutable table files, a copy
    /// of the rest); a store without files (memory) cannot make one and says so.
    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError>;
}

/// Shared stores are stores: services hold an `Arc<dyn KvStore>`, and wrappers such as
/// [`FailingStore`](crate::FailingStore) can wrap one.
impl<S: KvStore + ?Sized> KvStore for Arc<S> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(table, key)
    }

    fn get_cached(&self, table: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        (**self).get_cached(table, key)
    }

    fn multi_get(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        (**self).multi_get(table, keys)
    }

    fn scan(&self, table: &str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        (**self).scan(table, range, limit)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        (**self).write(batch, durability)
    }

    fn sync_wal(&self) -> Result<(), StoreError> {
        (**self).sync_wal()
    }

    fn flush(&self) -> Result<(), StoreError> {
        (**self).flush()
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        (**self).checkpoint(dir)
    }
}

/// How durable a write is when [`KvStore::write`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// On stable storage before the call returns (RocksDB: the WAL is fsynced): the write
    /// survives a power failure. Required for the fail-closed access log.
    Sync,
    /// Handed to the operating system before the call returns: the write survives a crash of
    /// the process but may be lost, with the writes after it, on a power failure or a kernel
    /// crash. Writes are never reordered: a lost write loses every later one too.
    Buffered,
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WriteOp {
    /// Sets `key` of `table` to `value`, replacing any previous value.
    Put {
        /// The table written to.
        table: String,
        /// The key (never empty).
        key: Vec<u8>,
        /// The new value (may be empty).
        value: Vec<u8>,
    },
    /// Removes `key` from `table`; removing an absent key is not an error.
    Delete {
        /// The table written to.
        table: String,
        /// The key (never empty).
        key: Vec<u8>,
    },
}

impl WriteOp {
    /// The table this operation writes to.
    pub fn table(&self) -> &str {
        match self {
            WriteOp::Put { table, .. } | WriteOp::Delete { table, .. } => table,
        }
    }

    /// The key this operation writes.
    pub fn key(&self) -> &[u8] {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// Puts and deletes across tables that [`KvStore::write`] applies in order, atomically.
///
/// ```
/// use exchange_store::WriteBatch;
///
/// let mut batch = WriteBatch::new();
/// batch.put("licences", b"L-1".to_vec(), b"{...}".to_vec()).delete("drafts", b"L-1".to_vec());
/// assert_eq!(batch.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `capacity` operations.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { ops: Vec::with_capacity(capacity) }
    }

    /// Adds a put of `key` = `value` in `table`.
    pub fn put(&mut self, table: impl Into<String>, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(WriteOp::Put { table: table.into(), key: key.into(), value: value.into() });
        self
    }

    /// Adds a delete of `key` in `table`.
    pub fn delete(&mut self, table: impl Into<String>, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(WriteOp::Delete { table: table.into(), key: key.into() });
        self
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in the order they will be applied.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Takes the operations out, in the order they will be applied.
    pub fn into_ops(self) -> Vec<WriteOp> {
        self.ops
    }

    /// Checks what every implementation must refuse before writing anything: an unknown table
    /// (`is_table` says which are known) or an empty key.
    pub fn validate(&self, is_table: impl Fn(&str) -> bool) -> Result<(), StoreError> {
        for op in &self.ops {
            if !is_table(op.table()) {
                return Err(StoreError::UnknownTable(op.table().to_owned()));
            }
            if op.key().is_empty() {
                return Err(StoreError::EmptyKey { table: op.table().to_owned() });
            }
        }
        Ok(())
    }
}

impl IntoIterator for WriteBatch {
    type Item = WriteOp;
    type IntoIter = std::vec::IntoIter<WriteOp>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.into_iter()
    }
}

impl Extend<WriteOp> for WriteBatch {
    fn extend<I: IntoIterator<Item = WriteOp>>(&mut self, iter: I) {
        self.ops.extend(iter);
    }
}

/// The keys a [`KvStore::scan`] visits: a half-open interval `[lower, upper)` of keys, and a
/// direction.
///
/// Built from [`all`](Self::all) or [`prefix`](Self::prefix) and narrowed by
/// [`start`](Self::start), [`after`](Self::after) and [`end`](Self::end); each narrowing
/// intersects, so the order of the calls does not matter. Every bound is resolved here, once,
/// so that each implementation only has to honour `[lower, upper)`.
///
/// ```
/// use exchange_store::ScanRange;
///
/// // The last key with prefix "log/" (for "append after the last entry").
/// let last = ScanRange::prefix(b"log/").reverse();
/// // The next page after "log/0042".
/// let next = ScanRange::prefix(b"log/").after(b"log/0042");
/// assert!(next.contains(b"log/0043") && !next.contains(b"log/0042"));
/// # let _ = last;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScanRange {
    /// Inclusive; empty means "from the first key".
    lower: Vec<u8>,
    /// Exclusive; `None` means "to the last key".
    upper: Option<Vec<u8>>,
    reverse: bool,
}

impl ScanRange {
    /// Every key of the table, ascending.
    pub fn all() -> Self {
        Self::default()
    }

    /// Every key that starts with `prefix`, ascending. Prefix `ab` matches `ab`, `ab\0` and
    /// `abz`, but not `ac` nor `a`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let prefix = prefix.as_ref();
        let range = Self::all().start(prefix);
        match prefix_end(prefix) {
            Some(end) => range.end(end),
            None => range,
        }
    }

    /// Keeps only keys `>= key`.
    pub fn start(mut self, key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        if key > self.lower.as_slice() {
            self.lower = key.to_vec();
        }
        self
    }

    /// Keeps only keys `> key` (to continue a forward scan after the last key seen).
    pub fn after(self, key: impl AsRef<[u8]>) -> Self {
        // The smallest key greater than `key` is `key` followed by a zero byte.
        let mut successor = Vec::with_capacity(key.as_ref().len() + 1);
        successor.extend_from_slice(key.as_ref());
        successor.push(0);
        self.start(successor)
    }

    /// Keeps only keys `< key` (also: to continue a reverse scan before the last key seen).
    pub fn end(mut self, key: impl AsRef<[u8]>) -> Self {
        let key = key.as_ref();
        if self.upper.as_deref().is_none_or(|upper| key < upper) {
            self.upper = Some(key.to_vec());
        }
        self
    }

    /// Visits the keys in descending order, starting from the largest; with a limit of 1,
    /// this reads the last key of the range.
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// The smallest key that may be visited (inclusive); empty when unbounded.
    pub fn lower(&self) -> &[u8] {
        &self.lower
    }

    /// The bound no visited key reaches (exclusive); `None` when unbounded.
    pub fn upper(&self) -> Option<&[u8]> {
        self.upper.as_deref()
    }

    /// Whether the keys are visited in descending order.
    pub fn is_reverse(&self) -> bool {
        self.reverse
    }

    /// Whether no key at all can fall in the range (e.g. a start after the end).
    pub fn is_empty(&self) -> bool {
        self.upper.as_deref().is_some_and(|upper| upper <= self.lower.as_slice())
    }

    /// Whether `key` falls in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.lower.as_slice() && self.upper.as_deref().is_none_or(|upper| key < upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(range: &ScanRange, inside: &[&[u8]], outside: &[&[u8]]) {
        for key in inside {
            assert!(range.contains(key), "{range:?} should contain {key:?}");
        }
        for key in outside {
            assert!(!range.contains(key), "{range:?} should not contain {key:?}");
        }
    }

    #[test]
    fn prefix_bounds() {
        check(&ScanRange::prefix(b"ab"), &[b"ab", b"ab\0", b"abz", b"ab\xff\xff"], &[b"a", b"aa", b"ac", b"b", b""]);
        check(&ScanRange::prefix([1, 0xff]), &[&[1, 0xff], &[1, 0xff, 0xff, 7]], &[&[1, 0xfe], &[2], &[2, 0]]);
        check(&ScanRange::prefix([0xff, 0xff]), &[&[0xff, 0xff], &[0xff, 0xff, 0xff]], &[&[0xff, 0xfe, 0xff]]);
        assert_eq!(ScanRange::prefix([0xff, 0xff]).upper(), None);
        assert_eq!(ScanRange::prefix(b""), ScanRange::all());
    }

    #[test]
    fn narrowing_intersects_in_any_order() {
        let a = ScanRange::prefix(b"k").start(b"k2").end(b"k5");
        let b = ScanRange::all().end(b"k5").start(b"k2").start(b"k").end(b"z").start(b"k2");
        assert_eq!(a.lower(), b.lower());
        assert_eq!(a.upper(), b.upper());
        check(&a, &[b"k2", b"k4\xff"], &[b"k1", b"k5", b"k"]);
    }

    #[test]
    fn after_is_exclusive_and_end_is_exclusive() {
        check(&ScanRange::all().after(b"b").end(b"d"), &[b"b\0", b"c", b"c\xff"], &[b"b", b"d", b"a"]);
    }

    #[test]
    fn empty_ranges() {
        assert!(ScanRange::all().start(b"b").end(b"a").is_empty());
        assert!(ScanRange::all().start(b"b").end(b"b").is_empty());
        assert!(ScanRange::prefix(b"a").after(b"a\xff\xff").start(b"b").is_empty());
        assert!(!ScanRange::all().start(b"a").end(b"a\0").is_empty());
        assert!(!ScanRange::all().is_empty());
    }

    #[test]
    fn validate_refuses_unknown_tables_and_empty_keys() {
        let known = |t: &str| t == "t";
        let mut batch = WriteBatch::new();
        batch.put("t", b"k".to_vec(), Vec::new());
        assert!(batch.validate(known).is_ok());
        batch.delete("u", b"k".to_vec());
        assert!(matches!(batch.validate(known), Err(StoreError::UnknownTable(t)) if t == "u"));
        let mut batch = WriteBatch::new();
        batch.put("t", Vec::new(), b"v".to_vec());
        assert!(matches!(batch.validate(known), Err(StoreError::EmptyKey { table }) if table == "t"));
    }
}
