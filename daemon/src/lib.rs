//! What every Exchange daemon (`exchange-catalog`, `exchange-node`) does at start and at stop,
//! in one place so that the daemons cannot drift apart: logging that never takes the process
//! down, the TLS crypto provider, surviving a file-size limit, the stop signals, how
//! connections are accepted, and the metrics listener ([`metrics`]).

pub mod backup;
mod incoming;
pub mod metrics;
pub mod probe;
mod tls;

pub use incoming::accept_connections;
pub use tls::{accept_tls, reload_on_hangup};

/// The environment variable that chooses the daemons' log format: `text` (the default) or
/// `json` (one JSON object a line, for a log collector).
pub const LOG_FORMAT_ENV: &str = "EXCHANGE_LOG_FORMAT";

/// How a daemon writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, the span's fields (method, caller, trace id) before the message.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `fields` (the message and its fields),
    /// `span` (the innermost span's fields) and `spans` (every enclosing span's fields).
    Json,
}

impl LogFormat {
    /// The format named by the value of [`LOG_FORMAT_ENV`] (unset or empty: text).
    pub fn from_env(value: Option<&str>) -> anyhow::Result<Self> {
        match value.map(str::trim) {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => anyhow::bail!("{LOG_FORMAT_ENV}={other:?}: the log format is text or json"),
        }
    }
}

/// Sets up a daemon process; call first in `main`, inside the tokio runtime.
///
/// - Logs go to standard output, filtered by `RUST_LOG` (default `info`), as text without
///   ANSI colours unless on a terminal, or as JSON lines when `EXCHANGE_LOG_FORMAT=json`
///   ([`LogFormat`]; another value stops the daemon with an error naming it). Every line
///   written inside a call carries the call's span: method, caller and, for queries, the
///   application's trace id. A log line that cannot be written (disk full, file-size
///   limit) is dropped: the subscriber must not report it on stderr, which panics when stderr
///   is the same unwritable file, in the middle of a request.
/// - rustls's process-wide crypto provider is installed (two are compiled in).
/// - SIGXFSZ is handled, so that a write past a file-size limit is the write error (EFBIG) it
///   also is, met by the daemon like a full disk (queries refused, the daemon up and saying
///   why), not a kill.
pub fn init() -> anyhow::Result<()> {
    let format = LogFormat::from_env(std::env::var(LOG_FORMAT_ENV).ok().as_deref())?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(true).init(),
    }
    exchange_pki::install_crypto_provider();
    survive_file_size_limit();
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_text_unless_json_is_asked_and_nothing_else_is_taken() {
        for text in [None, Some(""), Some("text"), Some(" text ")] {
            assert_eq!(LogFormat::from_env(text).expect("text"), LogFormat::Text);
        }
        assert_eq!(LogFormat::from_env(Some("json")).expect("json"), LogFormat::Json);
        for bad in ["JSON", "yaml", "logfmt"] {
            let err = LogFormat::from_env(Some(bad)).expect_err("refused");
            assert_eq!(err.to_string(), format!("EXCHANGE_LOG_FORMAT={bad:?}: the log format is text or json"));
        }
    }
}
