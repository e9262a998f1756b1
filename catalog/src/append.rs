//! What a node may append to the central access log. A node appends only what it recorded
//! as provider about its own datasets: queries it answered or refused and changes of its own
//! data, never an administrative entry (the catalog's alone) nor an entry naming another
//! provider. Every free-text field is screened for subject ids in clear, and every field is
//! bounded.

use exchange_core::ident::DatasetId;
use exchange_proto::v1::{AccessEvent, EventKind, Outcome, ReasonCode};

use crate::error::{CatalogError, Result};
use crate::screen::no_identifier;

/// Refuses event `i` of `caller`'s batch unless it is the caller's own to write: recorder and
/// provider are the caller, the kind is QUERY or DATA_CHANGE, and a served answer or a data
/// change names a dataset of the caller. A refused query may name any dataset: it records
/// what was asked of this node.
pub fn check_own(e: &AccessEvent, i: usize, caller: &str) -> Result<()> {
    let foreign = |what: String| {
        CatalogError::ForeignEntry(format!(
            "events[{i}]: {what}: a node appends only what it recorded about its own datasets"
        ))
    };
    if e.recorder != caller {
        return Err(foreign(format!("the recorder is {}, but the caller is {caller}", e.recorder)));
    }
    if e.provider != caller {
        return Err(foreign(format!("the provider is {}, but the caller is {caller}", e.provider)));
    }
    let kind = EventKind::try_from(e.kind).unwrap_or(EventKind::Unspecified);
    if !matches!(kind, EventKind::Query | EventKind::DataChange) {
        return Err(foreign(format!("the kind is {}, not QUERY or DATA_CHANGE", kind.as_str_name())));
    }
    let refused_query = kind == EventKind::Query && e.outcome == Outcome::Refused as i32;
    if !refused_query && !e.dataset.is_empty() {
        let own = DatasetId::parse(&e.dataset).is_ok_and(|d| d.provider().as_str() == caller);
        if !own {
            return Err(foreign(format!("dataset {} is not one of {caller}'s", e.dataset)));
        }
    }
    Ok(())
}

/// Checks one event of a node's batch: no clear subject ids (a keyed digest, free text
/// screened), bounded text, known enums.
pub fn check_event(e: &AccessEvent, i: usize) -> Result<()> {
    let field = |name: &str| format!("events[{i}].{name}");
    if !e.subject_digest.is_empty()
        && (e.subject_digest.len() != 64 || !e.subject_digest.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(CatalogError::bad_request(
            field("subject_digest"),
            "must be the 64-hex-digit keyed digest of the subject, never the id itself",
        ));
    }
    if e.reason.chars().count() > 200 {
        return Err(CatalogError::InvalidArgument {
            field: field("reason"),
            message: "is longer than 200 characters".into(),
            reason: ReasonCode::ReasonInvalid,
        });
    }
    let texts = [
        ("requester", &e.requester, 64),
        ("provider", &e.provider, 64),
        ("dataset", &e.dataset, 130),
        ("action", &e.action, 64),
        ("purpose_code", &e.purpose_code, 64),
        ("consent_id", &e.consent_id, 128),
        ("trace_id", &e.trace_id, 64),
        ("note", &e.note, 512),
    ];
    for (name, value, max) in texts {
        if value.len() > max {
            return Err(CatalogError::bad_request(field(name), format!("is longer than {max} bytes")));
        }
    }
    if e.fields.len() > 256 || e.record_versions.len() > 1024 {
        return Err(CatalogError::bad_request(field("fields"), "too many fields or versions"));
    }
    no_identifier(&field("reason"), &e.reason)?;
    for (name, value, _) in texts {
        no_identifier(&field(name), value)?;
    }
    for (j, name) in e.fields.iter().enumerate() {
        no_identifier(&field(&format!("fields[{j}]")), name)?;
    }
    if !(e.answer_digest.is_empty() || e.answer_digest.len() == 32) {
        return Err(CatalogError::bad_request(field("answer_digest"), "must be empty or 32 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PSB: &str = "gov.sz.psb";

    fn own() -> AccessEvent {
        AccessEvent {
            recorder: PSB.into(),
            sequence: 1,
            kind: EventKind::Query as i32,
            requester: "gov.sz.hcb".into(),
            provider: PSB.into(),
            dataset: "gov.sz.psb/population".into(),
            action: "get_record".into(),
            outcome: Outcome::Served as i32,
            trace_id: "ZL-2026-000123".into(),
            reason: "租赁备案".into(),
            ..Default::default()
        }
    }

    fn check(change: impl FnOnce(&mut AccessEvent), expected: Option<ReasonCode>) {
        let mut e = own();
        change(&mut e);
        let got = check_own(&e, 0, PSB).and_then(|()| check_event(&e, 0));
        match (got, expected) {
            (Ok(()), None) => {}
            (Err(CatalogError::ForeignEntry(_)), Some(ReasonCode::ForeignEntry)) => {}
            (Err(CatalogError::InvalidArgument { reason, .. }), Some(r)) if reason == r => {}
            (other, expected) => panic!("got {other:?}, expected {expected:?} for {e:?}"),
        }
    }

    #[test]
    fn a_node_appends_only_its_own_entries() {
        check(|_| {}, None);
        check(|e| e.kind = EventKind::DataChange as i32, None);
        check(|e| e.recorder = "gov.sz.amr".into(), Some(ReasonCode::ForeignEntry));
        check(|e| e.provider = "gov.sz.amr".into(), Some(ReasonCode::ForeignEntry));
        check(|e| e.kind = EventKind::Admin as i32, Some(ReasonCode::ForeignEntry));
        check(|e| e.kind = EventKind::Unspecified as i32, Some(ReasonCode::ForeignEntry));
        check(|e| e.kind = 99, Some(ReasonCode::ForeignEntry));
        check(|e| e.dataset = "gov.sz.amr/business-licence".into(), Some(ReasonCode::ForeignEntry));
        check(|e| e.dataset = "not a dataset".into(), Some(ReasonCode::ForeignEntry));
        // A refusal records what was asked of this node, whatever dataset it named.
        check(
            |e| {
                e.outcome = Outcome::Refused as i32;
                e.dataset = "gov.sz.amr/business-licence".into();
            },
            None,
        );
    }

    #[test]
    fn identifiers_in_clear_are_refused_in_every_text_field() {
        const ID: &str = "11010519491231002X";
        check(|e| e.trace_id = ID.into(), Some(ReasonCode::IdentifierInClear));
        check(|e| e.reason = format!("核验{ID}"), Some(ReasonCode::IdentifierInClear));
        check(|e| e.note = ID.into(), Some(ReasonCode::IdentifierInClear));
        check(|e| e.consent_id = ID.into(), Some(ReasonCode::IdentifierInClear));
        check(|e| e.fields = vec![ID.into()], Some(ReasonCode::IdentifierInClear));
        check(|e| e.purpose_code = "91350100M000100Y43".into(), Some(ReasonCode::IdentifierInClear));
        check(|e| e.subject_digest = ID.into(), Some(ReasonCode::MalformedRequest));
        check(|e| e.subject_digest = "a".repeat(64), None);
    }
}
