//! The HTTP/JSON gateway as a legacy system meets it: the `exchange-gateway` daemon started
//! for the housing bureau against a real federation, called with curl and Python `requests`
//! only (no Rust client): authentication, consent and token, a verified record with its
//! evidence, refusals carrying gRPC code, reason and field, the calling system's name in the
//! central log's trace id, and the OpenAPI document.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use exchange_localnet::data::{self, HCB, POPULATION, PSB, RENTAL};
use exchange_localnet::default_bin_dir;
use exchange_tests::*;

const CALLER: &str = "rental-system";

/// The gateway process, stopped when the test ends however it ends.
struct Gateway {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").must("bind").local_addr().must("addr").port()
}

/// Runs curl; returns (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-sS", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().must("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn start_gateway(fed: &TestFed, dir: &Path) -> Gateway {
    let bin = default_bin_dir().must("binaries").join("exchange-gateway");
    let out = Command::new(&bin).args(["caller-token", "--name", CALLER]).output().must("caller-token");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = printed.lines().find_map(|l| l.strip_prefix("token: ")).must("a token line").to_owned();
    let entry = &printed[printed.find("[[callers]]").must("a callers entry")..];
    assert!(!entry.contains(&token), "the configuration entry must hold the token's hash, not the token");
    let port = free_port();
    let config = dir.join("gateway.toml");
    let profile = fed.net.profile_path(HCB);
    std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\nprofile = \"{}\"\n\n{entry}", profile.display()))
        .must("write the gateway configuration");
    let log = std::fs::File::create(dir.join("gateway.log")).must("log file");
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(log.try_clone().must("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .must("start exchange-gateway");
    let base = format!("http://127.0.0.1:{port}");
    let gateway = Gateway { child, base, token };
    let health = format!("{}/healthz", gateway.base);
    wait_for("the gateway answers", Duration::from_secs(30), || {
        let health = health.clone();
        async move { (curl(&[&health]).0 == 200).then_some(()) }
    })
    .await;
    gateway
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_system_queries_through_the_gateway_with_plain_http() {
    let fed = TestFed::start(Setup::default()).await;
    let dir = tempfile::tempdir().must("temporary folder");
    let gw = start_gateway(&fed, dir.path()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let bearer = format!("Authorization: Bearer {}", gw.token);
    let url = |path: &str| format!("{}{path}", gw.base);

    // Without a token, or with another, nothing is done.
    let body = r#"{"context":{"purposeCode":"SZ-HCB-ZLBA-001","reason":"x"},"dataset":"gov.sz.psb/population"}"#;
    for auth in [None, Some("Authorization: Bearer not-a-token")] {
        let mut args = vec!["-X", "POST", "-H", "Content-Type: application/json", "--data", body];
        if let Some(a) = auth {
            args.extend(["-H", a]);
        }
        let record_url = url("/v1/records/get");
        args.push(&record_url);
        let (status, text) = curl(&args);
        let e = &json(&text)["error"];
        assert_eq!(
            (status, e["kind"].as_str(), e["code"].as_str()),
            (401, Some("unauthenticated"), Some("UNAUTHENTICATED"))
        );
    }

    // Python requests: consent by face scan, a token, the record, its evidence.
    let consent = data::face_scan_consent(&landlord_id, HCB, &[(POPULATION, &["name", "status"])], RENTAL, "GW");
    let script = r#"
import json, os, sys, requests
base, headers = os.environ["GW"], {"Authorization": "Bearer " + os.environ["GW_TOKEN"]}
consent = requests.post(base + "/v1/consents", json=json.loads(os.environ["CONSENT"]), headers=headers, timeout=10)
consent.raise_for_status()
token = requests.post(base + "/v1/consent-tokens", headers=headers, timeout=10,
                      json={"consentId": consent.json()["id"], "dataset": os.environ["DATASET"]})
token.raise_for_status()
query = {"context": {"purposeCode": os.environ["PURPOSE"], "reason": "rental filing", "traceId": "gw-ok"},
         "dataset": os.environ["DATASET"], "subject": {"kind": "SUBJECT_KIND_PERSON", "id": os.environ["SUBJECT"]},
         "fields": ["name", "status"], "consentToken": token.json()["token"]}
answer = requests.post(base + "/v1/records/get", json=query, headers=headers, timeout=10)
print(json.dumps({"status": answer.status_code, "body": answer.json(), "token": token.json()["token"]}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("GW", &gw.base)
        .env("GW_TOKEN", &gw.token)
        .env("CONSENT", serde_json::to_string(&consent).must("consent json"))
        .env("DATASET", POPULATION)
        .env("PURPOSE", RENTAL)
        .env("SUBJECT", &landlord_id)
        .output()
        .must("python3 with requests (./scripts/test installs it when missing)");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let result = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(result["status"], 200, "{result}");
    let answer = &result["body"];
    assert_eq!((answer["node"].as_str(), answer["verified"].as_bool()), (Some(PSB), Some(true)), "{answer}");
    assert_eq!(answer["signedDigest"].as_str().map(str::len), Some(64), "{answer}");
    let fields: Vec<&str> = answer["answer"]["record"]["fields"]
        .as_array()
        .must("record fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(fields, ["name", "status"]);
    let name = &answer["answer"]["record"]["fields"][0];
    assert!(name.to_string().contains(&landlord["name"]), "the held name comes back: {name}");
    let token = result["token"].as_str().must("token").to_owned();

    // A field beyond the grant: the node's refusal, with its code, reason and field, over HTTP.
    let beyond = serde_json::json!({
        "context": {"purposeCode": RENTAL, "reason": "rental filing", "traceId": "gw-beyond"},
        "dataset": POPULATION, "subject": {"kind": "SUBJECT_KIND_PERSON", "id": landlord_id},
        "fields": ["name", "birth_date"], "consentToken": token,
    })
    .to_string();
    let record_url = url("/v1/records/get");
    let (status, text) =
        curl(&["-X", "POST", "-H", &bearer, "-H", "Content-Type: application/json", "--data", &beyond, &record_url]);
    let e = &json(&text)["error"];
    assert_eq!(status, 403, "{text}");
    assert_eq!(
        (e["kind"].as_str(), e["code"].as_str(), e["grpcCode"].as_i64()),
        (Some("refused"), Some("PERMISSION_DENIED"), Some(7))
    );
    assert_eq!(e["reason"].as_str(), Some("FIELD_NOT_GRANTED"), "{text}");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("birth_date") && !m.contains(&landlord_id)), "{text}");

    // A batch: each item answered with its evidence or refused with its own reason, in order.
    let other = fed.citizen(7)["id_number"].clone();
    assert_ne!(other, landlord_id);
    let batch = serde_json::json!({
        "context": {"purposeCode": RENTAL, "reason": "rental filing", "traceId": "gw-batch"},
        "dataset": POPULATION,
        "items": [
            {"subject": {"kind": "SUBJECT_KIND_PERSON", "id": landlord_id}, "fields": ["name"], "consentToken": token},
            {"subject": {"kind": "SUBJECT_KIND_PERSON", "id": other}, "fields": ["name"]},
        ],
    })
    .to_string();
    let batch_url = url("/v1/records/batch-get");
    let (status, text) =
        curl(&["-X", "POST", "-H", &bearer, "-H", "Content-Type: application/json", "--data", &batch, &batch_url]);
    assert_eq!(status, 200, "{text}");
    let items = json(&text)["items"].as_array().cloned().must("items");
    assert_eq!(items.len(), 2, "{text}");
    assert_eq!((items[0]["verified"].as_bool(), items[0]["node"].as_str()), (Some(true), Some(PSB)), "{text}");
    assert_eq!(items[1]["error"]["reason"].as_str(), Some("CONSENT_REQUIRED"), "{text}");
    assert!(!text.contains(&other), "the refused item's subject is not repeated: {text}");

    // A body that is not the request message: a precise 400 before anything is sent on.
    let (status, text) = curl(&["-X", "POST", "-H", &bearer, "--data", "{\"fieldz\": 1}", &record_url]);
    assert_eq!(status, 400, "{text}");
    assert!(json(&text)["error"]["message"].as_str().is_some_and(|m| m.contains("GetRecordRequest")), "{text}");

    // The central log names the calling system in the trace of each query.
    for trace in ["gw-ok", "gw-beyond"] {
        let entries = fed.central_entries(&format!("{CALLER}:{trace}")).await;
        assert_eq!(entries.len(), 1, "{trace}: one central entry under the caller's trace");
    }
    let served = fed.central_entries(&format!("{CALLER}:gw-ok")).await;
    assert_eq!(served[0].requester, HCB);

    // The department's own audit view, and the OpenAPI document.
    let audit = serde_json::json!({"traceId": format!("{CALLER}:gw-ok")}).to_string();
    let (status, text) = curl(&["-X", "POST", "-H", &bearer, "--data", &audit, &url("/v1/audit/query")]);
    assert_eq!(status, 200, "{text}");
    assert!(json(&text)["entries"].as_array().is_some_and(|e| !e.is_empty()), "{text}");
    let (status, text) = curl(&[&url("/openapi.json")]);
    assert_eq!(status, 200);
    let doc = json(&text);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in
        ["/v1/records/get", "/v1/licences/verify", "/v1/records/batch-get", "/v1/consent-tokens", "/v1/audit/query"]
    {
        assert!(doc["paths"][path].is_object(), "the document describes {path}");
    }
}
