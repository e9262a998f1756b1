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
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_core::checkpoint::NoteSigner;
use exchange_core::digest::SubjectDigester;
use exchange_core::token::TokenIssuer;
use exchange_proto::v1::{Member, Role, SignedFederationConfig};
use tokio::sync::watch;

use crate::db::Db;
use crate::error::{CatalogError, Result};
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

    /// The store's typed tables (for the backup).
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// The signer of the log's checkpoints.
    pub(crate) fn note_signer(&self) -> &NoteSigner {
        &self.note_signer
    }

    /// The catalog's public signing key.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }
}
