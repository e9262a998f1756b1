//! [`RocksStore`]: the contract on embedded RocksDB, one column family per table.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, FlushOptions, Options,
    ReadOptions, ReadTier, WriteOptions,
};

use crate::{Durability, KeyValue, KvStore, ScanRange, StoreError, WriteBatch, WriteOp};

const MIB: usize = 1024 * 1024;

/// The resources a [`RocksStore`] may use. [`Default`] suits a department node or a small
/// catalog: about 100 MiB of memory and 256 open files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RocksConfig {
    /// Capacity of the block cache shared by all tables, which also holds the index and
    /// filter blocks (so that they do not grow outside it with the data).
    pub block_cache_bytes: usize,
    /// Total size of the memtables of all tables; reaching it flushes the largest.
    pub memtable_bytes: usize,
    /// Maximum number of files RocksDB keeps open (each holds a file descriptor and its
    /// index while open).
    pub max_open_files: i32,
    /// Number of background flush and compaction threads.
    pub background_jobs: i32,
}

impl Default for RocksConfig {
    fn default() -> Self {
        Self { block_cache_bytes: 64 * MIB, memtable_bytes: 32 * MIB, max_open_files: 256, background_jobs: 4 }
    }
}

/// A [`KvStore`] on an embedded RocksDB database, one column family per table.
///
/// A batch is one RocksDB write batch, which is atomic across column families;
/// [`Durability::Sync`] fsyncs the write-ahead log before returning.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    location: String,
    /// The tables declared at open (there may be more column families in the directory).
    tables: BTreeSet<String>,
    /// Every column family open, for `flush`.
    column_families: Vec<String>,
    sync_write: WriteOptions,
    buffered_write: WriteOptions,
    /// Reads that answer from the memtables and the block cache only (`get_cached`).
    cached_read: ReadOptions,
}

impl RocksStore {
    /// Opens the store in directory `path` with [`RocksConfig::default`], creating the
    /// directory and any missing table.
    pub fn open(path: impl AsRef<Path>, tables: &[&str]) -> Result<Self, StoreError> {
        Self::open_with(path, tables, &RocksConfig::default())
    }

    /// Opens the store in directory `path`, creating the directory and any missing table.
    ///
    /// Column families that the directory has but `tables` does not name (written by another
    /// version of the service) are opened, as RocksDB requires, and left alone. A directory
    /// that another process holds gives [`StoreError::Locked`].
    pub fn open_with(path: impl AsRef<Path>, tables: &[&str], config: &RocksConfig) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let backend = |operation: &str, source: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
            operation: operation.to_owned(),
            location: location.clone(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|e| backend("create the store directory", Box::new(e)))?;

        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let db_options = db_options(config, &cache);
        let is_new = !path.join("CURRENT").try_exists().map_err(|e| backend("look for a database", Box::new(e)))?;
        let existing = if is_new {
            Vec::new()
        } else {
            DB::list_cf(&db_options, path).map_err(|e| backend("list the tables", Box::new(e)))?
        };

        let declared: BTreeSet<String> = tables.iter().map(|&t| t.to_owned()).collect();
        let mut column_families = declared.clone();
        column_families.extend(existing.iter().cloned());
        column_families.insert(rocksdb::DEFAULT_COLUMN_FAMILY_NAME.to_owned());
        let descriptors =
            column_families.iter().map(|name| ColumnFamilyDescriptor::new(name, table_options(config, &cache)));

