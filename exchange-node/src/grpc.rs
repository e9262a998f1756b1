//! The thin tonic adapter: read the caller from its certificate, run the handler inside a
//! span (with the query's trace id), count the call and its questions, and map the error
//! once.

use std::sync::Arc;
use std::time::Instant;

use exchange_core::ident::{TraceId, find_identifier};
use exchange_proto::v1::node_server::Node as NodeApi;
use exchange_proto::v1::*;
use futures::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::error::NodeError;
use crate::metrics::NodeMetrics;
use crate::query::get_licence::GetLicence;
use crate::query::get_record::GetRecord;
use crate::query::list_licences::ListLicences;
use crate::query::match_record::MatchRecord;
use crate::query::verify_licence::VerifyLicence;
use crate::query::{BatchReply, Form, QueryRequest};
use crate::service::Node;

/// The gRPC face of the [`Node`].
#[derive(Clone, Debug)]
pub struct NodeGrpc {
    node: Arc<Node>,
    metrics: Arc<NodeMetrics>,
    backups: Arc<crate::backup::Backups>,
}

impl NodeGrpc {
    /// Wraps a node; every call is counted in `metrics`; `backups` serves the Backup call.
    pub fn new(node: Arc<Node>, metrics: Arc<NodeMetrics>, backups: Arc<crate::backup::Backups>) -> Self {
        Self { node, metrics, backups }
    }
}

fn peer<T>(req: &Request<T>) -> Result<exchange_pki::PeerIdentity, String> {
    exchange_pki::caller(req).map_err(|e| e.to_string())
}

/// One call: its span (method, caller, and the query's trace id once read) and its start.
struct Call {
    method: &'static str,
    span: tracing::Span,
    began: Instant,
}

impl Call {
    fn new(method: &'static str, caller: &Result<exchange_pki::PeerIdentity, String>) -> Self {
        let dept = caller.as_ref().map(|p| p.dept_id.as_str()).unwrap_or("");
        let span = tracing::info_span!("node", method, caller = dept, trace_id = tracing::field::Empty);
        Self { method, span, began: Instant::now() }
    }

    /// Puts the query's trace id on the call's span, so that every log line of the call
    /// carries it; unless it is not a valid trace id or holds a resident id or credit code
    /// in clear (the pipeline refuses such a query with IDENTIFIER_IN_CLEAR, and the id must
    /// not reach the daemon's log on the way).
    fn trace(&self, context: Option<&QueryContext>) {
        let Some(trace) = context.map(|c| c.trace_id.as_str()).filter(|t| !t.is_empty()) else { return };
        if find_identifier(trace).is_none() && TraceId::parse(trace).is_ok() {
            self.span.record("trace_id", trace);
        }
    }
}

impl NodeGrpc {
    /// Counts the finished call, logs a refusal inside its span, and maps the error once.
    fn respond<T>(&self, call: Call, result: Result<T, NodeError>) -> Result<Response<T>, Status> {
        self.metrics.call(call.method, &result, call.began.elapsed().as_secs_f64());
        match result {
            Ok(v) => Ok(Response::new(v)),
            Err(err) => {
                let _entered = call.span.enter();
                match &err {
                    NodeError::Internal(cause) => tracing::error!(%cause, "internal error"),
                    // Strangers are counted and reported at a bounded rate by the gate, never
                    // one line per call: a flood must not fill the disk through the daemon's log.
                    NodeError::Unauthenticated(_) | NodeError::UnknownMember(_) => {}
                    other => tracing::info!(error = %other, reason = ?other.reason(), "refused"),
                }
                Err(err.to_status())
            }
        }
    }

    /// A single-form query: prepared, then its one question through the pipeline.
    async fn query<F: Form, R: QueryRequest>(
        &self,
        method: &'static str,
        req: Request<R>,
    ) -> Result<Response<F::Answer>, Status> {
        let who = peer(&req);
        let call = Call::new(method, &who);
        let r = req.into_inner();
        call.trace(r.context());
        let result = async {
            let p = self.node.prepare(who, method, r.dataset(), F::KIND, r.context()).await?;
            let questions = r.questions();
            let asked =
                questions.first().ok_or_else(|| NodeError::Internal("a request without its question".into()))?;
            self.node.serve::<F>(&p, "", asked).await
        }
        .instrument(call.span.clone())
        .await;
        self.metrics.question(method, &result);
        self.respond(call, result)
    }

    /// A batch: prepared once, then every item through the pipeline, each with its own result.
    async fn batch<F: Form, R: QueryRequest, B: BatchReply<F::Answer>>(
        &self,
        method: &'static str,
        req: Request<R>,
    ) -> Result<Response<B>, Status> {
        let who = peer(&req);
        let call = Call::new(method, &who);
        let r = req.into_inner();
        call.trace(r.context());
        let result = async {
            let p = self.node.prepare(who, method, r.dataset(), F::KIND, r.context()).await?;
            self.node.serve_batch::<F>(&p, &r.questions()).await
        }
        .instrument(call.span.clone())
        .await;
        match &result {
            Ok(items) => items.iter().for_each(|item| self.metrics.question(method, item)),
            Err(_) => self.metrics.question(method, &result),
        }
        self.respond(call, result.map(B::reply))
    }
}

