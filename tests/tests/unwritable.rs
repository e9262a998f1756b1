//! An access log that cannot be written: the node's process gets a file-size limit of one
//! byte (RLIMIT_FSIZE, as a quota or a full disk would), so neither its RocksDB write-ahead
//! log nor its own log file can grow. Queries are then refused, never answered, and the
//! node stays up and says why; its health service says NOT_SERVING.

use std::process::Command;

use exchange_localnet::data::{HCB, POPULATION, PSB, RENTAL};
use exchange_proto::v1::ReasonCode;
use exchange_tests::*;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_refused_when_the_access_log_cannot_be_written() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    hcb.run_query(record_query(&landlord_id, &["name"], &token, "writable")).await.must("served while writable");

    let pid = fed.net.pid(PSB).expect("node pid");

    let limited = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg("--fsize=1:1")
        .status()
        .expect("run prlimit (util-linux)");
    assert!(limited.success(), "prlimit failed");

    for i in 0..3 {
        let result = hcb.run_query(record_query(&landlord_id, &["name"], &token, &format!("unwritable-{i}"))).await;
        if !matches!(result, Err(exchange_client_sdk::Error::Refused { .. })) {
            let log = std::fs::read_to_string(fed.net.log_path(PSB)).unwrap_or_default();
            let alive = Command::new("kill").arg("-0").arg(pid.to_string()).status().map(|s| s.success());
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            panic!("query {i}: {result:?}\nalive: {alive:?}\n{status}\nnode log:\n{log}");
        }
        let (code, reason, message) = refusal(result);
        assert_eq!((code, reason), (tonic::Code::Unavailable, ReasonCode::AccessLogUnavailable), "{message}");
        assert!(message.contains("access log"), "{message}");
    }
    // The node is up and says so; it serves nothing it cannot log.
    let status = fed.client(PSB).log_status(PSB).await.must("the node is still up");
    assert!(status.last_written >= 1, "{status:?}");
    // Its health tells the truth: NOT_SERVING while the log cannot be written. (Lifting the
    // limit does not bring writes back: after a failed write-ahead-log write RocksDB keeps
    // refusing writes until the node restarts, and the health stays NOT_SERVING until then.)
    assert_eq!(fed.node_health(PSB).await, ServingStatus::NotServing, "health while the log is unwritable");
}
