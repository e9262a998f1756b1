//! The `health` subcommand of both daemons: asks a running daemon's `grpc.health.v1` service
//! over TLS (no client certificate needed) and exits 0 only when it is SERVING. Container
//! health checks and Kubernetes exec probes use it, because the kubelet's own gRPC probe
//! cannot speak TLS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where and how to probe.
#[derive(clap::Args, Debug, Clone)]
pub struct Probe {
    /// The daemon's address.
    #[arg(
        long,
        env = "EXCHANGE_HEALTH_ADDR",
        default_value = "https://127.0.0.1:7501",
        value_name = "https://HOST:PORT"
    )]
    pub addr: String,
    /// The federation CA certificate (PEM) that signed the daemon's certificate.
    #[arg(long, env = "EXCHANGE_HEALTH_CA", value_name = "FILE")]
    pub ca: PathBuf,
    /// The name the daemon's certificate carries.
    #[arg(long, env = "EXCHANGE_HEALTH_NAME", default_value = "localhost")]
    pub name: String,
    /// The service to ask about; empty for the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout_secs: u64,
    /// A liveness probe: exit 0 whenever the health service answers, SERVING or not. A
    /// NOT_SERVING daemon is alive and waits for what it lacks (a fresh configuration from an
    /// absent catalog); restarting it would not bring that back.
    #[arg(long)]
    pub liveness: bool,
}

/// The daemon's serving status.
pub async fn check(probe: &Probe) -> anyhow::Result<ServingStatus> {
    let ca = std::fs::read_to_string(&probe.ca).with_context(|| format!("read {}", probe.ca.display()))?;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name(probe.name.clone());
    let timeout = Duration::from_secs(probe.timeout_secs.max(1));
    let channel = Endpoint::from_shared(probe.addr.clone())
        .with_context(|| format!("--addr {}", probe.addr))?
        .tls_config(tls)
        .context("TLS configuration")?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("connect to {}", probe.addr))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest { service: probe.service.clone() })
        .await
        .context("health check")?;
    Ok(answer.into_inner().status())
}

/// Runs the probe and prints the status; `Ok(true)` only for SERVING, or with `--liveness`
/// for any answer of the health service.
pub async fn run(probe: &Probe) -> anyhow::Result<bool> {
    let status = check(probe).await?;
    println!("{}: {}", probe.addr, status.as_str_name());
    Ok(probe.liveness || status == ServingStatus::Serving)
}
