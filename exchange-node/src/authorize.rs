//! The gate every Node RPC but the health check passes first, and the one authorization step
//! every query item passes before anything is read.
//!
//! [`Node::authenticate`] runs before any other work: the caller must present a certificate
//! of the federation CA (checked by TLS) naming a department that is a member of the
//! federation configuration, whose member record lists the certificate's fingerprint, and
//! which is not suspended. A caller that fails the first checks is a
//! stranger: nothing is written to the access log for it (so that a flood of anonymous calls
//! can neither fill the disk nor slow the members' group commit), it is counted in
//! [`Strangers`] and reported in the daemon's log at most once per [`STRANGER_REPORT_MS`].
//! A member's refusal (suspended, stale configuration) is written to the access log.
//!
//! [`Node::authorize`] is the order of checks of every query form and every batch item:
//! grant (dataset, purpose, fields) → consent → rate limit. Only then may the form read; an
//! unknown licence or subject therefore costs the rate limit like a known one, and a caller
//! without consent learns nothing of what the node holds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use exchange_core::ident::SubjectId;
use exchange_core::policy::{Decision, QueryScope, apply_consent, decide};
use exchange_core::token::{TokenExpectation, TokenVerifier, VerifiedConsent};
use exchange_pki::PeerIdentity;
use exchange_proto::v1::{Member, MemberStatus, ReasonCode};

use crate::error::{NodeError, Result};
use crate::fedconfig::Snapshot;
use crate::query::Prepared;
use crate::service::Node;

/// The shortest interval between two reports of refused strangers in the daemon's log.
pub const STRANGER_REPORT_MS: i64 = 60_000;

/// Calls refused before the caller was known to be a member: counted, never logged one by
/// one (neither in the access log nor in the daemon's log).
#[derive(Debug, Default)]
pub struct Strangers {
    total: AtomicU64,
    unreported: AtomicU64,
    last_report_ms: AtomicI64,
}

impl Strangers {
    /// Calls refused this way since the node started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Counts one refusal; reports the count in the daemon's log when the last report is at
    /// least [`STRANGER_REPORT_MS`] old. Returns whether this call reported.
    pub fn refused(&self, method: &str, err: &NodeError, now_ms: i64) -> bool {
        self.total.fetch_add(1, Ordering::SeqCst);
        self.unreported.fetch_add(1, Ordering::SeqCst);
        let last = self.last_report_ms.load(Ordering::SeqCst);
        if now_ms.saturating_sub(last) < STRANGER_REPORT_MS
            || self.last_report_ms.compare_exchange(last, now_ms, Ordering::SeqCst, Ordering::SeqCst).is_err()
        {
            return false;
        }
        let count = self.unreported.swap(0, Ordering::SeqCst);
        tracing::warn!(
            count,
            total = self.total(),
            last_method = method,
            last_reason = ?err.reason(),
            "calls without a member certificate refused since the last report (not written to the access log)"
        );
        true
    }
}

/// An authenticated member: who calls, under which configuration.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The department, from the certificate.
    pub dept: String,
    /// Its member record.
    pub member: Member,
    /// The configuration it was authenticated on.
    pub snap: Arc<Snapshot>,
}

/// What an item query is allowed, once grant, consent and rate limit passed.
#[derive(Debug)]
pub struct Allowed {
    /// The fields the answer may carry (requested ∩ granted ∩ consented).
    pub fields: BTreeSet<String>,
    /// The verified consent, when one was needed.
    pub consent: Option<VerifiedConsent>,
}

impl Allowed {
    /// The consent id for the log entry (empty without consent).
    pub fn consent_id(&self) -> String {
        self.consent.as_ref().map(|c| c.consent_id().to_string()).unwrap_or_default()
    }

    /// Whether the consent (if one was needed) is the subject's: a licence read by its number
    /// is bound to its holder only once it is read.
    pub fn consented_by(&self, subject: &SubjectId) -> bool {
        self.consent
            .as_ref()
            .is_none_or(|c| c.claims.sub == subject.as_str() && c.claims.sub_kind == subject.kind().as_str())
    }

    /// The subject the consent is about, when one was needed.
    pub fn consent_subject(&self) -> Option<&str> {
        self.consent.as_ref().map(|c| c.claims.sub.as_str())
    }
}

