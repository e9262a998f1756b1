//! Online backup and verified restore of a node (see `exchange_daemon::backup` for the
//! directory layout and what is never left half-written), and the rule that keeps a restored
//! node from reusing sequence numbers the central log already holds.
//!
//! A node restored from a backup may be older than what it shipped: the central log then
//! holds entries under sequence numbers its own log no longer has, and new entries under
//! those numbers would be refused by the catalog (ENTRY_CONFLICT). So `restore` leaves a
//! marker in the restored store, and the next start ([`resume_after_restore`]) first asks the
//! catalog what it holds of this node's log (an empty append) and resumes numbering after it;
//! it refuses to start while the catalog cannot be asked. Entries the copy lacks stay in the
//! central log, which is the record of what the node did.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use exchange_daemon::backup::{self, Manifest, NodeState, State};
use exchange_pki::PeerIdentity;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::{AppendAccessLogRequest, BackupResponse, ReasonCode, SignedFederationConfig};
use exchange_store::keys::encode_u64;
use exchange_store::{KvStore, RocksStore, WriteBatch};
use prost::Message as _;
use tonic::transport::Channel;

use crate::db::{Db, META, META_CONFIG, META_LAST_SHIPPED, TABLES};
use crate::error::NodeError;
use crate::fedconfig::Snapshot;

/// Meta key: set by `restore` (the backup's last sequence); cleared by the first start once
/// it has learnt from the catalog where to resume.
pub const META_RESTORED: &[u8] = b"restore/pending";
/// Meta key: the sequence after which the node numbers its entries when its own log ends
/// earlier (a restore older than the central log): the highest of the two counts.
pub const META_RESUME_AFTER: &[u8] = b"log/resume_after";

/// The state of the node store in `data` (opened, read, closed).
pub fn describe(data: &Path, catalog_key: &VerifyingKey) -> anyhow::Result<NodeState> {
    let store: Arc<dyn KvStore> = Arc::new(RocksStore::open(data, TABLES)?);
    let db = Db::new(store.clone());
    let err = |e: NodeError| anyhow::anyhow!("{e}");
    let config_version = match store.get(META, META_CONFIG)? {
        Some(bytes) => {
            let signed = SignedFederationConfig::decode(bytes.as_slice())?;
            // Trusted as the node trusts its cache: the pinned key and those that verified it.
            let mut trusted = vec![*catalog_key];
            trusted.extend(crate::fedconfig::learned_config_keys(store.as_ref())?);
            Snapshot::from_signed(&trusted, &signed).map(|s| s.version).unwrap_or(0)
        }
        None => 0,
    };
    Ok(NodeState {
        last_sequence: last_written(&db).map_err(err)?,
        last_shipped: db.meta_u64(META_LAST_SHIPPED).map_err(err)?,
        config_version,
    })
}

/// The last sequence number the node has used: its log's last entry, or the resume point
/// of a restore, whichever is higher.
pub fn last_written(db: &Db) -> Result<u64, NodeError> {
    Ok(db.last_log_sequence()?.max(db.meta_u64(META_RESUME_AFTER)?))
}

/// Who may back a node up, and what it backs up.
pub struct Backups {
    /// The node's store.
    pub store: Arc<dyn KvStore>,
    /// The node's department.
    pub dept: String,
    /// The fingerprint of the node's own certificate: the only one allowed.
    pub fingerprint: [u8; 32],
    /// The pinned catalog key (to read the configuration version in the copy).
    pub catalog_key: VerifyingKey,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").field("dept", &self.dept).finish_non_exhaustive()
    }
}

