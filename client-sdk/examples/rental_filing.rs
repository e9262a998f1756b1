//! Rental registration with instant approval (秒批), as a housing bureau's system does it.
//!
//! Copy this program and adapt it. It:
//! 1. records, through the citizen portal, each party's consent (the tenant for the
//!    population record, the landlord for the property certificate);
//! 2. obtains a consent token for each dataset, as the housing bureau;
//! 3. queries both provider nodes in parallel, each with its token, purpose and reason;
//! 4. gets back only answers whose node signatures verified (the SDK refuses any other);
//! 5. decides with no manual step, or routes the case to a person with the reason.
//!
//! Settings (environment variables):
//! - `EXCHANGE_CATALOG` (default `https://127.0.0.1:7400`), `EXCHANGE_CATALOG_NAME`
//!   (default `localhost`), `EXCHANGE_CATALOG_ID` (default `gov.sz.exchange`), `EXCHANGE_CATALOG_KEY` (hex or a key file);
//! - `EXCHANGE_TLS_DIR`: holds `ca.crt`, and `<dept>.crt`/`<dept>.key` for the housing bureau
//!   (`HOUSING_DEPT`, default `gov.sz.hcb`) and the portal (`PORTAL_DEPT`, default `gov.sz.portal`);
//! - `TENANT_ID`, `LANDLORD_ID`: the parties' resident IDs.
//!
//! Run: `cargo run -p exchange-client-sdk --example rental_filing`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use exchange_client_sdk::config::read_public_key;
use exchange_client_sdk::{ClientConfig, ClientIdentity, Error, ExchangeClient, NodeAnswer, NodeQuery};
use exchange_pki::TlsFiles;
use exchange_proto::v1::*;

const POPULATION: &str = "gov.sz.psb/population";
const PROPERTY: &str = "gov.sz.pnr/property-certificate";
/// The service item code of rental filing (房屋租赁登记备案).
const PURPOSE: &str = "SZ-HCB-ZLBA-001";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn person(id: &str) -> Option<Subject> {
    Some(Subject { kind: SubjectKind::Person as i32, id: id.to_owned() })
}

async fn client(dept: &str) -> anyhow::Result<ExchangeClient> {
    let tls_dir = env("EXCHANGE_TLS_DIR", "tls");
    let identity =
        ClientIdentity::load(&TlsFiles::in_dir(&tls_dir, dept)).with_context(|| format!("identity of {dept}"))?;
    let key = read_public_key(&env("EXCHANGE_CATALOG_KEY", "catalog.pub")).context("catalog key")?;
    let mut config = ClientConfig::new(
        identity,
        env("EXCHANGE_CATALOG", "https://127.0.0.1:7400"),
        env("EXCHANGE_CATALOG_NAME", "localhost"),
        env("EXCHANGE_CATALOG_ID", "gov.sz.exchange"),
        key,
    );
    config.timeout = Duration::from_secs(5);
    Ok(ExchangeClient::connect(config).await?)
}

/// The portal records one party's consent (after the party authorised it by face scan).
async fn consent_of(
    portal: &ExchangeClient,
    housing: &str,
    subject_id: &str,
    dataset: &str,
    fields: &[&str],
    application: &str,
) -> exchange_client_sdk::Result<Consent> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    portal
        .record_consent(RecordConsentRequest {
            subject: person(subject_id),
            requester: housing.to_owned(),
            scopes: vec![ConsentScope {
                dataset: dataset.to_owned(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            }],
            purpose_code: PURPOSE.to_owned(),
            expires_at_unix_ms: now + 7 * 24 * 3600 * 1000,
            evidence: Some(ConsentEvidence {
                method: ConsentMethod::FaceScan as i32,
                channel: ConsentChannel::Online as i32,
                reference: format!("{application}-{subject_id}"),
            }),
            application_id: application.to_owned(),
            ..Default::default()
        })
        .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exchange_pki::install_crypto_provider();
    let housing_dept = env("HOUSING_DEPT", "gov.sz.hcb");
    let housing = client(&housing_dept).await?;
    let portal = client(&env("PORTAL_DEPT", "gov.sz.portal")).await?;
    let tenant = env("TENANT_ID", "11010519491231002X");
    let landlord = env("LANDLORD_ID", "440304198001010011");
    let application = "ZL-2024-000123";
    let context = Some(QueryContext {
        purpose_code: PURPOSE.to_owned(),
        reason: format!("{application}: 房屋租赁登记备案, check tenant identity and landlord title"),
        trace_id: application.to_owned(),
    });

    // 1. One consent per party.
    let tenant_consent =
        consent_of(&portal, &housing_dept, &tenant, POPULATION, &["name", "status"], application).await?;
    let landlord_consent =
        consent_of(&portal, &housing_dept, &landlord, PROPERTY, &["cert_no", "address", "area"], application).await?;

    // 2. Short-lived tokens, one per dataset.
    let tenant_token = housing.issue_consent_token(&tenant_consent.id, POPULATION).await?;
    let landlord_token = housing.issue_consent_token(&landlord_consent.id, PROPERTY).await?;

    // 3 and 4. Both providers at once; each answer is verified before we see it.
    let started = std::time::Instant::now();
    let results = housing
        .fan_out(vec![
            NodeQuery::Record(GetRecordRequest {
                context: context.clone(),
                dataset: POPULATION.to_owned(),
                subject: person(&tenant),
                fields: vec!["name".into(), "status".into()],
                consent_token: tenant_token.token,
                version: 0,
            }),
            NodeQuery::ListLicences(ListLicencesRequest {
                context,
                dataset: PROPERTY.to_owned(),
                holder: person(&landlord),
                // A certificate's status comes with its number (the schema's key field) only.
                fields: vec!["cert_no".into(), "address".into(), "area".into()],
                consent_token: landlord_token.token,
            }),
        ])
        .await;
    println!("both providers answered in {:?}", started.elapsed());

    // 5. Decide.
    let mut reasons = Vec::new();
    for result in &results {
        match result {
            Ok(NodeAnswer::Record(a)) => {
                println!("population record: signature verified ({}, key {})", a.node(), a.key_id());
                let status = a.record.iter().flat_map(|r| &r.fields).find(|f| f.name == "status");
                if status.map(|f| f.value.as_str()) != Some("normal") {
                    reasons.push("the tenant's population record is not in normal status".to_owned());
                }
            }
            Ok(NodeAnswer::ListLicences(a)) => {
                println!("property certificates: signature verified ({}, key {})", a.node(), a.key_id());
                if !a.licences.iter().any(|l| l.status == LicenceStatus::Valid as i32) {
                    reasons.push("the landlord holds no valid property certificate".to_owned());
                }
            }
            Ok(other) => reasons.push(format!("unexpected answer from {}", other.node())),
            Err(Error::Refused { reason, message, .. }) => {
                reasons.push(format!("refused ({}): {message}", exchange_client_sdk::error::reason_name(*reason)));
            }
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if reasons.is_empty() {
        println!("application {application}: approved with no manual step (秒批)");
    } else {
        println!("application {application}: routed to a person (转人工):");
        for r in reasons {
            println!("  - {r}");
        }
    }
    Ok(())
}
