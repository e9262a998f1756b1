//! GetRecord: a subject's base record (基础库), at its current or an earlier version.

use std::collections::BTreeSet;

use exchange_core::ident::SubjectId;
use exchange_proto::v1::{DatasetKind, Record, RecordAnswer};

use super::project::{field_values, requested_set};
use super::{Answered, Ask, Form, Prepared};
use crate::authorize::Allowed;
use crate::db::StoredRecord;
use crate::error::{NodeError, Result};
use crate::service::{Node, at_version, parse_subject, subject_proto};

/// A subject's record asked.
#[derive(Debug)]
pub struct GetRecord {
    subject: SubjectId,
    version: u64,
    requested: BTreeSet<String>,
}

impl Form for GetRecord {
    type Read = Option<StoredRecord>;
    type Answer = RecordAnswer;
    const KIND: DatasetKind = DatasetKind::Record;

    fn parse(_: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self> {
        Ok(Self {
            subject: parse_subject(&format!("{prefix}subject"), asked.subject)?,
            version: asked.version,
            requested: requested_set(&format!("{prefix}fields"), asked.fields)?,
        })
    }

    fn requested(&self) -> &BTreeSet<String> {
        &self.requested
    }

    fn subject(&self) -> Option<&SubjectId> {
        Some(&self.subject)
    }

    async fn read(&self, node: &Node, p: &Prepared) -> Result<Self::Read> {
        node.read_record(&p.dataset, &self.subject, self.version).await
    }

    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<RecordAnswer>> {
        let r = read.ok_or_else(|| {
            NodeError::NotFound(format!("no record for this subject{} in {}", at_version(self.version), p.dataset))
        })?;
        let record = Record {
            subject: Some(subject_proto(&self.subject)),
            version: r.version,
            fields: field_values(&r.fields, &allowed.fields),
        };
        Ok(Answered {
            fields: record.fields.iter().map(|f| f.name.clone()).collect(),
            answer: RecordAnswer { record: Some(record), ..Default::default() },
            about: Some(self.subject),
            versions: vec![r.version],
        })
    }
}
