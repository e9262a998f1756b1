//! Provider-side data management: import (all or nothing, crash-safe), licence changes,
//! record upserts, and the node's own catalog.
//!
//! Import protocol: validated rows are staged under a fresh import token in bounded chunks
//! (never the whole file in memory); at the end a commit marker is written durably; then the
//! staged rows are applied to the live tables in chunks, each chunk deleting its staging rows
//! in the same atomic batch; finally the marker is deleted. At start-up an import with a
//! marker is finished (redo) and staging rows without a marker are discarded. The first
//! invalid row refuses the whole import and its staging rows are deleted.

use std::collections::{BTreeMap, HashMap};

use exchange_core::calendar::{date_cst, standing};
use exchange_core::ident::{Date, LicenceId, SubjectId};
use exchange_core::schema::{RawRecord, Schema};
use exchange_proto::v1::{
    DatasetKind, DescribeDatasetsResponse, ImportRequest, ImportSummary, IssueLicenceRequest, LicenceChange,
    LicenceStatus, LogStatus, ReasonCode, RecordChange, RevokeLicenceRequest, UpdateLicenceRequest,
    UpsertRecordRequest, import_request,
};
use exchange_store::keys::KeyBuilder;
use exchange_store::{Durability, ScanRange, WriteBatch};
use futures::{Stream, StreamExt as _};

use crate::db::{
    DatasetStats, Db, HOLDERS, ImportMarker, LICENCES, META, META_IMPORT_PREFIX, RECORDS, STAGING, StagedRow,
    StoredLicence, StoredRecord, StoredStatus, holder_key, keep_superseded, licence_key, put_json, record_key,
    stats_key,
};
use crate::error::{NodeError, Result};
use crate::fedconfig::now_ms;
use crate::query::project::{licence_status, status};
use crate::service::{Node, commit_change, run_blocking, subject_proto};

/// Rows per staging or apply chunk.
const CHUNK: usize = 1000;

/// Counts of an apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// New.
    pub inserted: u64,
    /// Changed (new version).
    pub updated: u64,
    /// Identical.
    pub unchanged: u64,
}

fn marker_key(token: &str) -> Vec<u8> {
    let mut k = META_IMPORT_PREFIX.to_vec();
    k.extend_from_slice(token.as_bytes());
    k
}

fn invalid_row(line: u64, field: &str, rule: impl std::fmt::Display) -> NodeError {
    NodeError::Invalid {
        field: format!("line {line}: field {field}"),
        message: format!("{rule}; nothing of the import was kept"),
        reason: ReasonCode::RecordInvalid,
    }
}

fn check_date(field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    Date::parse(value).map(|d| d.to_string()).map_err(|e| NodeError::bad_request(field, e.to_string()))
}

/// Validates one row of a dataset: fields against the schema, the key and the subject.
fn validate_row(
    schema: &Schema,
    licences: bool,
    fields: &RawRecord,
    valid_from: &str,
    valid_until: &str,
) -> std::result::Result<StagedRow, (String, String)> {
    let record = schema.validate(fields).map_err(|e| (e.field.clone(), e.problem.to_string()))?;
    let subject_field = schema.holder_field.clone().unwrap_or_else(|| schema.key_field.clone());
    let subject = schema
        .subject(&record)
        .ok_or_else(|| (subject_field.clone(), "must hold a resident ID or credit code".to_string()))?;
    let licence_id = if licences {
        let key = record.get(&schema.key_field).unwrap_or("");
        LicenceId::parse(key)
            .map_err(|e| (schema.key_field.clone(), format!("is not a valid licence number: {e}")))?
            .to_string()
    } else {
        String::new()
    };
    let valid_from = check_date("valid_from", valid_from).map_err(|e| ("valid_from".to_string(), e.to_string()))?;
    let valid_until = check_date("valid_until", valid_until).map_err(|e| ("valid_until".to_string(), e.to_string()))?;
    Ok(StagedRow {
        licence_id,
        subject_kind: subject.kind(),
        subject_id: subject.as_str().to_string(),
        fields: record.into_inner(),
        valid_from,
        valid_until,
    })
}

/// The live key of each row (licence or record), computed once per row.
fn row_keys(dataset: &str, licences: bool, rows: &[StagedRow]) -> Result<Vec<Vec<u8>>> {
    rows.iter()
        .map(|row| {
            if licences {
                Ok(licence_key(dataset, &row.licence_id))
            } else {
                let subject = SubjectId::parse(row.subject_kind, &row.subject_id)
                    .map_err(|e| NodeError::Internal(format!("staged subject: {e}")))?;
                Ok(record_key(dataset, &subject))
            }
        })
        .collect()
}

