//! The federation's certificates.
//!
//! Every gRPC connection in Exchange is mutual TLS with certificates issued by the federation
//! CA, and a department's id is in its certificate as the SAN URI `urn:exchange:dept:<id>`.
//! This crate does three jobs:
//!
//! 1. **Issuing** ([`FederationCa`], [`CertSpec`], [`IssuedCert`]): the CA behind
//!    `exchange ca init` / `exchange ca issue`, the demo and the tests. TLS keys are ECDSA P-256 (every TLS stack takes them); the
//!    application's own signatures (answers, tokens, checkpoints) stay Ed25519, elsewhere.
//! 2. **Loading and TLS configuration** ([`TlsFiles::load`], [`server_tls_config`],
//!    [`client_tls_config`], [`https_endpoint`]): checked once at start-up, with errors naming
//!    the file and what is wrong.
//!    [`pinned_https_endpoint`] also pins the server's department id (the catalog's), so
//!    that a member's certificate carrying the catalog's DNS name is not taken for it.
//! 3. **The caller's identity** ([`caller`], [`peer_dept`], [`require_client_cert`]): which
//!    department is calling, from the certificate it presented.
//!
//! Invariant: a certificate names exactly one department, in exactly one SAN URI
//! `urn:exchange:dept:<id>`; a certificate that names none or several is refused, never
//! guessed at. The TLS handshake lets a caller *without* a certificate through only so that
//! `grpc.health.v1.Health` answers it; every other service refuses such a caller with
//! `UNAUTHENTICATED` ([`PkiError::is_unauthenticated`]).

mod error;
mod identity;
mod issue;
pub mod keyfile;
mod pem;
mod pinned;
mod reload;
mod tls;

pub use error::{DeptIdError, PkiError};
pub use identity::{
    DEPT_URI_PREFIX, MAX_DEPT_ID_LEN, PeerIdentity, caller, dept_uri, fingerprint, peer_dept, require_client_cert,
    validate_dept_id,
};
pub use issue::{CA_VALID_DAYS, CertKind, CertSpec, DEFAULT_VALID_DAYS, FederationCa, IssuedCert, PemPaths};
pub use pinned::{DeptServerVerifier, pinned_https_endpoint};
pub use reload::{PinnedClientTls, Reload, ServerTls};
pub use time::OffsetDateTime;
pub use tls::{
    CA_STEM, HANDSHAKE_TIMEOUT, LoadedIdentity, TlsFiles, client_tls_config, https_endpoint, install_crypto_provider,
    server_tls_config,
};
