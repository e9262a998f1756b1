//! The node's verified copy of the federation configuration.
//!
//! A background task watches `WatchFederationConfig`; each version is verified with the
//! pinned catalog key (a version that does not verify is refused and the old one kept),
//! decoded, turned into an immutable [`Snapshot`] and swapped in, and its signed bytes are
//! stored so that a restart serves from the cached verified copy. Freshness: the time of the
//! last confirmation is advanced whenever a version arrives and every second while the
//! stream is connected; queries are refused (UNAVAILABLE / CONFIG_STALE) once it is older
//! than the configured maximum age.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use exchange_core::digest::{SubjectDigester, verify_config};
use exchange_core::policy::GrantTerms;
use exchange_core::schema::Schema;
use exchange_core::token::TokenVerifier;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::{
    Dataset, FederationConfig, GetFederationConfigRequest, GetSubjectDigestKeyRequest, Member, PublishDatasetRequest,
    ReasonCode, SignedFederationConfig, SubjectDigestKey,
};
use exchange_store::{Durability, KvStore, WriteBatch};
use prost::Message;
use tonic::transport::Channel;

use crate::db::{META, META_CONFIG, META_CONFIG_CONFIRMED, META_DIGEST_KEY, put_meta_u64};
use crate::error::NodeError;

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
    /// Consent-token verifier with the catalog's keys.
    pub verifier: TokenVerifier,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Verifies a signed configuration with the pinned key and builds a snapshot.
    pub fn from_signed(pinned: &VerifyingKey, signed: &SignedFederationConfig) -> Result<Self, String> {
        verify_config(pinned, &signed.body, &signed.signature)
            .map_err(|e| format!("configuration signature refused: {e}"))?;
        let config = FederationConfig::decode(signed.body.as_slice())
            .map_err(|e| format!("configuration body does not decode: {e}"))?;
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
        let keys: Vec<VerifyingKey> = config
            .catalog_keys
            .iter()
            .filter_map(|k| <[u8; 32]>::try_from(k.public_key.as_slice()).ok())
            .filter_map(|k| VerifyingKey::from_bytes(&k).ok())
            .collect();
        Ok(Self {
            version: config.version,
            issued_at_ms: config.issued_at_unix_ms,
            members: config.members.into_iter().map(|m| (m.dept_id.clone(), m)).collect(),
            grants,
            schemas,
            datasets: config.datasets.into_iter().map(|d| (d.id.clone(), d)).collect(),
            revoked: config.revoked_consents.into_iter().map(|r| r.consent_id).collect(),
            verifier: TokenVerifier::new(config.log_origin, &keys),
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
    pinned: VerifyingKey,
    max_age_ms: i64,
    current: RwLock<Option<Arc<Snapshot>>>,
    last_confirmed_ms: AtomicI64,
    digester: RwLock<Option<SubjectDigester>>,
}

impl FedState {
    /// An empty state trusting `pinned`.
    pub fn new(pinned: VerifyingKey, max_age_ms: i64) -> Self {
        Self {
            pinned,
            max_age_ms,
            current: RwLock::new(None),
            last_confirmed_ms: AtomicI64::new(0),
            digester: RwLock::new(None),
        }
    }

    /// Loads the cached configuration and digest key from the store (at start).
    pub fn load_cached(&self, store: &dyn KvStore) -> Result<(), NodeError> {
        if let Some(bytes) = store.get(META, META_CONFIG)? {
            let signed = SignedFederationConfig::decode(bytes.as_slice())?;
            match Snapshot::from_signed(&self.pinned, &signed) {
                Ok(snapshot) => {
                    let confirmed = match store.get(META, META_CONFIG_CONFIRMED)? {
                        Some(b) => exchange_store::keys::decode_u64(&b).unwrap_or(0),
                        None => 0,
                    };
                    tracing::info!(version = snapshot.version, "serving from the cached federation configuration");
                    self.swap(snapshot);
                    self.last_confirmed_ms.store(i64::try_from(confirmed).unwrap_or(0), Ordering::SeqCst);
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

    fn set_digest_key(&self, key: &SubjectDigestKey) {
        if let Ok(k) = <[u8; 32]>::try_from(key.key.as_slice()) {
            let mut guard = self.digester.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            *guard = Some(SubjectDigester::new(k));
        }
    }

    /// Marks the configuration as confirmed now.
    pub fn confirm(&self, now_ms: i64) {
        self.last_confirmed_ms.fetch_max(now_ms, Ordering::SeqCst);
    }

    /// The current snapshot if any (fresh or not).
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Age of the configuration in ms (None when there is none).
    pub fn age_ms(&self, now_ms: i64) -> Option<i64> {
        self.current().map(|_| now_ms - self.last_confirmed_ms.load(Ordering::SeqCst))
    }

    /// The current snapshot, refused when missing or older than the maximum age.
    pub fn fresh(&self, now_ms: i64) -> Result<Arc<Snapshot>, NodeError> {
        let stale = |message: String| NodeError::Unavailable { reason: ReasonCode::ConfigStale, message };
        let snapshot = self.current().ok_or_else(|| {
            stale("the node holds no federation configuration yet: the catalog has not been reached".into())
        })?;
        let age = now_ms - self.last_confirmed_ms.load(Ordering::SeqCst);
        if age > self.max_age_ms {
            return Err(stale(format!(
                "the node's federation configuration was last confirmed {} s ago, more than the {} s allowed: the catalog is unreachable, retry later",
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
        match client.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await {
            Ok(resp) => {
                let key = resp.into_inner();
                self.state.set_digest_key(&key);
                let mut batch = WriteBatch::new();
                batch.put(META, META_DIGEST_KEY.to_vec(), key.encode_to_vec());
                self.write(batch).await?;
            }
            Err(s) => tracing::warn!(error = %s.message(), "subject digest key not fetched"),
        }
        let mut published = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
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
                    }
                }
                _ = self.node.datasets_changed.notified(), if published => {
                    self.publish_datasets(&mut client).await;
                }
                _ = tick.tick() => {
                    if self.state.current().is_some() {
                        let now = now_ms();
                        self.state.confirm(now);
                        ticks += 1;
                        if ticks.is_multiple_of(30) {
                            let mut batch = WriteBatch::new();
                            put_meta_u64(&mut batch, META_CONFIG_CONFIRMED, u64::try_from(now).unwrap_or(0));
                            self.write(batch).await?;
                        }
                    }
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

    async fn accept(&self, signed: SignedFederationConfig) -> Result<(), String> {
        match Snapshot::from_signed(&self.state.pinned, &signed) {
            Ok(snapshot) => {
                let version = snapshot.version;
                if let Some(old) = self.state.current()
                    && old.version > version
                {
                    tracing::warn!(version, held = old.version, "older configuration version ignored");
                    self.state.confirm(now_ms());
                    return Ok(());
                }
                let now = now_ms();
                let mut batch = WriteBatch::new();
                batch.put(META, META_CONFIG.to_vec(), signed.encode_to_vec());
                put_meta_u64(&mut batch, META_CONFIG_CONFIRMED, u64::try_from(now).unwrap_or(0));
                self.write(batch).await?;
                self.state.swap(snapshot);
                self.state.confirm(now);
                tracing::info!(version, "federation configuration accepted");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "federation configuration refused, keeping the previous one");
                Err(e)
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
