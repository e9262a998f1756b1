//! Loading a department's certificate files and turning them into tonic TLS configuration.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use x509_parser::certificate::X509Certificate;

use crate::error::PkiError;
use crate::identity::{PeerIdentity, dept_id_of, dept_uri, fingerprint};
use crate::pem;

/// How long a server waits for a TLS handshake before dropping the connection (tonic waits
/// forever by default).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The file stem of the federation CA's certificate and key (`ca.crt`, `ca.key`).
pub const CA_STEM: &str = "ca";

/// Seconds since the Unix epoch as RFC 3339, for messages.
pub(crate) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix} seconds after the Unix epoch"))
}

/// Refuses a certificate outside its validity period at `now_unix`.
pub(crate) fn check_validity(origin: &str, cert: &X509Certificate<'_>, now_unix: i64) -> Result<(), PkiError> {
    let validity = cert.validity();
    if now_unix < validity.not_before.timestamp() {
        return Err(PkiError::NotYetValid {
            origin: origin.to_owned(),
            not_before: rfc3339(validity.not_before.timestamp()),
        });
    }
    if now_unix > validity.not_after.timestamp() {
        return Err(PkiError::Expired {
            origin: origin.to_owned(),
            not_after: rfc3339(validity.not_after.timestamp()),
        });
    }
    Ok(())
}

/// Parses DER as X.509, naming `origin` on failure.
pub(crate) fn parse_cert<'a>(origin: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::BadCertificate { origin: origin.to_owned(), detail: e.to_string() })?;
    Ok(cert)
}

/// Refuses a certificate that is not a CA certificate.
pub(crate) fn check_is_ca(origin: &str, cert: &X509Certificate<'_>) -> Result<(), PkiError> {
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| PkiError::BadCertificate { origin: origin.to_owned(), detail: e.to_string() })?
        .is_some_and(|bc| bc.value.ca);
    if is_ca { Ok(()) } else { Err(PkiError::NotCa { origin: origin.to_owned() }) }
}

/// Installs rustls' *ring* crypto provider as the process default, unless one is installed.
///
/// tonic's server builds its rustls configuration from the process default, and panics when
/// the build enables both *ring* and *aws-lc-rs* and none is installed. Binaries should call
/// this first thing in `main`; [`server_tls_config`] and [`client_tls_config`] call it too.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Where a department's TLS material lives: the federation CA certificate (trust anchor), the
/// department's certificate and its private key, all PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The federation CA certificate(s); several during a CA rotation.
    pub ca_cert: PathBuf,
    /// The department's certificate (leaf first, if a chain).
    pub cert: PathBuf,
    /// The department's private key (unencrypted PKCS#8, as `exchange ca issue` writes it).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The layout `exchange ca issue` writes: `<dir>/ca.crt`, `<dir>/<stem>.crt`, `<dir>/<stem>.key`.
    pub fn in_dir(dir: impl AsRef<Path>, stem: &str) -> Self {
        let dir = dir.as_ref();
        TlsFiles {
            ca_cert: dir.join(format!("{CA_STEM}.crt")),
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        }
    }

    /// Reads and checks the three files: each is PEM with what it should hold, the key belongs
    /// to the certificate, the certificate was issued by the CA, is valid now and names exactly
    /// one department. Errors name the file and what is wrong.
    pub fn load(&self) -> Result<LoadedIdentity, PkiError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| PkiError::ReadFile { what, path: path.to_owned(), source })
        };
        let ca = read("CA certificate", &self.ca_cert)?;
        let cert = read("certificate", &self.cert)?;
        let key = read("private key", &self.key)?;
        let mut loaded = LoadedIdentity::check(
            Input { origin: self.ca_cert.display().to_string(), pem: ca },
            Input { origin: self.cert.display().to_string(), pem: cert },
            Input { origin: self.key.display().to_string(), pem: key },
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )?;
        loaded.source = Some(self.clone());
        Ok(loaded)
    }
}

/// PEM text and where it came from.
struct Input {
    origin: String,
    pem: Vec<u8>,
}

/// A department's checked TLS material, ready for [`server_tls_config`] and
/// [`client_tls_config`].
#[derive(Clone)]
pub struct LoadedIdentity {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    cert_origin: String,
    own: PeerIdentity,
    server_auth: bool,
    client_auth: bool,
    /// The files it was read from, for a reload.
    source: Option<TlsFiles>,
}

