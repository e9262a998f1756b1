//! The catalog's handlers: plain methods that know nothing of tonic. Each takes the
//! authenticated [`Caller`] and a request, checks the role, parses the request into domain
//! types, and for a mutation writes the change and the access-log entry that records it in
//! one atomic batch under the writer lock. They block on storage: the gRPC adapter runs
//! them off the async workers.
//!
//! One module per area: members (and who a caller is), schemas, datasets, grants, consent
//! and consent tokens, the central access log, the federation configuration and its
//! publication, and the validators of request fields that several areas share.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use exchange_core::digest::SubjectDigester;
use exchange_proto::v1::{Member, Role, SignedFederationConfig};
use tokio::sync::watch;

use crate::db::Db;
use crate::error::{CatalogError, Result};
use crate::keys::{CatalogKeys, Signers};
use crate::log::AccessLog;

mod access_log;
mod consent;
mod datasets;
mod grants;
mod members;
mod publish;
mod schemas;
mod validators;

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
    /// The keys and what signs with them, swapped whole by [`Catalog::reload_keys`].
    signers: RwLock<Arc<Signers>>,
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
impl Catalog {
    /// Builds the catalog over `db`, publishing a configuration version (with the keys in
    /// force: a start after a key change publishes the change).
    pub fn open(db: Db, settings: Settings, keys: CatalogKeys, digest_key: [u8; 32]) -> Result<Arc<Self>> {
        let log = AccessLog::open(&db, settings.log_origin.clone())?;
        let signers = Signers::new(&settings.log_origin, keys).map_err(CatalogError::Internal)?;
        let (config_tx, _) = watch::channel(Arc::new(SignedFederationConfig::default()));
        let catalog = Arc::new(Self {
            log,
            writer: Mutex::new(()),
            settings,
            signers: RwLock::new(Arc::new(signers)),
            digester: SubjectDigester::new(digest_key),
            digest_key,
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

    /// The store's typed tables (for the backup).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The public key that signs federation configurations now.
    pub fn public_key(&self) -> VerifyingKey {
        self.signers().config_public()
    }

    /// The keys in force and what signs with them.
    pub fn signers(&self) -> Arc<Signers> {
        self.signers.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes `keys` as the keys in force (an operator's rotation step, read from the key
    /// directory on SIGHUP) and publishes a configuration listing them, signed with the
    /// configuration key now in force; the change is an administrative entry of the central
    /// log. Nothing changes when the keys do not load into signers.
    pub fn reload_keys(&self, keys: CatalogKeys) -> Result<()> {
        let signers = Signers::new(&self.settings.log_origin, keys).map_err(CatalogError::Internal)?;
        let ids: Vec<String> = signers
            .keys
            .catalog_keys()
            .iter()
            .map(|k| {
                format!("{}:{}{}", crate::keys::purpose_name(k.purpose()), k.key_id, if k.signing { "*" } else { "" })
            })
            .collect();
        let _w = self.lock();
        *self.signers.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(signers);
        let catalog_id = self.settings.catalog_id.clone();
        let event = self.admin_event(&catalog_id, "catalog.keys", "", "", &ids.join(" "));
        self.mutate(vec![event], true, |_| Ok(()))
    }
}
