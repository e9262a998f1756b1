//! The federation CA: generating it, loading it back, and issuing department certificates.

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, string::Ia5String,
};
use rustls::pki_types::{CertificateDer, DnsName};
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;
use crate::identity::{dept_uri, fingerprint, validate_dept_id};
use crate::pem;
use crate::tls::{CA_STEM, check_is_ca, check_validity, parse_cert, rfc3339};

/// How long a new federation CA is valid: about ten years.
pub const CA_VALID_DAYS: u32 = 3650;

/// How long a department certificate is valid unless the request says otherwise.
pub const DEFAULT_VALID_DAYS: u32 = 365;

/// Certificates start being valid this long before they are issued, so that a peer whose
/// clock is a little behind still accepts them.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The signature algorithm of every TLS key and certificate this crate generates: ECDSA P-256
/// with SHA-256, which every TLS stack a department system may use accepts (rustls, OpenSSL,
/// BoringSSL as gRPC builds it for Python, C++ and others, Java's JSSE and Netty, .NET,
/// browsers). Ed25519, which rustls takes, is refused by BoringSSL in gRPC and by grpc-java
/// over Netty; it stays for what the application signs (answers, tokens, checkpoints).
/// CAs and certificates issued earlier with Ed25519 keys are still loaded and trusted.
fn algorithm() -> &'static rcgen::SignatureAlgorithm {
    &rcgen::PKCS_ECDSA_P256_SHA256
}

fn generate_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// What a department certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// TLS server only (EKU serverAuth): a daemon that never calls out.
    Server,
    /// TLS client only (EKU clientAuth): an SDK caller.
    Client,
    /// Both: a node serves requests and calls the catalog.
    Both,
}

impl CertKind {
    fn server(self) -> bool {
        matches!(self, CertKind::Server | CertKind::Both)
    }

    fn client(self) -> bool {
        matches!(self, CertKind::Client | CertKind::Both)
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertKind::Server => "server",
            CertKind::Client => "client",
            CertKind::Both => "both",
        })
    }
}

impl FromStr for CertKind {
    type Err = PkiError;

    /// `server`, `client` or `both`.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "server" => Ok(CertKind::Server),
            "client" => Ok(CertKind::Client),
            "both" => Ok(CertKind::Both),
            other => Err(PkiError::InvalidSpec(format!(
                "certificate kind {other:?} is not one of `server`, `client`, `both`"
            ))),
        }
    }
}

/// What to put in a department certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    /// The department id; goes into the SAN URI `urn:exchange:dept:<id>` and the subject CN.
    pub dept_id: String,
    /// Server, client or both.
    pub kind: CertKind,
    /// DNS SANs the server answers to (`localhost` for a server on loopback).
    pub dns_names: Vec<String>,
    /// IP SANs the server answers to (`127.0.0.1` for a server on loopback).
    pub ip_addresses: Vec<IpAddr>,
    /// Validity in days from now; ignored when `validity` is set.
    pub valid_days: u32,
    /// Explicit `(notBefore, notAfter)`, e.g. to issue an already expired certificate in tests.
    pub validity: Option<(OffsetDateTime, OffsetDateTime)>,
}

impl CertSpec {
    /// A request for `dept_id` of `kind`, valid for [`DEFAULT_VALID_DAYS`], without DNS or IP
    /// SANs (a server certificate needs some: see [`CertSpec::with_loopback`]).
    pub fn new(dept_id: impl Into<String>, kind: CertKind) -> Self {
        CertSpec {
            dept_id: dept_id.into(),
            kind,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            valid_days: DEFAULT_VALID_DAYS,
            validity: None,
        }
    }

    /// Adds a DNS SAN.
    #[must_use]
    pub fn with_dns(mut self, name: impl Into<String>) -> Self {
        self.dns_names.push(name.into());
        self
    }

    /// Adds an IP SAN.
    #[must_use]
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip_addresses.push(ip);
        self
    }

    /// Adds the SANs of a server on loopback: `localhost`, `127.0.0.1` and `::1`.
    #[must_use]
    pub fn with_loopback(self) -> Self {
        self.with_dns("localhost").with_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).with_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
    }

    /// Sets the validity in days from now.
    #[must_use]
    pub fn with_valid_days(mut self, days: u32) -> Self {
        self.valid_days = days;
        self
    }

    /// Sets an explicit validity period (tests: an expired or not yet valid certificate).
    #[must_use]
    pub fn with_validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.validity = Some((not_before, not_after));
        self
    }
}

