//! The node daemon's configuration: a TOML file read into [`NodeConfigFile`], then checked
//! and loaded into [`NodeConfig`] before any port is bound. A bad setting stops the daemon
//! with a message that names it.
//!
//! ```toml
//! dept_id = "gov.sz.psb"
//! listen = "127.0.0.1:7401"
//! data_dir = "data/psb"
//! catalog_endpoint = "https://127.0.0.1:7400"
//! catalog_server_name = "localhost"        # default
//! catalog_id = "gov.sz.exchange"           # the department id the catalog's certificate names
//! signing_key = "keys/node-signing.pem"    # Ed25519 PKCS#8 PEM (`exchange-node keygen`)
//! catalog_public_key = "<64 hex>"          # pinned key that signs the federation configuration
//! catalog_next_public_key = "<64 hex>"     # optional: the catalog's next configuration key
//! config_max_age_secs = 300                # default
//! max_batch_items = 100                    # default
//! access_log_sync = true                   # default; false only under exchange-bench
//! metrics_listen = "127.0.0.1:9401"        # optional: Prometheus text at /metrics (plain HTTP)
//! metrics_remote = false                   # default; true to allow a non-loopback metrics_listen
//!
//! [tls]
//! ca_cert = "pki/ca.crt"
//! cert = "pki/gov.sz.psb.crt"
//! key = "pki/gov.sz.psb.key"
//!
//! [[datasets]]
//! id = "gov.sz.psb/population"
//! kind = "record"                          # or "licence"
//! schema = "std.record.population@1"
//! share_class = "conditional"              # unconditional | conditional | not_shared
//! legal_basis = "..."
//! description_zh = "..."
//! description_en = "..."
//! update_cycle = "daily"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_core::ident::{DatasetId, DeptId};
use exchange_core::schema::SchemaRef;
use exchange_pki::{LoadedIdentity, TlsFiles};
use exchange_proto::v1::{Dataset, DatasetKind, ShareClass};
use serde::Deserialize;

/// Default maximum age of the federation configuration: five minutes.
pub const DEFAULT_CONFIG_MAX_AGE_SECS: u64 = 300;
/// Default (and largest) number of items in a batch query.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 100;

/// The configuration file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigFile {
    /// The department id of this node, e.g. `gov.sz.psb`.
    pub dept_id: String,
    /// Address to listen on.
    pub listen: String,
    /// RocksDB directory.
    pub data_dir: PathBuf,
    /// The catalog's endpoint, `https://host:port`.
    pub catalog_endpoint: String,
    /// The DNS name or IP in the catalog's certificate (default `localhost`).
    #[serde(default = "default_server_name")]
    pub catalog_server_name: String,
    /// The catalog's department id: its certificate must name it in its SAN URI, so that a
    /// member's certificate carrying the catalog's DNS name is not taken for the catalog.
    pub catalog_id: String,
    /// TLS files.
    pub tls: TlsSection,
    /// The node's Ed25519 signing key (PKCS#8 PEM): signs answers.
    pub signing_key: PathBuf,
    /// The pinned catalog public key (64 hex characters) that must sign the configuration.
    pub catalog_public_key: String,
    /// The catalog's next configuration key (64 hex characters), pinned beside the current
    /// one. Optional: a node that holds a configuration listing the next key learns it from
    /// there; this pin is for a node that was away while the next key was published.
    #[serde(default)]
    pub catalog_next_public_key: Option<String>,
    /// Maximum age of the configuration before queries are refused (default 300).
    #[serde(default = "default_max_age")]
    pub config_max_age_secs: u64,
    /// Most items in a batch (default and at most 100).
    #[serde(default = "default_max_batch")]
    pub max_batch_items: usize,
    /// Whether each group write of the access log is synced to disk (default `true`). `false`
    /// exists only so that the benchmark harness can show what the sync costs: it is refused
    /// unless [`BENCH_ENV`] is `1` in the daemon's environment (see [`check_access_log_sync`]).
    #[serde(default = "default_true")]
    pub access_log_sync: bool,
    /// Where to serve the metrics (`GET /metrics`, Prometheus text format, plain HTTP);
    /// unset: no metrics listener. A loopback address unless `metrics_remote` is true.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Whether `metrics_listen` may be a non-loopback address (default `false`): set it only
    /// where the network lets nobody but the monitoring reach that port.
    #[serde(default)]
    pub metrics_remote: bool,
    /// The datasets this node serves.
    #[serde(default)]
    pub datasets: Vec<DatasetSection>,
}

