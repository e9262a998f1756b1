//! The daemons' metrics and logs after the demo scenarios, as an operator's monitoring sees
//! them: `exchange demo` (JSON logs asked with `EXCHANGE_LOG_FORMAT=json`) runs both scenarios
//! and keeps the federation up; the catalog's and every node's metrics listener is scraped
//! over plain HTTP on 127.0.0.1, the Prometheus text format parsed, the series checked for
//! plausible values, and the scrapes and logs searched for every identifying value of the
//! demo data.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use exchange_localnet::default_bin_dir;

/// One scrape: each sample line (`name{labels}` → value), comments left out.
type Samples = BTreeMap<String, f64>;

/// GET /metrics, answered in the Prometheus text format; returns the body.
fn scrape(addr: SocketAddr) -> String {
    let mut conn = TcpStream::connect(addr).expect("connect to the metrics listener");
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// Parses the text format: every line is a comment (`# HELP`, `# TYPE`) or a sample.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("not a number in {line:?}")),
        };
        assert!(samples.insert(series.to_string(), value).is_none(), "series twice: {series}");
    }
    samples
}

fn value(samples: &Samples, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sum(samples: &Samples, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split_once('{').map_or(series.as_str(), |(n, _)| n) == name
                && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Runs `exchange demo` until its federation is up after the scenarios; returns the child
/// and the metrics address printed for each daemon.
fn start_demo(bin_dir: &Path, fed_dir: &Path) -> (Child, BTreeMap<String, SocketAddr>) {
    let mut demo = Command::new(bin_dir.join("exchange"))
        .args(["demo", "--persons", "300", "--data-dir"])
        .arg(fed_dir)
        .env("EXCHANGE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start exchange demo");
    let stdout = demo.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut metrics = BTreeMap::new();
    // Bounded by the demo itself: it either prints the line or ends (closing stdout).
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("demo output");
        if let Some(rest) = line.trim().strip_prefix("metrics of ") {
            let mut words = rest.split_whitespace();
            let (name, url) = (words.next().expect("daemon"), words.next().expect("url"));
            let addr = url.trim_start_matches("http://").trim_end_matches("/metrics").parse().expect("address");
            metrics.insert(name.to_string(), addr);
        }
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C stops it") {
            break;
        }
    }
    assert!(seen.contains("all scenarios passed"), "the demo did not pass:\n{seen}");
    assert!(seen.contains("Ctrl-C stops it"), "the demo did not reach its running state:\n{seen}");
    (demo, metrics)
}

/// The central log's signed tree size, as an auditor reads it with the command line.
fn tree_size(bin_dir: &Path, fed_dir: &Path) -> f64 {
    let out = Command::new(bin_dir.join("exchange"))
        .arg("--json")
        .arg("--profile")
        .arg(fed_dir.join("profiles/gov.sz.audit.toml"))
        .args(["audit", "head"])
        .output()
        .expect("exchange audit head");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let head: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON tree head");
    head["size"].as_f64().expect("size")
}

