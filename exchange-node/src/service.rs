//! The node's handlers: plain async methods that know nothing of tonic. Each query is
//! decided on the verified federation configuration, answered with only the allowed fields,
//! recorded durably in the access log before it leaves, and signed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use ed25519_dalek::SigningKey;
use exchange_core::digest::{key_id, sign_digest};
use exchange_core::ident::{DatasetId, LicenceId, PurposeCode, Reason, SubjectId, SubjectKind, TraceId};
use exchange_core::policy::{Decision, QueryScope, RateState, apply_consent, decide};
use exchange_core::schema::Schema;
use exchange_core::token::{TokenExpectation, TokenVerifier, VerifiedConsent};
use exchange_pki::PeerIdentity;
use exchange_proto::canonical::SignedAnswer;
use exchange_proto::v1::{
    AccessEvent, AnswerHeader, AnswerSignature, ClaimedValue, Dataset, DatasetKind, EventKind, FieldMatch, FieldValue,
    Licence, LicenceAnswer, LicenceStatus, ListLicencesAnswer, MatchAnswer, MatchResult, MemberStatus, Outcome,
    QueryContext, ReasonCode, Record, RecordAnswer, Role, ShareClass, Subject, Verdict, VerifyLicenceAnswer,
};

use crate::accesslog::AccessLog;
use crate::db::{
    Db, HISTORY, LICENCES, RECORDS, StoredLicence, StoredRecord, StoredStatus, history_key, licence_key, record_key,
};
use crate::error::{NodeError, Result};
use crate::fedconfig::{FedState, Snapshot, now_ms};
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
    rates: Mutex<HashMap<(String, String), RateState>>,
    tokens: Mutex<HashMap<String, (u64, VerifiedConsent)>>,
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
    snap: Arc<Snapshot>,
    requester: String,
    dataset: String,
    schema: Arc<Schema>,
    purpose: PurposeCode,
    reason: Reason,
    trace: String,
    action: &'static str,
}

/// An answer type whose header the node fills.
pub trait Answer: SignedAnswer + Send + 'static {
    /// The header slot.
    fn header_slot(&mut self) -> &mut Option<AnswerHeader>;
}

macro_rules! answer {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn header_slot(&mut self) -> &mut Option<AnswerHeader> {
                &mut self.header
            }
        }
    )*};
}
answer!(LicenceAnswer, VerifyLicenceAnswer, ListLicencesAnswer, RecordAnswer, MatchAnswer);

/// What an item query is allowed.
struct Allowed {
    fields: BTreeSet<String>,
    consent_id: String,
}

/// The proto form of a subject.
pub fn subject_proto(s: &SubjectId) -> Subject {
    let kind = match s.kind() {
        SubjectKind::Person => exchange_proto::v1::SubjectKind::Person,
        SubjectKind::Organisation => exchange_proto::v1::SubjectKind::Organisation,
    };
    Subject { kind: kind as i32, id: s.as_str().to_string() }
}