/// The current value of a row: the one written earlier in this batch (a key twice in one
/// chunk), else the one the store held before the batch (read for the whole chunk at once).
fn current_row<T: Clone + serde::de::DeserializeOwned>(
    pending: &HashMap<Vec<u8>, T>,
    key: &[u8],
    stored: Option<Vec<u8>>,
) -> Result<Option<T>> {
    match pending.get(key) {
        Some(row) => Ok(Some(row.clone())),
        None => Ok(stored.map(|bytes| serde_json::from_slice(&bytes)).transpose()?),
    }
}

/// Applies rows to the live tables in one batch (the caller holds the writer lock). The
/// current rows are read in one `multi_get` for the chunk, not one read per row.
fn apply_rows(db: &Db, dataset: &str, licences: bool, rows: &[StagedRow], batch: &mut WriteBatch) -> Result<Applied> {
    let now = now_ms();
    let mut counts = Applied::default();
    let mut stats = db.stats(dataset)?;
    let mut pending_l: HashMap<Vec<u8>, StoredLicence> = HashMap::new();
    let mut pending_r: HashMap<Vec<u8>, StoredRecord> = HashMap::new();
    let keys = row_keys(dataset, licences, rows)?;
    let stored = db.store().multi_get(if licences { LICENCES } else { RECORDS }, &keys)?;
    for ((row, key), stored) in rows.iter().zip(keys).zip(stored) {
        if licences {
            let current = current_row(&pending_l, &key, stored)?;
            let next = match current {
                None => {
                    counts.inserted += 1;
                    stats.count += 1;
                    StoredLicence {
                        holder_kind: row.subject_kind,
                        holder_id: row.subject_id.clone(),
                        version: 1,
                        status: StoredStatus::Valid,
                        valid_from: row.valid_from.clone(),
                        valid_until: row.valid_until.clone(),
                        fields: row.fields.clone(),
                        updated_at_ms: now,
                    }
                }
                Some(cur) => {
                    if cur.fields == row.fields
                        && cur.valid_from == row.valid_from
                        && cur.valid_until == row.valid_until
                    {
                        counts.unchanged += 1;
                        continue;
                    }
                    counts.updated += 1;
                    keep_superseded(batch, LICENCES, &key, cur.version, &cur)?;
                    if cur.holder_kind != row.subject_kind || cur.holder_id != row.subject_id {
                        batch.delete(HOLDERS, holder_key(dataset, cur.holder_kind, &cur.holder_id, &row.licence_id));
                    }
                    StoredLicence {
                        holder_kind: row.subject_kind,
                        holder_id: row.subject_id.clone(),
                        version: cur.version + 1,
                        status: cur.status,
                        valid_from: row.valid_from.clone(),
                        valid_until: row.valid_until.clone(),
                        fields: row.fields.clone(),
                        updated_at_ms: now,
                    }
                }
            };
            put_json(batch, LICENCES, key.clone(), &next)?;
            batch.put(HOLDERS, holder_key(dataset, next.holder_kind, &next.holder_id, &row.licence_id), b"1".to_vec());
            pending_l.insert(key, next);
        } else {
            let current = current_row(&pending_r, &key, stored)?;
            let version = match current {
                None => {
                    counts.inserted += 1;
                    stats.count += 1;
                    1
                }
                Some(cur) if cur.fields == row.fields => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(cur) => {
                    counts.updated += 1;
                    keep_superseded(batch, RECORDS, &key, cur.version, &cur)?;
                    cur.version + 1
                }
            };
            let next = StoredRecord { version, fields: row.fields.clone(), updated_at_ms: now };
            put_json(batch, RECORDS, key.clone(), &next)?;
            pending_r.insert(key, next);
        }
    }
    if counts.inserted + counts.updated > 0 {
        stats.last_updated_ms = now;
        put_json(batch, META, stats_key(dataset), &stats)?;
    }
    Ok(counts)
}

