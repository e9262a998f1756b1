//! The canonical digest of every signed answer, written once for the node (which signs it)
//! and the SDK (which recomputes and verifies it), and specified byte by byte, with test
//! vectors, in `docs/canonical-form.md` (canonical form version 2). The encoding itself is
//! `exchange_core::digest::CanonicalHasher`; this module fixes which items of each answer go
//! in, and in which order: the header (who answered whom, for which dataset and purpose,
//! when, under which log entry), the question (what was asked: licence number or subject,
//! claimed holder, digests of claimed values, version and fields asked) and the whole
//! payload. The signature itself is, of course, not.
//!
//! [`Asked`] gives the question of each request and batch item, the same way for the node,
//! which repeats it in its answer, and for the SDK, which checks that the answer repeats the
//! question it asked.

use exchange_core::digest::{CanonicalHasher, Digest32, sha256};

use crate::v1::{
    AnswerHeader, AnswerSignature, ClaimDigest, ClaimedValue, FieldValue, GetLicenceRequest, GetRecordRequest,
    HolderItem, Licence, LicenceAnswer, LicenceItem, ListLicencesAnswer, ListLicencesRequest, MatchAnswer, MatchItem,
    MatchRecordRequest, Question, Record, RecordAnswer, RecordItem, Subject, VerifyItem, VerifyLicenceAnswer,
    VerifyLicenceRequest,
};

/// The question of a query: `licence_id` (empty when the form names a subject), the
/// `subject` asked about, the `claimed_holder` of a verification, the `claims` of a match
/// (kept as digests of their values), the `version` asked and the `fields` asked (sorted,
/// without repeats).
pub fn question(
    licence_id: &str,
    subject: Option<&Subject>,
    claimed_holder: Option<&Subject>,
    claims: &[ClaimedValue],
    version: u64,
    fields: &[String],
) -> Question {
    let mut fields = fields.to_vec();
    fields.sort();
    fields.dedup();
    Question {
        licence_id: licence_id.to_string(),
        subject: subject.cloned(),
        claimed_holder: claimed_holder.cloned(),
        claims: claims
            .iter()
            .map(|c| ClaimDigest { name: c.name.clone(), value_sha256: sha256(c.value.as_bytes()).to_vec() })
            .collect(),
        version,
        fields,
    }
}

/// A request (or batch item) whose answer repeats its question.
pub trait Asked {
    /// The question, as the answer must repeat it.
    fn question(&self) -> Question;
}

impl Asked for GetLicenceRequest {
    fn question(&self) -> Question {
        question(&self.licence_id, None, None, &[], self.version, &self.fields)
    }
}

impl Asked for LicenceItem {
    fn question(&self) -> Question {
        question(&self.licence_id, None, None, &[], 0, &self.fields)
    }
}

impl Asked for VerifyLicenceRequest {
    fn question(&self) -> Question {
        question(&self.licence_id, None, self.holder.as_ref(), &[], 0, &self.fields)
    }
}

impl Asked for VerifyItem {
    fn question(&self) -> Question {
        question(&self.licence_id, None, self.holder.as_ref(), &[], 0, &self.fields)
    }
}

impl Asked for ListLicencesRequest {
    fn question(&self) -> Question {
        question("", self.holder.as_ref(), None, &[], 0, &self.fields)
    }
}

impl Asked for HolderItem {
    fn question(&self) -> Question {
        question("", self.holder.as_ref(), None, &[], 0, &self.fields)
    }
}

impl Asked for GetRecordRequest {
    fn question(&self) -> Question {
        question("", self.subject.as_ref(), None, &[], self.version, &self.fields)
    }
}

impl Asked for RecordItem {
    fn question(&self) -> Question {
        question("", self.subject.as_ref(), None, &[], 0, &self.fields)
    }
}

impl Asked for MatchRecordRequest {
    fn question(&self) -> Question {
        question("", self.subject.as_ref(), None, &self.claims, 0, &[])
    }
}

impl Asked for MatchItem {
    fn question(&self) -> Question {
        question("", self.subject.as_ref(), None, &self.claims, 0, &[])
    }
}

fn header(h: &mut CanonicalHasher, header: Option<&AnswerHeader>) {
    let empty = AnswerHeader::default();
    let a = header.unwrap_or(&empty);
    h.text("node", &a.node)
        .text("requester", &a.requester)
        .text("dataset", &a.dataset)
        .text("purpose_code", &a.purpose_code)
        .text("trace_id", &a.trace_id)
        .i64("served_at_unix_ms", a.served_at_unix_ms)
        .u64("log_sequence", a.log_sequence);
}

