//! The SDK's one error type, and the one place where gRPC statuses become errors.

use std::error::Error as StdError;
use std::time::Duration;

use exchange_proto::refusal;
use exchange_proto::v1::{ItemStatus, ReasonCode};
use tonic::Code;

/// Why an SDK call failed.
///
/// The variants say what went wrong and what a calling system should do about it:
/// [`Error::Refused`] is a decision of the federation (route the case to a person, or fix the
/// request), [`Error::Unavailable`] may succeed later, [`Error::BadSignature`] and
/// [`Error::Proof`] mean the data cannot be trusted and must never be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog or a node refused the call, with the machine-readable reason.
    #[error("refused ({}, {}): {message}{}", code_name(*code), reason_name(*reason), field_suffix(field))]
    Refused {
        /// The gRPC status code (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...).
        code: Code,
        /// The reason code from the status details (`Unspecified` when none was sent).
        reason: ReasonCode,
        /// The server's message: what to fix.
        message: String,
        /// The request field the refusal is about, empty if none.
        field: String,
        /// For RATE_LIMITED: when a retry can succeed.
        retry_after: Option<Duration>,
    },
    /// The service could not be reached or did not answer in time; a retry may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The service failed internally (INTERNAL, DATA_LOSS, UNIMPLEMENTED, ...).
    #[error("server error ({}): {message}", code_name(*code))]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// An answer's signature (or the federation configuration's) does not verify: the data
    /// was altered or comes from someone else. Never use it.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// A Merkle proof or the access log does not verify against a signed tree head.
    #[error("proof does not verify: {0}")]
    Proof(String),
    /// The federation configuration does not say what is needed (unknown node, no endpoint).
    #[error("federation configuration: {0}")]
    Config(String),
    /// The connection failed for another reason than TLS.
    #[error("transport: {0}")]
    Transport(String),
    /// Mutual TLS failed: the peer refused our certificate (unknown CA, expired), or we
    /// refused its certificate.
    #[error("tls: {0}")]
    Tls(String),
    /// A request could not be built from the input (the message says which input).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result of SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The gRPC status code's name as the wire spells it, e.g. `PERMISSION_DENIED`.
pub fn code_name(code: Code) -> String {
    format!("{code:?}").chars().fold(String::new(), |mut out, c| {
        if c.is_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
        out
    })
}

/// The reason code's short name, e.g. `NO_GRANT`.
pub fn reason_name(reason: ReasonCode) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("REASON_CODE_").unwrap_or(name)
}

fn field_suffix(field: &str) -> String {
    if field.is_empty() { String::new() } else { format!(" [field {field}]") }
}

impl Error {
    /// Whether a retry of the same call may succeed: [`Error::Unavailable`], and refusals
    /// with status UNAVAILABLE (the node's configuration is stale while the catalog is away,
    /// or its access log cannot be written), which say why in their reason.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Refused { code: Code::Unavailable, .. })
    }

    /// The reason code of a refusal, if this is one.
    pub fn reason(&self) -> Option<ReasonCode> {
        match self {
            Error::Refused { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Maps a batch item's status (code not OK) to an error.
    pub fn from_item_status(status: &ItemStatus) -> Self {
        let code = Code::from_i32(status.code);
        let reason = ReasonCode::try_from(status.reason_code).unwrap_or(ReasonCode::Unspecified);
        Self::from_parts(code, reason, status.message.clone(), String::new(), None)
    }

    fn from_parts(
        code: Code,
        reason: ReasonCode,
        message: String,
        field: String,
        retry_after: Option<Duration>,
    ) -> Self {
        match code {
            Code::Unauthenticated
            | Code::PermissionDenied
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Aborted => Error::Refused { code, reason, message, field, retry_after },
            // A service that is up but refuses to answer for now says why (CONFIG_STALE,
            // ACCESS_LOG_UNAVAILABLE): keep the reason, callers route on it.
            Code::Unavailable if reason != ReasonCode::Unspecified => {
                Error::Refused { code, reason, message, field, retry_after }
            }
            Code::Unavailable | Code::DeadlineExceeded => Error::Unavailable(format!("{}: {message}", code_name(code))),
            Code::Ok | Code::Cancelled | Code::Unknown | Code::Internal | Code::Unimplemented | Code::DataLoss => {
                Error::Server { code, message }
            }
        }
    }
}

/// Every message in the source chain of an error, outermost first.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && out.last() != Some(&text) {
            out.push(text);
        }
        next = e.source();
    }
    out
}

