//! The catalog's metrics, for the daemon's metrics listener ([`exchange_daemon::metrics`]):
//! calls by method and gRPC code with their durations, and the central log's size and
//! entries appended (their rate is the append rate). Labels are method names and status
//! codes only; no member's query, subject or reason reaches them.

use exchange_daemon::metrics::{CallMetrics, catch_up, encode, register};
use prometheus::{IntCounter, IntGauge, Registry};

use crate::error::CatalogError;
use crate::service::Catalog;

/// The catalog's metrics and the registry they are exposed from.
#[derive(Debug)]
pub struct CatalogMetrics {
    registry: Registry,
    calls: CallMetrics,
    appended: IntCounter,
    log_size: IntGauge,
}

impl Default for CatalogMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CatalogMetrics {
    /// The catalog's metrics, registered.
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            calls: CallMetrics::new(&r, "exchange_catalog"),
            appended: register(
                &r,
                IntCounter::new(
                    "exchange_catalog_log_entries_appended_total",
                    "Entries appended to the central access log since the catalog started (shipped batches and administrative entries)",
                ),
            ),
            log_size: register(
                &r,
                IntGauge::new("exchange_catalog_log_tree_size", "Entries in the central access log (the tree size)"),
            ),
            registry: r,
        }
    }

    /// Counts a finished call of `method` with its result and duration.
    pub fn call<T>(&self, method: &str, result: &Result<T, CatalogError>, seconds: f64) {
        let code = match result {
            Ok(_) => "OK".to_string(),
            Err(e) => format!("{:?}", e.to_status().code()),
        };
        self.calls.observe(method, &code, seconds);
    }

    /// The metrics now, in the Prometheus text format; the log's size is read at the scrape.
    /// `at_start` is the tree size when the catalog started (appends are counted from it).
    pub fn render(&self, catalog: &Catalog, at_start: u64) -> String {
        let size = catalog.log_size();
        self.log_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        catch_up(&self.appended, size.saturating_sub(at_start));
        encode(&self.registry)
    }
}
