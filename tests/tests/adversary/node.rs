//! Attacks on a department node: see the suite's documentation in `main.rs`.
//!
//! Each test runs its own federation. What the node's access log holds is read through
//! `GetLogStatus` (its last sequence written and its count of refused strangers) and the
//! central log once every node has shipped.

use exchange_client_sdk::NodeQuery;
use exchange_localnet::data::{GSC, HCB, OPENING, OPS, PNR, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL};
use exchange_pki::{CertKind, CertSpec, FederationCa};
use exchange_proto::refusal;
use exchange_proto::v1::node_client::NodeClient;
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// What the node logs in place of a trace id or reason that held an identifier.
const WITHHELD: &str = "[withheld: identifier in clear]";

/// The node of `dept` over TLS, as `identity` (a certificate and key, PEM) or with no client
/// certificate at all; the SDK is bypassed, so nothing is checked or refused on the way.
pub(crate) async fn raw_node(fed: &TestFed, dept: &str, identity: Option<(&str, &str)>) -> NodeClient<Channel> {
    let port = fed.net.port(dept).expect("node port");
    let ca = Certificate::from_pem(std::fs::read(fed.net.dir().join("pki/ca.crt")).expect("ca certificate"));
    let mut tls = ClientTlsConfig::new().ca_certificate(ca).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("a federation node accepts the TLS connection");
    NodeClient::new(channel)
}

/// A member's own certificate and key, as the federation's folder holds them.
pub(crate) fn member_identity(fed: &TestFed, dept: &str) -> (String, String) {
    let read = |ext: &str| {
        std::fs::read_to_string(fed.net.dir().join(format!("pki/{dept}.{ext}"))).expect("member certificate files")
    };
    (read("crt"), read("key"))
}

fn get_record(subject: &str, trace: &str) -> GetRecordRequest {
    GetRecordRequest {
        context: ctx(RENTAL, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        fields: vec!["name".into()],
        consent_token: String::new(),
        version: 0,
    }
}

/// The status code and reason of a refused raw call.
fn refused<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, ReasonCode, String) {
    match result {
        Err(status) => (status.code(), refusal::reason_code(&status), status.message().to_string()),
        Ok(answer) => panic!("expected a refusal, got data: {answer:?}"),
    }
}

async fn status(fed: &TestFed, dept: &str) -> LogStatus {
    fed.client(dept).log_status(dept).await.must("the node's log status")
}

