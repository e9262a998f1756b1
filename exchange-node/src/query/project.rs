//! Projection: what of a stored row may leave, given the fields allowed (requested ∩
//! granted ∩ consented). The rules are written once here for every form.

use std::collections::{BTreeMap, BTreeSet};

use exchange_core::calendar::{Standing, date_cst, standing};
use exchange_core::ident::SubjectId;
use exchange_core::schema::Schema;
use exchange_proto::v1::{FieldValue, Licence, LicenceStatus, Subject};

use crate::db::{StoredLicence, StoredStatus};
use crate::error::{NodeError, Result};

/// The field names of a request, each 1 to 64 characters; `field` names the list in errors.
pub(crate) fn requested_set(field: &str, names: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() || n.len() > 64 {
            return Err(NodeError::bad_request(format!("{field}[{i}]"), "must be a field name of 1 to 64 characters"));
        }
        out.insert(n.clone());
    }
    Ok(out)
}

/// The held values of the allowed fields, in name order.
pub(crate) fn field_values(fields: &BTreeMap<String, String>, allowed: &BTreeSet<String>) -> Vec<FieldValue> {
    fields
        .iter()
        .filter(|(k, _)| allowed.contains(*k))
        .map(|(k, v)| FieldValue { name: k.clone(), value: v.clone() })
        .collect()
}

/// A licence's status on `day` (`YYYY-MM-DD`, China Standard Time).
pub(crate) fn licence_status(l: &StoredLicence, day: &str) -> LicenceStatus {
    status(standing(l.status == StoredStatus::Revoked, &l.valid_from, &l.valid_until, day))
}

/// The wire form of a licence's standing.
pub(crate) fn status(s: Standing) -> LicenceStatus {
    match s {
        Standing::Valid => LicenceStatus::Valid,
        Standing::NotYetValid => LicenceStatus::NotYetValid,
        Standing::Expired => LicenceStatus::Expired,
        Standing::Revoked => LicenceStatus::Revoked,
    }
}

/// The holder of a stored licence.
pub(crate) fn holder_of(l: &StoredLicence) -> Result<SubjectId> {
    SubjectId::parse(l.holder_kind, &l.holder_id).map_err(|e| NodeError::Internal(format!("stored holder: {e}")))
}

/// A licence projected to the allowed fields: its number and its standing (status, validity
/// dates, which the number identifies) only when the schema's key field is allowed, its
/// holder only when the schema's holder field is. `current`: the licence's current version,
/// when `l` is an earlier one; the answer is then marked historical, its status is the one
/// the version had when it was recorded, and the current status is shown beside it.
pub(crate) fn licence_proto(
    schema: &Schema,
    id: &str,
    l: &StoredLicence,
    current: Option<&StoredLicence>,
    fields: &BTreeSet<String>,
    now_ms: i64,
) -> Licence {
    let numbered = fields.contains(&schema.key_field);
    let today = date_cst(now_ms);
    let (status, current_status) = match current {
        Some(cur) => (licence_status(l, &date_cst(l.updated_at_ms)), licence_status(cur, &today)),
        None => {
            let s = licence_status(l, &today);
            (s, s)
        }
    };
    let standing = |s: LicenceStatus| if numbered { s as i32 } else { LicenceStatus::Unspecified as i32 };
    let show_holder = schema.holder_field.as_ref().is_some_and(|h| fields.contains(h));
    let shown = |s: &str| if numbered { s.to_string() } else { String::new() };
    Licence {
        licence_id: shown(id),
        holder: show_holder
            .then(|| Subject { kind: exchange_proto::subject::kind_number(l.holder_kind), id: l.holder_id.clone() }),
        status: standing(status),
        valid_from: shown(&l.valid_from),
        valid_until: shown(&l.valid_until),
        version: l.version,
        fields: field_values(&l.fields, fields),
        historical: current.is_some(),
        current_status: standing(current_status),
        current_version: current.map_or(l.version, |c| c.version),
    }
}
