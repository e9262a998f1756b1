//! A server's TLS material replaced while it runs: a renewed certificate, a new key, or a CA
//! bundle during a CA rotation take effect on the next handshake, without a restart.
//!
//! tonic's own TLS settings are fixed when the server starts, so the daemons do the handshake
//! themselves (`exchange_daemon::accept_tls`) with the rustls configuration this holds; each
//! handshake takes the configuration current at that moment, and connections already open
//! keep the certificate they were opened with.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, crypto::CryptoProvider};

use crate::error::PkiError;
use crate::identity::PeerIdentity;
use crate::pem;
use crate::tls::{LoadedIdentity, install_crypto_provider};

/// ALPN protocol of gRPC.
const ALPN_H2: &[u8] = b"h2";

/// The server side of mutual TLS, reloadable: the same policy as
/// [`crate::server_tls_config`] (present our certificate; a client certificate is optional at
/// the handshake, and one that is presented must chain to the federation CA and be valid).
#[derive(Debug)]
pub struct ServerTls {
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    loaded: LoadedIdentity,
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// The configuration for `loaded`, which must be a server certificate.
    pub fn new(loaded: LoadedIdentity) -> Result<Self, PkiError> {
        let config = Arc::new(server_config(&loaded)?);
        Ok(Self { current: RwLock::new(Current { loaded, config }) })
    }

    /// The rustls configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).config.clone()
    }

    /// The certificate presented now.
    pub fn identity(&self) -> PeerIdentity {
        self.current.read().unwrap_or_else(|p| p.into_inner()).loaded.own_identity().clone()
    }

    /// Reads the files again and, when they pass every check of a start (and name the same
    /// department), presents them from the next handshake on. On any error the material in
    /// use stays, and the error says what is wrong with the new files.
    pub fn reload(&self) -> Result<PeerIdentity, PkiError> {
        let fresh = self.current.read().unwrap_or_else(|p| p.into_inner()).loaded.reloaded()?;
        let config = Arc::new(server_config(&fresh)?);
        let identity = fresh.own_identity().clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current { loaded: fresh, config };
        Ok(identity)
    }
}

/// The rustls server configuration for `loaded`.
fn server_config(loaded: &LoadedIdentity) -> Result<ServerConfig, PkiError> {
    if !loaded.is_server_cert() {
        return Err(PkiError::WrongKeyUsage {
            origin: loaded.source().map(|f| f.cert.display().to_string()).unwrap_or_else(|| "<certificate>".into()),
            role: "server",
            eku: "serverAuth",
        });
    }
    install_crypto_provider();
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates("<federation CA>", loaded.ca_cert_pem())? {
        roots
            .add(cert)
            .map_err(|e| PkiError::BadCertificate { origin: "<federation CA>".into(), detail: e.to_string() })?;
    }
    let bad = |detail: String| PkiError::BadCertificate { origin: "<federation CA>".into(), detail };
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let (chain, key) = loaded.rustls_parts()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::BadPrivateKey { origin: "<certificate and key>".into(), detail: e.to_string() })?;
    config.alpn_protocols.push(ALPN_H2.to_vec());
    Ok(config)
}