impl Node {
    /// Authenticates the caller of `method` as an active member; `fresh`: the configuration
    /// must also be recent enough to serve queries. Strangers are counted, not logged; a
    /// member's refusal is logged, under `dataset` when it is one of this node's. `now`: the
    /// request's clock reading (Unix milliseconds).
    pub(crate) async fn authenticate(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        method: &'static str,
        dataset: &str,
        fresh: bool,
        now: i64,
    ) -> Result<Caller> {
        let stranger = |err: NodeError| {
            self.strangers.refused(method, &err, now);
            Err(err)
        };
        let peer = match peer {
            Ok(p) => p,
            Err(e) => return stranger(NodeError::Unauthenticated(e)),
        };
        let Some(snap) = self.fed.current() else {
            return stranger(NodeError::Unavailable {
                reason: ReasonCode::ConfigStale,
                message: "the node holds no federation configuration yet, so it cannot tell members: retry later"
                    .into(),
            });
        };
        let Some(member) = snap.members.get(&peer.dept_id) else {
            return stranger(NodeError::UnknownMember(format!(
                "department {} is not a member of the federation: ask the operator to register it",
                peer.dept_id
            )));
        };
        // The catalog requires fingerprints of every member: a certificate not listed (an
        // old one after a replacement included) is refused from the configuration that
        // replaced it on, for queries and the department's own calls alike.
        if !member.cert_fingerprints.iter().any(|f| f[..] == peer.fingerprint[..]) {
            return stranger(NodeError::UnknownMember(format!(
                "this certificate is not registered for {}: ask the operator to add its fingerprint",
                peer.dept_id
            )));
        }
        // A member from here on: its refusals are logged.
        let member = member.clone();
        let checked = if member.status == MemberStatus::Suspended as i32 {
            Err(NodeError::denied(ReasonCode::MemberSuspended, format!("member {} is suspended", peer.dept_id)))
        } else if fresh {
            self.fed.fresh(now)
        } else {
            Ok(snap)
        };
        match checked {
            Ok(snap) => Ok(Caller { dept: peer.dept_id, member, snap }),
            Err(err) => {
                let dataset = if self.datasets.contains_key(dataset) { dataset } else { "" };
                Err(self.refuse(self.base_event(&peer.dept_id, dataset, method), err).await)
            }
        }
    }

    /// The checks of one query item, in their order: grant (dataset, purpose, fields), consent,
    /// rate limit. `subject` is the subject the request names (the consent must be its);
    /// `None` for a licence read by its number, whose holder is checked with
    /// [`Allowed::consented_by`] once read. `least`: an empty request means no field (a
    /// verdict) rather than every allowed field.
    pub(crate) fn authorize(
        &self,
        p: &Prepared,
        requested: &BTreeSet<String>,
        token: &str,
        subject: Option<&SubjectId>,
        least: bool,
    ) -> Result<Allowed> {
        let decision = self.grant(p, requested)?;
        let mut fields = decision.fields.clone();
        let mut consent = None;
        if decision.consent_needed || p.personal {
            if token.is_empty() {
                return Err(NodeError::denied(
                    ReasonCode::ConsentRequired,
                    format!(
                        "{} holds personal data (or the grant requires consent): every query needs the subject's consent token from the catalog",
                        p.dataset
                    ),
                ));
            }
            let verified = self.verify_token(p, token)?;
            // A query by licence number names no subject: the token's own is checked against
            // the licence's holder when it is read.
            let about = subject.map(SubjectId::as_str).unwrap_or(verified.claims.sub.as_str());
            let about_kind = subject.map(|s| s.kind().as_str()).unwrap_or(verified.claims.sub_kind.as_str());
            TokenVerifier::check_binding(
                &verified,
                &TokenExpectation {
                    audience: &self.dept,
                    requester: &p.requester,
                    subject: about,
                    subject_kind: about_kind,
                    dataset: &p.dataset,
                    purpose: p.purpose.as_str(),
                },
            )?;
            verified.check_not_revoked(|id| p.snap.revoked.contains(id))?;
            fields = apply_consent(&decision, requested, &verified.fields())?;
            consent = Some(verified);
        }
        if least && requested.is_empty() {
            fields.clear();
        }
        self.admit(p, &decision)?;
        Ok(Allowed { fields, consent })
    }

    fn grant(&self, p: &Prepared, requested: &BTreeSet<String>) -> Result<Decision> {
        let scope = QueryScope {
            requester: &p.requester,
            dataset: &p.dataset,
            purpose: p.purpose.as_str(),
            requested,
            now_ms: p.now_ms,
        };
        Ok(decide(p.snap.grants_for(&p.requester, &p.dataset), &p.schema, &scope)?)
    }

    fn verify_token(&self, p: &Prepared, token: &str) -> Result<VerifiedConsent> {
        let now_s = p.now_ms / 1000;
        {
            let cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((version, consent)) = cache.get(token)
                && *version == p.snap.version
                && consent.is_current(now_s)
            {
                return Ok(consent.clone());
            }
        }
        let consent = p.snap.verifier.verify_signature(token, now_s)?;
        let mut cache = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.retain(|_, (v, c)| *v == p.snap.version && c.is_current(now_s));
        }
        cache.insert(token.to_string(), (p.snap.version, consent.clone()));
        Ok(consent)
    }

    /// The grant's rate limit: every item that passed grant and consent counts, whatever it
    /// then finds.
    fn admit(&self, p: &Prepared, decision: &Decision) -> Result<()> {
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        let state = rates.entry((p.requester.clone(), decision.grant_id.clone())).or_default();
        state
            .admit(decision.rate_limit_per_minute, p.now_ms)
            .map_err(|retry_after_ms| NodeError::RateLimited { grant: decision.grant_id.clone(), retry_after_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_are_counted_and_reported_once_per_interval() {
        let s = Strangers::default();
        let err = NodeError::Unauthenticated("no certificate".into());
        let start = 10 * STRANGER_REPORT_MS;
        assert!(s.refused("get_record", &err, start), "the first refusal is reported");
        let reported = (1..1000).filter(|i| s.refused("get_record", &err, start + i)).count();
        assert_eq!(reported, 0, "no report within the interval");
        assert_eq!(s.total(), 1000);
        assert!(s.refused("get_record", &err, start + STRANGER_REPORT_MS), "one report after the interval");
        assert_eq!(s.unreported.load(Ordering::SeqCst), 0);
    }
}
