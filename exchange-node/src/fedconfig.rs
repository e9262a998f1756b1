//! The node's verified copy of the federation configuration.
//!
//! A background task watches `WatchFederationConfig`; each version is verified with a
//! trusted catalog configuration key (a version that does not verify is refused and the old
//! one kept), decoded, turned into an immutable [`Snapshot`] and swapped in, and its signed
//! bytes are stored so that a restart serves from the cached verified copy.
//!
//! The trusted configuration keys are the ones pinned in the node's configuration (the
//! catalog's current key and, optionally, its next) and the configuration keys the newest
//! verified configuration lists. That is how the catalog switches its configuration key
//! without re-pinning: it first publishes the next key (in a configuration signed by the
//! current one), then signs with it; a retired key is listed no more, and so trusted no more
//! unless pinned (the runbook replaces the pins after a rotation). Consent tokens verify
//! only under the token keys listed, never under a configuration or checkpoint key.
//!
//! Freshness comes from signatures, never from an open stream: the configuration's age is
//! counted from the signed `issued_at` of the newest verified configuration the node holds
//! (the catalog re-signs it to keep nodes fresh), and queries are refused (UNAVAILABLE /
//! CONFIG_STALE) once it is older than the configured maximum age, whether the catalog is
//! away, stalled or impersonated. No rollback: a configuration whose version or `issued_at` is
//! older than the one held (also the cached one, after a restart) is refused and the held one
//! kept, and so is one issued further in the future than [`MAX_CLOCK_SKEW_MS`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use exchange_core::digest::{SubjectDigester, verify_config_by_any};
use exchange_core::policy::GrantTerms;
use exchange_core::schema::Schema;
use exchange_core::token::TokenVerifier;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::{
    Dataset, FederationConfig, GetFederationConfigRequest, GetSubjectDigestKeyRequest, KeyPurpose, Member,
    PublishDatasetRequest, ReasonCode, SignedFederationConfig, SubjectDigestKey,
};
use exchange_store::{Durability, KvStore, WriteBatch};
use prost::Message;
use tonic::transport::Channel;

use crate::db::{META, META_CONFIG, META_CONFIG_TRUST, META_DIGEST_KEY};
use crate::error::NodeError;

/// How far in the future a configuration's `issued_at` may be (clock skew between the
/// catalog and the node); beyond it the configuration is refused, so that a configuration
/// dated ahead cannot stay fresh for longer than the maximum age.
pub const MAX_CLOCK_SKEW_MS: i64 = 60_000;

/// How a verified configuration relates to the one held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Succession {
    /// None is held, or it is a newer version: taken.
    Newer,
    /// The same version re-signed later (a heartbeat): taken, the age starts again.
    Resigned,
    /// The very configuration held (same version and `issued_at`): nothing to do.
    Same,
}

/// Decides whether `next` may replace `held` at `now_ms`: never an older version or an older
/// `issued_at` (rollback), never one issued more than [`MAX_CLOCK_SKEW_MS`] ahead. The
/// refusal says why, for the daemon's log.
pub fn succession(held: Option<&Snapshot>, next: &Snapshot, now_ms: i64) -> Result<Succession, String> {
    if next.issued_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(format!(
            "configuration version {} is issued {} ms in the future, more than the {MAX_CLOCK_SKEW_MS} ms of clock skew allowed",
            next.version,
            next.issued_at_ms - now_ms
        ));
    }
    let Some(held) = held else { return Ok(Succession::Newer) };
    if next.version < held.version {
        return Err(format!(
            "configuration version {} is older than version {} held (rollback)",
            next.version, held.version
        ));
    }
    if next.issued_at_ms < held.issued_at_ms {
        return Err(format!(
            "configuration version {} is issued at {} ms, before the {} ms of the one held (rollback)",
            next.version, next.issued_at_ms, held.issued_at_ms
        ));
    }
    Ok(if next.version > held.version {
        Succession::Newer
    } else if next.issued_at_ms > held.issued_at_ms {
        Succession::Resigned
    } else {
        Succession::Same
    })
}

