//! The central access log: an append-only RFC 9162 Merkle tree over the catalog's store.
//!
//! Leaves are the protobuf encodings of [`AccessEvent`]s, stored by index; the tree's
//! stored hashes (the Go sumdb layout of `exchange_core::merkle`) are stored by their index,
//! so that a root, an inclusion proof or a consistency proof costs O(log n) reads at any
//! size. Appends are staged into the caller's write batch, so that an administrative change
//! and the entry recording it are written atomically, and idempotent per (recorder,
//! sequence). Secondary indexes serve the audit queries.

use exchange_core::checkpoint::{Checkpoint, NoteSigner, sign_checkpoint};
use exchange_core::merkle::{
    Hash, HashReader, MerkleError, consistency_proof, hashes_to_store, inclusion_proof, leaf_hash, stored_hash_count,
    tree_root,
};
use exchange_proto::v1::{AccessEvent, LogEntry, Outcome, QueryAccessLogRequest};
use exchange_store::keys::{KeyBuilder, KeyReader, decode_u64, encode_u64};
use exchange_store::{ScanRange, WriteBatch};
use prost::Message;

use crate::db::{
    Db, LOG_CURSORS, LOG_HASHES, LOG_INDEX, LOG_LEAVES, META_LOG_SEQ_INDEXED, META_LOG_SIZE, put_meta_u64,
};
use crate::error::{CatalogError, Result};

/// Most events accepted in one append.
pub const MAX_BATCH: usize = 1000;
/// Most entries examined by one audit query page before it returns a continuation token.
const MAX_EXAMINED: usize = 20_000;

/// Reads stored hashes from the store, with the hashes of a batch being staged on top.
struct Reader<'a> {
    db: &'a Db,
    pending_start: u64,
    pending: &'a [Hash],
}

impl HashReader for Reader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        let mut out = vec![None; indexes.len()];
        let mut missing_keys = Vec::new();
        let mut missing_pos = Vec::new();
        for (pos, &index) in indexes.iter().enumerate() {
            if index >= self.pending_start {
                let offset =
                    usize::try_from(index - self.pending_start).map_err(|_| MerkleError::MissingHash { index })?;
                out[pos] = Some(*self.pending.get(offset).ok_or(MerkleError::MissingHash { index })?);
            } else {
                missing_keys.push(encode_u64(index).to_vec());
                missing_pos.push(pos);
            }
        }
        if !missing_keys.is_empty() {
            let values =
                self.db.store().multi_get(LOG_HASHES, &missing_keys).map_err(|e| MerkleError::Storage(Box::new(e)))?;
            for ((pos, value), key) in missing_pos.into_iter().zip(values).zip(&missing_keys) {
                let index = decode_u64(key).unwrap_or(0);
                let bytes = value.ok_or(MerkleError::MissingHash { index })?;
                out[pos] = Some(Hash::from_slice(&bytes).map_err(|e| MerkleError::Storage(Box::new(e)))?);
            }
        }
        out.into_iter().enumerate().map(|(i, h)| h.ok_or(MerkleError::MissingHash { index: indexes[i] })).collect()
    }
}

fn merkle_err(err: MerkleError) -> CatalogError {
    CatalogError::Internal(format!("merkle log: {err}"))
}

/// The log's committed size and its append logic. Appends are serialised by the catalog's
/// writer lock; readers use the committed size.
#[derive(Debug)]
pub struct AccessLog {
    origin: String,
    size: std::sync::atomic::AtomicU64,
}

/// An entry the log holds: its index and its leaf (the encoded event).
pub type HeldLeaf = (u64, Vec<u8>);

/// Entries staged into a batch, committed with [`AccessLog::committed`].
#[derive(Debug, Default)]
pub struct Staged {
    /// The tree size once the batch is written.
    pub new_size: u64,
    /// New cursor values per recorder.
    cursors: Vec<(String, u64)>,
}

