//! Attacks on the catalog and the central log: see the suite's documentation in `main.rs`.
//!
//! Each member sees only the entries it is a party to, appends only what it recorded about
//! its own datasets, never puts a subject id in clear into the log, and gets the subject
//! digest key only when it provides personal data.

use exchange_client_sdk::NodeQuery;
use exchange_client_sdk::log::{verify_inclusion_of, verify_inclusion_proof};
use exchange_localnet::data::{
    AMR, AUDIT, BUSINESS_LICENCE, GSC, HCB, OPENING, OPS, PNR, POPULATION, PROPERTY_CERTIFICATE, PSB, RENTAL,
};
use exchange_pki::{CertKind, CertSpec, FederationCa};
use exchange_proto::refusal;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::*;
use exchange_tests::*;
use tonic::Code;

use crate::node::{member_identity, raw_node};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The refusal of a call that must be refused: its status code, reason and message.
fn refused<T: std::fmt::Debug>(result: exchange_client_sdk::Result<T>) -> (Code, ReasonCode, String) {
    match result {
        Err(exchange_client_sdk::Error::Refused { code, reason, message, .. }) => (code, reason, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The status of a raw call that must be refused: code, reason, message.
fn status<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> (Code, ReasonCode, String) {
    match result {
        Err(s) => (s.code(), refusal::reason_code(&s), s.message().to_string()),
        Ok(r) => panic!("expected a refusal, got {:?}", r.into_inner()),
    }
}

/// The catalog reached with `dept`'s own certificate, bypassing the SDK: what a dishonest
/// member's node can send.
async fn raw_catalog(fed: &TestFed, dept: &str) -> CatalogClient<Channel> {
    let (cert, key) = member_identity(fed, dept);
    raw_catalog_as(fed, &cert, &key).await
}

/// The catalog reached with a certificate and key (PEM) of the caller's choosing.
async fn raw_catalog_as(fed: &TestFed, cert: &str, key: &str) -> CatalogClient<Channel> {
    let ca = std::fs::read_to_string(fed.net.tls_files(OPS).ca_cert).must("read the CA certificate");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(fed.net.catalog_endpoint().to_string())
        .must("catalog endpoint")
        .tls_config(tls)
        .must("TLS configuration")
        .connect()
        .await
        .must("connect to the catalog");
    CatalogClient::new(channel)
}

/// A population-record query for `subject` by the service centre, for business opening.
fn opening_query(subject: &str, token: &str, trace: &str) -> NodeQuery {
    NodeQuery::Record(GetRecordRequest {
        context: ctx(OPENING, trace),
        dataset: POPULATION.into(),
        subject: person(subject),
        fields: vec!["name".into()],
        consent_token: token.into(),
        version: 0,
    })
}

/// Whether `dept` is a party (requester or provider) of `event`.
fn party(event: &AccessEvent, dept: &str) -> bool {
    event.requester == dept || event.provider == dept
}

/// Regression (issue 16): the housing bureau walked `GetInclusionProof` over the whole log
/// and read the entries of other departments' queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_only_the_entries_it_is_a_party_to() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    // The housing bureau and the service centre both read the landlord's population record.
    let (_, hcb_token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    fed.client(HCB)
        .run_query(record_query(&landlord_id, &["name"], &hcb_token, "adv-vis-hcb"))
        .await
        .must("the housing bureau's read");
    let (_, gsc_token) = fed.consent_token(GSC, &landlord_id, &[(POPULATION, &["name"])], OPENING, POPULATION).await;
    fed.client(GSC).run_query(opening_query(&landlord_id, &gsc_token, "adv-vis-gsc")).await.must("the centre's read");
    let gsc_read = fed.central_entries("adv-vis-gsc").await;
    assert_eq!(gsc_read.len(), 1, "{gsc_read:?}");

    let auditor = fed.client(AUDIT);
    let hcb = fed.client(HCB);
    let head = auditor.verified_tree_head(None).await.must("tree head");
    let all = fed.whole_log().await;
    assert_eq!(all.len() as u64, head.size());

    // The walk: hashes for every entry, the entry only where the bureau is a party.
    let (mut shown, mut hidden) = (0, 0);
    for held in &all {
        let event = held.event.as_ref().expect("an auditor reads every event");
        let proof = hcb.inclusion_proof(held.index, head.size()).await.must("inclusion proof");
        if party(event, HCB) {
            shown += 1;
            assert_eq!(proof.entry.as_ref(), Some(held), "entry {}", held.index);
            verify_inclusion_proof(&proof, &head).must("the bureau's own entry verifies");
        } else {
            hidden += 1;
            assert!(proof.entry.is_none(), "entry {} leaked to {HCB}: {event:?}", held.index);
            // The hashes are real: they prove the entry to whoever holds it.
            verify_inclusion_of(held, &proof, &head).must("hashes only, and they verify");
        }
        // An auditor still gets every entry.
        let whole = auditor.inclusion_proof(held.index, head.size()).await.must("auditor's proof");
        assert_eq!(whole.entry.as_ref(), Some(held), "entry {}", held.index);
    }
    assert!(shown > 0 && hidden > 0, "shown {shown}, hidden {hidden}");

    // Audit queries follow the same rule, whatever the filter asks for.
    let mine = hcb.query_access_log(QueryAccessLogRequest::default()).await.must("own entries").entries;
    let expected: Vec<&LogEntry> =
        all.iter().filter(|e| e.event.as_ref().is_some_and(|ev| party(ev, HCB))).take(mine.len()).collect();
    assert!(!mine.is_empty());
    assert_eq!(mine.iter().collect::<Vec<_>>(), expected, "the bureau's page is its own entries in order");
    let others = hcb
        .query_access_log(QueryAccessLogRequest { requester: GSC.into(), ..Default::default() })
        .await
        .must("asking for the centre's entries");
    assert!(others.entries.is_empty(), "{:?}", others.entries);
    let by_trace = hcb
        .query_access_log(QueryAccessLogRequest { trace_id: "adv-vis-gsc".into(), ..Default::default() })
        .await
        .must("asking for the centre's trace");
    assert!(by_trace.entries.is_empty(), "{:?}", by_trace.entries);
    let (code, reason, _) = refused(hcb.log_entries(0, 10).await);
    assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::RoleRequired));

    // As a portal, the bureau sees the landlord's entries only in the subject's own view,
    // the centre's read included; its proof of that entry carries hashes only.
    let view = hcb
        .subject_access_view(SubjectAccessViewRequest { subject: person(&landlord_id), from_unix_ms: 0, page: None })
        .await
        .must("subject view");
    let centre = view
        .entries
        .iter()
        .find(|e| e.event.as_ref().is_some_and(|ev| ev.trace_id == "adv-vis-gsc"))
        .expect("the centre's read is in the landlord's view");
    let proof = hcb.inclusion_proof(centre.index, head.size()).await.must("proof of the centre's read");
    assert!(proof.entry.is_none(), "a portal's proof carries hashes only");
    verify_inclusion_of(centre, &proof, &head).must("the portal proves the entry it holds");
    let digest = &centre.event.as_ref().expect("event").subject_digest;
    assert!(view.entries.iter().all(|e| e.event.as_ref().is_some_and(|ev| ev.subject_digest == *digest)));
    let by_digest = hcb
        .query_access_log(QueryAccessLogRequest { subject_digest: digest.clone(), ..Default::default() })
        .await
        .must("asking by digest");
    assert!(by_digest.entries.iter().all(|e| e.event.as_ref().is_some_and(|ev| party(ev, HCB))));
    let (code, reason, message) = refused(
        hcb.query_access_log(QueryAccessLogRequest { trace_id: landlord_id.clone(), ..Default::default() }).await,
    );
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");

    // Every look is itself an entry: who looked, with which filters, never the id in clear.
    let looks: Vec<AccessEvent> = fed.whole_log().await[all.len()..]
        .iter()
        .filter_map(|e| e.event.clone())
        .filter(|e| e.requester == HCB && e.kind == EventKind::Admin as i32)
        .collect();
    let queries = looks.iter().filter(|e| e.action == "log.query").count();
    assert_eq!(queries, 4, "{looks:?}");
    assert!(looks.iter().any(|e| e.action == "log.query" && e.note == "trace_id=adv-vis-gsc"), "{looks:?}");
    let views: Vec<&AccessEvent> = looks.iter().filter(|e| e.action == "log.subject_view").collect();
    assert_eq!(views.len(), 1, "{looks:?}");
    assert_eq!(views[0].subject_digest, *digest);
    assert!(looks.iter().all(|e| !format!("{e:?}").contains(&landlord_id)), "{looks:?}");
    let again = hcb
        .subject_access_view(SubjectAccessViewRequest { subject: person(&landlord_id), from_unix_ms: 0, page: None })
        .await
        .must("subject view");
    assert!(
        again.entries.iter().any(|e| e.event.as_ref().is_some_and(|ev| ev.action == "log.subject_view")),
        "the subject sees that the portal looked"
    );
}

/// Regression (issue 16): the public-security node appended an entry saying that market
/// regulation served the housing bureau, and the catalog put it into the Merkle log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_appends_only_its_own_entries_and_never_an_identifier_in_clear() {
    let fed = TestFed::start(Setup::default()).await;
    let (landlord, _) = fed.landlord();
    let landlord_id = landlord["id_number"].clone();
    let shipped = fed.net.wait_for_shipping().await.must("shipping");
    let next = shipped.get(PSB).map(|s| s.last_shipped + 1).expect("the public-security node's status");
    let auditor = fed.client(AUDIT);
    let size_before = auditor.tree_head().await.must("tree head").size;
    let mut psb = raw_catalog(&fed, PSB).await;

    let own = |sequence: u64, trace: &str| AccessEvent {
        recorder: PSB.into(),
        sequence,
        time_unix_ms: now_ms(),
        kind: EventKind::Query as i32,
        requester: HCB.into(),
        provider: PSB.into(),
        dataset: POPULATION.into(),
        action: "get_record".into(),
        purpose_code: RENTAL.into(),
        reason: "e2e forged".into(),
        trace_id: trace.into(),
        outcome: Outcome::Served as i32,
        ..Default::default()
    };
    let forged = AccessEvent {
        provider: AMR.into(),
        dataset: BUSINESS_LICENCE.into(),
        action: "get_licence".into(),
        ..own(next + 1, "adv-forged")
    };
    let admin = AccessEvent { kind: EventKind::Admin as i32, action: "grant.approve".into(), ..own(next, "adv-admin") };
    let other_recorder = AccessEvent { recorder: AMR.into(), ..own(next, "adv-recorder") };
    // Each batch would be appendable but for one foreign event: nothing of it is appended.
    for batch in [vec![own(next, "adv-mixed"), forged.clone()], vec![admin], vec![other_recorder], vec![forged]] {
        let (code, reason, message) = status(psb.append_access_log(AppendAccessLogRequest { events: batch }).await);
        assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::ForeignEntry), "{message}");
        assert!(message.contains("its own"), "{message}");
    }

    // Trace ids and reasons holding a subject id in clear are refused before anything is logged.
    for (event, field) in [
        (own(next, &landlord_id), "events[0].trace_id"),
        (AccessEvent { reason: format!("核验{landlord_id}"), ..own(next, "adv-reason") }, "events[0].reason"),
    ] {
        let (code, reason, message) =
            status(psb.append_access_log(AppendAccessLogRequest { events: vec![event] }).await);
        assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");
        assert!(message.contains(field) && message.contains("resident ID"), "{message}");
        assert!(!message.contains(&landlord_id), "the refusal repeats the id: {message}");
    }
    // The same for the catalog's own free text that reaches the log.
    let (consent, _) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let (code, reason, message) =
        refused(fed.client(HCB).revoke_consent(&consent.id, &format!("申请人 {landlord_id} 撤回")).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");
    assert!(!message.contains(&landlord_id), "{message}");
    let credit_code = fed.data.businesses[0]["credit_code"].clone();
    let (code, reason, message) =
        refused(fed.client(OPS).suspend_member(GSC, &format!("企业 {credit_code} 投诉")).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::IdentifierInClear), "{message}");
    assert!(message.contains("credit code") && !message.contains(&credit_code), "{message}");
    assert!(
        fed.client(HCB)
            .list_members()
            .await
            .must("the centre is not suspended")
            .iter()
            .all(|m| m.status == MemberStatus::Active as i32)
    );

    // The node's own shipping goes on from the same sequence: nothing of the refused
    // batches took a place in its sequence.
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    fed.client(HCB)
        .run_query(record_query(&landlord_id, &["name"], &token, "adv-after"))
        .await
        .must("a query after the attacks");
    assert_eq!(fed.central_entries("adv-after").await.len(), 1);

    // What the central log holds: no forged entry, no id in clear, and one refusal entry
    // per refused batch, naming no content of it.
    let log = fed.whole_log().await;
    for trace in ["adv-mixed", "adv-forged", "adv-admin", "adv-recorder", "adv-reason"] {
        assert!(log.iter().all(|e| e.event.as_ref().is_none_or(|ev| ev.trace_id != trace)), "{trace} was appended");
    }
    assert!(
        log.iter().all(|e| e.event.as_ref().is_none_or(|ev| !(ev.provider == AMR && ev.recorder == PSB))),
        "an entry about market regulation recorded by public security"
    );
    for entry in &log {
        let leaf = String::from_utf8_lossy(&entry.leaf);
        assert!(!leaf.contains(&landlord_id) && !leaf.contains(&credit_code), "entry {} holds an id", entry.index);
    }
    let refusals: Vec<&AccessEvent> = log[size_before as usize..]
        .iter()
        .filter_map(|e| e.event.as_ref())
        .filter(|e| e.action == "log.append.refused")
        .collect();
    let foreign = refusals.iter().filter(|e| e.reason_code == ReasonCode::ForeignEntry as i32).count();
    let in_clear = refusals.iter().filter(|e| e.reason_code == ReasonCode::IdentifierInClear as i32).count();
    assert_eq!((foreign, in_clear), (4, 2), "{refusals:?}");
    for e in &refusals {
        assert_eq!((e.kind, e.requester.as_str(), e.outcome), (EventKind::Admin as i32, PSB, Outcome::Refused as i32));
        assert!(!e.note.contains(AMR) && !e.note.contains("business-licence") && !e.note.contains("adv-"), "{e:?}");
    }
}