/// An immutable, verified federation configuration.
pub struct Snapshot {
    /// Its version.
    pub version: u64,
    /// When the catalog made it.
    pub issued_at_ms: i64,
    /// Members by department id.
    pub members: HashMap<String, Member>,
    /// Approved grants by (requester, dataset).
    pub grants: HashMap<(String, String), Vec<GrantTerms>>,
    /// Schemas by reference.
    pub schemas: HashMap<String, Arc<Schema>>,
    /// Datasets by id.
    pub datasets: HashMap<String, Dataset>,
    /// Revoked consent ids.
    pub revoked: HashSet<String>,
    /// Consent-token verifier with the catalog's token keys.
    pub verifier: TokenVerifier,
    /// The catalog configuration keys it lists: besides the pinned ones, the keys the next
    /// configuration may be signed with.
    pub config_keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Verifies a signed configuration with one of the `trusted` configuration keys and
    /// builds a snapshot.
    pub fn from_signed(trusted: &[VerifyingKey], signed: &SignedFederationConfig) -> Result<Self, String> {
        verify_config_by_any(trusted, &signed.key_id, &signed.body, &signed.signature)
            .map_err(|e| format!("configuration signature refused: {e}"))?;
        let config = FederationConfig::decode(signed.body.as_slice())
            .map_err(|e| format!("configuration body does not decode: {e}"))?;
        let token_keys = config.catalog_keys_for(KeyPurpose::ConsentToken);
        let config_keys = config.catalog_keys_for(KeyPurpose::Configuration);
        let mut grants: HashMap<(String, String), Vec<GrantTerms>> = HashMap::new();
        for g in config.grants {
            let terms = GrantTerms {
                id: g.id,
                requester: g.requester.clone(),
                dataset: g.dataset.clone(),
                purposes: g.purposes.into_iter().collect(),
                fields: g.fields.into_iter().collect(),
                consent_required: g.consent_required,
                rate_limit_per_minute: g.rate_limit_per_minute,
                expires_at_ms: (g.expires_at_unix_ms != 0).then_some(g.expires_at_unix_ms),
            };
            grants.entry((g.requester, g.dataset)).or_default().push(terms);
        }
        let mut schemas = HashMap::new();
        for s in &config.schemas {
            match Schema::from_json(&s.definition_json) {
                Ok(schema) => {
                    schemas.insert(s.reference.clone(), Arc::new(schema));
                }
                Err(e) => tracing::warn!(schema = %s.reference, error = %e, "schema in configuration does not parse"),
            }
        }
        Ok(Self {
            version: config.version,
            issued_at_ms: config.issued_at_unix_ms,
            members: config.members.into_iter().map(|m| (m.dept_id.clone(), m)).collect(),
            grants,
            schemas,
            datasets: config.datasets.into_iter().map(|d| (d.id.clone(), d)).collect(),
            revoked: config.revoked_consents.into_iter().map(|r| r.consent_id).collect(),
            verifier: TokenVerifier::new(config.log_origin, &token_keys),
            config_keys,
        })
    }

