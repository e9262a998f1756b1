//! The department named by a certificate, and the caller's identity on the server side.

use sha2::{Digest, Sha256};
use tonic::transport::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::{DeptIdError, PkiError};

/// Every department certificate carries exactly one SAN URI `urn:exchange:dept:<id>`.
pub const DEPT_URI_PREFIX: &str = "urn:exchange:dept:";

/// The longest department id this crate accepts.
pub const MAX_DEPT_ID_LEN: usize = 64;

/// The SAN URI that names `dept_id`, e.g. `urn:exchange:dept:gov.sz.amr`.
pub fn dept_uri(dept_id: &str) -> String {
    format!("{DEPT_URI_PREFIX}{dept_id}")
}

/// Checks the syntax of a department id: not empty, at most [`MAX_DEPT_ID_LEN`] characters,
/// only `a-z`, `0-9`, `.` and `-`.
///
/// This is the floor a certificate must meet; `exchange_core`'s `DeptId` may add rules.
pub fn validate_dept_id(id: &str) -> Result<(), DeptIdError> {
    let invalid = |reason: String| Err(DeptIdError::Invalid { id: id.to_owned(), reason });
    if id.is_empty() {
        return invalid("it is empty".to_owned());
    }
    if id.len() > MAX_DEPT_ID_LEN {
        return invalid(format!("it has {} characters, at most {MAX_DEPT_ID_LEN} are allowed", id.len()));
    }
    if let Some(c) = id.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-')) {
        return invalid(format!("the character {c:?} is not one of a-z, 0-9, '.', '-'"));
    }
    Ok(())
}

/// SHA-256 of a certificate's DER encoding: the fingerprint that logs and deny lists use.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Who is on the other end of a connection, read from its certificate.
///
/// The TLS handshake has already checked that the certificate chains to the federation CA and
/// is within its validity period; this only says which department it names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The department id from the SAN URI `urn:exchange:dept:<id>`.
    pub dept_id: String,
    /// SHA-256 of the certificate's DER encoding.
    pub fingerprint: [u8; 32],
    /// The certificate's `notAfter`, in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

impl PeerIdentity {
    /// The fingerprint as lowercase hex (64 characters).
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }
}

/// The one department SAN URI of a parsed certificate.
pub(crate) fn dept_id_of(cert: &X509Certificate<'_>) -> Result<String, DeptIdError> {
    let san = cert.subject_alternative_name().map_err(|e| DeptIdError::SanUnparsable(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(DEPT_URI_PREFIX),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(DeptIdError::Missing),
        [id] => {
            validate_dept_id(id)?;
            Ok((*id).to_owned())
        }
        several => Err(DeptIdError::Several(several.iter().map(|id| dept_uri(id)).collect())),
    }
}

/// The one department a DER certificate names, or why it names none (for messages).
pub(crate) fn dept_of_der(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("an unparsable certificate ({e})"))?;
    dept_id_of(&cert).map_err(|e| format!("no single department ({e})"))
}

/// Parses a DER certificate and reads its identity: `Err(Ok(_))` when it names no single valid
/// department, `Err(Err(detail))` when it cannot be parsed.
fn identity_of_der(der: &[u8]) -> Result<PeerIdentity, Result<DeptIdError, String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Err(e.to_string()))?;
    let dept_id = dept_id_of(&cert).map_err(Ok)?;
    Ok(PeerIdentity { dept_id, fingerprint: fingerprint(der), not_after_unix: cert.validity().not_after.timestamp() })
}

