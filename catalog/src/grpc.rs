//! The thin tonic adapter: authenticate the caller from its certificate, run the handler off
//! the async workers inside a span, and map the error once.

use std::pin::Pin;
use std::sync::Arc;

use exchange_proto::v1::catalog_server::Catalog as CatalogApi;
use exchange_proto::v1::*;
use futures::Stream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::error::CatalogError;
use crate::metrics::CatalogMetrics;
use crate::service::{Caller, Catalog};

/// The gRPC face of the [`Catalog`].
#[derive(Clone, Debug)]
pub struct CatalogGrpc {
    catalog: Arc<Catalog>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<CatalogMetrics>,
}

impl CatalogGrpc {
    /// Wraps a catalog; watch streams end when `shutdown` turns true, so that a graceful
    /// stop does not wait forever for watching nodes. Every call is counted in `metrics`.
    pub fn new(
        catalog: Arc<Catalog>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        metrics: Arc<CatalogMetrics>,
    ) -> Self {
        Self { catalog, shutdown, metrics }
    }

    /// Runs `handler` for the authenticated caller of `req`, off the async workers.
    async fn call<Req, Resp, F>(
        &self,
        method: &'static str,
        req: Request<Req>,
        handler: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: FnOnce(&Catalog, &Caller, Req) -> Result<Resp, CatalogError> + Send + 'static,
    {
        let began = std::time::Instant::now();
        let peer = exchange_pki::caller(&req);
        let span = tracing::info_span!("catalog", method, caller = tracing::field::Empty);
        let catalog = self.catalog.clone();
        let inner = req.into_inner();
        let result = async move {
            let peer = peer.map_err(|e| CatalogError::Unauthenticated(e.to_string()))?;
            tracing::Span::current().record("caller", peer.dept_id.as_str());
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let caller = catalog.authenticate(&peer)?;
                handler(&catalog, &caller, inner)
            })
            .await
            .map_err(|e| CatalogError::Internal(format!("handler task: {e}")))?
        }
        .instrument(span.clone())
        .await;
        self.metrics.call(method, &result, began.elapsed().as_secs_f64());
        match result {
            Ok(resp) => Ok(Response::new(resp)),
            Err(err) => {
                let _entered = span.enter();
                match &err {
                    CatalogError::Internal(cause) => tracing::error!(%cause, "internal error"),
                    other => tracing::info!(error = %other, "refused"),
                }
                Err(err.to_status())
            }
        }
    }
}

