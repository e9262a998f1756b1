//! The storage of the catalog and of the exchange nodes: an ordered key-value store over named
//! tables, with atomic batches across tables, behind the [`KvStore`] trait.
//!
//! - [`RocksStore`]: embedded RocksDB, one column family per table (the production store);
//! - [`MemoryStore`]: ordered maps in memory, for the services' unit tests;
//! - [`FailingStore`]: a wrapper that fails on demand, for testing fail-closed behaviour;
//! - [`conformance`]: the checks every implementation must pass, which define the contract;
//! - [`keys`]: building ordered composite keys;
//! - [`blocking`] and [`AsyncStore`]: calling the (blocking) store from async code, off the
//!   async workers and inside the caller's span.
//!
//! **Architecture invariant:** no RocksDB type appears in the public API outside
//! [`RocksStore`]'s constructor, and the services depend on [`KvStore`] only. A deployment
//! that outgrows one machine moves onto a distributed ordered store (TiKV, FoundationDB) by
//! implementing [`KvStore`] on it and passing [`conformance::run_all`], without touching the
//! services. So the contract holds nothing such a store could not give: ordered byte keys,
//! atomic multi-table batches, bounded scans in both directions, no empty key.

pub mod conformance;
mod error;
mod failing;
pub mod keys;
mod kv;
mod memory;
mod rocks;
mod runtime;

pub use error::{BoxError, StoreError};
pub use failing::{FailingStore, Faults};
pub use kv::{Durability, KeyValue, KvStore, ScanRange, WriteBatch, WriteOp};
pub use memory::MemoryStore;
pub use rocks::{RocksConfig, RocksStore};
pub use runtime::{AsyncStore, blocking};