/// Every Node RPC but health authenticates the caller as an active member before anything
/// else; a stranger leaves no access-log entry, only a count; a member's refusal is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_leave_no_trace_and_every_caller_passes_the_member_checks() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let ca = FederationCa::load_from_dir(fed.net.dir().join("pki")).expect("the federation CA");
    let psb_before = status(&fed, PSB).await;

    // 50 calls over TLS with no client certificate.
    let mut anonymous = raw_node(&fed, PSB, None).await;
    for i in 0..50 {
        let (code, reason, message) =
            refused(anonymous.get_record(get_record(&landlord_id, &format!("anon-{i}"))).await);
        assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::Unauthenticated), "{message}");
        assert!(message.contains("certificate"), "the message says what is missing: {message}");
    }
    // A certificate of the federation CA for a department that is not a member.
    let outsider = ca.issue(&CertSpec::new("gov.sz.outsider", CertKind::Client)).expect("certificate");
    let mut node = raw_node(&fed, PSB, Some((&outsider.cert_pem, &outsider.key_pem))).await;
    let (code, reason, message) = refused(node.get_record(get_record(&landlord_id, "outsider")).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember), "{message}");
    let (code, reason, _) = refused(node.get_log_status(GetLogStatusRequest {}).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember));

    // A member's certificate that its member record does not list: the record of the
    // natural-resources department now lists only the certificate its systems hold.
    let (pnr_cert, pnr_key) = member_identity(&fed, PNR);
    let listed = fed.net.tls_files(PNR).load().expect("the registered certificate").fingerprint();
    fed.client(OPS)
        .update_member(UpdateMemberRequest {
            dept_id: PNR.into(),
            cert_fingerprints: vec![listed.to_vec()],
            replace_cert_fingerprints: true,
            ..Default::default()
        })
        .await
        .must("list the registered certificate");
    fed.net.wait_for_configuration().await.must("nodes take the member record");
    let pnr_before = status(&fed, PNR).await;
    let unlisted = ca.issue(&CertSpec::new(PNR, CertKind::Client)).expect("certificate");
    let certificate = fed.data.properties[0]["cert_no"].clone();
    let mut own = raw_node(&fed, PNR, Some((&unlisted.cert_pem, &unlisted.key_pem))).await;
    let (code, reason, message) = refused(
        own.revoke_licence(RevokeLicenceRequest {
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: certificate.clone(),
            reason: "an unlisted certificate".into(),
        })
        .await,
    );
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember), "{message}");
    assert!(message.contains("not registered"), "{message}");
    let (code, reason, _) = refused(own.get_log_status(GetLogStatusRequest {}).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember));
    let mut elsewhere = raw_node(&fed, PSB, Some((&unlisted.cert_pem, &unlisted.key_pem))).await;
    let (_, reason, _) = refused(elsewhere.get_record(get_record(&landlord_id, "unlisted")).await);
    assert_eq!(reason, ReasonCode::UnknownMember);
    // The listed certificate still works, and the licence was not revoked.
    let mut registered = raw_node(&fed, PNR, Some((&pnr_cert, &pnr_key))).await;
    let pnr_after =
        registered.get_log_status(GetLogStatusRequest {}).await.expect("the listed certificate").into_inner();
    assert_eq!(pnr_after.last_written, pnr_before.last_written, "a stranger's call wrote the log");
    assert_eq!(pnr_after.strangers_refused, pnr_before.strangers_refused + 2);

    // Nothing of the strangers in PSB's log: only the count.
    let psb_after = status(&fed, PSB).await;
    assert_eq!(psb_after.last_written, psb_before.last_written, "a stranger's call wrote the log");
    assert_eq!(psb_after.strangers_refused, psb_before.strangers_refused + 53);

    // A suspended member is refused before any other check, and that refusal is logged.
    fed.client(OPS).suspend_member(GSC, "adversary suite").await.must("suspend");
    fed.net.wait_for_configuration().await.must("nodes take the suspension");
    let (gsc_cert, gsc_key) = member_identity(&fed, GSC);
    let mut suspended = raw_node(&fed, PSB, Some((&gsc_cert, &gsc_key))).await;
    let before = status(&fed, PSB).await;
    let (code, reason, message) = refused(suspended.get_record(get_record(&landlord_id, "suspended")).await);
    assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::MemberSuspended), "{message}");
    assert_eq!(status(&fed, PSB).await.last_written, before.last_written + 1, "a member's refusal is logged");
    fed.net.wait_for_shipping().await.must("shipping");
    let logged: Vec<AccessEvent> = fed
        .whole_log()
        .await
        .into_iter()
        .filter_map(|e| e.event)
        .filter(|e| e.requester == GSC && e.reason_code == ReasonCode::MemberSuspended as i32)
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!((logged[0].provider.as_str(), logged[0].outcome), (PSB, Outcome::Refused as i32));
    assert!(logged[0].fields.is_empty());
}

