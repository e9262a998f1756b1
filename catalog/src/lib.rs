//! The central catalog of the Exchange federation: members, standard schemas, the dataset
//! catalog, grants, consent and consent tokens, the signed federation configuration that
//! nodes watch, and the central access log (an RFC 9162 Merkle tree with signed checkpoints).
//!
//! The crate is cut as the architecture asks: [`service`] holds the handlers (plain methods,
//! no tonic), [`grpc`] the thin adapter, [`db`] and [`log`] the storage over the
//! `exchange-store` trait, [`config`] the two-stage configuration, [`keys`] the signing keys
//! (one per purpose) and [`keyring`] their directory and rotation steps, [`server`] the daemon,
//! [`metrics`] what its metrics listener shows.
//! The central log's rules sit in their own modules: [`visibility`] (who reads which entry),
//! [`append`] (what a node may append) and [`screen`] (no subject id in clear in its text).

pub mod append;
pub mod backup;
pub mod config;
pub mod db;
pub mod error;
pub mod grpc;
pub mod keyring;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod screen;
pub mod server;
pub mod service;
pub mod visibility;
