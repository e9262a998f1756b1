//! Mutual TLS end to end on loopback: a CA and certificates in a temporary directory, two tonic
//! servers (an open health service, and a health service behind `require_client_cert`), and
//! clients with a good certificate, no certificate, a foreign certificate and an expired one.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exchange_pki::{
    CertKind, CertSpec, FederationCa, IssuedCert, OffsetDateTime, PeerIdentity, TlsFiles, client_tls_config,
    https_endpoint, install_crypto_provider, require_client_cert, server_tls_config,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The bound on every network step: a test fails instead of hanging.
const STEP: Duration = Duration::from_secs(10);

const SERVER: &str = "gov.catalog";
const CALLER: &str = "gov.sz.amr";

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(STEP, f).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {STEP:?}"),
    }
}

/// How a health check ended.
#[derive(Debug)]
enum Outcome {
    Serving,
    /// The channel could not be established (TLS refused, typically).
    ConnectFailed(String),
    /// The call got an error status.
    Status(tonic::Status),
}

struct Federation {
    dir: tempfile::TempDir,
    ca: FederationCa,
    open: SocketAddr,
    guarded: SocketAddr,
    seen: Arc<Mutex<Vec<PeerIdentity>>>,
    _shutdown: Vec<oneshot::Sender<()>>,
}

impl Federation {
    async fn start() -> Federation {
        install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        ca.write_files(dir.path(), "ca").expect("write ca");
        ca.issue(&CertSpec::new(SERVER, CertKind::Both).with_loopback())
            .expect("server cert")
            .write_files(dir.path(), SERVER)
            .expect("write server");
        ca.issue(&CertSpec::new(CALLER, CertKind::Client))
            .expect("client cert")
            .write_files(dir.path(), CALLER)
            .expect("write");

        let server_identity = TlsFiles::in_dir(dir.path(), SERVER).load().expect("load server files");
        let tls = server_tls_config(&server_identity).expect("server tls");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut shutdown = Vec::new();

        // The open server: health only, as every daemon serves it.
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        shutdown.push(tx);
        let router = Server::builder().tls_config(tls.clone()).expect("tls config").add_service(health);
        tokio::spawn(router.serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = rx.await;
        }));

        // The guarded server: the same service behind the certificate check, as every other
        // service is; it records whom it let in.
        let (_reporter, health) = tonic_health::server::health_reporter();
        let record = Arc::clone(&seen);
        let guard = move |req: tonic::Request<()>| {
            let req = require_client_cert(req)?;
            if let (Some(identity), Ok(mut seen)) = (req.extensions().get::<PeerIdentity>(), record.lock()) {
                seen.push(identity.clone());
            }
            Ok(req)
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let guarded = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        shutdown.push(tx);
        let router =
            Server::builder().tls_config(tls).expect("tls config").add_service(InterceptedService::new(health, guard));
        tokio::spawn(router.serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = rx.await;
        }));

        Federation { dir, ca, open, guarded, seen, _shutdown: shutdown }
    }

    fn ca_certificate(&self) -> Certificate {
        Certificate::from_pem(self.ca.cert_pem())
    }

    /// The TLS configuration of the department whose files are in the directory.
    fn department_tls(&self, stem: &str) -> ClientTlsConfig {
        let loaded = TlsFiles::in_dir(self.dir.path(), stem).load().expect("load client files");
        client_tls_config(&loaded, "localhost").expect("client tls")
    }

    /// A client that trusts the federation CA and presents `cert`, whatever issued it.
    fn presenting(&self, cert: &IssuedCert) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca_certificate())
            .identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem))
            .domain_name("localhost")
    }

    /// A client that trusts the federation CA and presents no certificate.
    fn anonymous(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca_certificate()).domain_name("localhost")
    }

    fn seen(&self) -> Vec<PeerIdentity> {
        self.seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

async fn health_check(addr: SocketAddr, tls: ClientTlsConfig) -> Outcome {
    let endpoint: Endpoint =
        https_endpoint(&format!("https://{addr}"), tls).expect("endpoint").connect_timeout(STEP).timeout(STEP);
    let channel = match bounded("connect", endpoint.connect()).await {
        Ok(channel) => channel,
        Err(e) => return Outcome::ConnectFailed(format!("{e:?}")),
    };
    let mut client = HealthClient::new(channel);
    match bounded("health check", client.check(HealthCheckRequest { service: String::new() })).await {
        Ok(response) => {
            assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
            Outcome::Serving
        }
        Err(status) => Outcome::Status(status),
    }
}

/// Asserts that the TLS handshake refused the client with the `alert` (rustls' name for it).
///
/// With TLS 1.3 the client finishes its side of the handshake before the server has checked
/// the client certificate, so the refusal usually surfaces at the first call, as UNKNOWN
/// "transport error" whose source is the alert, rather than at `connect()`.
fn assert_refused(outcome: &Outcome, what: &str, alert: &str) {
    let detail = match outcome {
        Outcome::Serving => panic!("{what}: the call succeeded"),
        Outcome::ConnectFailed(detail) => detail.clone(),
        Outcome::Status(status) => {
            assert!(matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown), "{what}: {status:?}");
            format!("{status:?}")
        }
    };
    assert!(detail.contains(&format!("received fatal alert: {alert}")), "{what}: {detail}");
}

