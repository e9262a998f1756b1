//! Section 3: an import of generated citizens through the SDK (streamed, validated against
//! the standard schema, staged and applied by the node), against a raw RocksDB write of the
//! same keys and values: those the import left in the node's store, read back once it stopped.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use exchange_localnet::data::{self, POPULATION, PSB};
use exchange_node::db::{HISTORY, HOLDERS, RECORDS, TABLES};
use exchange_store::{Durability, KvStore, RocksStore, ScanRange, WriteBatch};
use serde::Serialize;

use crate::fed::Fed;
use crate::machine::peak_rss_mib;

/// Records per import chunk, and per raw write batch.
const CHUNK: usize = 1000;

/// What the section gave.
#[derive(Clone, Debug, Serialize)]
pub struct ImportResult {
    /// Records imported.
    pub records: usize,
    /// Records inserted, as the node counted them.
    pub inserted: u64,
    /// Seconds the import took (the SDK's call, end to end).
    pub import_secs: f64,
    /// Records validated and stored per second.
    pub import_per_sec: f64,
    /// Key-value pairs of the record tables written raw.
    pub raw_pairs: usize,
    /// Seconds the raw write took.
    pub raw_secs: f64,
    /// The same number of records per second, written raw.
    pub raw_per_sec: f64,
    /// Import over raw.
    pub ratio: f64,
    /// Peak resident memory of the node during the run, MiB.
    pub node_peak_mib: f64,
    /// Peak resident memory of this process (the client, with the generated rows), MiB.
    pub client_peak_mib: f64,
}

/// A pair and its table.
type Pair = (&'static str, Vec<u8>, Vec<u8>);

/// Every pair of the record tables of the stopped node's store.
fn read_tables(dir: &Path) -> anyhow::Result<Vec<Pair>> {
    let store = RocksStore::open(dir, TABLES).context("open the node's store")?;
    let mut pairs = Vec::new();
    for table in [RECORDS, HISTORY, HOLDERS] {
        let mut range = ScanRange::all();
        loop {
            let page = store.scan(table, range.clone(), 10_000)?;
            let Some((last, _)) = page.last() else { break };
            range = ScanRange::all().after(last);
            pairs.extend(page.into_iter().map(|(k, v)| (table, k, v)));
        }
    }
    Ok(pairs)
}

/// Writes `pairs` into a fresh store in `dir`, in batches of [`CHUNK`] pairs (not synced, as the
/// import stages), then syncs the log once (as the import's last write does). Seconds taken.
fn write_raw(dir: &Path, pairs: Vec<Pair>) -> anyhow::Result<f64> {
    let store = RocksStore::open(dir, TABLES).context("open the raw store")?;
    let started = Instant::now();
    let mut pairs = pairs.into_iter().peekable();
    while pairs.peek().is_some() {
        let mut batch = WriteBatch::with_capacity(CHUNK);
        for (table, k, v) in pairs.by_ref().take(CHUNK) {
            batch.put(table, k, v);
        }
        store.write(batch, Durability::Buffered)?;
    }
    store.sync_wal()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Imports `records` new citizens into the population node, then stops it, reads what the
/// import stored, starts it again and writes the same pairs raw into `scratch`.
pub async fn import_vs_raw(fed: &mut Fed, records: usize, scratch: &Path) -> anyhow::Result<ImportResult> {
    eprintln!("exchange-bench: import, generating {records} citizens");
    let skip = fed.persons_imported;
    let rows: Arc<Vec<data::Row>> = Arc::new(data::generate(skip + records).persons.split_off(skip));
    let chunks = rows.len().div_ceil(CHUNK);
    let (header, _) = data::import_request(POPULATION, "bench-import", &[], None);
    let stream_rows = rows.clone();
    // Chunks made as the node takes them: the client holds the rows once, not twice.
    let stream = futures::stream::iter((0..chunks).map(move |c| {
        let slice = &stream_rows[c * CHUNK..((c + 1) * CHUNK).min(stream_rows.len())];
        let (_, mut made) = data::import_request(POPULATION, "bench-import", slice, None);
        let mut chunk = made.pop().unwrap_or_default();
        for r in &mut chunk.records {
            r.line += (c * CHUNK) as u64;
        }
        Ok(chunk)
    }));
    eprintln!("exchange-bench: import, {records} citizens through the SDK");
    let started = Instant::now();
    let summary = fed.psb.import_stream(header, stream, |_| {}).await.context("import")?;
    let import_secs = started.elapsed().as_secs_f64();
    fed.persons_imported += rows.len();
    let node_peak_mib = peak_rss_mib(fed.pid(PSB)?);
    let client_peak_mib = peak_rss_mib(std::process::id());
    drop(rows);

    eprintln!("exchange-bench: import, the same pairs written raw");
    fed.net.kill(PSB).await?;
    let node_dir = fed.net.data_dir(PSB);
    let pairs = tokio::task::spawn_blocking(move || read_tables(&node_dir)).await??;
    fed.net.restart(PSB).await?;
    let raw_pairs = pairs.len();
    let raw_dir = scratch.join("raw-import");
    let raw_secs = {
        let dir = raw_dir.clone();
        tokio::task::spawn_blocking(move || write_raw(&dir, pairs)).await??
    };
    let _ = std::fs::remove_dir_all(&raw_dir);
    let import_per_sec = records as f64 / import_secs.max(1e-9);
    let raw_per_sec = records as f64 / raw_secs.max(1e-9);
    Ok(ImportResult {
        records,
        inserted: summary.inserted,
        import_secs,
        import_per_sec,
        raw_pairs,
        raw_secs,
        raw_per_sec,
        ratio: import_per_sec / raw_per_sec.max(1e-9),
        node_peak_mib,
        client_peak_mib,
    })
}
