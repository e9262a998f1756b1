//! Who the client is and whom it talks to: the mTLS identity, the catalog's address and its
//! pinned key, deadlines and the retry policy.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use exchange_pki::{LoadedIdentity, TlsFiles};

use crate::error::{Error, Result};

/// The calling department's mTLS identity: its certificate and key, and the federation CA.
///
/// The department id the federation sees is the one in the certificate, never anything the
/// SDK sends.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    loaded: LoadedIdentity,
}

impl ClientIdentity {
    /// Loads and checks the three PEM files (certificate issued by the CA, valid, naming one
    /// department, key matching).
    ///
    /// ```no_run
    /// use exchange_client_sdk::ClientIdentity;
    /// use exchange_pki::TlsFiles;
    ///
    /// let identity = ClientIdentity::load(&TlsFiles::in_dir("/etc/exchange/tls", "gov.sz.hcb"))?;
    /// println!("calling as {}", identity.dept_id());
    /// # Ok::<(), exchange_client_sdk::Error>(())
    /// ```
    pub fn load(files: &TlsFiles) -> Result<Self> {
        Ok(Self { loaded: files.load()? })
    }

    /// The same checks on PEM text in memory.
    pub fn from_pem(ca_cert_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self> {
        Ok(Self { loaded: LoadedIdentity::from_pem(ca_cert_pem, cert_pem, key_pem)? })
    }

    /// Wraps an identity already loaded.
    pub fn from_loaded(loaded: LoadedIdentity) -> Self {
        Self { loaded }
    }

    /// The department the certificate names.
    pub fn dept_id(&self) -> &str {
        self.loaded.dept_id()
    }

    /// The loaded TLS material.
    pub fn loaded(&self) -> &LoadedIdentity {
        &self.loaded
    }
}

/// How reads are retried when the service is UNAVAILABLE. Catalog mutations and imports are
/// never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Backoff before the second attempt; doubles after each attempt.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self { attempts: 1, ..Self::default() }
    }

    /// The backoff before attempt `attempt` (1-based, so attempt 2 waits `initial_backoff`),
    /// with up to 25% random jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        let base = self.initial_backoff.saturating_mul(1 << doublings).min(self.max_backoff);
        let jitter = rand::random_range(0..=base.as_millis().max(1) as u64 / 4);
        base + Duration::from_millis(jitter)
    }
}

/// Default deadline of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of [`ClientConfig::config_max_age`]: one small catalog call per client every few
/// seconds, at most.
pub const DEFAULT_CONFIG_MAX_AGE: Duration = Duration::from_secs(5);

/// Everything needed to connect: identity, catalog address, the catalog's pinned public key.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The caller's identity.
    pub identity: ClientIdentity,
    /// The catalog, `https://host:port`.
    pub catalog_endpoint: String,
    /// The name the catalog's certificate must carry (`localhost`, an IP address, a DNS name).
    pub catalog_server_name: String,
    /// The catalog's department id, pinned: its certificate must name it in its SAN URI, so
    /// that a member's certificate carrying the catalog's name is not taken for the catalog.
    pub catalog_id: String,
    /// The catalog's configuration key, pinned: the first federation configuration must be
    /// signed by it (or by `catalog_next_key`); later ones by a configuration key the last
    /// verified configuration lists, so that the catalog can switch keys without re-pinning.
    /// Tree heads verify under the checkpoint keys the verified configuration lists.
    pub catalog_public_key: VerifyingKey,
    /// The catalog's next configuration key, pinned beside the current one (none by
    /// default): for a client that starts after the catalog switched.
    pub catalog_next_key: Option<VerifyingKey>,
    /// Deadline of each call.
    pub timeout: Duration,
    /// Retries of reads and queries.
    pub retry: RetryPolicy,
    /// The name node certificates must carry; by default the host of the node's endpoint.
    pub node_server_name: Option<String>,
    /// How long a verified federation configuration is used before the client fetches it
    /// again: the bound within which it learns of a suspended provider or a new node key.
    /// While the catalog cannot be reached, the last verified configuration stays in use.
    pub config_max_age: Duration,
}

impl ClientConfig {
    /// A configuration with the default deadline and retry policy.
    pub fn new(
        identity: ClientIdentity,
        catalog_endpoint: impl Into<String>,
        catalog_server_name: impl Into<String>,
        catalog_id: impl Into<String>,
        catalog_public_key: VerifyingKey,
    ) -> Self {
        Self {
            identity,
            catalog_endpoint: catalog_endpoint.into(),
            catalog_server_name: catalog_server_name.into(),
            catalog_id: catalog_id.into(),
            catalog_public_key,
            catalog_next_key: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            node_server_name: None,
            config_max_age: DEFAULT_CONFIG_MAX_AGE,
        }
    }
}

/// Parses an Ed25519 public key given as 64 hex characters.
pub fn parse_public_key_hex(text: &str) -> Result<VerifyingKey> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| Error::InvalidInput(format!("key {text:?} is not hex (64 hex characters expected)")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::InvalidInput("an Ed25519 public key is 32 bytes (64 hex characters)".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| Error::InvalidInput(format!("not an Ed25519 public key: {e}")))
}

/// Reads an Ed25519 public key from text that is 64 hex characters, a public key PEM
/// (SPKI), or a private key PEM (PKCS#8, whose public half is taken); or from a file holding
/// one of these.
pub fn read_public_key(text_or_path: &str) -> Result<VerifyingKey> {
    let text = if Path::new(text_or_path).is_file() {
        std::fs::read_to_string(text_or_path)
            .map_err(|e| Error::InvalidInput(format!("read key file {text_or_path}: {e}")))?
    } else {
        text_or_path.to_owned()
    };
    let trimmed = text.trim();
    if trimmed.contains("BEGIN PUBLIC KEY") {
        return VerifyingKey::from_public_key_pem(trimmed)
            .map_err(|e| Error::InvalidInput(format!("not an Ed25519 public key PEM: {e}")));
    }
    if trimmed.contains("BEGIN PRIVATE KEY") {
        return ed25519_dalek::SigningKey::from_pkcs8_pem(trimmed)
            .map(|k| k.verifying_key())
            .map_err(|e| Error::InvalidInput(format!("not an Ed25519 PKCS#8 key PEM: {e}")));
    }
    parse_public_key_hex(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert!(p.backoff(2) >= Duration::from_millis(100) && p.backoff(2) <= Duration::from_millis(125));
        assert!(p.backoff(3) >= Duration::from_millis(200));
        assert!(p.backoff(30) <= Duration::from_millis(2500));
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(parse_public_key_hex(&hex::encode(key.as_bytes())).ok(), Some(key));
        assert_eq!(read_public_key(&hex::encode(key.as_bytes())).ok(), Some(key));
        assert!(parse_public_key_hex("abcd").is_err());
        assert!(parse_public_key_hex("zz").is_err());
    }
}