/// The environment variable the benchmark harness (`exchange-bench`) sets for the daemons it
/// starts; only then may `access_log_sync = false` be configured.
pub const BENCH_ENV: &str = "EXCHANGE_BENCH";

fn default_true() -> bool {
    true
}

/// Refuses `access_log_sync = false` outside the benchmark harness: an access-log entry
/// acknowledged but not yet synced can be lost in a power cut, and the node promises that
/// every answer it gave is in the log (fail-closed). `bench_env` is the value of [`BENCH_ENV`].
pub fn check_access_log_sync(sync: bool, bench_env: Option<&str>) -> anyhow::Result<()> {
    if !sync && bench_env != Some("1") {
        bail!(
            "setting access_log_sync: false is only for the benchmark harness (exchange-bench, which sets \
             {BENCH_ENV}=1): a node in service syncs every access-log write; remove the setting"
        );
    }
    Ok(())
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_max_age() -> u64 {
    DEFAULT_CONFIG_MAX_AGE_SECS
}
fn default_max_batch() -> usize {
    DEFAULT_MAX_BATCH_ITEMS
}

/// TLS files of the node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The federation CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This node's certificate (PEM), kind `both` (it serves and calls the catalog).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// One dataset served by the node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// `<dept>/<name>`.
    pub id: String,
    /// `licence` or `record`.
    pub kind: String,
    /// `<schema name>@<version>`.
    pub schema: String,
    /// `unconditional`, `conditional` or `not_shared`.
    pub share_class: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Description, Chinese.
    #[serde(default)]
    pub description_zh: String,
    /// Description, English.
    #[serde(default)]
    pub description_en: String,
    /// Update cycle.
    #[serde(default)]
    pub update_cycle: String,
}

/// The checked, loaded configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's department.
    pub dept_id: DeptId,
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Catalog endpoint.
    pub catalog_endpoint: String,
    /// Catalog server name.
    pub catalog_server_name: String,
    /// The catalog's department id, pinned.
    pub catalog_id: DeptId,
    /// TLS identity.
    pub tls: LoadedIdentity,
    /// Answer signing key.
    pub signing_key: SigningKey,
    /// The file it was read from (re-read on SIGHUP: a rotation's switch).
    pub signing_key_path: PathBuf,
    /// Pinned catalog key.
    pub catalog_public_key: VerifyingKey,
    /// The catalog's next configuration key, pinned too when set.
    pub catalog_next_public_key: Option<VerifyingKey>,
    /// Maximum configuration age, ms.
    pub config_max_age_ms: i64,
    /// Most batch items.
    pub max_batch_items: usize,
    /// Whether the access log's group writes are synced (always, but under the benchmark
    /// harness).
    pub access_log_sync: bool,
    /// The metrics listener's address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Datasets served, in the catalog's shape (counts filled at publication).
    pub datasets: Vec<Dataset>,
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

pub use exchange_pki::keyfile::{read_signing_key, write_signing_key};

