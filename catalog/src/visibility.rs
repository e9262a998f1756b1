//! Who may read which entries of the central access log: the one rule every RPC that
//! returns entries applies (`GetInclusionProof`, `GetLogEntries`, `QueryAccessLog`,
//! `SubjectAccessView`).
//!
//! An entry is visible to its requester, its provider and auditors. A portal sees a
//! subject's entries only through the subject's own view, which selects them by the keyed
//! digest of the subject id the portal authenticated; the portal role opens nothing else.
//! Anyone else may still have the proof's hashes, which say nothing of the entry.

use exchange_proto::v1::{AccessEvent, LogEntry, Role};

use crate::service::Caller;

/// The reader of the log and what it may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// An auditor: every entry.
    Auditor,
    /// A member: the entries where it is requester or provider.
    Party(String),
    /// A portal acting for one subject: the entries of that subject digest.
    Subject {
        /// The keyed digest of the subject id.
        digest: String,
    },
}

impl Viewer {
    /// The viewer a caller is on the log's general RPCs: an auditor if it holds the role,
    /// otherwise a party to its own entries (the portal role adds nothing here).
    pub fn of(caller: &Caller) -> Self {
        if caller.has(Role::Auditor) { Viewer::Auditor } else { Viewer::Party(caller.dept.clone()) }
    }

    /// A portal's view for the subject of `digest`, as `SubjectAccessView` reads it.
    pub fn subject(digest: impl Into<String>) -> Self {
        Viewer::Subject { digest: digest.into() }
    }

    /// Whether this viewer may read `event`.
    pub fn sees(&self, event: &AccessEvent) -> bool {
        match self {
            Viewer::Auditor => true,
            Viewer::Party(dept) => !dept.is_empty() && (event.requester == *dept || event.provider == *dept),
            Viewer::Subject { digest } => !digest.is_empty() && event.subject_digest == *digest,
        }
    }

    /// The entry as this viewer may have it: whole when visible, else nothing.
    pub fn shown(&self, entry: LogEntry) -> Option<LogEntry> {
        entry.event.as_ref().is_some_and(|e| self.sees(e)).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(requester: &str, provider: &str, digest: &str) -> AccessEvent {
        AccessEvent {
            requester: requester.into(),
            provider: provider.into(),
            subject_digest: digest.into(),
            ..Default::default()
        }
    }

    #[test]
    fn parties_and_auditors_see_an_entry_and_nobody_else() {
        let e = event("gov.sz.hcb", "gov.sz.psb", "ab");
        let check = |viewer: Viewer, expected: bool| assert_eq!(viewer.sees(&e), expected, "{viewer:?}");
        check(Viewer::Auditor, true);
        check(Viewer::Party("gov.sz.hcb".into()), true);
        check(Viewer::Party("gov.sz.psb".into()), true);
        check(Viewer::Party("gov.sz.amr".into()), false);
        check(Viewer::Party(String::new()), false);
        check(Viewer::subject("ab"), true);
        check(Viewer::subject("cd"), false);
        check(Viewer::subject(""), false);
        let no_subject = event("gov.sz.hcb", "gov.sz.psb", "");
        assert!(!Viewer::subject("").sees(&no_subject), "an empty digest names no subject");
    }

    #[test]
    fn an_invisible_entry_is_not_shown() {
        let entry = LogEntry { index: 3, leaf: vec![1], event: Some(event("gov.sz.hcb", "gov.sz.psb", "")) };
        assert!(Viewer::Party("gov.sz.amr".into()).shown(entry.clone()).is_none());
        assert_eq!(Viewer::Auditor.shown(entry.clone()), Some(entry.clone()));
        assert!(Viewer::Auditor.shown(LogEntry { event: None, ..entry }).is_none());
    }
}