#[tokio::test]
async fn good_certificate_is_accepted_and_names_its_department() {
    let fed = Federation::start().await;
    let outcome = health_check(fed.guarded, fed.department_tls(CALLER)).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");
    let seen = fed.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].dept_id, CALLER);
    let loaded = TlsFiles::in_dir(fed.dir.path(), CALLER).load().expect("load");
    assert_eq!(seen[0].fingerprint, loaded.fingerprint());
    assert_eq!(seen[0].not_after_unix, loaded.not_after_unix());

    // A certificate of kind `both` works as a client too.
    let outcome = health_check(fed.guarded, fed.department_tls(SERVER)).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");
    assert_eq!(fed.seen().last().map(|id| id.dept_id.clone()), Some(SERVER.to_owned()));
}

#[tokio::test]
async fn without_a_certificate_only_health_is_reachable() {
    let fed = Federation::start().await;
    let outcome = health_check(fed.open, fed.anonymous()).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");

    match health_check(fed.guarded, fed.anonymous()).await {
        Outcome::Status(status) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            assert_eq!(status.message(), "this call needs a client certificate issued by the federation CA");
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    assert!(fed.seen().is_empty());
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let fed = Federation::start().await;
    let other = FederationCa::generate("Another CA").expect("other ca");
    let foreign = other.issue(&CertSpec::new(CALLER, CertKind::Client)).expect("foreign cert");
    for addr in [fed.open, fed.guarded] {
        assert_refused(&health_check(addr, fed.presenting(&foreign)).await, "foreign certificate", "UnknownCA");
    }
    assert!(fed.seen().is_empty());

    // The server keeps accepting after refused handshakes.
    let outcome = health_check(fed.guarded, fed.department_tls(CALLER)).await;
    assert!(matches!(outcome, Outcome::Serving), "{outcome:?}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let fed = Federation::start().await;
    let now = OffsetDateTime::now_utc();
    let expired = fed
        .ca
        .issue(&CertSpec::new(CALLER, CertKind::Client).with_validity(now - time_days(30), now - time_days(1)))
        .expect("expired cert");
    for addr in [fed.open, fed.guarded] {
        assert_refused(
            &health_check(addr, fed.presenting(&expired)).await,
            "expired certificate",
            "CertificateExpired",
        );
    }
    assert!(fed.seen().is_empty());

    // Loading it as a department's files is refused too, with the reason.
    expired.write_files(fed.dir.path(), "expired").expect("write");
    let error = TlsFiles::in_dir(fed.dir.path(), "expired").load().expect_err("expired");
    let message = error.to_string();
    assert!(message.starts_with("the certificate in ") && message.contains("expired.crt expired at "), "{message}");
}

#[tokio::test]
async fn a_certificate_without_a_department_is_unauthenticated() {
    let fed = Federation::start().await;
    // Signed by the federation CA, but with no `urn:exchange:dept:` SAN: only a misused CA
    // key could make one, and the server must still not guess who is calling.
    let (ca_pem, ca_key_pem) = fed.ca.to_pem();
    let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).expect("ca key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let anonymous = IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: exchange_pki::fingerprint(cert.der()),
        not_after_unix: 0,
    };
    match health_check(fed.guarded, fed.presenting(&anonymous)).await {
        Outcome::Status(status) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            assert_eq!(
                status.message(),
                "client certificate refused: no SAN URI `urn:exchange:dept:<id>` (the federation CA puts the department id there)"
            );
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_refuses_a_server_under_another_name() {
    let fed = Federation::start().await;
    let loaded = TlsFiles::in_dir(fed.dir.path(), CALLER).load().expect("load");
    let tls = client_tls_config(&loaded, "catalog.example.org").expect("tls");
    match health_check(fed.open, tls).await {
        // The client checks the server's certificate before `connect()` returns.
        Outcome::ConnectFailed(detail) => assert!(detail.contains("NotValidForName"), "{detail}"),
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

/// A pinned server: the server certificate (of the federation CA, with the right name) must
/// also name the pinned department; another department's certificate with the same names is
/// refused in the handshake, before any request is sent.
#[tokio::test]
async fn the_client_refuses_a_server_naming_another_department() {
    let fed = Federation::start().await;
    let loaded = TlsFiles::in_dir(fed.dir.path(), CALLER).load().expect("load");
    let connect = |dept: &'static str| {
        let endpoint =
            exchange_pki::pinned_https_endpoint(&format!("https://{}", fed.open), &loaded, "localhost", dept)
                .expect("endpoint")
                .connect_timeout(STEP)
                .timeout(STEP);
        async move { bounded("connect", endpoint.connect()).await.map(HealthClient::new) }
    };
    let mut pinned = connect(SERVER).await.expect("the server names the pinned department");
    let answer = bounded("health check", pinned.check(HealthCheckRequest { service: String::new() })).await;
    assert_eq!(answer.expect("serving").into_inner().status, ServingStatus::Serving as i32);
    match connect(CALLER).await {
        Err(e) => {
            let detail = format!("{e:?}");
            assert!(detail.contains("ServerDept") && detail.contains("urn:exchange:dept:gov.catalog"), "{detail}");
        }
        Ok(_) => panic!("a server naming {SERVER} was taken for {CALLER}"),
    }
    let e = exchange_pki::pinned_https_endpoint("https://127.0.0.1:1", &loaded, "localhost", "Not A Dept")
        .expect_err("a malformed department id");
    assert!(e.to_string().contains("Not A Dept"), "{e}");
}

#[tokio::test]
async fn files_on_disk_are_private_and_never_overwritten() {
    let fed = Federation::start().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for stem in ["ca", CALLER] {
            let mode =
                std::fs::metadata(fed.dir.path().join(format!("{stem}.key"))).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{stem}.key is readable by others: {mode:o}");
        }
    }
    let error = fed.ca.write_files(fed.dir.path(), "ca").expect_err("overwrite");
    assert!(
        error.to_string().ends_with("already exists; refusing to overwrite a certificate or key (move it away first)")
    );
    let reloaded = FederationCa::load_from_dir(fed.dir.path()).expect("reload ca");
    assert_eq!(reloaded.fingerprint(), fed.ca.fingerprint());

    let missing = TlsFiles::in_dir(fed.dir.path(), "nobody").load().expect_err("missing");
    assert!(missing.to_string().starts_with("cannot read the certificate file "), "{missing}");
    assert!(missing.to_string().contains("nobody.crt"), "{missing}");
}

/// Runs `openssl` with `args`: (success, standard output and error together).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl (./scripts/test installs it when missing)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The files the CA writes are read by OpenSSL, the TLS library of most department systems
/// that are not Rust (Python, PHP, C, Node.js), and it completes a mutual-TLS handshake with a
/// server configured as every daemon is: the certificates are ECDSA P-256, not Ed25519, which
/// BoringSSL in gRPC and Java over Netty refuse.
#[tokio::test]
async fn openssl_reads_every_file_and_completes_the_mutual_handshake() {
    let fed = Federation::start().await;
    let path = |name: &str| fed.dir.path().join(name).display().to_string();
    for stem in ["ca", SERVER, CALLER] {
        let (ok, text) = openssl(&["x509", "-in", &path(&format!("{stem}.crt")), "-noout", "-text"]);
        assert!(ok, "openssl x509 {stem}.crt: {text}");
        assert!(text.contains("id-ecPublicKey") && text.contains("prime256v1"), "{stem}.crt is not P-256: {text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{stem}.crt is not signed with ECDSA SHA-256: {text}");
        let (ok, text) = openssl(&["pkey", "-in", &path(&format!("{stem}.key")), "-noout", "-text"]);
        assert!(ok && text.contains("prime256v1"), "openssl pkey {stem}.key: {text}");
    }
    // The application's Ed25519 signing keys (nodes, catalog) are read too: PKCS#8 v1.
    let signing = fed.dir.path().join("node-signing.pem");
    exchange_pki::keyfile::write_signing_key(&signing, &ed25519_dalek::SigningKey::from_bytes(&[9; 32]))
        .expect("write");
    let (ok, text) = openssl(&["pkey", "-in", &signing.display().to_string(), "-noout", "-text"]);
    assert!(ok && text.contains("ED25519 Private-Key"), "openssl pkey on a signing key: {text}");
    let (_, text) = openssl(&["x509", "-in", &path(&format!("{CALLER}.crt")), "-noout", "-ext", "subjectAltName"]);
    assert!(text.contains(&format!("URI:urn:exchange:dept:{CALLER}")), "{text}");
    let (ok, text) = openssl(&["verify", "-CAfile", &path("ca.crt"), &path(&format!("{CALLER}.crt"))]);
    assert!(ok && text.contains(": OK"), "openssl verify: {text}");

    let connect = format!("127.0.0.1:{}", fed.guarded.port());
    let (cert, key, ca) = (path(&format!("{CALLER}.crt")), path(&format!("{CALLER}.key")), path("ca.crt"));
    let args = [
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-cert",
        &cert,
        "-key",
        &key,
        "-alpn",
        "h2",
        "-brief",
    ]
    .map(String::from);
    let (ok, text) = bounded(
        "openssl s_client",
        tokio::task::spawn_blocking(move || openssl(&args.iter().map(String::as_str).collect::<Vec<_>>())),
    )
    .await
    .expect("s_client task");
    assert!(ok, "openssl s_client: {text}");
    assert!(text.contains("Verification: OK"), "the server's certificate did not verify: {text}");
    assert!(text.contains("Signature type: ECDSA"), "the server did not sign with its ECDSA key: {text}");
}

fn time_days(days: i64) -> std::time::Duration {
    std::time::Duration::from_secs(u64::try_from(days).unwrap_or(0) * 86_400)
}