fn asked(h: &mut CanonicalHasher, question: Option<&Question>) {
    let empty = Question::default();
    let q = question.unwrap_or(&empty);
    h.text("licence_id", &q.licence_id);
    subject(h, "subject", q.subject.as_ref());
    subject(h, "claimed_holder", q.claimed_holder.as_ref());
    h.list("claims", q.claims.len());
    for c in &q.claims {
        h.text("name", &c.name).bytes("value_sha256", &c.value_sha256);
    }
    h.u64("version", q.version);
    h.list("fields", q.fields.len());
    for f in &q.fields {
        h.text("name", f);
    }
}

fn subject(h: &mut CanonicalHasher, label: &str, s: Option<&Subject>) {
    match s {
        Some(s) => h.list(label, 1).i64("kind", i64::from(s.kind)).text("id", &s.id),
        None => h.list(label, 0),
    };
}

fn fields(h: &mut CanonicalHasher, fields: &[FieldValue]) {
    h.list("fields", fields.len());
    for f in fields {
        h.text("name", &f.name).text("value", &f.value);
    }
}

fn licence(h: &mut CanonicalHasher, l: &Licence) {
    h.text("licence_id", &l.licence_id);
    subject(h, "holder", l.holder.as_ref());
    h.i64("status", i64::from(l.status))
        .text("valid_from", &l.valid_from)
        .text("valid_until", &l.valid_until)
        .u64("version", l.version);
    fields(h, &l.fields);
    // What the answer says of the licence now: an earlier version cannot be shown as current.
    h.u64("historical", u64::from(l.historical))
        .i64("current_status", i64::from(l.current_status))
        .u64("current_version", l.current_version);
}

fn record(h: &mut CanonicalHasher, r: &Record) {
    subject(h, "subject", r.subject.as_ref());
    h.u64("version", r.version);
    fields(h, &r.fields);
}

/// An answer that a node signs and the SDK verifies.
pub trait SignedAnswer {
    /// The canonical encoding of everything in the answer but its signature, fed to a
    /// hasher (`recording`: which also keeps the bytes).
    fn canonical_hasher(&self, recording: bool) -> CanonicalHasher;
    /// The canonical digest of everything in the answer but its signature: what the node
    /// signs and the access log holds.
    fn canonical_digest(&self) -> Digest32 {
        self.canonical_hasher(false).finish()
    }
    /// The canonical bytes whose SHA-256 is [`SignedAnswer::canonical_digest`].
    fn canonical_bytes(&self) -> Vec<u8> {
        self.canonical_hasher(true).transcript().map(<[u8]>::to_vec).unwrap_or_default()
    }
    /// The signature, if present.
    fn signature(&self) -> Option<&AnswerSignature>;
    /// Sets the signature.
    fn set_signature(&mut self, signature: AnswerSignature);
    /// The header, if present.
    fn header(&self) -> Option<&AnswerHeader>;
    /// The question the answer repeats, if present.
    fn question(&self) -> Option<&Question>;
}

macro_rules! signed_answer {
    ($ty:ty, $kind:literal, |$h:ident, $a:ident| $body:block) => {
        impl SignedAnswer for $ty {
            fn canonical_hasher(&self, recording: bool) -> CanonicalHasher {
                let mut $h = if recording { CanonicalHasher::recording($kind) } else { CanonicalHasher::new($kind) };
                header(&mut $h, self.header.as_ref());
                asked(&mut $h, self.question.as_ref());
                let $a = self;
                $body
                $h
            }
            fn signature(&self) -> Option<&AnswerSignature> {
                self.signature.as_ref()
            }
            fn set_signature(&mut self, signature: AnswerSignature) {
                self.signature = Some(signature);
            }
            fn header(&self) -> Option<&AnswerHeader> {
                self.header.as_ref()
            }
            fn question(&self) -> Option<&Question> {
                self.question.as_ref()
            }
        }
    };
}

signed_answer!(LicenceAnswer, "get_licence", |h, a| {
    match &a.licence {
        Some(l) => {
            h.list("licence", 1);
            licence(&mut h, l);
        }
        None => {
            h.list("licence", 0);
        }
    }
});

signed_answer!(VerifyLicenceAnswer, "verify_licence", |h, a| {
    h.i64("verdict", i64::from(a.verdict)).u64("version", a.version);
    fields(&mut h, &a.fields);
});

signed_answer!(ListLicencesAnswer, "list_licences", |h, a| {
    h.list("licences", a.licences.len());
    for l in &a.licences {
        licence(&mut h, l);
    }
});

