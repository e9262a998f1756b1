//! MatchRecord (比对): claimed values compared with the held ones, answered MATCH, NO_MATCH
//! or ABSENT per field, never with a held value. Each field is claimed once and only
//! schema fields; the distinct values one requester tries for one subject and field are
//! bounded ([`MatchLimiter`](crate::matchlimit::MatchLimiter)) before anything is read, so
//! that a refusal says nothing of whether a value matched and matching is no search.

use std::collections::BTreeSet;

use exchange_core::ident::SubjectId;
use exchange_core::schema::{ClaimMatch, Schema};
use exchange_proto::v1::{ClaimedValue, DatasetKind, FieldMatch, MatchAnswer, MatchResult, ReasonCode};

use super::{Answered, Ask, Form, Prepared};
use crate::authorize::Allowed;
use crate::db::StoredRecord;
use crate::error::{NodeError, Result};
use crate::matchlimit::{MATCH_VALUES_PER_WINDOW, value_digest};
use crate::service::{Node, parse_subject};

/// A claim: the field, the value as claimed, and the digest of its canonical form (what the
/// match limit counts).
#[derive(Debug)]
struct Claim {
    name: String,
    value: String,
    tried: [u8; 32],
}

/// Claims about a subject.
#[derive(Debug)]
pub struct MatchRecord {
    subject: SubjectId,
    claims: Vec<Claim>,
    requested: BTreeSet<String>,
}

impl Form for MatchRecord {
    type Read = StoredRecord;
    type Answer = MatchAnswer;
    const KIND: DatasetKind = DatasetKind::Record;

    fn parse(p: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self> {
        let subject = parse_subject(&format!("{prefix}subject"), asked.subject)?;
        let requested = claimed_fields(&p.schema, prefix, asked.claims)?;
        let claims = asked
            .claims
            .iter()
            .map(|c| {
                let canonical = p.schema.canonical_claim(&c.name, &c.value).unwrap_or_else(|| c.value.clone());
                Claim { name: c.name.clone(), value: c.value.clone(), tried: value_digest(&canonical) }
            })
            .collect();
        Ok(Self { subject, claims, requested })
    }

    fn requested(&self) -> &BTreeSet<String> {
        &self.requested
    }

    fn subject(&self) -> Option<&SubjectId> {
        Some(&self.subject)
    }

    /// Admits the values tried to the match limit, then reads the record.
    async fn read(&self, node: &Node, p: &Prepared) -> Result<Self::Read> {
        let digest = node.subject_digest(&self.subject)?;
        let tried: Vec<(&str, [u8; 32])> = self.claims.iter().map(|c| (c.name.as_str(), c.tried)).collect();
        node.matches.admit(&p.requester, &digest, &tried, p.now_ms).map_err(|over| {
            NodeError::denied(
                ReasonCode::MatchLimit,
                format!(
                    "{} has tried {} distinct values of field `{}` for this subject within 24 hours, the most a requester may (a match verifies a claim, it is not a search): retry with a value tried already, or after the window",
                    p.requester, over.tried, over.field
                ),
            )
        })?;
        node.read_record(&p.dataset, &self.subject, 0)
            .await?
            .ok_or_else(|| NodeError::NotFound(format!("no record for this subject in {}", p.dataset)))
    }

    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<MatchAnswer>> {
        let matches = self
            .claims
            .iter()
            .map(|c| FieldMatch { name: c.name.clone(), result: compare(&p.schema, &read, c) as i32 })
            .collect();
        Ok(Answered {
            answer: MatchAnswer { version: read.version, matches, ..Default::default() },
            about: Some(self.subject),
            fields: allowed.fields.iter().cloned().collect(),
            versions: vec![read.version],
        })
    }
}

/// Compares a claim with the held value in canonical form, never revealing the held value.
fn compare(schema: &Schema, held: &StoredRecord, claim: &Claim) -> MatchResult {
    match schema.match_claim(&claim.name, &claim.value, held.fields.get(&claim.name).map(String::as_str)) {
        ClaimMatch::Match => MatchResult::Match,
        ClaimMatch::NoMatch => MatchResult::NoMatch,
        ClaimMatch::Absent => MatchResult::Absent,
    }
}

/// The fields of a match request's claims: at least one claim, each a field of the schema,
/// each claimed once (a second claim of a field would try a second value in one request).
fn claimed_fields(schema: &Schema, prefix: &str, claims: &[ClaimedValue]) -> Result<BTreeSet<String>> {
    if claims.is_empty() {
        return Err(NodeError::bad_request(format!("{prefix}claims"), "at least one claim is required"));
    }
    let mut out = BTreeSet::new();
    for (i, c) in claims.iter().enumerate() {
        let field = format!("{prefix}claims[{i}].name");
        if schema.field(&c.name).is_none() {
            return Err(NodeError::Invalid {
                message: format!(
                    "`{}` is not a field of schema {}",
                    c.name.chars().take(64).collect::<String>(),
                    schema.reference
                ),
                field,
                reason: ReasonCode::FieldNotInSchema,
            });
        }
        if !out.insert(c.name.clone()) {
            return Err(NodeError::bad_request(
                field,
                format!(
                    "field `{}` is claimed more than once: a match claims each field once, with one value (at most {MATCH_VALUES_PER_WINDOW} distinct values per field and subject in 24 hours)",
                    c.name
                ),
            ));
        }
    }
    Ok(out)
}
