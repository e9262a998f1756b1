//! The daemons' own TLS handshakes, so that a renewed certificate, key or CA bundle is taken
//! on `SIGHUP` without a restart (tonic's built-in TLS is fixed at start).

use std::sync::Arc;

use exchange_pki::{HANDSHAKE_TIMEOUT, Reload, ServerTls};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use crate::accept_connections;

/// Handshakes finished but not yet taken by the server.
const READY: usize = 64;

/// The mutual-TLS connections a daemon's gRPC server serves, accepted on `listener` with
/// `TCP_NODELAY`: each handshake runs on its own task (a slow or silent client holds up no
/// one, and gives up after [`HANDSHAKE_TIMEOUT`]) with the configuration `tls` holds at that
/// moment. tonic reads the client certificate from the stream for every request, as with its
/// own TLS.
pub fn accept_tls(
    listener: TcpListener,
    tls: Arc<ServerTls>,
) -> impl tokio_stream::Stream<Item = std::io::Result<TlsStream<TcpStream>>> + Send + 'static {
    let (ready, handshaken) = tokio::sync::mpsc::channel(READY);
    tokio::spawn(async move {
        let mut incoming = accept_connections(listener);
        loop {
            let next = tokio::select! {
                // The server stopped: stop accepting.
                _ = ready.closed() => break,
                next = incoming.next() => next,
            };
            let tcp = match next {
                None => break,
                Some(Ok(tcp)) => tcp,
                Some(Err(e)) => {
                    // Out of file descriptors and the like: the listener itself stays.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = TlsAcceptor::from(tls.config());
            let ready = ready.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = ready.send(Ok(stream)).await;
                    }
                    // A stranger's or a broken client's handshake: not worth more than debug.
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(handshaken)
}

/// Reloads each of `material` from its files on every `SIGHUP`, for the life of the process:
/// the next handshakes use the new certificate; on any error the one in use stays and the log
/// says what is wrong with the new files. Each item is named by the side it serves.
pub fn reload_on_hangup(material: Vec<(&'static str, Arc<dyn Reload>)>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP not handled: TLS files are read only at start");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            for (side, tls) in &material {
                match tls.reload() {
                    Ok(identity) => tracing::info!(
                        side,
                        dept = %identity.dept_id,
                        fingerprint = %identity.fingerprint_hex(),
                        not_after_unix = identity.not_after_unix,
                        "TLS certificate reloaded: new connections use it"
                    ),
                    Err(e) => tracing::error!(side, error = %e, "TLS reload refused; the certificate in use stays"),
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use exchange_pki::{CA_STEM, CertKind, CertSpec, FederationCa, TlsFiles};
    use rustls::pki_types::ServerName;

    use super::*;

    /// The fingerprint of the certificate the server at `addr` presents in a handshake now.
    async fn presented(addr: std::net::SocketAddr, ca: &FederationCa) -> anyhow::Result<[u8; 32]> {
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem().as_bytes())?;
        roots.add(der)?;
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await?;
        let stream = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
        let certs = stream.get_ref().1.peer_certificates().ok_or_else(|| anyhow::anyhow!("no server certificate"))?;
        Ok(exchange_pki::fingerprint(&certs[0]))
    }

    fn replace_cert(dir: &std::path::Path, ca: &FederationCa, dept: &str) -> anyhow::Result<()> {
        for name in ["node.crt", "node.key"] {
            std::fs::remove_file(dir.join(name))?;
        }
        ca.issue(&CertSpec::new(dept, CertKind::Server).with_loopback())?.write_files(dir, "node")?;
        Ok(())
    }

    /// A handshake after a reload presents the new certificate, and the server never stopped;
    /// a reload to another department's certificate is refused and changes nothing.
    #[tokio::test]
    async fn a_reload_changes_the_certificate_of_new_connections() -> anyhow::Result<()> {
        exchange_pki::install_crypto_provider();
        let dir = tempfile::tempdir()?;
        let ca = FederationCa::generate("reload test CA")?;
        ca.write_files(dir.path(), CA_STEM)?;
        ca.issue(&CertSpec::new("gov.sz.psb", CertKind::Server).with_loopback())?.write_files(dir.path(), "node")?;
        let tls = Arc::new(ServerTls::new(TlsFiles::in_dir(dir.path(), "node").load()?)?);
        let first = tls.identity();

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let _served = accept_tls(listener, tls.clone());
        assert_eq!(presented(addr, &ca).await?, first.fingerprint);

        // A renewed certificate of the same department: taken by the next handshake.
        replace_cert(dir.path(), &ca, "gov.sz.psb")?;
        let second = tls.reload()?;
        assert_ne!(second.fingerprint, first.fingerprint);
        assert_eq!(presented(addr, &ca).await?, second.fingerprint, "a new connection gets the new certificate");

        // Another department's certificate in the files: refused, the renewed one stays.
        replace_cert(dir.path(), &ca, "gov.sz.hcb")?;
        let refused = tls.reload().expect_err("a certificate of another department");
        assert!(refused.to_string().contains("urn:exchange:dept:gov.sz.hcb"), "{refused}");
        assert_eq!(tls.identity(), second, "a refused reload keeps the certificate in use");
        assert_eq!(presented(addr, &ca).await?, second.fingerprint);
        Ok(())
    }
}
