//! The `exchange` command line against a real federation: consent, tokens and queries as a
//! department system's operator would script them (`--json`, exit codes), and imports that
//! are refused whole with the line and field at fault, then accepted, then idempotent.

use std::io::Write as _;

use exchange_localnet::data::{self, HCB, POPULATION, PSB, RENTAL};
use exchange_tests::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn write_jsonl(path: &std::path::Path, rows: &[data::Row]) {
    let mut file = std::fs::File::create(path).expect("create file");
    for row in rows {
        writeln!(file, "{}", serde_json::to_string(row).expect("row json")).expect("write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_query_and_import_through_the_command_line() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord = fed.landlord().0.clone();
    let id = landlord["id_number"].as_str();

    // Consent and token, as the housing bureau's portal.
    let (code, out, err) = fed.cli(
        HCB,
        &[
            "--json",
            "consent",
            "record",
            "--subject",
            id,
            "--requester",
            HCB,
            "--dataset",
            POPULATION,
            "--fields",
            "name,status",
            "--purpose",
            RENTAL,
            "--method",
            "face-scan",
            "--evidence-ref",
            "cli-e2e",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let consent = json(&out);
    let consent_id = consent["id"].as_str().expect("consent id").to_string();
    let (code, out, err) = fed.cli(HCB, &["--json", "consent", "token", &consent_id, "--dataset", POPULATION]);
    assert_eq!(code, 0, "{err}");
    let token = json(&out)["token"].as_str().expect("token").to_string();

    // A query: only the verified answer is printed.
    let query = |fields: &str| {
        fed.cli(
            HCB,
            &[
                "--json",
                "query",
                "record",
                "--dataset",
                POPULATION,
                "--purpose",
                RENTAL,
                "--reason",
                "租赁备案 CLI-E2E",
                "--subject",
                id,
                "--token",
                &token,
                "--fields",
                fields,
                "--trace-id",
                "CLI-E2E",
            ],
        )
    };
    let (code, out, err) = query("name");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&landlord["name"]), "{out}");
    assert!(!out.contains(&landlord["address"]), "a field not asked for is not printed: {out}");
    // Beyond the grant: exit 2, a machine-readable refusal on stderr, no data.
    let (code, out, err) = query("birth_date");
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no data printed: {out}");
    let refusal = json(err.trim());
    assert_eq!(refusal["refusal"]["reason"], "FIELD_NOT_GRANTED", "{err}");

    // Imports, as public security: a bad line near the end refuses the whole file.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("newcomers.jsonl");
    let persons = fed.data.persons.len();
    let mut newcomers = data::generate(persons + 2_000).persons.split_off(persons);
    let good = newcomers[1_989]["id_number"].clone();
    let mut broken = good.clone();
    broken.replace_range(17.., if good.ends_with('0') { "1" } else { "0" });
    newcomers[1_989].insert("id_number".into(), broken);
    write_jsonl(&file, &newcomers);
    let file_arg = file.to_str().expect("path");
    let count = || async { fed.client(PSB).describe_datasets(PSB).await.must("describe")[0].record_count };
    let before = count().await;
    let (code, out, err) = fed.cli(PSB, &["import", "--dataset", POPULATION, file_arg]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("line 1990") && err.contains("id_number"), "the refusal names the line and the field: {err}");
    assert_eq!(count().await, before, "nothing of a refused file is kept");

    // A line that is not JSON at all is found while the file streams: the upload is
    // cancelled, the node keeps nothing, and the local error names the line (exit 1).
    write_jsonl(&file, &newcomers[..1_499]);
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).expect("append");
        writeln!(f, "{{not json").expect("write");
    }
    let (code, out, err) = fed.cli(PSB, &["import", "--chunk", "100", "--dataset", POPULATION, file_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("line 1500: not JSON"), "{err}");
    assert_eq!(count().await, before, "nothing of a cancelled upload is kept");

    newcomers[1_989].insert("id_number".into(), good);
    write_jsonl(&file, &newcomers);
    let (code, out, err) = fed.cli(PSB, &["--json", "import", "--dataset", POPULATION, file_arg]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["inserted"], 2_000, "{out}");
    assert_eq!(count().await, before + 2_000);
    // The node republishes its datasets after a change: the catalog shows the new count.
    let catalog = fed.client(HCB).clone();
    wait_for("the catalog shows the new record count", std::time::Duration::from_secs(20), || {
        let catalog = catalog.clone();
        async move {
            let d = catalog.get_dataset(POPULATION).await.ok()?;
            (d.record_count == before + 2_000 && d.last_updated_unix_ms > 0).then_some(())
        }
    })
    .await;
    let (code, out, err) = fed.cli(PSB, &["--json", "import", "--dataset", POPULATION, file_arg]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["inserted"], 0, "re-importing the same file changes nothing: {out}");
    assert_eq!(count().await, before + 2_000);

    // One change at a time, as the provider's operator: a record upserted (a new version
    // only when it changed), a licence issued then revoked.
    let mut person: Vec<String> = Vec::new();
    for (k, v) in &fed.data.persons[0] {
        person.push("--field".into());
        person.push(format!("{k}={}", if k == "address" { "深圳市南山区科技园路1号" } else { v }));
    }
    let mut upsert = vec!["--json", "record", "upsert", "--dataset", POPULATION];
    upsert.extend(person.iter().map(String::as_str));
    let (code, out, err) = fed.cli(PSB, &upsert);
    assert_eq!(code, 0, "{err}");
    assert_eq!((json(&out)["version"].as_u64(), json(&out)["changed"].as_bool()), (Some(2), Some(true)), "{out}");
    let (code, out, err) = fed.cli(PSB, &upsert);
    assert_eq!(code, 0, "{err}");
    assert_eq!((json(&out)["version"].as_u64(), json(&out)["changed"].as_bool()), (Some(2), Some(false)), "{out}");

    let company = &fed.data.businesses[0];
    let mut licence: Vec<String> = Vec::new();
    for (k, v) in company {
        licence.push("--field".into());
        licence.push(format!("{k}={}", if k == "licence_no" { "SZ-AMR-2026-800001" } else { v }));
    }
    let mut issue =
        vec!["--json", "licence", "issue", "--dataset", data::BUSINESS_LICENCE, "--valid-from", "2026-01-01"];
    issue.extend(licence.iter().map(String::as_str));
    let (code, out, err) = fed.cli(data::AMR, &issue);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["version"], 1, "{out}");
    let revoke =
        ["--json", "licence", "revoke", "SZ-AMR-2026-800001", "--dataset", data::BUSINESS_LICENCE, "--reason", "吊销"];
    let (code, _, err) = fed.cli(HCB, &revoke);
    assert_eq!(code, 2, "only the provider changes its licences: {err}");
    let (code, out, err) = fed.cli(data::AMR, &revoke);
    assert_eq!(code, 0, "{err}");
    assert_eq!((json(&out)["version"].as_u64(), json(&out)["status"].as_str()), (Some(2), Some("revoked")), "{out}");

    // Another department's dataset: refused, exit 2.
    let (code, _, err) = fed.cli(HCB, &["import", "--dataset", POPULATION, file_arg]);
    assert_eq!(code, 2, "{err}");
}