/// Parses a 32-byte Ed25519 public key written as 64 hex characters.
pub fn parse_public_key(hex_text: &str) -> anyhow::Result<VerifyingKey> {
    let bytes = hex::decode(hex_text.trim()).map_err(|_| anyhow::anyhow!("must be 64 hex characters"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("must be 32 bytes (64 hex characters)"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| anyhow::anyhow!("is not an Ed25519 public key"))
}

/// Parses a share class name.
pub fn parse_share_class(name: &str) -> Option<ShareClass> {
    match name {
        "unconditional" => Some(ShareClass::Unconditional),
        "conditional" => Some(ShareClass::Conditional),
        "not_shared" => Some(ShareClass::NotShared),
        _ => None,
    }
}

impl NodeConfig {
    /// Reads, checks and loads a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read configuration {}", path.display()))?;
        let file: NodeConfigFile =
            toml::from_str(&text).with_context(|| format!("parse configuration {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_file(file, base)
    }

    /// Checks and loads a parsed file; relative paths are taken from `base`.
    pub fn from_file(file: NodeConfigFile, base: &Path) -> anyhow::Result<Self> {
        let NodeConfigFile {
            dept_id,
            listen,
            data_dir,
            catalog_endpoint,
            catalog_server_name,
            catalog_id,
            tls,
            signing_key,
            catalog_public_key,
            catalog_next_public_key,
            config_max_age_secs,
            max_batch_items,
            access_log_sync,
            metrics_listen,
            metrics_remote,
            datasets,
        } = file;
        let dept_id = DeptId::parse(&dept_id).map_err(|e| anyhow::anyhow!("setting dept_id: {e}"))?;
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| anyhow::anyhow!("setting listen: {listen:?} is not an address like 127.0.0.1:7401"))?;
        let metrics_listen = exchange_daemon::metrics::parse_listen(metrics_listen.as_deref(), metrics_remote)?;
        if !catalog_endpoint.starts_with("https://") {
            bail!("setting catalog_endpoint: must be an https:// address, e.g. https://127.0.0.1:7400");
        }
        if catalog_server_name.trim().is_empty() {
            bail!("setting catalog_server_name: must name the catalog certificate's DNS name or IP");
        }
        let catalog_id = DeptId::parse(&catalog_id).map_err(|e| anyhow::anyhow!("setting catalog_id: {e}"))?;
        let catalog_public_key =
            parse_public_key(&catalog_public_key).map_err(|e| anyhow::anyhow!("setting catalog_public_key: {e}"))?;
        let catalog_next_public_key = catalog_next_public_key
            .map(|k| parse_public_key(&k))
            .transpose()
            .map_err(|e| anyhow::anyhow!("setting catalog_next_public_key: {e}"))?;
        if !(5..=86_400).contains(&config_max_age_secs) {
            bail!("setting config_max_age_secs: {config_max_age_secs} is outside 5..=86400");
        }
        if !(1..=DEFAULT_MAX_BATCH_ITEMS).contains(&max_batch_items) {
            bail!("setting max_batch_items: {max_batch_items} is outside 1..={DEFAULT_MAX_BATCH_ITEMS}");
        }
        check_access_log_sync(access_log_sync, std::env::var(BENCH_ENV).ok().as_deref())?;
        let tls_files = TlsFiles {
            ca_cert: resolve(base, &tls.ca_cert),
            cert: resolve(base, &tls.cert),
            key: resolve(base, &tls.key),
        };
        let tls = tls_files.load().map_err(|e| anyhow::anyhow!("setting tls: {e}"))?;
        if tls.dept_id() != dept_id.as_str() {
            bail!("setting tls.cert: the certificate names {}, not dept_id {}", tls.dept_id(), dept_id);
        }
        let signing_key_path = resolve(base, &signing_key);
        let signing_key = read_signing_key(&signing_key_path).context("setting signing_key")?;
        let mut out = Vec::new();
        for (i, d) in datasets.into_iter().enumerate() {
            let id = DatasetId::parse(&d.id).map_err(|e| anyhow::anyhow!("setting datasets[{i}].id: {e}"))?;
            if id.provider() != &dept_id {
                bail!("setting datasets[{i}].id: {id} does not belong to {dept_id}");
            }
            if out.iter().any(|o: &Dataset| o.id == id.as_str()) {
                bail!("setting datasets[{i}].id: {id} is listed twice");
            }
            let kind = match d.kind.as_str() {
                "licence" => DatasetKind::Licence,
                "record" => DatasetKind::Record,
                other => bail!("setting datasets[{i}].kind: {other:?} is not licence or record"),
            };
            let schema =
                SchemaRef::parse(&d.schema).map_err(|e| anyhow::anyhow!("setting datasets[{i}].schema: {e}"))?;
            let share = parse_share_class(&d.share_class).ok_or_else(|| {
                anyhow::anyhow!(
                    "setting datasets[{i}].share_class: {:?} is not unconditional, conditional or not_shared",
                    d.share_class
                )
            })?;
            if d.legal_basis.trim().is_empty() {
                bail!("setting datasets[{i}].legal_basis: is required");
            }
            out.push(Dataset {
                id: id.to_string(),
                provider: dept_id.to_string(),
                kind: kind as i32,
                schema: schema.to_string(),
                share_class: share as i32,
                legal_basis: d.legal_basis,
                description_zh: d.description_zh,
                description_en: d.description_en,
                update_cycle: d.update_cycle,
                ..Default::default()
            });
        }
        Ok(Self {
            dept_id,
            listen,
            data_dir: resolve(base, &data_dir),
            catalog_endpoint,
            catalog_server_name,
            catalog_id,
            tls,
            signing_key,
            signing_key_path,
            catalog_public_key,
            catalog_next_public_key,
            config_max_age_ms: i64::try_from(config_max_age_secs).unwrap_or(300) * 1000,
            max_batch_items,
            access_log_sync,
            metrics_listen,
            datasets: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        dept_id = "gov.sz.psb"
        listen = "127.0.0.1:0"
        data_dir = "data"
        catalog_endpoint = "https://127.0.0.1:7400"
        catalog_id = "gov.sz.exchange"
        signing_key = "node.pem"
        catalog_public_key = "00"
        [tls]
        ca_cert = "ca.crt"
        cert = "psb.crt"
        key = "psb.key"
    "#;

    #[test]
    fn the_access_log_is_synced_unless_configured_otherwise() {
        let file: NodeConfigFile = toml::from_str(MINIMAL).expect("minimal configuration");
        assert!(file.access_log_sync);
        let unsynced: NodeConfigFile =
            toml::from_str(&format!("access_log_sync = false\n{MINIMAL}")).expect("with the switch");
        assert!(!unsynced.access_log_sync);
    }

    #[test]
    fn the_metrics_listener_is_off_unless_configured() {
        let file: NodeConfigFile = toml::from_str(MINIMAL).expect("minimal configuration");
        assert_eq!((file.metrics_listen, file.metrics_remote), (None, false));
        let on: NodeConfigFile =
            toml::from_str(&format!("metrics_listen = \"0.0.0.0:9401\"\nmetrics_remote = true\n{MINIMAL}"))
                .expect("with a metrics listener");
        assert_eq!((on.metrics_listen.as_deref(), on.metrics_remote), (Some("0.0.0.0:9401"), true));
        let err = NodeConfig::from_file(
            toml::from_str(&format!("metrics_listen = \"0.0.0.0:9401\"\n{MINIMAL}")).expect("parsed"),
            Path::new("/nonexistent"),
        )
        .expect_err("a wildcard metrics address without metrics_remote");
        assert!(err.to_string().starts_with("setting metrics_listen: 0.0.0.0:9401 is not a loopback address"), "{err}");
    }

    #[test]
    fn an_unsynced_access_log_is_refused_outside_the_benchmark_harness() {
        for env in [None, Some(""), Some("0"), Some("true"), Some("yes")] {
            let err = check_access_log_sync(false, env).expect_err("refused");
            assert!(
                err.to_string().starts_with("setting access_log_sync: false is only for the benchmark harness"),
                "{err}"
            );
        }
        assert!(check_access_log_sync(false, Some("1")).is_ok());
        for env in [None, Some("1")] {
            assert!(check_access_log_sync(true, env).is_ok(), "a synced log is always allowed");
        }
    }
}
