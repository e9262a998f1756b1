//! The metrics listener of a daemon: `GET /metrics` in the Prometheus text format, on an
//! address of its own, apart from the gRPC port. It is plain HTTP without client
//! certificates, so that any Prometheus can scrape it: bind it to loopback or to the
//! monitoring network only, never to the federation's. What it serves carries no personal
//! data: counts, durations and sizes, labelled by method, outcome and reason code.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// Registers one metric. Names, help texts and label sets are constants of the daemons: an
/// invalid or duplicate one is a programming error, found by their unit tests.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("constant metric definition");
    registry.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

/// Raises a counter to a total kept elsewhere (counters only go up).
pub fn catch_up(counter: &IntCounter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

/// The registry's metrics in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics not encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Calls of a daemon's gRPC methods: a count by method and status code, and a duration
/// histogram by method (`<prefix>_calls_total`, `<prefix>_call_duration_seconds`).
#[derive(Clone, Debug)]
pub struct CallMetrics {
    calls: IntCounterVec,
    seconds: HistogramVec,
}

impl CallMetrics {
    /// Registers the call metrics of the daemon named by `prefix` (`exchange_node`, ...).
    pub fn new(registry: &Registry, prefix: &str) -> Self {
        let calls = IntCounterVec::new(
            Opts::new(format!("{prefix}_calls_total"), "gRPC calls by method and status code"),
            &["method", "code"],
        );
        let buckets = prometheus::exponential_buckets(0.0001, 2.0, 18).expect("constant buckets");
        let seconds = HistogramVec::new(
            HistogramOpts::new(format!("{prefix}_call_duration_seconds"), "Duration of gRPC calls by method")
                .buckets(buckets),
            &["method"],
        );
        Self { calls: register(registry, calls), seconds: register(registry, seconds) }
    }

    /// Counts one finished call; `code` is the gRPC status code (`OK`, `PermissionDenied`...).
    pub fn observe(&self, method: &str, code: &str, seconds: f64) {
        self.calls.with_label_values(&[method, code]).inc();
        self.seconds.with_label_values(&[method]).observe(seconds);
    }
}

/// Renders the current metrics in the Prometheus text format (called at every scrape, so
/// that gauges such as the configuration's age are read when asked).
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Parses the `metrics_listen` setting of a daemon's configuration (unset: no listener).
///
/// The listener is plain HTTP without authentication, so a loopback address is taken as it is
/// (a Prometheus or an agent on the same host scrapes it), and any other address, the
/// wildcard `0.0.0.0` / `[::]` included, only with `metrics_remote = true`: the operator says
/// in so many words that the port is on a network they restrict to their monitoring (a
/// Kubernetes NetworkPolicy, a host firewall), so that a copied `listen` line cannot put it on
/// the federation's network unnoticed.
pub fn parse_listen(setting: Option<&str>, remote: bool) -> anyhow::Result<Option<SocketAddr>> {
    let Some(text) = setting else {
        if remote {
            anyhow::bail!("setting metrics_remote: true without metrics_listen; set metrics_listen or remove it");
        }
        return Ok(None);
    };
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| anyhow::anyhow!("setting metrics_listen: {text:?} is not an address like 127.0.0.1:9400"))?;
    if !addr.ip().is_loopback() && !remote {
        anyhow::bail!(
            "setting metrics_listen: {addr} is not a loopback address, and the metrics listener is plain HTTP \
             without authentication: bind it to 127.0.0.1, or set metrics_remote = true once only your \
             monitoring can reach that address (see deploy/README.md, Metrics)"
        );
    }
    Ok(Some(addr))
}

/// A running metrics listener.
#[derive(Debug)]
pub struct MetricsListener {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The serving task (it ends when the stop future given to [`start`] completes).
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and serves `GET /metrics` with `render` until `stop` completes.
pub async fn start(
    addr: SocketAddr,
    render: Render,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<MetricsListener> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("metrics: listen on {addr}"))?;
    let addr = listener.local_addr().context("metrics: local address")?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()) }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    });
    tracing::info!(%addr, "metrics listening (Prometheus text format at /metrics)");
    Ok(MetricsListener { addr, task })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        conn.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_the_rendered_text_at_metrics_only() {
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = calls.clone();
        let render: Render = Arc::new(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            format!("# TYPE scrapes counter\nscrapes {n}\n")
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let listener = start(SocketAddr::from(([127, 0, 0, 1], 0)), render, async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("listener");
        let first = get(listener.addr, "/metrics").await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(first.contains("text/plain; version=0.0.4"), "{first}");
        assert!(first.ends_with("scrapes 1\n"), "rendered at the scrape: {first}");
        assert!(get(listener.addr, "/metrics").await.ends_with("scrapes 2\n"));
        assert!(get(listener.addr, "/").await.starts_with("HTTP/1.1 404"));
        let _ = stop_tx.send(());
        listener.task.await.expect("the listener ends at stop");
    }

    #[test]
    fn loopback_is_taken_as_it_is_any_other_address_only_when_declared_remote() {
        assert_eq!(parse_listen(None, false).expect("unset"), None);
        for local in ["127.0.0.1:9400", "127.0.0.2:9400", "[::1]:9400"] {
            let addr = parse_listen(Some(local), false).expect("loopback").expect("an address");
            assert_eq!(addr, local.parse::<SocketAddr>().expect("address"));
        }
        for network in ["0.0.0.0:9400", "[::]:9400", "10.1.2.3:9400", "192.168.0.7:9400"] {
            let err = parse_listen(Some(network), false).expect_err("a network address needs metrics_remote");
            assert!(
                err.to_string().starts_with(&format!("setting metrics_listen: {} is not a loopback address", network)),
                "{err}"
            );
            assert!(err.to_string().contains("metrics_remote = true"), "{err}");
            assert!(parse_listen(Some(network), true).expect("declared remote").is_some());
        }
        let err = parse_listen(Some("localhost:9400"), false).expect_err("a name is not an address");
        assert_eq!(err.to_string(), "setting metrics_listen: \"localhost:9400\" is not an address like 127.0.0.1:9400");
        let err = parse_listen(None, true).expect_err("remote without an address");
        assert!(err.to_string().starts_with("setting metrics_remote: true without metrics_listen"), "{err}");
    }

    #[test]
    fn the_call_metrics_count_by_method_and_code() {
        let registry = Registry::new();
        let calls = CallMetrics::new(&registry, "exchange_test");
        calls.observe("get_record", "OK", 0.002);
        calls.observe("get_record", "PermissionDenied", 0.001);
        calls.observe("get_record", "OK", 0.003);
        let text = encode(&registry);
        assert!(text.contains("exchange_test_calls_total{code=\"OK\",method=\"get_record\"} 2\n"), "{text}");
        assert!(
            text.contains("exchange_test_calls_total{code=\"PermissionDenied\",method=\"get_record\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("exchange_test_call_duration_seconds_count{method=\"get_record\"} 3\n"), "{text}");
        let counter = register(&registry, IntCounter::new("exchange_test_total", "a total kept elsewhere"));
        catch_up(&counter, 5);
        catch_up(&counter, 3);
        assert_eq!(counter.get(), 5, "a counter never goes down");
    }
}
