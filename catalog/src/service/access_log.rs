//! The central access log's handlers: appends by nodes, the subject digest key, tree heads,
//! proofs, entries, audit queries and a subject's own view. Every handler that returns
//! entries shows them through the one rule of [`crate::visibility`].

use exchange_core::digest::sha256_hex;
use exchange_proto::v1::{
    AccessEvent, AppendAccessLogRequest, AppendAccessLogResponse, ConsistencyProof, InclusionProof, LogEntry, Outcome,
    QueryAccessLogRequest, QueryAccessLogResponse, ReasonCode, Role, SubjectAccessViewRequest,
};
use exchange_store::WriteBatch;
use prost::Message as _;

use super::validators::subject;
use super::{Caller, Catalog};
use crate::append::{check_event, check_own};
use crate::error::{CatalogError, Result};
use crate::log::{MAX_BATCH, Staged};
use crate::screen::no_identifier;
use crate::visibility::Viewer;

/// Checks every event of a batch; on refusal, the index of the refused event and why.
fn check_batch(events: &[AccessEvent], caller: &str) -> Result<(), (usize, CatalogError)> {
    for (i, e) in events.iter().enumerate() {
        check_own(e, i, caller).and_then(|()| check_event(e, i)).map_err(|err| (i, err))?;
    }
    Ok(())
}

/// The note of a logged refusal of a batch: which event and which rule, nothing of the
/// events' content (an identifier found in clear is named by field and kind only).
fn refusal_note(i: usize, n: usize, err: &CatalogError) -> Option<(ReasonCode, String)> {
    match err {
        CatalogError::ForeignEntry(_) => {
            Some((ReasonCode::ForeignEntry, format!("events[{i}] of {n}: not the caller's own entry")))
        }
        CatalogError::InvalidArgument { field, reason: ReasonCode::IdentifierInClear, .. } => {
            Some((ReasonCode::IdentifierInClear, format!("{field} of {n} events: an identifier in clear")))
        }
        _ => None,
    }
}

impl Catalog {
    /// The subject digest key: only to a department that provides a published dataset
    /// holding personal data (its node digests subject ids before they leave it). Portals
    /// never need it: the catalog digests the id in `SubjectAccessView`.
    pub fn subject_digest_key(&self, caller: &Caller) -> Result<(String, [u8; 32])> {
        caller.require(Role::Department)?;
        if !self.provides_personal_data(&caller.dept)? {
            return Err(CatalogError::Forbidden(format!(
                "the subject digest key goes only to nodes that provide personal data, and {} provides no \
                 published dataset with personal_data = true: publish the node's personal-data dataset first",
                caller.dept
            )));
        }
        Ok((self.digester.key_id().to_string(), self.digest_key))
    }

    /// Appends a node's batch (department). Every event must be the caller's own (see
    /// [`check_own`]) and free of identifiers in clear; otherwise nothing of the batch is
    /// appended, and a foreign entry or an identifier in clear is itself logged as a
    /// refusal (once per batch, however often the node retries it).
    pub fn append_access_log(&self, caller: &Caller, r: AppendAccessLogRequest) -> Result<AppendAccessLogResponse> {
        caller.require(Role::Department)?;
        if r.events.len() > MAX_BATCH {
            return Err(CatalogError::InvalidArgument {
                field: "events".into(),
                message: format!("{} events in one batch, at most {MAX_BATCH}", r.events.len()),
                reason: ReasonCode::BatchTooLarge,
            });
        }
        let mut events = r.events;
        for e in events.iter_mut().filter(|e| e.recorder.is_empty()) {
            e.recorder = caller.dept.clone();
        }
        if let Err((i, err)) = check_batch(&events, &caller.dept) {
            if let Some((reason, note)) = refusal_note(i, events.len(), &err) {
                let batch = AppendAccessLogRequest { events }.encode_to_vec();
                self.log_refused_append(caller, sha256_hex(&batch), reason, note)?;
            }
            return Err(err);
        }
        for i in 1..events.len() {
            if events[i].sequence != events[i - 1].sequence.wrapping_add(1) {
                return Err(CatalogError::bad_request(
                    format!("events[{i}].sequence"),
                    format!(
                        "is {}, expected {} (a batch holds consecutive sequence numbers)",
                        events[i].sequence,
                        events[i - 1].sequence.wrapping_add(1)
                    ),
                ));
            }
        }
        let w = self.lock();
        let next = self.log.next_sequence(&self.db, &caller.dept)?;
        let first_new = events.iter().position(|e| e.sequence >= next).unwrap_or(events.len());
        let duplicates = first_new;
        // A number already held is acknowledged only if the entry is the one held: a node
        // never writes two entries under one number, so a different one is a rewritten
        // history (or a node restored from a copy older than what it shipped).
        if let Some((i, sequence, index)) = self.first_conflict(&caller.dept, &events[..first_new])? {
            drop(w);
            let note = format!("events[{i}] of {}: sequence {sequence} differs from log entry {index}", events.len());
            self.log_refused_append(caller, format!("conflict/{sequence}"), ReasonCode::EntryConflict, note)?;
            return Err(CatalogError::precondition(
                ReasonCode::EntryConflict,
                format!(
                    "events[{i}]: the central log already holds another entry under {}'s sequence {sequence} \
                     (entry {index}): a node's history cannot be rewritten (a node restored from a backup older \
                     than what it shipped must resume after sequence {}, see the runbook)",
                    caller.dept,
                    next.saturating_sub(1)
                ),
            ));
        }
        let new = &events[first_new..];
        if let Some(first) = new.first()
            && first.sequence != next
        {
            return Err(CatalogError::precondition(
                ReasonCode::SequenceGap,
                format!(
                    "the catalog expects sequence {next} from {} next, the batch starts at {}",
                    caller.dept, first.sequence
                ),
            ));
        }
        let appended = new.len();
        if appended > 0 {
            let mut batch = WriteBatch::new();
            let mut staged = Staged::default();
            self.log.stage(&self.db, new, &mut batch, &mut staged)?;
            self.db.commit(batch)?;
            self.log.committed(&staged);
        }
        drop(w);
        Ok(AppendAccessLogResponse {
            next_sequence: next + appended as u64,
            appended: appended as u32,
            duplicates: duplicates as u32,
            tree_size: self.log.size(),
        })
    }

