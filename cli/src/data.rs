//! Imports into the caller's node and queries of providers' nodes.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use exchange_client_sdk::ExchangeClient;
use exchange_client_sdk::client::provider_of;
use exchange_proto::v1::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::admin::{list, subject_kind};
use crate::importfile;
use crate::render::{self, Out};

/// `exchange import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The node to load into (default: your node's endpoint in the federation configuration).
    #[arg(long, value_name = "https://HOST:PORT")]
    node: Option<String>,
    /// The dataset, one of yours.
    #[arg(long)]
    dataset: String,
    /// Records per chunk sent.
    #[arg(long, default_value_t = 1000)]
    chunk: usize,
    /// An id that makes a repeated import idempotent (default: derived from the file's content).
    #[arg(long)]
    import_id: Option<String>,
    /// The file: `.jsonl` (one JSON object per line) or `.csv` (a header row). Columns or
    /// keys `valid_from` and `valid_until` give a licence's validity.
    file: PathBuf,
}

fn bar(total: u64, out: Out, what: &str) -> ProgressBar {
    if out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Progress bar shown on long work.
pub fn progress_bar(total: u64, out: Out, what: &str) -> ProgressBar {
    bar(total, out, what)
}

/// Chunks read ahead of the upload: the memory an import needs, whatever the file's size.
const CHUNKS_AHEAD: usize = 4;

/// Runs an import: the file is read as it is sent, a few chunks ahead, so that a file of
/// any size needs the memory of a few chunks.
pub async fn import(client: &ExchangeClient, args: ImportArgs, out: Out) -> anyhow::Result<()> {
    let ImportArgs { node, dataset, chunk, import_id, file } = args;
    let format = importfile::format_of(&file)?;
    let (hash, lines) = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || importfile::fingerprint(&file)).await.context("read the file")??
    };
    if lines == 0 && std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) == 0 {
        bail!("{} is empty", file.display());
    }
    if let Some(node) = node {
        client.set_node_endpoint(&provider_of(&dataset)?, &node);
    }
    let header = ImportHeader {
        dataset,
        format: format as i32,
        source_name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        import_id: import_id.unwrap_or_else(|| hash[..32].to_owned()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<exchange_client_sdk::Result<ImportChunk>>(CHUNKS_AHEAD);
    let reader = {
        let file = file.clone();
        let chunk = chunk.max(1);
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let mut records = Vec::with_capacity(chunk);
            let mut count = 0u64;
            for record in importfile::records(&file)? {
                match record {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(exchange_client_sdk::Error::InvalidInput(format!(
                            "{}: {e:#}",
                            file.display()
                        ))));
                        return Ok(count);
                    }
                }
                count += 1;
                if records.len() == chunk {
                    let full = std::mem::replace(&mut records, Vec::with_capacity(chunk));
                    if tx.blocking_send(Ok(ImportChunk { records: full })).is_err() {
                        return Ok(count);
                    }
                }
            }
            if !records.is_empty() {
                let _ = tx.blocking_send(Ok(ImportChunk { records }));
            }
            Ok(count)
        })
    };
    let pb = bar(lines, out, "import");
    let progress = {
        let pb = pb.clone();
        move |sent: u64| pb.set_position(sent)
    };
    let result = client.import_stream(header, tokio_stream::wrappers::ReceiverStream::new(rx), progress).await;
    pb.finish_and_clear();
    let read = reader.await.context("read the file")??;
    let summary = result.context("import refused; nothing of the file was kept")?;
    if read == 0 {
        bail!("{} holds no records", file.display());
    }
    out.show(&json!({
        "dataset": summary.dataset,
        "records_read": summary.records_read,
        "inserted": summary.inserted,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
    }));
    Ok(())
}

/// What every query says about itself.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The provider's node (default: its endpoint in the federation configuration).
    #[arg(long, value_name = "https://HOST:PORT")]
    node: Option<String>,
    /// The dataset, `<provider>/<name>`.
    #[arg(long)]
    dataset: String,
    /// The purpose code (service item code) of your grant.
    #[arg(long)]
    purpose: String,
    /// The reason (申请事由), 1 to 200 characters.
    #[arg(long)]
    reason: String,
    /// A consent token (needed for personal data).
    #[arg(long, default_value = "")]
    token: String,
    /// Fields wanted; repeat or comma-separate; none: all that are allowed.
    #[arg(long)]
    fields: Vec<String>,
    /// A trace id for the access log.
    #[arg(long, default_value = "")]
    trace_id: String,
}

