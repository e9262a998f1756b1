//! Calling the blocking store from async code: [`blocking`] and [`AsyncStore`].

use std::fmt;
use std::sync::Arc;

use crate::{Durability, KeyValue, KvStore, ScanRange, StoreError, WriteBatch};

/// Runs the storage call `f` on tokio's blocking pool, inside the caller's current
/// [`tracing::Span`], so that the async workers never wait for the disk and the call's events
/// stay in the request's trace.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn exchange_store::KvStore>) -> Result<(), exchange_store::StoreError> {
/// let licence = exchange_store::blocking(move || store.get("licences", b"L-1")).await?;
/// # Ok(()) }
/// ```
///
/// A panic or a cancellation of the task is [`StoreError::Task`].
pub async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await.map_err(StoreError::Task)?
}

/// A shared [`KvStore`] with async methods, each run through [`blocking`].
///
/// Cheap to clone. Table names are `&'static str` because services name their tables with
/// constants.
#[derive(Clone)]
pub struct AsyncStore {
    store: Arc<dyn KvStore>,
}

impl AsyncStore {
    /// Wraps a shared store.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        Self { store }
    }

    /// The wrapped store, for calls already on a blocking thread.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    /// [`KvStore::get`] off the async workers.
    pub async fn get(&self, table: &'static str, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.get(table, &key)).await
    }

    /// [`KvStore::multi_get`] off the async workers.
    pub async fn multi_get(&self, table: &'static str, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.multi_get(table, &keys)).await
    }

    /// [`KvStore::scan`] off the async workers.
    pub async fn scan(&self, table: &'static str, range: ScanRange, limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.scan(table, range, limit)).await
    }

    /// [`KvStore::write`] off the async workers.
    pub async fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.write(batch, durability)).await
    }

    /// [`KvStore::sync_wal`] off the async workers.
    pub async fn sync_wal(&self) -> Result<(), StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.sync_wal()).await
    }

    /// [`KvStore::flush`] off the async workers.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = Arc::clone(&self.store);
        blocking(move || store.flush()).await
    }
}

impl fmt::Debug for AsyncStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStore").finish_non_exhaustive()
    }
}
