//! Every query form over a real federation, and the licence lifecycle as the provider's own
//! systems drive it: list a holder's licences, the batch forms (each item with its own
//! status), issue / update / revoke with versions, and verdicts (valid, expired, revoked,
//! unknown, holder mismatch) that carry nothing beyond the verdict.

use std::collections::HashMap;

use exchange_localnet::data::{AMR, BUSINESS_LICENCE, GSC, HCB, OPENING, POPULATION};
use exchange_proto::v1::*;
use exchange_tests::*;

fn organisation(code: &str) -> Option<Subject> {
    Some(Subject { kind: SubjectKind::Organisation as i32, id: code.into() })
}

fn verify(licence: &str, holder: &str, token: &str, trace: &str) -> VerifyLicenceRequest {
    VerifyLicenceRequest {
        context: ctx(OPENING, trace),
        dataset: BUSINESS_LICENCE.into(),
        licence_id: licence.into(),
        holder: organisation(holder),
        fields: vec![],
        consent_token: token.into(),
    }
}

/// The business licence dataset holds personal data (the legal representative), so every
/// query of it needs the company's consent: recorded for the service centre, and its token.
async fn company_token(fed: &TestFed, code: &str) -> String {
    let mut request = exchange_localnet::data::face_scan_consent(
        code,
        GSC,
        &[(BUSINESS_LICENCE, &["licence_no", "credit_code", "entity_name", "status", "founded"])],
        OPENING,
        "E2E-forms",
    );
    request.subject = organisation(code);
    let client = fed.client(GSC);
    let consent = client.record_consent(request).await.must("record a company's consent");
    client.issue_consent_token(&consent.id, BUSINESS_LICENCE).await.must("issue a consent token").token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_form_and_the_licence_lifecycle() {
    let fed = TestFed::start(Setup::default()).await;
    let gsc = fed.client(GSC).clone();
    let amr = fed.client(AMR).clone();
    let companies: Vec<_> = fed.data.businesses.iter().take(3).cloned().collect();
    let mut tokens = Vec::new();
    for c in &companies {
        tokens.push(company_token(&fed, &c["credit_code"]).await);
    }

    // A holder's licences.
    let listed = gsc
        .list_licences(ListLicencesRequest {
            context: ctx(OPENING, "forms-list"),
            dataset: BUSINESS_LICENCE.into(),
            holder: organisation(&companies[0]["credit_code"]),
            fields: vec!["licence_no".into(), "entity_name".into()],
            consent_token: tokens[0].clone(),
        })
        .await
        .must("list licences");
    let numbers: Vec<&str> = listed.answer().licences.iter().map(|l| l.licence_id.as_str()).collect();
    assert_eq!(numbers, [companies[0]["licence_no"].as_str()]);
    assert_eq!(listed.answer().licences[0].fields.len(), 2);

    // Batches: each item answers for itself.
    let got = gsc
        .batch_get_licences(BatchGetLicencesRequest {
            context: ctx(OPENING, "forms-batch-get"),
            dataset: BUSINESS_LICENCE.into(),
            items: vec![
                LicenceItem {
                    licence_id: companies[1]["licence_no"].clone(),
                    fields: vec!["status".into()],
                    consent_token: tokens[1].clone(),
                },
                LicenceItem {
                    licence_id: "SZ-AMR-1999-000000".into(),
                    fields: vec!["status".into()],
                    consent_token: tokens[1].clone(),
                },
                LicenceItem {
                    licence_id: companies[2]["licence_no"].clone(),
                    fields: vec!["legal_rep_id".into()],
                    consent_token: tokens[2].clone(),
                },
            ],
        })
        .await
        .must("batch get");
    assert_eq!(got.len(), 3);
    let first = got[0].as_ref().expect("first item served");
    assert_eq!(first.answer().licence.as_ref().expect("licence").fields[0].value, companies[1]["status"]);
    assert!(
        matches!(&got[1], Err(exchange_client_sdk::Error::Refused { code: tonic::Code::NotFound, .. })),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2].as_ref().err().and_then(|e| e.reason()), Some(ReasonCode::FieldNotGranted));

    let verdicts = gsc
        .batch_verify_licences(BatchVerifyLicencesRequest {
            context: ctx(OPENING, "forms-batch-verify"),
            dataset: BUSINESS_LICENCE.into(),
            items: companies
                .iter()
                .zip(&tokens)
                .map(|(c, token)| VerifyItem {
                    licence_id: c["licence_no"].clone(),
                    holder: organisation(&c["credit_code"]),
                    fields: vec![],
                    consent_token: token.clone(),
                })
                .chain(std::iter::once(VerifyItem {
                    licence_id: companies[0]["licence_no"].clone(),
                    holder: organisation(&companies[1]["credit_code"]),
                    fields: vec![],
                    consent_token: tokens[1].clone(),
                }))
                .collect(),
        })
        .await
        .must("batch verify");
    let got: Vec<i32> = verdicts.iter().map(|v| v.as_ref().expect("verdict").answer().verdict).collect();
    let expected: Vec<i32> = companies
        .iter()
        .map(|c| if c["status"] == "active" { Verdict::Valid as i32 } else { Verdict::Revoked as i32 })
        .chain([Verdict::HolderMismatch as i32])
        .collect();
    assert_eq!(got, expected, "{companies:?}");
    assert!(verdicts.iter().flatten().all(|v| v.answer().fields.is_empty()), "a verdict and nothing more");

    let lists = gsc
        .batch_list_licences(BatchListLicencesRequest {
            context: ctx(OPENING, "forms-batch-list"),
            dataset: BUSINESS_LICENCE.into(),
            items: companies
                .iter()
                .zip(&tokens)
                .map(|(c, token)| HolderItem {
                    holder: organisation(&c["credit_code"]),
                    fields: vec!["licence_no".into()],
                    consent_token: token.clone(),
                })
                .collect(),
        })
        .await
        .must("batch list");
    for (list, company) in lists.iter().zip(&companies) {
        let licences = &list.as_ref().expect("list").answer().licences;
        assert_eq!(licences.len(), 1);
        assert_eq!(licences[0].licence_id, company["licence_no"]);
    }

    let people: Vec<_> = fed.data.persons.iter().take(2).cloned().collect();
    let mut items = Vec::new();
    for p in &people {
        let (_, token) = fed.consent_token(GSC, &p["id_number"], &[(POPULATION, &["name"])], OPENING, POPULATION).await;
        items.push(MatchItem {
            subject: person(&p["id_number"]),
            claims: vec![ClaimedValue { name: "name".into(), value: p["name"].clone() }],
            consent_token: token,
        });
    }
    items[1].claims[0].value.push('x');
    let matches = gsc
        .batch_match_records(BatchMatchRecordsRequest {
            context: ctx(OPENING, "forms-batch-match"),
            dataset: POPULATION.into(),
            items,
        })
        .await
        .must("batch match");
    let results: Vec<i32> = matches.iter().map(|m| m.as_ref().expect("match").answer().matches[0].result).collect();
    assert_eq!(results, [MatchResult::Match as i32, MatchResult::NoMatch as i32]);

    // The lifecycle, driven by market regulation's own systems.
    let holder = companies[0]["credit_code"].clone();
    let mut fields: HashMap<String, String> = fed.data.businesses[0].clone().into_iter().collect();
    fields.insert("licence_no".into(), "SZ-AMR-2026-900001".into());
    fields.insert("status".into(), "active".into());
    let issued = amr
        .issue_licence(IssueLicenceRequest {
            dataset: BUSINESS_LICENCE.into(),
            fields: fields.clone(),
            valid_from: "2026-01-01".into(),
            valid_until: String::new(),
        })
        .await
        .must("issue");
    assert_eq!((issued.version, issued.status), (1, LicenceStatus::Valid as i32));
    let v = gsc
        .verify_licence(verify("SZ-AMR-2026-900001", &holder, &tokens[0], "forms-life-1"))
        .await
        .must("verify issued");
    assert_eq!((v.answer().verdict, v.answer().version), (Verdict::Valid as i32, 1));

    fields.insert("entity_name".into(), "深圳市更名后有限公司".into());
    let update = UpdateLicenceRequest {
        dataset: BUSINESS_LICENCE.into(),
        licence_id: "SZ-AMR-2026-900001".into(),
        fields: fields.clone(),
        expected_version: 1,
        valid_from: "2026-01-01".into(),
        valid_until: String::new(),
    };
    let updated = amr.update_licence(update.clone()).await.must("update");
    assert_eq!(updated.version, 2);
    let stale = amr.update_licence(update).await;
    assert!(stale.is_err(), "a change based on a replaced version is refused: {stale:?}");
    let read = gsc
        .get_licence(GetLicenceRequest {
            context: ctx(OPENING, "forms-life-2"),
            dataset: BUSINESS_LICENCE.into(),
            licence_id: "SZ-AMR-2026-900001".into(),
            fields: vec!["entity_name".into()],
            consent_token: tokens[0].clone(),
            version: 0,
        })
        .await
        .must("read updated");
    let licence = read.answer().licence.as_ref().expect("licence");
    assert_eq!((licence.version, licence.fields[0].value.as_str()), (2, "深圳市更名后有限公司"));

    // Replay: the version a decision was taken on can be read again, as it was.
    let at = |version: u64| GetLicenceRequest {
        context: ctx(OPENING, "forms-replay"),
        dataset: BUSINESS_LICENCE.into(),
        licence_id: "SZ-AMR-2026-900001".into(),
        fields: vec!["entity_name".into()],
        consent_token: tokens[0].clone(),
        version,
    };
    let v1 = gsc.get_licence(at(1)).await.must("read version 1");
    let v1 = v1.answer().licence.as_ref().expect("licence");
    assert_eq!((v1.version, v1.fields[0].value.as_str()), (1, companies[0]["entity_name"].as_str()));
    let missing = gsc.get_licence(at(9)).await;
    assert!(
        matches!(&missing, Err(exchange_client_sdk::Error::Refused { code: tonic::Code::NotFound, message, .. }) if message.contains("at version 9")),
        "{missing:?}"
    );

    let revoked = amr
        .revoke_licence(RevokeLicenceRequest {
            dataset: BUSINESS_LICENCE.into(),
            licence_id: "SZ-AMR-2026-900001".into(),
            reason: "吊销".into(),
        })
        .await
        .must("revoke");
    assert_eq!((revoked.version, revoked.status), (3, LicenceStatus::Revoked as i32));
    let v = gsc
        .verify_licence(verify("SZ-AMR-2026-900001", &holder, &tokens[0], "forms-life-3"))
        .await
        .must("verify revoked");
    assert_eq!((v.answer().verdict, v.answer().version), (Verdict::Revoked as i32, 3));

    fields.insert("licence_no".into(), "SZ-AMR-2010-900002".into());
    amr.issue_licence(IssueLicenceRequest {
        dataset: BUSINESS_LICENCE.into(),
        fields,
        valid_from: "2010-01-01".into(),
        valid_until: "2020-12-31".into(),
    })
    .await
    .must("issue an expired licence");
    let v = gsc
        .verify_licence(verify("SZ-AMR-2010-900002", &holder, &tokens[0], "forms-life-4"))
        .await
        .must("verify expired");
    assert_eq!(v.answer().verdict, Verdict::Expired as i32);
    let v = gsc
        .verify_licence(verify("SZ-AMR-2026-999999", &holder, &tokens[0], "forms-life-5"))
        .await
        .must("verify unknown");
    assert_eq!(v.answer().verdict, Verdict::Unknown as i32);

    // A base record replaced by the provider's systems: both versions can be read.
    let psb = fed.client(exchange_localnet::data::PSB).clone();
    let citizen = fed.data.persons[5].clone();
    let mut renamed: HashMap<String, String> = citizen.clone().into_iter().collect();
    renamed.insert("name".into(), "张改名".into());
    let change =
        psb.upsert_record(UpsertRecordRequest { dataset: POPULATION.into(), fields: renamed }).await.must("upsert");
    assert_eq!((change.version, change.changed), (2, true));
    let (_, token) =
        fed.consent_token(GSC, &citizen["id_number"], &[(POPULATION, &["name"])], OPENING, POPULATION).await;
    for (version, name) in [(1, citizen["name"].as_str()), (2, "张改名"), (0, "张改名")] {
        let answer = gsc
            .get_record(GetRecordRequest {
                context: ctx(OPENING, "forms-record-replay"),
                dataset: POPULATION.into(),
                subject: person(&citizen["id_number"]),
                fields: vec!["name".into()],
                consent_token: token.clone(),
                version,
            })
            .await
            .must("read a record version");
        let record = answer.answer().record.as_ref().expect("record");
        assert_eq!(record.fields[0].value, name, "version {version}");
        assert_eq!(record.version, if version == 0 { 2 } else { version });
    }

    // Every change is in the central log beside the reads: who changed which dataset, to
    // which version; no licence number or record content.
    fed.net.wait_for_shipping().await.must("shipping");
    let changes: Vec<AccessEvent> = fed
        .whole_log()
        .await
        .into_iter()
        .filter_map(|e| e.event)
        .filter(|e| e.kind == EventKind::DataChange as i32 && e.recorder == AMR)
        .collect();
    let actions: Vec<(&str, Vec<u64>)> =
        changes.iter().map(|e| (e.action.as_str(), e.record_versions.clone())).collect();
    assert_eq!(
        actions,
        [
            ("import", vec![]),
            ("issue_licence", vec![1]),
            ("update_licence", vec![2]),
            ("revoke_licence", vec![3]),
            ("issue_licence", vec![1]),
        ],
        "{changes:?}"
    );
    assert!(changes.iter().all(|e| e.requester == AMR && e.dataset == BUSINESS_LICENCE));
    assert!(changes.iter().all(|e| !format!("{e:?}").contains("SZ-AMR-2026-900001")), "no licence number logged");

    // Only the provider changes its licences.
    let refused = fed
        .client(HCB)
        .revoke_licence(RevokeLicenceRequest {
            dataset: BUSINESS_LICENCE.into(),
            licence_id: companies[1]["licence_no"].clone(),
            reason: "not mine".into(),
        })
        .await;
    assert!(
        matches!(refused, Err(exchange_client_sdk::Error::Refused { code: tonic::Code::PermissionDenied, .. })),
        "{refused:?}"
    );
}
