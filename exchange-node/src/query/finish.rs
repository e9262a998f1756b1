//! The last steps of every answer: the header and the question filled in, the access-log
//! entry written durably (carrying the digest of header, question and answer), then the
//! signature over the group of answers committed with it (canonical form version 3: one
//! signature per group commit, each answer with its inclusion path). Nothing leaves that is
//! not logged first.

use std::sync::{Arc, Mutex, PoisonError};

use exchange_proto::canonical::SignedAnswer;
use exchange_proto::v1::{
    AccessEvent, AnswerHeader, AnswerSignature, LicenceAnswer, ListLicencesAnswer, MatchAnswer, Outcome, Question,
    RecordAnswer, VerifyLicenceAnswer,
};

use super::{Answered, Prepared};
use crate::error::{NodeError, Result};
use crate::service::Node;

/// An answer type whose header and question the pipeline fills.
pub trait Answer: SignedAnswer + Send + 'static {
    /// The header slot.
    fn header_slot(&mut self) -> &mut Option<AnswerHeader>;
    /// The slot of the question the answer repeats.
    fn question_slot(&mut self) -> &mut Option<Question>;
}

macro_rules! answer {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn header_slot(&mut self) -> &mut Option<AnswerHeader> {
                &mut self.header
            }
            fn question_slot(&mut self) -> &mut Option<Question> {
                &mut self.question
            }
        }
    )*};
}
answer!(LicenceAnswer, VerifyLicenceAnswer, ListLicencesAnswer, RecordAnswer, MatchAnswer);

/// The answer and its digest, filled in by the access-log writer once the entry is durable.
type SignedSlot<A> = Option<(A, [u8; 32])>;

impl Node {
    /// The log entry of a prepared query, before anything is known of its answer.
    pub(crate) fn prepared_event(&self, p: &Prepared) -> AccessEvent {
        let mut e = self.base_event(&p.requester, &p.dataset, p.action);
        e.time_unix_ms = p.now_ms;
        e.purpose_code = p.purpose.to_string();
        e.reason = p.reason.to_string();
        e.trace_id = p.trace.clone();
        e
    }

    /// The log entry of a served answer: whom the data was about (as a digest), which fields
    /// left, from which versions, under which consent.
    pub(crate) fn served_event<A>(
        &self,
        p: &Prepared,
        answered: &Answered<A>,
        consent_id: String,
    ) -> Result<AccessEvent> {
        let mut event = self.prepared_event(p);
        if let Some(subject) = &answered.about {
            event.subject_digest = self.subject_digest(subject)?;
        }
        event.fields = answered.fields.clone();
        event.record_versions = answered.versions.clone();
        event.consent_id = consent_id;
        Ok(event)
    }

    /// Fills the header and the question asked, writes the access-log entry durably (with
    /// the digest of header, question and answer), then signs the group of answers
    /// committed with it (once for the group) and gives the answer its path in the group.
    pub(crate) async fn finish<A: Answer>(
        &self,
        p: &Prepared,
        question: Question,
        mut answer: A,
        mut event: AccessEvent,
    ) -> Result<A> {
        *answer.question_slot() = Some(question);
        *answer.header_slot() = Some(AnswerHeader {
            node: self.dept.clone(),
            requester: p.requester.clone(),
            dataset: p.dataset.clone(),
            purpose_code: p.purpose.to_string(),
            trace_id: p.trace.clone(),
            served_at_unix_ms: p.now_ms,
            log_sequence: 0,
        });
        event.outcome = Outcome::Served as i32;
        let slot: Arc<Mutex<SignedSlot<A>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let logged = self
            .log
            .append(Box::new(move |seq| {
                if let Some(h) = answer.header_slot().as_mut() {
                    h.log_sequence = seq;
                }
                let digest = answer.canonical_digest();
                event.answer_digest = digest.to_vec();
                *out.lock().unwrap_or_else(PoisonError::into_inner) = Some((answer, digest));
                event
            }))
            .await?;
        let (mut answer, digest) = slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| NodeError::Internal("logged answer missing".into()))?;
        let (group, index) = logged.leaf.ok_or_else(|| NodeError::Internal("logged answer has no leaf".into()))?;
        let signed = group
            .signed(|tree| {
                let signer = self.signer();
                (signer.key_id.clone(), tree.sign(&self.dept, &signer.key))
            })
            .ok_or_else(|| NodeError::Internal("logged answer's group is empty".into()))?;
        let path = signed.tree.path(index).ok_or_else(|| NodeError::Internal("answer outside its group".into()))?;
        answer.set_signature(AnswerSignature {
            node: self.dept.clone(),
            key_id: signed.key_id.clone(),
            digest: digest.to_vec(),
            signature: signed.signature.to_vec(),
            group_size: signed.tree.size(),
            group_index: index,
            group_path: path.iter().map(|h| h.as_bytes().to_vec()).collect(),
        });
        Ok(answer)
    }
}
