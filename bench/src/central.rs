//! Section 4: the central access log, in process over its own RocksDB store: appends of a
//! node's batches through the catalog's handler (checks, screening for identifiers in clear,
//! Merkle staging, one synced write per batch), and inclusion and consistency proofs produced
//! by the handler and verified as an auditor does, at growing sizes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use exchange_catalog::db::{Db, TABLES};
use exchange_catalog::log::{AccessLog, MAX_BATCH};
use exchange_catalog::service::{Catalog, Settings};
use exchange_core::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use exchange_localnet::data::{HCB, POPULATION, PSB, RENTAL};
use exchange_localnet::{CATALOG_ID, LOG_ORIGIN};
use exchange_pki::PeerIdentity;
use exchange_proto::v1::{AccessEvent, AppendAccessLogRequest, EventKind, Member, Outcome, Role};
use exchange_store::RocksStore;
use rand::Rng as _;
use serde::Serialize;

use crate::machine::free_disk_gib;

/// Proofs produced and verified at each size.
const PROOFS: usize = 200;

/// Produce and verify times of one kind of proof, µs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProofTimes {
    /// Median time to produce (the catalog's handler, reads from RocksDB).
    pub produce_p50_us: f64,
    /// 99th percentile to produce.
    pub produce_p99_us: f64,
    /// Median time to verify (what an auditor's client does).
    pub verify_p50_us: f64,
    /// 99th percentile to verify.
    pub verify_p99_us: f64,
    /// Median produce + verify.
    pub total_p50_us: f64,
}

/// The log at one size.
#[derive(Clone, Debug, Serialize)]
pub struct LogPoint {
    /// Entries in the tree.
    pub size: u64,
    /// Appends per second while growing to this size, in batches of [`MAX_BATCH`].
    pub appends_per_sec: f64,
    /// Inclusion proofs of random entries in the tree of this size.
    pub inclusion: ProofTimes,
    /// Consistency proofs from random earlier sizes to this one.
    pub consistency: ProofTimes,
    /// The store's size on disk, MiB.
    pub disk_mib: f64,
}

/// What the section gave: each size reached, and the sizes skipped for want of disk.
#[derive(Clone, Debug, Serialize)]
pub struct CentralLog {
    /// Each size reached.
    pub points: Vec<LogPoint>,
    /// Sizes not reached, with why.
    pub skipped: Vec<String>,
}