impl fmt::Debug for LoadedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No key material.
        f.debug_struct("LoadedIdentity")
            .field("cert", &self.cert_origin)
            .field("dept_id", &self.own.dept_id)
            .field("fingerprint", &self.own.fingerprint_hex())
            .field("server_auth", &self.server_auth)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl LoadedIdentity {
    /// The same checks as [`TlsFiles::load`], on PEM text already in memory.
    pub fn from_pem(ca_cert_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        Self::check(
            Input { origin: "<CA certificate PEM>".to_owned(), pem: ca_cert_pem.as_bytes().to_vec() },
            Input { origin: "<certificate PEM>".to_owned(), pem: cert_pem.as_bytes().to_vec() },
            Input { origin: "<private key PEM>".to_owned(), pem: key_pem.as_bytes().to_vec() },
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
    }

    fn check(ca: Input, cert: Input, key: Input, now_unix: i64) -> Result<Self, PkiError> {
        // The trust anchors.
        let ca_ders = pem::certificates(&ca.origin, &ca.pem)?;
        let mut anchors = Vec::with_capacity(ca_ders.len());
        for der in &ca_ders {
            let parsed = parse_cert(&ca.origin, der)?;
            check_is_ca(&ca.origin, &parsed)?;
            anchors.push(parsed);
        }

        // The certificate and its key.
        let chain = pem::certificates(&cert.origin, &cert.pem)?;
        let private_key = pem::private_key(&key.origin, &key.pem)?;
        let leaf_der: CertificateDer<'static> = chain[0].clone();
        let leaf = parse_cert(&cert.origin, &leaf_der)?;
        match rustls::sign::CertifiedKey::from_der(
            chain.clone(),
            private_key,
            &rustls::crypto::ring::default_provider(),
        ) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(PkiError::KeyMismatch { cert: cert.origin, key: key.origin });
            }
            Err(e) => return Err(PkiError::BadPrivateKey { origin: key.origin, detail: e.to_string() }),
        }

        // Issued by the federation CA (any of the anchors, for rotation), valid now.
        let issued = anchors.iter().any(|anchor| {
            leaf.issuer().as_raw() == anchor.subject().as_raw()
                && leaf.verify_signature(Some(anchor.public_key())).is_ok()
        });
        if !issued {
            return Err(PkiError::NotIssuedByCa { cert: cert.origin, ca: ca.origin });
        }
        for anchor in &anchors {
            check_validity(&ca.origin, anchor, now_unix)?;
        }
        check_validity(&cert.origin, &leaf, now_unix)?;

        // Whom it names and what it may be used for.
        let dept_id =
            dept_id_of(&leaf).map_err(|source| PkiError::CertDeptId { origin: cert.origin.clone(), source })?;
        let eku = leaf
            .extended_key_usage()
            .map_err(|e| PkiError::BadCertificate { origin: cert.origin.clone(), detail: e.to_string() })?;
        // No EKU extension means any usage (RFC 5280); webpki agrees.
        let (server_auth, client_auth) = match eku {
            None => (true, true),
            Some(eku) => (eku.value.any || eku.value.server_auth, eku.value.any || eku.value.client_auth),
        };
        let own = PeerIdentity {
            dept_id,
            fingerprint: fingerprint(&leaf_der),
            not_after_unix: leaf.validity().not_after.timestamp(),
        };
        Ok(LoadedIdentity {
            ca_pem: ca.pem,
            cert_pem: cert.pem,
            key_pem: key.pem,
            cert_origin: cert.origin,
            own,
            server_auth,
            client_auth,
            source: None,
        })
    }

    /// The files this material was read from, if it was.
    pub fn source(&self) -> Option<&TlsFiles> {
        self.source.as_ref()
    }

    /// The same files read and checked again (a renewed certificate, a new key, a CA bundle
    /// during a CA rotation), with the same checks as at start, and besides: the certificate
    /// names the same department and may be used as this one is.
    pub fn reloaded(&self) -> Result<LoadedIdentity, PkiError> {
        let files = self.source.as_ref().ok_or(PkiError::NotReloadable)?;
        let fresh = files.load()?;
        if fresh.dept_id() != self.dept_id() {
            return Err(PkiError::ReloadChangesDept {
                expected: dept_uri(self.dept_id()),
                found: dept_uri(fresh.dept_id()),
                origin: fresh.cert_origin,
            });
        }
        if self.server_auth && !fresh.server_auth {
            return Err(PkiError::WrongKeyUsage { origin: fresh.cert_origin, role: "server", eku: "serverAuth" });
        }
        if self.client_auth && !fresh.client_auth {
            return Err(PkiError::WrongKeyUsage { origin: fresh.cert_origin, role: "client", eku: "clientAuth" });
        }
        Ok(fresh)
    }

    /// The certificate chain and private key, DER, for a rustls configuration.
    pub(crate) fn rustls_parts(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>), PkiError> {
        Ok((pem::certificates(&self.cert_origin, &self.cert_pem)?, pem::private_key(&self.cert_origin, &self.key_pem)?))
    }

    /// The department this certificate names.
    pub fn dept_id(&self) -> &str {
        &self.own.dept_id
    }

    /// This certificate as a peer sees it (department id, fingerprint, expiry).
    pub fn own_identity(&self) -> &PeerIdentity {
        &self.own
    }

    /// SHA-256 of the certificate's DER encoding.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.own.fingerprint
    }

    /// The certificate's `notAfter`, in seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.own.not_after_unix
    }

    /// Whether the certificate may serve TLS (EKU serverAuth).
    pub fn is_server_cert(&self) -> bool {
        self.server_auth
    }

    /// Whether the certificate may authenticate a TLS client (EKU clientAuth).
    pub fn is_client_cert(&self) -> bool {
        self.client_auth
    }

    /// The federation CA certificate(s), PEM.
    pub fn ca_cert_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// The server side of mutual TLS: present `loaded`'s certificate, verify client certificates
