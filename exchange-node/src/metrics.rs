//! The node's metrics, for the daemon's metrics listener ([`exchange_daemon::metrics`]):
//! calls by method and gRPC code with their durations, query questions by method, outcome
//! and reason code, the access log's group commits (sync time, group size), shipping lag,
//! the configuration's age and version, import progress, and refused strangers.
//!
//! Labels are method names, outcomes, reason and status codes and the node's own dataset
//! ids: a finite set that never holds a subject, a licence number, a name, a caller or a
//! trace id. Values are counts, seconds and sizes. Counters kept elsewhere (the access log's
//! syncs, the strangers refused) are read at the scrape, so that the hot paths keep their one
//! atomic add.

use exchange_daemon::metrics::{CallMetrics, catch_up, encode, register};
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::accesslog::AccessLog;
use crate::error::NodeError;
use crate::fedconfig::now_ms;
use crate::service::Node;

/// The access log's group commits: how long each durable write took and how many entries
/// it carried (kept by the writer task, registered by [`NodeMetrics`]).
#[derive(Clone, Debug)]
pub struct LogStats {
    sync_seconds: Histogram,
    group_size: Histogram,
}

impl Default for LogStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LogStats {
    /// Unregistered histograms (registered with the node's other metrics by [`NodeMetrics::new`]).
    pub fn new() -> Self {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("constant histogram")
        };
        Self {
            sync_seconds: histogram(
                "exchange_node_access_log_sync_seconds",
                "Duration of each durable group write of the access log (the write and its disk sync)",
                prometheus::exponential_buckets(0.0001, 2.0, 16).expect("constant buckets"),
            ),
            group_size: histogram(
                "exchange_node_access_log_group_size",
                "Entries written by each durable group write of the access log",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0],
            ),
        }
    }

    /// Records one durable group write of `entries` entries that took `seconds`.
    pub fn group_written(&self, entries: usize, seconds: f64) {
        self.sync_seconds.observe(seconds);
        self.group_size.observe(entries as f64);
    }
}

/// The node's metrics and the registry they are exposed from.
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Registry,
    calls: CallMetrics,
    questions: IntCounterVec,
    imported: IntCounterVec,
    import_received: IntCounter,
    imports_running: IntGauge,
    strangers: IntCounter,
    log_syncs: IntCounter,
    log_written: IntGauge,
    log_failing: IntGauge,
    shipped: IntGauge,
    shipping_lag: IntGauge,
    config_age_seconds: Gauge,
    config_max_age_seconds: Gauge,
    config_version: IntGauge,
}