signed_answer!(RecordAnswer, "get_record", |h, a| {
    match &a.record {
        Some(r) => {
            h.list("record", 1);
            record(&mut h, r);
        }
        None => {
            h.list("record", 0);
        }
    }
});

signed_answer!(MatchAnswer, "match_record", |h, a| {
    h.u64("version", a.version);
    h.list("matches", a.matches.len());
    for m in &a.matches {
        h.text("name", &m.name).i64("result", i64::from(m.result));
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> RecordAnswer {
        RecordAnswer {
            header: Some(AnswerHeader {
                node: "gov.sz.psb".into(),
                requester: "gov.sz.hcb".into(),
                dataset: "gov.sz.psb/population".into(),
                purpose_code: "SZ-HCB-ZLBA-001".into(),
                trace_id: "t-1".into(),
                served_at_unix_ms: 1,
                log_sequence: 7,
            }),
            record: Some(Record {
                subject: Some(Subject { kind: 1, id: "11010519491231002X".into() }),
                version: 3,
                fields: vec![FieldValue { name: "name".into(), value: "张三".into() }],
            }),
            signature: None,
            question: Some(question(
                "",
                Some(&Subject { kind: 1, id: "11010519491231002X".into() }),
                None,
                &[],
                0,
                &["name".into()],
            )),
        }
    }

    #[test]
    fn every_part_of_the_answer_changes_the_digest() {
        let base = answer().canonical_digest();
        let mut a = answer();
        if let Some(r) = a.record.as_mut() {
            r.fields[0].value = "李四".into();
        }
        assert_ne!(a.canonical_digest(), base);
        let mut a = answer();
        if let Some(h) = a.header.as_mut() {
            h.requester = "gov.sz.ca".into();
        }
        assert_ne!(a.canonical_digest(), base);
        let mut a = answer();
        if let Some(r) = a.record.as_mut() {
            r.version = 4;
        }
        assert_ne!(a.canonical_digest(), base);
        let mut a = answer();
        if let Some(h) = a.header.as_mut() {
            h.log_sequence = 8;
        }
        assert_ne!(a.canonical_digest(), base);
        // An earlier version cannot pass for the current one.
        let licence = |historical: bool| LicenceAnswer {
            header: None,
            licence: Some(Licence { version: 1, historical, current_version: 2, ..Default::default() }),
            ..Default::default()
        };
        assert_ne!(licence(true).canonical_digest(), licence(false).canonical_digest());
        let mut now = licence(true);
        if let Some(l) = now.licence.as_mut() {
            l.current_status = 3;
        }
        assert_ne!(now.canonical_digest(), licence(true).canonical_digest());
        // What was asked is part of the digest.
        let mut a = answer();
        if let Some(q) = a.question.as_mut() {
            q.fields.push("phone".into());
        }
        assert_ne!(a.canonical_digest(), base);
        // The signature is not part of the digest.
        let mut a = answer();
        a.set_signature(AnswerSignature::default());
        assert_eq!(a.canonical_digest(), base);
    }
    #[test]
    fn a_verdict_binds_its_licence_number_and_claimed_holder() {
        let holder = Subject { kind: 2, id: "91440300708461136T".into() };
        let verdict = |licence: &str, holder: Option<&Subject>| VerifyLicenceAnswer {
            verdict: 1,
            version: 1,
            question: Some(
                VerifyLicenceRequest { licence_id: licence.into(), holder: holder.cloned(), ..Default::default() }
                    .question(),
            ),
            ..Default::default()
        };
        let a = verdict("SZ-AMR-2026-000001", Some(&holder)).canonical_digest();
        assert_ne!(a, verdict("SZ-AMR-2026-000002", Some(&holder)).canonical_digest());
        assert_ne!(a, verdict("SZ-AMR-2026-000001", None).canonical_digest());
        // A match binds its subject and the claimed values.
        let claims = |value: &str| MatchRecordRequest {
            subject: Some(Subject { kind: 1, id: "11010519491231002X".into() }),
            claims: vec![ClaimedValue { name: "name".into(), value: value.into() }],
            ..Default::default()
        };
        let m = |q: &MatchRecordRequest| {
            MatchAnswer { question: Some(q.question()), ..Default::default() }.canonical_digest()
        };
        assert_ne!(m(&claims("张三")), m(&claims("李四")));
        // Fields asked compare as a set.
        let fields = |f: &[&str]| {
            GetRecordRequest { fields: f.iter().map(|s| s.to_string()).collect(), ..Default::default() }.question()
        };
        assert_eq!(fields(&["name", "address", "name"]), fields(&["address", "name"]));
    }
}
