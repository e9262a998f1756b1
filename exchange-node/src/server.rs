//! Starting and stopping the node daemon.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use exchange_daemon::metrics::Render;
use exchange_pki::PinnedClientTls;
use exchange_proto::v1::node_server::NodeServer;
use exchange_store::{Durability, KvStore, RocksStore};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};

use crate::accesslog::AccessLog;
use crate::config::NodeConfig;
use crate::db::{Db, META_LAST_SHIPPED, TABLES};
use crate::fedconfig::{FedState, Watcher};
use crate::grpc::NodeGrpc;
use crate::metrics::NodeMetrics;
use crate::service::{Node, NodeSettings};
use crate::shipper::{Shipper, ShipperStatus};

/// A running node.
#[derive(Debug)]
pub struct RunningNode {
    /// The bound address.
    pub addr: SocketAddr,
    /// The node.
    pub node: Arc<Node>,
    /// The metrics listener's address, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Stops serving and the background tasks, and waits for the server to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("server task")?.context("server")?;
        for t in self.background.drain(..) {
            t.abort();
            let _ = t.await;
        }
        Ok(())
    }

    /// The version of the configuration the node holds, if any.
    pub fn node_snapshot_version(&self) -> Option<u64> {
        self.node.config_version()
    }

    /// Waits until the server ends.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task")?.context("server")?;
        Ok(())
    }
}

/// A lazy mTLS channel to the catalog (reconnects by itself; HTTP/2 keep-alive detects a
/// dead connection). The watch stream, the shipper and the digest-key fetch share it, and its
/// server must be the catalog: a certificate of the federation CA with the catalog's name
/// *and* its department id (a member's certificate with the catalog's DNS name is refused).
pub fn catalog_channel(config: &NodeConfig, tls: &Arc<PinnedClientTls>) -> anyhow::Result<Channel> {
    tls.lazy_channel(&config.catalog_endpoint, &config.catalog_server_name, |endpoint| {
        endpoint
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
    })
    .map_err(|e| anyhow::anyhow!("setting catalog_endpoint: {e}"))
}

/// Opens the RocksDB store in the data directory and starts the node.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || RocksStore::open(&data_dir, TABLES))
        .await
        .context("open store task")?
        .with_context(|| format!("open the node store in {}", config.data_dir.display()))?;
    start_with_store(config, Arc::new(store)).await
}

/// Starts the node over a given store (tests wrap the store to inject faults).
pub async fn start_with_store(config: NodeConfig, store: Arc<dyn KvStore>) -> anyhow::Result<RunningNode> {
    exchange_pki::install_crypto_provider();
    let db = Db::new(store.clone());
    let pinned = std::iter::once(config.catalog_public_key).chain(config.catalog_next_public_key).collect();
    let fed = Arc::new(FedState::new(pinned, config.config_max_age_ms));
    let writer = Arc::new(std::sync::Mutex::new(()));
    let (last_written, last_shipped) = {
        let db = db.clone();
        let fed = fed.clone();
        let writer = writer.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
            crate::data::recover_imports(&db, &writer).map_err(|e| anyhow::anyhow!("recover imports: {e}"))?;
            fed.load_cached(db.store().as_ref()).map_err(|e| anyhow::anyhow!("load cached configuration: {e}"))?;
            let last = crate::backup::last_written(&db).map_err(|e| anyhow::anyhow!("read access log: {e}"))?;
            let shipped = db.meta_u64(META_LAST_SHIPPED).map_err(|e| anyhow::anyhow!("read shipper state: {e}"))?;
            Ok((last, shipped))
        })
        .await
        .context("recovery task")??
    };
    // The node's certificate towards the catalog, renewed by SIGHUP like the one it serves.
    let client_tls = Arc::new(
        PinnedClientTls::new(config.tls.clone(), config.catalog_id.as_str())
            .map_err(|e| anyhow::anyhow!("tls: {e}"))?,
    );
    let channel = catalog_channel(&config, &client_tls)?;
    // A store restored from a backup learns from the catalog where to resume numbering
    // before the access log writes anything (see `crate::backup`).
    let resumed =
        crate::backup::resume_after_restore(&db, channel.clone(), last_written, Duration::from_secs(30)).await?;
    let (last_written, last_shipped) = if resumed == last_written {
        (last_written, last_shipped)
    } else {
        (resumed, db.meta_u64(META_LAST_SHIPPED).map_err(|e| anyhow::anyhow!("read shipper state: {e}"))?)
    };
    let durability = if config.access_log_sync {
        Durability::Sync
    } else {
        tracing::warn!("access_log_sync = false: access-log writes are not synced (benchmark harness only)");
        Durability::Buffered
    };
    let (log, log_task) = AccessLog::start(store.clone(), last_written, durability);
    let (fed_for_health, log_for_health, store_for_health) = (fed.clone(), log.clone(), store.clone());
    let status = Arc::new(ShipperStatus::new(last_shipped));
    let node = Arc::new(Node::new(
        NodeSettings {
            dept: config.dept_id.to_string(),
            signing_key: config.signing_key.clone(),
            datasets: config.datasets.clone(),
            max_batch: config.max_batch_items,
        },
        db,
        fed.clone(),
        log.clone(),
        status.clone(),
        writer,
    ));
    let metrics = Arc::new(NodeMetrics::new(&log));
    let metrics_listener = match config.metrics_listen {
        Some(addr) => {
            let (node, metrics) = (node.clone(), metrics.clone());
            let render: Render = Arc::new(move || metrics.render(&node));
            Some(exchange_daemon::metrics::start(addr, render, std::future::pending()).await?)
        }
        None => None,
    };

    let publisher = {
        let node = node.clone();
        Arc::new(move || node.datasets.values().cloned().collect::<Vec<_>>())
    };
    let watcher =
        Watcher { state: fed, store: store.clone(), channel: channel.clone(), publish: publisher, node: node.clone() };
    let watch_task = tokio::spawn(watcher.run());
    let store_for_backup = store.clone();
    let shipper = Shipper { status, store, log, channel };
    let ship_task = tokio::spawn(shipper.run());

    let backups = Arc::new(crate::backup::Backups {
        store: store_for_backup,
        dept: config.dept_id.to_string(),
        fingerprint: config.tls.fingerprint(),
        catalog_key: config.catalog_public_key,
    });
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
    let addr = listener.local_addr().context("local address")?;
    // Our own handshakes, so that SIGHUP can renew the certificate without a restart.
    let tls = Arc::new(exchange_pki::ServerTls::new(config.tls.clone()).map_err(|e| anyhow::anyhow!("tls: {e}"))?);
    exchange_daemon::reload_on_hangup(vec![("served", tls.clone()), ("towards the catalog", client_tls)]);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<NodeServer<NodeGrpc>>().await;
    let health_task =
        tokio::spawn(crate::health::keep_true(reporter, fed_for_health, log_for_health, store_for_health));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(exchange_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("reflection service")?;
    let (tx, rx) = oneshot::channel::<()>();
    let router = Server::builder()
        .add_service(health)
        .add_service(InterceptedService::new(reflection, exchange_pki::require_client_cert))
        .add_service(NodeServer::new(NodeGrpc::new(node.clone(), metrics, backups)));
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(exchange_daemon::accept_tls(listener, tls), async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, dept = %config.dept_id, "node serving");
    let mut background = vec![log_task, watch_task, ship_task, health_task];
    let metrics_addr = metrics_listener.map(|m| {
        background.push(m.task);
        m.addr
    });
    Ok(RunningNode { addr, node, metrics_addr, shutdown: Some(tx), task, background })
}
