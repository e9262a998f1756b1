//! `exchange-catalog`: the catalog daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use exchange_catalog::config::{CatalogConfig, write_secret};
use exchange_catalog::keyring;
use exchange_catalog::keys::{parse_purpose, purpose_name};
use exchange_proto::v1::KeyPurpose;

/// The central catalog of an Exchange federation.
#[derive(Parser, Debug)]
#[command(name = "exchange-catalog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the catalog (mutual TLS) until Ctrl-C or SIGTERM; SIGHUP re-reads the key
    /// directory (a rotation step) and publishes the keys in force.
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
    /// Create the catalog's signing keys (one each for configurations, consent tokens and
    /// checkpoints) and the federation's subject digest key.
    Keygen {
        /// Where to write `configuration.pem`, `token.pem`, `checkpoint.pem` (the key
        /// directory, setting `keys_dir`) and `subject-digest.key`; none may exist.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Rotate one of the catalog's keys, a step at a time: `next`, then `switch`, then
    /// `retire`, each followed by a reload of the running catalog (SIGHUP).
    Keys {
        /// The step.
        #[command(subcommand)]
        step: KeyStep,
    },
}

#[derive(Subcommand, Debug)]
enum KeyStep {
    /// The keys in force in a key directory, per purpose.
    List {
        /// The key directory (setting `keys_dir`).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Create the next key of a purpose: published at the reload, so that every verifier
    /// knows it before the catalog signs with it.
    Next(KeyArgs),
    /// Sign with the next key from the reload on; the key it replaces stays published.
    Switch(KeyArgs),
    /// Publish the previous key no more: what it signed stops verifying.
    Retire(KeyArgs),
}

#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// The key directory (setting `keys_dir`).
    #[arg(long)]
    dir: PathBuf,
    /// `configuration`, `token` or `checkpoint`.
    #[arg(long, value_parser = purpose_arg)]
    purpose: KeyPurpose,
}

fn purpose_arg(name: &str) -> Result<KeyPurpose, String> {
    parse_purpose(name).ok_or_else(|| format!("{name:?} is not configuration, token or checkpoint"))
}

/// Re-reads the key directory on every SIGHUP and publishes the keys; a directory that does
/// not load is refused with the keys in force kept.
fn reload_on_hangup(catalog: std::sync::Arc<exchange_catalog::service::Catalog>, dir: PathBuf) -> anyhow::Result<()> {
    let mut hangups =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listen for SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let (catalog, dir) = (catalog.clone(), dir.clone());
            let done = tokio::task::spawn_blocking(move || {
                let keys = keyring::load(&dir)?;
                catalog.reload_keys(keys).map_err(|e| e.to_string())
            })
            .await;
            match done {
                Ok(Ok(())) => tracing::info!("keys reloaded and published"),
                Ok(Err(e)) => tracing::error!(error = %e, "keys not reloaded: the keys in force are kept"),
                Err(e) => tracing::error!(error = %e, "key reload task failed"),
            }
        }
    });
    Ok(())
}

fn print_keys(dir: &std::path::Path) -> anyhow::Result<()> {
    let keys = keyring::load(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    for key in keys.catalog_keys() {
        println!(
            "{:<13} {} {} {}",
            purpose_name(key.purpose()),
            key.key_id,
            hex::encode(&key.public_key),
            if key.signing { "signing" } else { "published" }
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exchange_daemon::init()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = CatalogConfig::load(&config)?;
            let keys_dir = config.keys_dir.clone();
            let running = exchange_catalog::server::start(config).await?;
            reload_on_hangup(running.catalog.clone(), keys_dir)?;
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
                hex::encode(loaded.keys.config.verifying_key().as_bytes())
            );
            let signer =
                exchange_core::checkpoint::NoteSigner::new(loaded.log_origin.clone(), loaded.keys.checkpoint.clone())
                    .map_err(|e| anyhow::anyhow!("setting log_origin: {e}"))?;
            println!("access log verifier key (auditors' --log-key): {}", signer.verifier().to_vkey());
            print_keys(&loaded.keys_dir)
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
                exchange_core::checkpoint::NoteSigner::new(config.log_origin.clone(), config.keys.checkpoint.clone())
                    .map_err(|e| anyhow::anyhow!("setting log_origin: {e}"))?;
            // A backup taken before a checkpoint-key rotation is signed with a key published beside.
            let verifiers = config
                .keys
                .published
                .iter()
                .filter(|(purpose, _)| *purpose == exchange_proto::v1::KeyPurpose::Checkpoint)
                .filter_map(|(_, key)| {
                    exchange_core::checkpoint::NoteVerifier::new(config.log_origin.clone(), *key).ok()
                })
                .collect::<Vec<_>>();
            let data_dir = config.data_dir.clone();
            let manifest = tokio::task::spawn_blocking(move || {
                exchange_catalog::backup::restore(
                    &from,
                    &data_dir,
                    config.catalog_id.as_str(),
                    &config.log_origin,
                    &signer,
                    &verifiers,
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
            let created = keyring::init(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut digest = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut digest);
            write_secret(&dir.join("subject-digest.key"), hex::encode(digest).as_bytes())
                .context("write digest key")?;
            println!("wrote the key directory {} and {}", dir.display(), dir.join("subject-digest.key").display());
            for (purpose, key) in created {
                if purpose == KeyPurpose::Configuration {
                    println!(
                        "catalog public key {} (the configuration key: pin it in every node and client)",
                        hex::encode(key.as_bytes())
                    );
                }
            }
            Ok(())
        }
        Command::Keys { step } => {
            let fail = |e: String| anyhow::anyhow!("{e}");
            let dir = match step {
                KeyStep::List { dir } => dir,
                KeyStep::Next(KeyArgs { dir, purpose }) => {
                    let key = keyring::next(&dir, purpose).map_err(fail)?;
                    println!("next {} key {} created", purpose_name(purpose), hex::encode(key.as_bytes()));
                    dir
                }
                KeyStep::Switch(KeyArgs { dir, purpose }) => {
                    let (old, new) = keyring::switch(&dir, purpose).map_err(fail)?;
                    println!(
                        "{} key {} signs from the reload on; {} stays published until retired",
                        purpose_name(purpose),
                        hex::encode(new.as_bytes()),
                        hex::encode(old.as_bytes())
                    );
                    dir
                }
                KeyStep::Retire(KeyArgs { dir, purpose }) => {
                    let old = keyring::retire(&dir, purpose).map_err(fail)?;
                    println!(
                        "{} key {} retired from the reload on",
                        purpose_name(purpose),
                        hex::encode(old.as_bytes())
                    );
                    dir
                }
            };
            print_keys(&dir)
        }
    }
}
