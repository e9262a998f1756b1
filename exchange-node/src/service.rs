//! The node's state and the steps its handlers share, knowing nothing of tonic: the access
//! log entries and refusals, the versioned reads, the provider-side gates and the blocking
//! bridge. The query pipeline is [`crate::query`]; the provider-side changes are
//! [`crate::data`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ed25519_dalek::SigningKey;
use exchange_core::digest::key_id;
use exchange_core::ident::{LicenceId, SubjectId};
use exchange_core::policy::RateState;
use exchange_core::token::VerifiedConsent;
use exchange_pki::PeerIdentity;
use exchange_proto::v1::{AccessEvent, Dataset, EventKind, Outcome, ReasonCode, Role, Subject};
use exchange_store::WriteBatch;

use crate::accesslog::AccessLog;
use crate::authorize::{Caller, Strangers};
use crate::db::{Db, HISTORY, LICENCES, RECORDS, StoredLicence, StoredRecord, history_key, licence_key, record_key};
use crate::error::{NodeError, Result};
use crate::fedconfig::{FedState, now_ms};
use crate::matchlimit::MatchLimiter;
use crate::shipper::ShipperStatus;

/// The node's state and handlers.
pub struct Node {
    pub(crate) dept: String,
    pub(crate) db: Db,
    pub(crate) fed: Arc<FedState>,
    pub(crate) log: AccessLog,
    /// The answer signing key and its id, swapped whole by [`Node::switch_signing_key`].
    signer: RwLock<Arc<AnswerSigner>>,
    pub(crate) datasets: HashMap<String, Dataset>,
    max_batch: usize,
    pub(crate) rates: Mutex<HashMap<(String, String), RateState>>,
    pub(crate) tokens: Mutex<HashMap<String, (u64, VerifiedConsent)>>,
    /// The distinct values tried per requester, subject and field by `MatchRecord`.
    pub(crate) matches: MatchLimiter,
    /// Calls refused before the caller was known to be a member (counted, never logged).
    pub(crate) strangers: Strangers,
    pub(crate) writer: Arc<Mutex<()>>,
    pub(crate) import_lock: tokio::sync::Mutex<()>,
    pub(crate) shipper: Arc<ShipperStatus>,
    /// Signalled after the node's data changed (an import, a licence or record change), so
    /// that the watcher republishes record counts and update times to the catalog.
    pub(crate) datasets_changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("dept", &self.dept).finish_non_exhaustive()
    }
}

/// The proto form of a subject.
pub fn subject_proto(s: &SubjectId) -> Subject {
    exchange_proto::subject::to_proto(s)
}

/// Parses a subject of a request; `field` names it in errors.
pub fn parse_subject(field: &str, s: Option<&Subject>) -> Result<SubjectId> {
    use exchange_proto::subject::{SubjectError, parse};
    parse(s).map_err(|e| match e {
        SubjectError::Missing => NodeError::bad_request(field, e.to_string()),
        SubjectError::Kind => NodeError::bad_request(format!("{field}.kind"), e.to_string()),
        SubjectError::Id(e) => NodeError::bad_ident(format!("{field}.id"), e),
    })
}

/// The key a node signs answers with, and its id.
pub struct AnswerSigner {
    /// The key.
    pub key: SigningKey,
    /// Its id (hex of the first 8 bytes of SHA-256 of the public key).
    pub key_id: String,
}

impl AnswerSigner {
    fn new(key: SigningKey) -> Self {
        let key_id = key_id(key.verifying_key().as_bytes());
        Self { key, key_id }
    }
}

/// Settings of a node.
pub struct NodeSettings {
    /// Own department.
    pub dept: String,
    /// Answer signing key.
    pub signing_key: SigningKey,
    /// Own datasets.
    pub datasets: Vec<Dataset>,
    /// Most batch items.
    pub max_batch: usize,
}

impl Node {
    /// Builds a node.
    pub fn new(
        settings: NodeSettings,
        db: Db,
        fed: Arc<FedState>,
        log: AccessLog,
        shipper: Arc<ShipperStatus>,
        writer: Arc<Mutex<()>>,
    ) -> Self {
        Self {
            dept: settings.dept,
            db,
            fed,
            log,
            signer: RwLock::new(Arc::new(AnswerSigner::new(settings.signing_key))),
            datasets: settings.datasets.into_iter().map(|d| (d.id.clone(), d)).collect(),
            max_batch: settings.max_batch,
            rates: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            matches: MatchLimiter::default(),
            strangers: Strangers::default(),
            writer,
            import_lock: tokio::sync::Mutex::new(()),
            shipper,
            datasets_changed: tokio::sync::Notify::new(),
        }
    }

    /// This node's department.
    pub fn dept(&self) -> &str {
        &self.dept
    }

