//! The HTTP API: one handler per form, each authenticating the calling system, parsing the
//! proto3 JSON body, carrying the caller into the trace, and answering with the verified
//! answer and its evidence.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use exchange_client_sdk::{ExchangeClient, NodeAnswer, NodeQuery, Verified};
use exchange_proto::v1::{
    BatchGetLicencesRequest, BatchGetRecordsRequest, BatchListLicencesRequest, BatchMatchRecordsRequest,
    BatchVerifyLicencesRequest, GetLicenceRequest, GetRecordRequest, ListLicencesRequest, MatchRecordRequest,
    QueryAccessLogRequest, QueryContext, RecordConsentRequest, VerifyLicenceRequest,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::Callers;
use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct GatewayState {
    /// The department's connection to the federation.
    pub client: ExchangeClient,
    /// The calling systems.
    pub callers: Arc<Callers>,
}

/// The API's routes.
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/v1/records/get", post(get_record))
        .route("/v1/records/match", post(match_record))
        .route("/v1/licences/get", post(get_licence))
        .route("/v1/licences/verify", post(verify_licence))
        .route("/v1/licences/list", post(list_licences))
        .route("/v1/records/batch-get", post(batch_get_records))
        .route("/v1/records/batch-match", post(batch_match_records))
        .route("/v1/licences/batch-get", post(batch_get_licences))
        .route("/v1/licences/batch-verify", post(batch_verify_licences))
        .route("/v1/licences/batch-list", post(batch_list_licences))
        .route("/v1/consents", post(record_consent))
        .route("/v1/consent-tokens", post(issue_consent_token))
        .route("/v1/audit/query", post(query_audit))
        .with_state(state)
}

/// Parses a proto3 JSON body into `T`, naming the type and the problem.
fn parse<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("", format!("the body is not a {what} in proto3 JSON: {e}")))
}

/// The trace id sent on: the calling system's name, then the caller's own trace id (or a
/// random one), so the central log says which system asked.
fn traced(context: Option<QueryContext>, caller: &str) -> Result<Option<QueryContext>, ApiError> {
    let mut context = context.ok_or_else(|| {
        ApiError::invalid(
            "context",
            "a query needs a context: {\"purposeCode\": ..., \"reason\": ..., \"traceId\": ...}",
        )
    })?;
    let own = if context.trace_id.is_empty() {
        use rand::RngCore as _;
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    } else {
        context.trace_id.clone()
    };
    let trace = format!("{caller}:{own}");
    if trace.len() > exchange_core::ident::TraceId::MAX_LEN {
        return Err(ApiError::invalid(
            "context.traceId",
            format!(
                "with the calling system's name in front it is {} characters, at most {} are allowed",
                trace.len(),
                exchange_core::ident::TraceId::MAX_LEN
            ),
        ));
    }
    context.trace_id = trace;
    Ok(Some(context))
}

/// A verified answer with its evidence, as the API returns it.
fn evidence_value<T: serde::Serialize>(v: &Verified<T>) -> serde_json::Value {
    serde_json::json!({
        "node": v.node(),
        "verified": true,
        "keyId": v.key_id(),
        "signedDigest": hex::encode(v.digest()),
        "answer": v.answer(),
    })
}

fn evidence<T: serde::Serialize>(v: &Verified<T>) -> Response {
    Json(evidence_value(v)).into_response()
}

/// A batch's items, each its verified answer with evidence or its own error, in order.
fn batch_items<T: serde::Serialize>(items: Vec<exchange_client_sdk::Result<Verified<T>>>) -> Response {
    let items: Vec<serde_json::Value> = items
        .into_iter()
        .map(|item| match item {
            Ok(v) => evidence_value(&v),
            Err(e) => serde_json::json!({ "error": ApiError::from(e).body }),
        })
        .collect();
    Json(serde_json::json!({ "items": items })).into_response()
}

async fn run(state: &GatewayState, query: NodeQuery) -> Result<Response, ApiError> {
    Ok(match state.client.run_query(query).await? {
        NodeAnswer::Record(a) => evidence(&a),
        NodeAnswer::Licence(a) => evidence(&a),
        NodeAnswer::VerifyLicence(a) => evidence(&a),
        NodeAnswer::ListLicences(a) => evidence(&a),
        NodeAnswer::Match(a) => evidence(&a),
    })
}

/// The handlers of the query forms and their batches differ only in the request type and
/// in what they do with the request once the caller is authenticated and carried into its
/// trace: `$answer` is called with the state and the traced request.
macro_rules! query_handler {
    ($name:ident, $request:ty, |$state:ident, $req:ident| $answer:expr) => {
        async fn $name(
            State($state): State<GatewayState>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Result<Response, ApiError> {
            let caller = $state.callers.authenticate(&headers)?;
            let mut $req: $request = parse(&body, stringify!($request))?;
            $req.context = traced($req.context.take(), &caller)?;
            $answer
        }
    };
}

query_handler!(get_record, GetRecordRequest, |state, r| run(&state, NodeQuery::Record(r)).await);
query_handler!(match_record, MatchRecordRequest, |state, r| run(&state, NodeQuery::Match(r)).await);
query_handler!(get_licence, GetLicenceRequest, |state, r| run(&state, NodeQuery::Licence(r)).await);
query_handler!(verify_licence, VerifyLicenceRequest, |state, r| run(&state, NodeQuery::VerifyLicence(r)).await);
query_handler!(list_licences, ListLicencesRequest, |state, r| run(&state, NodeQuery::ListLicences(r)).await);
// The batch forms: one shared context, each item answered (or refused) on its own.
query_handler!(batch_get_records, BatchGetRecordsRequest, |state, r| Ok(batch_items(
    state.client.batch_get_records(r).await?
)));
query_handler!(batch_match_records, BatchMatchRecordsRequest, |state, r| Ok(batch_items(
    state.client.batch_match_records(r).await?
)));
query_handler!(batch_get_licences, BatchGetLicencesRequest, |state, r| Ok(batch_items(
    state.client.batch_get_licences(r).await?
)));
query_handler!(batch_verify_licences, BatchVerifyLicencesRequest, |state, r| Ok(batch_items(
    state.client.batch_verify_licences(r).await?
)));
query_handler!(batch_list_licences, BatchListLicencesRequest, |state, r| Ok(batch_items(
    state.client.batch_list_licences(r).await?
)));

async fn record_consent(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.callers.authenticate(&headers)?;
    let request: RecordConsentRequest = parse(&body, "RecordConsentRequest")?;
    Ok(Json(state.client.record_consent(request).await?).into_response())
}

/// The body of `POST /v1/consent-tokens`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    consent_id: String,
    dataset: String,
}

async fn issue_consent_token(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.callers.authenticate(&headers)?;
    let request: TokenRequest = parse(&body, "{\"consentId\": ..., \"dataset\": ...} object")?;
    Ok(Json(state.client.issue_consent_token(&request.consent_id, &request.dataset).await?).into_response())
}

async fn query_audit(State(state): State<GatewayState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    state.callers.authenticate(&headers)?;
    let request: QueryAccessLogRequest = parse(&body, "QueryAccessLogRequest")?;
    Ok(Json(state.client.query_access_log(request).await?).into_response())
}
