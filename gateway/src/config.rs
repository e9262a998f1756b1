//! The gateway's configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8480"                 # a local address: legacy systems call it
//! profile = "profiles/gov.sz.hcb.toml"      # the department's connection profile
//!
//! [[callers]]                               # one per calling system
//! name = "rental-system"
//! token_sha256 = "…64 hex…"                 # `exchange-gateway caller-token --name rental-system`
//! ```
//!
//! Relative paths are resolved against the configuration file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The most characters a calling system's name may have: it becomes the start of every trace
/// id the gateway sends (at most 64 characters in all).
pub const MAX_CALLER_NAME: usize = 24;

/// The configuration as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where the HTTP API listens. Only loopback unless `allow_non_loopback` is set: the
    /// API holds the department's authority, so it must not face a network by accident.
    pub listen: SocketAddr,
    /// Allows a non-loopback `listen` address (behind the department's own firewall).
    #[serde(default)]
    pub allow_non_loopback: bool,
    /// The department's connection profile (catalog, pinned key, certificate and key).
    pub profile: PathBuf,
    /// The calling systems.
    pub callers: Vec<CallerConfig>,
}

/// One calling system.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// Its name, carried into every trace id: lowercase letters, digits, '-' and '.'.
    pub name: String,
    /// SHA-256 of its bearer token, 64 hex characters.
    pub token_sha256: String,
}

impl GatewayConfig {
    /// Reads and checks a configuration file; every problem names the setting.
    pub fn load(path: &Path) -> anyhow::Result<GatewayConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let mut config: GatewayConfig = toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.profile.is_relative() {
            config.profile = base.join(&config.profile);
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the settings.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.listen.ip().is_loopback() && !self.allow_non_loopback {
            bail!(
                "setting listen: {} is not a loopback address; the gateway speaks for the whole department, \
                 so set allow_non_loopback = true only behind the department's own firewall",
                self.listen
            );
        }
        if self.callers.is_empty() {
            bail!("setting callers: no calling system is configured, so no call could be authenticated");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.callers.iter().enumerate() {
            check_caller_name(&c.name).with_context(|| format!("setting callers[{i}].name"))?;
            if !names.insert(c.name.as_str()) {
                bail!("setting callers[{i}].name: {:?} is configured twice", c.name);
            }
            let hex_ok = c.token_sha256.len() == 64 && c.token_sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                bail!("setting callers[{i}].token_sha256: must be 64 hex characters (the SHA-256 of the token)");
            }
        }
        Ok(())
    }
}

/// Checks a calling system's name.
pub fn check_caller_name(name: &str) -> anyhow::Result<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if name.is_empty() || name.len() > MAX_CALLER_NAME || !ok_chars {
        bail!("{name:?} must be 1 to {MAX_CALLER_NAME} characters of a-z, 0-9, '-' and '.'");
    }
    Ok(())
}
