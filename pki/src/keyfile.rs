//! Key files of the daemons and tools: Ed25519 signing keys as PKCS#8 PEM, and secrets
//! (such as the subject digest key) written readable by their owner only. One place, so that
//! the catalog, the nodes and the tools read and write keys the same way.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

/// Why a key file could not be read or written; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read, created or restricted.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not hold what it should.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError {
    let path = path.to_path_buf();
    move |source| KeyFileError::Io { action, path, source }
}

/// Reads an Ed25519 signing key from a PKCS#8 PEM file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let pem = std::fs::read_to_string(path).map_err(io("read signing key", path))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not an Ed25519 PKCS#8 PEM key: {e}"),
    })
}

/// Writes an Ed25519 signing key as PKCS#8 v1 PEM (RFC 8410: the private key alone),
/// readable by its owner only.
///
/// Not the v2 form (RFC 5958, with the public key) that `SigningKey::to_pkcs8_pem` writes:
/// `openssl pkey` answers "unsupported" to it and Python's `cryptography` "extra data", so an
/// operator could neither inspect such a key nor move it into a KMS or HSM with the usual tools.
/// [`read_signing_key`] reads both forms.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    let pem = signing_key_pem(key)
        .map_err(|e| KeyFileError::Invalid { path: path.to_path_buf(), reason: format!("cannot encode key: {e}") })?;
    write_secret(path, pem.as_bytes())
}

/// An Ed25519 signing key as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`), as
/// [`write_signing_key`] writes it.
pub fn signing_key_pem(key: &SigningKey) -> Result<String, ed25519_dalek::pkcs8::Error> {
    let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
    Ok(v1.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)?.to_string())
}

/// Reads a 32-byte key written as 64 hex characters.
pub fn read_hex_key(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(io("read key", path))?;
    let invalid = || KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: "must hold exactly 32 bytes as 64 hex characters".into(),
    };
    hex::decode(text.trim()).map_err(|_| invalid())?.try_into().map_err(|_| invalid())
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix), from the start: the
/// bytes go into a new file created with that mode next to `path`, which then replaces
/// `path` in one rename, so that no moment exists when another user could read the secret
/// (a chmod after the write would leave one), and a file already at `path` with a wider
/// mode is replaced rather than reused.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let mut name = path.file_name().map(std::ffi::OsString::from).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", path)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("write", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_bytes(&[3; 32]);
        let path = dir.path().join("keys/node.pem");
        write_signing_key(&path, &key).expect("write");
        assert_eq!(read_signing_key(&path).expect("read").to_bytes(), key.to_bytes());
        let hex_path = dir.path().join("digest.key");
        write_secret(&hex_path, hex::encode([7u8; 32]).as_bytes()).expect("write secret");
        assert_eq!(read_hex_key(&hex_path).expect("read hex"), [7u8; 32]);
        write_secret(&hex_path, b"abcd").expect("write short");
        let err = read_hex_key(&hex_path).expect_err("too short");
        assert!(err.to_string().contains("digest.key") && err.to_string().contains("64 hex"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // A key file left world-readable is replaced by one its owner alone reads.
            std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            write_secret(&hex_path, hex::encode([8u8; 32]).as_bytes()).expect("rewrite");
            for p in [&path, &hex_path] {
                let mode = std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
            }
            assert_eq!(read_hex_key(&hex_path).expect("read rewritten"), [8u8; 32]);
        }
        let err = read_signing_key(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn signing_keys_are_written_as_pkcs8_v1_and_v2_files_are_still_read() {
        use ed25519_dalek::pkcs8::{DecodePrivateKey as _, PrivateKeyInfoRef};
        let key = SigningKey::from_bytes(&[5; 32]);
        let pem = signing_key_pem(&key).expect("pem");
        let (label, der) = ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes()).expect("decode pem");
        assert_eq!(label, "PRIVATE KEY");
        // RFC 8410's v1 form: version 0, no public key; 48 bytes in all.
        let info = PrivateKeyInfoRef::try_from(der.as_slice()).expect("pkcs8");
        assert!(info.public_key.is_none(), "a v1 key holds no public key");
        assert_eq!(der.len(), 48);
        assert_eq!(SigningKey::from_pkcs8_der(&der).expect("read back").to_bytes(), key.to_bytes());

        // A v2 file, as earlier versions wrote them, is still accepted.
        let dir = tempfile::tempdir().expect("tempdir");
        let v2 = key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).expect("v2");
        let v2_path = dir.path().join("old.pem");
        write_secret(&v2_path, v2.as_bytes()).expect("write v2");
        assert_eq!(read_signing_key(&v2_path).expect("read v2").to_bytes(), key.to_bytes());
    }
}
