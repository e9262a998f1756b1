//! The catalog's handlers: plain methods that know nothing of tonic. Each takes the
//! authenticated [`Caller`] and a request, checks the role, parses the request into domain
//! types, and for a mutation writes the change and the access-log entry that records it in
//! one atomic batch under the writer lock. They block on storage: the gRPC adapter runs
//! them off the async workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_core::checkpoint::NoteSigner;
use exchange_core::digest::{SubjectDigester, key_id, sha256_hex, sign_config};
use exchange_core::ident::{DatasetId, DeptId, PurposeCode, SubjectId, SubjectKind};
use exchange_core::schema::{Schema, SchemaRef};
use exchange_core::token::{ConsentClaims, TokenIssuer};
use exchange_pki::PeerIdentity;
use exchange_proto::v1::{
    AccessEvent, ApplyGrantRequest, CatalogKey, ConfigGrant, Consent, ConsentChannel, ConsentMethod, ConsentToken,
    Dataset, DatasetKind, DecideGrantRequest, EventKind, FederationConfig, Grant, GrantStatus,
    IssueConsentTokenRequest, ListDatasetsRequest, ListDatasetsResponse, ListGrantsRequest, ListGrantsResponse, Member,
    MemberStatus, Outcome, ReasonCode, RecordConsentRequest, RevokeConsentRequest, RevokedConsent, Role, SchemaVersion,
    ShareClass, SignedFederationConfig, Subject, UpdateMemberRequest,
};
use exchange_store::{ScanRange, WriteBatch};
use prost::Message;
use tokio::sync::watch;

use crate::db::{
    CONSENTS, DATASETS, Db, GRANTS, MEMBERS, META, META_CONFIG, META_CONFIG_PENDING, META_CONFIG_VERSION,
    META_NEXT_GRANT, SCHEMAS, put_meta_u64, put_msg, schema_key, schema_prefix,
};
use crate::error::{CatalogError, Result};
use crate::log::{AccessLog, Staged};
use crate::screen::no_identifier;

mod access_log;

/// Longest accepted free text (names, notes, legal bases), in characters.
const MAX_TEXT: usize = 500;

/// Now, Unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The role's name as operators write it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Unspecified => "unspecified",
        Role::Operator => "operator",
        Role::Department => "department",
        Role::Portal => "portal",
        Role::Auditor => "auditor",
    }
}

/// An authenticated caller: a member in good standing.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its department id, from its certificate.
    pub dept: String,
    /// Its member record.
    pub member: Member,
}

impl Caller {
    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.member.roles.contains(&(role as i32))
    }

    /// Refuses a caller without `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.has(role) {
            Ok(())
        } else {
            Err(CatalogError::RoleRequired { needed: role_name(role), caller: self.dept.clone() })
        }
    }

    /// Refuses a caller with none of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<()> {
        if roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| role_name(*r)).collect();
            Err(CatalogError::RoleRequired { needed: leak_join(&names), caller: self.dept.clone() })
        }
    }
}

fn leak_join(names: &[&str]) -> &'static str {
    // Role sets are a handful of fixed combinations; name them without allocation games.
    match names {
        ["auditor", "portal", "department"] => "auditor, portal or department",
        ["department", "portal"] => "department or portal",
        _ => "required",
    }
}

/// The catalog's settings that handlers need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The catalog's own department id, the recorder of its administrative acts.
    pub catalog_id: String,
    /// The access log's checkpoint origin; also the consent tokens' issuer.
    pub log_origin: String,
    /// Lifetime of consent tokens, seconds.
    pub token_lifetime_secs: i64,
}