/// A call of a provider-side or status RPC: the handler inside the caller's span, the error
/// mapped once.
macro_rules! call {
    ($self:ident, $req:ident, $method:ident) => {{
        let who = peer(&$req);
        let call = Call::new(stringify!($method), &who);
        let r = $req.into_inner();
        let result = $self.node.$method(who, r).instrument(call.span.clone()).await;
        $self.respond(call, result)
    }};
}

#[tonic::async_trait]
impl NodeApi for NodeGrpc {
    async fn get_licence(&self, req: Request<GetLicenceRequest>) -> Result<Response<LicenceAnswer>, Status> {
        self.query::<GetLicence, _>("get_licence", req).await
    }

    async fn verify_licence(
        &self,
        req: Request<VerifyLicenceRequest>,
    ) -> Result<Response<VerifyLicenceAnswer>, Status> {
        self.query::<VerifyLicence, _>("verify_licence", req).await
    }

    async fn list_licences(&self, req: Request<ListLicencesRequest>) -> Result<Response<ListLicencesAnswer>, Status> {
        self.query::<ListLicences, _>("list_licences", req).await
    }

    async fn get_record(&self, req: Request<GetRecordRequest>) -> Result<Response<RecordAnswer>, Status> {
        self.query::<GetRecord, _>("get_record", req).await
    }

    async fn match_record(&self, req: Request<MatchRecordRequest>) -> Result<Response<MatchAnswer>, Status> {
        self.query::<MatchRecord, _>("match_record", req).await
    }

    async fn batch_get_licences(
        &self,
        req: Request<BatchGetLicencesRequest>,
    ) -> Result<Response<BatchLicenceAnswer>, Status> {
        self.batch::<GetLicence, _, _>("batch_get_licences", req).await
    }

    async fn batch_verify_licences(
        &self,
        req: Request<BatchVerifyLicencesRequest>,
    ) -> Result<Response<BatchVerifyLicenceAnswer>, Status> {
        self.batch::<VerifyLicence, _, _>("batch_verify_licences", req).await
    }

    async fn batch_list_licences(
        &self,
        req: Request<BatchListLicencesRequest>,
    ) -> Result<Response<BatchListLicencesAnswer>, Status> {
        self.batch::<ListLicences, _, _>("batch_list_licences", req).await
    }

    async fn batch_get_records(
        &self,
        req: Request<BatchGetRecordsRequest>,
    ) -> Result<Response<BatchRecordAnswer>, Status> {
        self.batch::<GetRecord, _, _>("batch_get_records", req).await
    }

    async fn batch_match_records(
        &self,
        req: Request<BatchMatchRecordsRequest>,
    ) -> Result<Response<BatchMatchAnswer>, Status> {
        self.batch::<MatchRecord, _, _>("batch_match_records", req).await
    }

    async fn describe_datasets(
        &self,
        req: Request<DescribeDatasetsRequest>,
    ) -> Result<Response<DescribeDatasetsResponse>, Status> {
        let who = peer(&req);
        let call = Call::new("describe_datasets", &who);
        let result = self.node.describe_datasets(who).instrument(call.span.clone()).await;
        self.respond(call, result)
    }

    async fn import(&self, req: Request<Streaming<ImportRequest>>) -> Result<Response<ImportSummary>, Status> {
        let who = peer(&req);
        let call = Call::new("import", &who);
        let _running = self.metrics.import_started();
        let metrics = self.metrics.clone();
        let stream = req.into_inner().map(move |m| {
            if let Ok(ImportRequest { part: Some(import_request::Part::Chunk(chunk)) }) = &m {
                metrics.import_received(chunk.records.len());
            }
            m.map_err(|s| s.message().to_string())
        });
        let result = self.node.import(who, stream).instrument(call.span.clone()).await;
        if let Ok(done) = &result {
            self.metrics.imported(&done.dataset, done.inserted, done.updated, done.unchanged);
        }
        self.respond(call, result)
    }

    async fn issue_licence(&self, req: Request<IssueLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        call!(self, req, issue_licence)
    }

    async fn update_licence(&self, req: Request<UpdateLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        call!(self, req, update_licence)
    }

    async fn revoke_licence(&self, req: Request<RevokeLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        call!(self, req, revoke_licence)
    }

    async fn upsert_record(&self, req: Request<UpsertRecordRequest>) -> Result<Response<RecordChange>, Status> {
        call!(self, req, upsert_record)
    }

    async fn get_log_status(&self, req: Request<GetLogStatusRequest>) -> Result<Response<LogStatus>, Status> {
        let who = peer(&req);
        let call = Call::new("get_log_status", &who);
        let result = self.node.log_status(who).instrument(call.span.clone()).await;
        self.respond(call, result)
    }

    async fn backup(&self, req: Request<BackupRequest>) -> Result<Response<BackupResponse>, Status> {
        let who = peer(&req);
        let call = Call::new("backup", &who);
        let result = self.backups.backup(who, req.into_inner().dir).instrument(call.span.clone()).await;
        self.respond(call, result)
    }
}