impl QueryArgs {
    fn context(&self) -> Option<QueryContext> {
        Some(QueryContext {
            purpose_code: self.purpose.clone(),
            reason: self.reason.clone(),
            trace_id: self.trace_id.clone(),
        })
    }
}

/// Query commands.
#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// Get a base record by subject.
    Record {
        #[command(flatten)]
        q: QueryArgs,
        /// The subject's resident ID or credit code.
        #[arg(long)]
        subject: String,
        /// person or organisation.
        #[arg(long, default_value = "person")]
        kind: String,
        /// An earlier version to read, to replay a decision taken on it (default: current).
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Get a licence by number.
    Licence {
        #[command(flatten)]
        q: QueryArgs,
        /// The licence number.
        #[arg(long)]
        licence_id: String,
        /// An earlier version to read, to replay a decision taken on it (default: current).
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Verify a licence (核验): a verdict with the least data.
    Verify {
        #[command(flatten)]
        q: QueryArgs,
        /// The licence number.
        #[arg(long)]
        licence_id: String,
        /// The claimed holder.
        #[arg(long)]
        holder: Option<String>,
        /// The holder's kind.
        #[arg(long, default_value = "organisation")]
        holder_kind: String,
    },
    /// List a holder's licences.
    List {
        #[command(flatten)]
        q: QueryArgs,
        /// The holder.
        #[arg(long)]
        holder: String,
        /// The holder's kind.
        #[arg(long, default_value = "organisation")]
        holder_kind: String,
    },
    /// Match claimed values against a record, revealing no held value.
    Match {
        #[command(flatten)]
        q: QueryArgs,
        /// The subject.
        #[arg(long)]
        subject: String,
        /// person or organisation.
        #[arg(long, default_value = "person")]
        kind: String,
        /// A claim `field=value`; repeat.
        #[arg(long, required = true, value_name = "FIELD=VALUE")]
        claim: Vec<String>,
    },
}

fn prepare(client: &ExchangeClient, q: &QueryArgs) -> anyhow::Result<()> {
    if let Some(node) = &q.node {
        client.set_node_endpoint(&provider_of(&q.dataset)?, node);
    }
    Ok(())
}

/// Runs a query and prints the verified answer.
pub async fn query(client: &ExchangeClient, command: QueryCommand, out: Out) -> anyhow::Result<()> {
    let value = match command {
        QueryCommand::Record { q, subject, kind, version } => {
            prepare(client, &q)?;
            let answer = client
                .get_record(GetRecordRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    subject: Some(Subject { kind: subject_kind(&kind)?, id: subject }),
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
                    version,
                })
                .await?;
            render::record_answer(&answer)
        }
        QueryCommand::Licence { q, licence_id, version } => {
            prepare(client, &q)?;
            let answer = client
                .get_licence(GetLicenceRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    licence_id,
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
                    version,
                })
                .await?;
            render::licence_answer(&answer)
        }
        QueryCommand::Verify { q, licence_id, holder, holder_kind } => {
            prepare(client, &q)?;
            let holder = match holder {
                Some(id) => Some(Subject { kind: subject_kind(&holder_kind)?, id }),
                None => None,
            };
            let answer = client
                .verify_licence(VerifyLicenceRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    licence_id,
                    holder,
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
                })
                .await?;
            render::verify_answer(&answer)
        }
        QueryCommand::List { q, holder, holder_kind } => {
            prepare(client, &q)?;
            let answer = client
                .list_licences(ListLicencesRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    holder: Some(Subject { kind: subject_kind(&holder_kind)?, id: holder }),
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
                })
                .await?;
            render::list_answer(&answer)
        }
        QueryCommand::Match { q, subject, kind, claim } => {
            prepare(client, &q)?;
            let claims = claim
                .iter()
                .map(|c| match c.split_once('=') {
                    Some((n, v)) => Ok(ClaimedValue { name: n.trim().to_owned(), value: v.to_owned() }),
                    None => bail!("claim {c:?} is not FIELD=VALUE"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let answer = client
                .match_record(MatchRecordRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    subject: Some(Subject { kind: subject_kind(&kind)?, id: subject }),
                    claims,
                    consent_token: q.token.clone(),
                })
                .await?;
            render::match_answer(&answer)
        }
    };
    out.show(&value);
    Ok(())
}