/// The caller's identity from the certificates it presented in the TLS handshake (leaf first,
/// as given by `tonic::Request::peer_certs`).
///
/// Errors (all answer `true` to [`PkiError::is_unauthenticated`]):
/// [`PkiError::NoPeerCertificate`] when there is no certificate (the handshake lets such callers
/// through only so that the health check works), [`PkiError::PeerCertificateUnparsable`],
/// [`PkiError::PeerDeptId`] when the certificate does not carry exactly one valid
/// `urn:exchange:dept:<id>`, and [`PkiError::PeerCertificateExpired`] when the certificate
/// expired after the connection was opened.
pub fn peer_dept(peer_certs: Option<&[CertificateDer<'_>]>) -> Result<PeerIdentity, PkiError> {
    peer_dept_at(peer_certs, time::OffsetDateTime::now_utc().unix_timestamp())
}

pub(crate) fn peer_dept_at(peer_certs: Option<&[CertificateDer<'_>]>, now_unix: i64) -> Result<PeerIdentity, PkiError> {
    let leaf = peer_certs.and_then(|certs| certs.first()).ok_or(PkiError::NoPeerCertificate)?;
    let identity = match known::get(leaf) {
        Some(identity) => identity,
        None => {
            let identity = identity_of_der(leaf).map_err(|e| match e {
                Ok(dept) => PkiError::PeerDeptId(dept),
                Err(detail) => PkiError::PeerCertificateUnparsable(detail),
            })?;
            known::put(leaf, &identity);
            identity
        }
    };
    // The handshake checked the validity period, but an HTTP/2 connection outlives it.
    if identity.not_after_unix < now_unix {
        return Err(PkiError::PeerCertificateExpired { not_after: crate::tls::rfc3339(identity.not_after_unix) });
    }
    Ok(identity)
}

/// The identities of the certificates seen lately, so that a connection's certificate is
/// parsed (x509, SAN, SHA-256) once, not on every request: the identity is a function of the
/// DER alone, which is the key, so a hit cannot answer for another certificate. Only
/// certificates that name a department are kept (a refused one is parsed again, its refusal
/// logged each time), and the expiry is still checked on every call. Bounded: emptied when
/// full (a federation has tens of members, each with a few certificates).
mod known {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use super::PeerIdentity;

    /// Most certificates held.
    const MAX: usize = 1024;

    fn cache() -> &'static Mutex<HashMap<Vec<u8>, PeerIdentity>> {
        static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, PeerIdentity>>> = OnceLock::new();
        CACHE.get_or_init(|| Mutex::new(HashMap::new()))
    }

    pub(super) fn get(der: &[u8]) -> Option<PeerIdentity> {
        cache().lock().unwrap_or_else(PoisonError::into_inner).get(der).cloned()
    }

    pub(super) fn put(der: &[u8], identity: &PeerIdentity) {
        let mut cache = cache().lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX {
            cache.clear();
        }
        cache.insert(der.to_vec(), identity.clone());
    }
}

/// The caller of a gRPC request: [`peer_dept`] on `req.peer_certs()`.
///
/// If [`require_client_cert`] already ran on this request, its result is reused.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<PeerIdentity, PkiError> {
    if let Some(identity) = req.extensions().get::<PeerIdentity>() {
        return Ok(identity.clone());
    }
    let certs = req.peer_certs();
    peer_dept(certs.as_deref().map(Vec::as_slice))
}

