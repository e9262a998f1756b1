//! End-to-end suites of the Exchange federation: a real catalog and three real nodes started
//! as separate processes on loopback ([`exchange_localnet`]), each with its own
//! certificate and RocksDB directory, driven through the SDK and the `exchange` command line.
//! The suites are in `tests/`; this library is their harness: the demo federation with
//! grants and data, consent tokens (also forged ones, signed with the catalog's key read
//! from its key file), and the central-log lookups every suite asserts with.
//!
//! Waits are bounded and wait for a condition, never for a fixed time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use exchange_client_sdk::{Error, ExchangeClient, NodeAnswer, NodeQuery};
use exchange_core::token::{ConsentClaims, TokenIssuer};
use exchange_localnet::data::{
    self, AMR, BUSINESS_LICENCE, DemoData, GSC, HCB, OPENING, PNR, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL, Row,
};
use exchange_localnet::{Localnet, default_bin_dir};
use exchange_proto::v1::*;

pub use exchange_localnet::data::import_request;

/// The rate limit of the grant the rate-limit case exhausts (GSC on property certificates).
pub const TIGHT_RATE_PER_MINUTE: u32 = 2;

/// The life of the short grant (the housing bureau on business licences, for rental filing).
pub const SHORT_GRANT_MS: i64 = 3000;

/// How a suite wants its federation.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Citizens of the generated data.
    pub persons: usize,
    /// How long nodes serve from a cached configuration while the catalog is away.
    pub config_max_age_secs: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { persons: 300, config_max_age_secs: 300 }
    }
}

/// A running demo federation with grants approved and data imported.
pub struct TestFed {
    /// The daemons.
    pub net: Localnet,
    /// The imported data.
    pub data: DemoData,
    clients: BTreeMap<&'static str, ExchangeClient>,
    _dir: tempfile::TempDir,
}

/// Panics with the whole error chain: the harness serves tests.
pub trait Must<T> {
    /// The value, or a panic naming `what` failed and why.
    fn must(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> Must<T> for Result<T, E> {
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e:#}"),
        }
    }
}

