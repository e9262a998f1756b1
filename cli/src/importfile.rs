//! Reading an import file as a stream of records, so that a file of any size is sent in
//! bounded memory: JSON Lines line by line, CSV row by row, each record with its 1-based line
//! number (what the node quotes when it refuses one).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, bail};
use exchange_proto::v1::{ImportFormat, ImportRecord};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The format of a file, from its extension.
pub fn format_of(path: &Path) -> anyhow::Result<ImportFormat> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" | "json" => Ok(ImportFormat::JsonLines),
        "csv" => Ok(ImportFormat::Csv),
        other => bail!("{}: unknown format {other:?}: use a .jsonl or .csv file", path.display()),
    }
}

/// One pass over the file: its SHA-256 (hex) and its number of lines, read in blocks.
pub fn fingerprint(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut lines = 0u64;
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
        lines += block[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((hex::encode(hasher.finalize()), lines))
}

/// The records of a file, read as they are consumed.
pub fn records(path: &Path) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<ImportRecord>> + Send>> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    Ok(match format_of(path)? {
        ImportFormat::Csv => Box::new(csv_records(BufReader::new(file))?),
        _ => Box::new(jsonl_records(BufReader::new(file))),
    })
}

fn record(line: u64, mut fields: HashMap<String, String>) -> ImportRecord {
    let valid_from = fields.remove("valid_from").unwrap_or_default();
    let valid_until = fields.remove("valid_until").unwrap_or_default();
    ImportRecord { line, fields, valid_from, valid_until }
}

/// JSON Lines: one object per line, blank lines skipped, scalar values as text.
pub fn jsonl_records(reader: impl BufRead + Send) -> impl Iterator<Item = anyhow::Result<ImportRecord>> + Send {
    (1u64..).zip(reader.lines()).filter_map(|(n, line)| {
        let line = match line {
            Ok(line) => line,
            Err(e) => return Some(Err(anyhow::anyhow!("line {n}: {e} (the file must be UTF-8)"))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(jsonl_record(n, &line))
    })
}

fn jsonl_record(n: u64, line: &str) -> anyhow::Result<ImportRecord> {
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
    Ok(record(n, fields))
}

/// CSV with a header row; empty cells are absent fields.
pub fn csv_records(
    reader: impl Read + Send + 'static,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<ImportRecord>> + Send> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(reader);
    let headers: Vec<String> =
        reader.headers().context("read the CSV header row")?.iter().map(|h| h.trim().to_owned()).collect();
    Ok(reader.into_records().map(move |row| {
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
        Ok(record(line, fields))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_keeps_line_numbers_and_validity() {
        let text: &[u8] = b"{\"a\": \"x\", \"n\": 3, \"valid_from\": \"2024-01-01\"}\n\n{\"a\": null, \"b\": true}\n";
        let records: Vec<ImportRecord> = jsonl_records(text).collect::<anyhow::Result<_>>().expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 1);
        assert_eq!(records[0].fields.get("n").map(String::as_str), Some("3"));
        assert_eq!(records[0].valid_from, "2024-01-01");
        assert_eq!(records[1].line, 3);
        assert!(!records[1].fields.contains_key("a"));
        let bad: &[u8] = b"{}\n[1]\n";
        let error = jsonl_records(bad).find_map(Result::err).expect("an error");
        assert!(error.to_string().starts_with("line 2:"), "{error}");
    }

    #[test]
    fn csv_keeps_line_numbers_and_skips_empty_values() {
        let records: Vec<ImportRecord> = csv_records(&b"a,b,valid_until\nx,,2030-01-01\ny,z,\n"[..])
            .expect("header")
            .collect::<anyhow::Result<_>>()
            .expect("parse");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 2);
        assert!(!records[0].fields.contains_key("b"));
        assert_eq!(records[0].valid_until, "2030-01-01");
        assert_eq!(records[1].line, 3);
        let error = csv_records(&b"a,b\nx,y\nz\n"[..]).expect("header").find_map(Result::err).expect("an error");
        assert!(error.to_string().starts_with("line 3:"), "{error}");
    }

    #[test]
    fn the_fingerprint_reads_the_file_in_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.jsonl");
        let text = "{\"a\":1}\n".repeat(20_000);
        std::fs::write(&path, &text).expect("write");
        let (hash, lines) = fingerprint(&path).expect("fingerprint");
        assert_eq!(lines, 20_000);
        assert_eq!(hash, hex::encode(Sha256::digest(text.as_bytes())));
    }
}