/// Regression (issue 16): the subject digest key went to every department, requester-only
/// members included, so that their entries' digests could be reversed by trying ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_key_goes_only_to_providers_of_personal_data() {
    let fed = TestFed::start(Setup::default()).await;
    for dept in [PSB, AMR, PNR] {
        let personal = fed
            .client(dept)
            .list_datasets(ListDatasetsRequest { provider: dept.into(), ..Default::default() })
            .await
            .must("datasets")
            .datasets
            .iter()
            .any(|d| d.personal_data);
        let answer = raw_catalog(&fed, dept).await.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await;
        match answer {
            Ok(key) => assert!(personal && key.into_inner().key.len() == 32, "{dept}"),
            Err(s) => assert!(!personal && s.code() == Code::PermissionDenied, "{dept}: {s:?}"),
        }
    }
    for dept in [HCB, GSC] {
        let (code, _, message) =
            status(raw_catalog(&fed, dept).await.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await);
        assert_eq!(code, Code::PermissionDenied, "{dept}: {message}");
        assert!(message.contains(dept) && message.contains("personal data"), "{message}");
    }
    let (code, reason, _) =
        status(raw_catalog(&fed, AUDIT).await.get_subject_digest_key(GetSubjectDigestKeyRequest {}).await);
    assert_eq!((code, reason), (Code::PermissionDenied, ReasonCode::RoleRequired));
}

