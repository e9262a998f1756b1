//! The catalog's key directory (setting `keys_dir`) and the operator's rotation steps.
//!
//! Per purpose (`configuration`, `token`, `checkpoint`) the directory holds:
//!
//! | file                  | what                                                         |
//! |-----------------------|--------------------------------------------------------------|
//! | `<p>.pem`             | the signing key (PKCS#8 v1 PEM, mode 0600)                   |
//! | `<p>.next.pem`        | the next key: published in the configuration, not signing    |
//! | `<p>.previous.pub`    | the previous public key (hex): published until retired       |
//!
//! A rotation is three steps, each a command (`exchange-catalog keys next|switch|retire`)
//! followed by a reload of the running catalog (SIGHUP), which re-reads the directory and
//! publishes a configuration listing the keys in force: **next** (verifiers learn the key),
//! **switch** (the catalog signs with it; the one it replaces stays published), **retire**
//! (the previous key is listed no more: what it signed stops verifying).

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_pki::keyfile::{read_signing_key, write_secret, write_signing_key};
use exchange_proto::v1::KeyPurpose;

use crate::keys::{CatalogKeys, PURPOSES, purpose_name};

/// The file of a purpose's signing key.
pub fn signing_file(dir: &Path, purpose: KeyPurpose) -> PathBuf {
    dir.join(format!("{}.pem", purpose_name(purpose)))
}

/// The file of a purpose's next key.
pub fn next_file(dir: &Path, purpose: KeyPurpose) -> PathBuf {
    dir.join(format!("{}.next.pem", purpose_name(purpose)))
}

/// The file of a purpose's previous public key.
pub fn previous_file(dir: &Path, purpose: KeyPurpose) -> PathBuf {
    dir.join(format!("{}.previous.pub", purpose_name(purpose)))
}

fn read_public(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{}: must hold an Ed25519 public key as 64 hex characters", path.display()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| format!("{}: not an Ed25519 public key", path.display()))
}

fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    SigningKey::from_bytes(&seed)
}

/// Reads the keys in force from `dir`: every purpose's signing key (required), and its next
/// and previous keys when present. Keys shared between purposes are refused.
pub fn load(dir: &Path) -> Result<CatalogKeys, String> {
    let signing = |p: KeyPurpose| read_signing_key(&signing_file(dir, p)).map_err(|e| e.to_string());
    let config = signing(KeyPurpose::Configuration)?;
    let token = signing(KeyPurpose::ConsentToken)?;
    let checkpoint = signing(KeyPurpose::Checkpoint)?;
    let mut published = Vec::new();
    for purpose in PURPOSES {
        let next = next_file(dir, purpose);
        if next.exists() {
            published.push((purpose, read_signing_key(&next).map_err(|e| e.to_string())?.verifying_key()));
        }
        let previous = previous_file(dir, purpose);
        if previous.exists() {
            published.push((purpose, read_public(&previous)?));
        }
    }
    CatalogKeys::new(config, token, checkpoint, published).map_err(|e| format!("keys_dir {}: {e}", dir.display()))
}

