//! The node's health as `grpc.health.v1` reports it: SERVING only while the node can answer
//! queries, NOT_SERVING while its federation configuration is stale or its access log cannot
//! be written (it refuses every query then), and SERVING again when that passes. Load
//! balancers and Kubernetes readiness probes read it; a liveness probe should not (the
//! process is alive and says why it refuses).

use std::sync::Arc;
use std::time::Duration;

use exchange_proto::v1::node_server::NodeServer;
use exchange_store::{Durability, KvStore, WriteBatch};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::accesslog::AccessLog;
use crate::db::META;
use crate::fedconfig::{FedState, now_ms};
use crate::grpc::NodeGrpc;

/// How often the health is re-evaluated.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

const PROBE_KEY: &[u8] = b"health/probe";

/// Why the node cannot serve, if it cannot.
fn why_not(fed: &FedState, log: &AccessLog) -> Option<&'static str> {
    if log.is_failing() {
        return Some("the access log cannot be written");
    }
    if fed.fresh(now_ms()).is_err() {
        return Some("the federation configuration is stale");
    }
    None
}

/// Keeps the health service true until the node stops. While the access log is failing
/// and no query tries it, a small synced probe write finds out whether writes succeed again.
/// (RocksDB itself refuses every write after a failed write-ahead-log write until the node
/// restarts, so with it the health stays NOT_SERVING until the operator has made room and
/// restarted the node.)
pub async fn keep_true(reporter: HealthReporter, fed: Arc<FedState>, log: AccessLog, store: Arc<dyn KvStore>) {
    let mut serving = true;
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if log.is_failing() {
            let store = store.clone();
            let probe = exchange_store::blocking(move || {
                let mut batch = WriteBatch::new();
                batch.put(META, PROBE_KEY.to_vec(), now_ms().to_be_bytes().to_vec());
                store.write(batch, Durability::Sync)
            })
            .await;
            if probe.is_ok() {
                log.mark_writable();
            }
        }
        let why = why_not(&fed, &log);
        if why.is_none() != serving {
            serving = why.is_none();
            let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            if serving {
                reporter.set_serving::<NodeServer<NodeGrpc>>().await;
                tracing::info!("health: SERVING again");
            } else {
                reporter.set_not_serving::<NodeServer<NodeGrpc>>().await;
                tracing::warn!(why = why.unwrap_or(""), "health: NOT_SERVING");
            }
        }
    }
}