/// against the federation CA, and give up on handshakes after [`HANDSHAKE_TIMEOUT`].
///
/// A client certificate is *optional at the handshake* only so that `grpc.health.v1.Health`
/// answers callers without one. A certificate that *is* presented must chain to the
/// federation CA and be valid, or the handshake fails. Every other service must therefore
/// refuse callers without a certificate: wrap it with [`crate::require_client_cert`] or call
/// [`crate::caller`] in each handler.
pub fn server_tls_config(loaded: &LoadedIdentity) -> Result<ServerTlsConfig, PkiError> {
    if !loaded.server_auth {
        return Err(PkiError::WrongKeyUsage { origin: loaded.cert_origin.clone(), role: "server", eku: "serverAuth" });
    }
    install_crypto_provider();
    Ok(ServerTlsConfig::new()
        .identity(loaded.identity())
        .client_ca_root(Certificate::from_pem(&loaded.ca_pem))
        .client_auth_optional(true)
        .timeout(HANDSHAKE_TIMEOUT))
}

/// The client side of mutual TLS: trust only the federation CA, present `loaded`'s
/// certificate, and expect the server's certificate to name `server_name` (a DNS name such as
/// `localhost`, or an IP address, that is in the server certificate's SANs).
///
/// Use it with an `https://` endpoint: tonic silently ignores the TLS configuration of an
/// `http://` one. [`https_endpoint`] checks that.
pub fn client_tls_config(loaded: &LoadedIdentity, server_name: &str) -> Result<ClientTlsConfig, PkiError> {
    Ok(loaded.client_identity_config(server_name)?.ca_certificate(Certificate::from_pem(&loaded.ca_pem)))
}

impl LoadedIdentity {
    /// The client side without a trust anchor: the identity presented and the server name
    /// expected (a custom verifier brings the anchors).
    pub(crate) fn client_identity_config(&self, server_name: &str) -> Result<ClientTlsConfig, PkiError> {
        let loaded = self;
        if !loaded.client_auth {
            return Err(PkiError::WrongKeyUsage {
                origin: loaded.cert_origin.clone(),
                role: "client",
                eku: "clientAuth",
            });
        }
        if let Err(e) = ServerName::try_from(server_name) {
            return Err(PkiError::InvalidServerAddress {
                value: server_name.to_owned(),
                reason: format!("not a DNS name or IP address ({e})"),
            });
        }
        install_crypto_provider();
        Ok(ClientTlsConfig::new().identity(loaded.identity()).domain_name(server_name))
    }
}

/// An endpoint for `uri` that is sure to use `tls`: refuses anything but `https://` (with an
/// `http://` URI tonic would connect in plain text despite the TLS configuration).
pub fn https_endpoint(uri: &str, tls: ClientTlsConfig) -> Result<Endpoint, PkiError> {
    https_only(uri)?.tls_config(tls).map_err(|e| PkiError::InvalidServerAddress {
        value: uri.to_owned(),
        reason: format!("TLS configuration refused ({e})"),
    })
}

