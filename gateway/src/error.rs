//! Errors as the HTTP API returns them: an HTTP status and a JSON body carrying the gRPC code,
//! the reason code and the request field of the refusal, and what to fix.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use exchange_client_sdk::Error;
use exchange_client_sdk::error::{code_name, reason_name};
use exchange_proto::v1::ReasonCode;
use serde::Serialize;
use tonic::Code;

/// An error of the HTTP API: its HTTP status and the body's `error` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    /// What the body says (boxed: errors travel in `Result`s of every handler).
    pub body: Box<ErrorBody>,
}

/// The `error` object of an error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What kind of failure: `refused` (a node or the catalog refused, see `reason`),
    /// `unavailable` (retry later), `upstream` (a service failed), `bad_signature` (an
    /// answer did not verify and was withheld), `invalid_request`, `unauthenticated`.
    pub kind: &'static str,
    /// The gRPC status code's name, e.g. `PERMISSION_DENIED`.
    pub code: String,
    /// The gRPC status code's number.
    pub grpc_code: i32,
    /// The reason code's name, e.g. `FIELD_NOT_GRANTED` (`UNSPECIFIED` when none).
    pub reason: &'static str,
    /// The request field the error is about, if any (e.g. `fields`, `context.traceId`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    /// What went wrong and what to fix.
    pub message: String,
    /// For RATE_LIMITED: milliseconds after which a retry can succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl ApiError {
    fn local(kind: &'static str, code: Code, status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        let body = ErrorBody {
            kind,
            code: code_name(code),
            grpc_code: code as i32,
            reason: reason_name(ReasonCode::Unspecified),
            field: field.to_owned(),
            message: message.into(),
            retry_after_ms: None,
        };
        ApiError { status, body: Box::new(body) }
    }

    /// The calling system did not authenticate.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::local("unauthenticated", Code::Unauthenticated, StatusCode::UNAUTHORIZED, "", message)
    }

    /// The request cannot be understood; `field` names what to fix.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::local("invalid_request", Code::InvalidArgument, StatusCode::BAD_REQUEST, field, message)
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused { code, reason, message, field, retry_after } => ApiError {
                status: http_status(code),
                body: Box::new(ErrorBody {
                    kind: "refused",
                    code: code_name(code),
                    grpc_code: code as i32,
                    reason: reason_name(reason),
                    field,
                    message,
                    retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }),
            },
            Error::Unavailable(m) => {
                Self::local("unavailable", Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE, "", m)
            }
            Error::BadSignature(m) => Self::local(
                "bad_signature",
                Code::DataLoss,
                StatusCode::BAD_GATEWAY,
                "",
                format!("the answer was withheld: its signature does not verify ({m})"),
            ),
            Error::InvalidInput(m) => Self::invalid("", m),
            other => Self::local("upstream", Code::Internal, StatusCode::BAD_GATEWAY, "", other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.body.retry_after_ms;
        let mut response = (self.status, axum::Json(serde_json::json!({ "error": self.body }))).into_response();
        if let Some(ms) = retry
            && let Ok(value) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}
