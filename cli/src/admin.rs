//! Catalog administration: members, schemas, datasets, grants, consent, configuration.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use exchange_client_sdk::ExchangeClient;
use exchange_client_sdk::config::read_public_key;
use exchange_proto::v1::*;
use serde_json::{Value, json};

use crate::render::{self, Out};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn days_from_now(days: u32) -> i64 {
    now_ms() + i64::from(days) * 24 * 3600 * 1000
}

/// Splits repeated and comma-separated values.
pub fn list(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// One `--scope DATASET=FIELD,FIELD` argument.
fn consent_scope(arg: &str) -> anyhow::Result<ConsentScope> {
    let Some((dataset, fields)) = arg.split_once('=') else {
        anyhow::bail!("--scope {arg}: write DATASET=FIELD,FIELD (for example gov.sz.psb/population=name,status)");
    };
    Ok(ConsentScope { dataset: dataset.trim().to_owned(), fields: list(&[fields.to_owned()]) })
}

fn role(name: &str) -> anyhow::Result<i32> {
    Ok(match name {
        "operator" => Role::Operator,
        "department" => Role::Department,
        "portal" => Role::Portal,
        "auditor" => Role::Auditor,
        other => bail!("role {other:?} is not operator, department, portal or auditor"),
    } as i32)
}

fn fingerprints(values: &[String]) -> anyhow::Result<Vec<Vec<u8>>> {
    values
        .iter()
        .map(|v| {
            let bytes = hex::decode(v.trim()).with_context(|| format!("fingerprint {v:?} is not hex"))?;
            if bytes.len() != 32 {
                bail!("fingerprint {v:?} is not 32 bytes (64 hex characters)");
            }
            Ok(bytes)
        })
        .collect()
}

/// `exchange config`.
pub async fn show_config(client: &ExchangeClient, out: Out) -> anyhow::Result<()> {
    let view = client.refresh_config().await?;
    let c = view.config();
    out.show(&json!({
        "version": c.version,
        "issued_at": render::time(c.issued_at_unix_ms),
        "signature": "verified",
        "log_origin": c.log_origin,
        "catalog_keys": c.catalog_keys.iter().map(|k| json!({
            "key_id": k.key_id,
            "purpose": KeyPurpose::try_from(k.purpose).map(|p| p.as_str_name()).unwrap_or("KEY_PURPOSE_UNKNOWN"),
            "signing": k.signing,
        })).collect::<Vec<_>>(),
        "members": c.members.iter().map(|m| json!({
            "dept_id": m.dept_id,
            "endpoint": m.endpoint,
            "node_key_id": if m.node_signing_key.len() == 32 {
                let mut k = [0u8; 32];
                k.copy_from_slice(&m.node_signing_key);
                exchange_core::digest::key_id(&k)
            } else { String::new() },
            "status": render::member(m)["status"].clone(),
        })).collect::<Vec<_>>(),
        "grants": c.grants.len(),
        "schemas": c.schemas.iter().map(|s| s.reference.clone()).collect::<Vec<_>>(),
        "datasets": c.datasets.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        "revoked_consents": c.revoked_consents.len(),
    }));
    Ok(())
}

/// Member commands.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Register a member (operator).
    Register {
        /// Department id, e.g. `gov.sz.psb`.
        #[arg(long)]
        dept: String,
        /// Name, e.g. `深圳市公安局`.
        #[arg(long)]
        name: String,
        /// Node endpoint `https://host:port`, if it runs a node.
        #[arg(long)]
        endpoint: Option<String>,
        /// The node's Ed25519 public key: hex, or a file with it in hex or PEM.
        #[arg(long, value_name = "HEX|FILE")]
        node_key: Option<String>,
        /// Accepted certificate fingerprints (hex SHA-256, as `exchange ca issue` prints them); at
        /// least one is required.
        #[arg(long, value_name = "HEX")]
        cert_fingerprint: Vec<String>,
        /// Roles: operator, department, portal, auditor (repeat or comma-separate).
        #[arg(long, required = true)]
        role: Vec<String>,
    },
    /// Change a member (operator); options not given are unchanged.
    Update {
        /// Department id.
        #[arg(long)]
        dept: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New node endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// The node's new signing key (a rotation's switch: the key it replaces stays
        /// published until retired).
        #[arg(long, value_name = "HEX|FILE")]
        node_key: Option<String>,
        /// Publish the node's next key: its answers verify under it before it signs with it
        /// (a rotation's first step).
        #[arg(long, value_name = "HEX|FILE")]
        publish_node_key: Option<String>,
        /// Retire a published node key: answers signed with it are refused from then on (a
        /// rotation's last step).
        #[arg(long, value_name = "HEX|FILE")]
        retire_node_key: Option<String>,
        /// Replace the accepted certificate fingerprints with these.
        #[arg(long, value_name = "HEX")]
        cert_fingerprint: Vec<String>,
        /// Replace the fingerprints (at least one --cert-fingerprint is required).
        #[arg(long)]
        replace_fingerprints: bool,
        /// Replace the roles.
        #[arg(long)]
        role: Vec<String>,
    },
    /// Suspend a member (operator).
    Suspend {
        /// Department id.
        #[arg(long)]
        dept: String,
        /// Why (kept in the central log).
        #[arg(long)]
        reason: String,
    },
    /// Show one member.
    Get {
        /// Department id.
        #[arg(long)]
        dept: String,
    },
    /// List the members.
    List,
}