/// Applies a committed import's staged rows, chunk by chunk, then deletes its marker.
pub fn apply_import(db: &Db, writer: &std::sync::Mutex<()>, token: &str, marker: &ImportMarker) -> Result<Applied> {
    let prefix = KeyBuilder::new().str(token).build();
    let mut total = Applied::default();
    // Each page resumes after the last key of the one before: rescanning from the prefix
    // would walk over every tombstone this loop leaves, quadratic in the import's size.
    let mut resume = prefix.clone();
    loop {
        let page = db.store().scan(STAGING, ScanRange::prefix(&prefix).start(&resume), CHUNK)?;
        let Some((last, _)) = page.last() else { break };
        resume = next_key(last);
        let mut rows = Vec::with_capacity(page.len());
        let mut batch = WriteBatch::with_capacity(page.len() * 3);
        for (k, v) in page {
            rows.push(serde_json::from_slice::<StagedRow>(&v)?);
            batch.delete(STAGING, k);
        }
        let _w = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = apply_rows(db, &marker.dataset, marker.licences, &rows, &mut batch)?;
        // Not synced: the marker is durable, each chunk deletes its staging rows in the same
        // atomic batch, and the store never reorders writes, so a crash loses at most the
        // last chunks together with their deletions, and the redo at start-up applies them
        // again. The marker's deletion below is synced, and with it every chunk before it.
        db.store().write(batch, Durability::Buffered)?;
        total.inserted += c.inserted;
        total.updated += c.updated;
        total.unchanged += c.unchanged;
    }
    let mut batch = WriteBatch::new();
    batch.delete(META, marker_key(token));
    db.commit(batch)?;
    Ok(total)
}