    /// Whether the current configuration holds a grant of `requester` for `dataset`.
    pub fn has_grant(&self, requester: &str, dataset: &str) -> bool {
        self.fed.current().is_some_and(|s| !s.grants_for(requester, dataset).is_empty())
    }

    /// The version of the configuration held, if any.
    pub fn config_version(&self) -> Option<u64> {
        self.fed.current().map(|s| s.version)
    }

    /// The answer signing key and its id (one value, so that a switch never pairs a key
    /// with another's id).
    pub(crate) fn signer(&self) -> Arc<AnswerSigner> {
        self.signer.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Signs answers with `key` from now on, only if the federation configuration held lists
    /// it for this node (its signing key or a published one): a key is published before the
    /// node signs with it, so that no answer is refused during a rotation. Refused with the
    /// key in force kept otherwise.
    pub fn switch_signing_key(&self, key: SigningKey) -> std::result::Result<(), String> {
        let public = key.verifying_key().to_bytes();
        let listed = self.fed.current().and_then(|s| s.members.get(&self.dept).cloned()).is_some_and(|m| {
            m.node_signing_key == public || m.node_published_keys.iter().any(|k| k.as_slice() == public)
        });
        if !listed {
            return Err(format!(
                "key {} is not published for {} in the federation configuration held: publish it first (UpdateMember publish_node_key)",
                key_id(&public),
                self.dept
            ));
        }
        *self.signer.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(AnswerSigner::new(key));
        Ok(())
    }

    /// The most items a batch may hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub(crate) fn base_event(&self, requester: &str, dataset: &str, action: &str) -> AccessEvent {
        AccessEvent {
            recorder: self.dept.clone(),
            time_unix_ms: now_ms(),
            kind: EventKind::Query as i32,
            requester: requester.into(),
            provider: self.dept.clone(),
            dataset: dataset.into(),
            action: action.into(),
            ..Default::default()
        }
    }

    /// The DATA_CHANGE entry of a change of the node's own data (an import, a licence or
    /// record change), so that auditors see every change beside every read, in the same
    /// tamper-evident central log. The subject, when there is one, appears as its digest
    /// only, and no licence number or record content is logged. The change and its entry are
    /// committed together with [`commit_change`].
    pub(crate) fn change_event(
        &self,
        dataset: &str,
        action: &str,
        subject: Option<&SubjectId>,
        note: String,
    ) -> AccessEvent {
        let mut event = self.base_event(&self.dept, dataset, action);
        event.kind = EventKind::DataChange as i32;
        event.outcome = Outcome::Served as i32;
        if let Some(subject) = subject {
            event.subject_digest = self.subject_digest(subject).unwrap_or_default();
        }
        event.note = note;
        event
    }

    /// Records a refusal durably and returns what to send: the refusal itself, or, when the
    /// access log cannot be written, UNAVAILABLE / ACCESS_LOG_UNAVAILABLE (every refusal of a
    /// member is logged before it leaves, as every answer is).
    pub(crate) async fn refuse(&self, mut event: AccessEvent, err: NodeError) -> NodeError {
        event.outcome =
            if matches!(err, NodeError::NotFound(_)) { Outcome::NotFound as i32 } else { Outcome::Refused as i32 };
        event.reason_code = err.reason() as i32;
        event.fields.clear();
        event.answer_digest.clear();
        match self.log.append(Box::new(move |_| event)).await {
            Ok(_) => err,
            Err(log_error) => {
                tracing::warn!(refusal = ?err.reason(), "refusal not logged: the access log cannot be written");
                log_error
            }
        }
    }

    /// The keyed digest of a subject, the only form in which a subject reaches the log.
    pub(crate) fn subject_digest(&self, s: &SubjectId) -> Result<String> {
        let digester = self.fed.digester().ok_or_else(|| NodeError::Unavailable {
            reason: ReasonCode::ConfigStale,
            message: "the node has not fetched the federation's subject digest key yet: retry later".into(),
        })?;
        Ok(digester.digest(s.kind().as_str(), s.as_str()))
    }

    /// A licence at `version` (0: the current one); `None` when it or that version is not held.
    pub(crate) async fn read_licence(
        &self,
        dataset: &str,
        id: &LicenceId,
        version: u64,
    ) -> Result<Option<Versioned<StoredLicence>>> {
        let key = licence_key(dataset, id.as_str());
        self.read_version(LICENCES, key, version, |l: &StoredLicence| l.version).await
    }

    /// A record at `version` (0: the current one); `None` when it or that version is not held.
    pub(crate) async fn read_record(&self, dataset: &str, s: &SubjectId, version: u64) -> Result<Option<StoredRecord>> {
        let read = self.read_version(RECORDS, record_key(dataset, s), version, |r: &StoredRecord| r.version).await?;
        Ok(read.map(|v| v.row))
    }

