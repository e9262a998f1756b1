//! Node queries: every answer is verified against the node's key from the verified
//! federation configuration before it is returned; the batch forms; the fan-out helper for
//! one application that needs several providers; and the provider's own import.

use std::future::Future;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use exchange_proto::canonical::{Asked, SignedAnswer};
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use tonic::transport::Channel;

use crate::client::{ExchangeClient, NodeTarget, provider_of};
use crate::error::{Error, Result};
use crate::verify::{Expected, Verified, verify_answer_in};

/// One query of a fan-out.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeQuery {
    /// Get a base record.
    Record(GetRecordRequest),
    /// Get a licence.
    Licence(GetLicenceRequest),
    /// Verify a licence.
    VerifyLicence(VerifyLicenceRequest),
    /// List a holder's licences.
    ListLicences(ListLicencesRequest),
    /// Match claims against a record.
    Match(MatchRecordRequest),
}

/// One verified answer of a fan-out.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeAnswer {
    /// A base record.
    Record(Verified<RecordAnswer>),
    /// A licence.
    Licence(Verified<LicenceAnswer>),
    /// A verification verdict.
    VerifyLicence(Verified<VerifyLicenceAnswer>),
    /// A holder's licences.
    ListLicences(Verified<ListLicencesAnswer>),
    /// Match results.
    Match(Verified<MatchAnswer>),
}

impl NodeAnswer {
    /// The department whose node signed the answer.
    pub fn node(&self) -> &str {
        match self {
            NodeAnswer::Record(a) => a.node(),
            NodeAnswer::Licence(a) => a.node(),
            NodeAnswer::VerifyLicence(a) => a.node(),
            NodeAnswer::ListLicences(a) => a.node(),
            NodeAnswer::Match(a) => a.node(),
        }
    }
}

/// Deadline of an import: it may stream many records.
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

impl ExchangeClient {
    async fn verified<A: SignedAnswer + Clone>(
        &self,
        target: &NodeTarget,
        dataset: &str,
        question: Question,
        answer: A,
    ) -> Result<Verified<A>> {
        let expected = Expected { node: &target.dept, requester: self.dept_id(), dataset, question };
        // The key the answer names, among the node's keys in force (its signing key, or one
        // published beside it during a rotation); never a key the answer brings itself.
        let named = answer.signature().map(|s| s.key_id.clone());
        let find = |keys: &[VerifyingKey]| {
            keys.iter()
                .find(|k| named.as_deref() == Some(exchange_core::digest::key_id(k.as_bytes()).as_str()))
                .copied()
        };
        let key = match find(&target.keys) {
            Some(key) => Some(key),
            // The node may have rotated its key since our copy of the configuration: look
            // once more in a fresh copy.
            None if named.is_some() => {
                let fresh = self.refreshed_node_keys(&target.dept).await?;
                find(&fresh).or(fresh.first().copied())
            }
            // Unsigned: refused by verify_answer, which says so.
            None => target.keys.first().copied(),
        };
        let key =
            key.ok_or_else(|| Error::BadSignature(format!("answer from {}: the node has no key", target.dept)))?;
        verify_answer_in(answer, &expected, &key, Some(self.verified_groups()))
    }