type ConfigStream = Pin<Box<dyn Stream<Item = Result<SignedFederationConfig, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl CatalogApi for CatalogGrpc {
    async fn register_member(&self, req: Request<RegisterMemberRequest>) -> Result<Response<Member>, Status> {
        self.call("register_member", req, |c, who, r| c.register_member(who, r.member)).await
    }

    async fn update_member(&self, req: Request<UpdateMemberRequest>) -> Result<Response<Member>, Status> {
        self.call("update_member", req, |c, who, r| c.update_member(who, r)).await
    }

    async fn suspend_member(&self, req: Request<SuspendMemberRequest>) -> Result<Response<Member>, Status> {
        self.call("suspend_member", req, |c, who, r| c.suspend_member(who, &r.dept_id, &r.reason)).await
    }

    async fn get_member(&self, req: Request<GetMemberRequest>) -> Result<Response<Member>, Status> {
        self.call("get_member", req, |c, who, r| c.get_member(who, &r.dept_id)).await
    }

    async fn list_members(&self, req: Request<ListMembersRequest>) -> Result<Response<ListMembersResponse>, Status> {
        self.call("list_members", req, |c, who, _| Ok(ListMembersResponse { members: c.list_members(who)? })).await
    }

    async fn register_schema(&self, req: Request<RegisterSchemaRequest>) -> Result<Response<SchemaVersion>, Status> {
        self.call("register_schema", req, |c, who, r| c.register_schema(who, &r.definition_json)).await
    }

    async fn get_schema(&self, req: Request<GetSchemaRequest>) -> Result<Response<SchemaVersion>, Status> {
        self.call("get_schema", req, |c, who, r| c.get_schema(who, &r.name, r.version)).await
    }

    async fn list_schemas(&self, req: Request<ListSchemasRequest>) -> Result<Response<ListSchemasResponse>, Status> {
        self.call("list_schemas", req, |c, who, r| {
            Ok(ListSchemasResponse { schemas: c.list_schemas(who, r.all_versions)? })
        })
        .await
    }

    async fn publish_dataset(&self, req: Request<PublishDatasetRequest>) -> Result<Response<Dataset>, Status> {
        self.call("publish_dataset", req, |c, who, r| c.publish_dataset(who, r.dataset)).await
    }

    async fn get_dataset(&self, req: Request<GetDatasetRequest>) -> Result<Response<Dataset>, Status> {
        self.call("get_dataset", req, |c, who, r| c.get_dataset(who, &r.id)).await
    }

    async fn list_datasets(&self, req: Request<ListDatasetsRequest>) -> Result<Response<ListDatasetsResponse>, Status> {
        self.call("list_datasets", req, |c, who, r| c.list_datasets(who, &r)).await
    }

    async fn apply_grant(&self, req: Request<ApplyGrantRequest>) -> Result<Response<Grant>, Status> {
        self.call("apply_grant", req, |c, who, r| c.apply_grant(who, r)).await
    }

    async fn approve_grant(&self, req: Request<DecideGrantRequest>) -> Result<Response<Grant>, Status> {
        self.call("approve_grant", req, |c, who, r| c.decide_grant(who, &r, GrantStatus::Approved)).await
    }

    async fn reject_grant(&self, req: Request<DecideGrantRequest>) -> Result<Response<Grant>, Status> {
        self.call("reject_grant", req, |c, who, r| c.decide_grant(who, &r, GrantStatus::Rejected)).await
    }

    async fn revoke_grant(&self, req: Request<DecideGrantRequest>) -> Result<Response<Grant>, Status> {
        self.call("revoke_grant", req, |c, who, r| c.decide_grant(who, &r, GrantStatus::Revoked)).await
    }

    async fn list_grants(&self, req: Request<ListGrantsRequest>) -> Result<Response<ListGrantsResponse>, Status> {
        self.call("list_grants", req, |c, who, r| c.list_grants(who, &r)).await
    }

    async fn record_consent(&self, req: Request<RecordConsentRequest>) -> Result<Response<Consent>, Status> {
        self.call("record_consent", req, |c, who, r| c.record_consent(who, r)).await
    }

    async fn issue_consent_token(
        &self,
        req: Request<IssueConsentTokenRequest>,
    ) -> Result<Response<ConsentToken>, Status> {
        self.call("issue_consent_token", req, |c, who, r| c.issue_consent_token(who, &r)).await
    }

    async fn revoke_consent(&self, req: Request<RevokeConsentRequest>) -> Result<Response<Consent>, Status> {
        self.call("revoke_consent", req, |c, who, r| c.revoke_consent(who, &r)).await
    }

    async fn get_federation_config(
        &self,
        req: Request<GetFederationConfigRequest>,
    ) -> Result<Response<SignedFederationConfig>, Status> {
        self.call("get_federation_config", req, |c, _, _| Ok((*c.current_config()).clone())).await
    }

    type WatchFederationConfigStream = ConfigStream;

    async fn watch_federation_config(
        &self,
        req: Request<GetFederationConfigRequest>,
    ) -> Result<Response<Self::WatchFederationConfigStream>, Status> {
        // Authenticate like every other call, then stream: the current version first, then
        // each new one as it is published.
        let (rx, mut resets, dept) = self
            .call("watch_federation_config", req, |c, who, _| Ok((c.subscribe(), c.stream_resets(), who.dept.clone())))
            .await?
            .into_inner();
        let mut shutdown = self.shutdown.clone();
        // The stream also ends when the catalog resets the caller's streams (see
        // `Catalog::stream_resets`): its node reconnects.
        let start = resets.borrow().get(&dept).copied();
        let stopping = async move {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {}
                _ = resets.wait_for(|counters| counters.get(&dept).copied() != start) => {}
            }
        };
        let stream = futures::StreamExt::take_until(WatchStream::new(rx), stopping).map(|config| Ok((*config).clone()));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_subject_digest_key(
        &self,
        req: Request<GetSubjectDigestKeyRequest>,
    ) -> Result<Response<SubjectDigestKey>, Status> {
        self.call("get_subject_digest_key", req, |c, who, _| {
            let (key_id, key) = c.subject_digest_key(who)?;
            Ok(SubjectDigestKey { key_id, key: key.to_vec() })
        })
        .await
    }

    async fn append_access_log(
        &self,
        req: Request<AppendAccessLogRequest>,
    ) -> Result<Response<AppendAccessLogResponse>, Status> {
        self.call("append_access_log", req, |c, who, r| c.append_access_log(who, r)).await
    }

    async fn get_tree_head(&self, req: Request<GetTreeHeadRequest>) -> Result<Response<TreeHead>, Status> {
        self.call("get_tree_head", req, |c, _, _| {
            let (size, root_hash, checkpoint, origin) = c.tree_head()?;
            Ok(TreeHead { size, root_hash, checkpoint, origin })
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        req: Request<GetInclusionProofRequest>,
    ) -> Result<Response<InclusionProof>, Status> {
        self.call("get_inclusion_proof", req, |c, who, r| c.inclusion_proof(who, r.index, r.tree_size)).await
    }

    async fn get_consistency_proof(
        &self,
        req: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProof>, Status> {
        self.call("get_consistency_proof", req, |c, _, r| c.consistency_proof(r.old_size, r.new_size, &r.old_root))
            .await
    }

    async fn get_log_entries(
        &self,
        req: Request<GetLogEntriesRequest>,
    ) -> Result<Response<GetLogEntriesResponse>, Status> {
        self.call("get_log_entries", req, |c, who, r| {
            Ok(GetLogEntriesResponse { entries: c.log_entries(who, r.start, r.count)? })
        })
        .await
    }

    async fn query_access_log(
        &self,
        req: Request<QueryAccessLogRequest>,
    ) -> Result<Response<QueryAccessLogResponse>, Status> {
        self.call("query_access_log", req, |c, who, r| c.query_access_log(who, &r)).await
    }

    async fn subject_access_view(
        &self,
        req: Request<SubjectAccessViewRequest>,
    ) -> Result<Response<QueryAccessLogResponse>, Status> {
        self.call("subject_access_view", req, |c, who, r| c.subject_access_view(who, &r)).await
    }

    async fn backup(&self, req: Request<BackupRequest>) -> Result<Response<BackupResponse>, Status> {
        self.call("backup", req, |c, who, r| c.backup(who, &r.dir)).await
    }
}
