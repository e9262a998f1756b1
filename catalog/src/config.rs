//! The catalog daemon's configuration: a TOML file (every setting documented in
//! `deploy/catalog.example.toml`) read into [`CatalogConfigFile`], then checked and loaded
//! into [`CatalogConfig`] before any port is bound. A bad setting stops the daemon with a
//! message that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use exchange_core::ident::DeptId;
use exchange_pki::{LoadedIdentity, TlsFiles};
use exchange_proto::v1::{Member, Role};
use serde::Deserialize;

use crate::keys::CatalogKeys;

/// Default consent-token lifetime: five minutes.
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 300;

/// The configuration file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfigFile {
    /// The catalog's own department id (recorder of its administrative acts), e.g. `gov.sz.exchange`.
    pub catalog_id: String,
    /// Address to listen on, e.g. `127.0.0.1:7400`.
    pub listen: String,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// Origin line of the access log's checkpoints, e.g. `exchange.sz.gov.cn/log`; also the
    /// consent tokens' issuer.
    pub log_origin: String,
    /// Consent token lifetime in seconds (default 300, at most 3600).
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    /// How often the catalog re-signs the configuration with a fresh `issued_at` when nothing
    /// changed, in seconds (default 30). Nodes count their configuration's age from the newest
    /// signed `issued_at`, so this must be well below every node's `config_max_age_secs`.
    #[serde(default = "default_heartbeat")]
    pub config_heartbeat_secs: u64,
    /// Where to serve the metrics (`GET /metrics`, Prometheus text format, plain HTTP);
    /// unset: no metrics listener. A loopback address unless `metrics_remote` is true.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Whether `metrics_listen` may be a non-loopback address (default `false`).
    #[serde(default)]
    pub metrics_remote: bool,
    /// TLS files.
    pub tls: TlsSection,
    /// The directory of the catalog's signing keys, one per purpose (configurations, consent
    /// tokens, checkpoints) with their next and previous keys: see [`crate::keyring`]
    /// (`exchange-catalog keygen` creates it, `exchange-catalog keys` rotates).
    pub keys_dir: PathBuf,
    /// The federation's subject digest key: 64 hex characters (32 bytes).
    pub subject_digest_key: PathBuf,
    /// Members ensured at start (typically the first operator); existing ones are untouched.
    #[serde(default)]
    pub bootstrap_members: Vec<BootstrapMember>,
}

fn default_token_lifetime() -> u64 {
    DEFAULT_TOKEN_LIFETIME_SECS
}

fn default_heartbeat() -> u64 {
    30
}

/// TLS files of a daemon.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The federation CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This daemon's certificate (PEM).
    pub cert: PathBuf,
    /// This daemon's private key (PEM).
    pub key: PathBuf,
}

/// A member ensured at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapMember {
    /// Department id.
    pub dept_id: String,
    /// Name.
    pub name: String,
    /// Roles: `operator`, `department`, `portal`, `auditor`.
    pub roles: Vec<String>,
    /// SHA-256 fingerprints (64 hex characters) of its certificates; at least one.
    pub cert_fingerprints: Vec<String>,
}

/// The checked, loaded configuration.
#[derive(Clone, Debug)]
pub struct CatalogConfig {
    /// Catalog department id.
    pub catalog_id: DeptId,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log origin.
    pub log_origin: String,
    /// Token lifetime, seconds.
    pub token_lifetime_secs: i64,
    /// The configuration's re-signing interval.
    pub config_heartbeat: std::time::Duration,
    /// The metrics listener's address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// TLS identity.
    pub tls: LoadedIdentity,
    /// The key directory.
    pub keys_dir: PathBuf,
    /// The signing keys, one per purpose, and the published ones.
    pub keys: CatalogKeys,
    /// Subject digest key.
    pub subject_digest_key: [u8; 32],
    /// Bootstrap members.
    pub bootstrap_members: Vec<Member>,
}

