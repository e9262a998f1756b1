//! The access-log shipper: sends the local log to the catalog's `AppendAccessLog` in
//! sequence order, in batches of at most 500, with backoff on errors.
//!
//! It lingers [`SHIP_LINGER`] after the first new entry (unless a full batch is waiting), so
//! that the entries of that time travel in one append: shipping after every group commit
//! made each query of a lightly loaded node cost a catalog call, the catalog's synced
//! append and a synced write of `last_shipped` besides its own entry's sync. The position is
//! written unsynced: one lost in a power failure is learnt again from the catalog at start.
//!
//! Exactly once: the catalog ignores entries below the sequence it expects next and says in
//! every response (`next_sequence`) where it stands; `last_shipped` is stored durably only
//! from that answer. On SEQUENCE_GAP (the catalog expects an earlier entry than the batch's
//! first) the shipper parses nothing: it restarts from sequence 1, whose batch the catalog
//! answers with its position (earlier entries are acknowledged as duplicates), and
//! continues from there. A retry after a crash thus neither loses nor doubles an entry.
//!
//! The shipper also asks the catalog where it stands (an empty append, answered with
//! `next_sequence`) at start, after every failure (a reconnection) and every
//! [`CHECK_EVERY`] while idle. A catalog restored from a backup holds less than the node
//! shipped: the shipper moves `last_shipped` back to what the catalog holds and re-ships
//! the rest, in sequence order, without waiting for the node's next entry. A catalog that
//! holds more than the node's own log (a node restored from an older backup that did not
//! resume after the central log, see [`crate::server`]) is reported, and nothing is shipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use exchange_proto::refusal;
use exchange_proto::v1::catalog_client::CatalogClient;
use exchange_proto::v1::{AccessEvent, AppendAccessLogRequest, ReasonCode};
use exchange_store::keys::encode_u64;
use exchange_store::{Durability, KvStore, ScanRange, WriteBatch};
use prost::Message;
use tonic::transport::Channel;

use crate::accesslog::AccessLog;
use crate::db::{ACCESS_LOG, META, META_LAST_SHIPPED};

/// Most events per append.
pub const SHIP_BATCH: usize = 500;
/// How often an idle shipper checks what the catalog holds.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long the shipper waits, after an entry is written, for more to ship with it: the
/// most an entry waits before it leaves for the central log (a full batch leaves at once).
pub const SHIP_LINGER: Duration = Duration::from_millis(100);

/// The shipper's visible state.
#[derive(Debug, Default)]
pub struct ShipperStatus {
    last_shipped: AtomicU64,
    last_error: Mutex<String>,
}

impl ShipperStatus {
    /// A status starting at `last_shipped`.
    pub fn new(last_shipped: u64) -> Self {
        Self { last_shipped: AtomicU64::new(last_shipped), last_error: Mutex::new(String::new()) }
    }

    /// Last sequence acknowledged by the catalog.
    pub fn last_shipped(&self) -> u64 {
        self.last_shipped.load(Ordering::SeqCst)
    }

    /// Last error, empty when the last attempt succeeded.
    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = e;
    }
}

/// The shipper task.
pub struct Shipper {
    /// Status shared with the node.
    pub status: Arc<ShipperStatus>,
    /// The store.
    pub store: Arc<dyn KvStore>,
    /// The local log.
    pub log: AccessLog,
    /// Lazy channel to the catalog.
    pub channel: Channel,
}

enum Step {
    Idle,
    /// Entries shipped; `full` when the batch was full (more may be waiting).
    Progress {
        full: bool,
    },
}