/// Parses a subject of a request; `field` names it in errors.
pub fn parse_subject(field: &str, s: Option<&Subject>) -> Result<SubjectId> {
    let s = s.ok_or_else(|| NodeError::bad_request(field, "is required"))?;
    let kind = match exchange_proto::v1::SubjectKind::try_from(s.kind) {
        Ok(exchange_proto::v1::SubjectKind::Person) => SubjectKind::Person,
        Ok(exchange_proto::v1::SubjectKind::Organisation) => SubjectKind::Organisation,
        _ => return Err(NodeError::bad_request(format!("{field}.kind"), "must be PERSON or ORGANISATION")),
    };
    SubjectId::parse(kind, &s.id).map_err(|e| NodeError::bad_ident(format!("{field}.id"), e))
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

    /// Records a change of the node's own data (an import, a licence or record change) in the
    /// access log, so that auditors see every change beside every read, in the same tamper-
    /// evident central log. The change is committed first; if the entry cannot be written the
    /// failure is reported in the daemon's log. The subject, when there is one, appears as its
    /// digest only, and no licence number or record content is logged.
    pub(crate) async fn log_change(
        &self,
        dataset: &str,
        action: &str,
        versions: Vec<u64>,
        subject: Option<&SubjectId>,
        note: String,
    ) {
        let mut event = self.base_event(&self.dept, dataset, action);
        event.kind = EventKind::DataChange as i32;
        event.outcome = Outcome::Served as i32;
        event.record_versions = versions;
        if let Some(subject) = subject {
            event.subject_digest = self.subject_digest(subject).unwrap_or_default();
        }
        event.note = note;
        if let Err(e) = self.log.append(Box::new(move |_| event)).await {
            tracing::warn!(error = %e, action, "data change not logged");
        }
    }

    /// Records a refusal (best effort: a refusal is sent whether or not it could be logged).
    pub(crate) async fn log_refusal(&self, mut event: AccessEvent, err: &NodeError) {
        event.outcome =
            if matches!(err, NodeError::NotFound(_)) { Outcome::NotFound as i32 } else { Outcome::Refused as i32 };
        event.reason_code = err.reason() as i32;
        event.fields.clear();
        event.answer_digest.clear();
        if let Err(e) = self.log.append(Box::new(move |_| event)).await {
            tracing::warn!(error = %e, "refusal not logged");
        }
    }

    /// Resolves the caller to an active member of the current configuration.
    pub(crate) fn member(&self, snap: &Snapshot, peer: &PeerIdentity) -> Result<exchange_proto::v1::Member> {
        let member = snap.members.get(&peer.dept_id).ok_or_else(|| {
            NodeError::UnknownMember(format!(
                "department {} is not a member of the federation: ask the operator to register it",
                peer.dept_id
            ))
        })?;
        if member.status == MemberStatus::Suspended as i32 {
            return Err(NodeError::denied(
                ReasonCode::MemberSuspended,
                format!("member {} is suspended", peer.dept_id),
            ));
        }
        if !member.cert_fingerprints.is_empty()
            && !member.cert_fingerprints.iter().any(|f| f[..] == peer.fingerprint[..])
        {
            return Err(NodeError::UnknownMember(format!(
                "this certificate is not registered for {}: ask the operator to add its fingerprint",
                peer.dept_id
            )));
        }
        Ok(member.clone())
    }

    /// The checks shared by every item of a query; on failure the refusal is logged.
    pub async fn prepare(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
    ) -> Result<Prepared> {
        let mut event = self.base_event("", "", action);
        let result = self.prepare_inner(peer, action, dataset, kind, context, &mut event);
        if let Err(err) = &result {
            self.log_refusal(event, err).await;
        }
        result
    }

    fn prepare_inner(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
        event: &mut AccessEvent,
    ) -> Result<Prepared> {
        let peer = peer.map_err(NodeError::Unauthenticated)?;
        if peer.dept_id.len() <= 64 {
            event.requester = peer.dept_id.clone();
        }
        let now = now_ms();
        let snap = self.fed.fresh(now)?;
        self.member(&snap, &peer)?;
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
        // under the application's trace.
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
        let reason = Reason::parse(&ctx.reason).map_err(|e| NodeError::Invalid {
            field: "context.reason".into(),
            message: format!("{e} (申请事由: 1 to 200 characters)"),
            reason: ReasonCode::ReasonInvalid,
        })?;
        event.reason = reason.to_string();
        Ok(Prepared { snap, requester: peer.dept_id, dataset: id.to_string(), schema, purpose, reason, trace, action })
    }

    fn policy(&self, p: &Prepared, requested: &BTreeSet<String>) -> Result<Decision> {
        let scope = QueryScope {
            requester: &p.requester,
            dataset: &p.dataset,
            purpose: p.purpose.as_str(),
            requested,
            now_ms: now_ms(),
        };
        Ok(decide(p.snap.grants_for(&p.requester, &p.dataset), &p.schema, &scope)?)
    }

    fn verify_token(&self, p: &Prepared, token: &str) -> Result<VerifiedConsent> {
        let now_s = now_ms() / 1000;
        {
            let cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((version, consent)) = cache.get(token)
                && *version == p.snap.version
                && consent.is_current(now_s)
            {
                return Ok(consent.clone());
            }
        }
        let consent = p.snap.verifier.verify_signature(token, now_s)?;
        let mut cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.retain(|_, (v, c)| *v == p.snap.version && c.is_current(now_s));
        }
        cache.insert(token.to_string(), (p.snap.version, consent.clone()));
        Ok(consent)
    }

    /// Consent (when needed) and the rate limit, after the policy decision.
    fn allow(
        &self,
        p: &Prepared,
        decision: &Decision,
        requested: &BTreeSet<String>,
        token: &str,
        subject: &SubjectId,
        consent_needed: bool,
    ) -> Result<Allowed> {
        let mut fields = decision.fields.clone();
        let mut consent_id = String::new();
        if consent_needed {
            if token.is_empty() {
                return Err(NodeError::denied(
                    ReasonCode::ConsentRequired,
                    format!("{} holds personal data: the query needs a consent token from the catalog", p.dataset),
                ));
            }
            let consent = self.verify_token(p, token)?;
            TokenVerifier::check_binding(
                &consent,
                &TokenExpectation {
                    audience: &self.dept,
                    requester: &p.requester,
                    subject: subject.as_str(),
                    subject_kind: subject.kind().as_str(),
                    dataset: &p.dataset,
                    purpose: p.purpose.as_str(),
                },
            )?;
            consent.check_not_revoked(|id| p.snap.revoked.contains(id))?;
            fields = apply_consent(decision, requested, &consent.fields())?;
            consent_id = consent.consent_id().to_string();
        }
        {
            let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
            let state = rates.entry((p.requester.clone(), decision.grant_id.clone())).or_default();
            state.admit(decision.rate_limit_per_minute, now_ms()).map_err(|retry_after_ms| NodeError::RateLimited {
                grant: decision.grant_id.clone(),
                retry_after_ms,
            })?;
        }
        Ok(Allowed { fields, consent_id })
    }

    fn subject_digest(&self, s: &SubjectId) -> Result<String> {
        let digester = self.fed.digester().ok_or_else(|| NodeError::Unavailable {
            reason: ReasonCode::ConfigStale,
            message: "the node has not fetched the federation's subject digest key yet: retry later".into(),
        })?;
        Ok(digester.digest(s.kind().as_str(), s.as_str()))
    }

    /// Fills the header, writes the access-log entry durably, then signs.
    async fn finish<A: Answer>(&self, p: &Prepared, mut answer: A, mut event: AccessEvent) -> Result<A> {
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
        let result = run.await;
        if let Err(err) = &result
            && err.reason() != ReasonCode::AccessLogUnavailable
        {
            let mut event = self.prepared_event(p);
            if let Some(subject) = named.and_then(|s| parse_subject("subject", Some(s)).ok()) {
                event.subject_digest = self.subject_digest(&subject).unwrap_or_default();
            }
            self.log_refusal(event, err).await;
        }
        result
    }

    /// A licence at `version` (0: the current one); `None` when it or that version is not held.
    async fn read_licence(&self, dataset: &str, id: &LicenceId, version: u64) -> Result<Option<StoredLicence>> {
        let key = licence_key(dataset, id.as_str());
        self.read_version(LICENCES, key, version, |l: &StoredLicence| l.version).await
    }

    /// A record at `version` (0: the current one); `None` when it or that version is not held.
    async fn read_record(&self, dataset: &str, s: &SubjectId, version: u64) -> Result<Option<StoredRecord>> {
        self.read_version(RECORDS, record_key(dataset, s), version, |r: &StoredRecord| r.version).await
    }

    /// The row at `key` of `table` as of `version`: the current row, or a superseded one
    /// from the history (0 asks for the current one).
    async fn read_version<T>(
        &self,
        table: &'static str,
        key: Vec<u8>,
        version: u64,
        version_of: fn(&T) -> u64,
    ) -> Result<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let db = self.db.clone();
        run_blocking(move || match db.get_json::<T>(table, &key)? {
            Some(current) if version != 0 && version < version_of(&current) => {
                db.get_json::<T>(HISTORY, &history_key(table, &key, version))
            }
            Some(current) if version > version_of(&current) => Ok(None),
            other => Ok(other),
        })
        .await
    }

    fn licence_proto(&self, id: &str, l: &StoredLicence, fields: &BTreeSet<String>, holder: bool) -> Licence {
        let status = licence_status(l, &today_cst(now_ms()));
        Licence {
            licence_id: id.to_string(),
            holder: holder.then(|| Subject {
                kind: match l.holder_kind {
                    SubjectKind::Person => exchange_proto::v1::SubjectKind::Person as i32,
                    SubjectKind::Organisation => exchange_proto::v1::SubjectKind::Organisation as i32,
                },
                id: l.holder_id.clone(),
            }),
            status: status as i32,
            valid_from: l.valid_from.clone(),
            valid_until: l.valid_until.clone(),
            version: l.version,
            fields: field_values(&l.fields, fields),
        }
    }

    fn holder_of(l: &StoredLicence) -> Result<SubjectId> {
        SubjectId::parse(l.holder_kind, &l.holder_id).map_err(|e| NodeError::Internal(format!("stored holder: {e}")))
    }

    // ------------------------------------------------------------------------------------
    // Items

    /// One GetLicence item.
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
            let decision = self.policy(p, &requested)?;
            let l = self.read_licence(&p.dataset, &id, version).await?.ok_or_else(|| {
                NodeError::NotFound(format!("no licence {id}{} in {}", at_version(version), p.dataset))
            })?;
            let holder = Self::holder_of(&l)?;
            let allowed = self.allow(p, &decision, &requested, token, &holder, decision.consent_needed)?;
            let show_holder = p.schema.holder_field.as_ref().is_some_and(|h| allowed.fields.contains(h));
            let licence = self.licence_proto(id.as_str(), &l, &allowed.fields, show_holder);
            let event = self.served_event(
                p,
                &holder,
                allowed.fields.iter().cloned().collect(),
                vec![l.version],
                allowed.consent_id,
            )?;
            self.finish(p, LicenceAnswer { header: None, licence: Some(licence), signature: None }, event).await
        })
        .await
    }

    /// One VerifyLicence item.
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
            let decision = self.policy(p, &requested)?;
            let stored = self.read_licence(&p.dataset, &id, 0).await?;
            let mut event = self.prepared_event(p);
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
                    // Fields beyond the verdict only when asked (least data).
                    let (allowed_fields, consent_id) = if requested.is_empty() {
                        let rate = self.allow(p, &decision, &requested, "", &holder, false)?;
                        (BTreeSet::new(), rate.consent_id)
                    } else {
                        let a = self.allow(p, &decision, &requested, token, &holder, decision.consent_needed)?;
                        (a.fields, a.consent_id)
                    };
                    let verdict = match &claimed {
                        Some(c) if c != &holder => Verdict::HolderMismatch,
                        _ => match licence_status(&l, &today_cst(now_ms())) {
                            LicenceStatus::Revoked => Verdict::Revoked,
                            LicenceStatus::Expired => Verdict::Expired,
                            LicenceStatus::NotYetValid => Verdict::NotYetValid,
                            LicenceStatus::Valid | LicenceStatus::Unspecified => Verdict::Valid,
                        },
                    };
                    let fields = if verdict == Verdict::HolderMismatch {
                        Vec::new()
                    } else {
                        field_values(&l.fields, &allowed_fields)
                    };
                    event.subject_digest = self.subject_digest(&holder)?;
                    event.fields = fields.iter().map(|f| f.name.clone()).collect();
                    event.record_versions = vec![l.version];
                    event.consent_id = consent_id;
                    VerifyLicenceAnswer { verdict: verdict as i32, version: l.version, fields, ..Default::default() }
                }
            };
            self.finish(p, answer, event).await
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
            let holder = parse_subject(&format!("{prefix}holder"), holder)?;
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let decision = self.policy(p, &requested)?;
            let allowed = self.allow(p, &decision, &requested, token, &holder, decision.consent_needed)?;
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
                stored.iter().map(|(id, l)| self.licence_proto(id, l, &allowed.fields, true)).collect();
            let event = self.served_event(
                p,
                &holder,
                allowed.fields.iter().cloned().collect(),
                stored.iter().map(|(_, l)| l.version).collect(),
                allowed.consent_id,
            )?;
            self.finish(p, ListLicencesAnswer { header: None, licences, signature: None }, event).await
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
            let subject = parse_subject(&format!("{prefix}subject"), subject)?;
            let requested = requested_set(&format!("{prefix}fields"), fields)?;
            let decision = self.policy(p, &requested)?;
            let allowed = self.allow(p, &decision, &requested, token, &subject, decision.consent_needed)?;
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
                allowed.consent_id,
            )?;
            self.finish(p, RecordAnswer { header: None, record: Some(record), signature: None }, event).await
        })
        .await
    }

    /// One MatchRecord item.
    pub async fn match_record_item(
        &self,
        p: &Prepared,
        prefix: &str,
        subject: Option<&Subject>,
        claims: &[ClaimedValue],
        token: &str,
    ) -> Result<MatchAnswer> {
        self.item(p, subject, async {
            let subject = parse_subject(&format!("{prefix}subject"), subject)?;
            if claims.is_empty() {
                return Err(NodeError::bad_request(format!("{prefix}claims"), "at least one claim is required"));
            }
            let names: Vec<String> = claims.iter().map(|c| c.name.clone()).collect();
            let requested = requested_set(&format!("{prefix}claims"), &names)?;
            let decision = self.policy(p, &requested)?;
            let allowed = self.allow(p, &decision, &requested, token, &subject, decision.consent_needed)?;
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
                allowed.consent_id,
            )?;
            self.finish(p, MatchAnswer { header: None, version: r.version, matches, signature: None }, event).await
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
            self.log_refusal(self.prepared_event(p), &err).await;
            return Err(err);
        }
        Ok(())
    }

    /// Whether the caller may run provider-side operations (its own department only).
    pub(crate) fn require_own(&self, peer: std::result::Result<PeerIdentity, String>) -> Result<String> {
        let peer = peer.map_err(NodeError::Unauthenticated)?;
        if peer.dept_id != self.dept {
            return Err(NodeError::denied(
                ReasonCode::RoleRequired,
                format!("only {}'s own systems may change or inspect its data, not {}", self.dept, peer.dept_id),
            ));
        }
        Ok(peer.dept_id)
    }

    /// Whether the caller may read the log status (own department or an auditor).
    pub(crate) fn require_own_or_auditor(&self, peer: std::result::Result<PeerIdentity, String>) -> Result<()> {
        let peer = peer.map_err(NodeError::Unauthenticated)?;
        if peer.dept_id == self.dept {
            return Ok(());
        }
        let snap = self.fed.current().ok_or_else(|| NodeError::Unavailable {
            reason: ReasonCode::ConfigStale,
            message: "no federation configuration yet".into(),
        })?;
        let member = self.member(&snap, &peer)?;
        if member.roles.contains(&(Role::Auditor as i32)) {
            Ok(())
        } else {
            Err(NodeError::denied(ReasonCode::RoleRequired, "the log status is for the node's department and auditors"))
        }
    }

    /// Any active member (DescribeDatasets).
    pub(crate) fn require_member(&self, peer: std::result::Result<PeerIdentity, String>) -> Result<()> {
        let peer = peer.map_err(NodeError::Unauthenticated)?;
        if peer.dept_id == self.dept {
            return Ok(());
        }
        let snap = self.fed.fresh(now_ms())?;
        self.member(&snap, &peer).map(|_| ())
    }
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
    let Some(value) = held.fields.get(&claim.name) else {
        return MatchResult::Absent;
    };
    // Canonicalise the claim through the schema: the held record with the claimed value in
    // place validates to the claim's canonical form.
    let mut raw = held.fields.clone();
    raw.insert(claim.name.clone(), claim.value.clone());
    match schema.validate(&raw) {
        Ok(record) if record.get(&claim.name) == Some(value.as_str()) => MatchResult::Match,
        _ => MatchResult::NoMatch,
    }
}

/// The answer and its digest, filled in by the access-log writer once the entry is durable.
type SignedSlot<A> = Option<(A, [u8; 32])>;

/// " at version N" for a versioned read, nothing for the current version.
fn at_version(version: u64) -> String {
    if version == 0 { String::new() } else { format!(" at version {version}") }
}
