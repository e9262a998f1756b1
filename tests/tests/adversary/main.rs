//! Attacks on a real federation (a catalog and three nodes as processes, mTLS, RocksDB) by a
//! member with a valid certificate and by a stranger without one. Each test states the
//! property it attacks, asserts the exact gRPC status and reason, that no data came back, and
//! what the access logs hold afterwards.
//!
//! - `node`: the node answers exactly what grant and consent allow.
//! - `catalog`: each member sees and writes only what is its own in the central log.
//! - `tokens`: consent tokens that say more than the catalog issues, signed with its own key.

mod catalog;
mod node;
mod tokens;
