//! `exchange demo`: a whole federation on loopback, with demo data and the two service
//! scenarios run end to end through the SDK.
//!
//! It starts, as separate processes ([`exchange_localnet`]), a catalog and three
//! department nodes — public security (人口基础库), market regulation (营业执照) and natural
//! resources (不动产权证书) — each with its own certificate and RocksDB directory under one
//! data directory; registers members, schemas and grants; imports generated data; then runs
//! the rental filing (秒批) and business opening scenarios, and shows their audit trail from
//! the central log with inclusion proofs verified against the signed tree head.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use exchange_client_sdk::{ExchangeClient, NodeAnswer, NodeQuery};
use exchange_localnet::data::{self, DemoData};
use exchange_localnet::{Localnet, default_bin_dir};
use exchange_proto::v1::*;

use exchange_localnet::data::{AMR, AUDIT, GSC, HCB, OPENING, OPS, PNR, PSB, RENTAL};

/// Options of `exchange demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoOptions {
    /// Run the scenarios, stop the federation and exit: 0 only if every scenario passed.
    #[arg(long)]
    pub exit: bool,
    /// Where the federation's files go (certificates, keys, configurations, RocksDB
    /// directories, daemon logs); a fresh temporary folder by default.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Citizens to generate (one company per five citizens, one property per three).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub persons: u32,
    /// Folder holding the `exchange-catalog` and `exchange-node` binaries; by default the
    /// folder of this `exchange` binary.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Starts the federation and connects a client per member.
async fn start(opts: &DemoOptions) -> anyhow::Result<(Localnet, BTreeMap<&'static str, ExchangeClient>)> {
    let dir = match &opts.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "exchange-demo-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
        )),
    };
    let bin_dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => default_bin_dir()?,
    };
    step(&format!("a federation on loopback: a catalog and three department nodes, files in {}", dir.display()));
    let started = Instant::now();
    let net = Localnet::start(data::federation(dir, bin_dir)).await?;
    println!(
        "   federation CA, a certificate per member (department id in the SAN URI), catalog on {} (pinned key {})",
        net.catalog_endpoint(),
        hex::encode(net.catalog_key().as_bytes())
    );
    for name in std::iter::once(exchange_localnet::CATALOG.to_string()).chain(net.nodes()) {
        if let Some(addr) = net.metrics_addr(&name) {
            println!("   metrics of {name:<12} http://{addr}/metrics (Prometheus text format, loopback only)");
        }
    }
    let mut clients = BTreeMap::new();
    for dept in [OPS, PSB, AMR, PNR, HCB, GSC, AUDIT] {
        clients.insert(dept, net.client(dept).await?);
    }
    for m in clients[OPS].list_members().await.context("list members")? {
        println!("   member {:<14} {}", m.dept_id, m.name);
    }
    for d in clients[HCB].list_datasets(ListDatasetsRequest::default()).await.context("list datasets")?.datasets {
        println!("   dataset {:<33} {:<24} personal data: {}", d.id, d.schema, d.personal_data);
    }
    println!("   up in {:?}", started.elapsed());
    Ok((net, clients))
}

