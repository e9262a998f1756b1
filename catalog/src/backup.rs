//! Online backup and verified restore of the catalog (see `exchange_daemon::backup` for the
//! directory layout and what is never left half-written). The manifest records the central
//! log's signed tree head as read from the checkpoint itself; a restore refuses a copy whose
//! log has another size or root than that head, or whose head is not signed by this
//! catalog's key.

use std::path::Path;

use exchange_core::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, open_checkpoint};
use exchange_daemon::backup::{self, CatalogState, Manifest, State};
use exchange_proto::v1::{BackupResponse, ReasonCode, Role};
use exchange_store::RocksStore;

use crate::db::{Db, META_CONFIG_VERSION, TABLES};
use crate::error::{CatalogError, Result};
use crate::log::AccessLog;
use crate::service::{Caller, Catalog};

/// The state of the catalog store in `data` (opened, read, closed): the log's size and root,
/// signed by `signer`, and the configuration version.
pub fn describe(data: &Path, origin: &str, signer: &NoteSigner) -> anyhow::Result<CatalogState> {
    let store = RocksStore::open(data, TABLES)?;
    let db = Db::new(std::sync::Arc::new(store));
    let err = |e: CatalogError| anyhow::anyhow!("{e}");
    let log = AccessLog::open(&db, origin).map_err(err)?;
    let (tree_size, root, checkpoint) = log.tree_head(&db, signer).map_err(err)?;
    Ok(CatalogState {
        tree_size,
        root: root.to_hex(),
        checkpoint,
        config_version: db.meta_u64(META_CONFIG_VERSION).map_err(err)?,
    })
}

impl Catalog {
    /// Makes a backup in `dir` (operator): see `Catalog.Backup`.
    pub fn backup(&self, caller: &Caller, dir: &str) -> Result<BackupResponse> {
        caller.require(Role::Operator)?;
        let path = Path::new(dir);
        backup::check_new_backup_dir(path).map_err(|e| CatalogError::bad_request("dir", e))?;
        let signer = self.signers().checkpoint.clone();
        let origin = self.settings().log_origin.clone();
        let manifest =
            backup::make_backup(self.db().store().as_ref(), path, "catalog", &self.settings().catalog_id, |data| {
                Ok(State::Catalog(describe(data, &origin, &signer)?))
            })
            .map_err(|e| CatalogError::precondition(ReasonCode::InvalidState, format!("backup failed: {e:#}")))?;
        let manifest_json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| CatalogError::Internal(format!("encode the manifest: {e}")))?;
        Ok(BackupResponse { dir: dir.to_owned(), manifest_json })
    }
}

/// Restores the backup in `from` into `data_dir` (the catalog stopped, `data_dir` absent or
/// empty), checking that the restored log's tree head is the one the manifest recorded and
/// that this head is signed by `signer`'s key.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    catalog_id: &str,
    origin: &str,
    signer: &NoteSigner,
    verifiers: &[NoteVerifier],
) -> anyhow::Result<Manifest> {
    backup::restore(from, data_dir, "catalog", catalog_id, |copy, recorded| {
        let State::Catalog(recorded) = recorded else {
            anyhow::bail!("the manifest records a node's state, not a catalog's");
        };
        // Signed with the checkpoint key in force, or one published beside it (a rotation
        // since the backup).
        let mut head: Option<Checkpoint> = None;
        let mut refusal = String::new();
        for verifier in std::iter::once(signer.verifier()).chain(verifiers.iter().cloned()) {
            match open_checkpoint(&recorded.checkpoint, &verifier) {
                Ok(h) => {
                    head = Some(h);
                    break;
                }
                Err(e) => refusal = e.to_string(),
            }
        }
        let head = head
            .ok_or_else(|| anyhow::anyhow!("the manifest's tree head is not this catalog's signed head: {refusal}"))?;
        if head.size() != recorded.tree_size || head.root().to_hex() != recorded.root {
            anyhow::bail!("the manifest's signed tree head does not name the size and root the manifest records");
        }
        let got = describe(copy, origin, signer)?;
        if (got.tree_size, &got.root, got.config_version)
            != (recorded.tree_size, &recorded.root, recorded.config_version)
        {
            anyhow::bail!(
                "the restored log is of size {} and root {} (configuration version {}), the manifest records size {} \
                 and root {} (version {}): the backup does not hold what its manifest says",
                got.tree_size,
                got.root,
                got.config_version,
                recorded.tree_size,
                recorded.root,
                recorded.config_version
            );
        }
        Ok(())
    })
}
