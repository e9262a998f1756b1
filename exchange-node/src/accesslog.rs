//! The local access log, fail-closed, with group commit.
//!
//! One writer thread owns sequence assignment. A query sends a [`Stamp`] (a closure that,
//! given its sequence number, finishes the answer — header, canonical digest — and returns
//! the event recording it) with a oneshot; the thread drains every queued stamp, writes them
//! all in one `WriteBatch` with [`Durability::Sync`] (one disk sync for the group), then
//! replies to each. The answers of a group are signed together (canonical form version 3),
//! one tree per requester: each waiter gets its requester's answer digests of the commit
//! ([`CommittedGroup`]) and its own leaf index, and the first waiter to need the signature
//! signs the tree's root for all of them. A tree never mixes requesters, so an answer's path
//! tells its caller nothing of other members' queries, not even how many there were.
//!
//! The writer is a dedicated OS thread rather than an async task: it waits for the disk on
//! every group anyway, and as a task it needed a hop to a blocking thread and back for each
//! sync (two more wake-ups per group than waking this thread and being woken by it). If the write fails, nothing of the batch is stored, the sequence
//! numbers are handed out again to the next batch (the log stays gapless), and every waiter
//! gets an error: its query is refused UNAVAILABLE / ACCESS_LOG_UNAVAILABLE, never answered.
//!
//! A change of the node's data sends its own write batch with its stamp
//! ([`AccessLog::append_with`]): the change and its DATA_CHANGE entry are in the same
//! `WriteBatch`, so both are stored or neither is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use exchange_core::answer_group::AnswerGroup;
use exchange_core::digest::Digest32;

use exchange_proto::v1::{AccessEvent, ReasonCode};
use exchange_store::keys::encode_u64;
use exchange_store::{Durability, KvStore, WriteBatch};
use prost::Message;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::db::ACCESS_LOG;
use crate::error::NodeError;
use crate::metrics::LogStats;

/// Finishes an answer for its sequence number and returns the event to log.
pub type Stamp = Box<dyn FnOnce(u64) -> AccessEvent + Send>;

/// Most events written in one group.
const MAX_GROUP: usize = 1000;

type Job = (Stamp, WriteBatch, oneshot::Sender<Result<Logged, String>>);

/// An event written durably: its sequence number and, for a served answer, its place in the
/// group of answers written in the same commit.
#[derive(Debug)]
pub struct Logged {
    /// The event's sequence number.
    pub sequence: u64,
    /// The group commit's answers and this answer's leaf index among them (`None` for an
    /// event that records no answer: a refusal, a data change).
    pub leaf: Option<(Arc<CommittedGroup>, u64)>,
}

/// The digests of the answers one requester is sent from one group commit, in log order,
/// and the group's signature once a waiter made it (one Ed25519 signature for all of them).
#[derive(Debug)]
pub struct CommittedGroup {
    digests: Vec<Digest32>,
    signed: OnceLock<Option<SignedGroup>>,
}

/// A group commit's answers signed together: their tree, the key that signed and the
/// signature over the group statement.
#[derive(Debug)]
pub struct SignedGroup {
    /// The tree over the answers' digests.
    pub tree: AnswerGroup,
    /// The id of the node key that signed.
    pub key_id: String,
    /// Ed25519 over the statement's digest.
    pub signature: [u8; 64],
}

impl CommittedGroup {
    /// The group signed, by the first caller, with the key `sign` gives it (the node's key in
    /// force then): later callers get the same signature.
    pub fn signed(&self, sign: impl FnOnce(&AnswerGroup) -> (String, [u8; 64])) -> Option<&SignedGroup> {
        self.signed
            .get_or_init(|| {
                let tree = AnswerGroup::new(&self.digests)?;
                let (key_id, signature) = sign(&tree);
                Some(SignedGroup { tree, key_id, signature })
            })
            .as_ref()
    }
}

/// What the writer thread receives.
enum Msg {
    /// An event (and its data change) to write.
    Append(Job),
    /// The node stops: end the thread (sent when the task [`AccessLog::start`] returns is
    /// aborted or ends), so that it releases the store.
    Stop,
}

/// A handle on the access-log writer thread (cheap to clone).
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: mpsc::Sender<Msg>,
    last_written: Arc<AtomicU64>,
    written: Arc<Notify>,
    syncs: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    stats: LogStats,
}