impl Shipper {
    /// Runs forever.
    pub async fn run(self) {
        let written = self.log.written();
        let mut backoff = Duration::from_millis(200);
        let mut checked: Option<tokio::time::Instant> = None;
        loop {
            let notified = written.notified();
            if checked.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
                match self.check().await {
                    Ok(()) => checked = Some(tokio::time::Instant::now()),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot learn what the catalog holds");
                        self.status.set_error(e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            match self.step().await {
                Ok(Step::Progress { full }) => {
                    backoff = Duration::from_millis(200);
                    self.status.set_error(String::new());
                    if !full {
                        tokio::time::sleep(SHIP_LINGER).await;
                    }
                }
                Ok(Step::Idle) => {
                    if tokio::time::timeout(Duration::from_secs(1), notified).await.is_ok() {
                        tokio::time::sleep(SHIP_LINGER).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "access log shipping failed");
                    self.status.set_error(e);
                    // After a failure (often a lost connection), check the catalog's
                    // position again before shipping: it may have been restored meanwhile.
                    checked = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Asks the catalog what it holds of this node's log and moves `last_shipped` to it.
    async fn check(&self) -> Result<(), String> {
        let mut client = CatalogClient::new(self.channel.clone());
        let next = client
            .append_access_log(AppendAccessLogRequest { events: Vec::new() })
            .await
            .map_err(|status| format!("ask the catalog's position: {:?}: {}", status.code(), status.message()))?
            .into_inner()
            .next_sequence;
        let held = next.saturating_sub(1);
        let (shipped, written) = (self.status.last_shipped(), self.log.last_written());
        if held > written {
            return Err(format!(
                "the central log holds this node's entries up to sequence {held}, but its own log ends at \
                 {written}: the node was restored from an older backup; nothing is shipped (see the runbook, \
                 \"Restore a node\")"
            ));
        }
        if held != shipped {
            if held < shipped {
                tracing::warn!(
                    held,
                    shipped,
                    "the catalog holds fewer of this node's entries than it acknowledged: re-shipping"
                );
            }
            self.store_shipped(held).await?;
        }
        Ok(())
    }

    async fn step(&self) -> Result<Step, String> {
        let shipped = self.status.last_shipped();
        let written = self.log.last_written();
        if shipped >= written {
            return Ok(Step::Idle);
        }
        let store = self.store.clone();
        let from = shipped + 1;
        let events = tokio::task::spawn_blocking(move || -> Result<Vec<AccessEvent>, String> {
            let rows = store
                .scan(ACCESS_LOG, ScanRange::all().start(encode_u64(from)), SHIP_BATCH)
                .map_err(|e| format!("read local log: {e}"))?;
            rows.into_iter()
                .map(|(_, v)| AccessEvent::decode(v.as_slice()).map_err(|e| format!("decode local entry: {e}")))
                .collect()
        })
        .await
        .map_err(|e| format!("read task: {e}"))??;
        let Some(last) = events.last().map(|e| e.sequence) else {
            return Ok(Step::Idle);
        };
        let full = events.len() >= SHIP_BATCH;
        let mut client = CatalogClient::new(self.channel.clone());
        match client.append_access_log(AppendAccessLogRequest { events }).await {
            Ok(resp) => {
                let next = resp.into_inner().next_sequence;
                let acknowledged = next.saturating_sub(1).min(last.max(written));
                self.store_shipped(acknowledged).await?;
                Ok(Step::Progress { full })
            }
            Err(status) if refusal::reason_code(&status) == ReasonCode::SequenceGap => {
                tracing::warn!("catalog expects an earlier sequence: re-reading its position");
                self.store_shipped(0).await?;
                Ok(Step::Progress { full: true })
            }
            Err(status) => Err(format!("append: {:?}: {}", status.code(), status.message())),
        }
    }

    async fn store_shipped(&self, seq: u64) -> Result<(), String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch = WriteBatch::new();
            batch.put(META, META_LAST_SHIPPED.to_vec(), encode_u64(seq).to_vec());
            // Unsynced: a position lost in a power failure is only earlier than the catalog's,
            // which the start-up check corrects (the catalog ignores what it already holds).
            store.write(batch, Durability::Buffered)
        })
        .await
        .map_err(|e| format!("write task: {e}"))?
        .map_err(|e| format!("store last shipped: {e}"))?;
        self.status.last_shipped.store(seq, Ordering::SeqCst);
        Ok(())
    }
}
