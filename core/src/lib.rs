//! The domain rules of Exchange, written once: the licence calendar, identifiers and their check characters,
//! standard schemas and their compatibility, access policy, consent-token claims, the
//! RFC 9162 Merkle-log math with signed checkpoints, and canonical digests.
//!
//! **Architecture invariant:** this crate does no I/O. It depends on no gRPC, protobuf,
//! storage or async runtime crate, reads no clock and opens no file or socket: callers pass
//! the current time and the bytes in. Every rule here is a pure function that cannot fail
//! for I/O reasons, so it is tested, fuzzed and reused by the catalog, the exchange node and
//! the client SDK alike.

pub mod answer_group;
pub mod calendar;
pub mod checkpoint;
pub mod digest;
pub mod ident;
pub mod merkle;
pub mod policy;
pub mod schema;
pub mod token;