/// A trace id or reason that holds a valid resident id or credit code is refused, and the
/// logged refusal holds a marker, never the identifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_in_trace_ids_and_reasons_never_reach_the_log() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let credit_code = fed.data.businesses[0]["credit_code"].clone();
    let (cert, key) = member_identity(&fed, HCB);
    let mut hcb = raw_node(&fed, PSB, Some((&cert, &key))).await;

    let (code, reason, message) = refused(hcb.get_record(get_record(&landlord_id, &landlord_id)).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");
    assert!(message.contains("context.trace_id") && message.contains("resident ID"), "{message}");
    assert!(!message.contains(&landlord_id), "the message repeats the identifier: {message}");

    let mut request = get_record(&landlord_id, "screen-reason");
    request.context = Some(QueryContext {
        purpose_code: RENTAL.into(),
        reason: format!("租赁备案 出租方 {credit_code}"),
        trace_id: "screen-reason".into(),
    });
    let (code, reason, message) = refused(hcb.get_record(request).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");
    assert!(message.contains("context.reason") && message.contains("credit code"), "{message}");
    assert!(!message.contains(&credit_code), "{message}");

    fed.net.wait_for_shipping().await.must("shipping");
    let log = fed.whole_log().await;
    for entry in &log {
        for id in [&landlord_id, &credit_code] {
            assert!(
                !entry.leaf.windows(id.len()).any(|w| w == id.as_bytes()),
                "identifier in clear at {}",
                entry.index
            );
        }
    }
    let screened: Vec<AccessEvent> = log
        .into_iter()
        .filter_map(|e| e.event)
        .filter(|e| e.reason_code == ReasonCode::IdentifierInClear as i32)
        .collect();
    assert_eq!(screened.len(), 2, "both refusals are logged: {screened:?}");
    assert!(screened.iter().all(|e| e.outcome == Outcome::Refused as i32 && e.requester == HCB));
    assert_eq!(screened[0].trace_id, WITHHELD);
    assert_eq!((screened[1].trace_id.as_str(), screened[1].reason.as_str()), ("screen-reason", WITHHELD));
    // Nor the node's own log: the call's span carries a trace id only once it is screened,
    // while the clean trace id of the second refusal is on its log line.
    let daemon_log = std::fs::read_to_string(fed.net.log_path(PSB)).must("the node's log");
    for id in [&landlord_id, &credit_code] {
        assert!(!daemon_log.contains(id.as_str()), "identifier in clear in the node's log");
    }
    assert!(
        daemon_log.lines().any(|l| l.contains("trace_id=\"screen-reason\"") && l.contains("refused")),
        "the refusal is logged under its trace id:\n{daemon_log}"
    );
}

fn list(holder: &str, fields: &[&str], token: &str, purpose: &str, trace: &str) -> NodeQuery {
    NodeQuery::ListLicences(ListLicencesRequest {
        context: ctx(purpose, trace),
        dataset: PROPERTY_CERTIFICATE.into(),
        holder: person(holder),
        fields: fields.iter().map(|f| f.to_string()).collect(),
        consent_token: token.into(),
    })
}

fn verify(licence: &str, fields: &[&str], token: &str, purpose: &str, trace: &str) -> VerifyLicenceRequest {
    VerifyLicenceRequest {
        context: ctx(purpose, trace),
        dataset: PROPERTY_CERTIFICATE.into(),
        licence_id: licence.into(),
        holder: None,
        fields: fields.iter().map(|f| f.to_string()).collect(),
        consent_token: token.into(),
    }
}

/// Consent by dataset, nothing beyond requested ∩ granted ∩ consented, and existence only
/// after authorization: the property certificates hold personal data (holder id, name,
/// address), so every form needs the holder's consent, even for internal fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_by_dataset_least_data_and_existence_after_authorization() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (landlord_id, cert_no) = (landlord["id_number"].clone(), property["cert_no"].clone());
    let unknown = "YUE-1999-SZ-9999999";
    let gsc = fed.client(GSC).clone();
    let hcb = fed.client(HCB).clone();

    // The service centre is granted only `cert_no` and `area` (internal) of the certificates.
    // Without a token: refused, whatever the fields and whatever the form.
    for (trace, query) in [
        ("consent-list-area", list(&landlord_id, &["area"], "", OPENING, "consent-list-area")),
        ("consent-list-all", list(&landlord_id, &[], "", OPENING, "consent-list-all")),
        ("consent-verify", NodeQuery::VerifyLicence(verify(&cert_no, &[], "", OPENING, "consent-verify"))),
    ] {
        let (code, reason, message) = refusal(gsc.run_query(query).await);
        assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::ConsentRequired), "{trace}: {message}");
        assert!(message.contains("consent"), "{trace}: {message}");
    }
    // A known and an unknown number give the same refusal: nothing is read before consent.
    let get = |licence: &str, trace: &str| {
        NodeQuery::Licence(GetLicenceRequest {
            context: ctx(OPENING, trace),
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: licence.into(),
            fields: vec!["area".into()],
            consent_token: String::new(),
            version: 0,
        })
    };
    let known = refusal(gsc.run_query(get(&cert_no, "exist-known")).await);
    let absent = refusal(gsc.run_query(get(unknown, "exist-unknown")).await);
    assert_eq!((known.0, known.1), (Code::PermissionDenied, ReasonCode::ConsentRequired), "{}", known.2);
    assert_eq!(known, absent, "an unknown number is refused exactly like a known one");

    // With the holder's consent, a tiny rate limit (2 a minute): unknown numbers cost it like
    // known ones, every batch item counts, and then the known certificate is refused too.
    let (_, gsc_token) = fed
        .consent_token(
            GSC,
            &landlord_id,
            &[(PROPERTY_CERTIFICATE, &["cert_no", "area"])],
            OPENING,
            PROPERTY_CERTIFICATE,
        )
        .await;
    assert_eq!(TIGHT_RATE_PER_MINUTE, 2);
    let batch = gsc
        .batch_verify_licences(BatchVerifyLicencesRequest {
            context: ctx(OPENING, "rate-unknown"),
            dataset: PROPERTY_CERTIFICATE.into(),
            items: ["YUE-1999-SZ-9999991", "YUE-1999-SZ-9999992", "YUE-1999-SZ-9999993"]
                .into_iter()
                .map(|id| VerifyItem {
                    licence_id: id.into(),
                    holder: None,
                    fields: vec![],
                    consent_token: gsc_token.clone(),
                })
                .collect(),
        })
        .await
        .must("a batch of unknown numbers");
    let verdicts: Vec<Result<i32, Option<ReasonCode>>> =
        batch.iter().map(|r| r.as_ref().map(|a| a.answer().verdict).map_err(|e| e.reason())).collect();
    assert_eq!(
        verdicts,
        [Ok(Verdict::Unknown as i32), Ok(Verdict::Unknown as i32), Err(Some(ReasonCode::RateLimited))],
        "unknown numbers exhaust the rate limit"
    );
    let (code, reason, message) = refusal(
        gsc.run_query(NodeQuery::VerifyLicence(verify(&cert_no, &[], &gsc_token, OPENING, "rate-known"))).await,
    );
    assert_eq!((code, reason), (Code::ResourceExhausted, ReasonCode::RateLimited), "{message}");

    // The housing bureau, granted the number, the holder and more, with a consent for some of
    // them: a licence's number, standing and holder appear only with their fields.
    let (_, token) = fed
        .consent_token(
            HCB,
            &landlord_id,
            &[(PROPERTY_CERTIFICATE, &["cert_no", "area", "use"])],
            RENTAL,
            PROPERTY_CERTIFICATE,
        )
        .await;
    let exchange_client_sdk::NodeAnswer::ListLicences(bare) =
        hcb.run_query(list(&landlord_id, &["area", "use"], &token, RENTAL, "least-bare")).await.must("list")
    else {
        panic!("a list answer")
    };
    assert!(!bare.answer().licences.is_empty());
    for l in &bare.answer().licences {
        assert_eq!(l.licence_id, "", "the number is not among the fields asked");
        assert_eq!(l.holder, None, "the holder is not among the fields asked");
        assert_eq!(l.status, LicenceStatus::Unspecified as i32);
        assert_eq!((l.valid_from.as_str(), l.valid_until.as_str()), ("", ""));
        let names: Vec<&str> = l.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["area", "use"]);
    }
    let exchange_client_sdk::NodeAnswer::ListLicences(all) =
        hcb.run_query(list(&landlord_id, &[], &token, RENTAL, "least-all")).await.must("list")
    else {
        panic!("a list answer")
    };
    let mine = all.answer().licences.iter().find(|l| l.licence_id == cert_no).expect("the number is consented");
    assert_eq!(mine.holder, None, "the holder is granted but not consented");
    assert_eq!(mine.status, LicenceStatus::Valid as i32);
    let names: Vec<&str> = mine.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["area", "cert_no", "use"]);
    // A verdict is the verdict, and only the asked-for allowed fields.
    let exchange_client_sdk::NodeAnswer::VerifyLicence(verdict) = hcb
        .run_query(NodeQuery::VerifyLicence(verify(&cert_no, &[], &token, RENTAL, "least-verdict")))
        .await
        .must("verify")
    else {
        panic!("a verify answer")
    };
    assert_eq!(verdict.answer().verdict, Verdict::Valid as i32);
    assert!(verdict.answer().fields.is_empty(), "a verdict and nothing more");
    let exchange_client_sdk::NodeAnswer::VerifyLicence(verdict) = hcb
        .run_query(NodeQuery::VerifyLicence(verify(&cert_no, &["area"], &token, RENTAL, "least-verdict-area")))
        .await
        .must("verify")
    else {
        panic!("a verify answer")
    };
    let names: Vec<&str> = verdict.answer().fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["area"]);
    // Under the landlord's consent, another holder's certificate is as unknown as a missing one.
    let other = fed.data.properties.iter().find(|p| p["holder_id"] != landlord_id).expect("another holder");
    let read = |licence: &str, trace: &str| {
        NodeQuery::Licence(GetLicenceRequest {
            context: ctx(RENTAL, trace),
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: licence.into(),
            fields: vec!["area".into()],
            consent_token: token.clone(),
            version: 0,
        })
    };
    let (code, reason, _) = refusal(hcb.run_query(read(&other["cert_no"], "bound-other")).await);
    assert_eq!((code, reason), (Code::NotFound, ReasonCode::NotFound));
    let (code, reason, _) = refusal(hcb.run_query(read(unknown, "bound-unknown")).await);
    assert_eq!((code, reason), (Code::NotFound, ReasonCode::NotFound));

    // A version read answers as what it is: revoked since, version 1 is the VALID version it
    // was, marked historical, beside the licence's current status (all under the signature
    // the SDK verified).
    let revoked = fed
        .client(PNR)
        .revoke_licence(RevokeLicenceRequest {
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: cert_no.clone(),
            reason: "adversary suite".into(),
        })
        .await
        .must("revoke");
    assert_eq!(revoked.version, 2);
    let at = |version: u64, trace: &str| {
        NodeQuery::Licence(GetLicenceRequest {
            context: ctx(RENTAL, trace),
            dataset: PROPERTY_CERTIFICATE.into(),
            licence_id: cert_no.clone(),
            fields: vec!["cert_no".into(), "area".into()],
            consent_token: token.clone(),
            version,
        })
    };
    let exchange_client_sdk::NodeAnswer::Licence(old) = hcb.run_query(at(1, "version-1")).await.must("version 1")
    else {
        panic!("a licence answer")
    };
    let old = old.answer().licence.clone().expect("licence");
    assert_eq!((old.version, old.status, old.historical), (1, LicenceStatus::Valid as i32, true));
    assert_eq!((old.current_version, old.current_status), (2, LicenceStatus::Revoked as i32));
    let exchange_client_sdk::NodeAnswer::Licence(now) = hcb.run_query(at(0, "version-now")).await.must("current")
    else {
        panic!("a licence answer")
    };
    let now = now.answer().licence.clone().expect("licence");
    assert_eq!((now.version, now.status, now.historical), (2, LicenceStatus::Revoked as i32, false));
    assert_eq!((now.current_version, now.current_status), (2, LicenceStatus::Revoked as i32));

    // The log: every refusal once, with its reason and no field; the served answers with
    // exactly the fields that left.
    for (trace, reason) in [
        ("consent-list-area", ReasonCode::ConsentRequired),
        ("consent-list-all", ReasonCode::ConsentRequired),
        ("consent-verify", ReasonCode::ConsentRequired),
        ("exist-known", ReasonCode::ConsentRequired),
        ("exist-unknown", ReasonCode::ConsentRequired),
        ("rate-known", ReasonCode::RateLimited),
        ("bound-other", ReasonCode::NotFound),
        ("bound-unknown", ReasonCode::NotFound),
    ] {
        let entries = fed.central_entries(trace).await;
        assert_eq!(entries.len(), 1, "{trace}: {entries:?}");
        assert_eq!(entries[0].reason_code, reason as i32, "{trace}");
        assert_ne!(entries[0].outcome, Outcome::Served as i32, "{trace}");
        assert!(entries[0].fields.is_empty(), "{trace}");
    }
    let rate = fed.central_entries("rate-unknown").await;
    let outcomes: Vec<i32> = rate.iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, [Outcome::Served as i32, Outcome::Served as i32, Outcome::Refused as i32]);
    for (trace, fields) in [
        ("least-bare", &["area", "use"][..]),
        ("least-all", &["area", "cert_no", "use"][..]),
        ("least-verdict", &[][..]),
    ] {
        let entries = fed.central_entries(trace).await;
        assert_eq!(entries.len(), 1, "{trace}");
        assert_eq!(entries[0].outcome, Outcome::Served as i32, "{trace}");
        assert_eq!(entries[0].fields, fields, "{trace}");
    }
}

