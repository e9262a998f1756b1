//! The one error type of this crate.

use std::path::PathBuf;

/// Why a certificate does not name exactly one usable department.
///
/// The department id lives in exactly one SAN URI `urn:exchange:dept:<id>`; anything else is
/// refused, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeptIdError {
    /// No SAN URI starts with `urn:exchange:dept:`.
    #[error("no SAN URI `urn:exchange:dept:<id>` (the federation CA puts the department id there)")]
    Missing,
    /// More than one SAN URI starts with `urn:exchange:dept:`.
    #[error("{} SAN URIs `urn:exchange:dept:<id>` ({}); exactly one is allowed", .0.len(), .0.join(", "))]
    Several(Vec<String>),
    /// The id after the prefix breaks the syntax rules.
    #[error("department id {id:?} is invalid: {reason}")]
    Invalid {
        /// The id as found in the certificate (or the request).
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subjectAltName extension is malformed.
    #[error("its subjectAltName extension cannot be parsed: {0}")]
    SanUnparsable(String),
}

/// Everything that can go wrong while issuing, loading or checking federation certificates.
///
/// Messages name the file (or the PEM input) and say what to fix. Errors about the *caller's*
/// certificate answer `true` to [`PkiError::is_unauthenticated`]; the gRPC layer maps them to
/// `UNAUTHENTICATED`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    // ---- the caller's certificate (server side) ----
    /// The caller presented no client certificate (only the health check is open to it).
    #[error("this call needs a client certificate issued by the federation CA")]
    NoPeerCertificate,
    /// The caller's certificate passed the TLS handshake but cannot be parsed.
    #[error("client certificate refused: it cannot be parsed: {0}")]
    PeerCertificateUnparsable(String),
    /// The caller's certificate does not name exactly one valid department.
    #[error("client certificate refused: {0}")]
    PeerDeptId(#[source] DeptIdError),
    /// The caller's certificate expired after its connection was opened.
    #[error("client certificate refused: it expired at {not_after}; reconnect with a renewed certificate")]
    PeerCertificateExpired {
        /// When it expired (RFC 3339).
        not_after: String,
    },

    // ---- files and PEM ----
    /// A file cannot be read.
    #[error("cannot read the {what} file {path}: {source}")]
    ReadFile {
        /// What the file should hold ("CA certificate", "certificate", "private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing would replace an existing certificate or key.
    #[error("{0} already exists; refusing to overwrite a certificate or key (move it away first)")]
    AlreadyExists(PathBuf),
    /// The input is not PEM text at all, or a PEM section is damaged.
    #[error("{origin} is not valid PEM: {detail}")]
    NotPem {
        /// The file path or a description of the input.
        origin: String,
        /// What the PEM parser found.
        detail: String,
    },
    /// The input has PEM sections but no `CERTIFICATE` one.
    #[error("{origin} holds no certificate (expected a `-----BEGIN CERTIFICATE-----` section){hint}")]
    NoCertificate {
        /// The file path or a description of the input.
        origin: String,
        /// An extra hint, e.g. that the file holds a private key instead.
        hint: &'static str,
    },
    /// The input holds no usable private key section.
    #[error("{origin} holds no private key (expected a `-----BEGIN PRIVATE KEY-----` section){hint}")]
    NoPrivateKey {
        /// The file path or a description of the input.
        origin: String,
        /// An extra hint, e.g. that the key is encrypted or the file holds a certificate.
        hint: &'static str,
    },
    /// The input holds more than one private key.
    #[error("{origin} holds {count} private keys; it must hold exactly one")]
    SeveralPrivateKeys {
        /// The file path or a description of the input.
        origin: String,
        /// How many keys were found.
        count: usize,
    },
    /// A certificate cannot be parsed as X.509.
    #[error("the certificate in {origin} cannot be parsed: {detail}")]
    BadCertificate {
        /// The file path or a description of the input.
        origin: String,
        /// What the parser said.
        detail: String,
    },
    /// A private key cannot be loaded (unsupported type, damaged).
    #[error("the private key in {origin} cannot be used: {detail}")]
    BadPrivateKey {
        /// The file path or a description of the input.
        origin: String,
        /// What rustls or rcgen said.
        detail: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
    /// A certificate given as the CA is not a CA certificate.
    #[error("the certificate in {origin} is not a CA certificate (its basic constraints do not say CA:TRUE)")]
    NotCa {
        /// The file path or a description of the input.
        origin: String,
    },
    /// The certificate was not signed by (any of) the CA certificate(s).
    #[error("the certificate in {cert} was not issued by the federation CA in {ca}")]
    NotIssuedByCa {
        /// Where the certificate came from.
        cert: String,
        /// Where the CA certificate came from.
        ca: String,
    },
    /// A certificate has expired.
    #[error("the certificate in {origin} expired at {not_after}; issue a new one with `exchange ca issue`")]
    Expired {
        /// The file path or a description of the input.
        origin: String,
        /// When it expired (RFC 3339).
        not_after: String,
    },
    /// A certificate is not valid yet.
    #[error("the certificate in {origin} is not valid before {not_before}; check this machine's clock")]
    NotYetValid {
        /// The file path or a description of the input.
        origin: String,
        /// When it becomes valid (RFC 3339).
        not_before: String,
    },
    /// A certificate does not name exactly one valid department.
    #[error("the certificate in {origin} is unusable: {source}")]
    CertDeptId {
        /// The file path or a description of the input.
        origin: String,
        /// What is wrong with its department SAN URI.
        source: DeptIdError,
    },
    /// The certificate lacks the extended key usage needed for this role.
    #[error(
        "the certificate in {origin} cannot be used as a TLS {role} certificate (no {eku} extended key usage); issue it with kind `{role}` or `both`"
    )]
    WrongKeyUsage {
        /// The file path or a description of the input.
        origin: String,
        /// "server" or "client".
        role: &'static str,
        /// The missing EKU ("serverAuth" or "clientAuth").
        eku: &'static str,
    },
    /// A server's certificate (valid, of the federation CA, with the expected name) names
    /// another department than the one pinned: it is not the server it claims to be.
    #[error("the server's certificate names {found}, not {expected}: it is not the pinned server")]
    ServerDept {
        /// The SAN URI the server must carry.
        expected: String,
        /// What its certificate names instead.
        found: String,
    },
    /// A reloaded certificate names another department than the one in use.
    #[error(
        "the certificate in {origin} names {found}, not {expected}: a reload keeps the department; the certificate in use is kept"
    )]
    ReloadChangesDept {
        /// The new certificate's file.
        origin: String,
        /// The department of the certificate in use.
        expected: String,
        /// The department the new certificate names.
        found: String,
    },
    /// A reload was asked of TLS material that was not read from files.
    #[error("this TLS material was not read from files and cannot be reloaded")]
    NotReloadable,
    /// A server name or endpoint address for a client connection is unusable.
    #[error("invalid server address {value:?}: {reason}")]
    InvalidServerAddress {
        /// The name or URI as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    // ---- issuing ----
    /// The certificate request is invalid.
    #[error("cannot issue a certificate: {0}")]
    InvalidSpec(String),
    /// The department id of a certificate request is invalid.
    #[error("cannot issue a certificate: {0}")]
    InvalidDeptId(#[source] DeptIdError),
    /// rcgen failed to build or sign a certificate.
    #[error("cannot {what}: {source}")]
    Generate {
        /// What was being done, as a verb phrase.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
}

impl PkiError {
    /// `true` when the error is about the caller's client certificate (missing, or not naming
    /// one department): the gRPC layer answers `UNAUTHENTICATED` with this error's message.
    ///
    /// Every other error is a local configuration or issuing problem.
    pub fn is_unauthenticated(&self) -> bool {
        match self {
            PkiError::NoPeerCertificate
            | PkiError::PeerCertificateUnparsable(_)
            | PkiError::PeerDeptId(_)
            | PkiError::PeerCertificateExpired { .. } => true,
            PkiError::ReadFile { .. }
            | PkiError::WriteFile { .. }
            | PkiError::AlreadyExists(_)
            | PkiError::NotPem { .. }
            | PkiError::NoCertificate { .. }
            | PkiError::NoPrivateKey { .. }
            | PkiError::SeveralPrivateKeys { .. }
            | PkiError::BadCertificate { .. }
            | PkiError::BadPrivateKey { .. }
            | PkiError::KeyMismatch { .. }
            | PkiError::NotCa { .. }
            | PkiError::NotIssuedByCa { .. }
            | PkiError::Expired { .. }
            | PkiError::NotYetValid { .. }
            | PkiError::CertDeptId { .. }
            | PkiError::WrongKeyUsage { .. }
            | PkiError::InvalidServerAddress { .. }
            | PkiError::ReloadChangesDept { .. }
            | PkiError::NotReloadable
            | PkiError::ServerDept { .. }
            | PkiError::InvalidSpec(_)
            | PkiError::InvalidDeptId(_)
            | PkiError::Generate { .. } => false,
        }
    }
}