impl NodeMetrics {
    /// The node's metrics, with the access log's group-commit histograms.
    pub fn new(log: &AccessLog) -> Self {
        let r = Registry::new();
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| register(&r, IntCounterVec::new(Opts::new(name, help), labels));
        let counter = |name: &str, help: &str| register(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(&r, IntGauge::new(name, help));
        let float_gauge = |name: &str, help: &str| register(&r, Gauge::new(name, help));
        let metrics = Self {
            calls: CallMetrics::new(&r, "exchange_node"),
            questions: counter_vec(
                "exchange_node_questions_total",
                "Query questions (single requests and batch items; a batch refused as a whole counts once) by method, outcome (served, refused, not_found) and reason code",
                &["method", "outcome", "reason"],
            ),
            imported: counter_vec(
                "exchange_node_import_records_total",
                "Records of committed imports by dataset and result (inserted, updated, unchanged)",
                &["dataset", "result"],
            ),
            import_received: counter(
                "exchange_node_import_records_received_total",
                "Records received by import streams, committed or not (the progress of an import under way)",
            ),
            imports_running: gauge("exchange_node_imports_in_progress", "Import streams being received now"),
            strangers: counter(
                "exchange_node_strangers_refused_total",
                "Calls refused before the caller was known as a member (never written to the access log)",
            ),
            log_syncs: counter(
                "exchange_node_access_log_syncs_total",
                "Durable group writes of the access log since the node started (one disk sync each)",
            ),
            log_written: gauge(
                "exchange_node_access_log_last_sequence",
                "Last sequence written durably to the access log",
            ),
            log_failing: gauge(
                "exchange_node_access_log_failing",
                "1 while the access log cannot be written (every query is refused), else 0",
            ),
            shipped: gauge(
                "exchange_node_shipping_last_acknowledged",
                "Last access-log sequence the catalog's central log acknowledged",
            ),
            shipping_lag: gauge(
                "exchange_node_shipping_lag_entries",
                "Access-log entries written but not yet acknowledged by the catalog's central log",
            ),
            config_age_seconds: float_gauge(
                "exchange_node_config_age_seconds",
                "Age of the federation configuration held, from its signed issued_at (+Inf while none is held)",
            ),
            config_max_age_seconds: float_gauge(
                "exchange_node_config_max_age_seconds",
                "The configuration age past which the node refuses queries (config_max_age_secs)",
            ),
            config_version: gauge(
                "exchange_node_config_version",
                "Version of the federation configuration held (0: none)",
            ),
            registry: r,
        };
        for h in [&log.stats().sync_seconds, &log.stats().group_size] {
            metrics.registry.register(Box::new(h.clone())).expect("metric names are unique");
        }
        metrics
    }

    /// Counts a finished call of `method` with its result and duration.
    pub fn call<T>(&self, method: &str, result: &Result<T, NodeError>, seconds: f64) {
        let code = match result {
            Ok(_) => "OK".to_string(),
            Err(e) => format!("{:?}", e.parts().0),
        };
        self.calls.observe(method, &code, seconds);
    }

    /// Counts one question of a query (a single request or a batch item).
    pub fn question<T>(&self, method: &str, result: &Result<T, NodeError>) {
        let (outcome, reason) = match result {
            Ok(_) => ("served", "NONE"),
            Err(e @ NodeError::NotFound(_)) => ("not_found", reason_label(e)),
            Err(e) => ("refused", reason_label(e)),
        };
        self.questions.with_label_values(&[method, outcome, reason]).inc();
    }

    /// Counts records received by an import stream (before validation and commit).
    pub fn import_received(&self, records: usize) {
        self.import_received.inc_by(records as u64);
    }

    /// Marks an import stream as started; it counts as running until the guard is dropped.
    pub fn import_started(&self) -> ImportRunning<'_> {
        self.imports_running.inc();
        ImportRunning(&self.imports_running)
    }

    /// Counts the records of a committed import.
    pub fn imported(&self, dataset: &str, inserted: u64, updated: u64, unchanged: u64) {
        for (result, n) in [("inserted", inserted), ("updated", updated), ("unchanged", unchanged)] {
            self.imported.with_label_values(&[dataset, result]).inc_by(n);
        }
    }

    /// The metrics now, in the Prometheus text format; the gauges are read from the node.
    pub fn render(&self, node: &Node) -> String {
        catch_up(&self.strangers, node.strangers.total());
        catch_up(&self.log_syncs, node.log.syncs());
        let written = node.log.last_written();
        let shipped = node.shipper.last_shipped();
        self.log_written.set(clamp(written));
        self.log_failing.set(i64::from(node.log.is_failing()));
        self.shipped.set(clamp(shipped));
        self.shipping_lag.set(clamp(written.saturating_sub(shipped)));
        self.config_age_seconds.set(node.fed.age_ms(now_ms()).map_or(f64::INFINITY, |ms| ms as f64 / 1000.0));
        self.config_max_age_seconds.set(node.fed.max_age_ms() as f64 / 1000.0);
        self.config_version.set(node.config_version().map_or(0, clamp));
        encode(&self.registry)
    }
}

/// Holds an import counted as running ([`NodeMetrics::import_started`]).
#[derive(Debug)]
pub struct ImportRunning<'a>(&'a IntGauge);

impl Drop for ImportRunning<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A reason code as a label: its proto name without the `REASON_CODE_` prefix.
fn reason_label(e: &NodeError) -> &'static str {
    let name = e.reason().as_str_name();
    name.strip_prefix("REASON_CODE_").unwrap_or(name)
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