/// Runs a member command.
pub async fn member(client: &ExchangeClient, command: MemberCommand, out: Out) -> anyhow::Result<()> {
    let node_key = |k: Option<String>| -> anyhow::Result<Vec<u8>> {
        Ok(match k {
            Some(k) => read_public_key(&k).context("setting --node-key")?.as_bytes().to_vec(),
            None => Vec::new(),
        })
    };
    let value = match command {
        MemberCommand::Register { dept, name, endpoint, node_key: key, cert_fingerprint, role: roles } => {
            let member = Member {
                dept_id: dept,
                name,
                endpoint: endpoint.unwrap_or_default(),
                node_signing_key: node_key(key)?,
                cert_fingerprints: fingerprints(&cert_fingerprint)?,
                roles: list(&roles).iter().map(|r| role(r)).collect::<anyhow::Result<_>>()?,
                ..Default::default()
            };
            render::member(&client.register_member(member).await?)
        }
        MemberCommand::Update {
            dept,
            name,
            endpoint,
            node_key: key,
            publish_node_key,
            retire_node_key,
            cert_fingerprint,
            replace_fingerprints,
            role: roles,
        } => {
            let request = UpdateMemberRequest {
                dept_id: dept,
                name: name.unwrap_or_default(),
                endpoint: endpoint.unwrap_or_default(),
                node_signing_key: node_key(key)?,
                publish_node_key: node_key(publish_node_key)?,
                retire_node_key: node_key(retire_node_key)?,
                replace_cert_fingerprints: replace_fingerprints || !cert_fingerprint.is_empty(),
                cert_fingerprints: fingerprints(&cert_fingerprint)?,
                roles: list(&roles).iter().map(|r| role(r)).collect::<anyhow::Result<_>>()?,
            };
            render::member(&client.update_member(request).await?)
        }
        MemberCommand::Suspend { dept, reason } => render::member(&client.suspend_member(&dept, &reason).await?),
        MemberCommand::Get { dept } => render::member(&client.get_member(&dept).await?),
        MemberCommand::List => Value::Array(client.list_members().await?.iter().map(render::member).collect()),
    };
    out.show(&value);
    Ok(())
}

/// Schema commands.
#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Register a schema version from its JSON definition file (operator).
    Register {
        /// The definition (see deploy/schemas/ for examples).
        file: PathBuf,
    },
    /// Show a schema version with its definition.
    Get {
        /// The schema name, e.g. `std.licence.business` (or `name@version`).
        name: String,
        /// The version; default the latest.
        #[arg(long, default_value_t = 0)]
        version: u32,
    },
    /// List the schemas.
    List {
        /// Every version, not only the latest.
        #[arg(long)]
        all: bool,
    },
}

/// Runs a schema command.
pub async fn schema(client: &ExchangeClient, command: SchemaCommand, out: Out) -> anyhow::Result<()> {
    let value = match command {
        SchemaCommand::Register { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
            render::schema(&client.register_schema(&text).await?, false)
        }
        SchemaCommand::Get { name, version } => {
            let (name, version) = match name.split_once('@') {
                Some((n, v)) => (n.to_owned(), v.parse().with_context(|| format!("version in {name:?}"))?),
                None => (name, version),
            };
            render::schema(&client.get_schema(&name, version).await?, true)
        }
        SchemaCommand::List { all } => {
            Value::Array(client.list_schemas(all).await?.iter().map(|s| render::schema(s, false)).collect())
        }
    };
    out.show(&value);
    Ok(())
}