fn fields(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ctx(purpose: &str, reason: &str, trace: &str) -> Option<QueryContext> {
    Some(QueryContext { purpose_code: purpose.into(), reason: reason.into(), trace_id: trace.into() })
}

fn person(id: &str) -> Option<Subject> {
    Some(Subject { kind: SubjectKind::Person as i32, id: id.into() })
}

fn show_fields(fields: &[FieldValue]) -> String {
    fields.iter().map(|f| format!("{}={}", f.name, f.value)).collect::<Vec<_>>().join(", ")
}

/// Applies for the demo grants and has the providers approve them.
pub async fn grant_everything(clients: &BTreeMap<&'static str, ExchangeClient>) -> anyhow::Result<()> {
    step("requesters apply for grants, providers approve");
    for (requester, dataset, purpose, item, wanted) in [
        (HCB, "gov.sz.psb/population", RENTAL, "房屋租赁登记备案", &["id_number", "name", "status"][..]),
        (
            HCB,
            "gov.sz.pnr/property-certificate",
            RENTAL,
            "房屋租赁登记备案",
            &["cert_no", "holder_id", "holder_name", "address", "area", "use"][..],
        ),
        (GSC, "gov.sz.psb/population", OPENING, "开办企业", &["name", "birth_date", "status"][..]),
        (
            GSC,
            "gov.sz.amr/business-licence",
            OPENING,
            "开办企业",
            &["licence_no", "credit_code", "entity_name", "status", "founded"][..],
        ),
    ] {
        let grant = clients[requester]
            .apply_grant(ApplyGrantRequest {
                dataset: dataset.into(),
                purposes: vec![purpose.into()],
                fields: fields(wanted),
                consent_required: false,
                rate_limit_per_minute: 600,
                expires_at_unix_ms: 0,
                legal_basis: "《优化营商环境条例》".into(),
                service_item: item.into(),
            })
            .await
            .map_err(|e| anyhow::anyhow!("apply for {dataset}: {e}"))?;
        let provider = dataset.split('/').next().unwrap_or_default();
        let provider = clients.get(provider).with_context(|| format!("no member {provider}"))?;
        provider.approve_grant(&grant.id, "").await.map_err(|e| anyhow::anyhow!("approve {}: {e}", grant.id))?;
        println!(
            "   {} {requester} may read {dataset} [{}] for {purpose} (consent: {})",
            grant.id,
            wanted.join(", "),
            grant.consent_required
        );
    }
    Ok(())
}

/// Imports the generated data into the three nodes.
pub async fn import_data(clients: &BTreeMap<&'static str, ExchangeClient>, data: &DemoData) -> anyhow::Result<()> {
    step("each department imports its data (validated against its schema, all or nothing)");
    for (dept, dataset, rows, valid_from) in [
        (PSB, "gov.sz.psb/population", &data.persons, None),
        (AMR, "gov.sz.amr/business-licence", &data.businesses, Some("founded")),
        (PNR, "gov.sz.pnr/property-certificate", &data.properties, Some("registered")),
    ] {
        let started = Instant::now();
        let (header, chunks) = data::import_request(dataset, &format!("demo-{dataset}"), rows, valid_from);
        let summary =
            clients[dept].import(header, chunks, |_| {}).await.with_context(|| format!("import {dataset}"))?;
        println!(
            "   {dataset:<34} {:>6} records ({} new) in {:?}",
            summary.records_read,
            summary.inserted,
            started.elapsed()
        );
    }
    Ok(())
}

async fn consent_for(
    portal: &ExchangeClient,
    requester: &str,
    subject: &str,
    scopes: &[data::Scope<'_>],
    purpose: &str,
    application: &str,
) -> anyhow::Result<Consent> {
    portal
        .record_consent(data::face_scan_consent(subject, requester, scopes, purpose, application))
        .await
        .context("record consent")
}

/// Scenario 1: rental registration with instant approval (秒批). Returns whether it was
/// approved automatically.
pub async fn rental_filing(clients: &BTreeMap<&'static str, ExchangeClient>, data: &DemoData) -> anyhow::Result<bool> {
    step("scenario 1: rental registration filing (房屋租赁登记备案), instant approval (秒批)");
    let hcb = &clients[HCB];
    let Some(property) = rented_property(data) else { bail!("no property in the demo data") };
    let landlord = property.get("holder_id").cloned().unwrap_or_default();
    let tenant =
        data.persons.iter().filter_map(|p| p.get("id_number")).find(|id| **id != landlord).cloned().unwrap_or_default();
    let cert_no = property.get("cert_no").cloned().unwrap_or_default();
    let application = "ZL-2026-000123";
    println!("   application {application}: a landlord and a tenant both authorise by face scan in the app");
    let started = Instant::now();
    let landlord_consent = consent_for(
        hcb,
        HCB,
        &landlord,
        &[
            ("gov.sz.psb/population", &["id_number", "name", "status"]),
            ("gov.sz.pnr/property-certificate", &["cert_no", "holder_id", "holder_name", "address", "area", "use"]),
        ],
        RENTAL,
        application,
    )
    .await?;
    let tenant_consent = consent_for(
        hcb,
        HCB,
        &tenant,
        &[("gov.sz.psb/population", &["id_number", "name", "status"])],
        RENTAL,
        application,
    )
    .await?;
    let t_landlord_psb = hcb.issue_consent_token(&landlord_consent.id, "gov.sz.psb/population").await?;
    let t_landlord_pnr = hcb.issue_consent_token(&landlord_consent.id, "gov.sz.pnr/property-certificate").await?;
    let t_tenant_psb = hcb.issue_consent_token(&tenant_consent.id, "gov.sz.psb/population").await?;
    println!(
        "   consents {} and {} recorded; 3 consent tokens issued ({:?})",
        landlord_consent.id,
        tenant_consent.id,
        started.elapsed()
    );

    let reason = format!("租赁备案 {application} 核验出租人、承租人身份及房屋权属");
    let started = Instant::now();
    let answers = {
        let queries = vec![
            NodeQuery::Record(GetRecordRequest {
                context: ctx(RENTAL, &reason, application),
                dataset: "gov.sz.psb/population".into(),
                subject: person(&landlord),
                fields: fields(&["name", "status"]),
                consent_token: t_landlord_psb.token.clone(),
                version: 0,
            }),
            NodeQuery::Record(GetRecordRequest {
                context: ctx(RENTAL, &reason, application),
                dataset: "gov.sz.psb/population".into(),
                subject: person(&tenant),
                fields: fields(&["name", "status"]),
                consent_token: t_tenant_psb.token.clone(),
                version: 0,
            }),
            NodeQuery::Licence(GetLicenceRequest {
                context: ctx(RENTAL, &reason, application),
                dataset: "gov.sz.pnr/property-certificate".into(),
                licence_id: cert_no.clone(),
                // The number is asked too: a licence's number and status come only with it.
                fields: fields(&["cert_no", "holder_id", "holder_name", "address", "area", "use"]),
                consent_token: t_landlord_pnr.token.clone(),
                version: 0,
            }),
        ];
        let started_fan = Instant::now();
        let answers = hcb.fan_out(queries).await;
        println!("   fan-out to gov.sz.psb and gov.sz.pnr in parallel: {:?}", started_fan.elapsed());
        answers
    };
    let mut statuses = Vec::new();
    let mut holder_ok = false;
    let mut all_ok = true;
    for answer in answers {
        match answer {
            Ok(NodeAnswer::Record(v)) => {
                let r = v.answer().record.clone().unwrap_or_default();
                let status = r.fields.iter().find(|f| f.name == "status").map(|f| f.value.clone()).unwrap_or_default();
                println!(
                    "   ✔ signed by {} (verified): population record v{}: {}",
                    v.node(),
                    r.version,
                    show_fields(&r.fields)
                );
                statuses.push(status);
            }
            Ok(NodeAnswer::Licence(v)) => {
                let l = v.answer().licence.clone().unwrap_or_default();
                holder_ok = l.fields.iter().any(|f| f.name == "holder_id" && f.value == landlord)
                    && l.status == LicenceStatus::Valid as i32;
                println!(
                    "   ✔ signed by {} (verified): certificate {} v{}: {}",
                    v.node(),
                    l.licence_id,
                    l.version,
                    show_fields(&l.fields)
                );
            }
            Ok(other) => println!("   unexpected answer from {}", other.node()),
            Err(e) => {
                all_ok = false;
                println!("   ✘ {e}");
            }
        }
    }
    let parties_ok = statuses.len() == 2 && statuses.iter().all(|s| s == "normal");
    let approved = all_ok && parties_ok && holder_ok;
    println!(
        "   checks: parties have valid population records: {parties_ok}; the lessor holds the certificate: {holder_ok}"
    );
    println!(
        "   decision: {} in {:?} (no manual step)",
        if approved { "APPROVED automatically" } else { "transferred to a clerk (转人工)" },
        started.elapsed()
    );
    Ok(approved)
}

/// Scenario 2: opening a business (开办企业). Returns whether every step behaved as it must.
pub async fn business_opening(
    clients: &BTreeMap<&'static str, ExchangeClient>,
    data: &DemoData,
) -> anyhow::Result<bool> {
    step("scenario 2: opening a business (开办企业): identity, existing licence, and a refusal");
    let gsc = &clients[GSC];
    let Some(company) = data.businesses.iter().find(|b| b.get("status").map(String::as_str) == Some("active")) else {
        bail!("no active company in the demo data")
    };
    let rep_id = company.get("legal_rep_id").cloned().unwrap_or_default();
    let Some(rep) = data.persons.iter().find(|p| p.get("id_number") == Some(&rep_id)) else {
        bail!("legal representative missing")
    };
    let application = "KB-2026-000456";
    let reason = format!("开办企业 {application} 核验申请人身份与营业执照");
    let consent = consent_for(
        gsc,
        GSC,
        &rep_id,
        &[("gov.sz.psb/population", &["name", "birth_date", "status"])],
        OPENING,
        application,
    )
    .await?;
    let token = gsc.issue_consent_token(&consent.id, "gov.sz.psb/population").await?;
    let claimed = vec![
        ClaimedValue { name: "name".into(), value: rep.get("name").cloned().unwrap_or_default() },
        ClaimedValue { name: "birth_date".into(), value: rep.get("birth_date").cloned().unwrap_or_default() },
    ];
    let started = Instant::now();
    let matched = gsc
        .run_query(NodeQuery::Match(MatchRecordRequest {
            context: ctx(OPENING, &reason, application),
            dataset: "gov.sz.psb/population".into(),
            subject: person(&rep_id),
            claims: claimed,
            consent_token: token.token.clone(),
        }))
        .await
        .context("identity match")?;
    let mut ok = true;
    if let NodeAnswer::Match(v) = &matched {
        let results: Vec<String> = v
            .answer()
            .matches
            .iter()
            .map(|m| format!("{}: {}", m.name, MatchResult::try_from(m.result).map(|r| r.as_str_name()).unwrap_or("?")))
            .collect();
        ok &= v.answer().matches.iter().all(|m| m.result == MatchResult::Match as i32);
        println!(
            "   ✔ signed by {} (verified): identity match (no held value revealed): {} ({:?})",
            v.node(),
            results.join(", "),
            started.elapsed()
        );
    }
    let licence_no = company.get("licence_no").cloned().unwrap_or_default();
    let credit = company.get("credit_code").cloned().unwrap_or_default();
    // The business licence holds personal data (its legal representative): even a verdict
    // needs the company's consent, given here by its representative.
    let mut company_consent = data::face_scan_consent(
        &credit,
        GSC,
        &[("gov.sz.amr/business-licence", &["licence_no", "entity_name", "status"])],
        OPENING,
        application,
    );
    company_consent.subject = Some(Subject { kind: SubjectKind::Organisation as i32, id: credit.clone() });
    let company_consent = gsc.record_consent(company_consent).await.context("record the company's consent")?;
    let company_token = gsc.issue_consent_token(&company_consent.id, "gov.sz.amr/business-licence").await?;
    let verdict = gsc
        .run_query(NodeQuery::VerifyLicence(VerifyLicenceRequest {
            context: ctx(OPENING, &reason, application),
            dataset: "gov.sz.amr/business-licence".into(),
            licence_id: licence_no.clone(),
            holder: Some(Subject { kind: SubjectKind::Organisation as i32, id: credit.clone() }),
            fields: vec![],
            consent_token: company_token.token.clone(),
        }))
        .await
        .context("licence verification")?;
    if let NodeAnswer::VerifyLicence(v) = &verdict {
        let name = Verdict::try_from(v.answer().verdict).map(|r| r.as_str_name()).unwrap_or("?");
        ok &= v.answer().verdict == Verdict::Valid as i32;
        println!(
            "   ✔ signed by {} (verified): licence {licence_no} held by {credit}: {name} (the least data: a verdict)",
            v.node()
        );
    }
    // A field beyond the grant is refused, with a reason a system can route on.
    let refused = gsc
        .run_query(NodeQuery::Licence(GetLicenceRequest {
            context: ctx(OPENING, &reason, application),
            dataset: "gov.sz.amr/business-licence".into(),
            licence_id: licence_no,
            fields: fields(&["entity_name", "legal_rep_id"]),
            consent_token: company_token.token.clone(),
            version: 0,
        }))
        .await;
    match refused {
        Err(e) => {
            let expected = matches!(e.reason(), Some(ReasonCode::FieldNotGranted));
            ok &= expected;
            println!("   ✔ refused as it must be: {e}");
        }
        Ok(_) => {
            ok = false;
            println!("   ✘ a field beyond the grant was served");
        }
    }
    println!(
        "   outcome: {}",
        if ok { "identity and licence confirmed; the refusal names its reason" } else { "FAILED" }
    );
    Ok(ok)
}

/// Shows the audit trail of both applications from the central log, with inclusion
/// proofs verified against the signed tree head.
pub async fn audit_trail(net: &Localnet, clients: &BTreeMap<&'static str, ExchangeClient>) -> anyhow::Result<bool> {
    step("the audit trail in the central log (who read what, when and why), with proofs");
    let auditor = &clients[AUDIT];
    for (dept, status) in net.wait_for_shipping().await? {
        println!("   {dept}: {} log entries written, all shipped", status.last_written);
    }
    let mut all_ok = true;
    for (trace, expected) in [("ZL-2026-000123", 3usize), ("KB-2026-000456", 3usize)] {
        let entries: Vec<LogEntry> = auditor
            .query_access_log(QueryAccessLogRequest { trace_id: trace.into(), ..Default::default() })
            .await
            .context("audit query")?
            .entries
            .into_iter()
            .filter(|e| e.event.as_ref().is_some_and(|e| e.kind == EventKind::Query as i32))
            .collect();
        let head = auditor.verified_tree_head(None).await.map_err(|e| anyhow::anyhow!("tree head: {e}"))?;
        println!("   {trace}: {} entries; signed tree head size {} verified", entries.len(), head.size());
        for entry in &entries {
            let Some(e) = &entry.event else { continue };
            let proof =
                auditor.inclusion_proof(entry.index, head.size()).await.map_err(|e| anyhow::anyhow!("proof: {e}"))?;
            let proved = exchange_client_sdk::log::verify_inclusion_proof(&proof, &head).is_ok();
            all_ok &= proved;
            println!(
                "   #{:<6} {} {} → {} {} [{}] {} {}",
                entry.index,
                e.requester,
                e.action,
                e.dataset,
                Outcome::try_from(e.outcome).map(|o| o.as_str_name()).unwrap_or("?"),
                e.fields.join(","),
                e.subject_digest.get(..12).map(|d| format!("subject {d}…")).unwrap_or_else(|| "no subject".into()),
                if proved { "inclusion ✔" } else { "inclusion ✘" }
            );
        }
        if entries.len() != expected {
            all_ok = false;
            println!("   ✘ expected {expected} query entries for {trace}, found {}", entries.len());
        }
    }
    Ok(all_ok)
}

/// The flat of the rental filing: the first certificate whose holder is a living citizen.
fn rented_property(data: &DemoData) -> Option<&data::Row> {
    data.properties.iter().find(|p| {
        data.persons
            .iter()
            .any(|x| x.get("id_number") == p.get("holder_id") && x.get("status").map(String::as_str) == Some("normal"))
    })
}

fn landlord_of(data: &DemoData) -> Option<String> {
    rented_property(data).and_then(|p| p.get("holder_id").cloned())
}

/// The citizen's own view (查询记录): every read of the landlord's data, through the housing
/// bureau's portal, found by the keyed digest of the resident id (never the id itself).
pub async fn subject_view(clients: &BTreeMap<&'static str, ExchangeClient>, data: &DemoData) -> anyhow::Result<bool> {
    step("the citizen's own view: who read my data, when and why (through a portal)");
    let Some(landlord) = landlord_of(data) else { bail!("no landlord in the demo data") };
    let view = clients[HCB]
        .subject_access_view(SubjectAccessViewRequest { subject: person(&landlord), from_unix_ms: 0, page: None })
        .await
        .context("subject view")?;
    // The portal proves each entry with the entry the view gave it: the proofs it gets carry
    // hashes only, unless it is itself a party to the entry.
    let head = clients[HCB].verified_tree_head(None).await.map_err(|e| anyhow::anyhow!("tree head: {e}"))?;
    let mut reads = 0;
    let mut all_proved = true;
    for entry in &view.entries {
        let Some(e) = &entry.event else { continue };
        if e.kind != EventKind::Query as i32 {
            continue;
        }
        reads += 1;
        let proof =
            clients[HCB].inclusion_proof(entry.index, head.size()).await.map_err(|e| anyhow::anyhow!("proof: {e}"))?;
        let proved = exchange_client_sdk::log::verify_inclusion_of(entry, &proof, &head).is_ok();
        all_proved &= proved;
        println!(
            "   {} {} read {} for {} ({}): {} {}",
            time_of(e.time_unix_ms),
            e.requester,
            e.dataset,
            e.purpose_code,
            e.reason,
            Outcome::try_from(e.outcome).map(|o| o.as_str_name()).unwrap_or("?"),
            if proved { "in the signed log ✔" } else { "in the signed log ✘" }
        );
    }
    // The rental filing read the landlord's population record and property certificate.
    Ok(reads >= 2 && all_proved)
}

/// The time of day in China Standard Time (UTC+8), the federation's time zone.
fn time_of(unix_ms: i64) -> String {
    let secs = unix_ms / 1000 + 8 * 3600;
    format!("{:02}:{:02}:{:02} CST", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// Runs the whole demo. With `exit`, returns once the scenarios ran; otherwise keeps the
/// federation running until Ctrl-C. Returns whether every scenario passed.
pub async fn run(opts: DemoOptions) -> anyhow::Result<bool> {
    let total = Instant::now();
    let data = data::generate(opts.persons as usize);
    let (fed, clients) = start(&opts).await?;
    grant_everything(&clients).await?;
    let version = fed.wait_for_configuration().await?;
    println!("   every node runs federation configuration v{version} (signed by the catalog, verified by each node)");
    import_data(&clients, &data).await?;
    let rental = rental_filing(&clients, &data).await?;
    let opening = business_opening(&clients, &data).await?;
    let audit = audit_trail(&fed, &clients).await? && subject_view(&clients, &data).await?;
    let passed = rental && opening && audit;
    step(&format!(
        "{} ({} citizens, {} companies, {} properties; {:?} in all)",
        if passed { "all scenarios passed" } else { "SOME SCENARIOS FAILED" },
        data.persons.len(),
        data.businesses.len(),
        data.properties.len(),
        total.elapsed()
    ));
    if !opts.exit {
        println!(
            "   the federation keeps running (catalog {}); files and logs in {}",
            fed.catalog_endpoint(),
            fed.dir().display()
        );
        println!("   query it as any member with the exchange command and its profile, e.g.:");
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "exchange".into());
        println!("     {exe} --profile {d}/profiles/{AUDIT}.toml audit verify", d = fed.dir().display());
        println!("     {exe} --profile {d}/profiles/{HCB}.toml dataset list", d = fed.dir().display());
        println!("   Ctrl-C stops it.");
        tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    }
    drop(fed);
    Ok(passed)
}
