//! `exchange audit`: the central access log.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use exchange_client_sdk::ExchangeClient;
use exchange_client_sdk::log::{
    audit_verify_all, verify_consistency_proof, verify_inclusion_of, verify_inclusion_proof, verify_tree_head,
};
use exchange_core::checkpoint::{Checkpoint, NoteVerifier};
use exchange_core::merkle::{Hash, MemoryTree};
use exchange_proto::v1::*;
use serde_json::{Value, json};

use crate::admin::subject_kind;
use crate::data::progress_bar;
use crate::render::{self, Out};

/// The log does not match its signed tree head (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerificationFailed(pub String);

/// Audit commands.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Fetch the signed tree head and verify its signature.
    Head {
        /// Also save the signed note, for a later `audit consistency --old-checkpoint`.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Query the log (auditor: all entries; a department: its own).
    Query {
        /// Only this requester.
        #[arg(long)]
        requester: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Only this purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// From this time, Unix ms.
        #[arg(long, default_value_t = 0)]
        from_ms: i64,
        /// Until this time, Unix ms.
        #[arg(long, default_value_t = 0)]
        until_ms: i64,
        /// Only this outcome: served, refused, not-found.
        #[arg(long, value_parser = ["served", "refused", "not-found"])]
        outcome: Option<String>,
        /// Only this subject digest (hex).
        #[arg(long)]
        subject_digest: Option<String>,
        /// Only this trace id.
        #[arg(long)]
        trace_id: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Page token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Prove that entry INDEX is in the log: an inclusion proof verified against the signed
    /// tree head.
    Prove {
        /// The entry index.
        index: u64,
    },
    /// Prove that the log of OLD_SIZE entries is a prefix of the current signed log.
    Consistency {
        /// The older tree size.
        old_size: u64,
        /// The older head's signed note (from `audit head --save`).
        #[arg(long, conflicts_with = "old_root")]
        old_checkpoint: Option<PathBuf>,
        /// The older head's root hash (hex); default: recomputed from the entries (auditor).
        #[arg(long)]
        old_root: Option<String>,
    },
    /// Re-check the whole log against its signed tree head, naming the first bad entry.
    Verify,
    /// A node's access-log shipping and configuration status (the node's own department or
    /// an auditor): entries written, shipped, the lag, the last shipping error, and the
    /// version and age of its federation configuration.
    NodeStatus {
        /// The node's department id.
        dept: String,
    },
    /// A subject's "who read my data" view (portal). With `--prove`, each entry of the page
    /// is proved to be in the signed log, with the entry the view returned (the proofs a
    /// portal gets carry hashes only).
    Subject {
        /// person or organisation.
        #[arg(long, default_value = "person")]
        kind: String,
        /// The resident ID or credit code.
        #[arg(long)]
        id: String,
        /// From this time, Unix ms.
        #[arg(long, default_value_t = 0)]
        from_ms: i64,
        /// Page size.
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Page token.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Prove each entry's inclusion against the signed tree head.
        #[arg(long)]
        prove: bool,
    },
}

fn page(r: &QueryAccessLogResponse) -> Value {
    json!({
        "tree_size": r.tree_size,
        "entries": r.entries.iter().map(render::entry).collect::<Vec<_>>(),
        "next_page_token": r.next_page_token,
    })
}

async fn old_root_from_entries(client: &ExchangeClient, size: u64) -> anyhow::Result<Hash> {
    let mut tree = MemoryTree::new();
    while tree.size() < size {
        let count = u32::try_from((size - tree.size()).min(1000)).unwrap_or(1000);
        let entries = client.log_entries(tree.size(), count).await?;
        if entries.is_empty() {
            return Err(anyhow!("the log ends before {size} entries"));
        }
        for e in entries.iter().take((size - tree.size()) as usize) {
            tree.append(&e.leaf);
        }
    }
    Ok(tree.root())
}

/// Runs an audit command.
pub async fn run(
    client: &ExchangeClient,
    verifier: Option<NoteVerifier>,
    command: AuditCommand,
    out: Out,
) -> anyhow::Result<()> {
    let head = || async { client.verified_tree_head(verifier.as_ref()).await.context("verify the tree head") };
    match command {
        AuditCommand::Head { save } => {
            let raw = client.tree_head().await?;
            let h = client.check_tree_head(&raw, verifier.as_ref()).await.context("verify the tree head")?;
            if let Some(path) = save {
                std::fs::write(&path, &raw.checkpoint).with_context(|| format!("write {}", path.display()))?;
            }
            out.show(&render::checkpoint(&h));
        }
        AuditCommand::Query {
            requester,
            provider,
            dataset,
            purpose,
            from_ms,
            until_ms,
            outcome,
            subject_digest,
            trace_id,
            page_size,
            page_token,
        } => {
            let outcome = match outcome.as_deref() {
                Some("served") => Outcome::Served,
                Some("refused") => Outcome::Refused,
                Some("not-found") => Outcome::NotFound,
                _ => Outcome::Unspecified,
            } as i32;
            let r = client
                .query_access_log(QueryAccessLogRequest {
                    requester: requester.unwrap_or_default(),
                    provider: provider.unwrap_or_default(),
                    dataset: dataset.unwrap_or_default(),
                    purpose_code: purpose.unwrap_or_default(),
                    from_unix_ms: from_ms,
                    until_unix_ms: until_ms,
                    outcome,
                    subject_digest: subject_digest.unwrap_or_default(),
                    trace_id: trace_id.unwrap_or_default(),
                    page: Some(PageRequest { page_size, page_token }),
                })
                .await?;
            out.show(&page(&r));
        }
        AuditCommand::Prove { index } => {
            let h = head().await?;
            if index >= h.size() {
                return Err(anyhow!("entry {index} is not in the signed log of {} entries", h.size()));
            }
            let proof = client.inclusion_proof(index, h.size()).await?;
            verify_inclusion_proof(&proof, &h)?;
            out.show(&json!({
                "index": index,
                "tree_size": h.size(),
                "root": h.root().to_hex(),
                "inclusion": "verified",
                "entry": proof.entry.as_ref().map(render::entry).unwrap_or(Value::Null),
            }));
        }
        AuditCommand::Consistency { old_size, old_checkpoint, old_root } => {
            let h = head().await?;
            let old_root = match (old_checkpoint, old_root) {
                (Some(path), _) => {
                    let note = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
                    let old: Checkpoint = match verifier.as_ref() {
                        Some(v) => verify_tree_head(&note, v)?,
                        None => {
                            let view = client.federation().await?;
                            exchange_client_sdk::log::verify_tree_head_by_any(&note, &view.log_verifiers()?)?
                        }
                    };
                    if old.size() != old_size {
                        return Err(anyhow!("{} is a head of size {}, not {old_size}", path.display(), old.size()));
                    }
                    old.root()
                }
                (None, Some(hex)) => Hash::from_hex(hex.trim()).map_err(|e| anyhow!("setting --old-root: {e}"))?,
                (None, None) => old_root_from_entries(client, old_size).await?,
            };
            let proof = client.consistency_proof_from(old_size, &old_root, h.size()).await?;
            verify_consistency_proof(&proof, old_size, old_root, &h)?;
            out.show(&json!({
                "old_size": old_size,
                "old_root": old_root.to_hex(),
                "new_size": h.size(),
                "new_root": h.root().to_hex(),
                "consistency": "verified",
            }));
        }
        AuditCommand::Verify => {
            let h = head().await?;
            let pb = progress_bar(h.size(), out, "verify");
            let report = audit_verify_all(client, &h, |done, _| pb.set_position(done)).await;
            pb.finish_and_clear();
            let report = report?;
            out.show(&render::audit_report(&report));
            if let Some(i) = report.first_bad_index {
                return Err(VerificationFailed(format!(
                    "the log does not match its signed tree head: first bad entry {i}: {}",
                    report.problem.unwrap_or_default()
                ))
                .into());
            }
        }
        AuditCommand::NodeStatus { dept } => {
            let s = client.log_status(&dept).await?;
            out.show(&json!({
                "node": dept,
                "last_written": s.last_written,
                "last_shipped": s.last_shipped,
                "lag": s.lag,
                "last_error": s.last_error,
                "config_version": s.config_version,
                "config_age_ms": s.config_age_ms,
                "log_syncs": s.log_syncs,
            }));
        }
        AuditCommand::Subject { kind, id, from_ms, page_size, page_token, prove } => {
            let r = client
                .subject_access_view(SubjectAccessViewRequest {
                    subject: Some(Subject { kind: subject_kind(&kind)?, id }),
                    from_unix_ms: from_ms,
                    page: Some(PageRequest { page_size, page_token }),
                })
                .await?;
            let mut shown = page(&r);
            if prove {
                let h = head().await?;
                for entry in &r.entries {
                    let proof = client.inclusion_proof(entry.index, h.size()).await?;
                    verify_inclusion_of(entry, &proof, &h)?;
                }
                shown["inclusion"] =
                    json!(format!("{} entries verified against tree size {}", r.entries.len(), h.size()));
            }
            out.show(&shown);
        }
    }
    Ok(())
}
