//! Online backups of a daemon's store, and their verified restore, shared by the catalog and
//! the node so that the two cannot drift apart.
//!
//! A backup is a directory holding `data/` (a RocksDB checkpoint of the running store, made
//! by [`KvStore::checkpoint`] without stopping writers) and `MANIFEST.json` ([`Manifest`]):
//! what the daemon's state was in that copy (for the catalog, the central log's signed tree
//! head; for a node, its last access-log sequence and configuration version), and the size
//! and SHA-256 of every file of `data/`. The manifest is derived from the copy itself (the
//! daemon opens the checkpoint and reads it), never from the live store, so that it cannot
//! describe a state the copy does not hold.
//!
//! Nothing half-written is kept, either way: a backup is built in `<dir>.partial` and renamed
//! to `<dir>` once complete; a restore copies into a temporary sibling of the data
//! directory, checks every file against the manifest and the state read back against the
//! manifest's, and only then renames it into place.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use exchange_store::KvStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "MANIFEST.json";
/// The checkpoint's directory name in a backup directory.
pub const DATA: &str = "data";
/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// What a backup holds, written as `MANIFEST.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `catalog` or `node`.
    pub kind: String,
    /// The catalog's or the node's department id.
    pub id: String,
    /// When the checkpoint was made, Unix ms.
    pub created_unix_ms: i64,
    /// The daemon's state in the copy (see [`CatalogState`], [`NodeState`]).
    pub state: State,
    /// Every file of `data/`, by path relative to it.
    pub files: BTreeMap<String, FileDigest>,
}

/// The state a backup records, by daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A catalog's.
    Catalog(CatalogState),
    /// A node's.
    Node(NodeState),
}

/// The central log in a catalog's backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    /// The log's tree size.
    pub tree_size: u64,
    /// The log's root at that size, hex.
    pub root: String,
    /// The signed checkpoint (note) of that size and root: what an auditor keeps, e.g. for
    /// `exchange audit consistency --old-checkpoint`.
    pub checkpoint: String,
    /// The version of the last federation configuration.
    pub config_version: u64,
}

/// A node's access log and configuration in its backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The last access-log sequence number written.
    pub last_sequence: u64,
    /// The last sequence the catalog had acknowledged.
    pub last_shipped: u64,
    /// The version of the federation configuration the node held (0: none).
    pub config_version: u64,
}

