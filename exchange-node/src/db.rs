//! The node's tables on the [`KvStore`] and typed access to them (blocking: call from
//! `spawn_blocking` / [`exchange_store::blocking`]).
//!
//! Stored forms: records, licences and import staging rows are JSON (serde) of the types
//! below, so that an operator can read them with generic tools; access-log entries are the
//! protobuf encoding of `exchange.v1.AccessEvent` exactly as shipped to the catalog; the
//! cached federation configuration is the signed protobuf as received (verified again on
//! load).
//!
//! Keys (see [`KeyBuilder`]): records `dataset / kind / subject id`; licences
//! `dataset / licence id`; holder index `dataset / kind / holder id / licence id`; access log
//! `seq` (big-endian u64); staging `import token / line`.

use std::collections::BTreeMap;
use std::sync::Arc;

use exchange_core::ident::{SubjectId, SubjectKind};
use exchange_store::keys::{KeyBuilder, decode_u64, encode_u64};
use exchange_store::{Durability, KvStore, ScanRange, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::error::{NodeError, Result};

/// Base records by dataset and subject.
pub const RECORDS: &str = "records";
/// Licences by dataset and number.
pub const LICENCES: &str = "licences";
/// Licence numbers by dataset and holder.
pub const HOLDERS: &str = "holders";
/// The local access log by sequence.
pub const ACCESS_LOG: &str = "access_log";
/// Counters, cached configuration, digest key, import markers.
pub const META: &str = "meta";
/// Validated import rows waiting for their commit marker.
pub const STAGING: &str = "staging";
/// Superseded versions of licences and records, by table, key and version: an answer names
/// the version it came from, and a decision can be replayed against exactly that version.
pub const HISTORY: &str = "history";

/// Every table of the node.
pub const TABLES: &[&str] = &[RECORDS, LICENCES, HOLDERS, ACCESS_LOG, META, STAGING, HISTORY];

/// Meta key: last sequence acknowledged by the catalog.
pub const META_LAST_SHIPPED: &[u8] = b"log/last_shipped";
/// Meta key: the cached signed federation configuration.
pub const META_CONFIG: &[u8] = b"config/signed";
/// Meta key: the subject digest key (protobuf `SubjectDigestKey`).
pub const META_DIGEST_KEY: &[u8] = b"digest/key";
/// The catalog configuration keys (32 bytes each, concatenated) that verified the cached
/// configuration: learned from verified configurations, so that a restart after the catalog
/// switched its configuration key still verifies the cache.
pub const META_CONFIG_TRUST: &[u8] = b"config/trust";
/// Meta key prefix: import commit markers, by import token.
pub const META_IMPORT_PREFIX: &[u8] = b"import/";
/// Meta key prefix: dataset statistics, by dataset.
pub const META_STATS_PREFIX: &[u8] = b"stats/";

/// A stored base record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Version, from 1; every change adds one.
    pub version: u64,
    /// Canonical field values.
    pub fields: BTreeMap<String, String>,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// Whether a licence was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredStatus {
    /// In force (subject to its validity dates).
    Valid,
    /// Revoked by the issuer.
    Revoked,
}

/// A stored licence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLicence {
    /// Holder kind.
    pub holder_kind: SubjectKind,
    /// Holder id, canonical.
    pub holder_id: String,
    /// Version.
    pub version: u64,
    /// Valid or revoked.
    pub status: StoredStatus,
    /// Validity start, `YYYY-MM-DD` or empty.
    pub valid_from: String,
    /// Validity end, or empty.
    pub valid_until: String,
    /// Canonical field values.
    pub fields: BTreeMap<String, String>,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A validated import row waiting in staging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRow {
    /// Licence number (licences) or empty (records).
    pub licence_id: String,
    /// Subject (records) or holder (licences) kind.
    pub subject_kind: SubjectKind,
    /// Subject or holder id, canonical.
    pub subject_id: String,
    /// Canonical field values.
    pub fields: BTreeMap<String, String>,
    /// Licence validity start.
    pub valid_from: String,
    /// Licence validity end.
    pub valid_until: String,
}

/// An import's commit marker: once written, the import is applied (redone after a crash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportMarker {
    /// The dataset.
    pub dataset: String,
    /// Whether it holds licences (else records).
    pub licences: bool,
}

/// Per-dataset statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Records or licences held.
    pub count: u64,
    /// Last data change, Unix ms.
    pub last_updated_ms: i64,
}

/// The key of a record.
pub fn record_key(dataset: &str, subject: &SubjectId) -> Vec<u8> {
    KeyBuilder::new().str(dataset).str(subject.kind().as_str()).str(subject.as_str()).build()
}

