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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        // A log line that cannot be written (disk full, file-size limit) is dropped: the
        // subscriber must not report it on stderr, which panics when stderr is the same
        // unwritable file, in the middle of a request.
        .log_internal_errors(false)
        .init();
    exchange_pki::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = NodeConfig::load(&config)?;
            survive_file_size_limit();
            let running = exchange_node::server::start(config).await?;
            println!("node listening on {}", running.addr);
            shutdown_signal().await;
            tracing::info!("shutting down");
            running.stop().await
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

/// A write past the process's file-size limit (RLIMIT_FSIZE, a quota) raises SIGXFSZ, whose
/// default action kills the process. Handling it turns the condition into the write error
/// (EFBIG) it also is, which the access log meets like a full disk: queries are refused,
/// the node stays up and says why. Tokio keeps a registered handler for the life of the
/// process.
fn survive_file_size_limit() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)) {
            tracing::warn!(error = %e, "SIGXFSZ not handled: a file-size limit would stop the node");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