fn match_query(subject: &str, claims: &[(&str, &str)], token: &str, trace: &str) -> NodeQuery {
    NodeQuery::Match(MatchRecordRequest {
        context: ctx(RENTAL, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        claims: claims.iter().map(|(n, v)| ClaimedValue { name: n.to_string(), value: v.to_string() }).collect(),
        consent_token: token.into(),
    })
}

fn match_results(answer: exchange_client_sdk::Result<exchange_client_sdk::NodeAnswer>) -> Vec<i32> {
    match answer.must("a match") {
        exchange_client_sdk::NodeAnswer::Match(m) => m.answer().matches.iter().map(|m| m.result).collect(),
        _ => panic!("a match answer"),
    }
}

/// Match stays match: a field is claimed once per request and only schema fields, and one
/// requester tries at most 3 distinct values of one field of one subject in 24 hours; beyond
/// that even the true value is refused, so a refusal tells nothing of a match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_cannot_be_turned_into_a_search() {
    let fed = TestFed::start(Setup::default()).await;
    let citizen = fed.citizen(3).clone();
    let (id, name) = (citizen["id_number"].clone(), citizen["name"].clone());
    let hcb = fed.client(HCB).clone();
    let (_, token) = fed.consent_token(HCB, &id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;

    // 30 guesses and the true name in one call: refused before anything is read.
    let guesses: Vec<String> = (0..30).map(|i| format!("猜测{i}")).collect();
    let mut claims: Vec<(&str, &str)> = guesses.iter().map(|g| ("name", g.as_str())).collect();
    claims.push(("name", &name));
    let (code, reason, message) = refusal(hcb.run_query(match_query(&id, &claims, &token, "match-31")).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::MalformedRequest), "{message}");
    assert!(message.contains("claims[1].name") && message.contains("more than once"), "{message}");
    let (code, reason, message) =
        refusal(hcb.run_query(match_query(&id, &[("no_such_field", "x")], &token, "match-unknown")).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::FieldNotInSchema), "{message}");
    assert!(message.contains("claims[0].name"), "{message}");

    // Three wrong names in three calls are answered; the fourth distinct value is refused,
    // and so is the true name.
    let wrong: Vec<String> = ["甲", "乙", "丙", "丁"].iter().map(|s| format!("{name}{s}")).collect();
    for (i, wrong) in wrong[..3].iter().enumerate() {
        let results = match_results(hcb.run_query(match_query(&id, &[("name", wrong)], &token, "match-try")).await);
        assert_eq!(results, [MatchResult::NoMatch as i32], "try {i}");
    }
    for (trace, value) in [("match-fourth", wrong[3].as_str()), ("match-true", name.as_str())] {
        let (code, reason, message) = refusal(hcb.run_query(match_query(&id, &[("name", value)], &token, trace)).await);
        assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::MatchLimit), "{trace}: {message}");
        assert!(message.contains("`name`") && message.contains("3 distinct values"), "{message}");
        assert!(!message.contains(&name) && !message.contains(&id), "the refusal repeats personal data: {message}");
    }
    // A value tried already costs nothing more, and is answered as before.
    let again = match_results(hcb.run_query(match_query(&id, &[("name", &wrong[1])], &token, "match-again")).await);
    assert_eq!(again, [MatchResult::NoMatch as i32]);

    // Every batch item counts: four distinct values for another citizen in one batch, the
    // fourth item refused.
    let other = fed.citizen(4).clone();
    let (_, other_token) =
        fed.consent_token(HCB, &other["id_number"], &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let items = ["甲", "乙", "丙", "丁"]
        .iter()
        .map(|s| MatchItem {
            subject: person(&other["id_number"]),
            claims: vec![ClaimedValue { name: "name".into(), value: format!("{}{s}", other["name"]) }],
            consent_token: other_token.clone(),
        })
        .collect();
    let batch = hcb
        .batch_match_records(BatchMatchRecordsRequest {
            context: ctx(RENTAL, "match-batch"),
            dataset: POPULATION.into(),
            items,
        })
        .await
        .must("a batch of matches");
    let outcomes: Vec<Result<i32, Option<ReasonCode>>> =
        batch.iter().map(|r| r.as_ref().map(|a| a.answer().matches[0].result).map_err(|e| e.reason())).collect();
    let no = Ok(MatchResult::NoMatch as i32);
    assert_eq!(outcomes, [no, no, no, Err(Some(ReasonCode::MatchLimit))]);

    // The log: the refusals with their reasons and no field; no name in clear anywhere.
    for (trace, reason) in [
        ("match-31", ReasonCode::MalformedRequest),
        ("match-unknown", ReasonCode::FieldNotInSchema),
        ("match-fourth", ReasonCode::MatchLimit),
        ("match-true", ReasonCode::MatchLimit),
    ] {
        let entries = fed.central_entries(trace).await;
        assert_eq!(entries.len(), 1, "{trace}: {entries:?}");
        assert_eq!((entries[0].outcome, entries[0].reason_code), (Outcome::Refused as i32, reason as i32), "{trace}");
        assert!(entries[0].fields.is_empty() && entries[0].answer_digest.is_empty(), "{trace}");
        assert!(!entries[0].subject_digest.is_empty(), "{trace}: the subject's view shows the attempt");
    }
    let tries = fed.central_entries("match-try").await;
    assert_eq!(tries.len(), 3);
    assert!(tries.iter().all(|e| e.outcome == Outcome::Served as i32 && e.fields == ["name"]));
    for entry in fed.whole_log().await {
        for clear in [&id, &name, &other["id_number"], &other["name"]] {
            assert!(!entry.leaf.windows(clear.len()).any(|w| w == clear.as_bytes()), "in clear at {}", entry.index);
        }
    }
}

