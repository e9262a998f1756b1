//! The store's integration tests: the conformance suite against every implementation, and
//! what only RocksDB has (files, reopening, locking), and the async helpers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use exchange_store::{
    AsyncStore, Durability, FailingStore, KvStore, MemoryStore, RocksConfig, RocksStore, ScanRange, StoreError,
    WriteBatch, blocking, conformance,
};
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn put(store: &dyn KvStore, table: &str, key: &[u8], value: &[u8], durability: Durability) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    batch.put(table, key, value);
    store.write(batch, durability)
}

#[test]
fn memory_store_conforms() {
    conformance::run_all(|| MemoryStore::new(&conformance::TABLES));
}

#[test]
fn failing_store_without_faults_conforms() {
    conformance::run_all(|| FailingStore::new(MemoryStore::new(&conformance::TABLES)));
}

#[test]
fn shared_store_conforms() {
    conformance::run_all(|| -> Arc<dyn KvStore> { Arc::new(MemoryStore::new(&conformance::TABLES)) });
}

#[test]
fn rocks_store_conforms() -> TestResult {
    let dir = TempDir::new()?;
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        match RocksStore::open(dir.path().join(n.to_string()), &conformance::TABLES) {
            Ok(store) => store,
            Err(e) => panic!("open store {n}: {e:?}"),
        }
    });
    Ok(())
}

#[test]
fn rocks_store_with_small_config_conforms() -> TestResult {
    let dir = TempDir::new()?;
    let config =
        RocksConfig { block_cache_bytes: 1 << 20, memtable_bytes: 1 << 20, max_open_files: 16, background_jobs: 1 };
    let mut n = 0;
    conformance::run_all(|| {
        n += 1;
        match RocksStore::open_with(dir.path().join(n.to_string()), &conformance::TABLES, &config) {
            Ok(store) => store,
            Err(e) => panic!("open store {n}: {e:?}"),
        }
    });
    Ok(())
}

/// What the node's inline reads rely on: a row in a memtable, or in a file whose blocks are
/// cached, is answered without I/O; after a reopen (a cold cache) the first `get_cached` of a
/// flushed row needs the disk, and once `get` has read it, it does not.
#[test]
fn rocks_store_answers_cached_reads_without_io() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("db");
    {
        let store = RocksStore::open(&path, &["a"])?;
        put(&store, "a", b"k", b"v", Durability::Buffered)?;
        assert_eq!(store.get_cached("a", b"k")?, Some(Some(b"v".to_vec())), "a memtable row is answered");
        store.flush()?;
    }
    let store = RocksStore::open(&path, &["a"])?;
    assert_eq!(store.get_cached("a", b"k")?, None, "a cold read needs the disk");
    assert_eq!(store.get("a", b"k")?, Some(b"v".to_vec()));
    assert_eq!(store.get_cached("a", b"k")?, Some(Some(b"v".to_vec())), "the cached block is used");
    Ok(())
}

#[test]
fn rocks_store_keeps_data_across_reopen() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("nested/dirs/db");
    {
        let store = RocksStore::open(&path, &["a", "b"])?;
        assert_eq!(store.path(), path);
        put(&store, "a", b"synced", b"1", Durability::Sync)?;
        put(&store, "b", b"buffered", b"2", Durability::Buffered)?;
        let mut batch = WriteBatch::new();
        batch.put("a", b"flushed".to_vec(), vec![3u8; 100_000]).delete("a", b"synced".to_vec());
        store.write(batch, Durability::Buffered)?;
        store.flush()?;
        put(&store, "a", b"synced", b"4", Durability::Buffered)?;
        store.sync_wal()?;
    }
    let store = RocksStore::open(&path, &["a", "b"])?;
    assert_eq!(store.get("a", b"synced")?, Some(b"4".to_vec()));
    assert_eq!(store.get("b", b"buffered")?, Some(b"2".to_vec()));
    assert_eq!(store.get("a", b"flushed")?, Some(vec![3u8; 100_000]));
    assert_eq!(store.scan("a", ScanRange::all(), 10)?.len(), 2);
    Ok(())
}

#[test]
fn rocks_store_adds_tables_and_keeps_undeclared_ones() -> TestResult {
    let dir = TempDir::new()?;
    {
        let store = RocksStore::open(dir.path(), &["old", "kept"])?;
        put(&store, "old", b"k", b"from the older version", Durability::Sync)?;
        put(&store, "kept", b"k", b"v", Durability::Sync)?;
    }
    {
        // A version that no longer declares "old" still opens the directory, and "old" is
        // not reachable through it.
        let store = RocksStore::open(dir.path(), &["kept", "new"])?;
        assert_eq!(store.get("kept", b"k")?, Some(b"v".to_vec()));
        assert_eq!(store.get("new", b"k")?, None);
        assert!(matches!(store.get("old", b"k"), Err(StoreError::UnknownTable(t)) if t == "old"));
        // RocksDB's own default column family is not a table either.
        assert!(matches!(store.get("default", b"k"), Err(StoreError::UnknownTable(_))));
    }
    let store = RocksStore::open(dir.path(), &["old"])?;
    assert_eq!(store.get("old", b"k")?, Some(b"from the older version".to_vec()));
    Ok(())
}