impl Backups {
    /// `Node.Backup`: only for the node's own certificate.
    pub async fn backup(&self, peer: Result<PeerIdentity, String>, dir: String) -> Result<BackupResponse, NodeError> {
        let peer = peer.map_err(NodeError::Unauthenticated)?;
        if peer.dept_id != self.dept || peer.fingerprint[..] != self.fingerprint[..] {
            return Err(NodeError::denied(
                ReasonCode::RoleRequired,
                "a node is backed up only with its own certificate (the one in its configuration)",
            ));
        }
        let path = std::path::PathBuf::from(&dir);
        backup::check_new_backup_dir(&path).map_err(|e| NodeError::bad_request("dir", e))?;
        let (store, dept, key) = (self.store.clone(), self.dept.clone(), self.catalog_key);
        let manifest = tokio::task::spawn_blocking(move || {
            backup::make_backup(store.as_ref(), &path, "node", &dept, |data| Ok(State::Node(describe(data, &key)?)))
        })
        .await
        .map_err(|e| NodeError::Internal(format!("backup task: {e}")))?
        .map_err(|e| NodeError::Precondition {
            reason: ReasonCode::InvalidState,
            message: format!("backup failed: {e:#}"),
        })?;
        let manifest_json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| NodeError::Internal(format!("encode the manifest: {e}")))?;
        Ok(BackupResponse { dir, manifest_json })
    }
}

/// Restores the backup in `from` into `data_dir` (the node stopped, `data_dir` absent or
/// empty): every file checked, the state read back equal to the manifest's, and the restore
/// marker set so that the next start resumes after what the central log holds.
pub fn restore(from: &Path, data_dir: &Path, dept: &str, catalog_key: &VerifyingKey) -> anyhow::Result<Manifest> {
    backup::restore(from, data_dir, "node", dept, |copy, recorded| {
        let State::Node(recorded) = recorded else {
            anyhow::bail!("the manifest records a catalog's state, not a node's");
        };
        let got = describe(copy, catalog_key)?;
        if &got != recorded {
            anyhow::bail!(
                "the restored store holds {got:?}, the manifest records {recorded:?}: the backup does not hold what \
                 its manifest says"
            );
        }
        let store = RocksStore::open(copy, TABLES)?;
        let mut batch = WriteBatch::new();
        batch.put(META, META_RESTORED.to_vec(), encode_u64(recorded.last_sequence).to_vec());
        store.write(batch, exchange_store::Durability::Sync)?;
        Ok(())
    })
}

/// At start, for a store restored from a backup: asks the catalog what it holds of this
/// node's log and returns the sequence to continue after (the higher of the local log's
/// and the catalog's), stored durably with the marker cleared. A store without the marker
/// returns `last_written` unchanged, without asking. Refuses (an error naming the catalog)
/// when the catalog cannot be asked within `patience`.
pub async fn resume_after_restore(
    db: &Db,
    channel: Channel,
    last_written: u64,
    patience: Duration,
) -> anyhow::Result<u64> {
    let marker = {
        let db = db.clone();
        exchange_store::blocking(move || db.store().get(META, META_RESTORED)).await?
    };
    if marker.is_none() {
        return Ok(last_written);
    }
    let mut client = CatalogClient::new(channel);
    let deadline = tokio::time::Instant::now() + patience;
    let held = loop {
        match client.append_access_log(AppendAccessLogRequest { events: Vec::new() }).await {
            Ok(answer) => break answer.into_inner().next_sequence.saturating_sub(1),
            Err(status) if tokio::time::Instant::now() >= deadline => anyhow::bail!(
                "this node was restored from a backup and must learn from the catalog which of its entries the \
                 central log holds before it writes any: the catalog answered {:?}: {}; start the node again once \
                 the catalog is reachable",
                status.code(),
                status.message()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let resume = last_written.max(held);
    if held > last_written {
        tracing::warn!(
            local = last_written,
            central = held,
            "restored from a backup older than the central log: entries {}..={held} are in the central log only; \
             numbering resumes after {held}",
            last_written + 1
        );
    }
    let db = db.clone();
    exchange_store::blocking(move || {
        let mut batch = WriteBatch::new();
        batch.put(META, META_RESUME_AFTER.to_vec(), encode_u64(resume).to_vec());
        if held > last_written {
            batch.put(META, META_LAST_SHIPPED.to_vec(), encode_u64(held).to_vec());
        }
        batch.delete(META, META_RESTORED.to_vec());
        db.store().write(batch, exchange_store::Durability::Sync)
    })
    .await?;
    Ok(resume)
}
