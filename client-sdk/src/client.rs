//! The client: a connection to the catalog, node connections learnt from the verified
//! federation configuration, and the typed catalog calls.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use exchange_core::checkpoint::{Checkpoint, NoteVerifier};
use exchange_core::ident::DatasetId;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use tonic::transport::Channel;

use crate::config::{ClientConfig, ClientIdentity, RetryPolicy};
use crate::error::{Error, Result};
use crate::log::{verify_tree_head, verify_tree_head_by_any};
use crate::verify::{FederationView, VerifiedGroups, verify_federation_config};

/// Extra time past the deadline sent to the server before the client gives up by itself.
pub(crate) const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// A client of the Exchange federation, for one calling department.
///
/// Cheap to clone (clones share connections and the cached federation configuration). Every
/// call has a deadline; reads and queries are retried with backoff when the service is
/// UNAVAILABLE, catalog mutations never. Every node answer is verified before it is returned.
///
/// ```no_run
/// use std::time::Duration;
/// use exchange_client_sdk::{ClientConfig, ClientIdentity, ExchangeClient, config::parse_public_key_hex};
/// use exchange_pki::TlsFiles;
///
/// # async fn run() -> exchange_client_sdk::Result<()> {
/// let identity = ClientIdentity::load(&TlsFiles::in_dir("tls", "gov.sz.hcb"))?;
/// let catalog_key = parse_public_key_hex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")?;
/// let mut config = ClientConfig::new(identity, "https://127.0.0.1:7400", "localhost", "gov.sz.exchange", catalog_key);
/// config.timeout = Duration::from_secs(5);
/// let client = ExchangeClient::connect(config).await?;
/// let federation = client.federation().await?;
/// println!("federation configuration version {}", federation.version());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ExchangeClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: ClientIdentity,
    catalog: CatalogClient<Channel>,
    /// The pinned configuration keys: the current one first, then the next when given.
    catalog_keys: Vec<VerifyingKey>,
    timeout: Duration,
    retry: RetryPolicy,
    node_server_name: Option<String>,
    view: RwLock<Option<Arc<FederationView>>>,
    config_max_age: Duration,
    /// Held by the one call that refreshes an aged configuration; the others use the cached one.
    refreshing: tokio::sync::Mutex<()>,
    nodes: Mutex<HashMap<String, NodeClient<Channel>>>,
    endpoint_overrides: RwLock<HashMap<String, String>>,
    /// The node group statements verified so far (one Ed25519 check per group commit).
    groups: VerifiedGroups,
}

/// A node to call: where, and the key its answers must be signed with.
#[derive(Clone, Debug)]
pub(crate) struct NodeTarget {
    pub(crate) dept: String,
    pub(crate) client: NodeClient<Channel>,
    /// The node's keys: its signing key first, then the ones published beside it.
    pub(crate) keys: Vec<VerifyingKey>,
}

fn lazy_channel(identity: &ClientIdentity, uri: &str, server_name: &str, timeout: Duration) -> Result<Channel> {
    let tls = exchange_pki::client_tls_config(identity.loaded(), server_name)?;
    let endpoint = exchange_pki::https_endpoint(uri, tls).map_err(|e| Error::InvalidInput(e.to_string()))?;
    Ok(lazy(endpoint, timeout))
}

fn lazy(endpoint: tonic::transport::Endpoint, timeout: Duration) -> Channel {
    endpoint.connect_timeout(timeout.min(Duration::from_secs(5))).tcp_nodelay(true).connect_lazy()
}

