//! Output: every result is built as JSON once; `--json` prints it as is, the default prints
//! it for people.

use exchange_client_sdk::Verified;
use exchange_client_sdk::log::AuditReport;
use exchange_core::checkpoint::Checkpoint;
use exchange_proto::canonical::SignedAnswer;
use exchange_proto::v1::*;
use serde_json::{Map, Value, json};

/// How results are printed.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints one result.
    pub fn show(&self, value: &Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            let mut text = String::new();
            human(value, 0, &mut text);
            print!("{text}");
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(if s.is_empty() { "-".into() } else { s.clone() }),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            Some(if a.is_empty() { "-".into() } else { a.iter().filter_map(scalar).collect::<Vec<_>>().join(", ") })
        }
        _ => None,
    }
}

fn human(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match scalar(v) {
                    Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        human(v, indent + 1, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str(&format!("{pad}(none)\n"));
            }
            for (i, item) in items.iter().enumerate() {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}[{i}]\n"));
                        human(item, indent + 1, out);
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
    }
}

/// The short lowercase name of a proto enum value, e.g. `ROLE_OPERATOR` → `operator`.
macro_rules! name {
    ($ty:ty, $value:expr, $prefix:literal) => {
        <$ty>::try_from($value)
            .map(|v| v.as_str_name().strip_prefix($prefix).unwrap_or(v.as_str_name()).to_ascii_lowercase())
            .unwrap_or_else(|_| format!("unknown({})", $value))
    };
}

/// Time in ms as RFC 3339 UTC, `-` for 0.
pub fn time(ms: i64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    match exchange_pki::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => Value::String(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )),
        Err(_) => json!(ms),
    }
}

pub fn subject(s: Option<&Subject>) -> Value {
    match s {
        Some(s) => json!({ "kind": name!(SubjectKind, s.kind, "SUBJECT_KIND_"), "id": s.id }),
        None => Value::Null,
    }
}

pub fn member(m: &Member) -> Value {
    json!({
        "dept_id": m.dept_id,
        "name": m.name,
        "endpoint": m.endpoint,
        "node_signing_key": hex::encode(&m.node_signing_key),
        "node_published_keys": m.node_published_keys.iter().map(hex::encode).collect::<Vec<_>>(),
        "cert_fingerprints": m.cert_fingerprints.iter().map(hex::encode).collect::<Vec<_>>(),
        "roles": m.roles.iter().map(|r| name!(Role, *r, "ROLE_")).collect::<Vec<_>>(),
        "status": name!(MemberStatus, m.status, "MEMBER_STATUS_"),
        "created_at": time(m.created_at_unix_ms),
        "updated_at": time(m.updated_at_unix_ms),
    })
}

pub fn schema(s: &SchemaVersion, with_definition: bool) -> Value {
    let mut v = json!({
        "reference": s.reference,
        "digest": s.digest,
        "registered_at": time(s.registered_at_unix_ms),
    });
    if with_definition && let Value::Object(map) = &mut v {
        map.insert(
            "definition".into(),
            serde_json::from_str(&s.definition_json).unwrap_or(Value::String(s.definition_json.clone())),
        );
    }
    v
}

pub fn dataset(d: &Dataset) -> Value {
    json!({
        "id": d.id,
        "provider": d.provider,
        "kind": name!(DatasetKind, d.kind, "DATASET_KIND_"),
        "schema": d.schema,
        "share_class": name!(ShareClass, d.share_class, "SHARE_CLASS_"),
        "legal_basis": d.legal_basis,
        "description_zh": d.description_zh,
        "description_en": d.description_en,
        "update_cycle": d.update_cycle,
        "record_count": d.record_count,
        "personal_data": d.personal_data,
        "last_updated": time(d.last_updated_unix_ms),
        "published_at": time(d.published_at_unix_ms),
    })
}

pub fn grant(g: &Grant) -> Value {
    json!({
        "id": g.id,
        "requester": g.requester,
        "dataset": g.dataset,
        "purposes": g.purposes,
        "fields": g.fields,
        "consent_required": g.consent_required,
        "rate_limit_per_minute": g.rate_limit_per_minute,
        "expires_at": time(g.expires_at_unix_ms),
        "legal_basis": g.legal_basis,
        "service_item": g.service_item,
        "status": name!(GrantStatus, g.status, "GRANT_STATUS_"),
        "created_at": time(g.created_at_unix_ms),
        "decided_at": time(g.decided_at_unix_ms),
        "decision_note": g.decision_note,
    })
}

pub fn consent(c: &Consent) -> Value {
    let evidence = c.evidence.clone().unwrap_or_default();
    json!({
        "id": c.id,
        "subject": subject(c.subject.as_ref()),
        "requester": c.requester,
        "datasets": c.datasets,
        "fields": c.fields,
        "scopes": c.scopes.iter().map(|s| json!({ "dataset": s.dataset, "fields": s.fields })).collect::<Vec<_>>(),
        "purpose_code": c.purpose_code,
        "expires_at": time(c.expires_at_unix_ms),
        "evidence": {
            "method": name!(ConsentMethod, evidence.method, "CONSENT_METHOD_"),
            "channel": name!(ConsentChannel, evidence.channel, "CONSENT_CHANNEL_"),
            "reference": evidence.reference,
        },
        "application_id": c.application_id,
        "recorded_by": c.recorded_by,
        "recorded_at": time(c.recorded_at_unix_ms),
        "revoked_at": time(c.revoked_at_unix_ms),
    })
}