/// Creates a new key directory's signing keys, one per purpose (none may exist yet).
pub fn init(dir: &Path) -> Result<Vec<(KeyPurpose, VerifyingKey)>, String> {
    let mut out = Vec::new();
    for purpose in PURPOSES {
        let path = signing_file(dir, purpose);
        if path.exists() {
            return Err(format!("{} exists: a key directory is initialised once", path.display()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    for purpose in PURPOSES {
        let key = random_key();
        write_signing_key(&signing_file(dir, purpose), &key).map_err(|e| e.to_string())?;
        out.push((purpose, key.verifying_key()));
    }
    Ok(out)
}

/// Step 1: creates the next key of `purpose` (published at the next reload, not signing).
pub fn next(dir: &Path, purpose: KeyPurpose) -> Result<VerifyingKey, String> {
    let path = next_file(dir, purpose);
    if path.exists() {
        return Err(format!("{} exists: a next {} key is already published", path.display(), purpose_name(purpose)));
    }
    let key = random_key();
    write_signing_key(&path, &key).map_err(|e| e.to_string())?;
    // Checked now rather than at the reload: the new key must load with the others, and a
    // key that does not is not kept.
    if let Err(e) = load(dir) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(key.verifying_key())
}

/// Step 2: the next key of `purpose` becomes its signing key; the one it replaces is kept
/// as the previous key (its public half only), published until retired.
pub fn switch(dir: &Path, purpose: KeyPurpose) -> Result<(VerifyingKey, VerifyingKey), String> {
    let (current_path, next_path, previous_path) =
        (signing_file(dir, purpose), next_file(dir, purpose), previous_file(dir, purpose));
    if !next_path.exists() {
        return Err(format!(
            "no next {} key ({} is missing): publish one with `keys next` first",
            purpose_name(purpose),
            next_path.display()
        ));
    }
    let current = read_signing_key(&current_path).map_err(|e| e.to_string())?.verifying_key();
    let next = read_signing_key(&next_path).map_err(|e| e.to_string())?.verifying_key();
    if previous_path.exists() && read_public(&previous_path)? != current {
        return Err(format!(
            "a previous {} key is still published ({}): retire it with `keys retire` first",
            purpose_name(purpose),
            previous_path.display()
        ));
    }
    // The previous public key is written first: a switch interrupted here leaves it equal
    // to the current key, which a second `switch` completes.
    write_secret(&previous_path, hex::encode(current.as_bytes()).as_bytes()).map_err(|e| e.to_string())?;
    std::fs::rename(&next_path, &current_path)
        .map_err(|e| format!("rename {} to {}: {e}", next_path.display(), current_path.display()))?;
    Ok((current, next))
}

/// Step 3: the previous key of `purpose` is published no more.
pub fn retire(dir: &Path, purpose: KeyPurpose) -> Result<VerifyingKey, String> {
    let path = previous_file(dir, purpose);
    if !path.exists() {
        return Err(format!("no previous {} key to retire ({} is missing)", purpose_name(purpose), path.display()));
    }
    let previous = read_public(&path)?;
    std::fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn listed(dir: &Path, purpose: KeyPurpose) -> Vec<(bool, VerifyingKey)> {
        load(dir)
            .expect("keys")
            .catalog_keys()
            .into_iter()
            .filter(|k| k.purpose == purpose as i32)
            .map(|k| {
                let bytes: [u8; 32] = k.public_key.as_slice().try_into().expect("32 bytes");
                (k.signing, VerifyingKey::from_bytes(&bytes).expect("key"))
            })
            .collect()
    }

    #[test]
    fn a_rotation_publishes_switches_and_retires() {
        let dir = tempfile::tempdir().expect("dir");
        let first = init(dir.path()).expect("init");
        assert!(init(dir.path()).expect_err("twice").contains("initialised once"));
        let token0 = first[1].1;
        assert_eq!(listed(dir.path(), KeyPurpose::ConsentToken), vec![(true, token0)]);
        assert!(switch(dir.path(), KeyPurpose::ConsentToken).expect_err("no next").contains("keys next"));
        assert!(retire(dir.path(), KeyPurpose::ConsentToken).expect_err("no previous").contains("no previous"));

        let token1 = next(dir.path(), KeyPurpose::ConsentToken).expect("next");
        assert!(next(dir.path(), KeyPurpose::ConsentToken).expect_err("twice").contains("already published"));
        assert_eq!(listed(dir.path(), KeyPurpose::ConsentToken), vec![(true, token0), (false, token1)]);
        // The other purposes are untouched.
        assert_eq!(listed(dir.path(), KeyPurpose::Checkpoint), vec![(true, first[2].1)]);

        assert_eq!(switch(dir.path(), KeyPurpose::ConsentToken).expect("switch"), (token0, token1));
        assert_eq!(listed(dir.path(), KeyPurpose::ConsentToken), vec![(true, token1), (false, token0)]);
        next(dir.path(), KeyPurpose::ConsentToken).expect("a next one again");
        assert!(switch(dir.path(), KeyPurpose::ConsentToken).expect_err("previous still there").contains("retire"));

        assert_eq!(retire(dir.path(), KeyPurpose::ConsentToken).expect("retire"), token0);
        assert_eq!(listed(dir.path(), KeyPurpose::ConsentToken).len(), 2);
        for entry in std::fs::read_dir(dir.path()).expect("list") {
            let path = entry.expect("entry").path();
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    #[test]
    fn a_key_serving_two_purposes_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        init(dir.path()).expect("init");
        std::fs::copy(
            signing_file(dir.path(), KeyPurpose::ConsentToken),
            next_file(dir.path(), KeyPurpose::Checkpoint),
        )
        .expect("copy");
        let e = load(dir.path()).expect_err("shared key");
        assert!(e.contains("each purpose needs its own key"), "{e}");
    }
}