impl AccessLog {
    /// Starts the writer thread over `store`, continuing after `last_written`. `durability`
    /// is [`Durability::Sync`] but under the benchmark harness (`access_log_sync = false`).
    ///
    /// The task returned stands for the thread among the node's background tasks: aborting
    /// it (or the runtime ending) stops the thread once the writes queued before are done.
    pub fn start(
        store: Arc<dyn KvStore>,
        last_written: u64,
        durability: Durability,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Msg>(4096);
        let last = Arc::new(AtomicU64::new(last_written));
        let written = Arc::new(Notify::new());
        let syncs = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let stats = LogStats::new();
        let writer = Writer {
            store,
            durability,
            stats: stats.clone(),
            last: last.clone(),
            written: written.clone(),
            syncs: syncs.clone(),
            failing: failing.clone(),
        };
        let spawned = std::thread::Builder::new().name("access-log".into()).spawn(move || writer.run(rx));
        if let Err(error) = spawned {
            // Without its thread the log cannot be written: every query is refused
            // (fail-closed), as after a failed write, and the health check says so.
            tracing::error!(%error, "the access-log writer thread did not start");
            failing.store(true, Ordering::SeqCst);
        }
        let stop = StopOnDrop(tx.clone());
        let task = tokio::spawn(async move {
            let _stop = stop;
            std::future::pending::<()>().await
        });
        (Self { tx, last_written: last, written, syncs, failing, stats }, task)
    }

    /// Whether the last durable write failed (every query is refused until one succeeds).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Records that a durable write to the store succeeded again (the health probe's).
    pub fn mark_writable(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Durable group writes (one disk sync each) since the node started: fewer than the
    /// entries written since then whenever concurrent queries shared a sync.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// The group commits' sync times and sizes (for the metrics listener).
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// The last sequence written durably.
    pub fn last_written(&self) -> u64 {
        self.last_written.load(Ordering::SeqCst)
    }

    /// Notified after each durable group write (the shipper waits on it).
    pub fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }

    /// Writes one event durably; returns its sequence number (and, for an answer, its place
    /// in the group commit) once it is on disk.
    pub async fn append(&self, stamp: Stamp) -> Result<Logged, NodeError> {
        self.append_with(stamp, WriteBatch::new()).await
    }

    /// Writes one event durably together with `data` (a change of the node's data), in one
    /// atomic write: both are stored, or neither. Returns the event's sequence number.
    pub async fn append_with(&self, stamp: Stamp, data: WriteBatch) -> Result<Logged, NodeError> {
        let (reply, rx) = oneshot::channel();
        let unavailable = |why: String| {
            tracing::error!(cause = %why, "access log write failed");
            NodeError::Unavailable {
                reason: ReasonCode::AccessLogUnavailable,
                message: "the access log cannot be written, so the query is refused (fail-closed): retry later".into(),
            }
        };
        self.tx
            .send(Msg::Append((stamp, data, reply)))
            .await
            .map_err(|_| unavailable("writer thread stopped".into()))?;
        match rx.await {
            Ok(Ok(logged)) => Ok(logged),
            Ok(Err(why)) => Err(unavailable(why)),
            Err(_) => Err(unavailable("writer thread dropped the reply".into())),
        }
    }
}

/// Tells the writer thread to stop when dropped (the node's background task is aborted).
struct StopOnDrop(mpsc::Sender<Msg>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        // A full queue still ends the thread: it stops once every sender is gone.
        let _ = self.0.try_send(Msg::Stop);
    }
}

/// The writer thread's state.
struct Writer {
    store: Arc<dyn KvStore>,
    durability: Durability,
    stats: LogStats,
    last: Arc<AtomicU64>,
    written: Arc<Notify>,
    syncs: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
}

impl Writer {
    /// Writes groups until stopped, or until every handle is gone.
    fn run(self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(Msg::Append(first)) = rx.blocking_recv() {
            let mut jobs = vec![first];
            let mut stop = false;
            while jobs.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(Msg::Append(job)) => jobs.push(job),
                    Ok(Msg::Stop) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write_group(jobs);
            if stop {
                break;
            }
        }
    }