fn event(sequence: u64, now_ms: i64) -> AccessEvent {
    let digest = exchange_core::digest::sha256_hex(&sequence.to_be_bytes());
    AccessEvent {
        recorder: PSB.into(),
        sequence,
        time_unix_ms: now_ms,
        kind: EventKind::Query as i32,
        requester: HCB.into(),
        provider: PSB.into(),
        dataset: POPULATION.into(),
        action: "get_record".into(),
        outcome: Outcome::Served as i32,
        purpose_code: RENTAL.into(),
        reason: "rental filing: check the tenant's identity".into(),
        subject_digest: digest,
        fields: vec!["name".into()],
        answer_digest: vec![7; 32],
        ..Default::default()
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Runs `one` [`PROOFS`] times; each run returns when it started, when the proof was
/// produced and when it was verified.
fn proof_times(mut one: impl FnMut() -> anyhow::Result<[Instant; 3]>) -> anyhow::Result<ProofTimes> {
    let (mut produce, mut verify, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PROOFS {
        let [t0, t1, t2] = one()?;
        produce.push((t1 - t0).as_secs_f64() * 1e6);
        verify.push((t2 - t1).as_secs_f64() * 1e6);
        total.push((t2 - t0).as_secs_f64() * 1e6);
    }
    for v in [&mut produce, &mut verify, &mut total] {
        v.sort_by(f64::total_cmp);
    }
    Ok(ProofTimes {
        produce_p50_us: quantile(&produce, 0.5),
        produce_p99_us: quantile(&produce, 0.99),
        verify_p50_us: quantile(&verify, 0.5),
        verify_p99_us: quantile(&verify, 0.99),
        total_p50_us: quantile(&total, 0.5),
    })
}

fn hashes(path: &[Vec<u8>]) -> anyhow::Result<Vec<Hash>> {
    path.iter().map(|h| Hash::from_slice(h).map_err(|e| anyhow::anyhow!("proof hash: {e}"))).collect()
}

fn dir_size_mib(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

/// The certificate fingerprint the in-process node is registered and authenticated with.
const NODE_FINGERPRINT: [u8; 32] = [7; 32];

/// Grows a central log in `dir` to each of `sizes` (ascending) and measures it there. Blocking:
/// run it off the async workers.
pub fn central_log(dir: &Path, sizes: &[u64]) -> anyhow::Result<CentralLog> {
    let store = RocksStore::open(dir, TABLES).context("open the central log's store")?;
    let db = Db::new(Arc::new(store));
    let settings = Settings { catalog_id: CATALOG_ID.into(), log_origin: LOG_ORIGIN.into(), token_lifetime_secs: 300 };
    let mut rng = rand::rng();
    let keys = exchange_catalog::keys::CatalogKeys::random();
    let catalog = Catalog::open(db.clone(), settings, keys, rng.random()).map_err(|e| anyhow::anyhow!("{e}"))?;
    catalog
        .bootstrap_member(Member {
            dept_id: PSB.into(),
            name: "public security".into(),
            roles: vec![Role::Department as i32],
            // In-process, no TLS: the fingerprint of the identity authenticated below.
            cert_fingerprints: vec![NODE_FINGERPRINT.to_vec()],
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("register the node: {e}"))?;
    let caller = catalog
        .authenticate(&PeerIdentity { dept_id: PSB.into(), fingerprint: NODE_FINGERPRINT, not_after_unix: i64::MAX })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Roots at earlier sizes, as an auditor holds them from earlier checkpoints.
    let roots = AccessLog::open(&db, LOG_ORIGIN).map_err(|e| anyhow::anyhow!("{e}"))?;
    let err = |e: exchange_catalog::error::CatalogError| anyhow::anyhow!("{e}");

    let mut out = CentralLog { points: Vec::new(), skipped: Vec::new() };
    let mut next_sequence = 1u64;
    let mut size = catalog.tree_head().map_err(err)?.0;
    for &target in sizes {
        if let Some(last) = out.points.last() {
            let per_entry_mib = last.disk_mib / last.size.max(1) as f64;
            let needed_gib = per_entry_mib * (target - last.size) as f64 / 1024.0;
            if let Some(free) = free_disk_gib(dir)
                && needed_gib * 2.0 > free
            {
                out.skipped.push(format!("{target}: needs about {needed_gib:.1} GiB, {free:.1} GiB free"));
                continue;
            }
        }
        eprintln!("exchange-bench: central log, growing to {target} entries");
        let grown_from = size;
        let started = Instant::now();
        while size < target {
            let n = (target - size).min(MAX_BATCH as u64);
            let now_ms = exchange_catalog::service::now_ms();
            let events = (next_sequence..next_sequence + n).map(|s| event(s, now_ms)).collect();
            let answer = catalog.append_access_log(&caller, AppendAccessLogRequest { events }).map_err(err)?;
            anyhow::ensure!(answer.appended as u64 == n, "the log appended {} of {n}", answer.appended);
            next_sequence += n;
            size = answer.tree_size;
        }
        let appends_per_sec = (size - grown_from) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let (head_size, root, _, _) = catalog.tree_head().map_err(err)?;
        let root = Hash::from_slice(&root).map_err(|e| anyhow::anyhow!("{e}"))?;
        let inclusion = proof_times(|| {
            let index = rng.random_range(0..head_size);
            let t0 = Instant::now();
            let proof = catalog.inclusion_proof(&caller, index, head_size).map_err(err)?;
            let t1 = Instant::now();
            let leaf = proof.entry.as_ref().map(|e| e.leaf.as_slice()).context("the proof carries no entry")?;
            verify_inclusion(leaf_hash(leaf), index, head_size, &hashes(&proof.path)?, root)
                .map_err(|e| anyhow::anyhow!("inclusion proof of {index} in {head_size}: {e}"))?;
            Ok([t0, t1, Instant::now()])
        })?;
        let consistency = proof_times(|| {
            let old = rng.random_range(1..head_size.max(2));
            let old_root = roots.root(&db, old).map_err(err)?;
            let t0 = Instant::now();
            let proof = catalog.consistency_proof(old, head_size, &[]).map_err(err)?;
            let t1 = Instant::now();
            verify_consistency(old, head_size, &hashes(&proof.path)?, old_root, root)
                .map_err(|e| anyhow::anyhow!("consistency proof {old} → {head_size}: {e}"))?;
            Ok([t0, t1, Instant::now()])
        })?;
        out.points.push(LogPoint {
            size: head_size,
            appends_per_sec,
            inclusion,
            consistency,
            disk_mib: dir_size_mib(dir),
        });
    }
    Ok(out)
}