/// Parses a role name.
pub fn parse_role(name: &str) -> Option<Role> {
    match name {
        "operator" => Some(Role::Operator),
        "department" => Some(Role::Department),
        "portal" => Some(Role::Portal),
        "auditor" => Some(Role::Auditor),
        _ => None,
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

pub use exchange_pki::keyfile::{read_hex_key, read_signing_key, write_secret, write_signing_key};

impl CatalogConfig {
    /// Reads, checks and loads a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read configuration {}", path.display()))?;
        let file: CatalogConfigFile =
            toml::from_str(&text).with_context(|| format!("parse configuration {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_file(file, base)
    }

    /// Checks and loads a parsed file; relative paths are taken from `base`.
    pub fn from_file(file: CatalogConfigFile, base: &Path) -> anyhow::Result<Self> {
        let CatalogConfigFile {
            catalog_id,
            listen,
            data_dir,
            log_origin,
            token_lifetime_secs,
            config_heartbeat_secs,
            metrics_listen,
            metrics_remote,
            tls,
            keys_dir,
            subject_digest_key,
            bootstrap_members,
        } = file;
        if !(1..=3600).contains(&config_heartbeat_secs) {
            bail!("setting config_heartbeat_secs: {config_heartbeat_secs} is outside 1..=3600");
        }
        let catalog_id = DeptId::parse(&catalog_id).map_err(|e| anyhow::anyhow!("setting catalog_id: {e}"))?;
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| anyhow::anyhow!("setting listen: {listen:?} is not an address like 127.0.0.1:7400"))?;
        let metrics_listen = exchange_daemon::metrics::parse_listen(metrics_listen.as_deref(), metrics_remote)?;
        if log_origin.trim().is_empty() || log_origin.contains(char::is_whitespace) {
            bail!("setting log_origin: must be a non-empty name without spaces, e.g. exchange.sz.gov.cn/log");
        }
        // Nodes refuse any token living longer than MAX_TOKEN_LIFETIME_SECS, whoever signed it.
        let max = exchange_core::token::MAX_TOKEN_LIFETIME_SECS;
        if !(30..=max as u64).contains(&token_lifetime_secs) {
            bail!(
                "setting token_lifetime_secs: {token_lifetime_secs} is outside 30..={max} (consent tokens are short-lived)"
            );
        }
        let tls_files = TlsFiles {
            ca_cert: resolve(base, &tls.ca_cert),
            cert: resolve(base, &tls.cert),
            key: resolve(base, &tls.key),
        };
        let tls = tls_files.load().map_err(|e| anyhow::anyhow!("setting tls: {e}"))?;
        let keys_dir = resolve(base, &keys_dir);
        let keys = crate::keyring::load(&keys_dir).map_err(|e| anyhow::anyhow!("setting keys_dir: {e}"))?;
        let subject_digest_key =
            read_hex_key(&resolve(base, &subject_digest_key)).context("setting subject_digest_key")?;
        let mut members = Vec::new();
        for (i, m) in bootstrap_members.into_iter().enumerate() {
            DeptId::parse(&m.dept_id).map_err(|e| anyhow::anyhow!("setting bootstrap_members[{i}].dept_id: {e}"))?;
            let mut roles = Vec::new();
            for r in &m.roles {
                let role = parse_role(r).ok_or_else(|| {
                    anyhow::anyhow!(
                        "setting bootstrap_members[{i}].roles: {r:?} is not operator, department, portal or auditor"
                    )
                })?;
                roles.push(role as i32);
            }
            if m.cert_fingerprints.is_empty() {
                bail!(
                    "setting bootstrap_members[{i}].cert_fingerprints: at least one certificate fingerprint is required (as `exchange ca issue` prints it)"
                );
            }
            let mut fingerprints = Vec::new();
            for (j, hex_fp) in m.cert_fingerprints.iter().enumerate() {
                match hex::decode(hex_fp.trim()) {
                    Ok(bytes) if bytes.len() == 32 => fingerprints.push(bytes),
                    _ => bail!(
                        "setting bootstrap_members[{i}].cert_fingerprints[{j}]: {hex_fp:?} is not a SHA-256 fingerprint (64 hex characters)"
                    ),
                }
            }
            members.push(Member {
                dept_id: m.dept_id,
                name: m.name,
                roles,
                cert_fingerprints: fingerprints,
                ..Default::default()
            });
        }
        Ok(Self {
            catalog_id,
            listen,
            data_dir: resolve(base, &data_dir),
            log_origin,
            token_lifetime_secs: i64::try_from(token_lifetime_secs).unwrap_or(300),
            config_heartbeat: std::time::Duration::from_secs(config_heartbeat_secs),
            metrics_listen,
            tls,
            keys_dir,
            keys,
            subject_digest_key,
            bootstrap_members: members,
        })
    }
}
