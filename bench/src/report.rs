//! The whole run as one value, printed as tables or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::central::CentralLog;
use crate::import::ImportResult;
use crate::load::LoadResult;
use crate::machine::Machine;
use crate::query::{DurabilityPoint, QueryPoint};

/// Everything one run measured, with what it ran on.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Machine, profile, commit.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Load averages (1, 5, 15 min) when the run started.
    pub load_before: String,
    /// Load averages when it ended.
    pub load_after: String,
    /// Warm-up and measured window of every load point, seconds.
    pub warmup_secs: f64,
    /// The measured window, seconds.
    pub measure_secs: f64,
    /// Section 1.
    pub query_path: Vec<QueryPoint>,
    /// Section 2.
    pub durability: Vec<DurabilityPoint>,
    /// Section 3.
    pub import: Option<ImportResult>,
    /// Section 4.
    pub central_log: Option<CentralLog>,
    /// Section 5.
    pub verify_licence: Vec<LoadResult>,
}

impl Report {
    /// Every failed call of every load point, to fail a smoke run on.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: String, r: &LoadResult| {
            if r.errors > 0 || r.calls == 0 {
                out.push(format!(
                    "{what} at {} in flight: {} calls, {} failed ({})",
                    r.in_flight,
                    r.calls,
                    r.errors,
                    r.first_error.as_deref().unwrap_or("none answered")
                ));
            }
        };
        for p in &self.query_path {
            check("bare call".into(), &p.bare);
            check("authorized query".into(), &p.authorized);
            check("SDK query".into(), &p.sdk);
        }
        for d in &self.durability {
            check(format!("durability (synced: {})", d.synced), &d.load);
        }
        for v in &self.verify_licence {
            check("verify licence".into(), v);
        }
        out
    }

    /// The report as tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "machine: {} cores, {}, {} MiB, Linux {}", m.cores, m.cpu_model, m.memory_mib, m.kernel);
        let _ = writeln!(s, "build:   {}", m.profile);
        let _ = writeln!(s, "commit:  {}", m.commit);
        let _ = writeln!(s, "command: {}", self.command);
        let _ =
            writeln!(s, "load:    {} at the start, {} at the end (1, 5, 15 min)", self.load_before, self.load_after);
        let _ =
            writeln!(s, "window:  {:.1} s warm-up, {:.1} s measured per point", self.warmup_secs, self.measure_secs);
        if !self.query_path.is_empty() {
            let _ = writeln!(s, "\n1. query path (population GetRecord on one node; CPU µs per call: client / node)");
            let _ = writeln!(
                s,
                "| in flight | bare calls/s | p50 / p99 / p99.9 ms | CPU µs | authorized calls/s | p50 / p99 / p99.9 ms | CPU µs | SDK calls/s | p50 / p99 / p99.9 ms | CPU µs | SDK/bare throughput | SDK/bare p99 |"
            );
            let _ = writeln!(s, "|---:|---:|---|---|---:|---|---|---:|---|---|---:|---:|");
            for p in &self.query_path {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                    p.in_flight,
                    rate(p.bare.per_sec),
                    latency(&p.bare),
                    cpu(&p.bare),
                    rate(p.authorized.per_sec),
                    latency(&p.authorized),
                    cpu(&p.authorized),
                    rate(p.sdk.per_sec),
                    latency(&p.sdk),
                    cpu(&p.sdk),
                    p.throughput_ratio,
                    p.p99_ratio
                );
            }
        }
        if !self.durability.is_empty() {
            let _ = writeln!(s, "\n2. durability (authorized query; the access log's group writes synced or not)");
            let _ = writeln!(
                s,
                "| access log | in flight | calls/s | p50 / p99 / p99.9 ms | node CPU µs | entries | group writes | writes per query |"
            );
            let _ = writeln!(s, "|---|---:|---:|---|---:|---:|---:|---:|");
            for d in &self.durability {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {:.3} |",
                    if d.synced { "synced" } else { "not synced" },
                    d.load.in_flight,
                    rate(d.load.per_sec),
                    latency(&d.load),
                    d.load.node_cpu_us,
                    d.entries,
                    d.group_writes,
                    d.writes_per_query
                );
            }
        }
        if let Some(i) = &self.import {
            let _ = writeln!(s, "\n3. import ({} records; raw: {} pairs of the record tables)", i.records, i.raw_pairs);
            let _ = writeln!(
                s,
                "| import records/s | raw RocksDB records/s | import/raw | node peak MiB | client peak MiB |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} ({:.1} s) | {} ({:.1} s) | {:.2} | {:.0} | {:.0} |",
                rate(i.import_per_sec),
                i.import_secs,
                rate(i.raw_per_sec),
                i.raw_secs,
                i.ratio,
                i.node_peak_mib,
                i.client_peak_mib
            );
        }
        if let Some(c) = &self.central_log {
            let _ =
                writeln!(s, "\n4. central log (appends in batches of 1000; proofs: produce + verify, µs p50 / p99)");
            let _ = writeln!(
                s,
                "| entries | appends/s | inclusion produce | inclusion verify | consistency produce | consistency verify | disk MiB |"
            );
            let _ = writeln!(s, "|---:|---:|---|---|---|---|---:|");
            for p in &c.points {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} |",
                    p.size,
                    rate(p.appends_per_sec),
                    p.inclusion.produce_p50_us,
                    p.inclusion.produce_p99_us,
                    p.inclusion.verify_p50_us,
                    p.inclusion.verify_p99_us,
                    p.consistency.produce_p50_us,
                    p.consistency.produce_p99_us,
                    p.consistency.verify_p50_us,
                    p.consistency.verify_p99_us,
                    p.disk_mib
                );
            }
            for skipped in &c.skipped {
                let _ = writeln!(s, "skipped {skipped}");
            }
        }
        if !self.verify_licence.is_empty() {
            let _ = writeln!(s, "\n5. verify licence (核验, business licence, through the SDK, signature verified)");
            let _ = writeln!(s, "| in flight | calls/s | p50 / p99 / p99.9 ms | CPU µs client / node |");
            let _ = writeln!(s, "|---:|---:|---|---|");
            for v in &self.verify_licence {
                let _ = writeln!(s, "| {} | {} | {} | {} |", v.in_flight, rate(v.per_sec), latency(v), cpu(v));
            }
        }
        s
    }
}

fn rate(per_sec: f64) -> String {
    let whole = per_sec.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency(r: &LoadResult) -> String {
    format!("{:.2} / {:.2} / {:.2}", r.p50_ms, r.p99_ms, r.p999_ms)
}

fn cpu(r: &LoadResult) -> String {
    format!("{:.0} / {:.0}", r.client_cpu_us, r.node_cpu_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_have_thousands_separators() {
        assert_eq!(rate(0.4), "0");
        assert_eq!(rate(999.0), "999");
        assert_eq!(rate(22_662.3), "22,662");
        assert_eq!(rate(1_234_567.0), "1,234,567");
    }
}
