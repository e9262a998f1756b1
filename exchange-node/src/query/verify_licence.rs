//! VerifyLicence (核验): the verdict on a licence number, and on its holder when one is
//! claimed, plus only the asked-for allowed fields. An unknown licence is a verdict
//! (UNKNOWN), served and logged, and costs the rate limit like a known one. Under consent
//! without a claimed holder, the consenting subject is the claimed holder.

use std::collections::BTreeSet;

use exchange_core::calendar::date_cst;
use exchange_core::ident::{LicenceId, SubjectId};
use exchange_proto::v1::{DatasetKind, LicenceStatus, Verdict, VerifyLicenceAnswer};

use super::project::{field_values, holder_of, licence_status, requested_set};
use super::{Answered, Ask, Form, Prepared};
use crate::authorize::Allowed;
use crate::db::StoredLicence;
use crate::error::{NodeError, Result};
use crate::service::{Node, parse_subject};

/// A licence number to verify, with the holder claimed.
#[derive(Debug)]
pub struct VerifyLicence {
    id: LicenceId,
    claimed: Option<SubjectId>,
    requested: BTreeSet<String>,
}

impl Form for VerifyLicence {
    type Read = Option<StoredLicence>;
    type Answer = VerifyLicenceAnswer;
    const KIND: DatasetKind = DatasetKind::Licence;
    const LEAST: bool = true;

    fn parse(_: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self> {
        Ok(Self {
            id: LicenceId::parse(asked.licence_id)
                .map_err(|e| NodeError::bad_ident(format!("{prefix}licence_id"), e))?,
            claimed: match asked.claimed_holder {
                Some(h) => Some(parse_subject(&format!("{prefix}holder"), Some(h))?),
                None => None,
            },
            requested: requested_set(&format!("{prefix}fields"), asked.fields)?,
        })
    }

    fn requested(&self) -> &BTreeSet<String> {
        &self.requested
    }

    fn subject(&self) -> Option<&SubjectId> {
        self.claimed.as_ref()
    }

    async fn read(&self, node: &Node, p: &Prepared) -> Result<Self::Read> {
        Ok(node.read_licence(&p.dataset, &self.id, 0).await?.map(|v| v.row))
    }

    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<VerifyLicenceAnswer>> {
        let Some(l) = read else {
            return Ok(Answered {
                answer: VerifyLicenceAnswer { verdict: Verdict::Unknown as i32, ..Default::default() },
                about: self.claimed,
                fields: Vec::new(),
                versions: Vec::new(),
            });
        };
        let holder = holder_of(&l)?;
        let mismatch = self.claimed.as_ref().is_some_and(|c| c != &holder)
            || allowed.consent_subject().is_some_and(|s| s != holder.as_str());
        let verdict = if mismatch {
            Verdict::HolderMismatch
        } else {
            match licence_status(&l, &date_cst(p.now_ms)) {
                LicenceStatus::Revoked => Verdict::Revoked,
                LicenceStatus::Expired => Verdict::Expired,
                LicenceStatus::NotYetValid => Verdict::NotYetValid,
                LicenceStatus::Valid | LicenceStatus::Unspecified => Verdict::Valid,
            }
        };
        let fields = if mismatch { Vec::new() } else { field_values(&l.fields, &allowed.fields) };
        // A mismatch is logged under the claimed subject: the holder was not read.
        let about = match self.claimed {
            Some(c) if mismatch => c,
            _ => holder,
        };
        Ok(Answered {
            fields: fields.iter().map(|f| f.name.clone()).collect(),
            answer: VerifyLicenceAnswer { verdict: verdict as i32, version: l.version, fields, ..Default::default() },
            about: Some(about),
            versions: vec![l.version],
        })
    }
}