    /// The first of `held` (events under numbers the log already holds for `recorder`) that
    /// differs from the held entry: its position in the batch, its sequence and the index of
    /// the held entry. The caller holds the writer lock.
    fn first_conflict(&self, recorder: &str, held: &[AccessEvent]) -> Result<Option<(usize, u64, u64)>> {
        if held.is_empty() {
            return Ok(None);
        }
        let sequences: Vec<u64> = held.iter().map(|e| e.sequence).collect();
        let leaves = self.log.held_leaves(&self.db, recorder, &sequences)?;
        for (i, (event, leaf)) in held.iter().zip(leaves).enumerate() {
            let (index, leaf) = leaf.ok_or_else(|| {
                CatalogError::Internal(format!(
                    "{recorder}'s cursor is past sequence {}, which the sequence index does not hold",
                    event.sequence
                ))
            })?;
            if leaf != event.encode_to_vec() {
                return Ok(Some((i, event.sequence, index)));
            }
        }
        Ok(None)
    }

    /// Logs the refusal of a node's batch as an administrative entry, unless the refusal of
    /// the same batch (by its digest, kept in memory only) was the last one logged for this
    /// node: a node retries a refused batch with backoff, and one entry says it. A conflict
    /// is keyed by its sequence number rather than the batch, which grows as the node writes.
    fn log_refused_append(
        &self,
        caller: &Caller,
        batch_digest: String,
        reason: ReasonCode,
        note: String,
    ) -> Result<()> {
        let key = batch_digest;
        let _w = self.lock();
        {
            let last = self.refused_appends.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.get(&caller.dept) == Some(&key) {
                return Ok(());
            }
        }
        let mut event = self.admin_event(&caller.dept, "log.append.refused", "", "", &note);
        event.outcome = Outcome::Refused as i32;
        event.reason_code = reason as i32;
        self.mutate(vec![event], false, |_| Ok(()))?;
        self.refused_appends.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(caller.dept.clone(), key);
        Ok(())
    }

    /// The central log's committed size (its tree size), read without signing a head.
    pub fn log_size(&self) -> u64 {
        self.log.size()
    }

    /// The signed tree head.
    pub fn tree_head(&self) -> Result<(u64, Vec<u8>, String, String)> {
        let (size, root, note) = self.log.tree_head(&self.db, &self.signers().checkpoint)?;
        Ok((size, root.as_bytes().to_vec(), note, self.log.origin().to_string()))
    }

    /// The note verifier key of the log (`<origin>+<keyid>+<key>`), for auditors.
    pub fn log_verifier_key(&self) -> String {
        self.signers().checkpoint.verifier().to_vkey()
    }

    /// An inclusion proof: the hashes for anyone with a role that reads the log, the entry
    /// only for those who may see it.
    pub fn inclusion_proof(&self, caller: &Caller, index: u64, size: u64) -> Result<InclusionProof> {
        caller.require_any(&[Role::Auditor, Role::Portal, Role::Department])?;
        let (size, path, entry) = self.log.inclusion(&self.db, index, size)?;
        Ok(InclusionProof {
            index,
            tree_size: size,
            path: path.iter().map(|h| h.as_bytes().to_vec()).collect(),
            entry: Viewer::of(caller).shown(entry),
        })
    }

