//! The node's handlers: plain async methods that know nothing of tonic. Each query is
//! decided on the verified federation configuration, answered with only the allowed fields,
//! recorded durably in the access log before it leaves, and signed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use ed25519_dalek::SigningKey;
use exchange_core::digest::{key_id, sign_digest};
use exchange_core::ident::{DatasetId, LicenceId, PurposeCode, Reason, SubjectId, TraceId, find_identifier};
use exchange_core::policy::RateState;
use exchange_core::schema::{ClaimMatch, Schema};
use exchange_core::token::VerifiedConsent;
use exchange_pki::PeerIdentity;
use exchange_proto::canonical::{self, SignedAnswer};
use exchange_proto::v1::{
    AccessEvent, AnswerHeader, AnswerSignature, ClaimedValue, Dataset, DatasetKind, EventKind, FieldMatch, FieldValue,
    Licence, LicenceAnswer, LicenceStatus, ListLicencesAnswer, MatchAnswer, MatchResult, Outcome, QueryContext,
    Question, ReasonCode, Record, RecordAnswer, Role, ShareClass, Subject, Verdict, VerifyLicenceAnswer,
};
use exchange_store::WriteBatch;

use crate::accesslog::AccessLog;
use crate::authorize::{Caller, Strangers};
use crate::db::{
    Db, HISTORY, LICENCES, RECORDS, StoredLicence, StoredRecord, StoredStatus, history_key, licence_key, record_key,
};
use crate::error::{NodeError, Result};
use crate::fedconfig::{FedState, Snapshot, now_ms};
use crate::matchlimit::{MATCH_VALUES_PER_WINDOW, MatchLimiter, value_digest};
use crate::shipper::ShipperStatus;

/// The node's state and handlers.
pub struct Node {
    pub(crate) dept: String,
    pub(crate) db: Db,
    pub(crate) fed: Arc<FedState>,
    pub(crate) log: AccessLog,
    signing_key: SigningKey,
    key_id: String,
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

/// A query checked up to the per-item part: who asks what, why, on which configuration.
#[derive(Clone)]
pub struct Prepared {
    pub(crate) snap: Arc<Snapshot>,
    pub(crate) requester: String,
    pub(crate) dataset: String,
    pub(crate) schema: Arc<Schema>,
    pub(crate) purpose: PurposeCode,
    reason: Reason,
    trace: String,
    action: &'static str,
    /// Whether the dataset holds personal data: then every query needs consent, whatever
    /// the fields asked.
    pub(crate) personal: bool,
}

/// An answer type whose header the node fills.
pub trait Answer: SignedAnswer + Send + 'static {
    /// The header slot.
    fn header_slot(&mut self) -> &mut Option<AnswerHeader>;
    /// The slot of the question the answer repeats.
    fn question_slot(&mut self) -> &mut Option<Question>;
}

macro_rules! answer {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn header_slot(&mut self) -> &mut Option<AnswerHeader> {
                &mut self.header
            }
            fn question_slot(&mut self) -> &mut Option<Question> {
                &mut self.question
            }
        }
    )*};
}
answer!(LicenceAnswer, VerifyLicenceAnswer, ListLicencesAnswer, RecordAnswer, MatchAnswer);

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