    /// Writes one group in one batch, then answers each of its waiters.
    fn write_group(&self, jobs: Vec<Job>) {
        let start = self.last.load(Ordering::SeqCst) + 1;
        let mut batch = WriteBatch::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        // Per requester, in log order: the digests of the answers it is sent.
        let mut trees: Vec<(String, Vec<Digest32>)> = Vec::new();
        for (i, (stamp, data, reply)) in jobs.into_iter().enumerate() {
            let seq = start + i as u64;
            batch.extend(data);
            let mut event = stamp(seq);
            event.sequence = seq;
            // A served answer's digest is a leaf of its requester's signed tree.
            let leaf = <Digest32>::try_from(event.answer_digest.as_slice()).ok().map(|d| {
                let t = match trees.iter().position(|(r, _)| *r == event.requester) {
                    Some(t) => t,
                    None => {
                        trees.push((event.requester.clone(), Vec::new()));
                        trees.len() - 1
                    }
                };
                trees[t].1.push(d);
                (t, trees[t].1.len() as u64 - 1)
            });
            batch.put(ACCESS_LOG, encode_u64(seq).to_vec(), event.encode_to_vec());
            replies.push((seq, leaf, reply));
        }
        let began = std::time::Instant::now();
        match self.store.write(batch, self.durability) {
            Ok(()) => {
                self.stats.group_written(replies.len(), began.elapsed().as_secs_f64());
                self.failing.store(false, Ordering::SeqCst);
                self.syncs.fetch_add(1, Ordering::SeqCst);
                if let Some((seq, _, _)) = replies.last() {
                    self.last.store(*seq, Ordering::SeqCst);
                }
                self.written.notify_waiters();
                let groups: Vec<_> = trees
                    .into_iter()
                    .map(|(_, digests)| Arc::new(CommittedGroup { digests, signed: OnceLock::new() }))
                    .collect();
                for (sequence, leaf, reply) in replies {
                    let leaf = leaf.map(|(t, index)| (groups[t].clone(), index));
                    let _ = reply.send(Ok(Logged { sequence, leaf }));
                }
            }
            Err(err) => {
                self.failing.store(true, Ordering::SeqCst);
                let why = err.to_string();
                for (_, _, reply) in replies {
                    let _ = reply.send(Err(why.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use exchange_core::answer_group::{group_root, group_statement_digest, verify_statement};
    use exchange_core::digest::sha256;
    use exchange_store::MemoryStore;

    use super::*;

    fn writer() -> Writer {
        Writer {
            store: Arc::new(MemoryStore::new(&[ACCESS_LOG])),
            durability: Durability::Sync,
            stats: LogStats::new(),
            last: Arc::new(AtomicU64::new(0)),
            written: Arc::new(Notify::new()),
            syncs: Arc::new(AtomicU64::new(0)),
            failing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A job for `requester`: an answer with a digest, or (`None`) a refusal without one.
    fn job(requester: &str, answer: Option<&str>) -> (Job, oneshot::Receiver<Result<Logged, String>>) {
        let (tx, rx) = oneshot::channel();
        let event = AccessEvent {
            requester: requester.into(),
            answer_digest: answer.map(|a| sha256(a.as_bytes()).to_vec()).unwrap_or_default(),
            ..Default::default()
        };
        ((Box::new(move |_| event), WriteBatch::new(), tx), rx)
    }

    #[test]
    fn a_commit_signs_one_tree_per_requester_and_none_for_refusals() {
        let w = writer();
        let asked = [
            ("gov.sz.hcb", Some("a0")),
            ("gov.sz.futian", Some("b0")),
            ("gov.sz.hcb", Some("a1")),
            ("gov.sz.hcb", None),
            ("gov.sz.hcb", Some("a2")),
            ("gov.sz.futian", Some("b1")),
        ];
        let (jobs, replies): (Vec<_>, Vec<_>) = asked.iter().map(|(r, a)| job(r, *a)).unzip();
        w.write_group(jobs);
        let logged: Vec<Logged> =
            replies.into_iter().map(|mut rx| rx.try_recv().expect("answered").expect("written")).collect();
        assert_eq!(logged.iter().map(|l| l.sequence).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert!(logged[3].leaf.is_none(), "a refusal is no leaf");
        let leaf = |i: usize| logged[i].leaf.as_ref().expect("an answer is a leaf");
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let sign = |tree: &AnswerGroup| ("k".to_string(), tree.sign("gov.sz.psb", &key));
        for (members, requester_answers) in [(vec![0, 2, 4], vec!["a0", "a1", "a2"]), (vec![1, 5], vec!["b0", "b1"])] {
            let (group, _) = leaf(members[0]);
            let signed = group.signed(sign).expect("signed");
            assert_eq!(signed.tree.size(), requester_answers.len() as u64, "one requester's answers only");
            for (index, (i, answer)) in members.iter().zip(&requester_answers).enumerate() {
                let (g, at) = leaf(*i);
                assert!(Arc::ptr_eq(g, group), "one tree per requester");
                assert_eq!(*at, index as u64, "leaves in log order");
                let again = g.signed(|_| unreachable!("signed once")).expect("signed");
                assert_eq!(again.signature, signed.signature);
                let path = again.tree.path(*at).expect("a path");
                let root = group_root(&sha256(answer.as_bytes()), *at, again.tree.size(), &path).expect("folds");
                let statement = group_statement_digest("gov.sz.psb", again.tree.size(), &root);
                assert_eq!(verify_statement(&key.verifying_key(), &statement, &again.signature), Ok(()));
            }
        }
        assert!(!Arc::ptr_eq(&leaf(0).0, &leaf(1).0), "requesters never share a tree");
    }
}
