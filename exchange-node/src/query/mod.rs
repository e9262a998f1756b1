//! The one query pipeline. Every query form, single or batched, current or by version, runs
//! the same checks in the same order:
//!
//! member status and certificate ([`Node::prepare`]) → grant (dataset, purpose, fields) →
//! consent → rate limit ([`Node::authorize`]) → read → project → log → sign
//! ([`Node::serve`]).
//!
//! A form (one module each: [`get_licence`], [`verify_licence`], [`list_licences`],
//! [`get_record`], [`match_record`]) says only how its question is parsed into domain types,
//! what it reads, and what it answers ([`Form`]). The wire's questions reach the pipeline as
//! an [`Ask`], the one view of every request and batch item ([`edge`]). Because the read
//! comes after every check, a caller that fails one learns nothing of whether a licence or
//! subject exists, and an unknown id costs the rate limit like a known one.

use std::collections::BTreeSet;
use std::future::Future;

use exchange_core::ident::SubjectId;
use exchange_proto::v1::{DatasetKind, ReasonCode};

use crate::authorize::Allowed;
use crate::error::Result;
use crate::service::Node;

pub mod edge;
mod finish;
pub mod get_licence;
pub mod get_record;
pub mod list_licences;
pub mod match_record;
mod prepare;
pub(crate) mod project;
pub mod verify_licence;

#[cfg(test)]
mod tests;

pub use edge::{Ask, BatchReply, QueryRequest};
pub use finish::Answer;
pub use prepare::{IDENTIFIER_WITHHELD, Prepared};

/// One query form: how its question is parsed, what it reads, what it answers. The pipeline
/// ([`Node::serve`]) decides everything else, the same way for every form.
pub trait Form: Sized + Send + Sync {
    /// What the form reads before it answers.
    type Read: Send;
    /// Its signed answer.
    type Answer: Answer;
    /// The kind of dataset the form reads.
    const KIND: DatasetKind;
    /// Whether an empty field list asks for no field (a verdict) rather than every field
    /// the grant and consent allow.
    const LEAST: bool = false;

    /// Parses the question into domain types; `prefix` names it in errors (`items[3].`).
    fn parse(p: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<Self>;
    /// The fields asked.
    fn requested(&self) -> &BTreeSet<String>;
    /// The subject the question names, whose consent it needs; `None` when the subject is
    /// known only once read (a licence asked by its number).
    fn subject(&self) -> Option<&SubjectId>;
    /// Reads what the answer needs. Runs only after grant, consent and rate limit passed.
    fn read(&self, node: &Node, p: &Prepared) -> impl Future<Output = Result<Self::Read>> + Send;
    /// The answer with only the allowed fields, and what its log entry records.
    fn answer(self, p: &Prepared, allowed: &Allowed, read: Self::Read) -> Result<Answered<Self::Answer>>;
}

/// A form's answer before it is logged and signed, with what the log entry records of it.
#[derive(Debug)]
pub struct Answered<A> {
    /// The answer (header, question and signature are filled in by the pipeline).
    pub answer: A,
    /// Whom the answer is about (logged as a digest only), when anyone.
    pub about: Option<SubjectId>,
    /// The fields that left.
    pub fields: Vec<String>,
    /// The versions of the rows the answer was built from.
    pub versions: Vec<u64>,
}

impl Node {
    /// Runs one question of a prepared query through the pipeline. A refusal is logged, with
    /// the digest of the subject the question named (when it is a well-formed id), so that a
    /// subject's "who read my data" view also shows the attempts that were refused.
    pub async fn serve<F: Form>(&self, p: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<F::Answer> {
        match self.run_form::<F>(p, prefix, asked).await {
            Err(err) if err.reason() != ReasonCode::AccessLogUnavailable => {
                let mut event = self.prepared_event(p);
                if let Some(subject) = asked.named().and_then(|s| exchange_proto::subject::parse(Some(s)).ok()) {
                    event.subject_digest = self.subject_digest(&subject).unwrap_or_default();
                }
                Err(self.refuse(event, err).await)
            }
            other => other,
        }
    }

    /// Every question of a batch, each through the whole pipeline (each counts against the
    /// rate limit), answers in the order asked; the batch itself is refused, and logged, when
    /// it is empty or larger than the node's limit.
    ///
    /// The items run concurrently on the call's task: each is checked and read in turn up to
    /// its log write, so their entries reach the access log together and share one group
    /// commit (one disk sync) and one signature, instead of one each.
    pub async fn serve_batch<F: Form>(&self, p: &Prepared, questions: &[Ask<'_>]) -> Result<Vec<Result<F::Answer>>> {
        self.check_batch(p, questions.len()).await?;
        let prefixes: Vec<String> = (0..questions.len()).map(|i| format!("items[{i}].")).collect();
        let items = questions.iter().zip(&prefixes).map(|(asked, prefix)| self.serve::<F>(p, prefix, asked));
        Ok(futures::future::join_all(items).await)
    }

    async fn run_form<F: Form>(&self, p: &Prepared, prefix: &str, asked: &Ask<'_>) -> Result<F::Answer> {
        let form = F::parse(p, prefix, asked)?;
        let allowed = self.authorize(p, form.requested(), asked.token, form.subject(), F::LEAST)?;
        let read = form.read(self, p).await?;
        let answered = form.answer(p, &allowed, read)?;
        let event = self.served_event(p, &answered, allowed.consent_id())?;
        self.finish(p, asked.question(), answered.answer, event).await
    }
}
