//! A server pinned by its department id: the client side of connections to the catalog.
//!
//! The TLS handshake alone checks that the server's certificate chains to the federation CA
//! and carries the expected DNS name or IP address. Every member's certificate chains to that
//! CA, and a member can be issued a certificate with the catalog's DNS name by mistake or by
//! a careless CA operator: such a member could serve as a fake catalog, answer the watch
//! stream, take the access log and keep nodes "connected". So the catalog's certificate must
//! also name the catalog's department id in its SAN URI, as member certificates name theirs;
//! [`DeptServerVerifier`] checks that after the WebPKI checks, during the handshake, and
//! [`pinned_https_endpoint`] builds an endpoint that uses it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::error::PkiError;
use crate::identity::{dept_uri, validate_dept_id};
use crate::tls::{LoadedIdentity, https_only, install_crypto_provider};
use crate::{identity, pem};

/// Verifies a server certificate as rustls' WebPKI verifier does (chain to the federation CA,
/// validity, server name, handshake signatures) and, besides, that it names one department,
/// the expected one.
#[derive(Debug)]
pub struct DeptServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    dept_id: String,
}

impl DeptServerVerifier {
    /// A verifier trusting the CA certificates in `ca_pem` and requiring `dept_id`.
    pub fn new(ca_pem: &[u8], dept_id: &str) -> Result<Self, PkiError> {
        validate_dept_id(dept_id).map_err(PkiError::InvalidDeptId)?;
        let mut roots = RootCertStore::empty();
        for cert in pem::certificates("<federation CA>", ca_pem)? {
            roots.add(cert).map_err(|e| PkiError::BadCertificate {
                origin: "<federation CA>".to_owned(),
                detail: e.to_string(),
            })?;
        }
        install_crypto_provider();
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| PkiError::BadCertificate { origin: "<federation CA>".to_owned(), detail: e.to_string() })?;
        Ok(Self { inner, dept_id: dept_id.to_owned() })
    }

    /// The department the server must name.
    pub fn dept_id(&self) -> &str {
        &self.dept_id
    }
}

impl ServerCertVerifier for DeptServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let found = match identity::dept_of_der(end_entity) {
            Ok(dept) if dept == self.dept_id => return Ok(verified),
            Ok(dept) => dept_uri(&dept),
            Err(detail) => detail,
        };
        let refusal = PkiError::ServerDept { expected: dept_uri(&self.dept_id), found };
        tracing::warn!(error = %refusal, "server certificate refused");
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An endpoint for `uri` (`https://` only) presenting `loaded`'s certificate, whose server
/// must present a certificate of the federation CA that carries `server_name` and names
/// `dept_id` in its SAN URI (see [`DeptServerVerifier`]).
pub fn pinned_https_endpoint(
    uri: &str,
    loaded: &LoadedIdentity,
    server_name: &str,
    dept_id: &str,
) -> Result<Endpoint, PkiError> {
    let verifier = DeptServerVerifier::new(loaded.ca_cert_pem(), dept_id)?;
    let tls: ClientTlsConfig = loaded.client_identity_config(server_name)?;
    https_only(uri)?.tls_config_with_verifier(tls, Arc::new(verifier)).map_err(|e| PkiError::InvalidServerAddress {
        value: uri.to_owned(),
        reason: format!("TLS configuration refused ({e})"),
    })
}
