//! A federation on loopback: the `exchange-catalog` daemon and any number of `exchange-node`
//! daemons started as separate processes, each with its own certificate, signing key, TOML
//! configuration and RocksDB directory under one folder.
//!
//! `exchange demo` runs on it, the end-to-end suites in `tests/` drive it (stopping, killing
//! and restarting daemons), and a department developer can use it to try an integration
//! against real daemons without a deployment. It listens on 127.0.0.1 only. [`data`] is the
//! demo federation: its members, schemas and a generated population.
//!
//! It is a crate of its own, not part of `exchange-client-sdk`, so that a department
//! system's build does not carry a launcher, its error reporting (anyhow) and the demo's
//! data generator.
//!
//! The folder it writes is the layout an operator would deploy, in miniature:
//! `pki/` (federation CA and a certificate per member), `keys/`, `catalog.toml`,
//! `<dept>.toml` per node, `profiles/<dept>.toml` for the `exchange` command line,
//! `<name>-data/` RocksDB directories and `logs/<name>.log` with each daemon's output. Each
//! daemon also serves its metrics on a loopback port of its own ([`Localnet::metrics_addr`]).

pub mod data;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_pki::keyfile::{write_secret, write_signing_key};
use exchange_pki::{CertKind, CertSpec, FederationCa, TlsFiles};
use exchange_proto::v1::{Dataset, DatasetKind, LogStatus, Member, Role, ShareClass};
use tokio::process::{Child, Command};

use exchange_client_sdk::{ClientConfig, ClientIdentity, ExchangeClient};

/// The catalog's department id in a local federation.
pub const CATALOG_ID: &str = "gov.sz.exchange";
/// The catalog's process name (for [`Localnet::kill`] and [`Localnet::restart`]).
pub const CATALOG: &str = "catalog";
/// The origin of the central log's checkpoints in a local federation.
pub const LOG_ORIGIN: &str = "localnet.exchange.sz/log";
/// How long to wait for a daemon to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A dataset a node serves (one `[[datasets]]` section of its configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Dataset id `<dept>/<name>`.
    pub id: String,
    /// `licence` or `record`.
    pub kind: String,
    /// Schema reference `<name>@<version>`.
    pub schema: String,
    /// The legal basis of holding and sharing it.
    pub legal_basis: String,
    /// Chinese description.
    pub description_zh: String,
}

impl DatasetSpec {
    /// The catalog entry its node publishes (the same as the node's configuration says).
    pub fn to_dataset(&self, provider: &str) -> Dataset {
        Dataset {
            id: self.id.clone(),
            provider: provider.into(),
            kind: if self.kind == "licence" { DatasetKind::Licence } else { DatasetKind::Record } as i32,
            schema: self.schema.clone(),
            share_class: ShareClass::Conditional as i32,
            legal_basis: self.legal_basis.clone(),
            description_zh: self.description_zh.clone(),
            description_en: self.id.split('/').nth(1).unwrap_or(&self.id).into(),
            update_cycle: "daily".into(),
            ..Default::default()
        }
    }
}

/// A member of the local federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    /// Department id, as in its certificate.
    pub dept_id: String,
    /// Display name.
    pub name: String,
    /// Roles in the federation.
    pub roles: Vec<Role>,
    /// The datasets of its node; a member with none runs no node.
    pub datasets: Vec<DatasetSpec>,
}

impl MemberSpec {
    /// Whether the member runs a node.
    pub fn runs_node(&self) -> bool {
        !self.datasets.is_empty()
    }
}

/// How to build a local federation.
#[derive(Clone, Debug)]
pub struct LocalnetOptions {
    /// The folder for every file; must be empty or absent.
    pub dir: PathBuf,
    /// The folder holding the `exchange-catalog` and `exchange-node` binaries.
    pub bin_dir: PathBuf,
    /// The operator, registered at the catalog's first start (it registers everyone else).
    pub operator: MemberSpec,
    /// Every other member.
    pub members: Vec<MemberSpec>,
    /// Standard schemas (JSON definitions) registered before the nodes start.
    pub schemas: Vec<String>,
    /// How long nodes serve from their cached configuration while the catalog is away.
    pub config_max_age_secs: u64,
    /// Lifetime of consent tokens, in seconds.
    pub token_lifetime_secs: u64,
}

