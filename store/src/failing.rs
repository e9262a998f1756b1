//! [`FailingStore`]: fault injection, for testing that services fail closed.

use std::sync::{Arc, Mutex, PoisonError};

use crate::{Durability, KeyValue, KvStore, ScanRange, StoreError, WriteBatch};

/// **Test support.** A [`KvStore`] that passes every call to `S` until told to fail, so that a
/// service test can check fail-closed behaviour ("access log unwritable → query refused").
///
/// Hand the store to the service and keep its [`Faults`] handle to switch failures on and off:
///
/// ```
/// use std::sync::Arc;
/// use exchange_store::{Durability, FailingStore, KvStore, MemoryStore, StoreError, WriteBatch};
///
/// let store = FailingStore::new(MemoryStore::new(&["log"]));
/// let faults = store.faults();
/// let store: Arc<dyn KvStore> = Arc::new(store); // what the service holds
///
/// faults.fail_writes(true);
/// let mut batch = WriteBatch::new();
/// batch.put("log", b"1".to_vec(), b"entry".to_vec());
/// assert!(matches!(store.write(batch, Durability::Sync), Err(StoreError::Injected { .. })));
/// assert_eq!(store.get("log", b"1")?, None);
/// # Ok::<(), StoreError>(())
/// ```
///
/// A failed write reaches `S` not at all, so nothing of it is stored.
#[derive(Debug)]
pub struct FailingStore<S> {
    inner: S,
    faults: Faults,
}

impl<S: KvStore> FailingStore<S> {
    /// Wraps `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self { inner, faults: Faults::default() }
    }

    /// The switches of this store (a shared handle: clone it freely).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The wrapped store, to inspect what was written, bypassing the faults.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// The failure switches of a [`FailingStore`]; clones share the switches.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// `None`: writes pass; `Some(n)`: `n` more writes pass, then every write fails.
    writes_left: Option<u64>,
    fail_reads: bool,
    injected: u64,
}

impl Faults {
    fn with<T>(&self, f: impl FnOnce(&mut FaultState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes every write (`write`, `sync_wal`, `flush`) fail from now on, or pass again.
    pub fn fail_writes(&self, fail: bool) {
        self.with(|s| s.writes_left = fail.then_some(0));
    }

    /// Lets the next `n` writes pass, then makes every write fail (the disk fills up).
    pub fn fail_writes_after(&self, n: u64) {
        self.with(|s| s.writes_left = Some(n));
    }

    /// Makes every read (`get`, `multi_get`, `scan`) fail from now on, or pass again.
    pub fn fail_reads(&self, fail: bool) {
        self.with(|s| s.fail_reads = fail);
    }

    /// Lets every call pass again.
    pub fn clear(&self) {
        self.with(|s| {
            s.writes_left = None;
            s.fail_reads = false;
        });
    }

    /// How many calls have been made to fail so far.
    pub fn injected(&self) -> u64 {
        self.with(|s| s.injected)
    }

    fn check_write(&self, operation: &str) -> Result<(), StoreError> {
        self.with(|s| match &mut s.writes_left {
            None => Ok(()),
            Some(0) => {
                s.injected += 1;
                Err(StoreError::Injected { operation: operation.to_owned() })
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
        })
    }

    fn check_read(&self, operation: &str) -> Result<(), StoreError> {
        self.with(|s| {
            if s.fail_reads {
                s.injected += 1;
                Err(StoreError::Injected { operation: operation.to_owned() })
            } else {
                Ok(())
            }
        })
    }
}

impl<S: KvStore> KvStore for FailingStore<S> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.faults.check_read("get")?;
        self.inner.get(table, key)
    }

    fn get_cached(&self, table: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        self.faults.check_read("get")?;
        self.inner.get_cached(table, key)
    }

    fn multi_get(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.faults.check_read("multi_get")?;
        self.inner.multi_get(table, keys)
    }

    fn scan(&self, table: &str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.faults.check_read("scan")?;
        self.inner.scan(table, range, limit)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        self.faults.check_write("write")?;
        self.inner.write(batch, durability)
    }

    fn sync_wal(&self) -> Result<(), StoreError> {
        self.faults.check_write("sync_wal")?;
        self.inner.sync_wal()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.faults.check_write("flush")?;
        self.inner.flush()
    }

    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        self.faults.check_write("checkpoint")?;
        self.inner.checkpoint(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn put(store: &dyn KvStore, key: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put("t", key.to_vec(), b"v".to_vec());
        store.write(batch, Durability::Sync)
    }

    #[test]
    fn fails_writes_after_n_and_writes_nothing() {
        let store = FailingStore::new(MemoryStore::new(&["t"]));
        let faults = store.faults();
        faults.fail_writes_after(2);
        assert!(put(&store, b"1").is_ok());
        assert!(put(&store, b"2").is_ok());
        assert!(matches!(put(&store, b"3"), Err(StoreError::Injected { .. })));
        assert!(matches!(store.sync_wal(), Err(StoreError::Injected { .. })));
        assert_eq!(faults.injected(), 2);
        assert!(matches!(store.inner().get("t", b"3"), Ok(None)));
        // Reads still pass.
        assert!(matches!(store.get("t", b"2"), Ok(Some(_))));
        faults.clear();
        assert!(put(&store, b"3").is_ok());
    }

    #[test]
    fn fails_reads_on_demand() {
        let store = FailingStore::new(MemoryStore::new(&["t"]));
        store.faults().fail_reads(true);
        assert!(matches!(store.get("t", b"k"), Err(StoreError::Injected { .. })));
        assert!(matches!(store.scan("t", ScanRange::all(), 1), Err(StoreError::Injected { .. })));
        assert!(matches!(store.multi_get("t", &[]), Err(StoreError::Injected { .. })));
        assert!(put(&store, b"k").is_ok());
        store.faults().fail_reads(false);
        assert!(matches!(store.get("t", b"k"), Ok(Some(_))));
    }
}