impl AccessLog {
    /// Opens the log whose committed size is stored in the meta table.
    pub fn open(db: &Db, origin: impl Into<String>) -> Result<Self> {
        let size = db.meta_u64(META_LOG_SIZE)?;
        index_sequences(db, size)?;
        Ok(Self { origin: origin.into(), size: std::sync::atomic::AtomicU64::new(size) })
    }

    /// The leaves the log holds under `recorder`'s sequence numbers `sequences`, in their
    /// order (`None` for a number it does not hold): what a duplicate is compared with.
    pub fn held_leaves(&self, db: &Db, recorder: &str, sequences: &[u64]) -> Result<Vec<Option<HeldLeaf>>> {
        let keys: Vec<Vec<u8>> = sequences.iter().map(|s| sequence_key(recorder, *s)).collect();
        let indexes = db.store().multi_get(LOG_INDEX, &keys)?;
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            let Some(index) = index else {
                out.push(None);
                continue;
            };
            let n = decode_u64(&index).map_err(|e| CatalogError::Internal(format!("sequence index: {e}")))?;
            let leaf = db.store().get(LOG_LEAVES, &encode_u64(n))?.ok_or_else(|| {
                CatalogError::Internal(format!("the sequence index names entry {n}, which is absent"))
            })?;
            out.push(Some((n, leaf)));
        }
        Ok(out)
    }

    /// The checkpoint origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The committed tree size.
    pub fn size(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The next sequence number expected from a recorder (from 1).
    pub fn next_sequence(&self, db: &Db, recorder: &str) -> Result<u64> {
        match db.store().get(LOG_CURSORS, recorder.as_bytes())? {
            Some(v) => decode_u64(&v).map_err(|e| CatalogError::Internal(format!("log cursor: {e}"))),
            None => Ok(1),
        }
    }

    /// Stages `events` (already checked, consecutive, new) into `batch`, after the entries
    /// already staged in `staged`. The caller holds the writer lock and commits the batch,
    /// then calls [`AccessLog::committed`].
    pub fn stage(&self, db: &Db, events: &[AccessEvent], batch: &mut WriteBatch, staged: &mut Staged) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let committed = self.size();
        let start = if staged.new_size == 0 { committed } else { staged.new_size };
        // Hashes staged earlier in this batch would be needed on top: keep it simple and stage
        // all of one batch's entries in one call.
        if start != committed {
            return Err(CatalogError::Internal("log entries must be staged in one call per batch".into()));
        }
        let pending_start = stored_hash_count(committed);
        let mut pending: Vec<Hash> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let n = committed + i as u64;
            let leaf = event.encode_to_vec();
            let new = {
                let reader = Reader { db, pending_start, pending: &pending };
                hashes_to_store(n, leaf_hash(&leaf), &reader).map_err(merkle_err)?
            };
            pending.extend(new);
            batch.put(LOG_LEAVES, encode_u64(n).to_vec(), leaf);
            for key in index_keys(event, n) {
                batch.put(LOG_INDEX, key, Vec::new());
            }
            batch.put(LOG_INDEX, sequence_key(&event.recorder, event.sequence), encode_u64(n).to_vec());
            match staged.cursors.iter_mut().find(|(r, _)| *r == event.recorder) {
                Some(c) => c.1 = event.sequence + 1,
                None => staged.cursors.push((event.recorder.clone(), event.sequence + 1)),
            }
        }
        for (i, hash) in pending.iter().enumerate() {
            batch.put(LOG_HASHES, encode_u64(pending_start + i as u64).to_vec(), hash.as_bytes().to_vec());
        }
        for (recorder, next) in &staged.cursors {
            batch.put(LOG_CURSORS, recorder.as_bytes().to_vec(), encode_u64(*next).to_vec());
        }
        staged.new_size = committed + events.len() as u64;
        put_meta_u64(batch, META_LOG_SIZE, staged.new_size);
        put_meta_u64(batch, META_LOG_SEQ_INDEXED, staged.new_size);
        Ok(())
    }

    /// Publishes a staged append once its batch is durable.
    pub fn committed(&self, staged: &Staged) {
        if staged.new_size > 0 {
            self.size.store(staged.new_size, std::sync::atomic::Ordering::Release);
        }
    }

    fn reader<'a>(&self, db: &'a Db) -> Reader<'a> {
        Reader { db, pending_start: u64::MAX, pending: &[] }
    }

    /// The root of the tree of `size` entries.
    pub fn root(&self, db: &Db, size: u64) -> Result<Hash> {
        tree_root(size, &self.reader(db)).map_err(merkle_err)
    }

    /// The signed tree head at the committed size: (size, root, signed checkpoint note).
    pub fn tree_head(&self, db: &Db, signer: &NoteSigner) -> Result<(u64, Hash, String)> {
        let size = self.size();
        let root = self.root(db, size)?;
        let checkpoint = Checkpoint::new(self.origin.clone(), size, root)
            .map_err(|e| CatalogError::Internal(format!("checkpoint: {e}")))?;
        Ok((size, root, sign_checkpoint(&checkpoint, signer)))
    }

    /// Checks a requested tree size: 0 means the committed size.
    fn resolve_size(&self, size: u64, field: &str) -> Result<u64> {
        let committed = self.size();
        match size {
            0 => Ok(committed),
            s if s > committed => {
                Err(CatalogError::bad_request(field, format!("tree size {s} is beyond the log's size {committed}")))
            }
            s => Ok(s),
        }
    }

    /// An inclusion proof of entry `index` in the tree of `size` (0 = committed).
    pub fn inclusion(&self, db: &Db, index: u64, size: u64) -> Result<(u64, Vec<Hash>, LogEntry)> {
        let size = self.resolve_size(size, "tree_size")?;
        if index >= size {
            return Err(CatalogError::bad_request("index", format!("entry {index} is not in a tree of size {size}")));
        }
        let proof = inclusion_proof(index, size, &self.reader(db)).map_err(merkle_err)?;
        let entry = self.entry(db, index)?;
        Ok((size, proof, entry))
    }

    /// A consistency proof from `old_size` to `new_size` (0 = committed):
    /// `1 <= old_size <= new_size <= committed`, else INVALID_ARGUMENT.
    pub fn consistency(&self, db: &Db, old_size: u64, new_size: u64) -> Result<(u64, Vec<Hash>)> {
        if old_size == 0 {
            return Err(CatalogError::bad_request(
                "old_size",
                "must be at least 1: every log is consistent with the empty one, there is nothing to prove",
            ));
        }
        let new_size = self.resolve_size(new_size, "new_size")?;
        if old_size > new_size {
            return Err(CatalogError::bad_request(
                "old_size",
                format!("old size {old_size} is larger than new size {new_size}"),
            ));
        }
        let proof = consistency_proof(old_size, new_size, &self.reader(db)).map_err(merkle_err)?;
        Ok((new_size, proof))
    }

    /// One entry.
    pub fn entry(&self, db: &Db, index: u64) -> Result<LogEntry> {
        let leaf = db
            .store()
            .get(LOG_LEAVES, &encode_u64(index))?
            .ok_or_else(|| CatalogError::NotFound(format!("log entry {index} does not exist")))?;
        let event = AccessEvent::decode(leaf.as_slice())?;
        Ok(LogEntry { index, leaf, event: Some(event) })
    }

    /// Entries `start..start+count` that exist.
    pub fn entries(&self, db: &Db, start: u64, count: u32) -> Result<Vec<LogEntry>> {
        let size = self.size();
        let end = start.saturating_add(u64::from(count.min(1000))).min(size);
        if start >= end {
            return Ok(Vec::new());
        }
        let rows = db.store().scan(
            LOG_LEAVES,
            ScanRange::all().start(encode_u64(start)).end(encode_u64(end)),
            (end - start) as usize,
        )?;
        rows.into_iter()
            .map(|(k, leaf)| {
                let index = decode_u64(&k).map_err(|e| CatalogError::Internal(format!("leaf key: {e}")))?;
                let event = AccessEvent::decode(leaf.as_slice())?;
                Ok(LogEntry { index, leaf, event: Some(event) })
            })
            .collect()
    }

    /// An audit query: entries matching every filter set, by index, paged.
    pub fn query(
        &self,
        db: &Db,
        q: &QueryAccessLogRequest,
        visible: impl Fn(&AccessEvent) -> bool,
    ) -> Result<(Vec<LogEntry>, String)> {
        let size = self.size();
        let page_size = match q.page.as_ref().map(|p| p.page_size).unwrap_or(0) {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let after: Option<u64> = match q.page.as_ref().map(|p| p.page_token.as_str()).unwrap_or("") {
            "" => None,
            token => {
                let n: u64 = token
                    .parse()
                    .map_err(|_| CatalogError::bad_request("page.page_token", "is not a page token of this log"))?;
                // A token is the index of an entry already examined: inside the log.
                if n >= size {
                    return Err(CatalogError::bad_request(
                        "page.page_token",
                        format!("is not a page token of this log of {size} entries: start again without a token"),
                    ));
                }
                Some(n)
            }
        };
        // Choose the most selective index available.
        let index: Option<(&str, &str)> = [
            ("s", q.subject_digest.as_str()),
            ("t", q.trace_id.as_str()),
            ("d", q.dataset.as_str()),
            ("r", q.requester.as_str()),
            ("p", q.provider.as_str()),
            ("u", q.purpose_code.as_str()),
        ]
        .into_iter()
        .find(|(_, v)| !v.is_empty());

        let mut out = Vec::new();
        let mut examined = 0usize;
        let mut last_examined: Option<u64> = None;
        let mut cursor = after;
        'outer: loop {
            let candidates: Vec<u64> = match index {
                Some((tag, value)) => {
                    let prefix = KeyBuilder::new().str(tag).str(value).build();
                    let mut range = ScanRange::prefix(&prefix);
                    if let Some(c) = cursor {
                        range = range.after(KeyBuilder::raw(&prefix).u64(c).build());
                    }
                    db.store()
                        .scan(LOG_INDEX, range, 500)?
                        .into_iter()
                        .filter_map(|(k, _)| {
                            let mut r = KeyReader::new(&k);
                            r.strip(&prefix).then(|| r.u64().ok()).flatten()
                        })
                        .collect()
                }
                None => {
                    let start = cursor.map(|c| c.saturating_add(1)).unwrap_or(0);
                    (start..size.min(start.saturating_add(500))).collect()
                }
            };
            if candidates.is_empty() {
                break;
            }
            for n in candidates {
                if n >= size {
                    break 'outer;
                }
                examined += 1;
                last_examined = Some(n);
                cursor = Some(n);
                let entry = self.entry(db, n)?;
                if let Some(event) = entry.event.as_ref()
                    && matches(event, q)
                    && visible(event)
                {
                    out.push(entry);
                    if out.len() == page_size {
                        break 'outer;
                    }
                }
                if examined >= MAX_EXAMINED {
                    break 'outer;
                }
            }
        }
        let more = out.len() == page_size || examined >= MAX_EXAMINED;
        let token = match (more, last_examined) {
            (true, Some(n)) if n + 1 < size => n.to_string(),
            _ => String::new(),
        };
        Ok((out, token))
    }
}