impl LocalnetOptions {
    /// Options with the defaults of a deployment (300 s configuration age and token life).
    pub fn new(dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>, operator: MemberSpec) -> Self {
        LocalnetOptions {
            dir: dir.into(),
            bin_dir: bin_dir.into(),
            operator,
            members: Vec::new(),
            schemas: Vec::new(),
            config_max_age_secs: 300,
            token_lifetime_secs: 300,
        }
    }
}

/// A running local federation. Its daemons are killed when it is dropped.
pub struct Localnet {
    options: LocalnetOptions,
    catalog_endpoint: String,
    catalog_key: VerifyingKey,
    ports: BTreeMap<String, u16>,
    metrics_ports: BTreeMap<String, u16>,
    processes: BTreeMap<String, Child>,
}

impl std::fmt::Debug for Localnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Localnet")
            .field("dir", &self.options.dir)
            .field("catalog", &self.catalog_endpoint)
            .field("running", &self.processes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A loopback port free at this moment (bound, then released for the daemon to bind), and
/// never handed out before by this process.
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out (`bind(0)`) may be
/// handed out again, as the local port of any outgoing connection, before the daemon binds
/// it; below the range only another explicit bind can take it. A port is free until its
/// daemon starts, so without the record of ports given, two ports of one federation, or of
/// two federations started at once by parallel tests, could be the same.
fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let free = |port: u16| !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok();
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let mut chosen = None;
    if ephemeral_low > 12_000 {
        use rand::Rng as _;
        let mut rng = rand::rng();
        chosen = (0..200).map(|_| rng.random_range(10_000..ephemeral_low)).find(|&port| free(port));
    }
    if chosen.is_none() {
        for _ in 0..200 {
            let listener = TcpListener::bind("127.0.0.1:0").context("find a free loopback port")?;
            let port = listener.local_addr()?.port();
            if !given.contains(&port) {
                chosen = Some(port);
                break;
            }
        }
    }
    let port = chosen.context("find a free loopback port: every port tried was taken")?;
    given.insert(port);
    Ok(port)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes
}

/// The folder of the running executable: where cargo puts the workspace's binaries.
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe.parent().context("the running executable has no folder")?;
    // Test executables live one level down, in `deps/`.
    Ok(if dir.ends_with("deps") { dir.parent().unwrap_or(dir) } else { dir }.to_path_buf())
}