    /// The grants of `requester` for `dataset`.
    pub fn grants_for(&self, requester: &str, dataset: &str) -> &[GrantTerms] {
        self.grants.get(&(requester.to_string(), dataset.to_string())).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The shared configuration state.
#[derive(Debug)]
pub struct FedState {
    /// The configuration keys pinned in the node's configuration.
    pinned: Vec<VerifyingKey>,
    max_age_ms: i64,
    current: RwLock<Option<Arc<Snapshot>>>,
    digester: RwLock<Option<SubjectDigester>>,
}

impl FedState {
    /// An empty state trusting the `pinned` configuration keys (the catalog's current one,
    /// and its next when known).
    pub fn new(pinned: Vec<VerifyingKey>, max_age_ms: i64) -> Self {
        Self { pinned, max_age_ms, current: RwLock::new(None), digester: RwLock::new(None) }
    }

    /// The configuration keys a configuration may be signed with now: the pinned ones and
    /// those the held configuration lists.
    pub fn trusted(&self) -> Vec<VerifyingKey> {
        let mut trusted = self.pinned.clone();
        if let Some(held) = self.current() {
            trusted.extend(held.config_keys.iter().filter(|k| !self.pinned.contains(k)));
        }
        trusted
    }

    /// Loads the cached configuration and digest key from the store (at start). The cached
    /// configuration is verified again, and then it is the one every later configuration is
    /// compared with (no rollback across a restart); its age is counted from its `issued_at`.
    pub fn load_cached(&self, store: &dyn KvStore) -> Result<(), NodeError> {
        if let Some(bytes) = store.get(META, META_CONFIG)? {
            let signed = SignedFederationConfig::decode(bytes.as_slice())?;
            // The keys that verified it when it arrived (learned from the configuration before
            // it), besides the pinned ones.
            let mut trusted = self.pinned.clone();
            trusted.extend(learned_config_keys(store)?);
            match Snapshot::from_signed(&trusted, &signed) {
                Ok(snapshot) => {
                    tracing::info!(version = snapshot.version, "serving from the cached federation configuration");
                    self.swap(snapshot);
                }
                Err(e) => tracing::warn!(error = %e, "cached federation configuration refused"),
            }
        }
        if let Some(bytes) = store.get(META, META_DIGEST_KEY)? {
            let key = SubjectDigestKey::decode(bytes.as_slice())?;
            self.set_digest_key(&key);
        }
        Ok(())
    }

    fn swap(&self, snapshot: Snapshot) {
        let mut guard = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Some(Arc::new(snapshot));
    }

    pub(crate) fn set_digest_key(&self, key: &SubjectDigestKey) {
        if let Ok(k) = <[u8; 32]>::try_from(key.key.as_slice()) {
            let mut guard = self.digester.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            *guard = Some(SubjectDigester::new(k));
        }
    }

    /// Offers a verified configuration at `now_ms`: taken when [`succession`] allows it (the
    /// caller stores it first), refused otherwise with the held one kept.
    pub fn offer(&self, snapshot: Snapshot, now_ms: i64) -> Result<Succession, String> {
        let mut guard = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let step = succession(guard.as_deref(), &snapshot, now_ms)?;
        if step != Succession::Same {
            *guard = Some(Arc::new(snapshot));
        }
        Ok(step)
    }

    /// Checks, without taking it, whether a verified configuration may follow the one held.
    pub fn may_follow(&self, snapshot: &Snapshot, now_ms: i64) -> Result<Succession, String> {
        succession(self.current().as_deref(), snapshot, now_ms)
    }

    /// The current snapshot if any (fresh or not).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Age of the configuration in ms, from its signed `issued_at` (None when there is none).
    pub fn age_ms(&self, now_ms: i64) -> Option<i64> {
        self.current().map(|s| now_ms.saturating_sub(s.issued_at_ms))
    }

    /// The configuration age past which queries are refused, in ms.
    pub fn max_age_ms(&self) -> i64 {
        self.max_age_ms
    }

    /// The current snapshot, refused when missing or older than the maximum age.
    pub fn fresh(&self, now_ms: i64) -> Result<Arc<Snapshot>, NodeError> {
        let stale = |message: String| NodeError::Unavailable { reason: ReasonCode::ConfigStale, message };
        let snapshot = self.current().ok_or_else(|| {
            stale("the node holds no federation configuration yet: the catalog has not been reached".into())
        })?;
        let age = now_ms.saturating_sub(snapshot.issued_at_ms);
        if age > self.max_age_ms {
            return Err(stale(format!(
                "the node's federation configuration was issued {} s ago, more than the {} s allowed, and no newer one has arrived from the catalog: retry later",
                age / 1000,
                self.max_age_ms / 1000
            )));
        }
        Ok(snapshot)
    }

    /// The subject digester, once the key is known.
    pub fn digester(&self) -> Option<SubjectDigester> {
        self.digester.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the watcher needs besides the state.
pub struct Watcher {
    /// Shared state.
    pub state: Arc<FedState>,
    /// Store for the cache.
    pub store: Arc<dyn KvStore>,
    /// Lazy channel to the catalog.
    pub channel: Channel,
    /// Builds the datasets to publish after each (re)connection.
    pub publish: Arc<dyn Fn() -> Vec<Dataset> + Send + Sync>,
    /// The node, for live dataset counts.
    pub node: Arc<crate::service::Node>,
}

/// Now, Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Watcher {
    /// Runs forever: watch, reconnect with bounded backoff (200 ms to 5 s).
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.session().await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => tracing::warn!(error = %e, "federation configuration watch interrupted"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn session(&self) -> Result<(), String> {
        let mut client = CatalogClient::new(self.channel.clone());
        let known = self.state.current().map(|s| s.version).unwrap_or(0);
        let mut stream = client
            .watch_federation_config(GetFederationConfigRequest { known_version: known })
            .await
            .map_err(|s| format!("watch: {}", s.message()))?
            .into_inner();
        let mut published = false;
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let signed = match msg {
                        Ok(Some(signed)) => signed,
                        Ok(None) => return Err("stream ended".into()),
                        Err(s) => return Err(format!("stream: {}", s.message())),
                    };
                    self.accept(signed).await?;
                    if !published {
                        published = true;
                        self.publish_datasets(&mut client).await;
                        self.fetch_digest_key(&mut client).await?;
                    }
                }
                _ = self.node.datasets_changed.notified(), if published => {
                    self.publish_datasets(&mut client).await;
                    self.fetch_digest_key(&mut client).await?;
                }
            }
        }
    }

    /// Publishes the node's datasets, with their live record counts and update times.
    async fn publish_datasets(&self, client: &mut CatalogClient<Channel>) {
        let datasets = match self.node.datasets_with_stats().await {
            Ok(d) => d,
            Err(_) => (self.publish)(),
        };
        for dataset in datasets {
            let id = dataset.id.clone();
            if let Err(s) = client.publish_dataset(PublishDatasetRequest { dataset: Some(dataset) }).await {
                tracing::warn!(dataset = %id, error = %s.message(), "dataset not published");
            }
        }
    }

    /// Fetches the subject digest key, after the node's datasets are published: the catalog
    /// gives it only to a provider of a personal-data dataset in its catalog. A node that
    /// provides none is refused, and holds no key.
    async fn fetch_digest_key(&self, client: &mut CatalogClient<Channel>) -> Result<(), String> {
        match client.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await {
            Ok(resp) => {
                let key = resp.into_inner();
                self.state.set_digest_key(&key);
                let mut batch = WriteBatch::new();
                batch.put(META, META_DIGEST_KEY.to_vec(), key.encode_to_vec());
                self.write(batch).await
            }
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                tracing::debug!(error = %s.message(), "no subject digest key: this node provides no personal data");
                Ok(())
            }
            // Anything else (the catalog away): the session starts again and fetches it then.
            Err(s) => Err(format!("subject digest key not fetched: {}", s.message())),
        }
    }

