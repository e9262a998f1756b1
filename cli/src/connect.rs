//! The global connection settings: flags, environment variables, a TOML profile.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use exchange_client_sdk::config::read_public_key;
use exchange_client_sdk::profile::Profile;
use exchange_client_sdk::{ClientConfig, ClientIdentity, Error, ExchangeClient};
use exchange_core::checkpoint::NoteVerifier;
use exchange_pki::TlsFiles;

/// How to reach the federation, and as whom.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection (flags, EXCHANGE_* variables or a --profile file)")]
pub struct Conn {
    /// A TOML profile holding any of: catalog, catalog_name, catalog_id, catalog_key,
    /// catalog_next_key, ca, cert, key, log_key, timeout_secs (paths relative to the
    /// profile's directory).
    #[arg(long, global = true, env = "EXCHANGE_PROFILE", value_name = "FILE")]
    profile: Option<PathBuf>,
    /// The catalog's address.
    #[arg(long, global = true, env = "EXCHANGE_CATALOG", value_name = "https://HOST:PORT")]
    catalog: Option<String>,
    /// The name in the catalog's certificate (default `localhost`).
    #[arg(long, global = true, env = "EXCHANGE_CATALOG_NAME", value_name = "NAME")]
    catalog_name: Option<String>,
    /// The catalog's department id, pinned: its certificate must name it.
    #[arg(long, global = true, env = "EXCHANGE_CATALOG_ID", value_name = "DEPT")]
    catalog_id: Option<String>,
    /// The catalog's Ed25519 public key, pinned: 64 hex characters, or a file with the key
    /// in hex or PEM.
    #[arg(long, global = true, env = "EXCHANGE_CATALOG_KEY", value_name = "HEX|FILE")]
    catalog_key: Option<String>,
    /// The catalog's next configuration key, pinned beside the current one (hex or a file):
    /// see the runbook's "Rotating the catalog's keys".
    #[arg(long, global = true, env = "EXCHANGE_CATALOG_NEXT_KEY", value_name = "HEX|FILE")]
    catalog_next_key: Option<String>,
    /// The federation CA certificate (PEM).
    #[arg(long, global = true, env = "EXCHANGE_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Your department's certificate (PEM).
    #[arg(long, global = true, env = "EXCHANGE_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Your department's private key (PEM).
    #[arg(long, global = true, env = "EXCHANGE_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// The access log's note verifier key (`<origin>+<keyid>+<key>`); default: the
    /// checkpoint keys the verified federation configuration lists, under its log origin.
    #[arg(long, global = true, env = "EXCHANGE_LOG_KEY", value_name = "VKEY")]
    log_key: Option<String>,
    /// Deadline of each call, in seconds (default 10).
    #[arg(long, global = true, env = "EXCHANGE_TIMEOUT", value_name = "SECS")]
    timeout: Option<u64>,
}

impl Conn {
    /// The settings with the profile filled in where a flag or variable is missing.
    fn merged(&self) -> anyhow::Result<Conn> {
        let Some(path) = &self.profile else {
            return Ok(self.clone());
        };
        let p = Profile::load(path)?;
        Ok(Conn {
            profile: None,
            catalog: self.catalog.clone().or(p.catalog),
            catalog_name: self.catalog_name.clone().or(p.catalog_name),
            catalog_id: self.catalog_id.clone().or(p.catalog_id),
            catalog_key: self.catalog_key.clone().or(p.catalog_key),
            catalog_next_key: self.catalog_next_key.clone().or(p.catalog_next_key),
            ca: self.ca.clone().or(p.ca),
            cert: self.cert.clone().or(p.cert),
            key: self.key.clone().or(p.key),
            log_key: self.log_key.clone().or(p.log_key),
            timeout: self.timeout.or(p.timeout_secs),
        })
    }

    /// A client from these settings.
    pub async fn client(&self) -> anyhow::Result<ExchangeClient> {
        let c = self.merged()?;
        let missing = |what: &str, flag: &str, var: &str| {
            anyhow!("{what} is not set: pass {flag}, set {var}, or put it in a --profile file")
        };
        let catalog = c.catalog.ok_or_else(|| missing("the catalog address", "--catalog", "EXCHANGE_CATALOG"))?;
        let catalog_id = c
            .catalog_id
            .ok_or_else(|| missing("the catalog's department id", "--catalog-id", "EXCHANGE_CATALOG_ID"))?;
        let key_text =
            c.catalog_key.ok_or_else(|| missing("the catalog key", "--catalog-key", "EXCHANGE_CATALOG_KEY"))?;
        let files = TlsFiles {
            ca_cert: c.ca.ok_or_else(|| missing("the CA certificate", "--ca", "EXCHANGE_CA"))?,
            cert: c.cert.ok_or_else(|| missing("the certificate", "--cert", "EXCHANGE_CERT"))?,
            key: c.key.ok_or_else(|| missing("the private key", "--key", "EXCHANGE_KEY"))?,
        };
        let catalog_key = read_public_key(&key_text).context("setting --catalog-key")?;
        // A local problem with our own files is a local error (exit 1), not a TLS refusal.
        let identity = ClientIdentity::load(&files).map_err(|e| match e {
            Error::Tls(m) => anyhow!("load the client identity: {m}"),
            other => anyhow!(other),
        })?;
        let name = c.catalog_name.unwrap_or_else(|| "localhost".to_owned());
        let mut config = ClientConfig::new(identity, catalog, name, catalog_id, catalog_key);
        config.catalog_next_key =
            c.catalog_next_key.as_deref().map(read_public_key).transpose().context("setting --catalog-next-key")?;
        if let Some(secs) = c.timeout {
            config.timeout = Duration::from_secs(secs.max(1));
        }
        Ok(ExchangeClient::connect(config).await?)
    }

    /// The log verifier given by `--log-key`, if any.
    pub fn log_verifier(&self) -> anyhow::Result<Option<NoteVerifier>> {
        let c = self.merged()?;
        c.log_key.map(|k| NoteVerifier::from_vkey(k.trim()).map_err(|e| anyhow!("setting --log-key: {e}"))).transpose()
    }
}
