//! A server's TLS material replaced while it runs: a renewed certificate, a new key, or a CA
//! bundle during a CA rotation take effect on the next handshake, without a restart.
//!
//! tonic's own TLS settings are fixed when the server starts, so the daemons do the handshake
//! themselves (`exchange_daemon::accept_tls`) with the rustls configuration this holds; each
//! handshake takes the configuration current at that moment, and connections already open
//! keep the certificate they were opened with.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, crypto::CryptoProvider};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::error::PkiError;
use crate::identity::PeerIdentity;
use crate::pem;
use crate::pinned::DeptServerVerifier;
use crate::tls::{LoadedIdentity, https_only, install_crypto_provider};

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

/// What a `SIGHUP` reloads: TLS material read from files.
pub trait Reload: Send + Sync {
    /// Reads the files again; on success the new material is used from the next handshake.
    fn reload(&self) -> Result<PeerIdentity, PkiError>;
}

impl Reload for ServerTls {
    fn reload(&self) -> Result<PeerIdentity, PkiError> {
        ServerTls::reload(self)
    }
}

/// The client side of mutual TLS towards a server pinned by its department id (the catalog:
/// see [`crate::DeptServerVerifier`]), reloadable: the certificate presented on each new
/// connection is the one current at that moment.
#[derive(Debug)]
pub struct PinnedClientTls {
    dept_id: String,
    current: RwLock<ClientCurrent>,
    /// Bumped by every reload: connections opened under an older one close themselves, so
    /// that the channel reconnects with the new certificate (before the old one is struck
    /// from the member's list).
    generation: AtomicU64,
}

#[derive(Debug)]
struct ClientCurrent {
    loaded: LoadedIdentity,
    config: Arc<rustls::ClientConfig>,
}

impl PinnedClientTls {
    /// Presents `loaded`'s certificate to a server that must name `dept_id`.
    pub fn new(loaded: LoadedIdentity, dept_id: &str) -> Result<Self, PkiError> {
        let config = Arc::new(pinned_client_config(&loaded, dept_id)?);
        Ok(Self {
            dept_id: dept_id.to_owned(),
            current: RwLock::new(ClientCurrent { loaded, config }),
            generation: AtomicU64::new(0),
        })
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).config.clone()
    }

    /// A lazy channel to `uri` (`https://host:port`) whose server must present a certificate
    /// carrying `server_name`; `configure` sets the endpoint's timeouts and keep-alives.
    pub fn lazy_channel(
        self: &Arc<Self>,
        uri: &str,
        server_name: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, PkiError> {
        // The TLS is ours (the connector below), so tonic must see a plain URI.
        let https = https_only(uri)?;
        let authority = https
            .uri()
            .authority()
            .ok_or_else(|| PkiError::InvalidServerAddress { value: uri.to_owned(), reason: "no host".into() })?
            .clone();
        let plain = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| PkiError::InvalidServerAddress { value: uri.to_owned(), reason: e.to_string() })?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| PkiError::InvalidServerAddress {
            value: server_name.to_owned(),
            reason: format!("not a DNS name or IP address: {e}"),
        })?;
        let connector = PinnedConnector { tls: self.clone(), name };
        Ok(configure(plain).connect_with_connector_lazy(connector))
    }
}

impl Reload for PinnedClientTls {
    fn reload(&self) -> Result<PeerIdentity, PkiError> {
        let fresh = self.current.read().unwrap_or_else(|p| p.into_inner()).loaded.reloaded()?;
        let config = Arc::new(pinned_client_config(&fresh, &self.dept_id)?);
        let identity = fresh.own_identity().clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = ClientCurrent { loaded: fresh, config };
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(identity)
    }
}

/// Opens TCP (with `TCP_NODELAY`) and mutual TLS for each new connection of a channel.
#[derive(Clone, Debug)]
struct PinnedConnector {
    tls: Arc<PinnedClientTls>,
    name: ServerName<'static>,
}

impl tonic::codegen::Service<Uri> for PinnedConnector {
    type Response = TokioIo<Generational>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let generation = tls.generation.load(Ordering::SeqCst);
        let connector = tokio_rustls::TlsConnector::from(tls.config());
        let name = self.name.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(Generational { stream, tls, generation }))
        })
    }
}

/// A client connection that ends itself (end of stream, at its next read: the HTTP/2
/// keep-alive pings read every few seconds) once the certificate it was opened with has
/// been replaced by a reload.
#[derive(Debug)]
pub struct Generational {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    tls: Arc<PinnedClientTls>,
    generation: u64,
}

impl Generational {
    fn replaced(&self) -> bool {
        self.tls.generation.load(Ordering::SeqCst) != self.generation
    }
}

impl AsyncRead for Generational {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.replaced() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Generational {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The rustls client configuration: present `loaded`'s certificate, verify the server with
/// [`DeptServerVerifier`] for `dept_id`, speak HTTP/2.
fn pinned_client_config(loaded: &LoadedIdentity, dept_id: &str) -> Result<rustls::ClientConfig, PkiError> {
    install_crypto_provider();
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = DeptServerVerifier::new(loaded.ca_cert_pem(), dept_id)?;
    let (chain, key) = loaded.rustls_parts()?;
    let bad = |detail: String| PkiError::BadPrivateKey { origin: "<certificate and key>".into(), detail };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad(e.to_string()))?;
    config.alpn_protocols.push(ALPN_H2.to_vec());
    Ok(config)
}