    async fn query<Req, A, F, Fut>(&self, what: &'static str, dataset: &str, request: Req, f: F) -> Result<Verified<A>>
    where
        Req: Clone + Asked,
        A: SignedAnswer + Clone,
        F: Fn(NodeClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<A>, tonic::Status>>,
    {
        let target = self.node_target(&provider_of(dataset)?).await?;
        let question = request.question();
        let answer = self.call(what, true, || f(target.client.clone(), self.request(request.clone()))).await?;
        self.verified(&target, dataset, question, answer).await
    }

    /// A provider-side change on the node of `dataset`: not a signed answer, retried only when
    /// `retry` says the change is idempotent.
    async fn change<Req, T, F, Fut>(
        &self,
        what: &'static str,
        dataset: &str,
        retry: bool,
        request: Req,
        f: F,
    ) -> Result<T>
    where
        Req: Clone,
        F: Fn(NodeClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let target = self.node_target(&provider_of(dataset)?).await?;
        self.call(what, retry, || f(target.client.clone(), self.request(request.clone()))).await
    }

    /// Gets one base record, projected to `fields` (∩ granted ∩ consented).
    ///
    /// ```no_run
    /// use exchange_proto::v1::{GetRecordRequest, QueryContext, Subject, SubjectKind};
    /// # async fn run(client: exchange_client_sdk::ExchangeClient, token: String) -> exchange_client_sdk::Result<()> {
    /// let answer = client
    ///     .get_record(GetRecordRequest {
    ///         context: Some(QueryContext {
    ///             purpose_code: "SZ-HCB-ZLBA-001".into(),
    ///             reason: "rental filing 2024-0001: check the tenant's identity".into(),
    ///             trace_id: String::new(),
    ///         }),
    ///         dataset: "gov.sz.psb/population".into(),
    ///         subject: Some(Subject { kind: SubjectKind::Person as i32, id: "11010519491231002X".into() }),
    ///         fields: vec!["name".into()],
    ///         consent_token: token,
    ///         version: 0,
    ///     })
    ///     .await?;
    /// // Verified: signed by the node's key in the federation configuration.
    /// for f in answer.record.iter().flat_map(|r| &r.fields) {
    ///     println!("{} = {}", f.name, f.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_record(&self, request: GetRecordRequest) -> Result<Verified<RecordAnswer>> {
        let dataset = request.dataset.clone();
        self.query("GetRecord", &dataset, request, |mut c, r| async move { c.get_record(r).await }).await
    }

    /// Gets one licence.
    pub async fn get_licence(&self, request: GetLicenceRequest) -> Result<Verified<LicenceAnswer>> {
        let dataset = request.dataset.clone();
        self.query("GetLicence", &dataset, request, |mut c, r| async move { c.get_licence(r).await }).await
    }

    /// Verifies a licence (核验): a verdict with the least data.
    pub async fn verify_licence(&self, request: VerifyLicenceRequest) -> Result<Verified<VerifyLicenceAnswer>> {
        let dataset = request.dataset.clone();
        self.query("VerifyLicence", &dataset, request, |mut c, r| async move { c.verify_licence(r).await }).await
    }

    /// Lists a holder's licences.
    pub async fn list_licences(&self, request: ListLicencesRequest) -> Result<Verified<ListLicencesAnswer>> {
        let dataset = request.dataset.clone();
        self.query("ListLicences", &dataset, request, |mut c, r| async move { c.list_licences(r).await }).await
    }

    /// Matches claimed values against a held record, revealing no held value.
    pub async fn match_record(&self, request: MatchRecordRequest) -> Result<Verified<MatchAnswer>> {
        let dataset = request.dataset.clone();
        self.query("MatchRecord", &dataset, request, |mut c, r| async move { c.match_record(r).await }).await
    }

    /// Runs one query of a fan-out.
    pub async fn run_query(&self, query: NodeQuery) -> Result<NodeAnswer> {
        Ok(match query {
            NodeQuery::Record(r) => NodeAnswer::Record(self.get_record(r).await?),
            NodeQuery::Licence(r) => NodeAnswer::Licence(self.get_licence(r).await?),
            NodeQuery::VerifyLicence(r) => NodeAnswer::VerifyLicence(self.verify_licence(r).await?),
            NodeQuery::ListLicences(r) => NodeAnswer::ListLicences(self.list_licences(r).await?),
            NodeQuery::Match(r) => NodeAnswer::Match(self.match_record(r).await?),
        })
    }

    /// Runs several queries in parallel (one application, several providers) and gathers
    /// every result, in the order of `queries`. Each answer is verified on its own; one
    /// failure does not hide the others.
    ///
    /// ```no_run
    /// use exchange_client_sdk::node::NodeQuery;
    /// use exchange_proto::v1::{GetRecordRequest, ListLicencesRequest};
    /// # async fn run(client: exchange_client_sdk::ExchangeClient, population: GetRecordRequest, property: ListLicencesRequest) {
    /// let results = client.fan_out(vec![NodeQuery::Record(population), NodeQuery::ListLicences(property)]).await;
    /// let approved = results.iter().all(|r| r.is_ok());
    /// # }
    /// ```
    pub async fn fan_out(&self, queries: Vec<NodeQuery>) -> Vec<Result<NodeAnswer>> {
        futures::future::join_all(queries.into_iter().map(|q| self.run_query(q))).await
    }

    /// Verifies the items of a batch answer against the items asked (`asked`, in order): a
    /// batch answer with another number of items than asked is refused whole.
    async fn verify_items<A: SignedAnswer + Clone, Q: Asked>(
        &self,
        target: &NodeTarget,
        dataset: &str,
        asked: &[Q],
        items: Vec<(Option<ItemStatus>, Option<A>)>,
    ) -> Result<Vec<Result<Verified<A>>>> {
        if items.len() != asked.len() {
            return Err(Error::BadSignature(format!(
                "batch answer from {} holds {} items for {} asked",
                target.dept,
                items.len(),
                asked.len()
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, ((status, answer), q)) in items.into_iter().zip(asked).enumerate() {
            let status = status.unwrap_or_default();
            if status.code != 0 {
                out.push(Err(Error::from_item_status(&status)));
                continue;
            }
            let answer =
                answer.ok_or_else(|| Error::BadSignature(format!("batch item {i} is OK but carries no answer")))?;
            // A bad signature on any item fails the whole batch: the node cannot be trusted.
            out.push(Ok(self.verified(target, dataset, q.question(), answer).await?));
        }
        Ok(out)
    }

    /// Batch form of [`ExchangeClient::get_record`]: one result per item, each verified.
    pub async fn batch_get_records(
        &self,
        request: BatchGetRecordsRequest,
    ) -> Result<Vec<Result<Verified<RecordAnswer>>>> {
        let target = self.node_target(&provider_of(&request.dataset)?).await?;
        let answer = self
            .call("BatchGetRecords", true, || {
                let mut c = target.client.clone();
                let r = self.request(request.clone());
                async move { c.batch_get_records(r).await }
            })
            .await?;
        let items = answer.items.into_iter().map(|i| (i.status, i.answer)).collect();
        self.verify_items(&target, &request.dataset, &request.items, items).await
    }

    /// Batch form of [`ExchangeClient::get_licence`].
    pub async fn batch_get_licences(
        &self,
        request: BatchGetLicencesRequest,
    ) -> Result<Vec<Result<Verified<LicenceAnswer>>>> {
        let target = self.node_target(&provider_of(&request.dataset)?).await?;
        let answer = self
            .call("BatchGetLicences", true, || {
                let mut c = target.client.clone();
                let r = self.request(request.clone());
                async move { c.batch_get_licences(r).await }
            })
            .await?;
        let items = answer.items.into_iter().map(|i| (i.status, i.answer)).collect();
        self.verify_items(&target, &request.dataset, &request.items, items).await
    }

    /// Batch form of [`ExchangeClient::verify_licence`].
    pub async fn batch_verify_licences(
        &self,
        request: BatchVerifyLicencesRequest,
    ) -> Result<Vec<Result<Verified<VerifyLicenceAnswer>>>> {
        let target = self.node_target(&provider_of(&request.dataset)?).await?;
        let answer = self
            .call("BatchVerifyLicences", true, || {
                let mut c = target.client.clone();
                let r = self.request(request.clone());
                async move { c.batch_verify_licences(r).await }
            })
            .await?;
        let items = answer.items.into_iter().map(|i| (i.status, i.answer)).collect();
        self.verify_items(&target, &request.dataset, &request.items, items).await
    }

    /// Batch form of [`ExchangeClient::list_licences`].
    pub async fn batch_list_licences(
        &self,
        request: BatchListLicencesRequest,
    ) -> Result<Vec<Result<Verified<ListLicencesAnswer>>>> {
        let target = self.node_target(&provider_of(&request.dataset)?).await?;
        let answer = self
            .call("BatchListLicences", true, || {
                let mut c = target.client.clone();
                let r = self.request(request.clone());
                async move { c.batch_list_licences(r).await }
            })
            .await?;
        let items = answer.items.into_iter().map(|i| (i.status, i.answer)).collect();
        self.verify_items(&target, &request.dataset, &request.items, items).await
    }

    /// Batch form of [`ExchangeClient::match_record`].
    pub async fn batch_match_records(
        &self,
        request: BatchMatchRecordsRequest,
    ) -> Result<Vec<Result<Verified<MatchAnswer>>>> {
        let target = self.node_target(&provider_of(&request.dataset)?).await?;
        let answer = self
            .call("BatchMatchRecords", true, || {
                let mut c = target.client.clone();
                let r = self.request(request.clone());
                async move { c.batch_match_records(r).await }
            })
            .await?;
        let items = answer.items.into_iter().map(|i| (i.status, i.answer)).collect();
        self.verify_items(&target, &request.dataset, &request.items, items).await
    }

    /// The datasets a department's node describes.
    pub async fn describe_datasets(&self, dept: &str) -> Result<Vec<Dataset>> {
        let target = self.node_target(dept).await?;
        let answer = self
            .call("DescribeDatasets", true, || {
                let mut c = target.client.clone();
                let r = self.request(DescribeDatasetsRequest {});
                async move { c.describe_datasets(r).await }
            })
            .await?;
        Ok(answer.datasets)
    }

    /// Issues a licence in one of the caller's own licence datasets (the provider's own
    /// systems only): version 1. Not retried: a lost answer is checked with a query.
    pub async fn issue_licence(&self, request: IssueLicenceRequest) -> Result<LicenceChange> {
        let dataset = request.dataset.clone();
        self.change("IssueLicence", &dataset, false, request, |mut c, r| async move { c.issue_licence(r).await }).await
    }

    /// Replaces a licence's fields and validity: a new version (`expected_version`, when not
    /// 0, refuses the change if another came first). Not retried.
    pub async fn update_licence(&self, request: UpdateLicenceRequest) -> Result<LicenceChange> {
        let dataset = request.dataset.clone();
        self.change("UpdateLicence", &dataset, false, request, |mut c, r| async move { c.update_licence(r).await })
            .await
    }

    /// Revokes a licence: a new version whose status is revoked; verifications answer
    /// REVOKED from then on. Not retried.
    pub async fn revoke_licence(&self, request: RevokeLicenceRequest) -> Result<LicenceChange> {
        let dataset = request.dataset.clone();
        self.change("RevokeLicence", &dataset, false, request, |mut c, r| async move { c.revoke_licence(r).await })
            .await
    }

    /// Inserts or replaces one base record (a new version only when it changed). Safe to
    /// retry: the same record twice is one version.
    pub async fn upsert_record(&self, request: UpsertRecordRequest) -> Result<RecordChange> {
        let dataset = request.dataset.clone();
        self.change("UpsertRecord", &dataset, true, request, |mut c, r| async move { c.upsert_record(r).await }).await
    }

    /// A node's access-log and configuration status: what it wrote, what the catalog has
    /// acknowledged, the shipping lag and the version of its federation configuration. Only
    /// the node's own department and auditors may ask.
    pub async fn log_status(&self, dept: &str) -> Result<LogStatus> {
        let target = self.node_target(dept).await?;
        self.call("GetLogStatus", true, || {
            let mut c = target.client.clone();
            let r = self.request(GetLogStatusRequest {});
            async move { c.get_log_status(r).await }
        })
        .await
    }

    /// Imports records into one of the caller's own datasets on its node: the header, then
    /// the chunks, all or nothing. Never retried. `progress(records_sent)` is called as
    /// chunks leave. A bad record is refused (INVALID_ARGUMENT) with its line and field.
    /// For files too large to hold in memory, use [`ExchangeClient::import_stream`].
    pub async fn import<P>(&self, header: ImportHeader, chunks: Vec<ImportChunk>, progress: P) -> Result<ImportSummary>
    where
        P: Fn(u64) + Clone + Send + Sync + 'static,
    {
        self.import_stream(header, futures::stream::iter(chunks.into_iter().map(Ok)), progress).await
    }

    /// Imports records as they are produced, in bounded memory: `chunks` is consumed as the
    /// node takes them. If it yields an error (a bad line of the source, say), the call is
    /// cancelled, so that the node discards what it staged, and that error is returned:
    /// nothing of the import is kept. Never retried.
    pub async fn import_stream<S, P>(&self, header: ImportHeader, chunks: S, progress: P) -> Result<ImportSummary>
    where
        S: futures::Stream<Item = Result<ImportChunk>> + Send + 'static,
        P: Fn(u64) + Clone + Send + Sync + 'static,
    {
        use futures::StreamExt as _;
        use futures::future::Either;
        use futures::stream;

        let target = self.node_target(&provider_of(&header.dataset)?).await?;
        let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<Error>();
        let mut abort_tx = Some(abort_tx);
        let mut sent = 0u64;
        let body = chunks.flat_map(move |item| match item {
            Ok(chunk) => {
                sent += chunk.records.len() as u64;
                progress(sent);
                Either::Left(stream::iter([ImportRequest { part: Some(import_request::Part::Chunk(chunk)) }]))
            }
            // Never end the request stream after a local error: a clean end would let the
            // node commit what it received. Pend, and let the cancellation below reset it.
            Err(error) => {
                if let Some(tx) = abort_tx.take() {
                    let _ = tx.send(error);
                }
                Either::Right(stream::pending())
            }
        });
        let requests = stream::iter([ImportRequest { part: Some(import_request::Part::Header(header)) }]).chain(body);
        // Sent once: an import is never retried, so `call_with_deadline` (whose closure may run
        // again) is not used; its deadline and error mapping are applied here.
        let mut client = target.client.clone();
        let mut request = tonic::Request::new(requests);
        request.set_timeout(IMPORT_TIMEOUT);
        let call = async move {
            match tokio::time::timeout(IMPORT_TIMEOUT + crate::client::DEADLINE_GRACE, client.import(request)).await {
                Ok(Ok(response)) => Ok(response.into_inner()),
                Ok(Err(status)) => Err(Error::from(status)),
                Err(_) => Err(Error::Unavailable(format!("Import: no answer within {IMPORT_TIMEOUT:?}"))),
            }
        };
        tokio::select! {
            result = call => result,
            Ok(error) = abort_rx => Err(error),
        }
    }
}