/// Dataset commands.
#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Publish one of your datasets (department).
    Publish {
        /// Dataset id `<your dept>/<name>`.
        #[arg(long)]
        id: String,
        /// `licence` or `record`.
        #[arg(long, value_parser = ["licence", "record"])]
        kind: String,
        /// Schema reference `<name>@<version>`.
        #[arg(long)]
        schema: String,
        /// Share class: unconditional, conditional, not-shared.
        #[arg(long, value_parser = ["unconditional", "conditional", "not-shared"])]
        share: String,
        /// Legal basis (依据).
        #[arg(long)]
        legal_basis: String,
        /// Description, Chinese.
        #[arg(long, default_value = "")]
        description_zh: String,
        /// Description, English.
        #[arg(long, default_value = "")]
        description_en: String,
        /// Update cycle, e.g. `daily`.
        #[arg(long, default_value = "")]
        update_cycle: String,
    },
    /// Show a dataset.
    Get {
        /// Dataset id.
        id: String,
    },
    /// List or search the catalog.
    List {
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Free-text search.
        #[arg(long)]
        query: Option<String>,
        /// Page size (default 100).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Page token from a previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// Runs a dataset command.
pub async fn dataset(client: &ExchangeClient, command: DatasetCommand, out: Out) -> anyhow::Result<()> {
    let value = match command {
        DatasetCommand::Publish {
            id,
            kind,
            schema,
            share,
            legal_basis,
            description_zh,
            description_en,
            update_cycle,
        } => {
            let dataset = Dataset {
                provider: id.split('/').next().unwrap_or_default().to_owned(),
                id,
                kind: if kind == "licence" { DatasetKind::Licence } else { DatasetKind::Record } as i32,
                schema,
                share_class: match share.as_str() {
                    "unconditional" => ShareClass::Unconditional,
                    "conditional" => ShareClass::Conditional,
                    _ => ShareClass::NotShared,
                } as i32,
                legal_basis,
                description_zh,
                description_en,
                update_cycle,
                ..Default::default()
            };
            render::dataset(&client.publish_dataset(dataset).await?)
        }
        DatasetCommand::Get { id } => render::dataset(&client.get_dataset(&id).await?),
        DatasetCommand::List { provider, query, page_size, page_token } => {
            let page = client
                .list_datasets(ListDatasetsRequest {
                    provider: provider.unwrap_or_default(),
                    kind: 0,
                    query: query.unwrap_or_default(),
                    page: Some(PageRequest { page_size, page_token }),
                })
                .await?;
            json!({
                "datasets": page.datasets.iter().map(render::dataset).collect::<Vec<_>>(),
                "next_page_token": page.next_page_token,
            })
        }
    };
    out.show(&value);
    Ok(())
}

/// Grant commands.
#[derive(Subcommand, Debug)]
pub enum GrantCommand {
    /// Apply for a grant on a dataset (you are the requester).
    Apply {
        /// The dataset.
        #[arg(long)]
        dataset: String,
        /// Purpose codes (service item codes); repeat or comma-separate.
        #[arg(long, required = true)]
        purpose: Vec<String>,
        /// Fields; repeat or comma-separate.
        #[arg(long, required = true)]
        fields: Vec<String>,
        /// Require a consent token on each query (forced for personal data).
        #[arg(long)]
        consent_required: bool,
        /// Queries per minute, 0 for no limit.
        #[arg(long, default_value_t = 0)]
        rate_limit: u32,
        /// Expiry in days from now; none by default.
        #[arg(long)]
        expires_days: Option<u32>,
        /// Legal basis (依据).
        #[arg(long)]
        legal_basis: String,
        /// The service item served, in words.
        #[arg(long)]
        service_item: String,
    },
    /// Approve a pending grant on one of your datasets.
    Approve {
        /// Grant id.
        id: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Reject a pending grant on one of your datasets.
    Reject {
        /// Grant id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Revoke a grant (requester or provider).
    Revoke {
        /// Grant id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List the grants you may see.
    List {
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Only this requester.
        #[arg(long)]
        requester: Option<String>,
        /// Only this status: pending, approved, rejected, revoked.
        #[arg(long, value_parser = ["pending", "approved", "rejected", "revoked"])]
        status: Option<String>,
    },
}

/// Runs a grant command.
pub async fn grant(client: &ExchangeClient, command: GrantCommand, out: Out) -> anyhow::Result<()> {
    let value = match command {
        GrantCommand::Apply {
            dataset,
            purpose,
            fields,
            consent_required,
            rate_limit,
            expires_days,
            legal_basis,
            service_item,
        } => {
            let request = ApplyGrantRequest {
                dataset,
                purposes: list(&purpose),
                fields: list(&fields),
                consent_required,
                rate_limit_per_minute: rate_limit,
                expires_at_unix_ms: expires_days.map(days_from_now).unwrap_or(0),
                legal_basis,
                service_item,
            };
            render::grant(&client.apply_grant(request).await?)
        }
        GrantCommand::Approve { id, note } => render::grant(&client.approve_grant(&id, &note).await?),
        GrantCommand::Reject { id, note } => render::grant(&client.reject_grant(&id, &note).await?),
        GrantCommand::Revoke { id, note } => render::grant(&client.revoke_grant(&id, &note).await?),
        GrantCommand::List { dataset, requester, status } => {
            let status = match status.as_deref() {
                Some("pending") => GrantStatus::Pending,
                Some("approved") => GrantStatus::Approved,
                Some("rejected") => GrantStatus::Rejected,
                Some("revoked") => GrantStatus::Revoked,
                _ => GrantStatus::Unspecified,
            } as i32;
            let grants = client
                .list_grants(ListGrantsRequest {
                    dataset: dataset.unwrap_or_default(),
                    requester: requester.unwrap_or_default(),
                    status,
                })
                .await?;
            Value::Array(grants.iter().map(render::grant).collect())
        }
    };
    out.show(&value);
    Ok(())
}

/// Subject kind names.
pub fn subject_kind(name: &str) -> anyhow::Result<i32> {
    Ok(match name {
        "person" => SubjectKind::Person,
        "organisation" | "organization" | "org" => SubjectKind::Organisation,
        other => bail!("subject kind {other:?} is not person or organisation"),
    } as i32)
}

/// Consent commands.
#[derive(Subcommand, Debug)]
// Parsed once per run: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum ConsentCommand {
    /// Record that a subject authorised a requester (portal).
    Record {
        /// The subject's resident ID or credit code.
        #[arg(long)]
        subject: String,
        /// person or organisation.
        #[arg(long, default_value = "person")]
        subject_kind: String,
        /// The requester the subject authorised.
        #[arg(long)]
        requester: String,
        /// What the subject consents to in one dataset, as `DATASET=FIELD,FIELD`; repeat for
        /// each dataset.
        #[arg(long = "scope", value_name = "DATASET=FIELDS", required_unless_present = "dataset", conflicts_with_all = ["dataset", "fields"])]
        scopes: Vec<String>,
        /// Shorthand for one list over several datasets (each field goes to the one dataset
        /// whose schema has it; a name two schemas share is refused): datasets, repeat or
        /// comma-separate.
        #[arg(long, requires = "fields")]
        dataset: Vec<String>,
        /// Fields of the shorthand; repeat or comma-separate.
        #[arg(long, requires = "dataset")]
        fields: Vec<String>,
        /// The purpose code.
        #[arg(long)]
        purpose: String,
        /// Expiry in days from now.
        #[arg(long, default_value_t = 30)]
        expires_days: u32,
        /// How: face-scan, e-signature, sms-code, written.
        #[arg(long, value_parser = ["face-scan", "e-signature", "sms-code", "written"])]
        method: String,
        /// Where: online, counter, self-service.
        #[arg(long, value_parser = ["online", "counter", "self-service"], default_value = "online")]
        channel: String,
        /// The portal's reference for the evidence.
        #[arg(long)]
        evidence_ref: String,
        /// The application the consent belongs to.
        #[arg(long, default_value = "")]
        application_id: String,
    },
    /// Get a consent token for one dataset of a consent given to you.
    Token {
        /// The consent id.
        consent_id: String,
        /// The dataset.
        #[arg(long)]
        dataset: String,
    },
    /// Revoke a consent.
    Revoke {
        /// The consent id.
        consent_id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Runs a consent command.
pub async fn consent(client: &ExchangeClient, command: ConsentCommand, out: Out) -> anyhow::Result<()> {
    let value = match command {
        ConsentCommand::Record {
            subject,
            subject_kind: kind,
            requester,
            scopes,
            dataset,
            fields,
            purpose,
            expires_days,
            method,
            channel,
            evidence_ref,
            application_id,
        } => {
            let request = RecordConsentRequest {
                subject: Some(Subject { kind: subject_kind(&kind)?, id: subject }),
                requester,
                scopes: scopes.iter().map(|s| consent_scope(s)).collect::<anyhow::Result<_>>()?,
                datasets: list(&dataset),
                fields: list(&fields),
                purpose_code: purpose,
                expires_at_unix_ms: days_from_now(expires_days),
                evidence: Some(ConsentEvidence {
                    method: match method.as_str() {
                        "face-scan" => ConsentMethod::FaceScan,
                        "e-signature" => ConsentMethod::ESignature,
                        "sms-code" => ConsentMethod::SmsCode,
                        _ => ConsentMethod::Written,
                    } as i32,
                    channel: match channel.as_str() {
                        "online" => ConsentChannel::Online,
                        "counter" => ConsentChannel::Counter,
                        _ => ConsentChannel::SelfService,
                    } as i32,
                    reference: evidence_ref,
                }),
                application_id,
            };
            render::consent(&client.record_consent(request).await?)
        }
        ConsentCommand::Token { consent_id, dataset } => {
            render::token(&client.issue_consent_token(&consent_id, &dataset).await?)
        }
        ConsentCommand::Revoke { consent_id, reason } => {
            render::consent(&client.revoke_consent(&consent_id, &reason).await?)
        }
    };
    out.show(&value);
    Ok(())
}