/// Regression (issue 16): bad proof sizes answered INTERNAL, a page token of `u64::MAX`
/// overflowed, a rate limit above 60,000 a minute became no limit (now enforced as asked), key files were written
/// world-readable and chmod-ed afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sizes_tokens_and_rate_limits_are_refused_and_key_files_are_private() {
    let fed = TestFed::start(Setup::default()).await;

    // Proof sizes and page tokens out of range: INVALID_ARGUMENT naming the field.
    // Only the nodes' shippers append, and they linger before they ship the set-up's last
    // entries: once every node has shipped, the head stays put, so one past it is out of range.
    fed.net.wait_for_shipping().await.must("shipping");
    let auditor = fed.client(AUDIT);
    let size = auditor.tree_head().await.must("tree head").size;
    for (old, new, field) in
        [(0, 0, "old_size"), (0, size, "old_size"), (size, size + 1, "new_size"), (2, 1, "old_size")]
    {
        let (code, reason, message) = refused(auditor.consistency_proof(old, new).await);
        assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::MalformedRequest), "{old}..{new}: {message}");
        assert!(message.starts_with(field), "{old}..{new}: {message}");
    }
    auditor.consistency_proof(1, size).await.must("a proof between sizes in range");
    let (code, _, message) = refused(auditor.inclusion_proof(size, size).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    for token in [u64::MAX.to_string(), size.to_string(), "-1".into(), "next".into()] {
        let page = Some(PageRequest { page_size: 10, page_token: token.clone() });
        let (code, _, message) =
            refused(auditor.query_access_log(QueryAccessLogRequest { page: page.clone(), ..Default::default() }).await);
        assert_eq!(code, Code::InvalidArgument, "{token}: {message}");
        assert!(message.starts_with("page.page_token"), "{message}");
        let (landlord, _) = fed.landlord();
        let (code, _, message) = refused(
            fed.client(HCB)
                .subject_access_view(SubjectAccessViewRequest {
                    subject: person(&landlord["id_number"]),
                    from_unix_ms: 0,
                    page,
                })
                .await,
        );
        assert_eq!(code, Code::InvalidArgument, "{token}: {message}");
    }

    // A rate limit above one a millisecond is kept and enforced, not turned into no limit.
    let apply = |rate: u32| ApplyGrantRequest {
        dataset: BUSINESS_LICENCE.into(),
        purposes: vec![OPENING.into()],
        fields: vec!["licence_no".into()],
        consent_required: false,
        rate_limit_per_minute: rate,
        expires_at_unix_ms: 0,
        legal_basis: "《优化营商环境条例》".into(),
        service_item: OPENING.into(),
    };
    // (The limiter's own test in exchange-core shows such a limit admits exactly its quota.)
    let grant = fed.client(GSC).apply_grant(apply(90_000)).await.must("a limit above one a millisecond");
    assert_eq!(grant.rate_limit_per_minute, 90_000, "kept as asked, not turned into no limit");

    // Key files: mode 0600, from the catalog's keygen and from the local federation.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().must("temporary folder");
    let out =
        std::process::Command::new(exchange_localnet::default_bin_dir().must("binaries").join("exchange-catalog"))
            .arg("keygen")
            .arg("--dir")
            .arg(dir.path().join("keys"))
            .output()
            .must("run exchange-catalog keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for path in [
        dir.path().join("keys/configuration.pem"),
        dir.path().join("keys/token.pem"),
        dir.path().join("keys/checkpoint.pem"),
        dir.path().join("keys/subject-digest.key"),
        fed.net.dir().join("keys/configuration.pem"),
        fed.net.dir().join("keys/token.pem"),
        fed.net.dir().join("keys/checkpoint.pem"),
        fed.net.dir().join("keys/subject-digest.key"),
    ] {
        let mode = std::fs::metadata(&path).must("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

/// Issue 16, item 7: a member could be registered without certificate fingerprints, and then
/// any certificate of the federation CA naming it was the member. Fingerprints are required
/// at registration and update; once a member's list is replaced, its old certificate is
/// refused at once by the catalog and by every node, for queries and the department's own
/// calls alike, on a connection opened before the change too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprints_are_required_and_a_replaced_certificate_is_refused_at_once() {
    let fed = TestFed::start(Setup::default()).await;
    let ops = fed.client(OPS);
    let newcomer = Member {
        dept_id: "gov.sz.newcomer".into(),
        name: "新成员".into(),
        roles: vec![Role::Department as i32],
        ..Default::default()
    };
    let (code, reason, message) = refused(ops.register_member(newcomer).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::MalformedRequest), "{message}");
    assert!(
        message.contains("member.cert_fingerprints") && message.contains("at least one certificate fingerprint"),
        "{message}"
    );
    let (code, _, _) = refused(ops.get_member("gov.sz.newcomer").await);
    assert_eq!(code, Code::NotFound, "nothing of the refused member is kept");
    let emptied = UpdateMemberRequest { dept_id: PNR.into(), replace_cert_fingerprints: true, ..Default::default() };
    let (code, reason, message) = refused(ops.update_member(emptied).await);
    assert_eq!((code, reason), (Code::InvalidArgument, ReasonCode::MalformedRequest), "{message}");
    assert!(message.contains("cert_fingerprints"), "{message}");

    // The natural-resources department's systems get a certificate of their own beside the
    // node's, then replace it with a newer one; the node's certificate stays listed.
    let ca = FederationCa::load_from_dir(fed.net.dir().join("pki")).must("the federation CA");
    let node_cert = fed.net.tls_files(PNR).load().must("the node's certificate").fingerprint();
    let old = ca.issue(&CertSpec::new(PNR, CertKind::Client)).must("a certificate");
    let new = ca.issue(&CertSpec::new(PNR, CertKind::Client)).must("a certificate");
    let list = |fingerprints: &[[u8; 32]]| UpdateMemberRequest {
        dept_id: PNR.into(),
        cert_fingerprints: fingerprints.iter().map(|f| f.to_vec()).collect(),
        replace_cert_fingerprints: true,
        ..Default::default()
    };
    ops.update_member(list(&[node_cert, old.fingerprint])).await.must("list the old certificate");
    fed.net.wait_for_configuration().await.must("nodes take the member record");
    let landlord_id = fed.landlord().0["id_number"].clone();
    let query = || GetRecordRequest {
        context: ctx(RENTAL, "fingerprint-change"),
        dataset: POPULATION.into(),
        subject: person(&landlord_id),
        fields: vec!["name".into()],
        consent_token: String::new(),
        version: 0,
    };
    // Connections opened with the old certificate while it is listed: it is the member.
    let mut own = raw_node(&fed, PNR, Some((&old.cert_pem, &old.key_pem))).await;
    let mut elsewhere = raw_node(&fed, PSB, Some((&old.cert_pem, &old.key_pem))).await;
    let mut catalog = raw_catalog_as(&fed, &old.cert_pem, &old.key_pem).await;
    own.get_log_status(GetLogStatusRequest {}).await.must("the listed certificate on its own node");
    let (_, reason, message) = status(elsewhere.get_record(query()).await);
    assert_ne!(reason, ReasonCode::UnknownMember, "authenticated, then refused for want of a grant: {message}");
    catalog.list_members(ListMembersRequest {}).await.must("the listed certificate at the catalog");

    ops.update_member(list(&[node_cert, new.fingerprint])).await.must("replace the old certificate");
    fed.net.wait_for_configuration().await.must("nodes take the member record");
    let certificate = fed.data.properties[0]["cert_no"].clone();
    let revoke = RevokeLicenceRequest {
        dataset: PROPERTY_CERTIFICATE.into(),
        licence_id: certificate,
        reason: "an old certificate".into(),
    };
    let (code, reason, message) = status(own.revoke_licence(revoke).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember), "{message}");
    assert!(message.contains("not registered"), "{message}");
    let (code, reason, _) = status(own.get_log_status(GetLogStatusRequest {}).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember));
    let (code, reason, _) = status(elsewhere.get_record(query()).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::UnknownMember));
    let (code, reason, message) = status(catalog.list_members(ListMembersRequest {}).await);
    assert_eq!((code, reason), (Code::Unauthenticated, ReasonCode::Unauthenticated), "{message}");
    assert!(message.contains("not registered"), "{message}");

    // The new certificate is the member.
    let mut renewed = raw_node(&fed, PNR, Some((&new.cert_pem, &new.key_pem))).await;
    renewed.get_log_status(GetLogStatusRequest {}).await.must("the new certificate on its own node");
    raw_catalog_as(&fed, &new.cert_pem, &new.key_pem)
        .await
        .list_members(ListMembersRequest {})
        .await
        .must("the new certificate at the catalog");
}
