//! The node's errors and the one place where they become gRPC statuses (and batch item
//! statuses and access-log reason codes).
//!
//! Consent-token failures are all PERMISSION_DENIED: the caller is authenticated by its mTLS
//! certificate, and a token is a permission it presents, not its identity; the reason code
//! says precisely which check failed (CONSENT_TOKEN_INVALID for malformed, unsigned, badly
//! signed or unknown-key tokens, CONSENT_TOKEN_REFUSED for refused algorithms and oversized
//! tokens, and one code per binding check).

use exchange_core::policy::PolicyError;
use exchange_core::token::TokenError;
use exchange_proto::refusal;
use exchange_proto::v1::{ItemStatus, ReasonCode, Refusal};
use tonic::Code;

/// Why a node call failed. Messages tell the caller what to fix and hold no personal data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// No usable client certificate.
    #[error("{0}")]
    Unauthenticated(String),
    /// The certificate names a department that is not a member (or not with this certificate).
    #[error("{0}")]
    UnknownMember(String),
    /// Known caller, not allowed; the reason code says why.
    #[error("{message}")]
    Denied {
        /// Reason code.
        reason: ReasonCode,
        /// What is wrong.
        message: String,
    },
    /// A request field is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
        /// Reason code.
        reason: ReasonCode,
    },
    /// No such record or licence.
    #[error("{0}")]
    NotFound(String),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The grant's rate limit is exhausted.
    #[error("rate limit of grant {grant} exhausted: retry after {retry_after_ms} ms")]
    RateLimited {
        /// Grant id.
        grant: String,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// The operation does not apply in the current state.
    #[error("{message}")]
    Precondition {
        /// Reason code.
        reason: ReasonCode,
        /// What is wrong.
        message: String,
    },
    /// A retry later can succeed (stale configuration, access log unwritable).
    #[error("{message}")]
    Unavailable {
        /// Reason code.
        reason: ReasonCode,
        /// What is wrong.
        message: String,
    },
    /// An internal failure; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// A malformed identifier on `field`.
    pub fn bad_ident(field: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Self::Invalid { field: field.into(), message: err.to_string(), reason: ReasonCode::MalformedIdentifier }
    }

    /// A malformed request field.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into(), reason: ReasonCode::MalformedRequest }
    }

    /// A refusal with a reason code.
    pub fn denied(reason: ReasonCode, message: impl Into<String>) -> Self {
        Self::Denied { reason, message: message.into() }
    }

    /// The gRPC code, reason code and field of this error.
    pub fn parts(&self) -> (Code, ReasonCode, &str) {
        match self {
            Self::Unauthenticated(_) => (Code::Unauthenticated, ReasonCode::Unauthenticated, ""),
            Self::UnknownMember(_) => (Code::Unauthenticated, ReasonCode::UnknownMember, ""),
            Self::Denied { reason, .. } => (Code::PermissionDenied, *reason, ""),
            Self::Invalid { field, reason, .. } => (Code::InvalidArgument, *reason, field.as_str()),
            Self::NotFound(_) => (Code::NotFound, ReasonCode::NotFound, ""),
            Self::AlreadyExists(_) => (Code::AlreadyExists, ReasonCode::AlreadyExists, ""),
            Self::RateLimited { .. } => (Code::ResourceExhausted, ReasonCode::RateLimited, ""),
            Self::Precondition { reason, .. } => (Code::FailedPrecondition, *reason, ""),
            Self::Unavailable { reason, .. } => (Code::Unavailable, *reason, ""),
            Self::Internal(_) => (Code::Internal, ReasonCode::Internal, ""),
        }
    }

    /// The reason code.
    pub fn reason(&self) -> ReasonCode {
        self.parts().1
    }

    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error in the node; the operator can find the cause in its log".to_string(),
            other => other.to_string(),
        }
    }

    /// The gRPC status, with the machine-readable refusal in its details.
    pub fn to_status(&self) -> tonic::Status {
        let (code, reason, field) = self.parts();
        let retry_after_ms = match self {
            Self::RateLimited { retry_after_ms, .. } => *retry_after_ms,
            _ => 0,
        };
        let refusal = Refusal { reason_code: reason as i32, field: field.to_string(), retry_after_ms };
        refusal::status(code, self.public_message(), refusal)
    }

    /// The status of one batch item.
    pub fn to_item_status(&self) -> ItemStatus {
        let (code, reason, _) = self.parts();
        ItemStatus { code: code as i32, message: self.public_message(), reason_code: reason as i32 }
    }
}

impl From<PolicyError> for NodeError {
    fn from(err: PolicyError) -> Self {
        let reason = match &err {
            PolicyError::NoGrant { .. } => ReasonCode::NoGrant,
            PolicyError::GrantExpired { .. } => ReasonCode::GrantExpired,
            PolicyError::PurposeNotGranted { .. } => ReasonCode::PurposeNotGranted,
            PolicyError::FieldNotInSchema { .. } => {
                return Self::Invalid {
                    field: "fields".into(),
                    message: err.to_string(),
                    reason: ReasonCode::FieldNotInSchema,
                };
            }
            PolicyError::FieldNotGranted { .. } => ReasonCode::FieldNotGranted,
            PolicyError::ConsentRequired { .. } => ReasonCode::ConsentRequired,
            PolicyError::FieldNotConsented { .. } => ReasonCode::FieldNotConsented,
        };
        Self::denied(reason, err.to_string())
    }
}

impl From<TokenError> for NodeError {
    fn from(err: TokenError) -> Self {
        let reason = match &err {
            TokenError::TooLarge { .. } | TokenError::AlgorithmRefused(_) | TokenError::CriticalHeader => {
                ReasonCode::ConsentTokenRefused
            }
            TokenError::Malformed(_)
            | TokenError::UnknownKey(_)
            | TokenError::BadSignature
            | TokenError::BadClaim(_)
            | TokenError::WrongIssuer { .. }
            | TokenError::IssuedInFuture { .. }
            | TokenError::LifetimeTooLong { .. } => ReasonCode::ConsentTokenInvalid,
            TokenError::Expired { .. } => ReasonCode::ConsentTokenExpired,
            TokenError::NotYetValid { .. } => ReasonCode::ConsentTokenNotYetValid,
            TokenError::WrongAudience { .. } => ReasonCode::ConsentWrongAudience,
            TokenError::WrongRequester { .. } => ReasonCode::ConsentWrongRequester,
            TokenError::WrongSubject => ReasonCode::ConsentWrongSubject,
            TokenError::WrongDataset { .. } => ReasonCode::ConsentWrongDataset,
            TokenError::WrongPurpose { .. } => ReasonCode::ConsentWrongPurpose,
            TokenError::Revoked(_) => ReasonCode::ConsentRevoked,
        };
        Self::denied(reason, err.to_string())
    }
}

impl From<exchange_store::StoreError> for NodeError {
    fn from(err: exchange_store::StoreError) -> Self {
        Self::Internal(format!("storage: {err}"))
    }
}

impl From<prost::DecodeError> for NodeError {
    fn from(err: prost::DecodeError) -> Self {
        Self::Internal(format!("stored message does not decode: {err}"))
    }
}

impl From<serde_json::Error> for NodeError {
    fn from(err: serde_json::Error) -> Self {
        Self::Internal(format!("stored value does not decode: {err}"))
    }
}

/// Result of node operations.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;
