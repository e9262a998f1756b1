//! The gRPC contract of Exchange: package `exchange.v1`, generated from `proto/exchange/v1`.
//!
//! Only the gRPC layers of the services and the SDK see these types; each service parses
//! them once on receipt into the domain types of `exchange-core`.

/// Generated messages and services of `exchange.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("exchange.v1");
    // The proto3 JSON mapping (serde) of every message, as the HTTP gateway speaks it.
    include!(concat!(env!("OUT_DIR"), "/exchange.v1.serde.rs"));
}

pub mod canonical;
pub mod keys;
pub mod subject;

/// The encoded `FileDescriptorSet` of the contract, for gRPC reflection
/// (`tonic-reflection`) so that generic clients such as `grpcurl` work.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/exchange_descriptor.bin"));

/// The gRPC status details carried with every refusal: helpers to attach and read the
/// machine-readable [`v1::Refusal`].
pub mod refusal {
    use crate::v1::{ReasonCode, Refusal};
    use prost::Message;

    /// Builds a status whose details hold the encoded [`Refusal`].
    pub fn status(code: tonic::Code, message: impl Into<String>, refusal: Refusal) -> tonic::Status {
        tonic::Status::with_details(code, message, refusal.encode_to_vec().into())
    }

    /// Reads the [`Refusal`] of a status, if it carries one.
    pub fn of(status: &tonic::Status) -> Option<Refusal> {
        if status.details().is_empty() {
            return None;
        }
        Refusal::decode(status.details()).ok()
    }

    /// The reason code of a status, `Unspecified` when it carries none.
    pub fn reason_code(status: &tonic::Status) -> ReasonCode {
        of(status).and_then(|r| ReasonCode::try_from(r.reason_code).ok()).unwrap_or(ReasonCode::Unspecified)
    }
}
