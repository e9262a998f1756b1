//! How a daemon accepts connections.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// The connections a daemon's gRPC server accepts on `listener`, each with `TCP_NODELAY` set.
///
/// tonic's `Server::tcp_nodelay` applies only to listeners tonic binds itself, not to a stream
/// handed to `serve_with_incoming*`. Without `TCP_NODELAY`, a reply written in more than one
/// piece (headers, then body and trailers) waits for the client's delayed ACK, about 40 ms on
/// Linux, on every call. Both daemons serve through this function, so neither can forget it.
pub fn accept_connections(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn every_accepted_connection_has_nodelay() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut incoming = accept_connections(listener);
        for _ in 0..3 {
            let client = tokio::net::TcpStream::connect(addr).await?;
            let accepted = incoming.next().await.ok_or_else(|| std::io::Error::other("incoming ended"))??;
            assert!(accepted.nodelay()?, "an accepted connection keeps Nagle's algorithm");
            // The accepting side is what this is about: the client's own setting is untouched.
            assert!(!client.nodelay()?);
        }
        Ok(())
    }
}
