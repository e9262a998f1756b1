//! `exchange-node`: a department's exchange node daemon.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use exchange_node::config::{NodeConfig, write_signing_key};

/// A department's node of an Exchange federation.
#[derive(Parser, Debug)]
#[command(name = "exchange-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the node (mutual TLS) until Ctrl-C or SIGTERM; SIGHUP re-reads the answer
    /// signing key file (a rotation's switch: taken only when the configuration publishes it).
    Serve {
        /// The configuration file.
        #[arg(long, env = "EXCHANGE_NODE_CONFIG")]
        config: PathBuf,
    },
    /// Ask a running daemon's health service (TLS, no client certificate); exit 0 only when it
    /// is SERVING. For container health checks and Kubernetes exec probes.
    Health(exchange_daemon::probe::Probe),
    /// Check a configuration file and its key and certificate files, then exit.
    CheckConfig {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Make an online backup of the running node (RPC `Backup`, with the node's own
    /// certificate from its configuration): a RocksDB checkpoint and `MANIFEST.json` (last
    /// access-log sequence, configuration version) in a new directory on the node's machine.
    /// Prints the manifest.
    Backup {
        /// The node's configuration file.
        #[arg(long, env = "EXCHANGE_NODE_CONFIG")]
        config: PathBuf,
        /// The new backup directory (absolute, on the node's machine).
        #[arg(long)]
        to: PathBuf,
        /// The node's address (default: `https://localhost:<listen port>`).
        #[arg(long)]
        endpoint: Option<String>,
        /// The name in the node's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
    /// Restore a backup into the configured `data_dir` (absent or empty; the node stopped),
    /// checking every file and the state against the manifest. The next start asks the
    /// catalog where the central log stands and resumes numbering after it.
    Restore {
        /// The node's configuration file.
        #[arg(long, env = "EXCHANGE_NODE_CONFIG")]
        config: PathBuf,
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Create the node's answer signing key (`node-signing.pem`) and print its public key.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        dir: PathBuf,
        /// The file name (a rotation's next key: `node-signing.next.pem`); an existing file
        /// is refused.
        #[arg(long, default_value = "node-signing.pem")]
        file: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exchange_daemon::init()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = NodeConfig::load(&config)?;
            let key_path = config.signing_key_path.clone();
            let running = exchange_node::server::start(config).await?;
            reload_on_hangup(running.node.clone(), key_path)?;
            exchange_daemon::shutdown_signal().await;
            tracing::info!("shutting down");
            running.stop().await
        }
        Command::Health(probe) => {
            if exchange_daemon::probe::run(&probe).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::CheckConfig { config } => {
            let loaded = NodeConfig::load(&config)?;
            println!(
                "configuration {} is valid (node {}, listen {}, {} datasets)",
                config.display(),
                loaded.dept_id,
                loaded.listen,
                loaded.datasets.len()
            );
            Ok(())
        }
        Command::Backup { config, to, endpoint, server_name } => {
            let config = NodeConfig::load(&config)?;
            let endpoint = endpoint.unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
            let channel =
                exchange_pki::pinned_https_endpoint(&endpoint, &config.tls, &server_name, config.dept_id.as_str())
                    .map_err(|e| anyhow::anyhow!("setting --endpoint: {e}"))?
                    .connect()
                    .await
                    .map_err(|e| anyhow::anyhow!("connect to the node at {endpoint}: {e}"))?;
            let answer = exchange_proto::v1::node_client::NodeClient::new(channel)
                .backup(exchange_proto::v1::BackupRequest { dir: to.display().to_string() })
                .await
                .map_err(|s| anyhow::anyhow!("backup refused: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            println!("{}", answer.manifest_json);
            Ok(())
        }
        Command::Restore { config, from } => {
            let config = NodeConfig::load(&config)?;
            let data_dir = config.data_dir.clone();
            let manifest = tokio::task::spawn_blocking(move || {
                exchange_node::backup::restore(&from, &data_dir, config.dept_id.as_str(), &config.catalog_public_key)
            })
            .await
            .map_err(|e| anyhow::anyhow!("restore task: {e}"))??;
            if let exchange_daemon::backup::State::Node(state) = &manifest.state {
                println!(
                    "restored into {}: access log up to sequence {}, configuration version {}; at its next start the \
                     node asks the catalog where the central log stands and resumes after it",
                    config.data_dir.display(),
                    state.last_sequence,
                    state.config_version
                );
            }
            Ok(())
        }
        Command::Keygen { dir, file } => {
            let path = dir.join(&file);
            if path.exists() {
                anyhow::bail!("{} exists: a key is never overwritten", path.display());
            }
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            write_signing_key(&path, &key)?;
            println!("wrote {}; public key {}", path.display(), hex::encode(key.verifying_key().as_bytes()));
            Ok(())
        }
    }
}

/// Re-reads the answer signing key file on every SIGHUP and signs with it from then on, if
/// the federation configuration publishes it for this node; otherwise the key in force stays.
fn reload_on_hangup(node: std::sync::Arc<exchange_node::service::Node>, path: PathBuf) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut hangups =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let switched = exchange_node::config::read_signing_key(&path)
                .map_err(|e| e.to_string())
                .and_then(|key| node.switch_signing_key(key));
            match switched {
                Ok(()) => tracing::info!(key = %path.display(), "answer signing key reloaded"),
                Err(e) => tracing::error!(error = %e, "answer signing key not switched: the key in force is kept"),
            }
        }
    });
    Ok(())
}