    async fn accept(&self, signed: SignedFederationConfig) -> Result<(), String> {
        let trusted = self.state.trusted();
        let snapshot = match Snapshot::from_signed(&trusted, &signed) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::error!(error = %e, "federation configuration refused, keeping the previous one");
                return Err(e);
            }
        };
        let version = snapshot.version;
        match self.state.may_follow(&snapshot, now_ms()) {
            Err(e) => {
                // A rollback or a configuration dated ahead: the held one stays, and ages.
                tracing::error!(error = %e, "federation configuration refused, keeping the previous one");
                Ok(())
            }
            Ok(Succession::Same) => Ok(()),
            Ok(_) => {
                let mut batch = WriteBatch::new();
                batch.put(META, META_CONFIG.to_vec(), signed.encode_to_vec());
                batch.put(
                    META,
                    META_CONFIG_TRUST.to_vec(),
                    trusted.iter().flat_map(|k| *k.as_bytes()).collect::<Vec<u8>>(),
                );
                self.write(batch).await?;
                match self.state.offer(snapshot, now_ms()) {
                    Ok(step) => tracing::info!(version, ?step, "federation configuration accepted"),
                    Err(e) => tracing::error!(error = %e, "federation configuration refused, keeping the previous one"),
                }
                Ok(())
            }
        }
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), String> {
        let store = self.store.clone();
        exchange_store::blocking(move || store.write(batch, Durability::Sync))
            .await
            .map_err(|e| format!("cache configuration: {e}"))
    }
}

/// The configuration keys stored beside the cached configuration: those that verified it
/// when it arrived (learned from the configuration before it), besides the pinned ones.
pub fn learned_config_keys(store: &dyn KvStore) -> Result<Vec<VerifyingKey>, exchange_store::StoreError> {
    Ok(store
        .get(META, META_CONFIG_TRUST)?
        .map(|learned| {
            learned
                .chunks_exact(32)
                .filter_map(|k| <[u8; 32]>::try_from(k).ok())
                .filter_map(|k| VerifyingKey::from_bytes(&k).ok())
                .collect()
        })
        .unwrap_or_default())
}