/// The smallest key after `key`.
fn next_key(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

fn discard_staging(db: &Db, prefix: &[u8]) -> Result<()> {
    let mut resume = prefix.to_vec();
    loop {
        let page = db.store().scan(STAGING, ScanRange::prefix(prefix).start(&resume), CHUNK)?;
        let Some((last, _)) = page.last() else { return Ok(()) };
        resume = next_key(last);
        let mut batch = WriteBatch::with_capacity(page.len());
        for (k, _) in page {
            batch.delete(STAGING, k);
        }
        db.store().write(batch, Durability::Buffered)?;
    }
}

/// At start-up: finishes committed imports and discards uncommitted staging.
pub fn recover_imports(db: &Db, writer: &std::sync::Mutex<()>) -> Result<()> {
    let markers = db.store().scan(META, ScanRange::prefix(META_IMPORT_PREFIX), 1000)?;
    for (k, v) in markers {
        let token = String::from_utf8_lossy(&k[META_IMPORT_PREFIX.len()..]).to_string();
        let marker: ImportMarker = serde_json::from_slice(&v)?;
        let applied = apply_import(db, writer, &token, &marker)?;
        tracing::info!(dataset = %marker.dataset, inserted = applied.inserted, updated = applied.updated, "interrupted import finished");
    }
    discard_staging(db, &[])?;
    Ok(())
}

impl Node {
    fn own_dataset(&self, field: &str, dataset: &str) -> Result<(bool, std::sync::Arc<Schema>)> {
        let d = self.datasets.get(dataset).ok_or_else(|| NodeError::Invalid {
            field: field.into(),
            message: format!("dataset {dataset} is not served by node {}", self.dept),
            reason: ReasonCode::UnknownDataset,
        })?;
        let snap = self.fed.current().ok_or_else(|| NodeError::Unavailable {
            reason: ReasonCode::ConfigStale,
            message: "no federation configuration yet: the schemas are not known".into(),
        })?;
        let schema = snap.schemas.get(&d.schema).cloned().ok_or_else(|| NodeError::Precondition {
            reason: ReasonCode::InvalidState,
            message: format!("schema {} is not in the federation configuration", d.schema),
        })?;
        Ok((d.kind == DatasetKind::Licence as i32, schema))
    }

    /// Imports a stream of records (own department only).
    pub async fn import<S>(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        mut stream: S,
    ) -> Result<ImportSummary>
    where
        S: Stream<Item = std::result::Result<ImportRequest, String>> + Unpin,
    {
        self.require_own(peer, "import", "").await?;
        let header = match stream.next().await {
            Some(Ok(ImportRequest { part: Some(import_request::Part::Header(h)) })) => h,
            Some(Err(e)) => return Err(NodeError::bad_request("header", format!("stream failed: {e}"))),
            _ => return Err(NodeError::bad_request("header", "the first message of an import must be its header")),
        };
        let (licences, schema) = self.own_dataset("header.dataset", &header.dataset)?;
        let _one = self.import_lock.lock().await;
        let token = {
            use rand::RngCore as _;
            let mut b = [0u8; 16];
            rand::rng().fill_bytes(&mut b);
            hex::encode(b)
        };
        let prefix = KeyBuilder::new().str(&token).build();
        let mut read: u64 = 0;
        let outcome: Result<()> = async {
            while let Some(msg) = stream.next().await {
                let chunk = match msg {
                    Ok(ImportRequest { part: Some(import_request::Part::Chunk(c)) }) => c,
                    Ok(_) => return Err(NodeError::bad_request("chunk", "only one header, then chunks")),
                    Err(e) => return Err(NodeError::bad_request("chunk", format!("stream failed: {e}"))),
                };
                let db = self.db.clone();
                let schema = schema.clone();
                let token = token.clone();
                let first = read;
                read += chunk.records.len() as u64;
                run_blocking(move || {
                    let mut batch = WriteBatch::with_capacity(chunk.records.len());
                    for (i, r) in chunk.records.into_iter().enumerate() {
                        let line = if r.line == 0 { first + i as u64 + 1 } else { r.line };
                        let fields: BTreeMap<String, String> = r.fields.into_iter().collect();
                        let row = validate_row(&schema, licences, &fields, &r.valid_from, &r.valid_until)
                            .map_err(|(field, rule)| invalid_row(line, &field, rule))?;
                        put_json(
                            &mut batch,
                            STAGING,
                            KeyBuilder::new().str(&token).u64(first + i as u64).build(),
                            &row,
                        )?;
                    }
                    db.store().write(batch, Durability::Buffered)?;
                    Ok(())
                })
                .await?;
            }
            Ok(())
        }
        .await;
        let db = self.db.clone();
        if let Err(err) = outcome {
            let p = prefix.clone();
            if let Err(e) = run_blocking(move || discard_staging(&db, &p)).await {
                tracing::warn!(error = %e, "refused import's staging not discarded (start-up will)");
            }
            return Err(err);
        }
        let marker = ImportMarker { dataset: header.dataset.clone(), licences };
        let node_writer = self.writer_handle();
        // The commit marker is the import's commit point: its DATA_CHANGE entry is written in
        // the same batch, so that an import is kept (and redone after a crash) only with it.
        let log = self.log.clone();
        let event = self.change_event(&header.dataset, "import", None, format!("import: {read} records read"));
        let applied = run_blocking(move || {
            let mut batch = WriteBatch::new();
            put_json(&mut batch, META, marker_key(&token), &marker)?;
            if let Err(err) = commit_change(&log, batch, event) {
                if let Err(e) = discard_staging(&db, &prefix) {
                    tracing::warn!(error = %e, "refused import's staging not discarded (start-up will)");
                }
                return Err(err);
            }
            apply_import(&db, &node_writer, &token, &marker)
        })
        .await?;
        tracing::info!(dataset = %header.dataset, read, inserted = applied.inserted, updated = applied.updated, "import committed");
        if applied.inserted + applied.updated > 0 {
            self.datasets_changed.notify_one();
        }
        Ok(ImportSummary {
            dataset: header.dataset,
            records_read: read,
            inserted: applied.inserted,
            updated: applied.updated,
            unchanged: applied.unchanged,
        })
    }

    fn writer_handle(&self) -> std::sync::Arc<std::sync::Mutex<()>> {
        self.writer.clone()
    }

    /// The schema of one of the caller's own datasets, which must hold licences (`licences`)
    /// or base records: the start of every provider-side change.
    async fn own_changeable(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        method: &'static str,
        dataset: &str,
        licences: bool,
    ) -> Result<std::sync::Arc<Schema>> {
        self.require_own(peer, method, dataset).await?;
        let (holds_licences, schema) = self.own_dataset("dataset", dataset)?;
        match (licences, holds_licences) {
            (true, false) => Err(NodeError::bad_request("dataset", "holds base records: use UpsertRecord")),
            (false, true) => {
                Err(NodeError::bad_request("dataset", "holds licences: use IssueLicence or UpdateLicence"))
            }
            _ => Ok(schema),
        }
    }

    /// A whole licence or record checked against its schema, ready to store.
    fn changed_row(
        schema: &Schema,
        licences: bool,
        fields: HashMap<String, String>,
        valid_from: &str,
        valid_until: &str,
    ) -> Result<StagedRow> {
        let fields: BTreeMap<String, String> = fields.into_iter().collect();
        validate_row(schema, licences, &fields, valid_from, valid_until).map_err(|(f, rule)| NodeError::Invalid {
            field: format!("fields.{f}"),
            message: rule,
            reason: ReasonCode::RecordInvalid,
        })
    }

    /// Issues a licence (version 1). Every change below is committed with its DATA_CHANGE
    /// entry, then signals the watcher to republish the dataset's statistics.
    pub async fn issue_licence(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        r: IssueLicenceRequest,
    ) -> Result<LicenceChange> {
        let schema = self.own_changeable(peer, "issue_licence", &r.dataset, true).await?;
        let row = Self::changed_row(&schema, true, r.fields, &r.valid_from, &r.valid_until)?;
        let db = self.db.clone();
        let writer = self.writer_handle();
        let dataset = r.dataset;
        let log = self.log.clone();
        let mut event = self.change_event(&dataset, "issue_licence", None, String::new());
        run_blocking(move || {
            let _w = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if db.get_json::<StoredLicence>(LICENCES, &licence_key(&dataset, &row.licence_id))?.is_some() {
                return Err(NodeError::AlreadyExists(format!(
                    "licence {} already exists: update it instead",
                    row.licence_id
                )));
            }
            let mut batch = WriteBatch::new();
            apply_rows(&db, &dataset, true, std::slice::from_ref(&row), &mut batch)?;
            event.record_versions = vec![1];
            commit_change(&log, batch, event)?;
            Ok(LicenceChange {
                licence_id: row.licence_id,
                version: 1,
                status: status_of(&row.valid_from, &row.valid_until) as i32,
            })
        })
        .await
        .inspect(|_| self.datasets_changed.notify_one())
    }

    /// Updates a licence (a new version).
    pub async fn update_licence(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        r: UpdateLicenceRequest,
    ) -> Result<LicenceChange> {
        let schema = self.own_changeable(peer, "update_licence", &r.dataset, true).await?;
        let id = LicenceId::parse(&r.licence_id).map_err(|e| NodeError::bad_ident("licence_id", e))?;
        let row = Self::changed_row(&schema, true, r.fields, &r.valid_from, &r.valid_until)?;
        if row.licence_id != id.as_str() {
            return Err(NodeError::bad_request(format!("fields.{}", schema.key_field), "must equal licence_id"));
        }
        let db = self.db.clone();
        let writer = self.writer_handle();
        let dataset = r.dataset;
        let expected = r.expected_version;
        let log = self.log.clone();
        let mut event = self.change_event(&dataset, "update_licence", None, String::new());
        run_blocking(move || {
            let _w = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cur = db
                .get_json::<StoredLicence>(LICENCES, &licence_key(&dataset, id.as_str()))?
                .ok_or_else(|| NodeError::NotFound(format!("no licence {id} in {dataset}")))?;
            if expected != 0 && expected != cur.version {
                return Err(NodeError::Precondition {
                    reason: ReasonCode::InvalidState,
                    message: format!(
                        "licence {id} is at version {}, not {expected}: re-read it and retry",
                        cur.version
                    ),
                });
            }
            let mut batch = WriteBatch::new();
            let c = apply_rows(&db, &dataset, true, std::slice::from_ref(&row), &mut batch)?;
            let version = if c.updated > 0 { cur.version + 1 } else { cur.version };
            event.record_versions = vec![version];
            commit_change(&log, batch, event)?;
            let l = db.get_json::<StoredLicence>(LICENCES, &licence_key(&dataset, id.as_str()))?;
            let status = l.map(|l| licence_status(&l, &date_cst(now_ms()))).unwrap_or(LicenceStatus::Unspecified);
            Ok(LicenceChange { licence_id: id.to_string(), version, status: status as i32 })
        })
        .await
        .inspect(|_| self.datasets_changed.notify_one())
    }

    /// Revokes a licence (a new version with status revoked).
    pub async fn revoke_licence(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        r: RevokeLicenceRequest,
    ) -> Result<LicenceChange> {
        self.own_changeable(peer, "revoke_licence", &r.dataset, true).await?;
        let id = LicenceId::parse(&r.licence_id).map_err(|e| NodeError::bad_ident("licence_id", e))?;
        let db = self.db.clone();
        let writer = self.writer_handle();
        let dataset = r.dataset;
        let log = self.log.clone();
        let mut event = self.change_event(&dataset, "revoke_licence", None, String::new());
        run_blocking(move || {
            let _w = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = licence_key(&dataset, id.as_str());
            let mut cur = db
                .get_json::<StoredLicence>(LICENCES, &key)?
                .ok_or_else(|| NodeError::NotFound(format!("no licence {id} in {dataset}")))?;
            let mut batch = WriteBatch::new();
            if cur.status != StoredStatus::Revoked {
                keep_superseded(&mut batch, LICENCES, &key, cur.version, &cur)?;
                cur.status = StoredStatus::Revoked;
                cur.version += 1;
                cur.updated_at_ms = now_ms();
                put_json(&mut batch, LICENCES, key, &cur)?;
                let mut stats = db.stats(&dataset)?;
                stats.last_updated_ms = cur.updated_at_ms;
                put_json(&mut batch, META, stats_key(&dataset), &stats)?;
            }
            event.record_versions = vec![cur.version];
            commit_change(&log, batch, event)?;
            Ok(LicenceChange {
                licence_id: id.to_string(),
                version: cur.version,
                status: LicenceStatus::Revoked as i32,
            })
        })
        .await
        .inspect(|_| self.datasets_changed.notify_one())
    }

    /// Inserts or replaces a base record.
    pub async fn upsert_record(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
        r: UpsertRecordRequest,
    ) -> Result<RecordChange> {
        let schema = self.own_changeable(peer, "upsert_record", &r.dataset, false).await?;
        let row = Self::changed_row(&schema, false, r.fields, "", "")?;
        let subject = SubjectId::parse(row.subject_kind, &row.subject_id)
            .map_err(|e| NodeError::Internal(format!("subject: {e}")))?;
        let db = self.db.clone();
        let writer = self.writer_handle();
        let dataset = r.dataset;
        let log = self.log.clone();
        let mut event = self.change_event(&dataset, "upsert_record", Some(&subject), String::new());
        run_blocking(move || {
            let _w = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = record_key(&dataset, &subject);
            let before = db.get_json::<StoredRecord>(RECORDS, &key)?.map(|r| r.version).unwrap_or(0);
            let mut batch = WriteBatch::new();
            let c = apply_rows(&db, &dataset, false, std::slice::from_ref(&row), &mut batch)?;
            let changed = c.unchanged == 0;
            let version = if changed { before + 1 } else { before };
            if changed {
                event.record_versions = vec![version];
                commit_change(&log, batch, event)?;
            }
            Ok(RecordChange { subject: Some(subject_proto(&subject)), version, changed })
        })
        .await
        .inspect(|change| {
            if change.changed {
                self.datasets_changed.notify_one();
            }
        })
    }

    /// The node's datasets with live counts.
    pub async fn describe_datasets(
        &self,
        peer: std::result::Result<exchange_pki::PeerIdentity, String>,
    ) -> Result<DescribeDatasetsResponse> {
        self.require_member(peer).await?;
        Ok(DescribeDatasetsResponse { datasets: self.datasets_with_stats().await? })
    }

    /// The node's datasets with their statistics (also what is published to the catalog).
    pub async fn datasets_with_stats(&self) -> Result<Vec<exchange_proto::v1::Dataset>> {
        let db = self.db.clone();
        let mut datasets: Vec<exchange_proto::v1::Dataset> = self.datasets.values().cloned().collect();
        datasets.sort_by(|a, b| a.id.cmp(&b.id));
        run_blocking(move || {
            for d in &mut datasets {
                let DatasetStats { count, last_updated_ms } = db.stats(&d.id)?;
                d.record_count = count;
                d.last_updated_unix_ms = last_updated_ms;
            }
            Ok(datasets)
        })
        .await
    }

    /// The access-log shipper's state.
    pub async fn log_status(&self, peer: std::result::Result<exchange_pki::PeerIdentity, String>) -> Result<LogStatus> {
        self.require_own_or_auditor(peer).await?;
        let last_written = self.log.last_written();
        let last_shipped = self.shipper.last_shipped();
        let now = now_ms();
        Ok(LogStatus {
            last_written,
            last_shipped,
            lag: last_written.saturating_sub(last_shipped),
            last_error: self.shipper.last_error(),
            config_version: self.fed.current().map(|s| s.version).unwrap_or(0),
            config_age_ms: self.fed.age_ms(now).and_then(|a| u64::try_from(a).ok()).unwrap_or(0),
            log_syncs: self.log.syncs(),
            strangers_refused: self.strangers.total(),
        })
    }
}

/// The status of a licence just issued with this validity (valid, expired or not yet valid).
fn status_of(valid_from: &str, valid_until: &str) -> LicenceStatus {
    status(standing(false, valid_from, valid_until, &date_cst(now_ms())))
}