    /// The row at `key` of `table` as of `version`: the current row, or a superseded one
    /// from the history together with the current one (0 asks for the current one).
    ///
    /// Read on the calling task when every row it needs is in memory (the block cache or a
    /// memtable: a few microseconds, less than the hop to a blocking thread and back), else
    /// on a blocking thread.
    async fn read_version<T>(
        &self,
        table: &'static str,
        key: Vec<u8>,
        version: u64,
        version_of: fn(&T) -> u64,
    ) -> Result<Option<Versioned<T>>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let cached = pick_version(|t, k| self.db.get_json_cached::<T>(t, k), table, &key, version, version_of)?;
        if let Some(read) = cached {
            return Ok(read);
        }
        let db = self.db.clone();
        run_blocking(move || {
            let read = pick_version(|t, k| db.get_json::<T>(t, k).map(Some), table, &key, version, version_of)?;
            read.ok_or_else(|| NodeError::Internal("a blocking read that did not answer".into()))
        })
        .await
    }

    /// The caller of a provider-side operation: an active member (the same checks as every
    /// call) that is the node's own department; another member's refusal is logged.
    pub(crate) async fn require_own(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        method: &'static str,
        dataset: &str,
    ) -> Result<Caller> {
        let caller = self.authenticate(peer, method, dataset, false, now_ms()).await?;
        if caller.dept != self.dept {
            let err = NodeError::denied(
                ReasonCode::RoleRequired,
                format!("only {}'s own systems may change or inspect its data, not {}", self.dept, caller.dept),
            );
            let dataset = if self.datasets.contains_key(dataset) { dataset } else { "" };
            return Err(self.refuse(self.base_event(&caller.dept, dataset, method), err).await);
        }
        Ok(caller)
    }

    /// Whether the caller may read the log status (own department or an auditor).
    pub(crate) async fn require_own_or_auditor(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
    ) -> Result<Caller> {
        let caller = self.authenticate(peer, "get_log_status", "", false, now_ms()).await?;
        if caller.dept == self.dept || caller.member.roles.contains(&(Role::Auditor as i32)) {
            Ok(caller)
        } else {
            Err(NodeError::denied(ReasonCode::RoleRequired, "the log status is for the node's department and auditors"))
        }
    }

    /// Any active member (DescribeDatasets); other members need a fresh configuration.
    pub(crate) async fn require_member(&self, peer: std::result::Result<PeerIdentity, String>) -> Result<Caller> {
        let now = now_ms();
        let caller = self.authenticate(peer, "describe_datasets", "", false, now).await?;
        if caller.dept != self.dept {
            self.fed.fresh(now)?;
        }
        Ok(caller)
    }
}

/// The row of `key` in `table` as of `version` through `get`, which answers `None` when it
/// cannot read without waiting for the disk (then this answers `None` too).
fn pick_version<T>(
    get: impl Fn(&str, &[u8]) -> Result<Option<Option<T>>>,
    table: &str,
    key: &[u8],
    version: u64,
    version_of: fn(&T) -> u64,
) -> Result<Option<Option<Versioned<T>>>> {
    let Some(current) = get(table, key)? else { return Ok(None) };
    Ok(Some(match current {
        Some(current) if version != 0 && version < version_of(&current) => {
            let Some(old) = get(HISTORY, &history_key(table, key, version))? else { return Ok(None) };
            old.map(|row| Versioned { row, current: Some(current) })
        }
        Some(current) if version > version_of(&current) => None,
        other => other.map(|row| Versioned { row, current: None }),
    }))
}

/// A row as of the version asked, and the current row when that version is an earlier one.
pub struct Versioned<T> {
    /// The row as of the version asked.
    pub row: T,
    /// The current row, when the one asked is an earlier version.
    pub current: Option<T>,
}

/// Commits a change of the node's data and its DATA_CHANGE entry in one atomic write, from a
/// blocking thread (inside [`run_blocking`], holding the writer lock): both are stored or
/// neither is, and the change is refused (UNAVAILABLE / ACCESS_LOG_UNAVAILABLE) when its
/// entry cannot be written. A blocking task runs to its end, so a client that cancels cannot
/// leave the change without its entry.
pub(crate) fn commit_change(log: &AccessLog, data: WriteBatch, mut event: AccessEvent) -> Result<u64> {
    event.time_unix_ms = now_ms();
    tokio::runtime::Handle::current().block_on(log.append_with(Box::new(move |_| event), data)).map(|l| l.sequence)
}

/// Runs blocking storage work off the async workers, inside the current span.
pub async fn run_blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| NodeError::Internal(format!("blocking task: {e}")))?
}

/// " at version N" for a versioned read, nothing for the current version.
pub(crate) fn at_version(version: u64) -> String {
    if version == 0 { String::new() } else { format!(" at version {version}") }
}