/// The size and SHA-256 (hex) of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// Now, Unix ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Checks a backup directory named by a caller before anything is written: an absolute
/// path that does not exist yet, in an existing directory. The message says which rule.
pub fn check_new_backup_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_absolute() {
        return Err(format!("{} is not an absolute path (it is a path on the daemon's machine)", dir.display()));
    }
    if dir.symlink_metadata().is_ok() {
        return Err(format!("{} already exists: name a new directory for each backup", dir.display()));
    }
    match dir.parent() {
        Some(parent) if parent.is_dir() => Ok(()),
        _ => Err(format!("the parent of {} is not an existing directory", dir.display())),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes a backup of the running `store` in `dir` (see [`check_new_backup_dir`]). `describe`
/// opens the checkpoint directory it is given and returns the state the copy holds. Blocks:
/// call it off the async workers.
pub fn make_backup(
    store: &dyn KvStore,
    dir: &Path,
    kind: &str,
    id: &str,
    describe: impl FnOnce(&Path) -> anyhow::Result<State>,
) -> anyhow::Result<Manifest> {
    check_new_backup_dir(dir).map_err(|e| anyhow!(e))?;
    let partial = sibling(dir, ".partial");
    if partial.symlink_metadata().is_ok() {
        bail!("{} exists (a backup under way, or one that failed): remove it first", partial.display());
    }
    std::fs::create_dir(&partial).with_context(|| format!("create {}", partial.display()))?;
    let built = (|| -> anyhow::Result<Manifest> {
        let data = partial.join(DATA);
        let created_unix_ms = now_ms();
        store.checkpoint(&data).context("checkpoint the store")?;
        let state = describe(&data).context("read the state of the checkpoint")?;
        let files = digest_tree(&data)?;
        let manifest = Manifest { format: FORMAT, kind: kind.into(), id: id.into(), created_unix_ms, state, files };
        let text = serde_json::to_string_pretty(&manifest).context("encode the manifest")?;
        let mut file = std::fs::File::create(partial.join(MANIFEST)).context("create the manifest")?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).context("write the manifest")?;
        Ok(manifest)
    })();
    match built {
        Ok(manifest) => {
            std::fs::rename(&partial, dir)
                .with_context(|| format!("rename {} to {}", partial.display(), dir.display()))?;
            tracing::info!(backup = %dir.display(), files = manifest.files.len(), "backup made");
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// Restores the backup in `from` into `data_dir`, which must be absent or an empty
/// directory. Checks the manifest (format, `kind`, `id`), every file's size and digest
/// (and that no file is missing or extra), then calls `verify` with the restored copy and
/// the manifest's state (it opens the copy, reads its state and refuses a mismatch; it may
/// also write to the copy, e.g. a marker). Only then is the copy renamed to `data_dir`.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    kind: &str,
    id: &str,
    verify: impl FnOnce(&Path, &State) -> anyhow::Result<()>,
) -> anyhow::Result<Manifest> {
    let target_exists = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "data_dir {} is not empty: restore only into an absent or empty directory (move the old one \
                     aside first)",
                    data_dir.display()
                );
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("read data_dir {}", data_dir.display())),
    };
    let manifest = read_manifest(from)?;
    if manifest.kind != kind || manifest.id != id {
        bail!("{} is a backup of the {} {}, not of this {kind} {id}", from.display(), manifest.kind, manifest.id);
    }
    // A data_dir that is a symbolic link (systemd's DynamicUser state directories are) is
    // restored where it points, so that the link keeps naming the restored copy.
    let resolved;
    let data_dir = if target_exists {
        resolved = data_dir.canonicalize().with_context(|| format!("resolve {}", data_dir.display()))?;
        resolved.as_path()
    } else {
        data_dir
    };
    let temp = sibling(data_dir, &format!(".restore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&temp);
    let restored = (|| -> anyhow::Result<()> {
        copy_verified(&from.join(DATA), &temp, &manifest.files)?;
        verify(&temp, &manifest.state)?;
        sync_dir(&temp)?;
        Ok(())
    })();
    if let Err(e) = restored {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    if target_exists {
        std::fs::remove_dir(data_dir).with_context(|| format!("remove the empty {}", data_dir.display()))?;
    }
    if let Err(e) = std::fs::rename(&temp, data_dir) {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e).with_context(|| format!("rename the restored copy to {}", data_dir.display()));
    }
    if let Some(parent) = data_dir.parent() {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// Reads and checks the manifest of a backup directory.
pub fn read_manifest(from: &Path) -> anyhow::Result<Manifest> {
    let path = from.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{} is not a backup manifest", path.display()))?;
    if manifest.format != FORMAT {
        bail!("{} has format {}, this version reads format {FORMAT}", path.display(), manifest.format);
    }
    Ok(manifest)
}

/// Every regular file under `root`, by `/`-separated relative path, with its digest.
fn digest_tree(root: &Path) -> anyhow::Result<BTreeMap<String, FileDigest>> {
    let mut out = BTreeMap::new();
    for (name, path) in files_under(root)? {
        out.insert(name, digest_file(&path)?);
    }
    Ok(out)
}

fn files_under(root: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut dirs = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let entry = entry.with_context(|| format!("list {}", dir.display()))?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type().with_context(|| format!("inspect {name}"))?;
            if kind.is_dir() {
                dirs.push((format!("{name}/"), entry.path()));
            } else if kind.is_file() {
                out.push((name, entry.path()));
            } else {
                bail!("{} is neither a file nor a directory", entry.path().display());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn digest_file(path: &Path) -> anyhow::Result<FileDigest> {
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(FileDigest { size, sha256: hex::encode(hasher.finalize()) })
}

/// Copies the files of `from` into the new directory `to`, each checked against `files`
/// after the copy (a file changed, missing or not in the manifest is refused).
fn copy_verified(from: &Path, to: &Path, files: &BTreeMap<String, FileDigest>) -> anyhow::Result<()> {
    let present = files_under(from)?;
    let names: Vec<&String> = present.iter().map(|(n, _)| n).collect();
    if let Some(extra) = names.iter().find(|n| !files.contains_key(n.as_str())) {
        bail!("the backup holds {extra}, which its manifest does not list: the backup was altered");
    }
    if let Some(missing) = files.keys().find(|k| !names.contains(k)) {
        bail!("the backup lacks {missing}, which its manifest lists: the backup is incomplete");
    }
    std::fs::create_dir(to).with_context(|| format!("create {}", to.display()))?;
    for (name, source) in present {
        let target = to.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::copy(&source, &target).with_context(|| format!("copy {name}"))?;
        let got = digest_file(&target)?;
        if files.get(&name) != Some(&got) {
            bail!("{name} does not match the manifest (size or SHA-256 differs): the backup was altered or damaged");
        }
        std::fs::File::open(&target).and_then(|f| f.sync_all()).with_context(|| format!("sync {name}"))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).with_context(|| format!("sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::Node(NodeState { last_sequence: 3, last_shipped: 2, config_version: 7 })
    }

    fn sample(dir: &Path) -> PathBuf {
        let data = dir.join("store");
        std::fs::create_dir_all(data.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(data.join("a"), b"alpha").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(data.join("sub/b"), b"beta").unwrap_or_else(|e| panic!("{e}"));
        data
    }

    /// A backup by hand (the checkpoint itself is the store's, tested there).
    fn backup_of(data: &Path, dir: &Path) -> Manifest {
        std::fs::create_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        let copy = dir.join(DATA);
        copy_verified(data, &copy, &digest_tree(data).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let manifest = Manifest {
            format: FORMAT,
            kind: "node".into(),
            id: "gov.sz.psb".into(),
            created_unix_ms: 1,
            state: state(),
            files: digest_tree(&copy).unwrap_or_else(|e| panic!("{e}")),
        };
        std::fs::write(dir.join(MANIFEST), serde_json::to_string(&manifest).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        manifest
    }

    fn restore_err(from: &Path, to: &Path, id: &str) -> String {
        match restore(from, to, "node", id, |_, _| Ok(())) {
            Ok(_) => panic!("restore should have been refused"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn restore_checks_every_file_and_keeps_nothing_half_written() {
        let tmp = tempfile::TempDir::new().unwrap_or_else(|e| panic!("{e}"));
        let data = sample(tmp.path());
        let backup = tmp.path().join("backup");
        backup_of(&data, &backup);
        let target = tmp.path().join("restored");

        assert!(restore_err(&backup, &target, "gov.sz.amr").contains("not of this node gov.sz.amr"));
        std::fs::write(backup.join(DATA).join("sub/b"), b"BETA").unwrap_or_else(|e| panic!("{e}"));
        assert!(restore_err(&backup, &target, "gov.sz.psb").contains("sub/b does not match the manifest"));
        std::fs::write(backup.join(DATA).join("sub/b"), b"beta").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(backup.join(DATA).join("extra"), b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(restore_err(&backup, &target, "gov.sz.psb").contains("extra, which its manifest does not list"));
        std::fs::remove_file(backup.join(DATA).join("extra")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(backup.join(DATA).join("a")).unwrap_or_else(|e| panic!("{e}"));
        assert!(restore_err(&backup, &target, "gov.sz.psb").contains("lacks a, which its manifest lists"));
        std::fs::write(backup.join(DATA).join("a"), b"alpha").unwrap_or_else(|e| panic!("{e}"));
        // The daemon's own check of the state refuses: nothing is kept.
        let refused = restore(&backup, &target, "node", "gov.sz.psb", |_, _| Err(anyhow!("state differs")));
        assert!(refused.is_err());
        assert!(!target.exists(), "nothing half-written");
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.contains(".restore-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // A good backup restores into an empty directory, with the state handed to `verify`.
        std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = None;
        restore(&backup, &target, "node", "gov.sz.psb", |_, s| {
            seen = Some(s.clone());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(seen, Some(state()));
        assert_eq!(std::fs::read(target.join("sub/b")).unwrap_or_default(), b"beta");
        // And never over a directory that holds something.
        assert!(restore_err(&backup, &target, "gov.sz.psb").contains("is not empty"));
        // A data_dir that is a link to an empty directory (systemd's DynamicUser state
        // directories) is restored where it points, and stays a link.
        let private = tmp.path().join("private");
        std::fs::create_dir(&private).unwrap_or_else(|e| panic!("{e}"));
        let link = tmp.path().join("linked");
        std::os::unix::fs::symlink(&private, &link).unwrap_or_else(|e| panic!("{e}"));
        restore(&backup, &link, "node", "gov.sz.psb", |_, _| Ok(())).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(link.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()));
        assert_eq!(std::fs::read(private.join("a")).unwrap_or_default(), b"alpha");
    }

    #[test]
    fn backup_directories_are_new_absolute_paths() {
        let refused = |dir: &Path| check_new_backup_dir(dir).err().unwrap_or_default();
        assert!(refused(Path::new("relative/dir")).contains("not an absolute path"));
        assert!(refused(&std::env::temp_dir()).contains("already exists"));
        assert!(refused(Path::new("/nonexistent-parent/x")).contains("parent"));
        assert!(check_new_backup_dir(&std::env::temp_dir().join("exchange-new-backup-dir")).is_ok());
    }
}