pub fn token(t: &ConsentToken) -> Value {
    json!({ "consent_id": t.consent_id, "expires_at": time(t.expires_at_unix_ms), "token": t.token })
}

pub fn event(e: &AccessEvent) -> Value {
    json!({
        "recorder": e.recorder,
        "sequence": e.sequence,
        "time": time(e.time_unix_ms),
        "kind": name!(EventKind, e.kind, "EVENT_KIND_"),
        "requester": e.requester,
        "provider": e.provider,
        "dataset": e.dataset,
        "action": e.action,
        "purpose_code": e.purpose_code,
        "reason": e.reason,
        "subject_digest": e.subject_digest,
        "fields": e.fields,
        "consent_id": e.consent_id,
        "trace_id": e.trace_id,
        "outcome": name!(Outcome, e.outcome, "OUTCOME_"),
        "reason_code": name!(ReasonCode, e.reason_code, "REASON_CODE_"),
        "answer_digest": hex::encode(&e.answer_digest),
        "note": e.note,
    })
}

pub fn entry(e: &LogEntry) -> Value {
    json!({ "index": e.index, "event": e.event.as_ref().map(event).unwrap_or(Value::Null) })
}

pub fn checkpoint(c: &Checkpoint) -> Value {
    json!({ "origin": c.origin(), "size": c.size(), "root": c.root().to_hex(), "signature": "verified" })
}

pub fn audit_report(r: &AuditReport) -> Value {
    json!({
        "ok": r.is_ok(),
        "tree_size": r.tree_size,
        "signed_root": r.root.to_hex(),
        "recomputed_root": r.recomputed_root.to_hex(),
        "entries_checked": r.entries_checked,
        "first_bad_index": r.first_bad_index,
        "problem": r.problem,
    })
}

fn fields(fields: &[FieldValue]) -> Value {
    let mut map = Map::new();
    for f in fields {
        map.insert(f.name.clone(), Value::String(f.value.clone()));
    }
    Value::Object(map)
}

fn licence(l: &Licence) -> Value {
    json!({
        "licence_id": l.licence_id,
        "holder": subject(l.holder.as_ref()),
        "status": name!(LicenceStatus, l.status, "LICENCE_STATUS_"),
        "valid_from": l.valid_from,
        "valid_until": l.valid_until,
        "version": l.version,
        "fields": fields(&l.fields),
        "historical": l.historical,
        "current_status": name!(LicenceStatus, l.current_status, "LICENCE_STATUS_"),
        "current_version": l.current_version,
    })
}

fn header(h: Option<&AnswerHeader>) -> Value {
    let h = h.cloned().unwrap_or_default();
    json!({
        "node": h.node,
        "requester": h.requester,
        "dataset": h.dataset,
        "purpose_code": h.purpose_code,
        "trace_id": h.trace_id,
        "served_at": time(h.served_at_unix_ms),
        "log_sequence": h.log_sequence,
    })
}

fn signed<A: SignedAnswer>(v: &Verified<A>, body: (&str, Value)) -> Value {
    let mut map = Map::new();
    map.insert(
        "signature".into(),
        json!({ "verdict": "verified", "node": v.node(), "key_id": v.key_id(), "digest": hex::encode(v.digest()) }),
    );
    map.insert("header".into(), header(v.answer().header()));
    map.insert(body.0.into(), body.1);
    Value::Object(map)
}

pub fn record_answer(v: &Verified<RecordAnswer>) -> Value {
    let record = v
        .record
        .as_ref()
        .map(|r| json!({ "subject": subject(r.subject.as_ref()), "version": r.version, "fields": fields(&r.fields) }));
    signed(v, ("record", record.unwrap_or(Value::Null)))
}

pub fn licence_answer(v: &Verified<LicenceAnswer>) -> Value {
    signed(v, ("licence", v.licence.as_ref().map(licence).unwrap_or(Value::Null)))
}

pub fn verify_answer(v: &Verified<VerifyLicenceAnswer>) -> Value {
    signed(
        v,
        (
            "verification",
            json!({
                "verdict": name!(Verdict, v.verdict, "VERDICT_"),
                "version": v.version,
                "fields": fields(&v.fields),
            }),
        ),
    )
}

pub fn list_answer(v: &Verified<ListLicencesAnswer>) -> Value {
    signed(v, ("licences", Value::Array(v.licences.iter().map(licence).collect())))
}

pub fn match_answer(v: &Verified<MatchAnswer>) -> Value {
    let mut results = Map::new();
    for m in &v.matches {
        results.insert(m.name.clone(), Value::String(name!(MatchResult, m.result, "MATCH_RESULT_")));
    }
    signed(v, ("match", json!({ "version": v.version, "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_output_is_indented_key_values() {
        let mut out = String::new();
        human(&json!({"a": 1, "b": {"c": "x"}, "d": ["p", "q"]}), 0, &mut out);
        assert_eq!(out, "a: 1\nb:\n  c: x\nd: p, q\n");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(time(0), Value::Null);
        assert_eq!(time(1_700_000_000_123), json!("2023-11-14T22:13:20.123Z"));
    }
}
