//! `exchange-gateway serve --config FILE`: the HTTP/JSON gateway of a requester department;
//! `exchange-gateway caller-token --name NAME`: a new token for a calling system.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use exchange_client_sdk::ExchangeClient;
use exchange_client_sdk::profile::Profile;
use exchange_gateway::auth::{Callers, new_token};
use exchange_gateway::config::check_caller_name;
use exchange_gateway::{GatewayConfig, GatewayState, router};

#[derive(Parser, Debug)]
#[command(name = "exchange-gateway", version, about = "A requester department's HTTP/JSON gateway to Exchange")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serves the HTTP API on the configured local address until Ctrl-C or SIGTERM.
    Serve {
        /// The gateway's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Prints a new bearer token for a calling system, and the configuration entry holding
    /// its SHA-256 (the gateway never stores the token itself).
    CallerToken {
        /// The calling system's name (a-z, 0-9, '-', '.'; it goes into every trace id).
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CallerToken { name } => {
            check_caller_name(&name).context("--name")?;
            let (token, digest) = new_token();
            println!("token: {token}");
            println!("\n[[callers]]\nname = \"{name}\"\ntoken_sha256 = \"{digest}\"");
            Ok(())
        }
        Command::Serve { config } => serve(config).await,
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    exchange_daemon::init()?;
    let config = GatewayConfig::load(&path)?;
    let profile = Profile::load(&config.profile)?;
    let client = ExchangeClient::connect(profile.client_config()?).await.context("connect to the federation")?;
    let dept = client.dept_id().to_owned();
    let state = GatewayState { client, callers: Arc::new(Callers::new(&config.callers)) };
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
    let addr = listener.local_addr().context("local address")?;
    tracing::info!(%addr, %dept, callers = config.callers.len(), "gateway serving");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(exchange_daemon::shutdown_signal())
        .await
        .context("serve")?;
    Ok(())
}