/// Every signed answer binds its question: a genuine VALID verdict of the natural-resources
/// node on one certificate, replayed as the verdict on another certificate (or for a claimed
/// holder it was not asked for), is refused by the SDK; the access log holds the very digest
/// the node signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_verdict_cannot_be_replayed_for_another_licence() {
    use exchange_client_sdk::verify::{Expected, verify_answer};
    use exchange_proto::canonical::{Asked, SignedAnswer};

    let fed = TestFed::start(Setup::default()).await;
    let (landlord, property) = fed.landlord();
    let (landlord_id, cert_a) = (landlord["id_number"].clone(), property["cert_no"].clone());
    let cert_b =
        fed.data.properties.iter().find(|p| p["cert_no"] != cert_a).expect("another certificate")["cert_no"].clone();
    let hcb = fed.client(HCB).clone();
    let (_, token) = fed
        .consent_token(HCB, &landlord_id, &[(PROPERTY_CERTIFICATE, &["cert_no"])], RENTAL, PROPERTY_CERTIFICATE)
        .await;
    let on_a = verify(&cert_a, &[], &token, RENTAL, "replay-a");
    let verdict = hcb.verify_licence(on_a.clone()).await.must("a verdict on certificate A");
    assert_eq!(verdict.answer().verdict, Verdict::Valid as i32);
    let signed = verdict.clone().into_inner();
    assert_eq!(signed.question.as_ref(), Some(&on_a.question()), "the answer repeats its question");

    let key = hcb.federation().await.must("configuration").node(PNR).and_then(|n| n.key).expect("PNR's node key");
    let expect = |request: &VerifyLicenceRequest| Expected {
        node: PNR,
        requester: HCB,
        dataset: PROPERTY_CERTIFICATE,
        question: request.question(),
    };
    assert!(verify_answer(signed.clone(), &expect(&on_a), &key).is_ok(), "the genuine answer verifies");
    // Shown as the verdict on certificate B: refused as answering another question.
    let on_b = verify(&cert_b, &[], &token, RENTAL, "replay-b");
    match verify_answer(signed.clone(), &expect(&on_b), &key) {
        Err(exchange_client_sdk::Error::BadSignature(m)) => {
            assert!(m.contains("another question") && m.contains("licence number"), "{m}")
        }
        other => panic!("a replayed verdict was accepted: {other:?}"),
    }
    // Shown as a verdict that also checked a holder: refused.
    let mut with_holder = on_a.clone();
    with_holder.holder = person(&landlord_id);
    assert!(matches!(
        verify_answer(signed.clone(), &expect(&with_holder), &key),
        Err(exchange_client_sdk::Error::BadSignature(_))
    ));
    // Its question rewritten to B's: the signature no longer covers it.
    let mut rewritten = signed.clone();
    rewritten.question = Some(on_b.question());
    match verify_answer(rewritten, &expect(&on_b), &key) {
        Err(exchange_client_sdk::Error::BadSignature(m)) => assert!(m.contains("altered"), "{m}"),
        other => panic!("a rewritten verdict was accepted: {other:?}"),
    }

    // The access log holds the digest the node signed, which covers the question.
    let entries = fed.central_entries("replay-a").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].answer_digest, signed.canonical_digest().to_vec());
    assert_eq!(entries[0].answer_digest, verdict.digest().to_vec());
    assert!(fed.central_entries("replay-b").await.is_empty(), "nothing was asked about certificate B");
}