/// Whether a message of the chain names a TLS failure.
fn is_tls(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["alert", "certificate", "handshake", "tls", "unknownca", "unknownissuer"].iter().any(|w| t.contains(w))
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let causes = chain(&status);
        // A failure below gRPC (connect, TLS) arrives as UNKNOWN "transport error" or as
        // UNAVAILABLE, with the real reason deep in the source chain: dig it out.
        if !causes.is_empty() && matches!(status.code(), Code::Unknown | Code::Unavailable | Code::Cancelled) {
            let detail = format!("{}: {}", status.message(), causes.join(": "));
            if causes.iter().any(|c| is_tls(c)) {
                return Error::Tls(detail);
            }
            if status.code() == Code::Unavailable || causes.iter().any(|c| c.contains("connect")) {
                return Error::Unavailable(detail);
            }
            return Error::Transport(detail);
        }
        let details = refusal::of(&status);
        let reason =
            details.as_ref().and_then(|r| ReasonCode::try_from(r.reason_code).ok()).unwrap_or(ReasonCode::Unspecified);
        let field = details.as_ref().map(|r| r.field.clone()).unwrap_or_default();
        let retry_after =
            details.as_ref().filter(|r| r.retry_after_ms > 0).map(|r| Duration::from_millis(r.retry_after_ms));
        Self::from_parts(status.code(), reason, status.message().to_owned(), field, retry_after)
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        let mut causes = vec![error.to_string()];
        causes.extend(chain(&error));
        let detail = causes.join(": ");
        if causes.iter().any(|c| is_tls(c)) { Error::Tls(detail) } else { Error::Transport(detail) }
    }
}

impl From<exchange_pki::PkiError> for Error {
    fn from(error: exchange_pki::PkiError) -> Self {
        Error::Tls(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use exchange_proto::v1::Refusal;

    use super::*;

    fn status(code: Code, reason: ReasonCode, field: &str, retry_after_ms: u64) -> tonic::Status {
        refusal::status(
            code,
            "what to fix",
            Refusal { reason_code: reason as i32, field: field.into(), retry_after_ms },
        )
    }

    fn check(status: tonic::Status, expected: &str) {
        let error = Error::from(status);
        assert_eq!(format!("{error:?}").split(['{', '(']).next().map(str::trim), Some(expected), "{error:?}");
    }

    #[test]
    fn statuses_map_to_variants() {
        check(status(Code::Unauthenticated, ReasonCode::UnknownMember, "", 0), "Refused");
        check(status(Code::PermissionDenied, ReasonCode::NoGrant, "", 0), "Refused");
        check(status(Code::InvalidArgument, ReasonCode::MalformedIdentifier, "subject.id", 0), "Refused");
        check(status(Code::NotFound, ReasonCode::NotFound, "", 0), "Refused");
        check(status(Code::FailedPrecondition, ReasonCode::ConfigStale, "", 0), "Refused");
        check(status(Code::ResourceExhausted, ReasonCode::RateLimited, "", 1500), "Refused");
        check(tonic::Status::unavailable("catalog away"), "Unavailable");
        check(tonic::Status::deadline_exceeded("slow"), "Unavailable");
        check(tonic::Status::internal("boom"), "Server");
        check(tonic::Status::unimplemented("no"), "Server");
    }

    #[test]
    fn refusal_details_are_read() {
        let error = Error::from(status(Code::ResourceExhausted, ReasonCode::RateLimited, "grant", 1500));
        match error {
            Error::Refused { code, reason, message, field, retry_after } => {
                assert_eq!(code, Code::ResourceExhausted);
                assert_eq!(reason, ReasonCode::RateLimited);
                assert_eq!(message, "what to fix");
                assert_eq!(field, "grant");
                assert_eq!(retry_after, Some(Duration::from_millis(1500)));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let error = Error::from(tonic::Status::permission_denied("no details"));
        assert_eq!(error.reason(), Some(ReasonCode::Unspecified));
    }

    #[test]
    fn refusal_display_names_code_reason_and_field() {
        let error = Error::from(status(Code::InvalidArgument, ReasonCode::FieldNotGranted, "fields[1]", 0));
        assert_eq!(error.to_string(), "refused (INVALID_ARGUMENT, FIELD_NOT_GRANTED): what to fix [field fields[1]]");
        assert!(!error.is_retryable());
        assert!(Error::Unavailable("x".into()).is_retryable());
    }

    #[test]
    fn an_unavailable_refusal_keeps_its_reason_and_may_be_retried() {
        let error = Error::from(status(Code::Unavailable, ReasonCode::ConfigStale, "", 0));
        assert_eq!(error.reason(), Some(ReasonCode::ConfigStale));
        assert!(error.is_retryable());
        let plain = Error::from(tonic::Status::unavailable("overloaded"));
        assert!(matches!(plain, Error::Unavailable(_)), "{plain:?}");
    }

    #[test]
    fn item_statuses_map_like_statuses() {
        let item = ItemStatus {
            code: Code::PermissionDenied as i32,
            message: "no grant".into(),
            reason_code: ReasonCode::NoGrant as i32,
        };
        assert_eq!(Error::from_item_status(&item).reason(), Some(ReasonCode::NoGrant));
    }

    #[derive(Debug)]
    struct Inner(&'static str);
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Inner {}

    #[test]
    fn tls_reason_is_dug_out_of_the_source_chain() {
        let mut status = tonic::Status::unknown("transport error");
        status.set_source(std::sync::Arc::new(Inner("received fatal alert: UnknownCA")));
        match Error::from(status) {
            Error::Tls(message) => assert!(message.contains("UnknownCA"), "{message}"),
            other => panic!("expected a TLS error, got {other:?}"),
        }
        let mut status = tonic::Status::unavailable("connection error");
        status.set_source(std::sync::Arc::new(Inner("tcp connect error: Connection refused")));
        assert!(matches!(Error::from(status), Error::Unavailable(_)));
    }
}
