//! Connection profiles: a TOML file saying how a department system reaches the federation and
//! as whom, shared by the `exchange` command line, the HTTP gateway and the demo's printed
//! commands.
//!
//! ```toml
//! catalog = "https://catalog.example:7400"
//! catalog_name = "localhost"          # the name in the catalog's certificate
//! catalog_id = "gov.sz.exchange"      # the department id the catalog's certificate names
//! catalog_key = "keys/catalog.pub"    # pinned Ed25519 key: 64 hex characters or a file
//! catalog_next_key = "..."            # optional: the catalog's next configuration key
//! ca = "pki/ca.crt"
//! cert = "pki/gov.sz.hcb.crt"
//! key = "pki/gov.sz.hcb.key"
//! log_key = "exchange.sz/log+..."     # optional: the access log's note verifier key
//! timeout_secs = 10                   # optional
//! ```
//!
//! Paths are relative to the profile's folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use exchange_pki::TlsFiles;
use serde::Deserialize;

use crate::config::read_public_key;
use crate::{ClientConfig, ClientIdentity, Error, Result};

/// A profile as written, every path resolved against the profile's folder.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The catalog's address, `https://host:port`.
    pub catalog: Option<String>,
    /// The name in the catalog's certificate (default `localhost`).
    pub catalog_name: Option<String>,
    /// The catalog's department id, pinned (its certificate must name it).
    pub catalog_id: Option<String>,
    /// The catalog's pinned Ed25519 key: 64 hex characters, or a file with it (hex or PEM).
    pub catalog_key: Option<String>,
    /// The catalog's next configuration key, pinned too (hex or a file).
    pub catalog_next_key: Option<String>,
    /// The federation CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// The department's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// The department's private key (PEM).
    pub key: Option<PathBuf>,
    /// The access log's note verifier key (`<origin>+<keyid>+<key>`).
    pub log_key: Option<String>,
    /// Deadline of each call, in seconds.
    pub timeout_secs: Option<u64>,
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

impl Profile {
    /// Reads a profile file; relative paths (also a `catalog_key` naming a file) are resolved
    /// against the file's folder.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidInput(format!("read profile {}: {e}", path.display())))?;
        let p: Profile =
            toml::from_str(&text).map_err(|e| Error::InvalidInput(format!("parse profile {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let key_text = |k: String| {
            let candidate = resolve(&base, PathBuf::from(&k));
            if candidate.is_file() { candidate.display().to_string() } else { k }
        };
        Ok(Profile {
            catalog_key: p.catalog_key.map(key_text),
            catalog_next_key: p.catalog_next_key.map(key_text),
            ca: p.ca.map(|x| resolve(&base, x)),
            cert: p.cert.map(|x| resolve(&base, x)),
            key: p.key.map(|x| resolve(&base, x)),
            ..p
        })
    }

    /// The client configuration of a complete profile; a missing setting is named.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let missing = |what: &str| Error::InvalidInput(format!("the profile does not set {what}"));
        let catalog = self.catalog.clone().ok_or_else(|| missing("catalog"))?;
        let key_text = self.catalog_key.as_deref().ok_or_else(|| missing("catalog_key"))?;
        let files = TlsFiles {
            ca_cert: self.ca.clone().ok_or_else(|| missing("ca"))?,
            cert: self.cert.clone().ok_or_else(|| missing("cert"))?,
            key: self.key.clone().ok_or_else(|| missing("key"))?,
        };
        let catalog_key = read_public_key(key_text)?;
        let identity = ClientIdentity::load(&files)?;
        let name = self.catalog_name.clone().unwrap_or_else(|| "localhost".to_owned());
        let catalog_id = self.catalog_id.clone().ok_or_else(|| missing("catalog_id"))?;
        let mut config = ClientConfig::new(identity, catalog, name, catalog_id, catalog_key);
        config.catalog_next_key = self.catalog_next_key.as_deref().map(read_public_key).transpose()?;
        if let Some(secs) = self.timeout_secs {
            config.timeout = Duration::from_secs(secs.max(1));
        }
        Ok(config)
    }
}
