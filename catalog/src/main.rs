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
    /// Make an online backup of the running catalog (RPC `Backup`, role operator): a RocksDB
    /// checkpoint and `MANIFEST.json` (the central log's signed tree head in the copy) in a
    /// new directory on the catalog's machine. Prints the manifest.
    Backup {
        /// The catalog's configuration file (its address, CA and catalog id are taken from it).
        #[arg(long, env = "EXCHANGE_CATALOG_CONFIG")]
        config: PathBuf,
        /// An operator's certificate (PEM), registered with the catalog.
        #[arg(long)]
        cert: PathBuf,
        /// That operator's private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The new backup directory (absolute, on the catalog's machine).
        #[arg(long)]
        to: PathBuf,
        /// The catalog's address (default: `https://localhost:<listen port>`).
        #[arg(long)]
        endpoint: Option<String>,
        /// The name in the catalog's certificate.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
    /// Restore a backup into the configured `data_dir` (absent or empty; the catalog stopped),
    /// checking every file against the manifest and the restored log's tree head against the
    /// one it recorded. Nothing is written to `data_dir` unless every check passes.
    Restore {
        /// The catalog's configuration file.
        #[arg(long, env = "EXCHANGE_CATALOG_CONFIG")]
        config: PathBuf,
        /// The backup directory.
        #[arg(long)]
        from: PathBuf,
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
        Command::Backup { config, cert, key, to, endpoint, server_name } => {
            let config = CatalogConfig::load(&config)?;
            let endpoint = endpoint.unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
            let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
            let ca = String::from_utf8_lossy(config.tls.ca_cert_pem()).into_owned();
            let identity = exchange_pki::LoadedIdentity::from_pem(&ca, &read(&cert)?, &read(&key)?)
                .map_err(|e| anyhow::anyhow!("operator identity: {e}"))?;
            let channel =
                exchange_pki::pinned_https_endpoint(&endpoint, &identity, &server_name, config.catalog_id.as_str())
                    .map_err(|e| anyhow::anyhow!("setting --endpoint: {e}"))?
                    .connect()
                    .await
                    .with_context(|| format!("connect to the catalog at {endpoint}"))?;
            let answer = exchange_proto::v1::catalog_client::CatalogClient::new(channel)
                .backup(exchange_proto::v1::BackupRequest { dir: to.display().to_string() })
                .await
                .map_err(|s| anyhow::anyhow!("backup refused: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            println!("{}", answer.manifest_json);
            Ok(())
        }
        Command::Restore { config, from } => {
            let config = CatalogConfig::load(&config)?;
            let signer =
                exchange_core::checkpoint::NoteSigner::new(config.log_origin.clone(), config.signing_key.clone())
                    .map_err(|e| anyhow::anyhow!("setting log_origin: {e}"))?;
            let data_dir = config.data_dir.clone();
            let manifest = tokio::task::spawn_blocking(move || {
                exchange_catalog::backup::restore(
                    &from,
                    &data_dir,
                    config.catalog_id.as_str(),
                    &config.log_origin,
                    &signer,
                )
            })
            .await
            .context("restore task")??;
            if let exchange_daemon::backup::State::Catalog(head) = &manifest.state {
                println!(
                    "restored into {}: central log of {} entries, root {}, as recorded at the backup; signed head:\n{}",
                    config.data_dir.display(),
                    head.tree_size,
                    head.root,
                    head.checkpoint
                );
            }
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
