//! The federation the benchmark runs against: the demo federation of `localnet` (a catalog and
//! three nodes as separate processes on loopback, mTLS, RocksDB), with grants that carry no
//! rate limit, generated data, and consent tokens recorded and issued as a portal would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use exchange_client_sdk::ExchangeClient;
use exchange_localnet::data::{self, AMR, BUSINESS_LICENCE, GSC, HCB, OPENING, POPULATION, PSB, RENTAL, Row};
use exchange_localnet::{Localnet, default_bin_dir};
use exchange_proto::v1::*;
use tonic::transport::Channel;

/// Subjects (and consent tokens) the query load rotates through.
const SUBJECTS: usize = 32;

/// How the federation is started.
#[derive(Clone, Debug)]
pub struct FedOptions {
    /// Citizens imported before any measurement (the population the queries read).
    pub persons: usize,
    /// Where the federation's folder goes (default: a fresh temporary folder).
    pub data_dir: Option<PathBuf>,
    /// Where the daemons are (default: beside this binary).
    pub bin_dir: Option<PathBuf>,
}

/// A person the housing bureau may read, with a consent token for it.
#[derive(Clone, Debug)]
pub struct Subject {
    /// Resident id.
    pub id: String,
    /// Consent token for the population dataset.
    pub token: String,
}

/// A company the service centre may verify, with the company's consent token.
#[derive(Clone, Debug)]
pub struct Company {
    /// Licence number.
    pub licence_no: String,
    /// Credit code.
    pub credit_code: String,
    /// Consent token for the business-licence dataset.
    pub token: String,
}

/// A running benchmark federation.
pub struct Fed {
    /// The daemons.
    pub net: Localnet,
    /// The housing bureau (requester of population records).
    pub hcb: ExchangeClient,
    /// The service centre (verifies business licences).
    pub gsc: ExchangeClient,
    /// Public security (imports the population).
    pub psb: ExchangeClient,
    /// The people queried.
    pub subjects: Vec<Subject>,
    /// The companies verified.
    pub companies: Vec<Company>,
    /// Rows imported so far into the population (the import section adds after them).
    pub persons_imported: usize,
    _tmp: Option<tempfile::TempDir>,
}

fn in_a_year_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX / 2) + 365 * 24 * 3600 * 1000
}

/// A query context for the benchmark.
pub fn context(purpose: &str) -> Option<QueryContext> {
    Some(QueryContext { purpose_code: purpose.into(), reason: "benchmark".into(), trace_id: String::new() })
}

impl Fed {
    /// Starts the federation, approves the grants, imports the data, records the consents.
    pub async fn start(options: &FedOptions) -> anyhow::Result<Fed> {
        exchange_pki::install_crypto_provider();
        let (tmp, dir) = match &options.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let tmp = tempfile::Builder::new().prefix("exchange-bench-").tempdir().context("temporary folder")?;
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let bin_dir = match &options.bin_dir {
            Some(dir) => dir.clone(),
            None => default_bin_dir()?,
        };
        let mut fed_options = data::federation(dir.join("federation"), bin_dir);
        // Tokens outlive a full run (the longest nodes accept).
        fed_options.token_lifetime_secs = exchange_core::token::MAX_TOKEN_LIFETIME_SECS as u64;
        let net = Localnet::start(fed_options).await.context("start the federation")?;
        let client = |dept: &'static str| {
            let net = &net;
            async move { net.client(dept).await }
        };
        let (hcb, gsc, psb, amr) = (client(HCB).await?, client(GSC).await?, client(PSB).await?, client(AMR).await?);
        for (requester, provider, dataset, purpose, fields) in [
            (&hcb, &psb, POPULATION, RENTAL, &["id_number", "name", "status"][..]),
            (&gsc, &amr, BUSINESS_LICENCE, OPENING, &["licence_no", "status"][..]),
        ] {
            let grant = requester
                .apply_grant(ApplyGrantRequest {
                    dataset: dataset.into(),
                    purposes: vec![purpose.into()],
                    fields: fields.iter().map(|f| f.to_string()).collect(),
                    consent_required: false,
                    // No rate limit: the benchmark measures the path, not the quota.
                    rate_limit_per_minute: 0,
                    expires_at_unix_ms: in_a_year_ms(),
                    legal_basis: "《优化营商环境条例》".into(),
                    service_item: purpose.into(),
                })
                .await
                .with_context(|| format!("apply for a grant on {dataset}"))?;
            provider.approve_grant(&grant.id, "").await.with_context(|| format!("approve the grant on {dataset}"))?;
        }
        let generated = data::generate(options.persons);
        import(&psb, POPULATION, "bench-base", &generated.persons, None).await?;
        import(&amr, BUSINESS_LICENCE, "bench-base", &generated.businesses, Some("founded")).await?;
        net.wait_for_configuration().await.context("nodes take the grants")?;