/// The key of a superseded version of the row at `key` of `table` (LICENCES or RECORDS).
pub fn history_key(table: &str, key: &[u8], version: u64) -> Vec<u8> {
    KeyBuilder::new().str(table).bytes(key).u64(version).build()
}

/// Keeps `old`, about to be replaced, as version `version` of the row at `key`.
pub fn keep_superseded<T: Serialize>(
    batch: &mut WriteBatch,
    table: &str,
    key: &[u8],
    version: u64,
    old: &T,
) -> Result<()> {
    let bytes = serde_json::to_vec(old).map_err(|e| NodeError::Internal(format!("encode history: {e}")))?;
    batch.put(HISTORY, history_key(table, key, version), bytes);
    Ok(())
}

/// The key of a licence.
pub fn licence_key(dataset: &str, licence_id: &str) -> Vec<u8> {
    KeyBuilder::new().str(dataset).str(licence_id).build()
}

/// The holder-index prefix of a holder.
pub fn holder_prefix(dataset: &str, kind: SubjectKind, holder_id: &str) -> Vec<u8> {
    KeyBuilder::new().str(dataset).str(kind.as_str()).str(holder_id).build()
}

/// The holder-index key of a licence.
pub fn holder_key(dataset: &str, kind: SubjectKind, holder_id: &str, licence_id: &str) -> Vec<u8> {
    KeyBuilder::raw(&holder_prefix(dataset, kind, holder_id)).str(licence_id).build()
}

/// The meta key of a dataset's statistics.
pub fn stats_key(dataset: &str) -> Vec<u8> {
    let mut k = META_STATS_PREFIX.to_vec();
    k.extend_from_slice(dataset.as_bytes());
    k
}

/// Typed access to the node's tables.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn KvStore>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
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

    /// Reads a JSON value.
    pub fn get_json<T: for<'de> Deserialize<'de>>(&self, table: &str, key: &[u8]) -> Result<Option<T>> {
        match self.store.get(table, key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Reads a JSON value only if that needs no I/O ([`KvStore::get_cached`]): `Ok(None)`
    /// when the read would wait for the disk.
    pub fn get_json_cached<T: for<'de> Deserialize<'de>>(&self, table: &str, key: &[u8]) -> Result<Option<Option<T>>> {
        match self.store.get_cached(table, key)? {
            Some(Some(bytes)) => Ok(Some(Some(serde_json::from_slice(&bytes)?))),
            Some(None) => Ok(Some(None)),
            None => Ok(None),
        }
    }

    /// Reads a u64 meta value (0 when absent).
    pub fn meta_u64(&self, key: &[u8]) -> Result<u64> {
        match self.store.get(META, key)? {
            Some(bytes) => decode_u64(&bytes).map_err(|e| NodeError::Internal(format!("meta value: {e}"))),
            None => Ok(0),
        }
    }

    /// A dataset's statistics.
    pub fn stats(&self, dataset: &str) -> Result<DatasetStats> {
        Ok(self.get_json(META, &stats_key(dataset))?.unwrap_or_default())
    }

    /// The licence numbers of a holder (bounded).
    pub fn holder_licences(&self, dataset: &str, kind: SubjectKind, holder_id: &str) -> Result<Vec<String>> {
        let prefix = holder_prefix(dataset, kind, holder_id);
        let rows = self.store.scan(HOLDERS, ScanRange::prefix(&prefix), 1000)?;
        let mut out = Vec::new();
        for (k, _) in rows {
            let mut r = exchange_store::keys::KeyReader::new(&k);
            if !r.strip(&prefix) {
                continue;
            }
            out.push(r.str().map_err(|e| NodeError::Internal(format!("holder key: {e}")))?);
        }
        Ok(out)
    }

    /// The last sequence in the access log (0 when empty).
    pub fn last_log_sequence(&self) -> Result<u64> {
        let rows = self.store.scan(ACCESS_LOG, ScanRange::all().reverse(), 1)?;
        match rows.first() {
            Some((k, _)) => decode_u64(k).map_err(|e| NodeError::Internal(format!("log key: {e}"))),
            None => Ok(0),
        }
    }

    /// Writes a batch durably.
    pub fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.store.write(batch, Durability::Sync)?;
        Ok(())
    }
}

/// Adds a JSON put to a batch.
pub fn put_json<T: Serialize>(batch: &mut WriteBatch, table: &str, key: Vec<u8>, value: &T) -> Result<()> {
    batch.put(table, key, serde_json::to_vec(value)?);
    Ok(())
}

/// Adds a u64 meta put to a batch.
pub fn put_meta_u64(batch: &mut WriteBatch, key: &[u8], value: u64) {
    batch.put(META, key.to_vec(), encode_u64(value).to_vec());
}