        let db = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|e| {
            if is_lock_error(&e) {
                StoreError::Locked { path: path.to_owned(), source: Box::new(e) }
            } else {
                backend("open the store", Box::new(e))
            }
        })?;

        let unused: Vec<&String> = column_families
            .iter()
            .filter(|name| !declared.contains(*name) && *name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .collect();
        if !unused.is_empty() {
            tracing::info!(path = %location, ?unused, "store has tables that this version does not use");
        }
        tracing::debug!(path = %location, tables = ?declared, created = is_new, "store opened");

        let mut sync_write = WriteOptions::default();
        sync_write.set_sync(true);
        let mut buffered_write = WriteOptions::default();
        buffered_write.set_sync(false);
        let mut cached_read = ReadOptions::default();
        cached_read.set_read_tier(ReadTier::BlockCache);
        Ok(Self {
            db,
            path: path.to_owned(),
            location,
            tables: declared,
            column_families: column_families.into_iter().collect(),
            sync_write,
            buffered_write,
            cached_read,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, table: &str) -> Result<&ColumnFamily, StoreError> {
        if !self.tables.contains(table) {
            return Err(StoreError::UnknownTable(table.to_owned()));
        }
        self.db.cf_handle(table).ok_or_else(|| StoreError::UnknownTable(table.to_owned()))
    }

    fn backend(&self, operation: String, source: rocksdb::Error) -> StoreError {
        StoreError::Backend { operation, location: self.location.clone(), source: Box::new(source) }
    }
}

/// Options of the database as a whole.
fn db_options(config: &RocksConfig, cache: &Cache) -> Options {
    let mut options = table_options(config, cache);
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_open_files(config.max_open_files);
    options.set_max_background_jobs(config.background_jobs);
    // One memory budget for the memtables of all tables, however many there are.
    options.set_db_write_buffer_size(config.memtable_bytes);
    // With several column families, a rarely written one keeps old WAL files alive until it
    // is flushed; this bounds the WAL (and so recovery time) by forcing that flush.
    options.set_max_total_wal_size(256 * MIB as u64);
    // Write back data in steady 1 MiB steps rather than in bursts at each fsync.
    options.set_bytes_per_sync(MIB as u64);
    options.set_wal_bytes_per_sync(MIB as u64);
    // RocksDB's own LOG files: bounded.
    options.set_keep_log_file_num(5);
    options.set_max_log_file_size(16 * MIB);
    options
}

/// Options of each table (column family).
fn table_options(config: &RocksConfig, cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_cache_index_and_filter_blocks(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Full-key bloom filter: a `get` of an absent key (a licence not found, a Merkle node
    // not yet written) usually reads no data block.
    block.set_bloom_filter(10.0, false);

    let mut options = Options::default();
    options.set_block_based_table_factory(&block);
    options.set_write_buffer_size(config.memtable_bytes.min(16 * MIB));
    // LZ4 for the upper levels (cheap to write and read), Zstandard for the last level,
    // which holds most of the data and is rewritten least.
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_bottommost_compression_type(DBCompressionType::Zstd);
    options
}

fn is_lock_error(error: &rocksdb::Error) -> bool {
    // RocksDB's POSIX file system reports "While lock file: <dir>/LOCK: Resource temporarily
    // unavailable" when another process holds the lock, and "lock hold by current process"
    // when this one does.
    let message = error.as_ref();
    message.contains("While lock file") || message.contains("lock hold by current process")
}

impl KvStore for RocksStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.cf(table)?;
        if key.is_empty() {
            return Ok(None);
        }
        self.db.get_cf(cf, key).map_err(|e| self.backend(format!("read table `{table}`"), e))
    }

    fn get_cached(&self, table: &str, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let cf = self.cf(table)?;
        if key.is_empty() {
            return Ok(Some(None));
        }
        match self.db.get_pinned_cf_opt(cf, key, &self.cached_read) {
            Ok(value) => Ok(Some(value.map(|v| v.to_vec()))),
            // RocksDB's answer when a block the read needs is not in the cache.
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(self.backend(format!("read table `{table}` from the cache"), e)),
        }
    }

    fn multi_get(&self, table: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = self.cf(table)?;
        self.db
            .batched_multi_get_cf(cf, keys, false)
            .into_iter()
            .zip(keys)
            .map(|(value, key)| match value {
                // The empty key is never stored (writes refuse it).
                Ok(_) if key.is_empty() => Ok(None),
                Ok(value) => Ok(value.map(|v| v.to_vec())),
                Err(e) => Err(self.backend(format!("read {} keys of table `{table}`", keys.len()), e)),
            })
            .collect()
    }

    fn scan(&self, table: &str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        let cf = self.cf(table)?;
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut options = ReadOptions::default();
        if !range.lower().is_empty() {
            options.set_iterate_lower_bound(range.lower());
        }
        if let Some(upper) = range.upper() {
            options.set_iterate_upper_bound(upper);
        }
        let mut iter = self.db.raw_iterator_cf_opt(cf, options);
        if range.is_reverse() {
            iter.seek_to_last();
        } else {
            iter.seek_to_first();
        }
        let mut pairs = Vec::with_capacity(limit.min(1024));
        while pairs.len() < limit {
            let Some((key, value)) = iter.item() else { break };
            pairs.push((key.to_vec(), value.to_vec()));
            if range.is_reverse() {
                iter.prev();
            } else {
                iter.next();
            }
        }
        // An iterator stops early, invalid, on an I/O error or corruption: tell it apart from
        // the end of the range.
        iter.status().map_err(|e| self.backend(format!("scan table `{table}`"), e))?;
        Ok(pairs)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.validate(|table| self.tables.contains(table))?;
        let count = batch.len();
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch {
            match op {
                WriteOp::Put { table, key, value } => rocks_batch.put_cf(self.cf(&table)?, key, value),
                WriteOp::Delete { table, key } => rocks_batch.delete_cf(self.cf(&table)?, key),
            }
        }
        let options = match durability {
            Durability::Sync => &self.sync_write,
            Durability::Buffered => &self.buffered_write,
        };
        self.db.write_opt(rocks_batch, options).map_err(|e| self.backend(format!("write a batch of {count}"), e))
    }

    fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(|e| self.backend("sync the write-ahead log".to_owned(), e))
    }

    fn flush(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = self.column_families.iter().filter_map(|name| self.db.cf_handle(name)).collect();
        self.db
            .flush_cfs_opt(&cfs, &FlushOptions::default())
            .map_err(|e| self.backend("flush the memtables".to_owned(), e))
    }

    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        let operation = format!("make a checkpoint in {}", dir.display());
        // RocksDB refuses an existing directory itself; checking first gives the reason in
        // words, and makes sure that the cleanup below never removes what was already there.
        if dir.symlink_metadata().is_ok() {
            return Err(StoreError::Backend {
                operation,
                location: self.location.clone(),
                source: "the checkpoint directory already exists: name a new one".into(),
            });
        }
        // A checkpoint flushes the memtables, then links the immutable table files and
        // copies the manifest, as of one sequence number, without stopping writers. RocksDB
        // builds it in `<dir>.tmp` and renames it at the end (and removes the temporary
        // directory on failure), so a failure leaves no `dir` that looks like a copy.
        let made = rocksdb::checkpoint::Checkpoint::new(&self.db).and_then(|c| c.create_checkpoint(dir));
        if let Err(e) = made {
            return Err(self.backend(operation, e));
        }
        tracing::info!(path = %self.location, checkpoint = %dir.display(), "checkpoint made");
        Ok(())
    }
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.path).field("tables", &self.tables).finish_non_exhaustive()
    }
}
