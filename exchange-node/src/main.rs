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
    /// Serve the node (mutual TLS) until Ctrl-C or SIGTERM.
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
        /// Where to write `node-signing.pem`.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exchange_daemon::init()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = NodeConfig::load(&config)?;
            let running = exchange_node::server::start(config).await?;
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
        Command::Keygen { dir } => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let path = dir.join("node-signing.pem");
            write_signing_key(&path, &key)?;
            println!("wrote {}; public key {}", path.display(), hex::encode(key.verifying_key().as_bytes()));
            Ok(())
        }
    }
}