/// A tonic interceptor for every service except the health check: refuses a call whose caller
/// has no usable federation certificate with `UNAUTHENTICATED` (and logs the refusal), and
/// otherwise stores its [`PeerIdentity`] in the request's extensions.
///
/// ```text
/// Server::builder()
///     .tls_config(server_tls_config(&loaded)?)?
///     .add_service(health_service) // open: no client certificate needed
///     .add_service(CatalogServer::with_interceptor(catalog, exchange_pki::require_client_cert))
/// ```
///
/// Handlers then read `req.extensions().get::<PeerIdentity>()`, or call [`caller`].
#[allow(clippy::result_large_err)] // the signature tonic's `Interceptor` requires
pub fn require_client_cert(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    match caller(&req) {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            Ok(req)
        }
        Err(error) => {
            tracing::warn!(%error, peer = ?req.remote_addr(), "call refused at the certificate check");
            Err(tonic::Status::unauthenticated(error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType, string::Ia5String};

    fn cert_with_uris(uris: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| SanType::URI(Ia5String::try_from(*uri).expect("ascii uri")))
            .chain([SanType::DnsName(Ia5String::try_from("localhost").expect("ascii"))])
            .collect();
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    /// Table-driven: the SAN URIs of a certificate and what `peer_dept` makes of them.
    fn check(uris: &[&str], expected: Result<&str, &str>) {
        let der = cert_with_uris(uris);
        let got = peer_dept_at(Some(std::slice::from_ref(&der)), 0);
        match (got, expected) {
            (Ok(identity), Ok(dept)) => {
                assert_eq!(identity.dept_id, dept, "{uris:?}");
                assert_eq!(identity.fingerprint, fingerprint(&der));
            }
            (Err(error), Err(message)) => {
                assert!(error.is_unauthenticated(), "{error}");
                assert_eq!(error.to_string(), message, "{uris:?}");
            }
            (got, expected) => panic!("{uris:?}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn one_dept_uri_is_the_identity() {
        check(&["urn:exchange:dept:gov.sz.amr"], Ok("gov.sz.amr"));
        check(&["https://example.org", "urn:exchange:dept:a-1", "urn:other:x"], Ok("a-1"));
        let long = format!("urn:exchange:dept:{}", "a".repeat(64));
        check(&[long.as_str()], Ok("a".repeat(64).as_str()));
    }

    #[test]
    fn missing_several_and_invalid_dept_uris_are_refused() {
        let missing = "client certificate refused: no SAN URI `urn:exchange:dept:<id>` (the federation CA puts the department id there)";
        check(&[], Err(missing));
        check(&["urn:exchange:department:x", "URN:EXCHANGE:DEPT:x"], Err(missing));
        check(
            &["urn:exchange:dept:a", "urn:exchange:dept:b"],
            Err(
                "client certificate refused: 2 SAN URIs `urn:exchange:dept:<id>` (urn:exchange:dept:a, urn:exchange:dept:b); exactly one is allowed",
            ),
        );
        check(
            &["urn:exchange:dept:a", "urn:exchange:dept:a"],
            Err(
                "client certificate refused: 2 SAN URIs `urn:exchange:dept:<id>` (urn:exchange:dept:a, urn:exchange:dept:a); exactly one is allowed",
            ),
        );
        check(&["urn:exchange:dept:"], Err("client certificate refused: department id \"\" is invalid: it is empty"));
        check(
            &["urn:exchange:dept:Gov.sz"],
            Err(
                "client certificate refused: department id \"Gov.sz\" is invalid: the character 'G' is not one of a-z, 0-9, '.', '-'",
            ),
        );
        check(
            &["urn:exchange:dept:a/b"],
            Err(
                "client certificate refused: department id \"a/b\" is invalid: the character '/' is not one of a-z, 0-9, '.', '-'",
            ),
        );
        let long = format!("urn:exchange:dept:{}", "a".repeat(65));
        let message = format!(
            "client certificate refused: department id \"{}\" is invalid: it has 65 characters, at most 64 are allowed",
            "a".repeat(65)
        );
        check(&[long.as_str()], Err(message.as_str()));
    }

    #[test]
    fn no_certificate_and_garbage_are_refused() {
        let none = peer_dept_at(None, 0).expect_err("no certs");
        assert_eq!(none.to_string(), "this call needs a client certificate issued by the federation CA");
        assert!(none.is_unauthenticated());
        let empty = peer_dept_at(Some(&[]), 0).expect_err("empty chain");
        assert!(matches!(empty, PkiError::NoPeerCertificate));
        let garbage = peer_dept_at(Some(&[CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])]), 0).expect_err("garbage");
        assert!(matches!(garbage, PkiError::PeerCertificateUnparsable(_)), "{garbage:?}");
        assert!(garbage.to_string().starts_with("client certificate refused: it cannot be parsed: "), "{garbage}");
    }

    #[test]
    fn a_certificate_that_expired_during_the_connection_is_refused() {
        let der = cert_with_uris(&["urn:exchange:dept:x"]);
        let identity = peer_dept_at(Some(std::slice::from_ref(&der)), 0).expect("valid");
        let error = peer_dept_at(Some(&[der]), identity.not_after_unix + 1).expect_err("expired");
        assert!(error.is_unauthenticated());
        assert!(error.to_string().starts_with("client certificate refused: it expired at "), "{error}");
    }

    /// The cache answers the identity the certificate names and nothing else: two
    /// certificates of different departments asked in turn, each several times, and the
    /// expiry still checked on a cached identity.
    #[test]
    fn cached_identities_are_each_certificates_own() {
        let a = cert_with_uris(&["urn:exchange:dept:cache-a"]);
        let b = cert_with_uris(&["urn:exchange:dept:cache-b"]);
        for _ in 0..3 {
            for (der, dept) in [(&a, "cache-a"), (&b, "cache-b")] {
                let identity = peer_dept_at(Some(std::slice::from_ref(der)), 0).expect("valid");
                assert_eq!((identity.dept_id.as_str(), identity.fingerprint), (dept, fingerprint(der)));
            }
        }
        let cached = peer_dept_at(Some(std::slice::from_ref(&a)), 0).expect("valid");
        let expired = peer_dept_at(Some(std::slice::from_ref(&a)), cached.not_after_unix + 1).expect_err("expired");
        assert!(matches!(expired, PkiError::PeerCertificateExpired { .. }), "{expired:?}");
        let refused = cert_with_uris(&["urn:exchange:dept:Bad"]);
        for _ in 0..2 {
            assert!(matches!(peer_dept_at(Some(std::slice::from_ref(&refused)), 0), Err(PkiError::PeerDeptId(_))));
        }
    }

    #[test]
    fn caller_without_tls_has_no_certificate() {
        let error = caller(&tonic::Request::new(())).expect_err("plain request");
        assert!(matches!(error, PkiError::NoPeerCertificate));
        let status = require_client_cert(tonic::Request::new(())).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "this call needs a client certificate issued by the federation CA");
    }

    #[test]
    fn dept_id_syntax() {
        assert!(validate_dept_id("gov.sz.amr").is_ok());
        assert!(validate_dept_id("a").is_ok());
        for bad in ["", "A", "a b", "a_b", "é", "a:b"] {
            assert!(validate_dept_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(dept_uri("gov.sz.amr"), "urn:exchange:dept:gov.sz.amr");
    }
}