/// Where [`FederationCa::write_files`] and [`IssuedCert::write_files`] put a pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemPaths {
    /// `<dir>/<stem>.crt`.
    pub cert: PathBuf,
    /// `<dir>/<stem>.key`, mode 0600 on Unix.
    pub key: PathBuf,
}

/// A freshly issued department certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (unencrypted PKCS#8). Secret.
    pub key_pem: String,
    /// SHA-256 of the certificate's DER encoding.
    pub fingerprint: [u8; 32],
    /// The certificate's `notAfter`, in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No key material.
        f.debug_struct("IssuedCert")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("not_after_unix", &self.not_after_unix)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The fingerprint as lowercase hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` (mode 0600 on Unix), creating `dir`;
    /// refuses to overwrite either file.
    pub fn write_files(&self, dir: impl AsRef<Path>, stem: &str) -> Result<PemPaths, PkiError> {
        write_pair(dir.as_ref(), stem, &self.cert_pem, &self.key_pem)
    }
}

/// The federation's certificate authority: its self-signed certificate and signing key.
pub struct FederationCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    fingerprint: [u8; 32],
    not_after: OffsetDateTime,
}

impl fmt::Debug for FederationCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No key material.
        f.debug_struct("FederationCa")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl FederationCa {
    /// A new self-signed CA named `name` (the subject CN) with an ECDSA P-256 key, valid for
    /// [`CA_VALID_DAYS`], allowed to sign department certificates but no intermediate CAs.
    pub fn generate(name: &str) -> Result<FederationCa, PkiError> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(PkiError::InvalidSpec(format!("CA name {name:?} must have 1 to 64 characters")));
        }
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::days(i64::from(CA_VALID_DAYS));
        let key = KeyPair::generate_for(algorithm()).map_err(generate_error("generate the CA key"))?;
        let cert = params.self_signed(&key).map_err(generate_error("self-sign the CA certificate"))?;
        Self::assemble("<new CA certificate>", cert.der(), cert.pem(), key)
    }

    /// Loads a CA written by [`FederationCa::to_pem`] (or [`FederationCa::write_files`]).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<FederationCa, PkiError> {
        Self::from_pem_inputs("<CA certificate PEM>", cert_pem.as_bytes(), "<CA key PEM>", key_pem.as_bytes())
    }

    /// Loads a CA from its certificate and key files; errors name the file.
    pub fn load(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<FederationCa, PkiError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| PkiError::ReadFile { what, path: path.to_owned(), source })
        };
        let cert = read("CA certificate", cert_path)?;
        let key = read("CA private key", key_path)?;
        Self::from_pem_inputs(&cert_path.display().to_string(), &cert, &key_path.display().to_string(), &key)
    }

    /// Loads `<dir>/ca.crt` and `<dir>/ca.key`.
    pub fn load_from_dir(dir: impl AsRef<Path>) -> Result<FederationCa, PkiError> {
        let dir = dir.as_ref();
        Self::load(dir.join(format!("{CA_STEM}.crt")), dir.join(format!("{CA_STEM}.key")))
    }

    fn from_pem_inputs(cert_origin: &str, cert: &[u8], key_origin: &str, key: &[u8]) -> Result<FederationCa, PkiError> {
        let certs = pem::certificates(cert_origin, cert)?;
        if certs.len() != 1 {
            return Err(PkiError::InvalidSpec(format!(
                "{cert_origin} holds {} certificates; the CA file for issuing must hold exactly one",
                certs.len()
            )));
        }
        let key_der = pem::private_key(key_origin, key)?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| PkiError::BadPrivateKey { origin: key_origin.to_owned(), detail: e.to_string() })?;
        let der = &certs[0];
        let parsed = parse_cert(cert_origin, der)?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::KeyMismatch { cert: cert_origin.to_owned(), key: key_origin.to_owned() });
        }
        let pem_text = String::from_utf8_lossy(cert).into_owned();
        Self::assemble(cert_origin, der, pem_text, key)
    }

    fn assemble(
        origin: &str,
        der: &CertificateDer<'_>,
        cert_pem: String,
        key: KeyPair,
    ) -> Result<FederationCa, PkiError> {
        let parsed = parse_cert(origin, der)?;
        check_is_ca(origin, &parsed)?;
        check_validity(origin, &parsed, OffsetDateTime::now_utc().unix_timestamp())?;
        let not_after = parsed.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(der, key)
            .map_err(|e| PkiError::BadCertificate { origin: origin.to_owned(), detail: e.to_string() })?;
        Ok(FederationCa { issuer, cert_pem, fingerprint: fingerprint(der), not_after })
    }

    /// The CA certificate, PEM: the trust anchor every department needs (`ca.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `(certificate PEM, private key PEM)`; the key is the federation's most sensitive secret.
    pub fn to_pem(&self) -> (String, String) {
        (self.cert_pem.clone(), self.issuer.key().serialize_pem())
    }

    /// SHA-256 of the CA certificate's DER encoding.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// When the CA certificate expires; no certificate it issues may outlive it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` (mode 0600 on Unix), creating `dir`;
    /// refuses to overwrite either file. The usual stem is [`CA_STEM`].
    pub fn write_files(&self, dir: impl AsRef<Path>, stem: &str) -> Result<PemPaths, PkiError> {
        let (cert, key) = self.to_pem();
        write_pair(dir.as_ref(), stem, &cert, &key)
    }

    /// Issues a department certificate with a new ECDSA P-256 key: subject CN and SAN URI
    /// `urn:exchange:dept:<id>`, the requested DNS and IP SANs, and EKU serverAuth and/or
    /// clientAuth.
    pub fn issue(&self, spec: &CertSpec) -> Result<IssuedCert, PkiError> {
        validate_dept_id(&spec.dept_id).map_err(PkiError::InvalidDeptId)?;
        if spec.kind.server() && spec.dns_names.is_empty() && spec.ip_addresses.is_empty() {
            return Err(PkiError::InvalidSpec(format!(
                "a {} certificate needs at least one DNS name or IP address that clients connect to \
                 (on loopback: `localhost` and `127.0.0.1`)",
                spec.kind
            )));
        }
        let (not_before, not_after) = match spec.validity {
            Some((not_before, not_after)) => {
                if not_after <= not_before {
                    return Err(PkiError::InvalidSpec(format!(
                        "notAfter {not_after} is not after notBefore {not_before}"
                    )));
                }
                (not_before, not_after)
            }
            None => {
                if spec.valid_days == 0 {
                    return Err(PkiError::InvalidSpec("a certificate must be valid for at least 1 day".to_owned()));
                }
                let now = OffsetDateTime::now_utc();
                let not_after = now + Duration::days(i64::from(spec.valid_days));
                if not_after > self.not_after {
                    return Err(PkiError::InvalidSpec(format!(
                        "{} days of validity would outlive the CA, which expires at {}",
                        spec.valid_days,
                        rfc3339(self.not_after.unix_timestamp())
                    )));
                }
                (now - CLOCK_SKEW, not_after)
            }
        };

        let mut sans = vec![SanType::URI(
            Ia5String::try_from(dept_uri(&spec.dept_id)).map_err(generate_error("encode the department SAN URI"))?,
        )];
        for name in &spec.dns_names {
            if DnsName::try_from(name.as_str()).is_err() {
                return Err(PkiError::InvalidSpec(format!("{name:?} is not a valid DNS name")));
            }
            sans.push(SanType::DnsName(
                Ia5String::try_from(name.as_str()).map_err(generate_error("encode a DNS SAN"))?,
            ));
        }
        sans.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, spec.dept_id.as_str());
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = [
            spec.kind.server().then_some(ExtendedKeyUsagePurpose::ServerAuth),
            spec.kind.client().then_some(ExtendedKeyUsagePurpose::ClientAuth),
        ]
        .into_iter()
        .flatten()
        .collect();
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;

        let key = KeyPair::generate_for(algorithm()).map_err(generate_error("generate a department key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate_error("sign the department certificate"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: fingerprint(cert.der()),
            not_after_unix: not_after.unix_timestamp(),
        })
    }
}