    /// A consistency proof between two sizes, `1 <= old_size <= new_size <= size`
    /// (`new_size` 0 = the committed size).
    /// With `old_root` (the root of the caller's head at `old_size`), refuses LOG_FORK when
    /// the log's own root at that size differs: no proof could link that head to this log.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64, old_root: &[u8]) -> Result<ConsistencyProof> {
        if !old_root.is_empty() && old_root.len() != 32 {
            return Err(CatalogError::bad_request("old_root", "must be empty or a 32-byte SHA-256 root"));
        }
        let (new_size, path) = self.log.consistency(&self.db, old_size, new_size)?;
        if !old_root.is_empty() {
            let root = self.log.root(&self.db, old_size)?;
            if root.as_bytes()[..] != old_root[..] {
                return Err(CatalogError::precondition(
                    ReasonCode::LogFork,
                    format!(
                        "the central log's root at size {old_size} is {}, not the root {} of the given head: that \
                         head is of a history this log does not extend (a head taken after the backup that the \
                         catalog was restored from, or a forged head)",
                        hex::encode(root.as_bytes()),
                        hex::encode(old_root)
                    ),
                ));
            }
        }
        Ok(ConsistencyProof { old_size, new_size, path: path.iter().map(|h| h.as_bytes().to_vec()).collect() })
    }

    /// Log entries by index (auditor), through the visibility rule like every read.
    pub fn log_entries(&self, caller: &Caller, start: u64, count: u32) -> Result<Vec<LogEntry>> {
        caller.require(Role::Auditor)?;
        let viewer = Viewer::of(caller);
        Ok(self.log.entries(&self.db, start, count)?.into_iter().filter_map(|e| viewer.shown(e)).collect())
    }

    /// An audit query (auditor: all; department: where it is requester or provider). The
    /// look is itself an administrative entry (who asked, with which filters), written
    /// before the page is answered; filters that would put an identifier in clear into it
    /// are refused.
    pub fn query_access_log(&self, caller: &Caller, q: &QueryAccessLogRequest) -> Result<QueryAccessLogResponse> {
        let viewer = Viewer::of(caller);
        if viewer != Viewer::Auditor {
            caller.require(Role::Department)?;
        }
        let note = query_note(q)?;
        let tree_size = self.log.size();
        let (entries, next) = self.log.query(&self.db, q, |e| viewer.sees(e))?;
        self.log_look(caller, "log.query", String::new(), note)?;
        Ok(QueryAccessLogResponse { entries, next_page_token: next, tree_size })
    }

    /// A subject's own view (portal): the entries of the subject's keyed digest, computed
    /// here from the id the portal authenticated. The look is itself an administrative entry
    /// under the subject's digest (never the id), so that the subject's next view shows it.
    pub fn subject_access_view(&self, caller: &Caller, r: &SubjectAccessViewRequest) -> Result<QueryAccessLogResponse> {
        caller.require(Role::Portal)?;
        let s = subject("subject", r.subject.as_ref())?;
        let digest = self.subject_digest(&s);
        let viewer = Viewer::subject(digest.clone());
        let q = QueryAccessLogRequest {
            subject_digest: digest.clone(),
            from_unix_ms: r.from_unix_ms,
            page: r.page.clone(),
            ..Default::default()
        };
        let tree_size = self.log.size();
        let (entries, next) = self.log.query(&self.db, &q, |e| viewer.sees(e))?;
        self.log_look(caller, "log.subject_view", digest, format!("from={}", r.from_unix_ms))?;
        Ok(QueryAccessLogResponse { entries, next_page_token: next, tree_size })
    }

    /// Records a look into the log as an administrative entry of `caller`.
    fn log_look(&self, caller: &Caller, action: &str, subject_digest: String, note: String) -> Result<()> {
        let mut event = self.admin_event(&caller.dept, action, "", "", &note);
        event.subject_digest = subject_digest;
        let _w = self.lock();
        self.mutate(vec![event], false, |_| Ok(()))
    }
}

/// The note of an audit query's entry: its filters, each screened for identifiers in clear
/// (a subject digest filter must be a digest).
fn query_note(q: &QueryAccessLogRequest) -> Result<String> {
    if !q.subject_digest.is_empty()
        && (q.subject_digest.len() != 64 || !q.subject_digest.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(CatalogError::bad_request(
            "subject_digest",
            "must be the 64-hex-digit keyed digest of a subject, never the id itself",
        ));
    }
    let mut parts = Vec::new();
    for (name, value) in [
        ("requester", &q.requester),
        ("provider", &q.provider),
        ("dataset", &q.dataset),
        ("purpose_code", &q.purpose_code),
        ("trace_id", &q.trace_id),
        ("subject_digest", &q.subject_digest),
    ] {
        if value.is_empty() {
            continue;
        }
        if value.chars().count() > 130 || value.chars().any(char::is_control) {
            return Err(CatalogError::bad_request(name, "is longer than 130 characters or holds control characters"));
        }
        if name != "subject_digest" {
            no_identifier(name, value)?;
        }
        parts.push(format!("{name}={value}"));
    }
    if q.from_unix_ms != 0 || q.until_unix_ms != 0 {
        parts.push(format!("time={}..{}", q.from_unix_ms, q.until_unix_ms));
    }
    if q.outcome != 0 {
        parts.push(format!("outcome={}", q.outcome));
    }
    if let Some(token) = q.page.as_ref().map(|p| p.page_token.as_str()).filter(|t| !t.is_empty()) {
        parts.push(format!("after={token}"));
    }
    Ok(parts.join(" "))
}