impl Localnet {
    /// Writes certificates, keys and configurations, starts the catalog, registers the
    /// members and schemas, then starts every member's node and waits until each runs on
    /// a verified federation configuration.
    pub async fn start(options: LocalnetOptions) -> anyhow::Result<Self> {
        let dir = options.dir.clone();
        if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
            bail!("{} is not empty: choose an empty or new folder", dir.display());
        }
        for daemon in ["exchange-catalog", "exchange-node"] {
            let path = options.bin_dir.join(daemon);
            if !path.is_file() {
                bail!("{} not found: build the workspace first (cargo build --workspace)", path.display());
            }
        }
        std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("create {}", dir.display()))?;

        let pki = dir.join("pki");
        let pki_err = |e: exchange_pki::PkiError| anyhow::anyhow!("{e}");
        let ca = FederationCa::generate("Exchange local federation CA").map_err(pki_err)?;
        ca.write_files(&pki, "ca").map_err(pki_err)?;
        ca.issue(&CertSpec::new(CATALOG_ID, CertKind::Server).with_loopback())
            .and_then(|c| c.write_files(&pki, CATALOG_ID))
            .map_err(pki_err)?;
        let everyone: Vec<MemberSpec> =
            std::iter::once(options.operator.clone()).chain(options.members.clone()).collect();
        // Every member is registered with its certificate's fingerprint (required).
        let mut fingerprints = BTreeMap::new();
        for member in &everyone {
            let spec = if member.runs_node() {
                CertSpec::new(&member.dept_id, CertKind::Both).with_loopback()
            } else {
                CertSpec::new(&member.dept_id, CertKind::Client)
            };
            let issued = ca.issue(&spec).map_err(pki_err)?;
            issued.write_files(&pki, &member.dept_id).map_err(pki_err)?;
            fingerprints.insert(member.dept_id.clone(), issued.fingerprint);
        }

        let catalog_signing = SigningKey::from_bytes(&random_bytes());
        let key_err = |e: exchange_pki::keyfile::KeyFileError| anyhow::anyhow!("{e}");
        // One key per purpose (exchange_catalog::keyring's layout): configurations (what
        // nodes and clients pin), consent tokens, checkpoints.
        write_signing_key(&dir.join("keys/configuration.pem"), &catalog_signing).map_err(key_err)?;
        for name in ["token.pem", "checkpoint.pem"] {
            write_signing_key(&dir.join("keys").join(name), &SigningKey::from_bytes(&random_bytes()))
                .map_err(key_err)?;
        }
        write_secret(&dir.join("keys/subject-digest.key"), hex::encode(random_bytes()).as_bytes()).map_err(key_err)?;
        let catalog_key = catalog_signing.verifying_key();
        let catalog_key_hex = hex::encode(catalog_key.as_bytes());
        let mut ports = BTreeMap::new();
        let catalog_port = free_port()?;
        ports.insert(CATALOG.to_string(), catalog_port);
        let catalog_endpoint = format!("https://localhost:{catalog_port}");
        let mut metrics_ports = BTreeMap::new();
        let catalog_metrics = free_port()?;
        metrics_ports.insert(CATALOG.to_string(), catalog_metrics);
        let operator = &options.operator;
        write(
            &dir.join("catalog.toml"),
            &format!(
                "catalog_id = \"{CATALOG_ID}\"\nlisten = \"127.0.0.1:{catalog_port}\"\ndata_dir = \"catalog-data\"\n\
                 log_origin = \"{LOG_ORIGIN}\"\ntoken_lifetime_secs = {}\nconfig_heartbeat_secs = {}\n\
                 metrics_listen = \"127.0.0.1:{catalog_metrics}\"\n\
                 keys_dir = \"keys\"\n\
                 subject_digest_key = \"keys/subject-digest.key\"\n\n[tls]\nca_cert = \"pki/ca.crt\"\n\
                 cert = \"pki/{CATALOG_ID}.crt\"\nkey = \"pki/{CATALOG_ID}.key\"\n\n[[bootstrap_members]]\n\
                 dept_id = \"{}\"\nname = \"{}\"\nroles = [\"operator\"]\ncert_fingerprints = [\"{}\"]\n",
                options.token_lifetime_secs,
                // Re-signed well within the nodes' maximum age (see the catalog's heartbeat).
                (options.config_max_age_secs / 3).clamp(1, 30),
                operator.dept_id,
                operator.name,
                fingerprints.get(&operator.dept_id).map(hex::encode).unwrap_or_default()
            ),
        )?;
        for member in &everyone {
            let dept = &member.dept_id;
            write(
                &dir.join(format!("profiles/{dept}.toml")),
                &format!(
                    "catalog = \"{catalog_endpoint}\"\ncatalog_name = \"localhost\"\ncatalog_id = \"{CATALOG_ID}\"\ncatalog_key = \"{catalog_key_hex}\"\n\
                     ca = \"../pki/ca.crt\"\ncert = \"../pki/{dept}.crt\"\nkey = \"../pki/{dept}.key\"\n"
                ),
            )?;
        }

        let mut net =
            Localnet { options, catalog_endpoint, catalog_key, ports, metrics_ports, processes: BTreeMap::new() };
        net.spawn(CATALOG)?;
        let ops = net.wait_for_catalog().await?;

        let mut node_keys = BTreeMap::new();
        for member in &net.options.members {
            let mut record = Member {
                dept_id: member.dept_id.clone(),
                name: member.name.clone(),
                roles: member.roles.iter().map(|r| *r as i32).collect(),
                cert_fingerprints: fingerprints.get(&member.dept_id).map(|f| f.to_vec()).into_iter().collect(),
                ..Default::default()
            };
            if member.runs_node() {
                let port = free_port()?;
                let key = SigningKey::from_bytes(&random_bytes());
                record.endpoint = format!("https://localhost:{port}");
                record.node_signing_key = key.verifying_key().as_bytes().to_vec();
                node_keys.insert(member.dept_id.clone(), (port, key));
            }
            ops.register_member(record).await.with_context(|| format!("register member {}", member.dept_id))?;
        }
        for schema in &net.options.schemas {
            ops.register_schema(schema).await.context("register a schema")?;
        }
        // Each department publishes its node's datasets before the node first starts, as the
        // runbook says: the subject digest key goes only to nodes that provide personal data
        // in the catalog, and a node fetches it when it connects.
        for member in net.options.members.clone().iter().filter(|m| m.runs_node()) {
            let client = net.client(&member.dept_id).await?;
            for d in &member.datasets {
                client
                    .publish_dataset(d.to_dataset(&member.dept_id))
                    .await
                    .with_context(|| format!("publish {} before its node starts", d.id))?;
            }
        }
        for member in net.options.members.clone() {
            let Some((port, key)) = node_keys.remove(&member.dept_id) else { continue };
            let metrics_port = free_port()?;
            net.write_node_config(&member, port, metrics_port, &key)?;
            net.ports.insert(member.dept_id.clone(), port);
            net.metrics_ports.insert(member.dept_id.clone(), metrics_port);
            net.spawn(&member.dept_id)?;
        }
        for member in net.options.members.clone() {
            if member.runs_node() {
                net.wait_for_node(&member.dept_id).await?;
            }
        }
        Ok(net)
    }

    fn write_node_config(
        &self,
        member: &MemberSpec,
        port: u16,
        metrics_port: u16,
        key: &SigningKey,
    ) -> anyhow::Result<()> {
        let dept = &member.dept_id;
        let dir = &self.options.dir;
        write_signing_key(&dir.join(format!("keys/{dept}-signing.pem")), key).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut text = format!(
            "dept_id = \"{dept}\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{dept}-data\"\n\
             catalog_endpoint = \"{}\"\ncatalog_server_name = \"localhost\"\ncatalog_id = \"{CATALOG_ID}\"\nsigning_key = \"keys/{dept}-signing.pem\"\n\
             catalog_public_key = \"{}\"\nconfig_max_age_secs = {}\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n[tls]\nca_cert = \"pki/ca.crt\"\n\
             cert = \"pki/{dept}.crt\"\nkey = \"pki/{dept}.key\"\n",
            self.catalog_endpoint,
            hex::encode(self.catalog_key.as_bytes()),
            self.options.config_max_age_secs
        );
        for d in &member.datasets {
            let name = d.id.split('/').nth(1).unwrap_or(&d.id);
            let _ = write!(
                text,
                "\n[[datasets]]\nid = \"{}\"\nkind = \"{}\"\nschema = \"{}\"\nshare_class = \"conditional\"\n\
                 legal_basis = \"{}\"\ndescription_zh = \"{}\"\ndescription_en = \"{name}\"\nupdate_cycle = \"daily\"\n",
                d.id, d.kind, d.schema, d.legal_basis, d.description_zh
            );
        }
        write(&dir.join(format!("{dept}.toml")), &text)
    }

    fn spawn(&mut self, name: &str) -> anyhow::Result<()> {
        let (binary, config) = if name == CATALOG {
            ("exchange-catalog", self.options.dir.join("catalog.toml"))
        } else {
            ("exchange-node", self.options.dir.join(format!("{name}.toml")))
        };
        let path = self.options.bin_dir.join(binary);
        let log = self.log_path(name);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?;
        let child = Command::new(&path)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", path.display()))?;
        self.processes.insert(name.to_string(), child);
        Ok(())
    }

    async fn wait_for_catalog(&mut self) -> anyhow::Result<ExchangeClient> {
        let operator = self.options.operator.dept_id.clone();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.client(&operator).await {
                Ok(c) if c.list_members().await.is_ok() => return Ok(c),
                _ if Instant::now() > deadline => {
                    bail!(
                        "the catalog did not come up within {START_TIMEOUT:?}: see {}",
                        self.log_path(CATALOG).display()
                    )
                }
                _ => {
                    self.check_running(CATALOG)?;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
        }
    }

    /// Waits until a node answers its own department with a verified configuration.
    async fn wait_for_node(&mut self, dept: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = self.client(dept).await?;
        loop {
            match client.log_status(dept).await {
                Ok(status) if status.config_version > 0 => return Ok(()),
                _ if Instant::now() > deadline => {
                    bail!("node {dept} did not come up within {START_TIMEOUT:?}: see {}", self.log_path(dept).display())
                }
                _ => {
                    self.check_running(dept)?;
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
            }
        }
    }

    /// Fails, quoting the end of its log, when a daemon has exited.
    fn check_running(&mut self, name: &str) -> anyhow::Result<()> {
        let exited = match self.processes.get_mut(name) {
            Some(child) => child.try_wait().with_context(|| format!("check {name}"))?,
            None => return Ok(()),
        };
        if let Some(status) = exited {
            self.processes.remove(name);
            let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
            // The daemon's own error (main's `Error: ...`, before any backtrace), else the end.
            let lines: Vec<&str> = log.lines().collect();
            let quoted: Vec<&str> = match lines.iter().rposition(|l| l.starts_with("Error:")) {
                Some(i) => lines[i..].iter().take(6).copied().collect(),
                None => lines.iter().rev().take(5).rev().copied().collect(),
            };
            bail!("{name} exited ({status}): {}", quoted.join("\n"));
        }
        Ok(())
    }

    /// The departments that run a node.
    pub fn nodes(&self) -> Vec<String> {
        self.options.members.iter().filter(|m| m.runs_node()).map(|m| m.dept_id.clone()).collect()
    }

    /// Waits, bounded, until every running node serves from a federation configuration at
    /// least as new as the catalog's current one (nodes watch it; a change reaches them
    /// within a second or two). Returns that version.
    pub async fn wait_for_configuration(&self) -> anyhow::Result<u64> {
        let operator = self.client(&self.options.operator.dept_id).await?;
        let version = operator.refresh_config().await.context("read the federation configuration")?.version();
        self.wait_for_nodes("a configuration at least as new as the catalog's", |s| s.config_version >= version)
            .await?;
        Ok(version)
    }

    /// Waits, bounded, until every running node has shipped its whole access log to the
    /// central log. Returns each node's status at that moment.
    pub async fn wait_for_shipping(&self) -> anyhow::Result<BTreeMap<String, LogStatus>> {
        self.wait_for_nodes("its whole access log shipped", |s| s.lag == 0).await
    }

    async fn wait_for_nodes(
        &self,
        what: &str,
        done: impl Fn(&LogStatus) -> bool,
    ) -> anyhow::Result<BTreeMap<String, LogStatus>> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut statuses = BTreeMap::new();
        for dept in self.nodes() {
            if !self.processes.contains_key(&dept) {
                continue;
            }
            let client = self.client(&dept).await?;
            loop {
                let status = client.log_status(&dept).await.with_context(|| format!("status of node {dept}"))?;
                if done(&status) {
                    statuses.insert(dept, status);
                    break;
                }
                if Instant::now() > deadline {
                    bail!("node {dept} did not reach {what} within {START_TIMEOUT:?}: {status:?}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(statuses)
    }

    /// An SDK client acting as `dept`, with its certificate from this federation.
    pub async fn client(&self, dept: &str) -> anyhow::Result<ExchangeClient> {
        let files = TlsFiles::in_dir(self.options.dir.join("pki"), dept);
        let identity = ClientIdentity::load(&files).with_context(|| format!("identity of {dept}"))?;
        let config =
            ClientConfig::new(identity, self.catalog_endpoint.clone(), "localhost", CATALOG_ID, self.catalog_key);
        ExchangeClient::connect(config).await.with_context(|| format!("connect as {dept}"))
    }

    /// Kills a daemon with SIGKILL (no shutdown of any kind) and waits for it to be gone.
    /// `name` is [`CATALOG`] or a node's department id.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let mut child = self.processes.remove(name).with_context(|| format!("{name} is not running"))?;
        child.kill().await.with_context(|| format!("kill {name}"))
    }

    /// Starts a stopped daemon again on its port, with its data, and waits until it serves.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        if self.processes.contains_key(name) {
            bail!("{name} is running");
        }
        self.spawn(name)?;
        if name == CATALOG { self.wait_for_catalog().await.map(|_| ()) } else { self.wait_for_node(name).await }
    }

    /// The process id of a running daemon.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.processes.get(name).and_then(Child::id)
    }

    /// The folder of every file.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The catalog's address.
    pub fn catalog_endpoint(&self) -> &str {
        &self.catalog_endpoint
    }

    /// The catalog's public key, pinned by every node and client.
    pub fn catalog_key(&self) -> &VerifyingKey {
        &self.catalog_key
    }

    /// A daemon's RocksDB directory.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.options.dir.join(format!("{name}-data"))
    }

    /// A daemon's output (its tracing log).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.options.dir.join(format!("logs/{name}.log"))
    }

    /// The `exchange` command-line profile of a member.
    pub fn profile_path(&self, dept: &str) -> PathBuf {
        self.options.dir.join(format!("profiles/{dept}.toml"))
    }

    /// A daemon's loopback port.
    pub fn port(&self, name: &str) -> Option<u16> {
        self.ports.get(name).copied()
    }

    /// A daemon's metrics address on loopback (`GET /metrics`, Prometheus text format).
    pub fn metrics_addr(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.metrics_ports.get(name).map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], *port)))
    }

    /// The certificate files of a member.
    pub fn tls_files(&self, dept: &str) -> TlsFiles {
        TlsFiles::in_dir(self.options.dir.join("pki"), dept)
    }
}
