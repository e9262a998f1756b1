//! ListLicences: the licences a holder holds in the dataset, each projected like a licence
//! asked by number.

use std::collections::BTreeSet;

use exchange_core::ident::SubjectId;
use exchange_proto::v1::{DatasetKind, Licence, ListLicencesAnswer};

use super::project::{licence_proto, requested_set};
use super::{Answered, Ask, Form, Prepared};
use crate::authorize::Allowed;
use crate::db::{LICENCES, StoredLicence, licence_key};
use crate::error::Result;
use crate::service::{Node, parse_subject, run_blocking};

/// A holder whose licences are listed.
#[derive(Debug)]
pub struct ListLicences {
    holder: SubjectId,
    requested: BTreeSet<String>,
}

impl Form for ListLicences {
    type Read = Vec<(String, StoredLicence)>;
    type Answer = ListLicencesAnswer;
    const KIND: DatasetKind = DatasetKind::Licence;

    fn parse(_: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self> {
        Ok(Self {
            holder: parse_subject(&format!("{prefix}holder"), asked.subject)?,
            requested: requested_set(&format!("{prefix}fields"), asked.fields)?,
        })
    }

    fn requested(&self) -> &BTreeSet<String> {
        &self.requested
    }

    fn subject(&self) -> Option<&SubjectId> {
        Some(&self.holder)
    }

    async fn read(&self, node: &Node, p: &Prepared) -> Result<Self::Read> {
        let db = node.db.clone();
        let dataset = p.dataset.clone();
        let holder = self.holder.clone();
        run_blocking(move || {
            let mut out = Vec::new();
            for id in db.holder_licences(&dataset, holder.kind(), holder.as_str())? {
                if let Some(l) = db.get_json::<StoredLicence>(LICENCES, &licence_key(&dataset, &id))? {
                    out.push((id, l));
                }
            }
            Ok(out)
        })
        .await
    }

    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<ListLicencesAnswer>> {
        let licences: Vec<Licence> =
            read.iter().map(|(id, l)| licence_proto(&p.schema, id, l, None, &allowed.fields, p.now_ms)).collect();
        Ok(Answered {
            answer: ListLicencesAnswer { licences, ..Default::default() },
            about: Some(self.holder),
            fields: allowed.fields.iter().cloned().collect(),
            versions: read.iter().map(|(_, l)| l.version).collect(),
        })
    }
}