fn matches(e: &AccessEvent, q: &QueryAccessLogRequest) -> bool {
    (q.requester.is_empty() || e.requester == q.requester)
        && (q.provider.is_empty() || e.provider == q.provider)
        && (q.dataset.is_empty() || e.dataset == q.dataset)
        && (q.purpose_code.is_empty() || e.purpose_code == q.purpose_code)
        && (q.subject_digest.is_empty() || e.subject_digest == q.subject_digest)
        && (q.trace_id.is_empty() || e.trace_id == q.trace_id)
        && (q.from_unix_ms == 0 || e.time_unix_ms >= q.from_unix_ms)
        && (q.until_unix_ms == 0 || e.time_unix_ms < q.until_unix_ms)
        && (q.outcome == Outcome::Unspecified as i32 || e.outcome == q.outcome)
}

/// The key of the index from (recorder, sequence) to the entry's index (value: the index).
/// Its tag "q" is no audit filter's, so audit queries never scan it.
fn sequence_key(recorder: &str, sequence: u64) -> Vec<u8> {
    KeyBuilder::new().str("q").str(recorder).u64(sequence).build()
}

/// Builds the (recorder, sequence) index of the entries written before it existed (a log of
/// an earlier version, or restored from its backup), from where the last run stopped.
fn index_sequences(db: &Db, size: u64) -> Result<()> {
    let mut done = db.meta_u64(META_LOG_SEQ_INDEXED)?;
    while done < size {
        let end = size.min(done + 1000);
        let rows = db.store().scan(
            LOG_LEAVES,
            ScanRange::all().start(encode_u64(done)).end(encode_u64(end)),
            (end - done) as usize,
        )?;
        let mut batch = WriteBatch::new();
        for (k, leaf) in rows {
            let n = decode_u64(&k).map_err(|e| CatalogError::Internal(format!("leaf key: {e}")))?;
            let event = AccessEvent::decode(leaf.as_slice())?;
            batch.put(LOG_INDEX, sequence_key(&event.recorder, event.sequence), encode_u64(n).to_vec());
        }
        put_meta_u64(&mut batch, META_LOG_SEQ_INDEXED, end);
        db.commit(batch)?;
        done = end;
    }
    Ok(())
}

