//! The exchange node of a department: it holds the department's e-licences and base
//! records, serves authorized queries over mutual TLS, writes every answer and refusal to a
//! fail-closed local access log before it leaves, signs every answer, and ships the log to
//! the catalog.
//!
//! The crate is cut as the architecture asks: [`query`] is the one pipeline every query
//! form runs (no tonic), [`service`] the node's state and shared steps, [`data`] the
//! provider-side changes, [`authorize`] the gate every call and every query item passes, [`grpc`] the thin adapter, [`db`] the tables over the `exchange-store` trait,
//! [`accesslog`] the group-committing log writer, [`matchlimit`] the bound on match tries, [`metrics`] what the metrics listener shows, [`fedconfig`] the verified federation
//! configuration, [`shipper`] the log shipper, [`config`] the two-stage configuration and
//! [`server`] the daemon.

pub mod accesslog;
pub mod authorize;
pub mod backup;
pub mod config;
pub mod data;
pub mod db;
pub mod error;
pub mod fedconfig;
pub mod grpc;
pub mod health;
pub mod matchlimit;
pub mod metrics;
pub mod query;
pub mod server;
pub mod service;
pub mod shipper;
