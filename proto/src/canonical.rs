//! The canonical digest of every signed answer, written once for the node (which signs it)
//! and the SDK (which recomputes and verifies it). The encoding itself is
//! `exchange_core::digest::CanonicalHasher`; this module fixes which items of each answer
//! go in, and in which order. Everything the caller relies on is covered: the header (who
//! answered whom, for which dataset and purpose, when, under which log entry) and the whole
//! payload. The signature itself is, of course, not.

use exchange_core::digest::{CanonicalHasher, Digest32};

use crate::v1::{
    AnswerHeader, AnswerSignature, FieldValue, Licence, LicenceAnswer, ListLicencesAnswer, MatchAnswer, Record,
    RecordAnswer, Subject, VerifyLicenceAnswer,
};

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
    /// The canonical digest of everything in the answer but its signature.
    fn canonical_digest(&self) -> Digest32;
    /// The signature, if present.
    fn signature(&self) -> Option<&AnswerSignature>;
    /// Sets the signature.
    fn set_signature(&mut self, signature: AnswerSignature);
    /// The header, if present.
    fn header(&self) -> Option<&AnswerHeader>;
}

macro_rules! signed_answer {
    ($ty:ty, $kind:literal, |$h:ident, $a:ident| $body:block) => {
        impl SignedAnswer for $ty {
            fn canonical_digest(&self) -> Digest32 {
                let mut $h = CanonicalHasher::new($kind);
                header(&mut $h, self.header.as_ref());
                let $a = self;
                $body
                $h.finish()
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
            signature: None,
        };
        assert_ne!(licence(true).canonical_digest(), licence(false).canonical_digest());
        let mut now = licence(true);
        if let Some(l) = now.licence.as_mut() {
            l.current_status = 3;
        }
        assert_ne!(now.canonical_digest(), licence(true).canonical_digest());
        // The signature is not part of the digest.
        let mut a = answer();
        a.set_signature(AnswerSignature::default());
        assert_eq!(a.canonical_digest(), base);
    }
}
