//! `exchange`: the operator and auditor command line of the Exchange federation.
//!
//! Exit codes scripts can trust: 0 ok, 1 usage or local error, 2 refused by the federation,
//! 3 unavailable, 4 verification failure (bad signature or proof).
//!
//! The daemons are separate binaries (`exchange-catalog`, `exchange-node`): this command
//! line only calls them, so an operator's workstation never holds a daemon's keys.

mod admin;
mod audit;
mod ca;
mod connect;
mod data;
mod demo;
mod importfile;
mod provider;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exchange_client_sdk::Error;

use crate::connect::Conn;
use crate::render::Out;

/// The command line of an Exchange federation: certificates, catalog administration,
/// imports, queries and audits.
///
/// Connection settings come from flags, environment variables (EXCHANGE_CATALOG, ...) or a
/// TOML profile (`--profile`), in that order of precedence.
///
/// Exit codes: 0 ok, 1 usage or local error, 2 refused by the federation, 3 unavailable,
/// 4 verification failure (bad signature or proof).
#[derive(Parser, Debug)]
#[command(name = "exchange", version)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The federation CA: create it, issue department certificates.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Show the verified federation configuration.
    Config,
    /// Federation members (operator).
    #[command(subcommand)]
    Member(admin::MemberCommand),
    /// Standard schemas.
    #[command(subcommand)]
    Schema(admin::SchemaCommand),
    /// The dataset catalog.
    #[command(subcommand)]
    Dataset(admin::DatasetCommand),
    /// Access grants.
    #[command(subcommand)]
    Grant(admin::GrantCommand),
    /// Subject consent and consent tokens.
    #[command(subcommand)]
    Consent(admin::ConsentCommand),
    /// Load a JSON Lines or CSV file into one of your node's datasets.
    Import(data::ImportArgs),
    /// Your node's licences, one change at a time: issue, update, revoke.
    #[command(subcommand)]
    Licence(provider::LicenceCommand),
    /// Your node's base records, one at a time.
    #[command(subcommand)]
    Record(provider::RecordCommand),
    /// Query a provider's node; answers are printed only after their signature verified.
    #[command(subcommand)]
    Query(data::QueryCommand),
    /// The central access log: tree heads, proofs, queries, full verification.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Start a whole federation on loopback (a catalog and three department nodes, with
    /// generated data) and run the rental filing and business opening scenarios.
    Demo(demo::DemoOptions),
}

/// The exit code of a failure.
fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Refused { code: tonic::Code::Unavailable, .. } => 3,
                Error::Refused { .. } | Error::Tls(_) => 2,
                Error::Unavailable(_) | Error::Server { .. } | Error::Transport(_) => 3,
                Error::BadSignature(_) | Error::Proof(_) => 4,
                Error::Config(_) | Error::InvalidInput(_) => 1,
            };
        }
        if cause.downcast_ref::<audit::VerificationFailed>().is_some() {
            return 4;
        }
    }
    1
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Ca(c) => ca::run(c, out),
        Command::Config => admin::show_config(&cli.conn.client().await?, out).await,
        Command::Member(c) => admin::member(&cli.conn.client().await?, c, out).await,
        Command::Schema(c) => admin::schema(&cli.conn.client().await?, c, out).await,
        Command::Dataset(c) => admin::dataset(&cli.conn.client().await?, c, out).await,
        Command::Grant(c) => admin::grant(&cli.conn.client().await?, c, out).await,
        Command::Consent(c) => admin::consent(&cli.conn.client().await?, c, out).await,
        Command::Import(a) => data::import(&cli.conn.client().await?, a, out).await,
        Command::Licence(c) => provider::licence(&cli.conn.client().await?, c, out).await,
        Command::Record(c) => provider::record(&cli.conn.client().await?, c, out).await,
        Command::Query(c) => data::query(&cli.conn.client().await?, c, out).await,
        Command::Audit(c) => {
            let verifier = cli.conn.log_verifier()?;
            audit::run(&cli.conn.client().await?, verifier, c, out).await
        }
        Command::Demo(options) => {
            if demo::run(options).await? {
                Ok(())
            } else {
                Err(anyhow::anyhow!("some demo scenarios failed: see the steps marked ✘ above"))
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EXCHANGE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    exchange_pki::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = exit_code(&error);
            if json {
                let refusal = error.chain().find_map(|c| c.downcast_ref::<Error>()).and_then(|e| match e {
                    Error::Refused { code, reason, field, .. } => Some(serde_json::json!({
                        "code": format!("{code:?}"),
                        "reason": exchange_client_sdk::error::reason_name(*reason),
                        "field": field,
                    })),
                    _ => None,
                });
                let value = serde_json::json!({ "error": format!("{error:#}"), "exit_code": code, "refusal": refusal });
                eprintln!("{value}");
            } else {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(code)
        }
    }
}
