//! The service scenarios over a real federation, asserted exactly: the fields each answer
//! carries (requested ∩ granted ∩ consented, with the held values), the node that signed it
//! (verified by the SDK before the test sees it), and the central log entries, matched to
//! the answers by answer digest.

use exchange_client_sdk::{NodeAnswer, NodeQuery};
use exchange_localnet::data::{
    AMR, BUSINESS_LICENCE, GSC, HCB, OPENING, PNR, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL,
};
use exchange_proto::v1::*;
use exchange_tests::*;

fn values(fields: &[FieldValue]) -> Vec<(String, String)> {
    fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rental_filing_and_business_opening_answer_exactly_and_are_logged() {
    let fed = TestFed::start(Setup::default()).await;

    // 1. Rental filing (房屋租赁登记备案): landlord and tenant records, the landlord's certificate.
    let (landlord, property) = fed.landlord();
    let (landlord, property) = (landlord.clone(), property.clone());
    let tenant = fed.data.persons.iter().find(|p| p["id_number"] != landlord["id_number"]).expect("tenant").clone();
    let (landlord_consent, landlord_population) = fed
        .consent_token(
            HCB,
            &landlord["id_number"],
            &[(POPULATION, &["name", "status"]), (PROPERTY_CERTIFICATE, &["cert_no", "holder_id", "address", "area"])],
            RENTAL,
            POPULATION,
        )
        .await;
    let hcb = fed.client(HCB);
    let landlord_property =
        hcb.issue_consent_token(&landlord_consent.id, PROPERTY_CERTIFICATE).await.must("token").token;
    let (_, tenant_population) =
        fed.consent_token(HCB, &tenant["id_number"], &[(POPULATION, &["name", "status"])], RENTAL, POPULATION).await;
    let answers = hcb
        .fan_out(vec![
            record_query(&landlord["id_number"], &["name", "status"], &landlord_population, "ZL-E2E-1"),
            record_query(&tenant["id_number"], &["name", "status"], &tenant_population, "ZL-E2E-1"),
            NodeQuery::Licence(GetLicenceRequest {
                context: ctx(RENTAL, "ZL-E2E-1"),
                dataset: PROPERTY_CERTIFICATE.into(),
                licence_id: property["cert_no"].clone(),
                // The number too: a certificate's number and status come only with its key field.
                fields: vec!["cert_no".into(), "holder_id".into(), "address".into(), "area".into()],
                consent_token: landlord_property,
                version: 0,
            }),
        ])
        .await;
    let mut digests = Vec::new();
    let mut answers = answers.into_iter().map(|a| a.must("rental answer"));
    let Some(NodeAnswer::Record(l)) = answers.next() else { panic!("landlord record") };
    assert_eq!(l.node(), PSB);
    assert_eq!(
        values(&l.answer().record.as_ref().expect("record").fields),
        [("name".into(), landlord["name"].clone()), ("status".into(), landlord["status"].clone())]
    );
    digests.push(*l.digest());
    let Some(NodeAnswer::Record(t)) = answers.next() else { panic!("tenant record") };
    assert_eq!(
        values(&t.answer().record.as_ref().expect("record").fields),
        [("name".into(), tenant["name"].clone()), ("status".into(), tenant["status"].clone())]
    );
    digests.push(*t.digest());
    let Some(NodeAnswer::Licence(c)) = answers.next() else { panic!("certificate") };
    assert_eq!(c.node(), PNR);
    let licence = c.answer().licence.as_ref().expect("licence");
    assert_eq!(licence.status, LicenceStatus::Valid as i32);
    assert_eq!(licence.licence_id, property["cert_no"]);
    assert_eq!(
        values(&licence.fields),
        [
            ("address".into(), property["address"].clone()),
            ("area".into(), property["area"].clone()),
            ("cert_no".into(), property["cert_no"].clone()),
            ("holder_id".into(), landlord["id_number"].clone()),
        ]
    );
    digests.push(*c.digest());

    // 2. Opening a business (开办企业): identity match, licence verdict, a refused field.
    let company = fed.data.businesses.iter().find(|b| b["status"] == "active").expect("active company").clone();
    let rep = fed.data.persons.iter().find(|p| p["id_number"] == company["legal_rep_id"]).expect("rep").clone();
    let (_, rep_token) =
        fed.consent_token(GSC, &rep["id_number"], &[(POPULATION, &["name", "birth_date"])], OPENING, POPULATION).await;
    let gsc = fed.client(GSC);
    // The business licence holds personal data (the legal representative): even a verdict
    // needs the company's consent.
    let mut company_consent = exchange_localnet::data::face_scan_consent(
        &company["credit_code"],
        GSC,
        &[(BUSINESS_LICENCE, &["licence_no", "status"])],
        OPENING,
        "KB-E2E-1",
    );
    company_consent.subject =
        Some(Subject { kind: SubjectKind::Organisation as i32, id: company["credit_code"].clone() });
    let company_consent = gsc.record_consent(company_consent).await.must("record the company's consent");
    let company_token = gsc.issue_consent_token(&company_consent.id, BUSINESS_LICENCE).await.must("token").token;
    let matched = gsc
        .match_record(MatchRecordRequest {
            context: ctx(OPENING, "KB-E2E-1"),
            dataset: POPULATION.into(),
            subject: person(&rep["id_number"]),
            claims: vec![
                ClaimedValue { name: "name".into(), value: rep["name"].clone() },
                ClaimedValue { name: "birth_date".into(), value: "1900-01-01".into() },
            ],
            consent_token: rep_token,
        })
        .await
        .must("match");
    let results: Vec<(String, i32)> = matched.answer().matches.iter().map(|m| (m.name.clone(), m.result)).collect();
    assert_eq!(
        results,
        [("name".into(), MatchResult::Match as i32), ("birth_date".into(), MatchResult::NoMatch as i32)]
    );
    digests.push(*matched.digest());
    let verdict = gsc
        .verify_licence(VerifyLicenceRequest {
            context: ctx(OPENING, "KB-E2E-1"),
            dataset: BUSINESS_LICENCE.into(),
            licence_id: company["licence_no"].clone(),
            holder: Some(Subject { kind: SubjectKind::Organisation as i32, id: company["credit_code"].clone() }),
            fields: vec![],
            consent_token: company_token,
        })
        .await
        .must("verify");
    assert_eq!(verdict.node(), AMR);
    assert_eq!(verdict.answer().verdict, Verdict::Valid as i32);
    assert!(verdict.answer().fields.is_empty(), "a verdict and nothing more");
    digests.push(*verdict.digest());
    let (code, reason, _) = refusal(
        gsc.run_query(NodeQuery::Licence(GetLicenceRequest {
            context: ctx(OPENING, "KB-E2E-1"),
            dataset: BUSINESS_LICENCE.into(),
            licence_id: company["licence_no"].clone(),
            fields: vec!["entity_name".into(), "legal_rep_id".into()],
            consent_token: String::new(),
            version: 0,
        }))
        .await,
    );
    assert_eq!((code, reason), (tonic::Code::PermissionDenied, ReasonCode::FieldNotGranted));

    // The central log: one entry per answer, with its digest, fields and outcome.
    let rental = fed.central_entries("ZL-E2E-1").await;
    let opening = fed.central_entries("KB-E2E-1").await;
    assert_eq!(rental.len(), 3, "{rental:?}");
    assert_eq!(opening.len(), 3, "{opening:?}");
    for digest in &digests {
        let found: Vec<&AccessEvent> =
            rental.iter().chain(&opening).filter(|e| e.answer_digest[..] == digest[..]).collect();
        assert_eq!(found.len(), 1, "answer digest logged once");
        assert_eq!(found[0].outcome, Outcome::Served as i32);
        assert!(!found[0].subject_digest.is_empty(), "the subject appears as a digest");
    }
    let certificate_entry = rental.iter().find(|e| e.dataset == PROPERTY_CERTIFICATE).expect("certificate entry");
    assert_eq!(certificate_entry.fields, ["address", "area", "cert_no", "holder_id"]);
    assert_eq!(certificate_entry.requester, HCB);
    assert_eq!(certificate_entry.purpose_code, RENTAL);
    let refused = opening.iter().find(|e| e.outcome == Outcome::Refused as i32).expect("refusal entry");
    assert_eq!(refused.reason_code, ReasonCode::FieldNotGranted as i32);
    // No subject id in clear anywhere in the central log.
    let log = fed.whole_log().await;
    for entry in &log {
        for id in [&landlord["id_number"], &tenant["id_number"], &rep["id_number"]] {
            assert!(
                !entry.leaf.windows(id.len()).any(|w| w == id.as_bytes()),
                "resident id in clear at {}",
                entry.index
            );
        }
    }
}