/// A suspended provider's node may keep running, but the SDK takes nothing it signs: within
/// the client's configuration age (5 s by default) every query to it is refused locally,
/// PERMISSION_DENIED / MEMBER_SUSPENDED, without a call to the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_refuses_a_suspended_providers_node() {
    let fed = TestFed::start(Setup::default()).await;
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let hcb = fed.client(HCB).clone();
    let query = record_query(&landlord_id, &["name"], &token, "suspended-provider");
    hcb.run_query(query.clone()).await.must("served before the suspension");

    fed.client(OPS).suspend_member(PSB, "adversary suite").await.must("suspend the provider");
    // No explicit refresh: the client finds out by itself, within its configuration age.
    let message = wait_for("the SDK refuses the suspended provider", std::time::Duration::from_secs(30), || {
        let (hcb, query) = (hcb.clone(), query.clone());
        async move {
            match hcb.run_query(query).await {
                Err(exchange_client_sdk::Error::Refused {
                    code, reason: ReasonCode::MemberSuspended, message, ..
                }) => Some((code, message)),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(message.0, Code::PermissionDenied, "{}", message.1);
    // The refusal is the SDK's own (the node would have said something else, if anything).
    assert!(message.1.contains("answers are not to be trusted") && message.1.contains(PSB), "{}", message.1);
    let again = hcb.run_query(query).await;
    assert_eq!(again.as_ref().err().and_then(|e| e.reason()), Some(ReasonCode::MemberSuspended), "{again:?}");
}
