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
