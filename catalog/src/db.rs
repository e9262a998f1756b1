//! The catalog's tables on the [`KvStore`] and typed access to them.
//!
//! Objects are stored as their `exchange.v1` protobuf encoding: the contract is versioned and
//! its encodings are stable, so the stored form is the published form. Every request is
//! parsed and checked before anything is written; a mutation and the access-log entry that
//! records it are written in one atomic batch.

use std::sync::Arc;

use exchange_store::keys::{KeyBuilder, decode_u64, encode_u64};
use exchange_store::{Durability, KvStore, ScanRange, WriteBatch};
use prost::Message;

use crate::error::{CatalogError, Result};

/// Members by department id.
pub const MEMBERS: &str = "members";
/// Schema versions by name and version.
pub const SCHEMAS: &str = "schemas";
/// Datasets by id.
pub const DATASETS: &str = "datasets";
/// Grants by id.
pub const GRANTS: &str = "grants";
/// Consents by id.
pub const CONSENTS: &str = "consents";
/// Counters and the signed configuration.
pub const META: &str = "meta";
/// Log leaves by index.
pub const LOG_LEAVES: &str = "log_leaves";
/// Merkle stored hashes by stored-hash index.
pub const LOG_HASHES: &str = "log_hashes";
/// Next expected sequence number by recorder.
pub const LOG_CURSORS: &str = "log_cursors";
/// Secondary indexes of the log for audit queries.
pub const LOG_INDEX: &str = "log_index";

/// Every table of the catalog.
pub const TABLES: &[&str] =
    &[MEMBERS, SCHEMAS, DATASETS, GRANTS, CONSENTS, META, LOG_LEAVES, LOG_HASHES, LOG_CURSORS, LOG_INDEX];

/// Meta key: the version of the last federation configuration.
pub const META_CONFIG_VERSION: &[u8] = b"config/version";
/// Meta key: the last signed federation configuration.
pub const META_CONFIG: &[u8] = b"config/signed";
/// 1 while a committed change that affects the federation configuration is not yet
/// published: written in the change's own batch, cleared in the publication's.
pub const META_CONFIG_PENDING: &[u8] = b"config/pending";
/// Meta key: the next grant number.
pub const META_NEXT_GRANT: &[u8] = b"grant/next";
/// Meta key: the log's tree size.
pub const META_LOG_SIZE: &[u8] = b"log/size";
/// Meta key: how many entries, from the first, the (recorder, sequence) index covers.
pub const META_LOG_SEQ_INDEXED: &[u8] = b"log/seq_indexed";

/// Typed access to the catalog's tables (blocking: call from `spawn_blocking`).
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn KvStore>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

/// The key of a schema version.
pub fn schema_key(name: &str, version: u32) -> Vec<u8> {
    KeyBuilder::new().str(name).u64(u64::from(version)).build()
}

/// The key prefix of all versions of a schema.
pub fn schema_prefix(name: &str) -> Vec<u8> {
    KeyBuilder::new().str(name).build()
}

impl Db {
    /// Wraps a store holding [`TABLES`].
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    /// Reads and decodes one message.
    pub fn get<M: Message + Default>(&self, table: &str, key: &[u8]) -> Result<Option<M>> {
        match self.store.get(table, key)? {
            Some(bytes) => Ok(Some(M::decode(bytes.as_slice())?)),
            None => Ok(None),
        }
    }

    /// Reads and decodes up to `limit` messages of a range.
    pub fn scan<M: Message + Default>(&self, table: &str, range: ScanRange, limit: usize) -> Result<Vec<(Vec<u8>, M)>> {
        self.store.scan(table, range, limit)?.into_iter().map(|(k, v)| Ok((k, M::decode(v.as_slice())?))).collect()
    }

    /// Reads every message of a table (the catalog's administrative tables are small).
    pub fn all<M: Message + Default>(&self, table: &str) -> Result<Vec<M>> {
        let mut out = Vec::new();
        let mut range = ScanRange::all();
        loop {
            let page = self.store.scan(table, range.clone(), 1000)?;
            let done = page.len() < 1000;
            let last = page.last().map(|(k, _)| k.clone());
            for (_, v) in page {
                out.push(M::decode(v.as_slice())?);
            }
            match (done, last) {
                (false, Some(last)) => range = ScanRange::all().after(last),
                _ => return Ok(out),
            }
        }
    }

    /// Reads a u64 from the meta table (0 when absent).
    pub fn meta_u64(&self, key: &[u8]) -> Result<u64> {
        match self.store.get(META, key)? {
            Some(bytes) => decode_u64(&bytes).map_err(|e| CatalogError::Internal(format!("meta value: {e}"))),
            None => Ok(0),
        }
    }

    /// Writes a batch durably.
    pub fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.store.write(batch, Durability::Sync)?;
        Ok(())
    }
}

/// Adds a message put to a batch.
pub fn put_msg<M: Message>(batch: &mut WriteBatch, table: &str, key: impl Into<Vec<u8>>, msg: &M) {
    batch.put(table, key, msg.encode_to_vec());
}

/// Adds a u64 meta put to a batch.
pub fn put_meta_u64(batch: &mut WriteBatch, key: &[u8], value: u64) {
    batch.put(META, key.to_vec(), encode_u64(value).to_vec());
}