/// Writes a certificate and key pair without overwriting anything; the key is never readable
/// by others, not even for a moment.
fn write_pair(dir: &Path, stem: &str, cert_pem: &str, key_pem: &str) -> Result<PemPaths, PkiError> {
    if stem.is_empty() || stem.contains(['/', '\\']) {
        return Err(PkiError::InvalidSpec(format!("file stem {stem:?} must be a plain file name")));
    }
    std::fs::create_dir_all(dir).map_err(|source| PkiError::WriteFile { path: dir.to_owned(), source })?;
    let paths = PemPaths { cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) };
    for path in [&paths.cert, &paths.key] {
        if path.exists() {
            return Err(PkiError::AlreadyExists(path.clone()));
        }
    }
    write_new(&paths.key, key_pem, 0o600)?;
    write_new(&paths.cert, cert_pem, 0o644)?;
    Ok(paths)
}

fn write_new(
    path: &Path,
    contents: &str,
    #[cfg_attr(not(unix), allow(unused_variables))] mode: u32,
) -> Result<(), PkiError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let write = || -> std::io::Result<()> {
        let mut file = options.open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => PkiError::AlreadyExists(path.to_owned()),
        _ => PkiError::WriteFile { path: path.to_owned(), source },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        let (cert, key) = ca.to_pem();
        let again = FederationCa::from_pem(&cert, &key).expect("reload");
        assert_eq!(again.fingerprint(), ca.fingerprint());
        // Certificates issued by the reloaded CA chain to the original certificate.
        let issued = again.issue(&CertSpec::new("gov.a", CertKind::Client)).expect("issue");
        let ders = pem::certificates("issued", issued.cert_pem.as_bytes()).expect("pem");
        let leaf = parse_cert("issued", &ders[0]).expect("parse");
        let ca_ders = pem::certificates("ca", cert.as_bytes()).expect("pem");
        let ca_parsed = parse_cert("ca", &ca_ders[0]).expect("parse");
        assert_eq!(leaf.issuer().as_raw(), ca_parsed.subject().as_raw());
        assert!(leaf.verify_signature(Some(ca_parsed.public_key())).is_ok());

        let other = FederationCa::generate("other").expect("other");
        let (_, other_key) = other.to_pem();
        let e = FederationCa::from_pem(&cert, &other_key).expect_err("wrong key");
        assert_eq!(
            e.to_string(),
            "the private key in <CA key PEM> does not belong to the certificate in <CA certificate PEM>"
        );
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn issued_certificate_has_the_requested_contents() {
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        let issued = ca.issue(&CertSpec::new("gov.sz.amr", CertKind::Both).with_loopback()).expect("issue");
        let ders = pem::certificates("issued", issued.cert_pem.as_bytes()).expect("pem");
        assert_eq!(issued.fingerprint, fingerprint(&ders[0]));
        let cert = parse_cert("issued", &ders[0]).expect("parse");
        let names = &cert.subject_alternative_name().expect("san").expect("present").value.general_names;
        assert!(names.contains(&GeneralName::URI("urn:exchange:dept:gov.sz.amr")));
        assert!(names.contains(&GeneralName::DNSName("localhost")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        let eku = cert.extended_key_usage().expect("eku").expect("present").value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.basic_constraints().expect("bc").is_some_and(|bc| bc.value.ca));
        let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok());
        assert_eq!(cn, Some("gov.sz.amr"));
        assert_eq!(issued.not_after_unix, cert.validity().not_after.timestamp());
        assert!(!format!("{issued:?}").contains("PRIVATE"));
    }

    #[test]
    fn invalid_requests_are_refused() {
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        let check = |spec: CertSpec, expected: &str| {
            let e = ca.issue(&spec).expect_err("refused");
            assert_eq!(e.to_string(), expected);
        };
        check(
            CertSpec::new("Gov", CertKind::Client),
            "cannot issue a certificate: department id \"Gov\" is invalid: the character 'G' is not one of a-z, 0-9, '.', '-'",
        );
        check(
            CertSpec::new("gov.a", CertKind::Server),
            "cannot issue a certificate: a server certificate needs at least one DNS name or IP address that clients connect to (on loopback: `localhost` and `127.0.0.1`)",
        );
        check(
            CertSpec::new("gov.a", CertKind::Both).with_dns("bad name"),
            "cannot issue a certificate: \"bad name\" is not a valid DNS name",
        );
        check(
            CertSpec::new("gov.a", CertKind::Client).with_valid_days(0),
            "cannot issue a certificate: a certificate must be valid for at least 1 day",
        );
        let e =
            ca.issue(&CertSpec::new("gov.a", CertKind::Client).with_valid_days(CA_VALID_DAYS + 1)).expect_err("long");
        assert!(e.to_string().contains("would outlive the CA"), "{e}");
        assert!("serverx".parse::<CertKind>().is_err());
        assert_eq!("both".parse::<CertKind>().expect("kind"), CertKind::Both);
    }

    #[test]
    fn an_expired_certificate_can_be_issued() {
        let ca = FederationCa::generate("Exchange test CA").expect("ca");
        let now = OffsetDateTime::now_utc();
        let spec =
            CertSpec::new("gov.a", CertKind::Client).with_validity(now - Duration::days(2), now - Duration::days(1));
        let issued = ca.issue(&spec).expect("issue");
        assert!(issued.not_after_unix < now.unix_timestamp());
    }
}
