//! The thin tonic adapter: read the caller from its certificate, run the handler inside a
//! span, and map the error once.

use std::sync::Arc;

use exchange_proto::v1::node_server::Node as NodeApi;
use exchange_proto::v1::*;
use futures::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::error::NodeError;
use crate::service::Node;

/// The gRPC face of the [`Node`].
#[derive(Clone, Debug)]
pub struct NodeGrpc {
    node: Arc<Node>,
}

impl NodeGrpc {
    /// Wraps a node.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

fn peer<T>(req: &Request<T>) -> Result<exchange_pki::PeerIdentity, String> {
    exchange_pki::caller(req).map_err(|e| e.to_string())
}

fn respond<T>(span: &tracing::Span, result: Result<T, NodeError>) -> Result<Response<T>, Status> {
    match result {
        Ok(v) => Ok(Response::new(v)),
        Err(err) => {
            let _entered = span.enter();
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

fn span(method: &'static str, caller: &Result<exchange_pki::PeerIdentity, String>) -> tracing::Span {
    let dept = caller.as_ref().map(|p| p.dept_id.as_str()).unwrap_or("");
    tracing::info_span!("node", method, caller = dept)
}

macro_rules! batch {
    ($self:ident, $req:ident, $method:literal, $kind:expr, $item_fn:ident, $result:ident, $answer:ident, |$it:ident, $prefix:ident| ($($arg:expr),*)) => {{
        let who = peer(&$req);
        let span = span($method, &who);
        let r = $req.into_inner();
        let node = $self.node.clone();
        let result = async move {
            let p = node.prepare(who, $method, &r.dataset, $kind, r.context.as_ref()).await?;
            node.check_batch(&p, r.items.len()).await?;
            let mut items = Vec::with_capacity(r.items.len());
            for (i, $it) in r.items.iter().enumerate() {
                let $prefix = format!("items[{i}].");
                let out = node.$item_fn(&p, &$prefix, $($arg),*).await;
                items.push(match out {
                    Ok(a) => $result { status: Some(ItemStatus::default()), answer: Some(a) },
                    Err(e) => $result { status: Some(e.to_item_status()), answer: None },
                });
            }
            Ok($answer { items })
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }};
}

/// A licence change by the provider's own systems (committed with its DATA_CHANGE entry by
/// the handler); then the watcher republishes the dataset's statistics.
macro_rules! licence_change {
    ($self:ident, $req:ident, $method:ident) => {{
        let who = peer(&$req);
        let span = span(stringify!($method), &who);
        let r = $req.into_inner();
        let result = $self.node.$method(who, r).instrument(span.clone()).await;
        if result.is_ok() {
            $self.node.datasets_changed.notify_one();
        }
        respond(&span, result)
    }};
}

#[tonic::async_trait]
impl NodeApi for NodeGrpc {
    async fn get_licence(&self, req: Request<GetLicenceRequest>) -> Result<Response<LicenceAnswer>, Status> {
        let who = peer(&req);
        let span = span("get_licence", &who);
        let r = req.into_inner();
        let node = self.node.clone();
        let result = async move {
            let p = node.prepare(who, "get_licence", &r.dataset, DatasetKind::Licence, r.context.as_ref()).await?;
            node.get_licence_item(&p, "", &r.licence_id, &r.fields, &r.consent_token, r.version).await
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }

    async fn verify_licence(
        &self,
        req: Request<VerifyLicenceRequest>,
    ) -> Result<Response<VerifyLicenceAnswer>, Status> {
        let who = peer(&req);
        let span = span("verify_licence", &who);
        let r = req.into_inner();
        let node = self.node.clone();
        let result = async move {
            let p = node.prepare(who, "verify_licence", &r.dataset, DatasetKind::Licence, r.context.as_ref()).await?;
            node.verify_licence_item(&p, "", &r.licence_id, r.holder.as_ref(), &r.fields, &r.consent_token).await
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }

    async fn list_licences(&self, req: Request<ListLicencesRequest>) -> Result<Response<ListLicencesAnswer>, Status> {
        let who = peer(&req);
        let span = span("list_licences", &who);
        let r = req.into_inner();
        let node = self.node.clone();
        let result = async move {
            let p = node.prepare(who, "list_licences", &r.dataset, DatasetKind::Licence, r.context.as_ref()).await?;
            node.list_licences_item(&p, "", r.holder.as_ref(), &r.fields, &r.consent_token).await
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }

    async fn get_record(&self, req: Request<GetRecordRequest>) -> Result<Response<RecordAnswer>, Status> {
        let who = peer(&req);
        let span = span("get_record", &who);
        let r = req.into_inner();
        let node = self.node.clone();
        let result = async move {
            let p = node.prepare(who, "get_record", &r.dataset, DatasetKind::Record, r.context.as_ref()).await?;
            node.get_record_item(&p, "", r.subject.as_ref(), &r.fields, &r.consent_token, r.version).await
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }

    async fn match_record(&self, req: Request<MatchRecordRequest>) -> Result<Response<MatchAnswer>, Status> {
        let who = peer(&req);
        let span = span("match_record", &who);
        let r = req.into_inner();
        let node = self.node.clone();
        let result = async move {
            let p = node.prepare(who, "match_record", &r.dataset, DatasetKind::Record, r.context.as_ref()).await?;
            node.match_record_item(&p, "", r.subject.as_ref(), &r.claims, &r.consent_token).await
        }
        .instrument(span.clone())
        .await;
        respond(&span, result)
    }

    async fn batch_get_licences(
        &self,
        req: Request<BatchGetLicencesRequest>,
    ) -> Result<Response<BatchLicenceAnswer>, Status> {
        batch!(
            self,
            req,
            "batch_get_licences",
            DatasetKind::Licence,
            get_licence_item,
            LicenceItemResult,
            BatchLicenceAnswer,
            |it, prefix| (&it.licence_id, &it.fields, &it.consent_token, 0)
        )
    }

    async fn batch_verify_licences(
        &self,
        req: Request<BatchVerifyLicencesRequest>,
    ) -> Result<Response<BatchVerifyLicenceAnswer>, Status> {
        batch!(
            self,
            req,
            "batch_verify_licences",
            DatasetKind::Licence,
            verify_licence_item,
            VerifyItemResult,
            BatchVerifyLicenceAnswer,
            |it, prefix| (&it.licence_id, it.holder.as_ref(), &it.fields, &it.consent_token)
        )
    }

    async fn batch_list_licences(
        &self,
        req: Request<BatchListLicencesRequest>,
    ) -> Result<Response<BatchListLicencesAnswer>, Status> {
        batch!(
            self,
            req,
            "batch_list_licences",
            DatasetKind::Licence,
            list_licences_item,
            ListLicencesItemResult,
            BatchListLicencesAnswer,
            |it, prefix| (it.holder.as_ref(), &it.fields, &it.consent_token)
        )
    }

    async fn batch_get_records(
        &self,
        req: Request<BatchGetRecordsRequest>,
    ) -> Result<Response<BatchRecordAnswer>, Status> {
        batch!(
            self,
            req,
            "batch_get_records",
            DatasetKind::Record,
            get_record_item,
            RecordItemResult,
            BatchRecordAnswer,
            |it, prefix| (it.subject.as_ref(), &it.fields, &it.consent_token, 0)
        )
    }

    async fn batch_match_records(
        &self,
        req: Request<BatchMatchRecordsRequest>,
    ) -> Result<Response<BatchMatchAnswer>, Status> {
        batch!(
            self,
            req,
            "batch_match_records",
            DatasetKind::Record,
            match_record_item,
            MatchItemResult,
            BatchMatchAnswer,
            |it, prefix| (it.subject.as_ref(), &it.claims, &it.consent_token)
        )
    }

    async fn describe_datasets(
        &self,
        req: Request<DescribeDatasetsRequest>,
    ) -> Result<Response<DescribeDatasetsResponse>, Status> {
        let who = peer(&req);
        let span = span("describe_datasets", &who);
        let result = self.node.describe_datasets(who).instrument(span.clone()).await;
        respond(&span, result)
    }

    async fn import(&self, req: Request<Streaming<ImportRequest>>) -> Result<Response<ImportSummary>, Status> {
        let who = peer(&req);
        let span = span("import", &who);
        let stream = req.into_inner().map(|m| m.map_err(|s| s.message().to_string()));
        let result = self.node.import(who, stream).instrument(span.clone()).await;
        if let Ok(summary) = &result
            && summary.inserted + summary.updated > 0
        {
            self.node.datasets_changed.notify_one();
        }
        respond(&span, result)
    }

    async fn issue_licence(&self, req: Request<IssueLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        licence_change!(self, req, issue_licence)
    }

    async fn update_licence(&self, req: Request<UpdateLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        licence_change!(self, req, update_licence)
    }

    async fn revoke_licence(&self, req: Request<RevokeLicenceRequest>) -> Result<Response<LicenceChange>, Status> {
        licence_change!(self, req, revoke_licence)
    }

    async fn upsert_record(&self, req: Request<UpsertRecordRequest>) -> Result<Response<RecordChange>, Status> {
        let who = peer(&req);
        let span = span("upsert_record", &who);
        let r = req.into_inner();
        let result = self.node.upsert_record(who, r).instrument(span.clone()).await;
        if let Ok(change) = &result
            && change.changed
        {
            self.node.datasets_changed.notify_one();
        }
        respond(&span, result)
    }

    async fn get_log_status(&self, req: Request<GetLogStatusRequest>) -> Result<Response<LogStatus>, Status> {
        let who = peer(&req);
        let span = span("get_log_status", &who);
        let result = self.node.log_status(who).instrument(span.clone()).await;
        respond(&span, result)
    }
}
