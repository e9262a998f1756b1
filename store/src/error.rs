//! The one error type of the storage layer.

use std::path::PathBuf;

/// A boxed error from a storage engine, kept as the `source` of [`StoreError::Backend`] so that
/// no engine type appears in the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage call failed.
///
/// The variants are few on purpose, so that the one place in a service that maps errors to
/// gRPC codes can match them exhaustively: [`UnknownTable`](Self::UnknownTable) and
/// [`EmptyKey`](Self::EmptyKey) are bugs in the caller, every other variant means the store is
/// unavailable (and a query that needed it must be refused).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The table (a RocksDB column family) was not declared when the store was opened.
    #[error("unknown table `{0}`")]
    UnknownTable(String),

    /// A write used the empty key, which no implementation stores (TiKV refuses it, so the
    /// contract refuses it everywhere). Nothing of the batch was written.
    #[error("empty key written to table `{table}`")]
    EmptyKey {
        /// The table the empty key was written to.
        table: String,
    },

    /// The store directory is locked by another process (or by another handle in this one):
    /// RocksDB allows one writer per directory.
    #[error("store directory {} is in use by another process (or already open in this one)", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// The engine's own report.
        #[source]
        source: BoxError,
    },

    /// The engine failed an operation (I/O error, corruption, out of space, ...).
    #[error("{operation} in {location}")]
    Backend {
        /// What was being done, as a verb phrase: "read table `licences`".
        operation: String,
        /// Which store: its directory, or "memory store".
        location: String,
        /// The engine's own report.
        #[source]
        source: BoxError,
    },

    /// A failure injected by [`FailingStore`](crate::FailingStore) (test support only).
    #[error("{operation}: injected failure")]
    Injected {
        /// The operation that was made to fail.
        operation: String,
    },

    /// The blocking task that ran the storage call panicked or was cancelled.
    #[error("storage task did not complete")]
    Task(#[source] tokio::task::JoinError),
}
