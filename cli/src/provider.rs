//! The provider's own changes, one at a time: issue, update and revoke licences, upsert base
//! records (bulk loads go through `exchange import`). Only the node's own department may make
//! them; each change is a new version, which later answers name.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use exchange_client_sdk::ExchangeClient;
use exchange_proto::v1::*;
use serde_json::json;

use crate::render::Out;

/// A record's fields: `--field name=value`, repeated.
#[derive(Args, Debug)]
pub struct Fields {
    /// A field value, `name=value`; repeat for each field of the whole record.
    #[arg(long = "field", short = 'f', value_name = "NAME=VALUE", required = true)]
    fields: Vec<String>,
}

impl Fields {
    fn parse(self) -> anyhow::Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for pair in self.fields {
            let (name, value) =
                pair.split_once('=').ok_or_else(|| anyhow!("setting --field {pair:?}: write it as name=value"))?;
            if out.insert(name.trim().to_owned(), value.to_owned()).is_some() {
                return Err(anyhow!("setting --field: {name} is given twice"));
            }
        }
        Ok(out)
    }
}

/// A licence's validity.
#[derive(Args, Debug)]
pub struct Validity {
    /// Validity start, YYYY-MM-DD.
    #[arg(long)]
    valid_from: String,
    /// Validity end, YYYY-MM-DD (none: open-ended).
    #[arg(long, default_value = "")]
    valid_until: String,
}

/// `exchange licence`.
#[derive(Subcommand, Debug)]
pub enum LicenceCommand {
    /// Issue a licence (version 1).
    Issue {
        /// The licence dataset, one of yours.
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        fields: Fields,
        #[command(flatten)]
        validity: Validity,
    },
    /// Replace a licence's fields and validity (a new version).
    Update {
        /// The licence dataset, one of yours.
        #[arg(long)]
        dataset: String,
        /// The licence number.
        licence_id: String,
        #[command(flatten)]
        fields: Fields,
        #[command(flatten)]
        validity: Validity,
        /// Refuse the change unless this is the current version (0: any).
        #[arg(long, default_value_t = 0)]
        expected_version: u64,
    },
    /// Revoke a licence (a new version, status revoked).
    Revoke {
        /// The licence dataset, one of yours.
        #[arg(long)]
        dataset: String,
        /// The licence number.
        licence_id: String,
        /// Why (kept with the licence).
        #[arg(long)]
        reason: String,
    },
}

/// `exchange record`.
#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Insert or replace one base record (a new version only when it changed).
    Upsert {
        /// The record dataset, one of yours.
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        fields: Fields,
    },
}

fn show_change(out: Out, c: &LicenceChange) {
    let status = LicenceStatus::try_from(c.status).map(|s| s.as_str_name()).unwrap_or("LICENCE_STATUS_UNSPECIFIED");
    out.show(&json!({
        "licence_id": c.licence_id,
        "version": c.version,
        "status": status.trim_start_matches("LICENCE_STATUS_").to_ascii_lowercase(),
    }));
}

/// Runs a licence command.
pub async fn licence(client: &ExchangeClient, command: LicenceCommand, out: Out) -> anyhow::Result<()> {
    let change = match command {
        LicenceCommand::Issue { dataset, fields, validity: Validity { valid_from, valid_until } } => client
            .issue_licence(IssueLicenceRequest { dataset, fields: fields.parse()?, valid_from, valid_until })
            .await
            .context("issue the licence")?,
        LicenceCommand::Update {
            dataset,
            licence_id,
            fields,
            validity: Validity { valid_from, valid_until },
            expected_version,
        } => client
            .update_licence(UpdateLicenceRequest {
                dataset,
                licence_id,
                fields: fields.parse()?,
                expected_version,
                valid_from,
                valid_until,
            })
            .await
            .context("update the licence")?,
        LicenceCommand::Revoke { dataset, licence_id, reason } => client
            .revoke_licence(RevokeLicenceRequest { dataset, licence_id, reason })
            .await
            .context("revoke the licence")?,
    };
    show_change(out, &change);
    Ok(())
}

/// Runs a record command.
pub async fn record(client: &ExchangeClient, command: RecordCommand, out: Out) -> anyhow::Result<()> {
    let RecordCommand::Upsert { dataset, fields } = command;
    let change = client
        .upsert_record(UpsertRecordRequest { dataset, fields: fields.parse()? })
        .await
        .context("upsert the record")?;
    out.show(&json!({
        "subject": change.subject.map(|s| s.id).unwrap_or_default(),
        "version": change.version,
        "changed": change.changed,
    }));
    Ok(())
}