impl<T> Must<T> for Option<T> {
    fn must(self, what: &str) -> T {
        match self {
            Some(v) => v,
            None => panic!("{what}: missing"),
        }
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A query context with a trace id of the caller's choosing.
pub fn ctx(purpose: &str, trace: &str) -> Option<QueryContext> {
    Some(QueryContext { purpose_code: purpose.into(), reason: format!("e2e case {trace}"), trace_id: trace.into() })
}

/// A person subject.
pub fn person(id: &str) -> Option<Subject> {
    Some(Subject { kind: SubjectKind::Person as i32, id: id.into() })
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Waits until `check` returns `Some`, polling every 50 ms, at most `bound`.
pub async fn wait_for<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestFed {
    /// Starts the demo federation in a fresh folder, approves the suites' grants, imports
    /// the generated data and waits until every node has the grants.
    pub async fn start(setup: Setup) -> TestFed {
        exchange_pki::install_crypto_provider();
        let dir = tempfile::tempdir().must("temporary folder");
        let mut options = data::federation(dir.path().join("federation"), default_bin_dir().must("binaries"));
        options.config_max_age_secs = setup.config_max_age_secs;
        let net = Localnet::start(options).await.must("start the federation");
        let mut clients = BTreeMap::new();
        for dept in [data::OPS, PSB, AMR, PNR, HCB, GSC, data::AUDIT] {
            clients.insert(dept, net.client(dept).await.must(dept));
        }
        let fed = TestFed { net, data: data::generate(setup.persons), clients, _dir: dir };
        fed.grant_all().await;
        fed.import_all().await;
        fed.net.wait_for_configuration().await.must("nodes take the grants");
        fed
    }

    /// The client of a member.
    pub fn client(&self, dept: &str) -> &ExchangeClient {
        self.clients.get(dept).unwrap_or_else(|| panic!("no client for {dept}"))
    }

    async fn grant_all(&self) {
        let in_a_year = now_ms() + 365 * 24 * 3600 * 1000;
        for (requester, dataset, purpose, wanted, rate, expires) in [
            (HCB, POPULATION, RENTAL, &["id_number", "name", "status"][..], 6000, in_a_year),
            (
                HCB,
                PROPERTY_CERTIFICATE,
                RENTAL,
                &["cert_no", "holder_id", "holder_name", "address", "area", "use"][..],
                6000,
                in_a_year,
            ),
            (GSC, POPULATION, OPENING, &["name", "birth_date", "status"][..], 6000, in_a_year),
            (
                GSC,
                BUSINESS_LICENCE,
                OPENING,
                &["licence_no", "credit_code", "entity_name", "status", "founded"][..],
                6000,
                in_a_year,
            ),
            (GSC, PROPERTY_CERTIFICATE, OPENING, &["cert_no", "area"][..], TIGHT_RATE_PER_MINUTE, in_a_year),
            // Expires moments after the federation is up: the expired-grant case.
            (HCB, BUSINESS_LICENCE, RENTAL, &["licence_no", "status"][..], 6000, now_ms() + SHORT_GRANT_MS),
        ] {
            let grant = self
                .client(requester)
                .apply_grant(ApplyGrantRequest {
                    dataset: dataset.into(),
                    purposes: vec![purpose.into()],
                    fields: strings(wanted),
                    consent_required: false,
                    rate_limit_per_minute: rate,
                    expires_at_unix_ms: expires,
                    legal_basis: "《优化营商环境条例》".into(),
                    service_item: purpose.into(),
                })
                .await
                .must("apply for a grant");
            let provider = dataset.split('/').next().unwrap_or_default();
            self.client(provider).approve_grant(&grant.id, "").await.must("approve a grant");
        }
    }

    async fn import_all(&self) {
        for (dept, dataset, rows, valid_from) in [
            (PSB, POPULATION, &self.data.persons, None),
            (AMR, BUSINESS_LICENCE, &self.data.businesses, Some("founded")),
            (PNR, PROPERTY_CERTIFICATE, &self.data.properties, Some("registered")),
        ] {
            let (header, chunks) = import_request(dataset, &format!("e2e-{dataset}"), rows, valid_from);
            self.client(dept).import(header, chunks, |_| {}).await.must("import");
        }
    }

    /// A consent recorded by `portal` for `requester`, and its token for `dataset`.
    pub async fn consent_token(
        &self,
        requester: &str,
        subject: &str,
        scopes: &[data::Scope<'_>],
        purpose: &str,
        dataset: &str,
    ) -> (Consent, String) {
        let client = self.client(requester);
        let consent = client
            .record_consent(data::face_scan_consent(subject, requester, scopes, purpose, "E2E"))
            .await
            .must("record consent");
        let token = client.issue_consent_token(&consent.id, dataset).await.must("issue a consent token");
        (consent, token.token)
    }

    /// A token signed with the catalog's own key (read from the federation's key file), with
    /// whatever claims a case needs: the way to make expired, early or mis-bound tokens.
    pub fn forge_token(&self, claims: ConsentClaims) -> String {
        self.forge_token_with("token.pem", claims)
    }

    /// A token signed with one of the catalog's key files (`keys/<file>`), its `kid` that
    /// key's id: a token signed with the checkpoint or configuration key is no token.
    pub fn forge_token_with(&self, file: &str, claims: ConsentClaims) -> String {
        let key = exchange_pki::keyfile::read_signing_key(&self.net.dir().join("keys").join(file))
            .must("catalog signing key");
        TokenIssuer::new(exchange_localnet::LOG_ORIGIN, &key).must("issuer").issue(claims).must("sign")
    }

    /// The query entries of the central log with `trace`, once every node has shipped.
    pub async fn central_entries(&self, trace: &str) -> Vec<AccessEvent> {
        self.net.wait_for_shipping().await.must("shipping");
        self.client(data::AUDIT)
            .query_access_log(QueryAccessLogRequest { trace_id: trace.into(), ..Default::default() })
            .await
            .must("query the central log")
            .entries
            .into_iter()
            .filter_map(|e| e.event)
            .filter(|e| e.kind == EventKind::Query as i32)
            .collect()
    }

    /// Every entry of the central log, in order.
    pub async fn whole_log(&self) -> Vec<LogEntry> {
        let auditor = self.client(data::AUDIT);
        let size = auditor.tree_head().await.must("tree head").size;
        let mut entries = Vec::new();
        while (entries.len() as u64) < size {
            let page = auditor.log_entries(entries.len() as u64, 1000).await.must("log entries");
            assert!(!page.is_empty(), "the log ends before its tree head's size {size}");
            entries.extend(page);
        }
        entries
    }

    /// Runs the `exchange` command line as `dept` (its profile in the federation's folder):
    /// exit code, standard output, standard error.
    pub fn cli(&self, dept: &str, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(default_bin_dir().must("binaries").join("exchange"))
            .arg("--profile")
            .arg(self.net.profile_path(dept))
            .args(args)
            .output()
            .must("run the exchange command line");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A citizen with a normal status who holds a property certificate, and that certificate.
    pub fn landlord(&self) -> (&Row, &Row) {
        self.data
            .properties
            .iter()
            .find_map(|p| {
                self.data
                    .persons
                    .iter()
                    .find(|x| x.get("id_number") == p.get("holder_id") && x["status"] == "normal")
                    .map(|x| (x, p))
            })
            .expect("a landlord in the demo data")
    }

    /// The `grpc.health.v1` status of `dept`'s node (the whole server, service `""`), as a
    /// load balancer sees it: over TLS with the federation CA, without a client certificate.
    pub async fn node_health(&self, dept: &str) -> tonic_health::pb::health_check_response::ServingStatus {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
        let port = self.net.port(dept).must("node port");
        let ca = std::fs::read_to_string(self.net.dir().join("pki/ca.crt")).must("ca certificate");
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
            .must("endpoint")
            .tls_config(tls)
            .must("tls")
            .connect()
            .await
            .must("connect for a health check");
        let answer = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
            .await
            .must("health check");
        answer.into_inner().status()
    }

    /// The `i`-th citizen.
    pub fn citizen(&self, i: usize) -> &Row {
        &self.data.persons[i]
    }
}

/// A population-record query for `subject` by the housing bureau.
pub fn record_query(subject: &str, fields: &[&str], token: &str, trace: &str) -> NodeQuery {
    NodeQuery::Record(GetRecordRequest {
        context: ctx(RENTAL, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        fields: strings(fields),
        consent_token: token.into(),
        version: 0,
    })
}

/// The refusal of a query that must be refused: its status code, reason and message.
pub fn refusal(result: exchange_client_sdk::Result<NodeAnswer>) -> (tonic::Code, ReasonCode, String) {
    match result {
        Err(Error::Refused { code, reason, message, .. }) => (code, reason, message),
        Err(other) => panic!("expected a refusal, got the error {other}"),
        Ok(answer) => panic!("expected a refusal, got data from {}", answer.node()),
    }
}
