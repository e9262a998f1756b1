//! GetLicence: a licence by its number, at its current or an earlier version. Under consent,
//! a licence the consenting subject does not hold is answered as unknown, so that one
//! subject's consent tells nothing of other subjects' licences.

use std::collections::BTreeSet;

use exchange_core::ident::{LicenceId, SubjectId};
use exchange_proto::v1::{DatasetKind, LicenceAnswer};

use super::project::{holder_of, licence_proto, requested_set};
use super::{Answered, Ask, Form, Prepared};
use crate::authorize::Allowed;
use crate::db::StoredLicence;
use crate::error::{NodeError, Result};
use crate::service::{Node, Versioned, at_version};

/// A licence asked by number.
#[derive(Debug)]
pub struct GetLicence {
    id: LicenceId,
    version: u64,
    requested: BTreeSet<String>,
}

impl Form for GetLicence {
    type Read = Option<Versioned<StoredLicence>>;
    type Answer = LicenceAnswer;
    const KIND: DatasetKind = DatasetKind::Licence;

    fn parse(_: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self> {
        Ok(Self {
            id: LicenceId::parse(asked.licence_id)
                .map_err(|e| NodeError::bad_ident(format!("{prefix}licence_id"), e))?,
            version: asked.version,
            requested: requested_set(&format!("{prefix}fields"), asked.fields)?,
        })
    }

    fn requested(&self) -> &BTreeSet<String> {
        &self.requested
    }

    fn subject(&self) -> Option<&SubjectId> {
        None
    }

    async fn read(&self, node: &Node, p: &Prepared) -> Result<Self::Read> {
        node.read_licence(&p.dataset, &self.id, self.version).await
    }

    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<LicenceAnswer>> {
        let not_found = || {
            let whose = if allowed.consent.is_some() { " held by the consenting subject" } else { "" };
            NodeError::NotFound(format!("no licence {}{}{whose} in {}", self.id, at_version(self.version), p.dataset))
        };
        let read = read.ok_or_else(not_found)?;
        let holder = holder_of(&read.row)?;
        if !allowed.consented_by(&holder) {
            return Err(not_found());
        }
        let licence =
            licence_proto(&p.schema, self.id.as_str(), &read.row, read.current.as_ref(), &allowed.fields, p.now_ms);
        Ok(Answered {
            answer: LicenceAnswer { licence: Some(licence), ..Default::default() },
            about: Some(holder),
            fields: allowed.fields.iter().cloned().collect(),
            versions: vec![read.row.version],
        })
    }
}
