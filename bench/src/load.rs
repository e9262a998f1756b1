//! The load generator: a closed loop of `in_flight` callers, each starting its next call when
//! the last one answered, first for a warm-up, then for the measured window; and what one
//! window gives (throughput, latency percentiles, CPU time per call of client and node).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::machine::cpu_us;

/// How long to warm up and to measure.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Calls before the measurement (connections, caches, token verification, the JIT of
    /// nothing: allocators and the block cache).
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
}

/// What one window of calls gave.
#[derive(Clone, Debug, Serialize)]
pub struct LoadResult {
    /// Calls in flight at once.
    pub in_flight: usize,
    /// Calls started and answered in the window.
    pub calls: u64,
    /// Calls that failed in the window.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Answered calls per second.
    pub per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// CPU time of this process (the load client) per answered call, µs.
    pub client_cpu_us: f64,
    /// CPU time of the serving daemon per answered call, µs.
    pub node_cpu_us: f64,
}

/// The `q`-quantile (nearest rank) of sorted latencies, in ms.
fn quantile_ms(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len());
    sorted_ns[rank - 1] as f64 / 1e6
}

struct Worker {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `call(worker, iteration)` from `in_flight` tasks for `window`; `node_pid` is the daemon
/// whose CPU time is charged to the calls.
pub async fn closed_loop<F, Fut>(in_flight: usize, window: Window, node_pid: u32, call: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let start = Instant::now() + window.warmup;
    let end = start + window.measure;
    let workers: Vec<_> = (0..in_flight)
        .map(|w| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut me = Worker { latencies_ns: Vec::new(), errors: 0, first_error: None };
                let mut i = 0u64;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = call(w, i).await;
                    i += 1;
                    if t0 < start {
                        continue;
                    }
                    match result {
                        Ok(()) => me.latencies_ns.push(t0.elapsed().as_nanos() as u64),
                        Err(e) => {
                            me.errors += 1;
                            me.first_error.get_or_insert(e);
                        }
                    }
                }
                me
            })
        })
        .collect();
    let me = std::process::id();
    tokio::time::sleep_until(start.into()).await;
    let (client0, node0) = (cpu_us(me), cpu_us(node_pid));
    tokio::time::sleep_until(end.into()).await;
    let (client1, node1) = (cpu_us(me), cpu_us(node_pid));
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for w in workers {
        match w.await {
            Ok(w) => {
                latencies.extend(w.latencies_ns);
                errors += w.errors;
                if first_error.is_none() {
                    first_error = w.first_error;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("load task failed: {e}"));
            }
        }
    }
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    let per_call = |us: u64| if calls == 0 { 0.0 } else { us as f64 / calls as f64 };
    LoadResult {
        in_flight,
        calls,
        errors,
        first_error,
        per_sec: calls as f64 / window.measure.as_secs_f64(),
        p50_ms: quantile_ms(&latencies, 0.50),
        p99_ms: quantile_ms(&latencies, 0.99),
        p999_ms: quantile_ms(&latencies, 0.999),
        client_cpu_us: per_call(client1.saturating_sub(client0)),
        node_cpu_us: per_call(node1.saturating_sub(node0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let ns: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        assert_eq!(quantile_ms(&ns, 0.5), 500.0);
        assert_eq!(quantile_ms(&ns, 0.99), 990.0);
        assert_eq!(quantile_ms(&ns, 0.999), 999.0);
        assert_eq!(quantile_ms(&[7_000_000], 0.999), 7.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }

    #[tokio::test]
    async fn every_call_in_the_window_is_counted_once_and_failures_apart() {
        let window = Window { warmup: Duration::from_millis(20), measure: Duration::from_millis(100) };
        let result = closed_loop(4, window, std::process::id(), |w, i| async move {
            tokio::task::yield_now().await;
            if w == 0 && i % 2 == 1 { Err(format!("odd call {i}")) } else { Ok(()) }
        })
        .await;
        assert_eq!(result.in_flight, 4);
        assert!(result.calls > 0);
        assert!(result.errors > 0);
        assert!(result.first_error.as_deref().is_some_and(|e| e.starts_with("odd call ")));
        assert!(result.p50_ms <= result.p99_ms && result.p99_ms <= result.p999_ms);
    }
}
