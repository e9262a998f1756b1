//! Starting and stopping the catalog daemon.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use exchange_daemon::metrics::Render;
use exchange_proto::v1::catalog_server::CatalogServer;
use exchange_store::{KvStore, RocksStore};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::config::CatalogConfig;
use crate::db::{Db, TABLES};
use crate::grpc::CatalogGrpc;
use crate::metrics::CatalogMetrics;
use crate::service::{Catalog, Settings};

/// A running catalog.
#[derive(Debug)]
pub struct RunningCatalog {
    /// The bound address.
    pub addr: SocketAddr,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    shutdown: Option<oneshot::Sender<()>>,
    stopping: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    heartbeat: JoinHandle<()>,
    /// The metrics listener's address, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    metrics_task: Option<JoinHandle<()>>,
}

impl RunningCatalog {
    /// Stops serving and waits for the server to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stopping.send_replace(true);
        self.heartbeat.abort();
        if let Some(task) = self.metrics_task.take() {
            task.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")?.context("server")?;
        Ok(())
    }

    /// Waits until the server ends (on its own or after [`RunningCatalog::stop`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?.context("server")?;
        Ok(())
    }
}

/// Opens the store, ensures the bootstrap members, binds and serves.
pub async fn start(config: CatalogConfig) -> anyhow::Result<RunningCatalog> {
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || RocksStore::open(&data_dir, TABLES))
        .await
        .context("open store task")?
        .with_context(|| format!("open the catalog store in {}", config.data_dir.display()))?;
    start_with_store(config, Arc::new(store)).await
}

/// Starts the catalog over a given store (tests wrap the store to inject faults).
pub async fn start_with_store(config: CatalogConfig, store: Arc<dyn KvStore>) -> anyhow::Result<RunningCatalog> {
    let db = Db::new(store);
    let settings = Settings {
        catalog_id: config.catalog_id.to_string(),
        log_origin: config.log_origin.clone(),
        token_lifetime_secs: config.token_lifetime_secs,
    };
    let keys = config.keys.clone();
    let digest_key = config.subject_digest_key;
    let members = config.bootstrap_members.clone();
    let catalog = tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Catalog>> {
        let catalog = Catalog::open(db, settings, keys, digest_key).map_err(|e| anyhow::anyhow!("{e}"))?;
        for m in members {
            let id = m.dept_id.clone();
            if catalog.bootstrap_member(m).map_err(|e| anyhow::anyhow!("bootstrap member {id}: {e}"))? {
                tracing::info!(dept = %id, "bootstrap member registered");
            }
        }
        Ok(catalog)
    })
    .await
    .context("open catalog task")??;
    let metrics = Arc::new(CatalogMetrics::new());
    let metrics_listener = match config.metrics_listen {
        Some(addr) => {
            let (catalog, metrics) = (catalog.clone(), metrics.clone());
            let at_start = catalog.log_size();
            let render: Render = Arc::new(move || metrics.render(&catalog, at_start));
            Some(exchange_daemon::metrics::start(addr, render, std::future::pending()).await?)
        }
        None => None,
    };

    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
    let addr = listener.local_addr().context("local address")?;
    // Our own handshakes, so that SIGHUP can renew the certificate without a restart.
    let tls = Arc::new(exchange_pki::ServerTls::new(config.tls.clone()).map_err(|e| anyhow::anyhow!("tls: {e}"))?);
    exchange_daemon::reload_on_hangup(vec![("served", tls.clone())]);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CatalogServer<CatalogGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(exchange_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("reflection service")?;
    let (tx, rx) = oneshot::channel::<()>();
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let router = Server::builder()
        .add_service(health)
        .add_service(InterceptedService::new(reflection, exchange_pki::require_client_cert))
        .add_service(CatalogServer::new(CatalogGrpc::new(catalog.clone(), stopping_rx, metrics)));
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(exchange_daemon::accept_tls(listener, tls), async {
                let _ = rx.await;
            })
            .await
    });
    let heartbeat = tokio::spawn(heartbeat(catalog.clone(), config.config_heartbeat));
    tracing::info!(%addr, "catalog serving");
    let (metrics_addr, metrics_task) = match metrics_listener {
        Some(m) => (Some(m.addr), Some(m.task)),
        None => (None, None),
    };
    Ok(RunningCatalog { addr, catalog, shutdown: Some(tx), stopping, task, heartbeat, metrics_addr, metrics_task })
}

/// Re-signs the configuration every `every` (see [`Catalog::heartbeat`]); a failure is
/// logged and retried at the next tick (nodes go stale only if it keeps failing).
async fn heartbeat(catalog: Arc<Catalog>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let catalog = catalog.clone();
        match tokio::task::spawn_blocking(move || catalog.heartbeat()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the configuration could not be re-signed; retrying at the next tick")
            }
            Err(e) => tracing::warn!(error = %e, "the re-signing task failed"),
        }
    }
}
