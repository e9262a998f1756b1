//! The catalog's errors and the one place where they become gRPC statuses.

use exchange_proto::refusal;
use exchange_proto::v1::{ReasonCode, Refusal};
use tonic::Code;

/// Why a catalog call failed. Each variant maps to exactly one gRPC code and reason code in
/// [`CatalogError::to_status`]; messages tell the caller what to fix and hold no personal data.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No usable client certificate.
    #[error("{0}")]
    Unauthenticated(String),
    /// The certificate names a department that is not a member.
    #[error("department {0} is not a member of the federation: ask the operator to register it")]
    UnknownMember(String),
    /// The certificate is not one of those registered for the member.
    #[error("this certificate is not registered for {0}: ask the operator to add its fingerprint")]
    CertificateNotRegistered(String),
    /// The member is suspended.
    #[error("member {0} is suspended")]
    Suspended(String),
    /// The caller lacks a role.
    #[error("this call needs the {needed} role, which {caller} does not hold")]
    RoleRequired {
        /// The role needed.
        needed: &'static str,
        /// The caller.
        caller: String,
    },
    /// Known caller, not allowed for this object.
    #[error("{0}")]
    Forbidden(String),
    /// A node appended an entry that is not its own to write (another recorder or provider,
    /// another department's dataset, or a kind only the catalog writes).
    #[error("{0}")]
    ForeignEntry(String),
    /// A request field is malformed.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
        /// The reason code (MALFORMED_IDENTIFIER or MALFORMED_REQUEST or a more precise one).
        reason: ReasonCode,
    },
    /// An object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The operation does not apply in the current state.
    #[error("{message}")]
    FailedPrecondition {
        /// What is wrong.
        message: String,
        /// The reason code.
        reason: ReasonCode,
    },
    /// Storage or another internal failure; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CatalogError {
    /// A malformed-identifier error on `field`.
    pub fn bad_ident(field: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::InvalidArgument { field: field.into(), message: err.to_string(), reason: ReasonCode::MalformedIdentifier }
    }

    /// A malformed-request error on `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into(), reason: ReasonCode::MalformedRequest }
    }

    /// A valid resident id or credit code found in the free text of `field`, which would
    /// reach the central log in clear. The message names the field and the kind of
    /// identifier, never the identifier itself.
    pub fn identifier_in_clear(
        field: impl Into<String>,
        found: exchange_core::ident::FoundIdentifier,
        at: usize,
    ) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: format!(
                "holds {} in clear (from character {at}), and this text would reach the central access log, where subject ids \
                 never appear in clear: send an opaque trace id and a reason without identifiers",
                found.describe()
            ),
            reason: ReasonCode::IdentifierInClear,
        }
    }

    /// A failed precondition with a reason code.
    pub fn precondition(reason: ReasonCode, message: impl Into<String>) -> Self {
        Self::FailedPrecondition { message: message.into(), reason }
    }

    /// The gRPC status for this error, with the machine-readable refusal in its details.
    /// Internal failures answer a fixed message: the cause stays in the server's log.
    pub fn to_status(&self) -> tonic::Status {
        let (code, reason, field) = match self {
            Self::Unauthenticated(_) => (Code::Unauthenticated, ReasonCode::Unauthenticated, ""),
            Self::UnknownMember(_) => (Code::Unauthenticated, ReasonCode::UnknownMember, ""),
            Self::CertificateNotRegistered(_) => (Code::Unauthenticated, ReasonCode::Unauthenticated, ""),
            Self::Suspended(_) => (Code::PermissionDenied, ReasonCode::MemberSuspended, ""),
            Self::RoleRequired { .. } => (Code::PermissionDenied, ReasonCode::RoleRequired, ""),
            Self::Forbidden(_) => (Code::PermissionDenied, ReasonCode::RoleRequired, ""),
            Self::ForeignEntry(_) => (Code::PermissionDenied, ReasonCode::ForeignEntry, ""),
            Self::InvalidArgument { field, reason, .. } => (Code::InvalidArgument, *reason, field.as_str()),
            Self::NotFound(_) => (Code::NotFound, ReasonCode::NotFound, ""),
            Self::AlreadyExists(_) => (Code::AlreadyExists, ReasonCode::AlreadyExists, ""),
            Self::FailedPrecondition { reason, .. } => (Code::FailedPrecondition, *reason, ""),
            Self::Internal(_) => (Code::Internal, ReasonCode::Internal, ""),
        };
        let message = match self {
            Self::Internal(_) => {
                "internal error in the catalog; the operator can find the cause in its log".to_string()
            }
            other => other.to_string(),
        };
        let refusal = Refusal { reason_code: reason as i32, field: field.to_string(), retry_after_ms: 0 };
        refusal::status(code, message, refusal)
    }
}

impl From<exchange_store::StoreError> for CatalogError {
    fn from(err: exchange_store::StoreError) -> Self {
        Self::Internal(format!("storage: {err}"))
    }
}

impl From<prost::DecodeError> for CatalogError {
    fn from(err: prost::DecodeError) -> Self {
        Self::Internal(format!("stored record does not decode: {err}"))
    }
}

/// Result of catalog operations.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