#[test]
fn metrics_and_json_logs_after_the_demo_show_outcomes_and_no_personal_data() {
    let bin_dir = default_bin_dir().expect("binary folder");
    let dir = tempfile::tempdir().expect("tempdir");
    let fed_dir = dir.path().join("federation");
    let (mut demo, addrs) = start_demo(&bin_dir, &fed_dir);
    let names = ["catalog", "gov.sz.psb", "gov.sz.amr", "gov.sz.pnr"];
    assert_eq!(addrs.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted
    });
    for addr in addrs.values() {
        assert!(addr.ip().is_loopback(), "{addr}");
    }

    // The catalog's tree size is the signed head's: read both until no append came between
    // (nodes may still ship the scenarios' last entries; the loop ends once they are in).
    let (catalog_text, catalog) = loop {
        let before = tree_size(&bin_dir, &fed_dir);
        let text = scrape(addrs["catalog"]);
        let samples = parse(&text);
        if before == tree_size(&bin_dir, &fed_dir) {
            assert_eq!(value(&samples, "exchange_catalog_log_tree_size"), before, "{text}");
            break (text, samples);
        }
    };
    assert!(value(&catalog, "exchange_catalog_log_entries_appended_total") > 0.0);
    assert!(sum(&catalog, "exchange_catalog_calls_total", &["method=\"append_access_log\"", "code=\"OK\""]) > 0.0);
    assert!(sum(&catalog, "exchange_catalog_call_duration_seconds_count", &["method=\"register_member\""]) > 0.0);

    let mut texts = vec![catalog_text];
    let mut refused_field = 0.0;
    for node in &names[1..] {
        let text = scrape(addrs[*node]);
        let s = parse(&text);
        assert!(value(&s, "exchange_node_access_log_syncs_total") > 0.0, "{node}: {text}");
        assert!(value(&s, "exchange_node_access_log_sync_seconds_count") > 0.0, "{node}");
        assert!(
            value(&s, "exchange_node_access_log_group_size_sum")
                >= value(&s, "exchange_node_access_log_group_size_count")
        );
        assert!(value(&s, "exchange_node_access_log_last_sequence") > 0.0, "{node}");
        assert_eq!(value(&s, "exchange_node_access_log_failing"), 0.0, "{node}");
        let lag = value(&s, "exchange_node_shipping_lag_entries");
        assert!(lag >= 0.0 && lag <= value(&s, "exchange_node_access_log_last_sequence"), "{node}");
        assert!(value(&s, "exchange_node_config_version") > 0.0, "{node}");
        let age = value(&s, "exchange_node_config_age_seconds");
        assert!((0.0..=value(&s, "exchange_node_config_max_age_seconds")).contains(&age), "{node}: age {age}");
        assert!(sum(&s, "exchange_node_questions_total", &["outcome=\"served\""]) > 0.0, "{node}: {text}");
        assert!(sum(&s, "exchange_node_calls_total", &["method=\"import\"", "code=\"OK\""]) >= 1.0, "{node}");
        assert!(value(&s, "exchange_node_import_records_received_total") > 0.0, "{node}");
        assert_eq!(value(&s, "exchange_node_imports_in_progress"), 0.0, "{node}");
        refused_field +=
            sum(&s, "exchange_node_questions_total", &["outcome=\"refused\"", "reason=\"FIELD_NOT_GRANTED\""]);
        texts.push(text);
    }
    // The population import: every citizen inserted, counted under its dataset.
    let psb = parse(&texts[1]);
    assert_eq!(
        value(&psb, "exchange_node_import_records_total{dataset=\"gov.sz.psb/population\",result=\"inserted\"}"),
        300.0
    );
    // Scenario 2's field beyond the grant, under its reason code.
    assert!(refused_field >= 1.0, "no FIELD_NOT_GRANTED refusal counted:\n{}", texts.join("\n"));

    // JSON logs: every line of every daemon is a JSON object, and every line written inside
    // a node's query call carries the application's trace id (the refusal of scenario 2 too).
    let mut refusal_traced = false;
    for name in names {
        let log = std::fs::read_to_string(fed_dir.join(format!("logs/{name}.log"))).expect("daemon log");
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let json: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}.log: not JSON ({e}): {line}"));
            let span = &json["span"];
            let method = span["method"].as_str().unwrap_or("");
            let query = ["get_", "verify_", "list_licences", "match_", "batch_"].iter().any(|p| method.starts_with(p))
                && method != "get_log_status";
            if span["name"] == "node" && query {
                let trace = span["trace_id"].as_str().unwrap_or_else(|| panic!("no trace_id on {line}"));
                assert!(trace.starts_with("ZL-") || trace.starts_with("KB-"), "{line}");
                refusal_traced |= json["fields"]["message"] == "refused" && trace == "KB-2026-000456";
            }
        }
        texts.push(log);
    }
    assert!(refusal_traced, "scenario 2's refusal was not logged under its trace id");

    // No personal data in any label or value, nor in any log line: every identifying value
    // of the demo data (the data is deterministic) is looked for in every scrape and log.
    let data = exchange_localnet::data::generate(300);
    let identifying = [
        "id_number",
        "name",
        "credit_code",
        "entity_name",
        "legal_rep_id",
        "legal_rep_name",
        "licence_no",
        "cert_no",
        "holder_id",
        "holder_name",
        "address",
    ];
    let mut looked_for = 0;
    for row in data.persons.iter().chain(&data.businesses).chain(&data.properties) {
        for field in identifying {
            let Some(v) = row.get(field) else { continue };
            looked_for += 1;
            for text in &texts {
                assert!(!text.contains(v.as_str()), "{field} {v} found in a scrape or log");
            }
        }
    }
    assert!(looked_for > 300 * 2, "the demo data's identifying values were looked for ({looked_for})");

    let interrupted = Command::new("kill").arg("-INT").arg(demo.id().to_string()).status().expect("kill -INT");
    assert!(interrupted.success());
    assert!(demo.wait().expect("the demo stops").success());

    // The metrics listener is plain HTTP: a network address is refused unless declared.
    for (daemon, config) in [("exchange-node", "gov.sz.psb.toml"), ("exchange-catalog", "catalog.toml")] {
        let text = std::fs::read_to_string(fed_dir.join(config)).expect("configuration");
        let (start, _) = text.split_once("metrics_listen = ").expect("localnet sets metrics_listen");
        let line_end = text[start.len()..].find('\n').expect("line end") + start.len();
        let wildcard = format!("{start}metrics_listen = \"0.0.0.0:0\"{}", &text[line_end..]);
        for (name, body, ok) in [
            ("wildcard.toml", wildcard.clone(), false),
            ("declared.toml", format!("metrics_remote = true\n{wildcard}"), true),
        ] {
            let path = fed_dir.join(name);
            std::fs::write(&path, body).expect("write configuration");
            let out = Command::new(bin_dir.join(daemon))
                .arg("check-config")
                .arg("--config")
                .arg(&path)
                .output()
                .expect("check-config");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.success(), ok, "{daemon} {name}: {stderr}");
            if !ok {
                assert!(stderr.contains("setting metrics_listen: 0.0.0.0:0 is not a loopback address"), "{stderr}");
            }
        }
    }
}