/// Today's date (`YYYY-MM-DD`) in China Standard Time (UTC+8), the calendar of licence
/// validity dates.
pub fn today_cst(now_ms: i64) -> String {
    let days = (now_ms + 8 * 3_600_000).div_euclid(86_400_000);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A licence's status today.
pub fn licence_status(l: &StoredLicence, today: &str) -> LicenceStatus {
    if l.status == StoredStatus::Revoked {
        LicenceStatus::Revoked
    } else if !l.valid_from.is_empty() && today < l.valid_from.as_str() {
        LicenceStatus::NotYetValid
    } else if !l.valid_until.is_empty() && today > l.valid_until.as_str() {
        LicenceStatus::Expired
    } else {
        LicenceStatus::Valid
    }
}

fn field_values(fields: &std::collections::BTreeMap<String, String>, allowed: &BTreeSet<String>) -> Vec<FieldValue> {
    fields
        .iter()
        .filter(|(k, _)| allowed.contains(*k))
        .map(|(k, v)| FieldValue { name: k.clone(), value: v.clone() })
        .collect()
}

fn requested_set(field: &str, names: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || n.len() > 64 {
            return Err(NodeError::bad_request(format!("{field}[{i}]"), "must be a field name of 1 to 64 characters"));
        }
        out.insert(n.clone());
    }
    Ok(out)
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
        let key_id = key_id(settings.signing_key.verifying_key().as_bytes());
        Self {
            dept: settings.dept,
            db,
            fed,
            log,
            signing_key: settings.signing_key,
            key_id,
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

    fn prepared_event(&self, p: &Prepared) -> AccessEvent {
        let mut e = self.base_event(&p.requester, &p.dataset, p.action);
        e.purpose_code = p.purpose.to_string();
        e.reason = p.reason.to_string();
        e.trace_id = p.trace.clone();
        e
    }

    /// The log entry of a served answer: who the data was about (as a digest), which fields
    /// left, from which versions, under which consent.
    fn served_event(
        &self,
        p: &Prepared,
        subject: &SubjectId,
        fields: Vec<String>,
        versions: Vec<u64>,
        consent_id: String,
    ) -> Result<AccessEvent> {
        let mut event = self.prepared_event(p);
        event.subject_digest = self.subject_digest(subject)?;
        event.fields = fields;
        event.record_versions = versions;
        event.consent_id = consent_id;
        Ok(event)
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

    /// The checks shared by every item of a query, after the caller is authenticated as a
    /// member ([`Node::authenticate`]); on failure the refusal is logged.
    pub async fn prepare(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
    ) -> Result<Prepared> {
        let caller = self.authenticate(peer, action, dataset, true).await?;
        let mut event = self.base_event(&caller.dept, "", action);
        match self.prepare_inner(caller, action, dataset, kind, context, &mut event) {
            Ok(p) => Ok(p),
            Err(err) => Err(self.refuse(event, err).await),
        }
    }

    fn prepare_inner(
        &self,
        caller: Caller,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
        event: &mut AccessEvent,
    ) -> Result<Prepared> {
        let snap = caller.snap;
        let id = DatasetId::parse(dataset).map_err(|e| NodeError::bad_ident("dataset", e))?;
        event.dataset = id.to_string();
        let own = self.datasets.get(id.as_str()).ok_or_else(|| NodeError::Invalid {
            field: "dataset".into(),
            message: format!("dataset {id} is not served by node {}", self.dept),
            reason: ReasonCode::UnknownDataset,
        })?;
        if own.share_class == ShareClass::NotShared as i32 {
            return Err(NodeError::denied(
                ReasonCode::DatasetNotShared,
                format!("dataset {id} is classed not shared (不予共享) and is never served"),
            ));
        }
        if own.kind != kind as i32 {
            let what = if kind == DatasetKind::Licence { "licences" } else { "base records" };
            return Err(NodeError::Invalid {
                field: "dataset".into(),
                message: format!("dataset {id} does not hold {what}: use the other query form"),
                reason: ReasonCode::MalformedRequest,
            });
        }
        let schema = snap.schemas.get(&own.schema).cloned().ok_or_else(|| NodeError::Precondition {
            reason: ReasonCode::InvalidState,
            message: format!("schema {} of dataset {id} is not in the federation configuration yet", own.schema),
        })?;
        let ctx = context.ok_or_else(|| NodeError::Invalid {
            field: "context".into(),
            message: "is required: give a purpose code and a reason".into(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        // The trace id first: a refusal for a bad purpose or reason must still be findable
        // under the application's trace; but a trace id that holds a subject's identifier is
        // never logged (its entry would carry the id in clear to the central log).
        screen("context.trace_id", &ctx.trace_id, &mut event.trace_id)?;
        let trace = if ctx.trace_id.is_empty() {
            String::new()
        } else {
            TraceId::parse(&ctx.trace_id)
                .map_err(|e| NodeError::bad_request("context.trace_id", e.to_string()))?
                .to_string()
        };
        event.trace_id = trace.clone();
        let purpose = PurposeCode::parse(&ctx.purpose_code).map_err(|e| NodeError::Invalid {
            field: "context.purpose_code".into(),
            message: e.to_string(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        event.purpose_code = purpose.to_string();
        screen("context.reason", &ctx.reason, &mut event.reason)?;
        let reason = Reason::parse(&ctx.reason).map_err(|e| NodeError::Invalid {
            field: "context.reason".into(),
            message: format!("{e} (申请事由: 1 to 200 characters)"),
            reason: ReasonCode::ReasonInvalid,
        })?;
        event.reason = reason.to_string();
        let personal = own.personal_data
            || snap.datasets.get(id.as_str()).is_some_and(|d| d.personal_data)
            || schema.has_personal_data();
        Ok(Prepared {
            snap,
            requester: caller.dept,
            dataset: id.to_string(),
            schema,
            purpose,
            reason,
            trace,
            action,
            personal,
        })
    }
    fn subject_digest(&self, s: &SubjectId) -> Result<String> {
        let digester = self.fed.digester().ok_or_else(|| NodeError::Unavailable {
            reason: ReasonCode::ConfigStale,
            message: "the node has not fetched the federation's subject digest key yet: retry later".into(),
        })?;
        Ok(digester.digest(s.kind().as_str(), s.as_str()))
    }

    /// Fills the header and the question asked, writes the access-log entry durably (with
    /// the digest of header, question and answer), then signs that digest.
    async fn finish<A: Answer>(
        &self,
        p: &Prepared,
        question: Question,
        mut answer: A,
        mut event: AccessEvent,
    ) -> Result<A> {
        *answer.question_slot() = Some(question);
        let served = now_ms();
        *answer.header_slot() = Some(AnswerHeader {
            node: self.dept.clone(),
            requester: p.requester.clone(),
            dataset: p.dataset.clone(),
            purpose_code: p.purpose.to_string(),
            trace_id: p.trace.clone(),
            served_at_unix_ms: served,
            log_sequence: 0,
        });
        event.time_unix_ms = served;
        event.outcome = Outcome::Served as i32;
        let slot: Arc<Mutex<SignedSlot<A>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        self.log
            .append(Box::new(move |seq| {
                if let Some(h) = answer.header_slot().as_mut() {
                    h.log_sequence = seq;
                }
                let digest = answer.canonical_digest();
                event.answer_digest = digest.to_vec();
                *out.lock().unwrap_or_else(PoisonError::into_inner) = Some((answer, digest));
                event
            }))
            .await?;
        let (mut answer, digest) = slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| NodeError::Internal("logged answer missing".into()))?;
        let signature = sign_digest(&self.signing_key, &digest);
        answer.set_signature(AnswerSignature {
            node: self.dept.clone(),
            key_id: self.key_id.clone(),
            digest: digest.to_vec(),
            signature: signature.to_vec(),
        });
        Ok(answer)
    }

    /// Runs one item: on failure the refusal is logged, with the digest of the subject the
    /// request named (when it is a well-formed id), so that a subject's "who read my data"
    /// view also shows the attempts that were refused.
    async fn item<A: Answer>(
        &self,
        p: &Prepared,
        named: Option<&Subject>,
        run: impl std::future::Future<Output = Result<A>>,
    ) -> Result<A> {
        match run.await {
            Err(err) if err.reason() != ReasonCode::AccessLogUnavailable => {
                let mut event = self.prepared_event(p);
                if let Some(subject) = named.and_then(|s| parse_subject("subject", Some(s)).ok()) {
                    event.subject_digest = self.subject_digest(&subject).unwrap_or_default();
                }
                Err(self.refuse(event, err).await)
            }
            other => other,
        }
    }

    /// A licence at `version` (0: the current one); `None` when it or that version is not held.
    async fn read_licence(
        &self,
        dataset: &str,
        id: &LicenceId,
        version: u64,
    ) -> Result<Option<Versioned<StoredLicence>>> {
        let key = licence_key(dataset, id.as_str());
        self.read_version(LICENCES, key, version, |l: &StoredLicence| l.version).await
    }

    /// A record at `version` (0: the current one); `None` when it or that version is not held.
    async fn read_record(&self, dataset: &str, s: &SubjectId, version: u64) -> Result<Option<StoredRecord>> {
        let read = self.read_version(RECORDS, record_key(dataset, s), version, |r: &StoredRecord| r.version).await?;
        Ok(read.map(|v| v.row))
    }

    /// The row at `key` of `table` as of `version`: the current row, or a superseded one
    /// from the history together with the current one (0 asks for the current one).
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
        let db = self.db.clone();
        run_blocking(move || match db.get_json::<T>(table, &key)? {
            Some(current) if version != 0 && version < version_of(&current) => Ok(db
                .get_json::<T>(HISTORY, &history_key(table, &key, version))?
                .map(|row| Versioned { row, current: Some(current) })),
            Some(current) if version > version_of(&current) => Ok(None),
            other => Ok(other.map(|row| Versioned { row, current: None })),
        })
        .await
    }

    fn holder_of(l: &StoredLicence) -> Result<SubjectId> {
        SubjectId::parse(l.holder_kind, &l.holder_id).map_err(|e| NodeError::Internal(format!("stored holder: {e}")))
    }

    // Items: each parses its request, passes [`Node::authorize`] (grant → consent → rate
    // limit), and only then reads.

    /// One GetLicence item. The licence is read only after grant, consent and rate limit;
    /// under consent, a licence the consenting subject does not hold is answered as unknown,
    /// so that a consent for one subject tells nothing of other subjects' licences.
    pub async fn get_licence_item(
        &self,
        p: &Prepared,
        prefix: &str,
        licence_id: &str,
        fields: &[String],
        token: &str,
        version: u64,
    ) -> Result<LicenceAnswer> {
        self.item(p, None, async {
            let id =
                LicenceId::parse(licence_id).map_err(|e| NodeError::bad_ident(format!("{prefix}licence_id"), e))?;
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let allowed = self.authorize(p, &requested, token, None, false)?;
            let not_found = || {
                let whose = if allowed.consent.is_some() { " held by the consenting subject" } else { "" };
                NodeError::NotFound(format!("no licence {id}{}{whose} in {}", at_version(version), p.dataset))
            };
            let read = self.read_licence(&p.dataset, &id, version).await?.ok_or_else(not_found)?;
            let l = &read.row;
            let holder = Self::holder_of(l)?;
            if !allowed.consented_by(&holder) {
                return Err(not_found());
            }
            let licence = licence_proto(&p.schema, id.as_str(), l, read.current.as_ref(), &allowed.fields);
            let event = self.served_event(
                p,
                &holder,
                allowed.fields.iter().cloned().collect(),
                vec![l.version],
                allowed.consent_id(),
            )?;
            let asked = canonical::question(licence_id, None, None, &[], version, fields);
            self.finish(p, asked, LicenceAnswer { licence: Some(licence), ..Default::default() }, event).await
        })
        .await
    }

    /// One VerifyLicence item: the verdict, plus only the asked-for allowed fields. An unknown
    /// licence costs the rate limit like a known one. Under consent without a claimed holder,
    /// the consenting subject is the claimed holder.
    pub async fn verify_licence_item(
        &self,
        p: &Prepared,
        prefix: &str,
        licence_id: &str,
        holder: Option<&Subject>,
        fields: &[String],
        token: &str,
    ) -> Result<VerifyLicenceAnswer> {
        self.item(p, holder, async {
            let id =
                LicenceId::parse(licence_id).map_err(|e| NodeError::bad_ident(format!("{prefix}licence_id"), e))?;
            let claimed = match holder {
                Some(h) => Some(parse_subject(&format!("{prefix}holder"), Some(h))?),
                None => None,
            };
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let allowed = self.authorize(p, &requested, token, claimed.as_ref(), true)?;
            let stored = self.read_licence(&p.dataset, &id, 0).await?.map(|v| v.row);
            let mut event = self.prepared_event(p);
            event.consent_id = allowed.consent_id();
            let answer = match stored {
                None => {
                    // The verdict UNKNOWN answers the question: it is served, not refused.
                    if let Some(c) = &claimed {
                        event.subject_digest = self.subject_digest(c)?;
                    }
                    VerifyLicenceAnswer { verdict: Verdict::Unknown as i32, ..Default::default() }
                }
                Some(l) => {
                    let holder = Self::holder_of(&l)?;
                    let mismatch = claimed.as_ref().is_some_and(|c| c != &holder)
                        || allowed.consent_subject().is_some_and(|s| s != holder.as_str());
                    let verdict = if mismatch {
                        Verdict::HolderMismatch
                    } else {
                        match licence_status(&l, &today_cst(now_ms())) {
                            LicenceStatus::Revoked => Verdict::Revoked,
                            LicenceStatus::Expired => Verdict::Expired,
                            LicenceStatus::NotYetValid => Verdict::NotYetValid,
                            LicenceStatus::Valid | LicenceStatus::Unspecified => Verdict::Valid,
                        }
                    };
                    let fields = if mismatch { Vec::new() } else { field_values(&l.fields, &allowed.fields) };
                    // A mismatch is logged under the claimed subject: the holder was not read.
                    let about = match &claimed {
                        Some(c) if mismatch => c.clone(),
                        _ => holder,
                    };
                    event.subject_digest = self.subject_digest(&about)?;
                    event.fields = fields.iter().map(|f| f.name.clone()).collect();
                    event.record_versions = vec![l.version];
                    VerifyLicenceAnswer { verdict: verdict as i32, version: l.version, fields, ..Default::default() }
                }
            };
            let asked = canonical::question(licence_id, None, holder, &[], 0, fields);
            self.finish(p, asked, answer, event).await
        })
        .await
    }

    /// One ListLicences item.
    pub async fn list_licences_item(
        &self,
        p: &Prepared,
        prefix: &str,
        holder: Option<&Subject>,
        fields: &[String],
        token: &str,
    ) -> Result<ListLicencesAnswer> {
        self.item(p, holder, async {
            let holder_asked = holder;
            let holder = parse_subject(&format!("{prefix}holder"), holder)?;
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let allowed = self.authorize(p, &requested, token, Some(&holder), false)?;
            let db = self.db.clone();
            let dataset = p.dataset.clone();
            let h = holder.clone();
            let stored = run_blocking(move || {
                let ids = db.holder_licences(&dataset, h.kind(), h.as_str())?;
                let mut out = Vec::new();
                for id in ids {
                    if let Some(l) = db.get_json::<StoredLicence>(LICENCES, &licence_key(&dataset, &id))? {
                        out.push((id, l));
                    }
                }
                Ok(out)
            })
            .await?;
            let licences: Vec<Licence> =
                stored.iter().map(|(id, l)| licence_proto(&p.schema, id, l, None, &allowed.fields)).collect();
            let event = self.served_event(
                p,
                &holder,
                allowed.fields.iter().cloned().collect(),
                stored.iter().map(|(_, l)| l.version).collect(),
                allowed.consent_id(),
            )?;
            let asked = canonical::question("", holder_asked, None, &[], 0, fields);
            self.finish(p, asked, ListLicencesAnswer { licences, ..Default::default() }, event).await
        })
        .await
    }

    /// One GetRecord item.
    pub async fn get_record_item(
        &self,
        p: &Prepared,
        prefix: &str,
        subject: Option<&Subject>,
        fields: &[String],
        token: &str,
        version: u64,
    ) -> Result<RecordAnswer> {
        self.item(p, subject, async {
            let subject_asked = subject;
            let subject = parse_subject(&format!("{prefix}subject"), subject)?;
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let allowed = self.authorize(p, &requested, token, Some(&subject), false)?;
            let r = self.read_record(&p.dataset, &subject, version).await?.ok_or_else(|| {
                NodeError::NotFound(format!("no record for this subject{} in {}", at_version(version), p.dataset))
            })?;
            let record = Record {
                subject: Some(subject_proto(&subject)),
                version: r.version,
                fields: field_values(&r.fields, &allowed.fields),
            };
            let event = self.served_event(
                p,
                &subject,
                record.fields.iter().map(|f| f.name.clone()).collect(),
                vec![r.version],
                allowed.consent_id(),
            )?;
            let asked = canonical::question("", subject_asked, None, &[], version, fields);
            self.finish(p, asked, RecordAnswer { record: Some(record), ..Default::default() }, event).await
        })
        .await
    }

    /// One MatchRecord item: each claimed field once and only schema fields; after grant,
    /// consent and rate limit, the bound on distinct values tried ([`MatchLimiter`]) before
    /// anything is read, so that a refusal says nothing of whether a value matched.
    pub async fn match_record_item(
        &self,
        p: &Prepared,
        prefix: &str,
        subject: Option<&Subject>,
        claims: &[ClaimedValue],
        token: &str,
    ) -> Result<MatchAnswer> {
        self.item(p, subject, async {
            let subject_asked = subject;
            let subject = parse_subject(&format!("{prefix}subject"), subject)?;
            let requested = claimed_fields(&p.schema, prefix, claims)?;
            let allowed = self.authorize(p, &requested, token, Some(&subject), false)?;
            let digest = self.subject_digest(&subject)?;
            let tried: Vec<(&str, [u8; 32])> = claims
                .iter()
                .map(|c| {
                    let canonical = p.schema.canonical_claim(&c.name, &c.value).unwrap_or_else(|| c.value.clone());
                    (c.name.as_str(), value_digest(&canonical))
                })
                .collect();
            self.matches.admit(&p.requester, &digest, &tried, now_ms()).map_err(|over| {
                NodeError::denied(
                    ReasonCode::MatchLimit,
                    format!(
                        "{} has tried {} distinct values of field `{}` for this subject within 24 hours, the most a requester may (a match verifies a claim, it is not a search): retry with a value tried already, or after the window",
                        p.requester, over.tried, over.field
                    ),
                )
            })?;
            let r = self
                .read_record(&p.dataset, &subject, 0)
                .await?
                .ok_or_else(|| NodeError::NotFound(format!("no record for this subject in {}", p.dataset)))?;
            let matches = claims
                .iter()
                .map(|c| FieldMatch { name: c.name.clone(), result: compare(&p.schema, &r, c) as i32 })
                .collect();
            let event = self.served_event(
                p,
                &subject,
                allowed.fields.iter().cloned().collect(),
                vec![r.version],
                allowed.consent_id(),
            )?;
            let asked = canonical::question("", subject_asked, None, claims, 0, &[]);
            self.finish(p, asked, MatchAnswer { version: r.version, matches, ..Default::default() }, event).await
        })
        .await
    }

    /// Refuses a batch larger than the limit (after [`Node::prepare`]); the refusal is logged.
    pub async fn check_batch(&self, p: &Prepared, len: usize) -> Result<()> {
        if len == 0 || len > self.max_batch {
            let err = NodeError::Invalid {
                field: "items".into(),
                message: format!("the batch holds {len} items; a batch holds 1 to {}", self.max_batch),
                reason: ReasonCode::BatchTooLarge,
            };
            return Err(self.refuse(self.prepared_event(p), err).await);
        }
        Ok(())
    }

    /// The caller of a provider-side operation: an active member (the same checks as every
    /// call) that is the node's own department; another member's refusal is logged.
    pub(crate) async fn require_own(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        method: &'static str,
        dataset: &str,
    ) -> Result<Caller> {
        let caller = self.authenticate(peer, method, dataset, false).await?;
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
        let caller = self.authenticate(peer, "get_log_status", "", false).await?;
        if caller.dept == self.dept || caller.member.roles.contains(&(Role::Auditor as i32)) {
            Ok(caller)
        } else {
            Err(NodeError::denied(ReasonCode::RoleRequired, "the log status is for the node's department and auditors"))
        }
    }

    /// Any active member (DescribeDatasets); other members need a fresh configuration.
    pub(crate) async fn require_member(&self, peer: std::result::Result<PeerIdentity, String>) -> Result<Caller> {
        let caller = self.authenticate(peer, "describe_datasets", "", false).await?;
        if caller.dept != self.dept {
            self.fed.fresh(now_ms())?;
        }
        Ok(caller)
    }
}

/// Refuses free text bound for the access log (`field` of the query context) when it holds
/// a valid resident ID or credit code; the logged copy (`logged`) is then a marker, never the
/// text, and the message names the field and the kind of identifier, never the identifier.
fn screen(field: &str, text: &str, logged: &mut String) -> Result<()> {
    match find_identifier(text) {
        None => Ok(()),
        Some((kind, at)) => {
            *logged = IDENTIFIER_WITHHELD.to_string();
            Err(NodeError::Invalid {
                field: field.into(),
                message: format!(
                    "holds {} at character {at}: subject ids never reach the access log in clear, send an opaque value instead",
                    kind.describe()
                ),
                reason: ReasonCode::IdentifierInClear,
            })
        }
    }
}

/// What the access log holds in place of a trace id or reason refused for holding an
/// identifier in clear.
pub const IDENTIFIER_WITHHELD: &str = "[withheld: identifier in clear]";

/// A row as of the version asked, and the current row when that version is an earlier one.
struct Versioned<T> {
    row: T,
    current: Option<T>,
}

/// A licence projected to the allowed fields: its number and its standing (status, validity
/// dates, which the number identifies) only when the schema's key field is allowed, its
/// holder only when the schema's holder field is. `current`: the licence's current version,
/// when `l` is an earlier one; the answer is then marked historical, its status is the one
/// the version had when it was recorded, and the current status is shown beside it.
fn licence_proto(
    schema: &Schema,
    id: &str,
    l: &StoredLicence,
    current: Option<&StoredLicence>,
    fields: &BTreeSet<String>,
) -> Licence {
    let numbered = fields.contains(&schema.key_field);
    let today = today_cst(now_ms());
    let (status, current_status) = match current {
        Some(cur) => (licence_status(l, &today_cst(l.updated_at_ms)), licence_status(cur, &today)),
        None => {
            let s = licence_status(l, &today);
            (s, s)
        }
    };
    let standing = |s: LicenceStatus| if numbered { s as i32 } else { LicenceStatus::Unspecified as i32 };
    let show_holder = schema.holder_field.as_ref().is_some_and(|h| fields.contains(h));
    let shown = |s: &str| if numbered { s.to_string() } else { String::new() };
    Licence {
        licence_id: shown(id),
        holder: show_holder
            .then(|| Subject { kind: exchange_proto::subject::kind_number(l.holder_kind), id: l.holder_id.clone() }),
        status: standing(status),
        valid_from: shown(&l.valid_from),
        valid_until: shown(&l.valid_until),
        version: l.version,
        fields: field_values(&l.fields, fields),
        historical: current.is_some(),
        current_status: standing(current_status),
        current_version: current.map_or(l.version, |c| c.version),
    }
}

/// Commits a change of the node's data and its DATA_CHANGE entry in one atomic write, from a
/// blocking thread (inside [`run_blocking`], holding the writer lock): both are stored or
/// neither is, and the change is refused (UNAVAILABLE / ACCESS_LOG_UNAVAILABLE) when its
/// entry cannot be written. A blocking task runs to its end, so a client that cancels cannot
/// leave the change without its entry.
pub(crate) fn commit_change(log: &AccessLog, data: WriteBatch, mut event: AccessEvent) -> Result<u64> {
    event.time_unix_ms = now_ms();
    tokio::runtime::Handle::current().block_on(log.append_with(Box::new(move |_| event), data))
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

/// Compares a claim with the held value in canonical form, never revealing the held value.
fn compare(schema: &Schema, held: &StoredRecord, claim: &ClaimedValue) -> MatchResult {
    match schema.match_claim(&claim.name, &claim.value, held.fields.get(&claim.name).map(String::as_str)) {
        ClaimMatch::Match => MatchResult::Match,
        ClaimMatch::NoMatch => MatchResult::NoMatch,
        ClaimMatch::Absent => MatchResult::Absent,
    }
}

/// The fields of a match request's claims: at least one claim, each a field of the schema,
/// each claimed once (a second claim of a field would try a second value in one request).
fn claimed_fields(schema: &Schema, prefix: &str, claims: &[ClaimedValue]) -> Result<BTreeSet<String>> {
    if claims.is_empty() {
        return Err(NodeError::bad_request(format!("{prefix}claims"), "at least one claim is required"));
    }
    let mut out = BTreeSet::new();
    for (i, c) in claims.iter().enumerate() {
        let field = format!("{prefix}claims[{i}].name");
        if schema.field(&c.name).is_none() {
            return Err(NodeError::Invalid {
                message: format!(
                    "`{}` is not a field of schema {}",
                    c.name.chars().take(64).collect::<String>(),
                    schema.reference
                ),
                field,
                reason: ReasonCode::FieldNotInSchema,
            });
        }
        if !out.insert(c.name.clone()) {
            return Err(NodeError::bad_request(
                field,
                format!(
                    "field `{}` is claimed more than once: a match claims each field once, with one value (at most {MATCH_VALUES_PER_WINDOW} distinct values per field and subject in 24 hours)",
                    c.name
                ),
            ));
        }
    }
    Ok(out)
}

/// The answer and its digest, filled in by the access-log writer once the entry is durable.
type SignedSlot<A> = Option<(A, [u8; 32])>;

/// " at version N" for a versioned read, nothing for the current version.
fn at_version(version: u64) -> String {
    if version == 0 { String::new() } else { format!(" at version {version}") }
}
