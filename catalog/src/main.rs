//! `exchange-catalog`: the catalog daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use exchange_catalog::config::{CatalogConfig, write_secret, write_signing_key};

/// The central catalog of an Exchange federation.
#[derive(Parser, Debug)]
#[command(name = "exchange-catalog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the catalog (mutual TLS) until Ctrl-C or SIGTERM.
    Serve {
        /// The configuration file (see deploy/catalog.example.toml).
        #[arg(long, env = "EXCHANGE_CATALOG_CONFIG")]
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
    /// Create the catalog's signing key and the federation's subject digest key.
    Keygen {
        /// Where to write `catalog-signing.pem` and `subject-digest.key`.
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
            let config = CatalogConfig::load(&config)?;
            let running = exchange_catalog::server::start(config).await?;
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
            let loaded = CatalogConfig::load(&config)?;
            println!(
                "configuration {} is valid (catalog {}, listen {})",
                config.display(),
                loaded.catalog_id,
                loaded.listen
            );
            // What nodes, SDKs and auditors pin: derived here so that nobody needs the
            // private key file to learn them.
            println!(
                "catalog public key (nodes' catalog_public_key, clients' --catalog-key): {}",
                hex::encode(loaded.signing_key.verifying_key().as_bytes())
            );
            let signer =
                exchange_core::checkpoint::NoteSigner::new(loaded.log_origin.clone(), loaded.signing_key.clone())
                    .map_err(|e| anyhow::anyhow!("setting log_origin: {e}"))?;
            println!("access log verifier key (auditors' --log-key): {}", signer.verifier().to_vkey());
            Ok(())
        }
        Command::Keygen { dir } => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            write_signing_key(&dir.join("catalog-signing.pem"), &key)?;
            let mut digest = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut digest);
            write_secret(&dir.join("subject-digest.key"), hex::encode(digest).as_bytes())
                .context("write digest key")?;
            println!(
                "wrote {} and {}; catalog public key {} (pin it in every node and client)",
                dir.join("catalog-signing.pem").display(),
                dir.join("subject-digest.key").display(),
                hex::encode(key.verifying_key().as_bytes())
            );
            Ok(())
        }
    }
}
