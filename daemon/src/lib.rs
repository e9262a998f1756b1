//! What every Exchange daemon (`exchange-catalog`, `exchange-node`) does at start and at stop,
//! in one place so that the daemons cannot drift apart: logging that never takes the process
//! down, the TLS crypto provider, surviving a file-size limit, the stop signals, and how
//! connections are accepted.

pub mod backup;
mod incoming;
pub mod probe;
mod tls;

pub use incoming::accept_connections;
pub use tls::{accept_tls, reload_on_hangup};

/// Sets up a daemon process; call first in `main`, inside the tokio runtime.
///
/// - Logs go to standard output, filtered by `RUST_LOG` (default `info`), without ANSI
///   colours unless on a terminal. A log line that cannot be written (disk full, file-size
///   limit) is dropped: the subscriber must not report it on stderr, which panics when stderr
///   is the same unwritable file, in the middle of a request.
/// - rustls's process-wide crypto provider is installed (two are compiled in).
/// - SIGXFSZ is handled, so that a write past a file-size limit is the write error (EFBIG) it
///   also is, met by the daemon like a full disk (queries refused, the daemon up and saying
///   why), not a kill.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .log_internal_errors(false)
        .init();
    exchange_pki::install_crypto_provider();
    survive_file_size_limit();
}

fn survive_file_size_limit() {
    #[cfg(target_os = "linux")]
    {
        // SIGXFSZ on Linux. Tokio keeps a registered handler for the life of the process.
        const SIGXFSZ: i32 = 25;
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)) {
            tracing::warn!(error = %e, "SIGXFSZ not handled: a file-size limit would stop the daemon");
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: the moment to stop gracefully.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
