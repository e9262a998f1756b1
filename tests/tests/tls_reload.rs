//! Certificate rotation without a restart: a node given a renewed certificate and `SIGHUP`
//! presents it on every new connection, keeps serving verified answers, and keeps its process;
//! files that name another department are refused and change nothing.

use std::sync::Arc;
use std::time::Duration;

use exchange_localnet::data::{HCB, OPS, POPULATION, PSB, RENTAL};
use exchange_pki::{CertKind, CertSpec, FederationCa};
use exchange_proto::v1::UpdateMemberRequest;
use exchange_tests::*;
use rustls::pki_types::ServerName;

/// The fingerprint of the certificate `dept`'s node presents in a handshake now.
async fn presented(fed: &TestFed, dept: &str) -> [u8; 32] {
    let ca = std::fs::read(fed.net.dir().join("pki/ca.crt")).must("the CA certificate");
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(der.must("CA PEM")).must("a trust anchor");
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", fed.net.port(dept).must("port"))).await.must("connect");
    let name = ServerName::try_from("localhost").must("server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.must("handshake");
    let certs = tls.get_ref().1.peer_certificates().must("a server certificate");
    exchange_pki::fingerprint(&certs[0])
}

/// Replaces `dept`'s certificate and key files with a new certificate naming `names`.
fn new_certificate(fed: &TestFed, dept: &str, names: &str) -> [u8; 32] {
    let pki = fed.net.dir().join("pki");
    let ca = FederationCa::load_from_dir(&pki).must("the federation CA");
    for ext in ["crt", "key"] {
        std::fs::remove_file(pki.join(format!("{dept}.{ext}"))).must("remove the old file");
    }
    let issued = ca.issue(&CertSpec::new(names, CertKind::Both).with_loopback()).must("issue");
    issued.write_files(&pki, dept).must("write the new files");
    let pem = std::fs::read(pki.join(format!("{dept}.crt"))).must("read back");
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).must("PEM");
    let der: rustls::pki_types::CertificateDer<'_> = der;
    exchange_pki::fingerprint(&der)
}

fn hangup(pid: u32) {
    let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().must("kill -HUP");
    assert!(status.success(), "kill -HUP {pid}");
}

fn log_of(fed: &TestFed, dept: &str) -> String {
    std::fs::read_to_string(fed.net.log_path(dept)).must("the node's log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_sighup_without_a_restart() {
    let fed = TestFed::start(Setup::default()).await;
    let pid = fed.net.pid(PSB).must("the node runs");
    let before = presented(&fed, PSB).await;

    let renewed = new_certificate(&fed, PSB, PSB);
    assert_eq!(presented(&fed, PSB).await, before, "nothing changes before the signal");
    // As the runbook does it: the catalog accepts both certificates while the node moves over.
    let ops = fed.client(OPS);
    let fingerprints = |list: &[[u8; 32]]| UpdateMemberRequest {
        dept_id: PSB.into(),
        cert_fingerprints: list.iter().map(|f| f.to_vec()).collect(),
        replace_cert_fingerprints: true,
        ..Default::default()
    };
    ops.update_member(fingerprints(&[before, renewed])).await.must("accept both certificates");
    hangup(pid);
    wait_for("the node presents the renewed certificate", Duration::from_secs(20), || async {
        (presented(&fed, PSB).await == renewed).then_some(())
    })
    .await;
    assert!(log_of(&fed, PSB).contains("TLS certificate reloaded"), "the reload is logged");
    assert_eq!(fed.net.pid(PSB), Some(pid), "the same process");

    // The node's own connections to the catalog move to the renewed certificate too: with the
    // old one struck from the member's list, the node stays fresh and ships its entries.
    tokio::time::sleep(Duration::from_secs(12)).await; // one keep-alive round: old connections end
    ops.update_member(fingerprints(&[renewed])).await.must("keep only the renewed certificate");
    fed.net.wait_for_configuration().await.must("the nodes take the new list");

    // Queries go on, signed and verified, over a new connection too.
    let landlord_id = fed.landlord().0["id_number"].clone();
    let (_, token) = fed.consent_token(HCB, &landlord_id, &[(POPULATION, &["name"])], RENTAL, POPULATION).await;
    let fresh = fed.net.client(HCB).await.must("a new client");
    fresh
        .run_query(record_query(&landlord_id, &["name"], &token, "after-reload"))
        .await
        .must("served after the reload");
    fed.client(HCB)
        .run_query(record_query(&landlord_id, &["name"], &token, "old-connection"))
        .await
        .must("served on the connection opened before");
    fed.net.wait_for_shipping().await.must("the node ships under its renewed certificate");
    assert_eq!(fed.central_entries("after-reload").await.len(), 1, "the entry reached the central log");

    // Files naming another department: refused, the renewed certificate stays.
    let refusals = log_of(&fed, PSB).matches("TLS reload refused").count();
    new_certificate(&fed, PSB, HCB);
    hangup(pid);
    wait_for("the refusal is logged", Duration::from_secs(20), || async {
        (log_of(&fed, PSB).matches("TLS reload refused").count() > refusals).then_some(())
    })
    .await;
    assert!(log_of(&fed, PSB).contains("urn:exchange:dept:gov.sz.hcb"), "the log says what is wrong");
    assert_eq!(presented(&fed, PSB).await, renewed, "a refused reload changes nothing");
    fresh.run_query(record_query(&landlord_id, &["name"], &token, "after-refusal")).await.must("still served");
}