/// The catalog's state and handlers.
pub struct Catalog {
    db: Db,
    log: AccessLog,
    writer: Mutex<()>,
    settings: Settings,
    signing_key: SigningKey,
    note_signer: NoteSigner,
    token_issuer: TokenIssuer,
    digest_key: [u8; 32],
    digester: SubjectDigester,
    config_tx: watch::Sender<Arc<SignedFederationConfig>>,
    /// The digest of the last refused batch logged per node.
    refused_appends: Mutex<HashMap<String, String>>,
    /// A counter per member, raised to end that member's watch streams (see
    /// [`Catalog::stream_resets`]).
    stream_resets: watch::Sender<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn text(field: &str, value: &str, required: bool) -> Result<String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(CatalogError::bad_request(field, "is required"));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(CatalogError::bad_request(field, format!("is longer than {MAX_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(CatalogError::bad_request(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

fn dept(field: &str, value: &str) -> Result<DeptId> {
    DeptId::parse(value).map_err(|e| CatalogError::bad_ident(field, e))
}

fn dataset_id(field: &str, value: &str) -> Result<DatasetId> {
    DatasetId::parse(value).map_err(|e| CatalogError::bad_ident(field, e))
}

fn subject(field: &str, s: Option<&Subject>) -> Result<SubjectId> {
    let s = s.ok_or_else(|| CatalogError::bad_request(field, "is required"))?;
    let kind = match SubjectKindProto::try_from(s.kind) {
        Ok(SubjectKindProto::Person) => SubjectKind::Person,
        Ok(SubjectKindProto::Organisation) => SubjectKind::Organisation,
        _ => return Err(CatalogError::bad_request(format!("{field}.kind"), "must be PERSON or ORGANISATION")),
    };
    SubjectId::parse(kind, &s.id).map_err(|e| CatalogError::bad_ident(format!("{field}.id"), e))
}

use exchange_proto::v1::SubjectKind as SubjectKindProto;

fn roles(field: &str, raw: &[i32]) -> Result<Vec<i32>> {
    let mut out = BTreeSet::new();
    for r in raw {
        match Role::try_from(*r) {
            Ok(Role::Unspecified) | Err(_) => {
                return Err(CatalogError::bad_request(field, format!("{r} is not a role")));
            }
            Ok(role) => {
                out.insert(role as i32);
            }
        }
    }
    if out.is_empty() {
        return Err(CatalogError::bad_request(field, "at least one role is required"));
    }
    Ok(out.into_iter().collect())
}

fn signing_key_field(field: &str, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        CatalogError::bad_request(field, format!("must be a 32-byte Ed25519 public key, got {} bytes", bytes.len()))
    })?;
    let key =
        VerifyingKey::from_bytes(&arr).map_err(|_| CatalogError::bad_request(field, "is not an Ed25519 public key"))?;
    if key.is_weak() {
        return Err(CatalogError::bad_request(field, "is a weak (small-order) Ed25519 key"));
    }
    Ok(())
}

fn fingerprints(field: &str, fps: &[Vec<u8>]) -> Result<()> {
    for (i, fp) in fps.iter().enumerate() {
        if fp.len() != 32 {
            return Err(CatalogError::bad_request(format!("{field}[{i}]"), "must be a 32-byte SHA-256 fingerprint"));
        }
    }
    Ok(())
}

fn endpoint(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !value.is_empty() && !value.starts_with("https://") {
        return Err(CatalogError::bad_request(field, "must be an https:// address (every connection is mutual TLS)"));
    }
    text(field, value, false)
}

impl Catalog {
    /// Builds the catalog over `db`, publishing a first configuration version.
    pub fn open(db: Db, settings: Settings, signing_key: SigningKey, digest_key: [u8; 32]) -> Result<Arc<Self>> {
        let log = AccessLog::open(&db, settings.log_origin.clone())?;
        let note_signer = NoteSigner::new(settings.log_origin.clone(), signing_key.clone())
            .map_err(|e| CatalogError::Internal(format!("log origin cannot name a note key: {e}")))?;
        let token_issuer = TokenIssuer::new(settings.log_origin.clone(), &signing_key)
            .map_err(|e| CatalogError::Internal(format!("token issuer: {e}")))?;
        let (config_tx, _) = watch::channel(Arc::new(SignedFederationConfig::default()));
        let catalog = Arc::new(Self {
            log,
            writer: Mutex::new(()),
            settings,
            note_signer,
            token_issuer,
            digester: SubjectDigester::new(digest_key),
            digest_key,
            signing_key,
            config_tx,
            refused_appends: Mutex::new(HashMap::new()),
            stream_resets: watch::channel(BTreeMap::new()).0,
            db,
        });
        {
            let _w = catalog.lock();
            catalog.publish_config()?;
        }
        Ok(catalog)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave storage half-written (batches are
        // atomic), so a poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The catalog's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The catalog's public signing key.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// A receiver of configuration versions (for watch streams).
    pub fn subscribe(&self) -> watch::Receiver<Arc<SignedFederationConfig>> {
        self.config_tx.subscribe()
    }

    /// A receiver of the per-member reset counters: a member's watch streams end when its
    /// counter changes, so that its node reconnects and fetches what it is newly entitled to
    /// (the subject digest key, once it provides personal data).
    pub fn stream_resets(&self) -> watch::Receiver<BTreeMap<String, u64>> {
        self.stream_resets.subscribe()
    }

    /// Ends the watch streams of `dept`.
    fn reset_streams(&self, dept: &str) {
        self.stream_resets.send_modify(|counters| *counters.entry(dept.to_string()).or_default() += 1);
    }

    /// Resolves a certificate identity to a member in good standing.
    pub fn authenticate(&self, peer: &PeerIdentity) -> Result<Caller> {
        let member: Member = self
            .db
            .get(MEMBERS, peer.dept_id.as_bytes())?
            .ok_or_else(|| CatalogError::UnknownMember(peer.dept_id.clone()))?;
        if member.status == MemberStatus::Suspended as i32 {
            return Err(CatalogError::Suspended(peer.dept_id.clone()));
        }
        if !member.cert_fingerprints.is_empty()
            && !member.cert_fingerprints.iter().any(|f| f[..] == peer.fingerprint[..])
        {
            return Err(CatalogError::CertificateNotRegistered(peer.dept_id.clone()));
        }
        Ok(Caller { dept: peer.dept_id.clone(), member })
    }

    /// Adds members given in the configuration file that do not exist yet (the first
    /// operator, typically). Existing members are left as they are.
    pub fn bootstrap_member(&self, member: Member) -> Result<bool> {
        let _w = self.lock();
        if self.db.get::<Member>(MEMBERS, member.dept_id.as_bytes())?.is_some() {
            return Ok(false);
        }
        let member = self.checked_new_member(member)?;
        let event = self.admin_event(&self.settings.catalog_id.clone(), "member.bootstrap", &member.dept_id, "", "");
        self.mutate(vec![event], true, |batch| {
            put_msg(batch, MEMBERS, member.dept_id.as_bytes().to_vec(), &member);
            Ok(())
        })?;
        Ok(true)
    }

    // ------------------------------------------------------------------------------------
    // Writing

    fn admin_event(&self, requester: &str, action: &str, provider: &str, dataset: &str, note: &str) -> AccessEvent {
        AccessEvent {
            recorder: self.settings.catalog_id.clone(),
            time_unix_ms: now_ms(),
            kind: EventKind::Admin as i32,
            requester: requester.into(),
            provider: provider.into(),
            dataset: dataset.into(),
            action: action.into(),
            outcome: Outcome::Served as i32,
            note: note.into(),
            ..Default::default()
        }
    }

    /// Writes `change` and the events recording it in one batch (the caller holds the
    /// writer lock), then republishes the configuration when it changed.
    fn mutate(
        &self,
        mut events: Vec<AccessEvent>,
        affects_config: bool,
        change: impl FnOnce(&mut WriteBatch) -> Result<()>,
    ) -> Result<()> {
        // A change committed earlier whose publication failed goes out first.
        self.publish_pending()?;
        let mut batch = WriteBatch::new();
        change(&mut batch)?;
        if affects_config {
            // The change and the duty to publish it commit together: if the publication
            // below fails, the next change, a retried call or the next start publishes it.
            put_meta_u64(&mut batch, META_CONFIG_PENDING, 1);
        }
        let first = self.log.next_sequence(&self.db, &self.settings.catalog_id)?;
        for (seq, e) in (first..).zip(events.iter_mut()) {
            e.recorder = self.settings.catalog_id.clone();
            e.sequence = seq;
        }
        let mut staged = Staged::default();
        self.log.stage(&self.db, &events, &mut batch, &mut staged)?;
        self.db.commit(batch)?;
        self.log.committed(&staged);
        if affects_config {
            self.publish_config()?;
        }
        Ok(())
    }

    /// Publishes the configuration if a committed change is still unpublished (writer lock
    /// held). A retried revocation calls it, so that the retry publishes what the first call
    /// committed.
    fn publish_pending(&self) -> Result<()> {
        if self.db.meta_u64(META_CONFIG_PENDING)? != 0 { self.publish_config() } else { Ok(()) }
    }

    /// The heartbeat: re-signs the current configuration with a fresh `issued_at`, same
    /// version and content, and broadcasts it. Nodes count their configuration's age from the
    /// newest signed `issued_at`, so a catalog that stalls, or anyone replaying old copies,
    /// leads to CONFIG_STALE after the maximum age, as an outage does. An unpublished change
    /// is published first (as a new version).
    pub fn heartbeat(&self) -> Result<()> {
        let _w = self.lock();
        if self.db.meta_u64(META_CONFIG_PENDING)? != 0 {
            return self.publish_config();
        }
        let current = self.config_tx.borrow().clone();
        let mut body = FederationConfig::decode(current.body.as_slice())
            .map_err(|e| CatalogError::Internal(format!("stored configuration does not decode: {e}")))?;
        body.issued_at_unix_ms = now_ms().max(body.issued_at_unix_ms + 1);
        self.sign_store_broadcast(body.encode_to_vec(), WriteBatch::new())
    }

    /// Builds, signs, stores and broadcasts a new configuration version (writer lock held).
    fn publish_config(&self) -> Result<()> {
        let now = now_ms();
        let version = self.db.meta_u64(META_CONFIG_VERSION)? + 1;
        let members: Vec<Member> = self.db.all(MEMBERS)?;
        let grants: Vec<Grant> = self.db.all(GRANTS)?;
        let schemas: Vec<SchemaVersion> = self.db.all(SCHEMAS)?;
        let datasets: Vec<Dataset> = self.db.all(DATASETS)?;
        let consents: Vec<Consent> = self.db.all(CONSENTS)?;
        let public = self.public_key();
        let body = FederationConfig {
            version,
            issued_at_unix_ms: now,
            members,
            grants: grants
                .into_iter()
                .filter(|g| g.status == GrantStatus::Approved as i32)
                .filter(|g| g.expires_at_unix_ms == 0 || g.expires_at_unix_ms > now)
                .map(|g| ConfigGrant {
                    id: g.id,
                    requester: g.requester,
                    dataset: g.dataset,
                    purposes: g.purposes,
                    fields: g.fields,
                    consent_required: g.consent_required,
                    rate_limit_per_minute: g.rate_limit_per_minute,
                    expires_at_unix_ms: g.expires_at_unix_ms,
                })
                .collect(),
            schemas,
            datasets,
            revoked_consents: consents
                .into_iter()
                .filter(|c| c.revoked_at_unix_ms != 0 && c.expires_at_unix_ms > now)
                .map(|c| RevokedConsent {
                    consent_id: c.id,
                    revoked_at_unix_ms: c.revoked_at_unix_ms,
                    expires_at_unix_ms: c.expires_at_unix_ms,
                })
                .collect(),
            catalog_keys: vec![CatalogKey {
                key_id: key_id(public.as_bytes()),
                public_key: public.as_bytes().to_vec(),
            }],
            log_origin: self.settings.log_origin.clone(),
        }
        .encode_to_vec();
        let mut batch = WriteBatch::new();
        put_meta_u64(&mut batch, META_CONFIG_VERSION, version);
        put_meta_u64(&mut batch, META_CONFIG_PENDING, 0);
        self.sign_store_broadcast(body, batch)?;
        tracing::info!(version, "federation configuration published");
        Ok(())
    }

    /// Signs an encoded configuration, stores it with `batch` in one write and hands it to
    /// every watcher (writer lock held).
    fn sign_store_broadcast(&self, body: Vec<u8>, mut batch: WriteBatch) -> Result<()> {
        let signed = SignedFederationConfig {
            signature: sign_config(&self.signing_key, &body).to_vec(),
            key_id: key_id(self.public_key().as_bytes()),
            body,
        };
        batch.put(META, META_CONFIG.to_vec(), signed.encode_to_vec());
        self.db.commit(batch)?;
        self.config_tx.send_replace(Arc::new(signed));
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Members

    fn checked_new_member(&self, m: Member) -> Result<Member> {
        let id = dept("member.dept_id", &m.dept_id)?;
        let now = now_ms();
        signing_key_field("member.node_signing_key", &m.node_signing_key)?;
        fingerprints("member.cert_fingerprints", &m.cert_fingerprints)?;
        Ok(Member {
            dept_id: id.to_string(),
            name: text("member.name", &m.name, true)?,
            endpoint: endpoint("member.endpoint", &m.endpoint)?,
            node_signing_key: m.node_signing_key,
            cert_fingerprints: m.cert_fingerprints,
            roles: roles("member.roles", &m.roles)?,
            status: MemberStatus::Active as i32,
            created_at_unix_ms: now,
            updated_at_unix_ms: now,
        })
    }

    /// Registers a member (operator).
    pub fn register_member(&self, caller: &Caller, m: Option<Member>) -> Result<Member> {
        caller.require(Role::Operator)?;
        let m = self.checked_new_member(m.ok_or_else(|| CatalogError::bad_request("member", "is required"))?)?;
        let _w = self.lock();
        if self.db.get::<Member>(MEMBERS, m.dept_id.as_bytes())?.is_some() {
            return Err(CatalogError::AlreadyExists(format!("member {} already exists: use UpdateMember", m.dept_id)));
        }
        let event = self.admin_event(&caller.dept, "member.register", &m.dept_id, "", "");
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        Ok(m)
    }

    fn existing_member(&self, field: &str, id: &str) -> Result<Member> {
        let id = dept(field, id)?;
        self.db
            .get(MEMBERS, id.as_str().as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("member {id} does not exist")))
    }

    /// Updates a member (operator).
    pub fn update_member(&self, caller: &Caller, r: UpdateMemberRequest) -> Result<Member> {
        caller.require(Role::Operator)?;
        let _w = self.lock();
        let mut m = self.existing_member("dept_id", &r.dept_id)?;
        if !r.name.trim().is_empty() {
            m.name = text("name", &r.name, true)?;
        }
        if !r.endpoint.trim().is_empty() {
            m.endpoint = endpoint("endpoint", &r.endpoint)?;
        }
        if !r.node_signing_key.is_empty() {
            signing_key_field("node_signing_key", &r.node_signing_key)?;
            m.node_signing_key = r.node_signing_key;
        }
        if r.replace_cert_fingerprints {
            fingerprints("cert_fingerprints", &r.cert_fingerprints)?;
            m.cert_fingerprints = r.cert_fingerprints;
        }
        if !r.roles.is_empty() {
            m.roles = roles("roles", &r.roles)?;
        }
        m.updated_at_unix_ms = now_ms();
        let event = self.admin_event(&caller.dept, "member.update", &m.dept_id, "", "");
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        if r.replace_cert_fingerprints {
            // A stream opened with a certificate no longer listed must not go on.
            self.reset_streams(&m.dept_id);
        }
        Ok(m)
    }

    /// Suspends a member (operator).
    pub fn suspend_member(&self, caller: &Caller, dept_id: &str, reason: &str) -> Result<Member> {
        caller.require(Role::Operator)?;
        let reason = text("reason", reason, false)?;
        // The reason is the note of the entry that records the suspension.
        no_identifier("reason", &reason)?;
        let _w = self.lock();
        let mut m = self.existing_member("dept_id", dept_id)?;
        m.status = MemberStatus::Suspended as i32;
        m.updated_at_unix_ms = now_ms();
        let event = self.admin_event(&caller.dept, "member.suspend", &m.dept_id, "", &reason);
        self.mutate(vec![event], true, |b| {
            put_msg(b, MEMBERS, m.dept_id.as_bytes().to_vec(), &m);
            Ok(())
        })?;
        // A suspended member's open watch streams end now; reconnecting is refused.
        self.reset_streams(&m.dept_id);
        Ok(m)
    }

    /// Gets a member.
    pub fn get_member(&self, _caller: &Caller, dept_id: &str) -> Result<Member> {
        self.existing_member("dept_id", dept_id)
    }

    /// Lists members.
    pub fn list_members(&self, _caller: &Caller) -> Result<Vec<Member>> {
        self.db.all(MEMBERS)
    }

    // ------------------------------------------------------------------------------------
    // Schemas

    /// Registers a schema version (operator).
    pub fn register_schema(&self, caller: &Caller, definition_json: &str) -> Result<SchemaVersion> {
        caller.require(Role::Operator)?;
        let schema = Schema::from_json(definition_json)
            .map_err(|e| CatalogError::bad_request("definition_json", e.to_string()))?;
        let reference = schema.reference.clone();
        let name = reference.name().to_string();
        let version = reference.version();
        let _w = self.lock();
        if self.db.get::<SchemaVersion>(SCHEMAS, &schema_key(&name, version))?.is_some() {
            return Err(CatalogError::AlreadyExists(format!(
                "schema {reference} is already registered: register version {} instead",
                version + 1
            )));
        }
        let latest = self.latest_schema(&name)?;
        match (&latest, version) {
            (None, 1) => {}
            (None, v) => {
                return Err(CatalogError::precondition(
                    ReasonCode::SchemaIncompatible,
                    format!("schema {name} has no versions yet: register version 1 first, not {v}"),
                ));
            }
            (Some((prev_version, prev)), v) => {
                if v != prev_version + 1 {
                    return Err(CatalogError::precondition(
                        ReasonCode::SchemaIncompatible,
                        format!(
                            "the latest version of {name} is {prev_version}: the next one must be {}",
                            prev_version + 1
                        ),
                    ));
                }
                if let Err(problems) = prev.check_successor(&schema) {
                    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(CatalogError::precondition(
                        ReasonCode::SchemaIncompatible,
                        format!("{reference} is not compatible with version {prev_version}: {}", list.join("; ")),
                    ));
                }
            }
        }
        let canonical =
            serde_json::to_string(&schema).map_err(|e| CatalogError::Internal(format!("schema json: {e}")))?;
        let sv = SchemaVersion {
            reference: reference.to_string(),
            digest: sha256_hex(canonical.as_bytes()),
            definition_json: canonical,
            registered_at_unix_ms: now_ms(),
        };
        let event = self.admin_event(&caller.dept, "schema.register", "", "", &sv.reference);
        self.mutate(vec![event], true, |b| {
            put_msg(b, SCHEMAS, schema_key(&name, version), &sv);
            Ok(())
        })?;
        Ok(sv)
    }

    fn latest_schema(&self, name: &str) -> Result<Option<(u32, Schema)>> {
        let rows: Vec<(Vec<u8>, SchemaVersion)> =
            self.db.scan(SCHEMAS, ScanRange::prefix(schema_prefix(name)).reverse(), 1)?;
        match rows.into_iter().next() {
            Some((_, sv)) => {
                let schema = Schema::from_json(&sv.definition_json)
                    .map_err(|e| CatalogError::Internal(format!("stored schema {}: {e}", sv.reference)))?;
                Ok(Some((schema.reference.version(), schema)))
            }
            None => Ok(None),
        }
    }

    /// Loads a registered schema by reference.
    pub fn schema(&self, reference: &SchemaRef) -> Result<Option<Schema>> {
        match self.db.get::<SchemaVersion>(SCHEMAS, &schema_key(reference.name(), reference.version()))? {
            Some(sv) => Schema::from_json(&sv.definition_json)
                .map(Some)
                .map_err(|e| CatalogError::Internal(format!("stored schema {}: {e}", sv.reference))),
            None => Ok(None),
        }
    }

    /// Gets a schema version (0 = latest).
    pub fn get_schema(&self, _caller: &Caller, name: &str, version: u32) -> Result<SchemaVersion> {
        if name.is_empty() {
            return Err(CatalogError::bad_request("name", "is required"));
        }
        let found = if version == 0 {
            let rows: Vec<(Vec<u8>, SchemaVersion)> =
                self.db.scan(SCHEMAS, ScanRange::prefix(schema_prefix(name)).reverse(), 1)?;
            rows.into_iter().next().map(|(_, sv)| sv)
        } else {
            self.db.get(SCHEMAS, &schema_key(name, version))?
        };
        found.ok_or_else(|| {
            CatalogError::NotFound(if version == 0 {
                format!("schema {name} is not registered")
            } else {
                format!("schema {name}@{version} is not registered")
            })
        })
    }

    /// Lists schemas.
    pub fn list_schemas(&self, _caller: &Caller, all_versions: bool) -> Result<Vec<SchemaVersion>> {
        let all: Vec<SchemaVersion> = self.db.all(SCHEMAS)?;
        if all_versions {
            return Ok(all);
        }
        let mut latest: Vec<SchemaVersion> = Vec::new();
        for sv in all {
            let name = sv.reference.split('@').next().unwrap_or("").to_string();
            match latest.last_mut() {
                Some(last) if last.reference.split('@').next() == Some(name.as_str()) => *last = sv,
                _ => latest.push(sv),
            }
        }
        Ok(latest)
    }

    // ------------------------------------------------------------------------------------
    // Datasets

    /// Publishes one of the caller's datasets (department).
    pub fn publish_dataset(&self, caller: &Caller, d: Option<Dataset>) -> Result<Dataset> {
        caller.require(Role::Department)?;
        let d = d.ok_or_else(|| CatalogError::bad_request("dataset", "is required"))?;
        let id = dataset_id("dataset.id", &d.id)?;
        if id.provider().as_str() != caller.dept {
            return Err(CatalogError::Forbidden(format!(
                "{} can publish only its own datasets (ids starting with {}/)",
                caller.dept, caller.dept
            )));
        }
        let kind = DatasetKind::try_from(d.kind).unwrap_or(DatasetKind::Unspecified);
        if kind == DatasetKind::Unspecified {
            return Err(CatalogError::bad_request("dataset.kind", "must be LICENCE or RECORD"));
        }
        let share = ShareClass::try_from(d.share_class).unwrap_or(ShareClass::Unspecified);
        if share == ShareClass::Unspecified {
            return Err(CatalogError::bad_request(
                "dataset.share_class",
                "must be UNCONDITIONAL, CONDITIONAL or NOT_SHARED",
            ));
        }
        let reference = SchemaRef::parse(&d.schema).map_err(|e| CatalogError::bad_ident("dataset.schema", e))?;
        let schema = self.schema(&reference)?.ok_or_else(|| {
            CatalogError::NotFound(format!("schema {reference} is not registered: the operator registers it first"))
        })?;
        if kind == DatasetKind::Licence && schema.holder_field.is_none() {
            return Err(CatalogError::bad_request(
                "dataset.schema",
                format!("{reference} has no holder field, so it cannot describe licences"),
            ));
        }
        let dataset = Dataset {
            id: id.to_string(),
            provider: caller.dept.clone(),
            kind: kind as i32,
            schema: reference.to_string(),
            share_class: share as i32,
            legal_basis: text("dataset.legal_basis", &d.legal_basis, true)?,
            description_zh: text("dataset.description_zh", &d.description_zh, false)?,
            description_en: text("dataset.description_en", &d.description_en, false)?,
            update_cycle: text("dataset.update_cycle", &d.update_cycle, false)?,
            record_count: d.record_count,
            last_updated_unix_ms: d.last_updated_unix_ms,
            published_at_unix_ms: now_ms(),
            personal_data: schema.has_personal_data(),
        };
        let _w = self.lock();
        let provided_personal = self.provides_personal_data(&caller.dept)?;
        let event = self.admin_event(&caller.dept, "dataset.publish", &caller.dept, &dataset.id, &dataset.schema);
        self.mutate(vec![event], true, |b| {
            put_msg(b, DATASETS, dataset.id.as_bytes().to_vec(), &dataset);
            Ok(())
        })?;
        if dataset.personal_data && !provided_personal {
            // Newly entitled to the subject digest key: its node fetches it on reconnecting.
            self.reset_streams(&caller.dept);
        }
        Ok(dataset)
    }

    /// Whether `dept` provides a published dataset that holds personal data.
    fn provides_personal_data(&self, dept: &str) -> Result<bool> {
        let datasets: Vec<Dataset> = self.db.all(DATASETS)?;
        Ok(datasets.iter().any(|d| d.provider == dept && d.personal_data))
    }

    fn existing_dataset(&self, field: &str, id: &str) -> Result<Dataset> {
        let id = dataset_id(field, id)?;
        self.db.get(DATASETS, id.as_str().as_bytes())?.ok_or_else(|| CatalogError::InvalidArgument {
            field: field.into(),
            message: format!("dataset {id} is not in the catalog"),
            reason: ReasonCode::UnknownDataset,
        })
    }

    /// Gets a dataset.
    pub fn get_dataset(&self, _caller: &Caller, id: &str) -> Result<Dataset> {
        let id = dataset_id("id", id)?;
        self.db
            .get(DATASETS, id.as_str().as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("dataset {id} is not in the catalog")))
    }

    /// Lists and searches datasets.
    pub fn list_datasets(&self, _caller: &Caller, r: &ListDatasetsRequest) -> Result<ListDatasetsResponse> {
        let page_size = match r.page.as_ref().map(|p| p.page_size).unwrap_or(0) {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let token = r.page.as_ref().map(|p| p.page_token.clone()).unwrap_or_default();
        let query = r.query.to_lowercase();
        let all: Vec<Dataset> = self.db.all(DATASETS)?;
        let mut out: Vec<Dataset> = all
            .into_iter()
            .filter(|d| token.is_empty() || d.id > token)
            .filter(|d| r.provider.is_empty() || d.provider == r.provider)
            .filter(|d| r.kind == 0 || d.kind == r.kind)
            .filter(|d| {
                query.is_empty()
                    || [&d.id, &d.description_zh, &d.description_en, &d.schema, &d.legal_basis]
                        .iter()
                        .any(|t| t.to_lowercase().contains(&query))
            })
            .take(page_size + 1)
            .collect();
        let next = if out.len() > page_size {
            out.truncate(page_size);
            out.last().map(|d| d.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListDatasetsResponse { datasets: out, next_page_token: next })
    }

    // ------------------------------------------------------------------------------------
    // Grants

    /// Applies for a grant (department; the caller is the requester).
    pub fn apply_grant(&self, caller: &Caller, r: ApplyGrantRequest) -> Result<Grant> {
        caller.require(Role::Department)?;
        let dataset = self.existing_dataset("dataset", &r.dataset)?;
        if dataset.share_class == ShareClass::NotShared as i32 {
            return Err(CatalogError::precondition(
                ReasonCode::DatasetNotShared,
                format!("dataset {} is classed not shared (不予共享): no grant can be given on it", dataset.id),
            ));
        }
        let reference = SchemaRef::parse(&dataset.schema)
            .map_err(|e| CatalogError::Internal(format!("stored dataset schema: {e}")))?;
        let schema =
            self.schema(&reference)?.ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?;
        if r.purposes.is_empty() {
            return Err(CatalogError::bad_request(
                "purposes",
                "at least one purpose code (service item code) is required",
            ));
        }
        let mut purposes = BTreeSet::new();
        for (i, p) in r.purposes.iter().enumerate() {
            let p = PurposeCode::parse(p).map_err(|e| CatalogError::InvalidArgument {
                field: format!("purposes[{i}]"),
                message: e.to_string(),
                reason: ReasonCode::PurposeInvalid,
            })?;
            purposes.insert(p.to_string());
        }
        if r.fields.is_empty() {
            return Err(CatalogError::bad_request("fields", "at least one field is required"));
        }
        let mut fields = BTreeSet::new();
        let mut personal = false;
        for (i, f) in r.fields.iter().enumerate() {
            let spec = schema.field(f).ok_or_else(|| CatalogError::InvalidArgument {
                field: format!("fields[{i}]"),
                message: format!("field {f} is not in schema {reference}"),
                reason: ReasonCode::FieldNotInSchema,
            })?;
            personal |= spec.classification.is_personal();
            fields.insert(f.clone());
        }
        let now = now_ms();
        if r.expires_at_unix_ms != 0 && r.expires_at_unix_ms <= now {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "is in the past"));
        }
        let legal_basis = text("legal_basis", &r.legal_basis, true)?;
        let service_item = text("service_item", &r.service_item, true)?;
        let _w = self.lock();
        let number = self.db.meta_u64(META_NEXT_GRANT)? + 1;
        let grant = Grant {
            id: format!("G{number:06}"),
            requester: caller.dept.clone(),
            dataset: dataset.id.clone(),
            purposes: purposes.into_iter().collect(),
            fields: fields.into_iter().collect(),
            // Personal data is never served without the subject's consent.
            consent_required: r.consent_required || personal,
            rate_limit_per_minute: r.rate_limit_per_minute,
            expires_at_unix_ms: r.expires_at_unix_ms,
            legal_basis,
            service_item,
            status: GrantStatus::Pending as i32,
            created_at_unix_ms: now,
            decided_at_unix_ms: 0,
            decision_note: String::new(),
        };
        let event = self.admin_event(&caller.dept, "grant.apply", &dataset.provider, &dataset.id, &grant.id);
        self.mutate(vec![event], false, |b| {
            put_meta_u64(b, META_NEXT_GRANT, number);
            put_msg(b, GRANTS, grant.id.as_bytes().to_vec(), &grant);
            Ok(())
        })?;
        Ok(grant)
    }

    fn existing_grant(&self, id: &str) -> Result<Grant> {
        if id.is_empty() {
            return Err(CatalogError::bad_request("grant_id", "is required"));
        }
        self.db.get(GRANTS, id.as_bytes())?.ok_or_else(|| CatalogError::NotFound(format!("grant {id} does not exist")))
    }

    /// Approves, rejects or revokes a grant.
    pub fn decide_grant(&self, caller: &Caller, r: &DecideGrantRequest, to: GrantStatus) -> Result<Grant> {
        caller.require(Role::Department)?;
        let note = text("note", &r.note, false)?;
        let _w = self.lock();
        let mut grant = self.existing_grant(&r.grant_id)?;
        let dataset = self.existing_dataset("grant.dataset", &grant.dataset)?;
        let is_provider = dataset.provider == caller.dept;
        let is_requester = grant.requester == caller.dept;
        let status = GrantStatus::try_from(grant.status).unwrap_or(GrantStatus::Unspecified);
        let action = match to {
            GrantStatus::Approved | GrantStatus::Rejected => {
                if !is_provider {
                    return Err(CatalogError::Forbidden(format!(
                        "only the provider {} may decide grants on {}",
                        dataset.provider, dataset.id
                    )));
                }
                if status != GrantStatus::Pending {
                    return Err(CatalogError::precondition(
                        ReasonCode::InvalidState,
                        format!(
                            "grant {} is {}, not pending: only a pending grant can be decided",
                            grant.id,
                            status.as_str_name()
                        ),
                    ));
                }
                if to == GrantStatus::Approved && grant.expires_at_unix_ms != 0 && grant.expires_at_unix_ms <= now_ms()
                {
                    return Err(CatalogError::precondition(
                        ReasonCode::GrantExpired,
                        format!("grant {} has already expired", grant.id),
                    ));
                }
                if to == GrantStatus::Approved { "grant.approve" } else { "grant.reject" }
            }
            _ => {
                if !is_provider && !is_requester {
                    return Err(CatalogError::Forbidden(format!(
                        "only the requester {} or the provider {} may revoke grant {}",
                        grant.requester, dataset.provider, grant.id
                    )));
                }
                if status == GrantStatus::Revoked {
                    // A retry of a revocation: answered as done, and published if the first
                    // call's publication failed.
                    self.publish_pending()?;
                    return Ok(grant);
                }
                if !matches!(status, GrantStatus::Pending | GrantStatus::Approved) {
                    return Err(CatalogError::precondition(
                        ReasonCode::InvalidState,
                        format!("grant {} is {}: there is nothing to revoke", grant.id, status.as_str_name()),
                    ));
                }
                "grant.revoke"
            }
        };
        grant.status = to as i32;
        grant.decided_at_unix_ms = now_ms();
        grant.decision_note = note;
        let event = self.admin_event(&caller.dept, action, &dataset.provider, &dataset.id, &grant.id);
        self.mutate(vec![event], true, |b| {
            put_msg(b, GRANTS, grant.id.as_bytes().to_vec(), &grant);
            Ok(())
        })?;
        Ok(grant)
    }

    /// Lists the grants the caller may see.
    pub fn list_grants(&self, caller: &Caller, r: &ListGrantsRequest) -> Result<ListGrantsResponse> {
        let sees_all = caller.has(Role::Operator) || caller.has(Role::Auditor);
        let all: Vec<Grant> = self.db.all(GRANTS)?;
        let grants = all
            .into_iter()
            .filter(|g| r.dataset.is_empty() || g.dataset == r.dataset)
            .filter(|g| r.requester.is_empty() || g.requester == r.requester)
            .filter(|g| r.status == 0 || g.status == r.status)
            .filter(|g| {
                sees_all || g.requester == caller.dept || g.dataset.split('/').next() == Some(caller.dept.as_str())
            })
            .collect();
        Ok(ListGrantsResponse { grants })
    }

    // ------------------------------------------------------------------------------------
    // Consent

    /// Records a consent (portal).
    pub fn record_consent(&self, caller: &Caller, r: RecordConsentRequest) -> Result<Consent> {
        caller.require(Role::Portal)?;
        let subject_id = subject("subject", r.subject.as_ref())?;
        let requester = dept("requester", &r.requester)?;
        self.existing_member("requester", requester.as_str())?;
        if r.datasets.is_empty() {
            return Err(CatalogError::bad_request("datasets", "at least one dataset is required"));
        }
        let mut schemas = Vec::new();
        for (i, d) in r.datasets.iter().enumerate() {
            let dataset = self.existing_dataset(&format!("datasets[{i}]"), d)?;
            let reference = SchemaRef::parse(&dataset.schema)
                .map_err(|e| CatalogError::Internal(format!("stored schema ref: {e}")))?;
            schemas.push(
                self.schema(&reference)?
                    .ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?,
            );
        }
        if r.fields.is_empty() {
            return Err(CatalogError::bad_request("fields", "at least one field is required"));
        }
        for (i, f) in r.fields.iter().enumerate() {
            if !schemas.iter().any(|s| s.field(f).is_some()) {
                return Err(CatalogError::InvalidArgument {
                    field: format!("fields[{i}]"),
                    message: format!("field {f} is in none of the consented datasets' schemas"),
                    reason: ReasonCode::FieldNotInSchema,
                });
            }
        }
        let purpose = PurposeCode::parse(&r.purpose_code).map_err(|e| CatalogError::InvalidArgument {
            field: "purpose_code".into(),
            message: e.to_string(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        let now = now_ms();
        if r.expires_at_unix_ms <= now {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "must be in the future"));
        }
        if r.expires_at_unix_ms > now + 366 * 24 * 3600 * 1000 {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "a consent lasts at most one year"));
        }
        let evidence = r
            .evidence
            .ok_or_else(|| CatalogError::bad_request("evidence", "is required: how did the subject authorise?"))?;
        if ConsentMethod::try_from(evidence.method).unwrap_or(ConsentMethod::Unspecified) == ConsentMethod::Unspecified
        {
            return Err(CatalogError::bad_request(
                "evidence.method",
                "must be FACE_SCAN, E_SIGNATURE, SMS_CODE or WRITTEN",
            ));
        }
        if ConsentChannel::try_from(evidence.channel).unwrap_or(ConsentChannel::Unspecified)
            == ConsentChannel::Unspecified
        {
            return Err(CatalogError::bad_request("evidence.channel", "must be ONLINE, COUNTER or SELF_SERVICE"));
        }
        text("evidence.reference", &evidence.reference, true)?;
        let application_id = text("application_id", &r.application_id, false)?;
        let id = format!("c-{}", hex_random(16));
        let consent = Consent {
            id: id.clone(),
            subject: Some(Subject {
                kind: match subject_id.kind() {
                    SubjectKind::Person => SubjectKindProto::Person as i32,
                    SubjectKind::Organisation => SubjectKindProto::Organisation as i32,
                },
                id: subject_id.as_str().to_string(),
            }),
            requester: requester.to_string(),
            datasets: r.datasets.clone(),
            fields: r.fields.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
            purpose_code: purpose.to_string(),
            expires_at_unix_ms: r.expires_at_unix_ms,
            evidence: Some(evidence),
            application_id,
            recorded_by: caller.dept.clone(),
            recorded_at_unix_ms: now,
            revoked_at_unix_ms: 0,
        };
        let mut event = self.admin_event(requester.as_str(), "consent.record", "", "", &id);
        event.subject_digest = self.subject_digest(&subject_id);
        event.purpose_code = consent.purpose_code.clone();
        let _w = self.lock();
        self.mutate(vec![event], false, |b| {
            put_msg(b, CONSENTS, id.as_bytes().to_vec(), &consent);
            Ok(())
        })?;
        Ok(consent)
    }

    fn subject_digest(&self, s: &SubjectId) -> String {
        self.digester.digest(s.kind().as_str(), s.as_str())
    }

    /// Issues a consent token (department; only the consent's requester).
    pub fn issue_consent_token(&self, caller: &Caller, r: &IssueConsentTokenRequest) -> Result<ConsentToken> {
        caller.require(Role::Department)?;
        if r.consent_id.is_empty() {
            return Err(CatalogError::bad_request("consent_id", "is required"));
        }
        let consent: Consent = self
            .db
            .get(CONSENTS, r.consent_id.as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("consent {} does not exist", r.consent_id)))?;
        if consent.requester != caller.dept {
            return Err(CatalogError::Forbidden(format!("consent {} was given to another requester", consent.id)));
        }
        if consent.revoked_at_unix_ms != 0 {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentRevoked,
                format!("consent {} was revoked", consent.id),
            ));
        }
        let now = now_ms();
        if consent.expires_at_unix_ms <= now {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentTokenExpired,
                format!("consent {} has expired", consent.id),
            ));
        }
        let dataset = self.existing_dataset("dataset", &r.dataset)?;
        if !consent.datasets.contains(&dataset.id) {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentWrongDataset,
                format!("consent {} does not cover dataset {}", consent.id, dataset.id),
            ));
        }
        // A consent may cover several datasets with one list of fields; a token for one
        // dataset carries only the consented fields of that dataset's schema, so that a field
        // of the same name in another dataset is never consented by accident.
        let reference =
            SchemaRef::parse(&dataset.schema).map_err(|e| CatalogError::Internal(format!("stored schema ref: {e}")))?;
        let schema =
            self.schema(&reference)?.ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?;
        let fields: Vec<String> = consent.fields.iter().filter(|f| schema.field(f).is_some()).cloned().collect();
        if fields.is_empty() {
            return Err(CatalogError::precondition(
                ReasonCode::FieldNotConsented,
                format!("consent {} covers no field of dataset {}", consent.id, dataset.id),
            ));
        }
        let subject = consent.subject.clone().unwrap_or_default();
        let kind = if subject.kind == SubjectKindProto::Organisation as i32 { "organisation" } else { "person" };
        let now_s = now / 1000;
        let exp = (now_s + self.settings.token_lifetime_secs).min(consent.expires_at_unix_ms / 1000);
        let claims = ConsentClaims {
            iss: self.settings.log_origin.clone(),
            aud: dataset.provider.clone(),
            sub: subject.id,
            sub_kind: kind.into(),
            req: consent.requester.clone(),
            ds: dataset.id.clone(),
            fld: fields,
            pur: consent.purpose_code.clone(),
            iat: now_s,
            nbf: now_s,
            exp,
            jti: consent.id.clone(),
        };
        let token = self.token_issuer.issue(claims).map_err(|e| CatalogError::Internal(format!("issue token: {e}")))?;
        Ok(ConsentToken { token, expires_at_unix_ms: exp * 1000, consent_id: consent.id })
    }

    /// Revokes a consent (a portal, or the consent's requester).
    pub fn revoke_consent(&self, caller: &Caller, r: &RevokeConsentRequest) -> Result<Consent> {
        let reason = text("reason", &r.reason, false)?;
        // The reason goes into the entry that records the revocation.
        no_identifier("reason", &reason)?;
        if r.consent_id.is_empty() {
            return Err(CatalogError::bad_request("consent_id", "is required"));
        }
        let _w = self.lock();
        let mut consent: Consent = self
            .db
            .get(CONSENTS, r.consent_id.as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("consent {} does not exist", r.consent_id)))?;
        if !caller.has(Role::Portal) && consent.requester != caller.dept {
            return Err(CatalogError::RoleRequired { needed: "portal", caller: caller.dept.clone() });
        }
        if consent.revoked_at_unix_ms != 0 {
            // A retry: published if the first call's publication failed.
            self.publish_pending()?;
            return Ok(consent);
        }
        consent.revoked_at_unix_ms = now_ms();
        let subject_id = subject("subject", consent.subject.as_ref())?;
        let mut event = self.admin_event(&caller.dept, "consent.revoke", "", "", &consent.id);
        event.subject_digest = self.subject_digest(&subject_id);
        if !reason.is_empty() {
            event.reason = reason;
        }
        self.mutate(vec![event], true, |b| {
            put_msg(b, CONSENTS, consent.id.as_bytes().to_vec(), &consent);
            Ok(())
        })?;
        Ok(consent)
    }

    // ------------------------------------------------------------------------------------
    // Federation configuration

    /// The current signed configuration.
    pub fn current_config(&self) -> Arc<SignedFederationConfig> {
        self.config_tx.borrow().clone()
    }
}

fn hex_random(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
