//! The first step of every query: the caller authenticated as an active member on a fresh
//! configuration, the dataset one this node serves in the form asked, and the query context
//! (purpose, reason, trace id) parsed and screened, all once per request.

use std::sync::Arc;

use exchange_core::ident::{DatasetId, PurposeCode, Reason, TraceId, find_identifier};
use exchange_core::schema::Schema;
use exchange_pki::PeerIdentity;
use exchange_proto::v1::{AccessEvent, DatasetKind, QueryContext, ReasonCode, ShareClass};

use crate::authorize::Caller;
use crate::error::{NodeError, Result};
use crate::fedconfig::{Snapshot, now_ms};
use crate::service::Node;

/// A query checked up to its questions: who asks, in which dataset, why, on which
/// configuration, at which instant.
#[derive(Clone)]
pub struct Prepared {
    pub(crate) snap: Arc<Snapshot>,
    pub(crate) requester: String,
    pub(crate) dataset: String,
    pub(crate) schema: Arc<Schema>,
    pub(crate) purpose: PurposeCode,
    pub(crate) reason: Reason,
    pub(crate) trace: String,
    pub(crate) action: &'static str,
    /// Whether the dataset holds personal data: then every query needs consent, whatever
    /// the fields asked.
    pub(crate) personal: bool,
    /// The request's one clock reading (Unix milliseconds): grant expiry, token lifetime,
    /// rate limit, licence standing and the answer's time all use it.
    pub(crate) now_ms: i64,
}

/// What the access log holds in place of a trace id or reason refused for holding an
/// identifier in clear.
pub const IDENTIFIER_WITHHELD: &str = "[withheld: identifier in clear]";

impl Node {
    /// The checks shared by every question of a query, after the caller is authenticated as
    /// a member ([`Node::authenticate`]); on failure the refusal is logged.
    pub async fn prepare(
        &self,
        peer: std::result::Result<PeerIdentity, String>,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
    ) -> Result<Prepared> {
        let now = now_ms();
        let caller = self.authenticate(peer, action, dataset, true, now).await?;
        let mut event = self.base_event(&caller.dept, "", action);
        match self.prepare_inner(caller, action, dataset, kind, context, &mut event, now) {
            Ok(p) => Ok(p),
            Err(err) => Err(self.refuse(event, err).await),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_inner(
        &self,
        caller: Caller,
        action: &'static str,
        dataset: &str,
        kind: DatasetKind,
        context: Option<&QueryContext>,
        event: &mut AccessEvent,
        now_ms: i64,
    ) -> Result<Prepared> {
        let snap = caller.snap;
        let id = DatasetId::parse(dataset).map_err(|e| NodeError::bad_ident("dataset", e))?;
        event.dataset = id.to_string();
        let own = self.datasets.get(id.as_str()).ok_or_else(|| NodeError::Invalid {
            field: "dataset".into(),
            message: format!("dataset {id} is not served by node {}", self.dept),
            reason: ReasonCode::UnknownDataset,
        })?;
        if own.share_class == ShareClass::NotShared as i32 {
            return Err(NodeError::denied(
                ReasonCode::DatasetNotShared,
                format!("dataset {id} is classed not shared (不予共享) and is never served"),
            ));
        }
        if own.kind != kind as i32 {
            let what = if kind == DatasetKind::Licence { "licences" } else { "base records" };
            return Err(NodeError::Invalid {
                field: "dataset".into(),
                message: format!("dataset {id} does not hold {what}: use the other query form"),
                reason: ReasonCode::MalformedRequest,
            });
        }
        let schema = snap.schemas.get(&own.schema).cloned().ok_or_else(|| NodeError::Precondition {
            reason: ReasonCode::InvalidState,
            message: format!("schema {} of dataset {id} is not in the federation configuration yet", own.schema),
        })?;
        let ctx = context.ok_or_else(|| NodeError::Invalid {
            field: "context".into(),
            message: "is required: give a purpose code and a reason".into(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        // The trace id first: a refusal for a bad purpose or reason must still be findable
        // under the application's trace; but a trace id that holds a subject's identifier is
        // never logged (its entry would carry the id in clear to the central log).
        screen("context.trace_id", &ctx.trace_id, &mut event.trace_id)?;
        let trace = if ctx.trace_id.is_empty() {
            String::new()
        } else {
            TraceId::parse(&ctx.trace_id)
                .map_err(|e| NodeError::bad_request("context.trace_id", e.to_string()))?
                .to_string()
        };
        event.trace_id = trace.clone();
        let purpose = PurposeCode::parse(&ctx.purpose_code).map_err(|e| NodeError::Invalid {
            field: "context.purpose_code".into(),
            message: e.to_string(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        event.purpose_code = purpose.to_string();
        screen("context.reason", &ctx.reason, &mut event.reason)?;
        let reason = Reason::parse(&ctx.reason).map_err(|e| NodeError::Invalid {
            field: "context.reason".into(),
            message: format!("{e} (申请事由: 1 to 200 characters)"),
            reason: ReasonCode::ReasonInvalid,
        })?;
        event.reason = reason.to_string();
        let personal = own.personal_data
            || snap.datasets.get(id.as_str()).is_some_and(|d| d.personal_data)
            || schema.has_personal_data();
        Ok(Prepared {
            snap,
            requester: caller.dept,
            dataset: id.to_string(),
            schema,
            purpose,
            reason,
            trace,
            action,
            personal,
            now_ms,
        })
    }

    /// Refuses a batch that is empty or larger than the limit (after [`Node::prepare`]); the
    /// refusal is logged.
    pub async fn check_batch(&self, p: &Prepared, len: usize) -> Result<()> {
        if len == 0 || len > self.max_batch() {
            let err = NodeError::Invalid {
                field: "items".into(),
                message: format!("the batch holds {len} items; a batch holds 1 to {}", self.max_batch()),
                reason: ReasonCode::BatchTooLarge,
            };
            return Err(self.refuse(self.prepared_event(p), err).await);
        }
        Ok(())
    }
}

/// Refuses free text bound for the access log (`field` of the query context) when it holds
/// a valid resident ID or credit code; the logged copy (`logged`) is then a marker, never the
/// text, and the message names the field and the kind of identifier, never the identifier.
fn screen(field: &str, text: &str, logged: &mut String) -> Result<()> {
    match find_identifier(text) {
        None => Ok(()),
        Some((kind, at)) => {
            *logged = IDENTIFIER_WITHHELD.to_string();
            Err(NodeError::Invalid {
                field: field.into(),
                message: format!(
                    "holds {} at character {at}: subject ids never reach the access log in clear, send an opaque value instead",
                    kind.describe()
                ),
                reason: ReasonCode::IdentifierInClear,
            })
        }
    }
}