#[test]
fn rocks_store_refuses_a_second_open_in_this_process() -> TestResult {
    let dir = TempDir::new()?;
    let _first = RocksStore::open(dir.path(), &["t"])?;
    match RocksStore::open(dir.path(), &["t"]) {
        Err(error @ StoreError::Locked { .. }) => {
            assert!(error.to_string().contains("is in use by another process"), "{error}");
            assert!(error.to_string().contains(&dir.path().display().to_string()), "{error}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    Ok(())
}

/// Set in the child process of `rocks_store_refuses_a_directory_locked_by_another_process`.
const HOLD_LOCK_ENV: &str = "EXCHANGE_STORE_TEST_HOLD_LOCK";
const LOCK_HELD: &str = "exchange-store-test: lock held";

/// The child of `rocks_store_refuses_a_directory_locked_by_another_process`: holds the store
/// open until its standard input closes. Does nothing in a normal test run.
#[test]
fn lock_holder_child() -> TestResult {
    let Some(path) = std::env::var_os(HOLD_LOCK_ENV) else { return Ok(()) };
    let _store = RocksStore::open(Path::new(&path), &["t"])?;
    println!("{LOCK_HELD}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(())
}

#[test]
fn rocks_store_refuses_a_directory_locked_by_another_process() -> TestResult {
    let dir = TempDir::new()?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "lock_holder_child", "--nocapture", "--test-threads=1"])
        .env(HOLD_LOCK_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    // Bounded wait: the child either holds the lock and says so, or exits (end of output).
    let mut lines = BufReader::new(stdout).lines();
    let held = lines.by_ref().map_while(Result::ok).any(|line| line.contains(LOCK_HELD));
    let second_open = RocksStore::open(dir.path(), &["t"]);
    drop(child.stdin.take());
    // Read the child's output to its end: its test harness still reports on it.
    lines.for_each(drop);
    let status = child.wait()?;
    assert!(held && status.success(), "the child could not hold the lock ({status})");
    match second_open {
        Err(error @ StoreError::Locked { .. }) => {
            assert!(error.to_string().contains("is in use by another process"), "{error}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    // Once the other process is gone, the directory opens.
    RocksStore::open(dir.path(), &["t"])?;
    Ok(())
}

#[test]
fn rocks_store_open_errors_name_the_path() -> TestResult {
    let dir = TempDir::new()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    match RocksStore::open(&file, &["t"]) {
        Err(error @ StoreError::Backend { .. }) => {
            assert!(error.to_string().contains(&file.display().to_string()), "{error}");
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn blocking_runs_off_the_async_workers_in_the_callers_span() -> TestResult {
    use tracing::Instrument;

    // A subscriber that records spans, so that spans have ids (set for this binary only).
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let span = tracing::info_span!("request", dept = "gov.sz.amr");
    let outer = span.id().ok_or("the span is disabled")?;
    let (inner, thread) = async {
        blocking(|| Ok((tracing::Span::current().id(), std::thread::current().name().map(str::to_owned)))).await
    }
    .instrument(span)
    .await?;
    assert_eq!(inner, Some(outer), "the blocking call runs inside the caller's span");
    assert_ne!(thread.as_deref(), std::thread::current().name(), "runs on another thread");
    Ok(())
}

#[tokio::test]
async fn blocking_turns_a_panic_into_an_error() {
    let result: Result<(), StoreError> = blocking(|| panic!("storage call panicked")).await;
    assert!(matches!(result, Err(StoreError::Task(_))), "{result:?}");
}

#[tokio::test]
async fn async_store_reads_its_writes_and_fails_closed() -> TestResult {
    let dir = TempDir::new()?;
    let failing = FailingStore::new(RocksStore::open(dir.path(), &["log"])?);
    let faults = failing.faults();
    let store = AsyncStore::new(Arc::new(failing));

    let mut batch = WriteBatch::new();
    batch.put("log", b"1".to_vec(), b"entry".to_vec());
    store.write(batch, Durability::Sync).await?;
    assert_eq!(store.get("log", b"1".to_vec()).await?, Some(b"entry".to_vec()));
    assert_eq!(store.multi_get("log", vec![b"1".to_vec(), b"2".to_vec()]).await?, vec![Some(b"entry".to_vec()), None]);
    assert_eq!(store.scan("log", ScanRange::all().reverse(), 1).await?.len(), 1);

    faults.fail_writes(true);
    let mut batch = WriteBatch::new();
    batch.put("log", b"2".to_vec(), b"entry".to_vec());
    assert!(matches!(store.write(batch, Durability::Sync).await, Err(StoreError::Injected { .. })));
    assert!(matches!(store.sync_wal().await, Err(StoreError::Injected { .. })));
    assert_eq!(store.get("log", b"2".to_vec()).await?, None, "a failed write stores nothing");
    faults.fail_writes(false);
    store.flush().await?;
    Ok(())
}

#[test]
fn rocks_store_checkpoint_is_a_consistent_copy() -> TestResult {
    let dir = TempDir::new()?;
    let store = RocksStore::open(dir.path().join("db"), &conformance::TABLES)?;
    conformance::checkpoint_is_a_consistent_copy(&store, &dir.path().join("copy"), |path| {
        match RocksStore::open(path, &conformance::TABLES) {
            Ok(store) => store,
            Err(e) => panic!("open the checkpoint: {e:?}"),
        }
    });
    Ok(())
}

#[test]
fn memory_store_refuses_a_checkpoint_and_says_why() {
    let store = MemoryStore::new(&conformance::TABLES);
    let dir = std::env::temp_dir().join("exchange-no-memory-checkpoint");
    let err = store
        .checkpoint(&dir)
        .err()
        .map(|e| format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()));
    assert!(err.as_deref().is_some_and(|e| e.contains("only a store on disk makes checkpoints")), "{err:?}");
    assert!(!dir.exists());
}
