//! Imports into the caller's node and queries of providers' nodes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use exchange_client_sdk::ExchangeClient;
use exchange_client_sdk::client::provider_of;
use exchange_proto::v1::*;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::admin::{list, subject_kind};
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

/// Parsed records, with their 1-based line numbers.
pub fn parse_file(path: &Path, bytes: &[u8]) -> anyhow::Result<(ImportFormat, Vec<ImportRecord>)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" | "json" => Ok((ImportFormat::JsonLines, parse_jsonl(bytes)?)),
        "csv" => Ok((ImportFormat::Csv, parse_csv(bytes)?)),
        other => bail!("{}: unknown format {other:?}: use a .jsonl or .csv file", path.display()),
    }
}

fn record(line: u64, mut fields: HashMap<String, String>) -> ImportRecord {
    let valid_from = fields.remove("valid_from").unwrap_or_default();
    let valid_until = fields.remove("valid_until").unwrap_or_default();
    ImportRecord { line, fields, valid_from, valid_until }
}

fn parse_jsonl(bytes: &[u8]) -> anyhow::Result<Vec<ImportRecord>> {
    let text = std::str::from_utf8(bytes).context("the file is not UTF-8")?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).with_context(|| format!("line {n}: not JSON"))?;
        let Value::Object(map) = value else {
            bail!("line {n}: not a JSON object");
        };
        let mut fields = HashMap::new();
        for (k, v) in map {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(x) => x.to_string(),
                Value::Array(_) | Value::Object(_) => bail!("line {n}: field {k}: nested values are not supported"),
            };
            fields.insert(k, text);
        }
        out.push(record(n, fields));
    }
    Ok(out)
}

fn parse_csv(bytes: &[u8]) -> anyhow::Result<Vec<ImportRecord>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let headers: Vec<String> =
        reader.headers().context("read the CSV header row")?.iter().map(|h| h.trim().to_owned()).collect();
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow::anyhow!("line {line}: {e}")
        })?;
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        let fields = headers
            .iter()
            .zip(row.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        out.push(record(line, fields));
    }
    Ok(out)
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

/// Runs an import.
pub async fn import(client: &ExchangeClient, args: ImportArgs, out: Out) -> anyhow::Result<()> {
    let ImportArgs { node, dataset, chunk, import_id, file } = args;
    let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let (format, records) = parse_file(&file, &bytes)?;
    if records.is_empty() {
        bail!("{} holds no records", file.display());
    }
    if let Some(node) = node {
        client.set_node_endpoint(&provider_of(&dataset)?, &node);
    }
    let total = records.len() as u64;
    let chunks: Vec<ImportChunk> = records.chunks(chunk.max(1)).map(|c| ImportChunk { records: c.to_vec() }).collect();
    let header = ImportHeader {
        dataset,
        format: format as i32,
        source_name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        import_id: import_id.unwrap_or_else(|| exchange_core::digest::sha256_hex(&bytes)[..32].to_owned()),
    };
    let pb = bar(total, out, "import");
    let progress = {
        let pb = pb.clone();
        move |sent: u64| pb.set_position(sent)
    };
    let result = client.import(header, chunks, progress).await;
    pb.finish_and_clear();
    let summary = result.context("import refused; nothing of the file was kept")?;
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
    },
    /// Get a licence by number.
    Licence {
        #[command(flatten)]
        q: QueryArgs,
        /// The licence number.
        #[arg(long)]
        licence_id: String,
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
        QueryCommand::Record { q, subject, kind } => {
            prepare(client, &q)?;
            let answer = client
                .get_record(GetRecordRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    subject: Some(Subject { kind: subject_kind(&kind)?, id: subject }),
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
                })
                .await?;
            render::record_answer(&answer)
        }
        QueryCommand::Licence { q, licence_id } => {
            prepare(client, &q)?;
            let answer = client
                .get_licence(GetLicenceRequest {
                    context: q.context(),
                    dataset: q.dataset.clone(),
                    licence_id,
                    fields: list(&q.fields),
                    consent_token: q.token.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_keeps_line_numbers_and_validity() {
        let text = b"{\"a\": \"x\", \"n\": 3, \"valid_from\": \"2024-01-01\"}\n\n{\"a\": null, \"b\": true}\n";
        let records = parse_jsonl(text).expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 1);
        assert_eq!(records[0].fields.get("n").map(String::as_str), Some("3"));
        assert_eq!(records[0].valid_from, "2024-01-01");
        assert_eq!(records[1].line, 3);
        assert!(!records[1].fields.contains_key("a"));
        assert!(parse_jsonl(b"[1]\n").is_err());
    }

    #[test]
    fn csv_keeps_line_numbers_and_skips_empty_values() {
        let records = parse_csv(b"a,b,valid_until\nx,,2030-01-01\ny,z,\n").expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 2);
        assert!(!records[0].fields.contains_key("b"));
        assert_eq!(records[0].valid_until, "2030-01-01");
        assert_eq!(records[1].line, 3);
        assert!(parse_csv(b"a,b\nx\n").is_err());
    }
}