/// An endpoint for `uri`, refused unless it is `https://` (TLS configuration still to add).
pub(crate) fn https_only(uri: &str) -> Result<Endpoint, PkiError> {
    let invalid = |reason: String| PkiError::InvalidServerAddress { value: uri.to_owned(), reason };
    let endpoint = Endpoint::from_shared(uri.to_owned()).map_err(|e| invalid(format!("not a URI ({e})")))?;
    if endpoint.uri().scheme_str() != Some("https") {
        return Err(invalid("federation endpoints use mutual TLS, write `https://host:port`".to_owned()));
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{CertKind, CertSpec, FederationCa};

    fn input(origin: &str, pem: &str) -> Input {
        Input { origin: origin.to_owned(), pem: pem.as_bytes().to_vec() }
    }

    fn load(ca: &str, cert: &str, key: &str, now: i64) -> Result<LoadedIdentity, PkiError> {
        LoadedIdentity::check(input("ca.crt", ca), input("a.crt", cert), input("a.key", key), now)
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn good_files_load() {
        let ca = FederationCa::generate("test CA").expect("ca");
        let issued = ca.issue(&CertSpec::new("gov.a", CertKind::Both).with_loopback()).expect("issue");
        let loaded = load(ca.cert_pem(), &issued.cert_pem, &issued.key_pem, now()).expect("load");
        assert_eq!(loaded.dept_id(), "gov.a");
        assert_eq!(loaded.fingerprint(), issued.fingerprint);
        assert!(loaded.is_server_cert() && loaded.is_client_cert());
        assert!(!format!("{loaded:?}").contains("PRIVATE"));
        assert!(server_tls_config(&loaded).is_ok());
        assert!(client_tls_config(&loaded, "localhost").is_ok());
        assert!(client_tls_config(&loaded, "127.0.0.1").is_ok());
    }

    #[test]
    fn load_errors_are_precise() {
        let ca = FederationCa::generate("test CA").expect("ca");
        let other = FederationCa::generate("other CA").expect("other ca");
        let a = ca.issue(&CertSpec::new("gov.a", CertKind::Client)).expect("a");
        let b = ca.issue(&CertSpec::new("gov.b", CertKind::Server).with_loopback()).expect("b");
        let foreign = other.issue(&CertSpec::new("gov.a", CertKind::Client)).expect("foreign");

        let e = load(ca.cert_pem(), &a.cert_pem, &b.key_pem, now()).expect_err("mismatch");
        assert_eq!(e.to_string(), "the private key in a.key does not belong to the certificate in a.crt");
        let e = load(ca.cert_pem(), &foreign.cert_pem, &foreign.key_pem, now()).expect_err("foreign");
        assert_eq!(e.to_string(), "the certificate in a.crt was not issued by the federation CA in ca.crt");
        let e = load(&a.cert_pem, &a.cert_pem, &a.key_pem, now()).expect_err("leaf as CA");
        assert_eq!(
            e.to_string(),
            "the certificate in ca.crt is not a CA certificate (its basic constraints do not say CA:TRUE)"
        );
        let e = load(ca.cert_pem(), &a.key_pem, &a.cert_pem, now()).expect_err("swapped");
        assert!(e.to_string().contains("are the certificate and key paths swapped?"), "{e}");
        let e = load(ca.cert_pem(), &a.cert_pem, &a.key_pem, a.not_after_unix + 1).expect_err("expired");
        assert!(e.to_string().starts_with("the certificate in a.crt expired at "), "{e}");
        let e = load(ca.cert_pem(), &a.cert_pem, &a.key_pem, 0).expect_err("not yet");
        assert!(e.to_string().starts_with("the certificate in ca.crt is not valid before "), "{e}");

        // Rotation: a bundle of two CAs accepts certificates of either.
        let bundle = format!("{}{}", other.cert_pem(), ca.cert_pem());
        assert!(load(&bundle, &a.cert_pem, &a.key_pem, now()).is_ok());
        assert!(load(&bundle, &foreign.cert_pem, &foreign.key_pem, now()).is_ok());

        // Usage checks.
        let client_only = load(ca.cert_pem(), &a.cert_pem, &a.key_pem, now()).expect("client");
        let e = server_tls_config(&client_only).expect_err("client cert as server");
        assert_eq!(
            e.to_string(),
            "the certificate in a.crt cannot be used as a TLS server certificate (no serverAuth extended key usage); issue it with kind `server` or `both`"
        );
        let server_only = load(ca.cert_pem(), &b.cert_pem, &b.key_pem, now()).expect("server");
        assert!(client_tls_config(&server_only, "localhost").is_err());
        assert!(client_tls_config(&client_only, "not a name").is_err());
    }

    #[test]
    fn endpoints_must_be_https() {
        let ca = FederationCa::generate("test CA").expect("ca");
        let a = ca.issue(&CertSpec::new("gov.a", CertKind::Client)).expect("a");
        let loaded = load(ca.cert_pem(), &a.cert_pem, &a.key_pem, now()).expect("load");
        let tls = client_tls_config(&loaded, "localhost").expect("tls");
        assert!(https_endpoint("https://127.0.0.1:4000", tls.clone()).is_ok());
        let e = https_endpoint("http://127.0.0.1:4000", tls.clone()).expect_err("http");
        assert_eq!(
            e.to_string(),
            "invalid server address \"http://127.0.0.1:4000\": federation endpoints use mutual TLS, write `https://host:port`"
        );
        assert!(https_endpoint("not a uri", tls).is_err());
    }
}
