//! [`MemoryStore`]: the contract on ordered maps in memory.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{Durability, KeyValue, KvStore, ScanRange, StoreError, WriteBatch, WriteOp};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// A [`KvStore`] held in memory: one ordered map per table behind a lock.
///
/// For unit tests of the services (it needs no directory and opens in no time), and as the
/// proof that the contract is not RocksDB-shaped. Nothing survives the value; [`Durability`]
/// is accepted and ignored.
pub struct MemoryStore {
    tables: RwLock<BTreeMap<String, Table>>,
}

impl MemoryStore {
    /// An empty store with the given tables.
    pub fn new(tables: &[&str]) -> Self {
        let tables = tables.iter().map(|&name| (name.to_owned(), Table::new())).collect();
        Self { tables: RwLock::new(tables) }
    }

    // A panic while the lock was held cannot have left a table half-written: a batch is
    // validated before the first change, and applying it does not panic short of running
    // out of memory. So a poisoned lock is taken over rather than propagated.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Table>> {
        self.tables.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Table>> {
        self.tables.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn table<'a>(tables: &'a BTreeMap<String, Table>, name: &str) -> Result<&'a Table, StoreError> {
    tables.get(name).ok_or_else(|| StoreError::UnknownTable(name.to_owned()))
}

impl KvStore for MemoryStore {
    fn get(&self, table_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(table(&self.read(), table_name)?.get(key).cloned())
    }

    fn get_cached(&self, table_name: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        // Everything is in memory: every read is answered.
        self.get(table_name, key).map(Some)
    }

    fn multi_get(&self, table_name: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let tables = self.read();
        let table = table(&tables, table_name)?;
        Ok(keys.iter().map(|key| table.get(key).cloned()).collect())
    }

    fn scan(&self, table_name: &str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        let tables = self.read();
        let table = table(&tables, table_name)?;
        // `BTreeMap::range` panics on an inverted range: answer an empty one here.
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let upper = range.upper().map_or(Bound::Unbounded, Bound::Excluded);
        let entries = table.range::<[u8], _>((Bound::Included(range.lower()), upper));
        let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if range.is_reverse() {
            entries.rev().take(limit).map(pair).collect()
        } else {
            entries.take(limit).map(pair).collect()
        })
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), StoreError> {
        let mut tables = self.write_lock();
        batch.validate(|name| tables.contains_key(name))?;
        for op in batch {
            match op {
                WriteOp::Put { table, key, value } => {
                    if let Some(table) = tables.get_mut(&table) {
                        table.insert(key, value);
                    }
                }
                WriteOp::Delete { table, key } => {
                    if let Some(table) = tables.get_mut(&table) {
                        table.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn sync_wal(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Backend {
            operation: format!("make a checkpoint in {}", dir.display()),
            location: "memory store".into(),
            source: "a memory store has no files to copy: only a store on disk makes checkpoints".into(),
        })
    }
}

/// Lists the tables, not their contents (which may be personal data).
impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("tables", &self.read().keys().collect::<Vec<_>>()).finish()
    }
}
