//! The query path (bare call, authorized query without client checks, the SDK with signature
//! verification), the access log's durability, and verification of licences (核验).

use exchange_localnet::data::{AMR, BUSINESS_LICENCE, HCB, OPENING, POPULATION, PSB, RENTAL};
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::fed::{Fed, context};
use crate::load::{LoadResult, Window, closed_loop};

/// The three ways of calling the node, side by side at each number in flight.
#[derive(Clone, Debug, Serialize)]
pub struct QueryPoint {
    /// Calls in flight.
    pub in_flight: usize,
    /// `grpc.health.v1` Check on the same node over the same mTLS: the baseline.
    pub bare: LoadResult,
    /// GetRecord (consent token, projection, synced access-log entry, signature), the answer
    /// not checked by the client.
    pub authorized: LoadResult,
    /// The same through the SDK, which verifies the node's signature over the canonical form.
    pub sdk: LoadResult,
    /// SDK throughput over the baseline's.
    pub throughput_ratio: f64,
    /// SDK p99 over the baseline's.
    pub p99_ratio: f64,
}

fn record_request(fed: &Fed, i: usize) -> GetRecordRequest {
    let subject = &fed.subjects[i % fed.subjects.len()];
    GetRecordRequest {
        context: context(RENTAL),
        dataset: POPULATION.into(),
        subject: Some(exchange_proto::v1::Subject { kind: SubjectKind::Person as i32, id: subject.id.clone() }),
        fields: vec!["name".into()],
        consent_token: subject.token.clone(),
        version: 0,
    }
}

fn requests(fed: &Fed) -> Vec<GetRecordRequest> {
    (0..fed.subjects.len()).map(|i| record_request(fed, i)).collect()
}

/// The bare baseline: a health check on the population node.
pub async fn bare(fed: &Fed, in_flight: usize, window: Window) -> anyhow::Result<LoadResult> {
    let client = HealthClient::new(fed.node_channel(HCB, PSB).await?);
    Ok(closed_loop(in_flight, window, fed.pid(PSB)?, move |_, _| {
        let mut client = client.clone();
        async move {
            let answer =
                client.check(HealthCheckRequest { service: String::new() }).await.map_err(|s| s.to_string())?;
            match answer.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(format!("health {other:?}")),
            }
        }
    })
    .await)
}

/// The authorized query, its answer not checked by the client.
pub async fn authorized(fed: &Fed, in_flight: usize, window: Window) -> anyhow::Result<LoadResult> {
    let client = NodeClient::new(fed.node_channel(HCB, PSB).await?);
    let requests = requests(fed);
    Ok(closed_loop(in_flight, window, fed.pid(PSB)?, move |w, i| {
        let mut client = client.clone();
        let request = requests[(w + i as usize) % requests.len()].clone();
        async move {
            let answer = client.get_record(request).await.map_err(|s| s.to_string())?.into_inner();
            if answer.record.is_none() { Err("an answer without the record".into()) } else { Ok(()) }
        }
    })
    .await)
}

/// The authorized query through the SDK, every answer's signature verified.
pub async fn sdk(fed: &Fed, in_flight: usize, window: Window) -> anyhow::Result<LoadResult> {
    let client = fed.hcb.clone();
    let requests = requests(fed);
    Ok(closed_loop(in_flight, window, fed.pid(PSB)?, move |w, i| {
        let client = client.clone();
        let request = requests[(w + i as usize) % requests.len()].clone();
        async move {
            let answer = client.get_record(request).await.map_err(|e| e.to_string())?;
            if answer.answer().record.is_none() { Err("an answer without the record".into()) } else { Ok(()) }
        }
    })
    .await)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Section 1: the three ways at each number in flight.
pub async fn query_path(fed: &Fed, in_flight: &[usize], window: Window) -> anyhow::Result<Vec<QueryPoint>> {
    let mut points = Vec::new();
    for &n in in_flight {
        eprintln!("exchange-bench: query path, {n} in flight");
        let bare = bare(fed, n, window).await?;
        let authorized = authorized(fed, n, window).await?;
        let sdk = sdk(fed, n, window).await?;
        points.push(QueryPoint {
            in_flight: n,
            throughput_ratio: ratio(sdk.per_sec, bare.per_sec),
            p99_ratio: ratio(sdk.p99_ms, bare.p99_ms),
            bare,
            authorized,
            sdk,
        });
    }
    Ok(points)
}

/// One durability setting at one number in flight.
#[derive(Clone, Debug, Serialize)]
pub struct DurabilityPoint {
    /// Whether the access log's group writes were synced.
    pub synced: bool,
    /// The authorized query (no client checks).
    pub load: LoadResult,
    /// Access-log entries written during the run (warm-up included).
    pub entries: u64,
    /// Group writes (one disk sync each when synced) during the run.
    pub group_writes: u64,
    /// Group writes per entry: below 1 when queries shared a write (group commit).
    pub writes_per_query: f64,
}

/// Section 2: the authorized query with the access log synced, then not synced (the node
/// restarted with `access_log_sync = false`, allowed under the harness only), then synced again.
pub async fn durability(fed: &mut Fed, in_flight: &[usize], window: Window) -> anyhow::Result<Vec<DurabilityPoint>> {
    let mut points = Vec::new();
    for synced in [true, false] {
        fed.set_access_log_sync(PSB, synced).await?;
        for &n in in_flight {
            eprintln!(
                "exchange-bench: durability, access log {}, {n} in flight",
                if synced { "synced" } else { "not synced" }
            );
            let before = fed.log_status(PSB).await?;
            let load = authorized(fed, n, window).await?;
            let after = fed.log_status(PSB).await?;
            let entries = after.last_written.saturating_sub(before.last_written);
            // The counter restarts with the node; both readings are of this run of it.
            let group_writes = after.log_syncs.saturating_sub(before.log_syncs);
            points.push(DurabilityPoint {
                synced,
                load,
                entries,
                group_writes,
                writes_per_query: ratio(group_writes as f64, entries as f64),
            });
        }
    }
    fed.set_access_log_sync(PSB, true).await?;
    Ok(points)
}

/// Section 5: verification of business licences (核验) through the SDK: a verdict, no field.
pub async fn verify_licences(fed: &Fed, in_flight: &[usize], window: Window) -> anyhow::Result<Vec<LoadResult>> {
    let requests: Vec<VerifyLicenceRequest> = fed
        .companies
        .iter()
        .map(|c| VerifyLicenceRequest {
            context: context(OPENING),
            dataset: BUSINESS_LICENCE.into(),
            licence_id: c.licence_no.clone(),
            holder: Some(exchange_proto::v1::Subject {
                kind: SubjectKind::Organisation as i32,
                id: c.credit_code.clone(),
            }),
            fields: vec![],
            consent_token: c.token.clone(),
        })
        .collect();
    let mut out = Vec::new();
    for &n in in_flight {
        eprintln!("exchange-bench: verify licence, {n} in flight");
        let client = fed.gsc.clone();
        let requests = requests.clone();
        out.push(
            closed_loop(n, window, fed.pid(AMR)?, move |w, i| {
                let client = client.clone();
                let request = requests[(w + i as usize) % requests.len()].clone();
                async move {
                    let answer = client.verify_licence(request).await.map_err(|e| e.to_string())?;
                    if answer.answer().verdict == Verdict::Valid as i32 {
                        Ok(())
                    } else {
                        Err(format!("verdict {}", answer.answer().verdict))
                    }
                }
            })
            .await,
        );
    }
    Ok(out)
}
