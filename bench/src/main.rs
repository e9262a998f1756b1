//! `exchange-bench`: what an authorized, logged, signed query costs against a bare call, in
//! one run, on one machine, with the load generator on it.
//!
//! It starts its own local federation on loopback (a catalog and three nodes as processes,
//! `exchange_localnet`, from the folder of this binary: build the workspace's
//! binaries in the same profile) and reports, as tables or as `--json`:
//! 1. the query path at 1/16/64/256 in flight: a bare `grpc.health.v1` check on the node, the
//!    authorized GetRecord without client checks, and the same through the SDK with signature
//!    verification (throughput, p50/p99/p99.9, CPU time per call of client and node);
//! 2. durability: the authorized query with the access log synced and not synced;
//! 3. import against a raw RocksDB write of the same keys and values;
//! 4. the central log: appends/s from batches, inclusion and consistency proofs at sizes;
//! 5. verify-licence throughput (核验).
//!
//! `--smoke` runs every section at toy sizes in seconds and fails if any call failed: CI runs
//! it to check that the harness works, never to judge a figure. `scripts/bench` builds the
//! optimised profile and runs it. See `docs/performance.md`.

mod central;
mod fed;
mod import;
mod load;
mod machine;
mod query;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use crate::fed::{Fed, FedOptions};
use crate::load::Window;
use crate::report::Report;

/// The sections of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    /// The query path against the bare call.
    Query,
    /// The access log synced and not synced.
    Durability,
    /// Import against raw RocksDB writes.
    Import,
    /// Central log appends and proofs.
    Log,
    /// Verify-licence throughput.
    Verify,
}

/// Measures the Exchange federation on this machine (see docs/performance.md).
#[derive(Debug, Parser)]
#[command(name = "exchange-bench")]
struct Args {
    /// Toy sizes and windows of a fraction of a second: checks that the harness works (CI).
    #[arg(long)]
    smoke: bool,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Sections to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Warm-up before each measured window, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured window of each load point, seconds.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Calls in flight for the query path.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    in_flight: Vec<usize>,
    /// Calls in flight for durability and verification.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    in_flight_short: Vec<usize>,
    /// Citizens imported before the measurements.
    #[arg(long, default_value_t = 10_000)]
    persons: usize,
    /// Records of the import section.
    #[arg(long, default_value_t = 1_000_000)]
    import_records: usize,
    /// Sizes of the central log to measure at (ascending; a size the disk cannot hold is skipped).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    log_sizes: Vec<u64>,
    /// Folder for the federation and scratch stores (default: a fresh temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder of the exchange-catalog and exchange-node binaries (default: beside this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

impl Args {
    fn smoke_sizes(mut self) -> Self {
        if self.smoke {
            self.warmup = 0.2;
            self.duration = 0.5;
            self.in_flight = vec![1, 4];
            self.in_flight_short = vec![4];
            self.persons = 300;
            self.import_records = 2_000;
            self.log_sizes = vec![1_000, 3_000];
        }
        self
    }

    fn runs(&self, section: Section) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}

fn main() -> anyhow::Result<()> {
    // The daemons this starts inherit the environment: the node allows `access_log_sync =
    // false` (the durability section) only under the harness. Setting a variable in a running
    // process is unsafe, so the harness runs itself again with it.
    if std::env::var(exchange_node::config::BENCH_ENV).as_deref() != Ok("1") {
        let status = std::process::Command::new(std::env::current_exe().context("locate this binary")?)
            .args(std::env::args_os().skip(1))
            .env(exchange_node::config::BENCH_ENV, "1")
            .status()
            .context("run the harness")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    let args = Args::parse().smoke_sizes();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let report = runtime.block_on(run(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    let failures = report.failures();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("exchange-bench: {f}");
        }
        anyhow::bail!("{} load points had failed calls: the figures above do not measure the path", failures.len());
    }
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let window =
        Window { warmup: Duration::from_secs_f64(args.warmup), measure: Duration::from_secs_f64(args.duration) };
    let scratch = match &args.data_dir {
        Some(dir) => dir.join("scratch"),
        None => std::env::temp_dir().join(format!("exchange-bench-scratch-{}", std::process::id())),
    };
    std::fs::create_dir_all(&scratch).with_context(|| format!("create {}", scratch.display()))?;
    let mut report = Report {
        machine: machine::Machine::describe(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        load_before: machine::load_average(),
        load_after: String::new(),
        warmup_secs: args.warmup,
        measure_secs: args.duration,
        query_path: Vec::new(),
        durability: Vec::new(),
        import: None,
        central_log: None,
        verify_licence: Vec::new(),
    };
    let result = sections(args, window, &scratch, &mut report).await;
    let _ = std::fs::remove_dir_all(&scratch);
    report.load_after = machine::load_average();
    result.map(|()| report)
}

async fn sections(args: &Args, window: Window, scratch: &std::path::Path, report: &mut Report) -> anyhow::Result<()> {
    if args.runs(Section::Log) {
        let dir = scratch.join("central-log");
        let sizes = args.log_sizes.clone();
        report.central_log = Some(tokio::task::spawn_blocking(move || central::central_log(&dir, &sizes)).await??);
        let _ = std::fs::remove_dir_all(scratch.join("central-log"));
    }
    let federated = [Section::Query, Section::Durability, Section::Import, Section::Verify];
    if !federated.iter().any(|s| args.runs(*s)) {
        return Ok(());
    }
    eprintln!("exchange-bench: starting a local federation ({} citizens)", args.persons);
    let options = FedOptions { persons: args.persons, data_dir: args.data_dir.clone(), bin_dir: args.bin_dir.clone() };
    let mut fed = Fed::start(&options).await?;
    if args.runs(Section::Query) {
        report.query_path = query::query_path(&fed, &args.in_flight, window).await?;
    }
    if args.runs(Section::Verify) {
        report.verify_licence = query::verify_licences(&fed, &args.in_flight_short, window).await?;
    }
    if args.runs(Section::Durability) {
        report.durability = query::durability(&mut fed, &args.in_flight_short, window).await?;
    }
    if args.runs(Section::Import) {
        report.import = Some(import::import_vs_raw(&mut fed, args.import_records, scratch).await?);
    }
    Ok(())
}