        let mut subjects = Vec::new();
        for person in generated.persons.iter().filter(|p| p["status"] == "normal").take(SUBJECTS) {
            let id = person["id_number"].clone();
            let consent = data::face_scan_consent(&id, HCB, &[(POPULATION, &["name"])], RENTAL, "BENCH");
            let consent = hcb.record_consent(consent).await.context("record a consent")?;
            let token = hcb.issue_consent_token(&consent.id, POPULATION).await.context("issue a token")?.token;
            subjects.push(Subject { id, token });
        }
        let mut companies = Vec::new();
        for company in generated.businesses.iter().filter(|c| c["status"] == "active").take(SUBJECTS) {
            let mut consent = data::face_scan_consent(
                &company["legal_rep_id"],
                GSC,
                &[(BUSINESS_LICENCE, &["licence_no", "status"])],
                OPENING,
                "BENCH",
            );
            consent.subject = Some(exchange_proto::v1::Subject {
                kind: SubjectKind::Organisation as i32,
                id: company["credit_code"].clone(),
            });
            let consent = gsc.record_consent(consent).await.context("record a company's consent")?;
            let token =
                gsc.issue_consent_token(&consent.id, BUSINESS_LICENCE).await.context("issue a company token")?.token;
            companies.push(Company {
                licence_no: company["licence_no"].clone(),
                credit_code: company["credit_code"].clone(),
                token,
            });
        }
        anyhow::ensure!(!subjects.is_empty() && !companies.is_empty(), "the generated data has nobody to query");
        let fed = Fed { net, hcb, gsc, psb, subjects, companies, persons_imported: generated.persons.len(), _tmp: tmp };
        for dept in [PSB, AMR] {
            fed.wait_serving(dept).await?;
        }
        Ok(fed)
    }

    /// Waits (at most a minute) until `dept`'s node says SERVING: a node that holds the
    /// configuration may still be fetching the subject digest key, and its health turns
    /// SERVING at its next check; a baseline measured before would measure refusals.
    pub async fn wait_serving(&self, dept: &str) -> anyhow::Result<()> {
        use tonic_health::pb::HealthCheckRequest;
        use tonic_health::pb::health_check_response::ServingStatus;
        let mut client = tonic_health::pb::health_client::HealthClient::new(self.node_channel(HCB, dept).await?);
        for _ in 0..600 {
            let status = client.check(HealthCheckRequest { service: String::new() }).await?.into_inner().status();
            if status == ServingStatus::Serving {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("{dept}'s node did not turn SERVING within a minute")
    }

    /// The folder of the federation.
    pub fn dir(&self) -> &Path {
        self.net.dir()
    }

    /// The process id of a running daemon.
    pub fn pid(&self, name: &str) -> anyhow::Result<u32> {
        self.net.pid(name).with_context(|| format!("{name} is not running"))
    }

    /// A connected mTLS channel to `dept`'s node, as `caller` (the SDK's kind of channel:
    /// the federation CA, the caller's certificate, `TCP_NODELAY`).
    pub async fn node_channel(&self, caller: &str, dept: &str) -> anyhow::Result<Channel> {
        let identity = exchange_client_sdk::ClientIdentity::load(&self.net.tls_files(caller))?;
        let tls = exchange_pki::client_tls_config(identity.loaded(), "localhost")?;
        let port = self.net.port(dept).with_context(|| format!("no port for {dept}"))?;
        let endpoint = exchange_pki::https_endpoint(&format!("https://localhost:{port}"), tls)?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        endpoint.connect().await.with_context(|| format!("connect to {dept}'s node"))
    }

    /// The access-log status of `dept`'s node.
    pub async fn log_status(&self, dept: &str) -> anyhow::Result<LogStatus> {
        let client = if dept == PSB { &self.psb } else { &self.hcb };
        client.log_status(dept).await.with_context(|| format!("log status of {dept}"))
    }

    /// Restarts `dept`'s node with `access_log_sync` set as given (the benchmark's switch; the
    /// node refuses it outside the harness).
    pub async fn set_access_log_sync(&mut self, dept: &str, sync: bool) -> anyhow::Result<()> {
        let path = self.dir().join(format!("{dept}.toml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let kept: String =
            text.lines().filter(|l| !l.starts_with("access_log_sync")).map(|l| format!("{l}\n")).collect();
        // A top-level key: before the first table.
        let text = if sync { kept } else { format!("access_log_sync = false\n{kept}") };
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        self.net.kill(dept).await?;
        self.net.restart(dept).await?;
        self.wait_serving(dept).await
    }
}

/// Imports `rows` into `dataset` as its provider.
pub async fn import(
    provider: &ExchangeClient,
    dataset: &str,
    import_id: &str,
    rows: &[Row],
    valid_from: Option<&str>,
) -> anyhow::Result<ImportSummary> {
    let (header, chunks) = data::import_request(dataset, import_id, rows, valid_from);
    provider.import(header, chunks, |_| {}).await.with_context(|| format!("import into {dataset}"))
}