/// The host of an `https://host:port` endpoint, without IPv6 brackets.
fn host_of(endpoint: &str) -> Result<String> {
    let uri: tonic::codegen::http::Uri =
        endpoint.parse().map_err(|e| Error::Config(format!("node endpoint {endpoint:?} is not a URI: {e}")))?;
    let host = uri.host().ok_or_else(|| Error::Config(format!("node endpoint {endpoint:?} names no host")))?;
    Ok(host.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// The provider department of a dataset id `<provider>/<name>`.
pub fn provider_of(dataset: &str) -> Result<String> {
    let id = DatasetId::parse(dataset).map_err(|e| Error::InvalidInput(format!("dataset {dataset:?}: {e}")))?;
    Ok(id.provider().as_str().to_owned())
}

macro_rules! catalog_call {
    ($self:ident, $method:ident, $retry:expr, $msg:expr) => {{
        let msg = $msg;
        $self
            .call(stringify!($method), $retry, || {
                let mut client = $self.inner.catalog.clone();
                let request = $self.request(msg.clone());
                async move { client.$method(request).await }
            })
            .await
    }};
}

/// Retry reads.
const READ: bool = true;
/// Never retry mutations.
const MUTATION: bool = false;

impl ExchangeClient {
    /// Prepares the connections (lazily: nothing is sent until the first call). The
    /// federation configuration is fetched and verified on first need.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        let ClientConfig {
            identity,
            catalog_endpoint,
            catalog_server_name,
            catalog_id,
            catalog_public_key,
            catalog_next_key,
            timeout,
            retry,
            node_server_name,
            config_max_age,
        } = config;
        let endpoint = exchange_pki::pinned_https_endpoint(
            &catalog_endpoint,
            identity.loaded(),
            &catalog_server_name,
            &catalog_id,
        )
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let channel = lazy(endpoint, timeout);
        Ok(Self {
            inner: Arc::new(Inner {
                identity,
                catalog: CatalogClient::new(channel),
                catalog_keys: std::iter::once(catalog_public_key).chain(catalog_next_key).collect(),
                timeout,
                retry,
                node_server_name,
                view: RwLock::new(None),
                config_max_age,
                refreshing: tokio::sync::Mutex::new(()),
                nodes: Mutex::new(HashMap::new()),
                endpoint_overrides: RwLock::new(HashMap::new()),
                groups: VerifiedGroups::default(),
            }),
        })
    }

    /// The node group statements this client verified and remembers (canonical form
    /// version 3: the other answers of a group commit are checked by their path alone).
    pub fn verified_groups(&self) -> &VerifiedGroups {
        &self.inner.groups
    }

    /// The calling department, as its certificate names it.
    pub fn dept_id(&self) -> &str {
        self.inner.identity.dept_id()
    }

    /// The pinned catalog configuration key (the current one).
    pub fn catalog_key(&self) -> &VerifyingKey {
        &self.inner.catalog_keys[0]
    }

    /// The configuration keys a configuration may be signed with now: the pinned ones and
    /// those the last verified configuration lists (how the client follows the catalog's
    /// switch to a published next key without re-pinning).
    pub fn trusted_config_keys(&self) -> Vec<VerifyingKey> {
        let mut trusted = self.inner.catalog_keys.clone();
        if let Some(view) = self.inner.view.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let listed = view.catalog_keys(exchange_proto::v1::KeyPurpose::Configuration);
            trusted.extend(listed.into_iter().filter(|k| !self.inner.catalog_keys.contains(k)));
        }
        trusted
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Uses `endpoint` for `dept`'s node instead of the one in the federation configuration
    /// (e.g. an operator's address for a node not yet registered with its endpoint). Answers
    /// are still verified with the node key from the configuration.
    pub fn set_node_endpoint(&self, dept: &str, endpoint: &str) {
        let mut map = self.inner.endpoint_overrides.write().unwrap_or_else(|p| p.into_inner());
        map.insert(dept.to_owned(), endpoint.to_owned());
    }

    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.inner.timeout);
        request
    }

    /// Runs one call with the deadline, retrying UNAVAILABLE when `retry` is set.
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, retry: bool, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with_deadline(what, retry, self.inner.timeout, f).await
    }

    pub(crate) async fn call_with_deadline<T, F, Fut>(
        &self,
        what: &'static str,
        retry: bool,
        deadline: Duration,
        f: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let attempts = if retry { self.inner.retry.attempts.max(1) } else { 1 };
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(deadline + DEADLINE_GRACE, f()).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => Error::from(status),
                Err(_) => Error::Unavailable(format!("{what}: no answer within {deadline:?}")),
            };
            if attempt >= attempts || !error.is_retryable() {
                return Err(error);
            }
            attempt += 1;
            let backoff = self.inner.retry.backoff(attempt);
            tracing::debug!(what, attempt, ?backoff, %error, "retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    // ------------------------------------------------------------------------------------
    // Federation configuration

    /// The verified federation configuration, fetched on first use, cached, and fetched again
    /// once older than [`ClientConfig::config_max_age`]. A suspended provider is refused
    /// (PERMISSION_DENIED, MEMBER_SUSPENDED) without a call to its node.
    pub async fn federation(&self) -> Result<Arc<FederationView>> {
        let cached = self.inner.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(view) = cached else { return self.refresh_config().await };
        if view.age() <= self.inner.config_max_age {
            return Ok(view);
        }
        // One caller refreshes; the others go on with the configuration they have.
        let Ok(_refreshing) = self.inner.refreshing.try_lock() else { return Ok(view) };
        match self.refresh_config().await {
            Ok(fresh) => Ok(fresh),
            // The catalog cannot be reached, or what answers is not the pinned catalog: keep
            // what was verified (nodes enforce their own freshness and refuse when stale).
            Err(e) if e.is_retryable() || matches!(e, Error::Tls(_) | Error::Transport(_)) => {
                tracing::warn!(version = view.version(), age_s = view.age().as_secs(), error = %e,
                    "federation configuration could not be refreshed; using the last verified one");
                Ok(view)
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches the federation configuration again, verifies it with a trusted configuration
    /// key ([`ExchangeClient::trusted_config_keys`]; a bad signature is
    /// [`Error::BadSignature`]) and caches it.
    pub async fn refresh_config(&self) -> Result<Arc<FederationView>> {
        let signed = catalog_call!(self, get_federation_config, READ, GetFederationConfigRequest::default())?;
        let view = Arc::new(verify_federation_config(&signed, &self.trusted_config_keys())?);
        let mut slot = self.inner.view.write().unwrap_or_else(|p| p.into_inner());
        // Never go back to an older version than one already verified.
        if let Some(old) = slot.as_ref()
            && old.version() > view.version()
        {
            return Ok(old.clone());
        }
        *slot = Some(view.clone());
        tracing::debug!(version = view.version(), "federation configuration verified");
        Ok(view)
    }

    fn lookup(&self, view: &FederationView, dept: &str) -> Result<(String, Vec<VerifyingKey>)> {
        let info = view.node(dept).ok_or_else(|| {
            Error::Config(format!("{dept} is not a member of the federation (version {})", view.version()))
        })?;
        if info.suspended {
            // Its node may still run, but nothing it signs may be taken as the federation's.
            return Err(Error::Refused {
                code: tonic::Code::PermissionDenied,
                reason: ReasonCode::MemberSuspended,
                message: format!(
                    "{dept} is suspended in the federation configuration (version {}): its node's answers are not to be trusted",
                    view.version()
                ),
                field: String::new(),
                retry_after: None,
            });
        }
        if info.keys.is_empty() {
            return Err(Error::Config(format!(
                "{dept} has no node signing key in the federation configuration: its answers cannot be verified"
            )));
        }
        let overridden = self.inner.endpoint_overrides.read().unwrap_or_else(|p| p.into_inner()).get(dept).cloned();
        let endpoint = match overridden {
            Some(e) => e,
            None if !info.endpoint.is_empty() => info.endpoint.clone(),
            None => return Err(Error::Config(format!("{dept} has no node endpoint in the federation configuration"))),
        };
        Ok((endpoint, info.keys.clone()))
    }

    /// The node of `dept`, with its key; re-fetches the configuration once when the node,
    /// its key or its endpoint is unknown.
    pub(crate) async fn node_target(&self, dept: &str) -> Result<NodeTarget> {
        let view = self.federation().await?;
        let (endpoint, keys) = match self.lookup(&view, dept) {
            Ok(found) => found,
            Err(_) => {
                let view = self.refresh_config().await?;
                self.lookup(&view, dept)?
            }
        };
        let client = self.node_client(&endpoint)?;
        Ok(NodeTarget { dept: dept.to_owned(), client, keys })
    }

    fn node_client(&self, endpoint: &str) -> Result<NodeClient<Channel>> {
        let mut nodes = self.inner.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = nodes.get(endpoint) {
            return Ok(client.clone());
        }
        let server_name = match &self.inner.node_server_name {
            Some(name) => name.clone(),
            None => host_of(endpoint)?,
        };
        let channel = lazy_channel(&self.inner.identity, endpoint, &server_name, self.inner.timeout)?;
        let client = NodeClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
        nodes.insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }

    /// The keys of `dept`'s node after a refresh of the configuration.
    pub(crate) async fn refreshed_node_keys(&self, dept: &str) -> Result<Vec<VerifyingKey>> {
        let view = self.refresh_config().await?;
        Ok(view.node(dept).map(|n| n.keys.clone()).unwrap_or_default())
    }

    // ------------------------------------------------------------------------------------
    // Members

    /// Registers a member (role operator).
    pub async fn register_member(&self, member: Member) -> Result<Member> {
        catalog_call!(self, register_member, MUTATION, RegisterMemberRequest { member: Some(member) })
    }

    /// Changes a member (role operator).
    pub async fn update_member(&self, request: UpdateMemberRequest) -> Result<Member> {
        catalog_call!(self, update_member, MUTATION, request)
    }

    /// Suspends a member (role operator).
    pub async fn suspend_member(&self, dept_id: &str, reason: &str) -> Result<Member> {
        catalog_call!(
            self,
            suspend_member,
            MUTATION,
            SuspendMemberRequest { dept_id: dept_id.into(), reason: reason.into() }
        )
    }

    /// Gets a member.
    pub async fn get_member(&self, dept_id: &str) -> Result<Member> {
        catalog_call!(self, get_member, READ, GetMemberRequest { dept_id: dept_id.into() })
    }

    /// Lists the members.
    pub async fn list_members(&self) -> Result<Vec<Member>> {
        Ok(catalog_call!(self, list_members, READ, ListMembersRequest {})?.members)
    }

    // ------------------------------------------------------------------------------------
    // Schemas

    /// Registers a schema version from its JSON definition (role operator).
    pub async fn register_schema(&self, definition_json: &str) -> Result<SchemaVersion> {
        exchange_core::schema::Schema::from_json(definition_json)
            .map_err(|e| Error::InvalidInput(format!("schema definition: {e}")))?;
        catalog_call!(
            self,
            register_schema,
            MUTATION,
            RegisterSchemaRequest { definition_json: definition_json.into() }
        )
    }

    /// Gets a schema version (`version` 0: the latest).
    pub async fn get_schema(&self, name: &str, version: u32) -> Result<SchemaVersion> {
        catalog_call!(self, get_schema, READ, GetSchemaRequest { name: name.into(), version })
    }

    /// Lists the schemas (latest version of each, or every version).
    pub async fn list_schemas(&self, all_versions: bool) -> Result<Vec<SchemaVersion>> {
        Ok(catalog_call!(self, list_schemas, READ, ListSchemasRequest { all_versions })?.schemas)
    }

    // ------------------------------------------------------------------------------------
    // Datasets

    /// Publishes one of the caller's datasets (role department).
    pub async fn publish_dataset(&self, dataset: Dataset) -> Result<Dataset> {
        catalog_call!(self, publish_dataset, MUTATION, PublishDatasetRequest { dataset: Some(dataset) })
    }

    /// Gets a dataset of the catalog.
    pub async fn get_dataset(&self, id: &str) -> Result<Dataset> {
        catalog_call!(self, get_dataset, READ, GetDatasetRequest { id: id.into() })
    }

    /// Lists or searches the catalog (one page).
    pub async fn list_datasets(&self, request: ListDatasetsRequest) -> Result<ListDatasetsResponse> {
        catalog_call!(self, list_datasets, READ, request)
    }

    // ------------------------------------------------------------------------------------
    // Grants

    /// Applies for a grant; the caller is the requester (role department).
    pub async fn apply_grant(&self, request: ApplyGrantRequest) -> Result<Grant> {
        catalog_call!(self, apply_grant, MUTATION, request)
    }

    /// Approves a pending grant on one of the caller's datasets.
    pub async fn approve_grant(&self, grant_id: &str, note: &str) -> Result<Grant> {
        catalog_call!(
            self,
            approve_grant,
            MUTATION,
            DecideGrantRequest { grant_id: grant_id.into(), note: note.into() }
        )
    }

    /// Rejects a pending grant on one of the caller's datasets.
    pub async fn reject_grant(&self, grant_id: &str, note: &str) -> Result<Grant> {
        catalog_call!(self, reject_grant, MUTATION, DecideGrantRequest { grant_id: grant_id.into(), note: note.into() })
    }

    /// Revokes a grant (its requester or provider).
    pub async fn revoke_grant(&self, grant_id: &str, note: &str) -> Result<Grant> {
        catalog_call!(self, revoke_grant, MUTATION, DecideGrantRequest { grant_id: grant_id.into(), note: note.into() })
    }

    /// Lists the grants the caller may see.
    pub async fn list_grants(&self, request: ListGrantsRequest) -> Result<Vec<Grant>> {
        Ok(catalog_call!(self, list_grants, READ, request)?.grants)
    }

    // ------------------------------------------------------------------------------------
    // Consent

    /// Records a subject's consent (role portal): one call per subject.
    pub async fn record_consent(&self, request: RecordConsentRequest) -> Result<Consent> {
        catalog_call!(self, record_consent, MUTATION, request)
    }

    /// Issues a short-lived consent token for one dataset of a consent given to the caller.
    /// Safe to retry: a token is a read of the consent.
    pub async fn issue_consent_token(&self, consent_id: &str, dataset: &str) -> Result<ConsentToken> {
        catalog_call!(
            self,
            issue_consent_token,
            READ,
            IssueConsentTokenRequest { consent_id: consent_id.into(), dataset: dataset.into() }
        )
    }

    /// Revokes a consent.
    pub async fn revoke_consent(&self, consent_id: &str, reason: &str) -> Result<Consent> {
        catalog_call!(
            self,
            revoke_consent,
            MUTATION,
            RevokeConsentRequest { consent_id: consent_id.into(), reason: reason.into() }
        )
    }

    // ------------------------------------------------------------------------------------
    // Central access log

    /// The catalog's tree head as sent, not verified: see [`ExchangeClient::verified_tree_head`].
    pub async fn tree_head(&self) -> Result<TreeHead> {
        catalog_call!(self, get_tree_head, READ, GetTreeHeadRequest {})
    }

    /// Fetches the signed tree head and verifies it: with `verifier` when given (a `vkey`
    /// from the operator), else with the checkpoint keys the verified federation
    /// configuration lists, under its log origin. The size and root sent beside the note must be the
    /// signed ones.
    pub async fn verified_tree_head(&self, verifier: Option<&NoteVerifier>) -> Result<Checkpoint> {
        let head = self.tree_head().await?;
        self.check_tree_head(&head, verifier).await
    }

    /// Verifies a tree head already fetched, as [`ExchangeClient::verified_tree_head`] does.
    pub async fn check_tree_head(&self, head: &TreeHead, verifier: Option<&NoteVerifier>) -> Result<Checkpoint> {
        let checkpoint = match verifier {
            Some(v) => verify_tree_head(&head.checkpoint, v)?,
            None => {
                let view = self.federation().await?;
                let checkpoint = verify_tree_head_by_any(&head.checkpoint, &view.log_verifiers()?)?;
                if checkpoint.origin() != view.log_origin() {
                    return Err(Error::BadSignature(format!(
                        "tree head is for log {:?}, the federation's log is {:?}",
                        checkpoint.origin(),
                        view.log_origin()
                    )));
                }
                checkpoint
            }
        };
        if checkpoint.size() != head.size || checkpoint.root().as_bytes()[..] != head.root_hash[..] {
            return Err(Error::BadSignature("tree head: the size or root sent differs from the signed one".into()));
        }
        Ok(checkpoint)
    }

    /// An inclusion proof of entry `index` in the tree of `tree_size` (0: current).
    pub async fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<InclusionProof> {
        catalog_call!(self, get_inclusion_proof, READ, GetInclusionProofRequest { index, tree_size })
    }

    /// A consistency proof between two tree sizes (`new_size` 0: current).
    pub async fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<ConsistencyProof> {
        catalog_call!(
            self,
            get_consistency_proof,
            READ,
            GetConsistencyProofRequest { old_size, new_size, old_root: Vec::new() }
        )
    }

    /// A consistency proof from a head the caller kept (`old_size`, `old_root`) to `new_size`
    /// (0: current). The catalog compares `old_root` with its own root at `old_size` first: a
    /// head of another history (a fork) is refused FAILED_PRECONDITION / LOG_FORK, with both
    /// roots in the message, rather than answered with a proof that cannot verify.
    pub async fn consistency_proof_from(
        &self,
        old_size: u64,
        old_root: &exchange_core::merkle::Hash,
        new_size: u64,
    ) -> Result<ConsistencyProof> {
        let request = GetConsistencyProofRequest { old_size, new_size, old_root: old_root.as_bytes().to_vec() };
        catalog_call!(self, get_consistency_proof, READ, request)
    }

    /// Log entries from `start`, at most `count` (role auditor).
    pub async fn log_entries(&self, start: u64, count: u32) -> Result<Vec<LogEntry>> {
        Ok(catalog_call!(self, get_log_entries, READ, GetLogEntriesRequest { start, count })?.entries)
    }

    /// Queries the central log (one page).
    pub async fn query_access_log(&self, request: QueryAccessLogRequest) -> Result<QueryAccessLogResponse> {
        catalog_call!(self, query_access_log, READ, request)
    }

    /// A subject's "who read my data" view (role portal; one page).
    pub async fn subject_access_view(&self, request: SubjectAccessViewRequest) -> Result<QueryAccessLogResponse> {
        catalog_call!(self, subject_access_view, READ, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_endpoints() {
        assert_eq!(host_of("https://127.0.0.1:7401").ok().as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("https://localhost:7401").ok().as_deref(), Some("localhost"));
        assert_eq!(host_of("https://[::1]:7401").ok().as_deref(), Some("::1"));
    }

    #[test]
    fn providers_are_taken_from_dataset_ids() {
        assert_eq!(provider_of("gov.sz.psb/population").ok().as_deref(), Some("gov.sz.psb"));
        assert!(matches!(provider_of("population"), Err(Error::InvalidInput(_))));
    }
}