fn index_keys(e: &AccessEvent, n: u64) -> Vec<Vec<u8>> {
    [
        ("s", &e.subject_digest),
        ("t", &e.trace_id),
        ("d", &e.dataset),
        ("r", &e.requester),
        ("p", &e.provider),
        ("u", &e.purpose_code),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(tag, v)| KeyBuilder::new().str(tag).str(v).u64(n).build())
    .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use exchange_proto::v1::EventKind;
    use exchange_store::MemoryStore;

    use super::*;
    use crate::db::TABLES;

    fn event(recorder: &str, sequence: u64) -> AccessEvent {
        AccessEvent {
            recorder: recorder.into(),
            sequence,
            kind: EventKind::Query as i32,
            trace_id: format!("t-{sequence}"),
            ..Default::default()
        }
    }

    #[test]
    fn the_sequence_index_is_rebuilt_for_a_log_written_without_it() {
        let db = Db::new(Arc::new(MemoryStore::new(TABLES)));
        let log = AccessLog::open(&db, "o").unwrap_or_else(|e| panic!("{e}"));
        let events: Vec<AccessEvent> = (1..=3).map(|s| event("gov.sz.psb", s)).collect();
        let mut batch = WriteBatch::new();
        let mut staged = Staged::default();
        log.stage(&db, &events, &mut batch, &mut staged).unwrap_or_else(|e| panic!("{e}"));
        db.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        log.committed(&staged);
        let held = |log: &AccessLog| log.held_leaves(&db, "gov.sz.psb", &[1, 3, 4]).unwrap_or_else(|e| panic!("{e}"));
        let expected = vec![Some((0, events[0].encode_to_vec())), Some((2, events[2].encode_to_vec())), None];
        assert_eq!(held(&log), expected);

        // As a log of an earlier version: no index, no marker.
        let mut batch = WriteBatch::new();
        for s in 1..=3 {
            batch.delete(LOG_INDEX, sequence_key("gov.sz.psb", s));
        }
        batch.delete(crate::db::META, META_LOG_SEQ_INDEXED.to_vec());
        db.commit(batch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held(&log), vec![None, None, None]);
        let reopened = AccessLog::open(&db, "o").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held(&reopened), expected, "opening the log rebuilt the index");
        assert_eq!(db.meta_u64(META_LOG_SEQ_INDEXED).unwrap_or_else(|e| panic!("{e}")), 3);
    }
}
