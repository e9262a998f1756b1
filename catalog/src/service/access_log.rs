//! The central access log's handlers: appends by nodes, the subject digest key, tree heads,
//! proofs, entries, audit queries and a subject's own view. Every handler that returns
//! entries shows them through the one rule of [`crate::visibility`].

use exchange_proto::v1::{
    AppendAccessLogRequest, AppendAccessLogResponse, ConsistencyProof, InclusionProof, LogEntry, QueryAccessLogRequest,
    QueryAccessLogResponse, ReasonCode, Role, SubjectAccessViewRequest,
};
use exchange_store::WriteBatch;

use super::{Caller, Catalog, subject};
use crate::error::{CatalogError, Result};
use crate::log::{MAX_BATCH, Staged, check_event};
use crate::visibility::Viewer;

impl Catalog {
    /// The subject digest key (department).
    pub fn subject_digest_key(&self, caller: &Caller) -> Result<(String, [u8; 32])> {
        caller.require(Role::Department)?;
        Ok((self.digester.key_id().to_string(), self.digest_key))
    }

    /// Appends a node's batch (department; the caller is the recorder).
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
        for (i, e) in events.iter_mut().enumerate() {
            if e.recorder.is_empty() {
                e.recorder = caller.dept.clone();
            }
            if e.recorder != caller.dept {
                return Err(CatalogError::Forbidden(format!(
                    "events[{i}].recorder is {}, but the caller is {}: a node appends only its own events",
                    e.recorder, caller.dept
                )));
            }
            check_event(e, i)?;
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
        let _w = self.lock();
        let next = self.log.next_sequence(&self.db, &caller.dept)?;
        let first_new = events.iter().position(|e| e.sequence >= next).unwrap_or(events.len());
        let duplicates = first_new;
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
        Ok(AppendAccessLogResponse {
            next_sequence: next + appended as u64,
            appended: appended as u32,
            duplicates: duplicates as u32,
            tree_size: self.log.size(),
        })
    }

    /// The signed tree head.
    pub fn tree_head(&self) -> Result<(u64, Vec<u8>, String, String)> {
        let (size, root, note) = self.log.tree_head(&self.db, &self.note_signer)?;
        Ok((size, root.as_bytes().to_vec(), note, self.log.origin().to_string()))
    }

    /// The note verifier key of the log (`<origin>+<keyid>+<key>`), for auditors.
    pub fn log_verifier_key(&self) -> String {
        self.note_signer.verifier().to_vkey()
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

    /// A consistency proof.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<ConsistencyProof> {
        let (new_size, path) = self.log.consistency(&self.db, old_size, new_size)?;
        Ok(ConsistencyProof { old_size, new_size, path: path.iter().map(|h| h.as_bytes().to_vec()).collect() })
    }

    /// Log entries by index (auditor), through the visibility rule like every read.
    pub fn log_entries(&self, caller: &Caller, start: u64, count: u32) -> Result<Vec<LogEntry>> {
        caller.require(Role::Auditor)?;
        let viewer = Viewer::of(caller);
        Ok(self.log.entries(&self.db, start, count)?.into_iter().filter_map(|e| viewer.shown(e)).collect())
    }

    /// An audit query (auditor: all; department: where it is requester or provider).
    pub fn query_access_log(&self, caller: &Caller, q: &QueryAccessLogRequest) -> Result<QueryAccessLogResponse> {
        let viewer = Viewer::of(caller);
        if viewer != Viewer::Auditor {
            caller.require(Role::Department)?;
        }
        let (entries, next) = self.log.query(&self.db, q, |e| viewer.sees(e))?;
        Ok(QueryAccessLogResponse { entries, next_page_token: next, tree_size: self.log.size() })
    }

    /// A subject's own view (portal): the entries of the subject's keyed digest, computed
    /// here from the id the portal authenticated.
    pub fn subject_access_view(&self, caller: &Caller, r: &SubjectAccessViewRequest) -> Result<QueryAccessLogResponse> {
        caller.require(Role::Portal)?;
        let s = subject("subject", r.subject.as_ref())?;
        let digest = self.subject_digest(&s);
        let viewer = Viewer::subject(digest.clone());
        let q = QueryAccessLogRequest {
            subject_digest: digest,
            from_unix_ms: r.from_unix_ms,
            page: r.page.clone(),
            ..Default::default()
        };
        let (entries, next) = self.log.query(&self.db, &q, |e| viewer.sees(e))?;
        Ok(QueryAccessLogResponse { entries, next_page_token: next, tree_size: self.log.size() })
    }
}
