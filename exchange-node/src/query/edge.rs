//! The edge between the wire and the pipeline: every query request and every batch item,
//! whatever its form, is seen as an [`Ask`] (the question as the caller put it); each form
//! then parses it into domain types ([`super::Form::parse`]). Batch answers are assembled
//! here too, so that the gRPC adapter stays one line a method.

use exchange_proto::canonical;
use exchange_proto::v1::*;

use crate::error::{NodeError, Result};

/// A question as the caller asked it: the parts the forms use, borrowed from the request.
/// The pipeline signs it back in the answer ([`Ask::question`]), so an answer always says
/// what it answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// The licence number asked (licence forms by number).
    pub licence_id: &'a str,
    /// The subject asked about (records, or the holder whose licences are listed).
    pub subject: Option<&'a Subject>,
    /// The holder a verification claims.
    pub claimed_holder: Option<&'a Subject>,
    /// The claimed values of a match.
    pub claims: &'a [ClaimedValue],
    /// The version asked (0: the current one).
    pub version: u64,
    /// The fields asked.
    pub fields: &'a [String],
    /// The consent token.
    pub token: &'a str,
}

impl Ask<'_> {
    /// The subject the question names, if any: the one a refusal is logged under.
    pub fn named(&self) -> Option<&Subject> {
        self.subject.or(self.claimed_holder)
    }

    /// The question as it is signed back in the answer.
    pub fn question(&self) -> Question {
        canonical::question(self.licence_id, self.subject, self.claimed_holder, self.claims, self.version, self.fields)
    }
}

/// A query request as the pipeline sees it: the dataset, why it is asked, and its questions
/// (one for a single form, the items of a batch).
pub trait QueryRequest: Send + Sync {
    /// The dataset asked.
    fn dataset(&self) -> &str;
    /// The purpose, reason and trace id.
    fn context(&self) -> Option<&QueryContext>;
    /// Its questions, in order.
    fn questions(&self) -> Vec<Ask<'_>>;
}

macro_rules! scoped {
    ($($request:ty => |$r:ident| $questions:expr;)*) => {$(
        impl QueryRequest for $request {
            fn dataset(&self) -> &str {
                &self.dataset
            }
            fn context(&self) -> Option<&QueryContext> {
                self.context.as_ref()
            }
            fn questions(&self) -> Vec<Ask<'_>> {
                let $r = self;
                $questions
            }
        }
    )*};
}

scoped! {
    GetLicenceRequest => |r| vec![Ask { licence_id: &r.licence_id, version: r.version, fields: &r.fields, token: &r.consent_token, ..Ask::default() }];
    VerifyLicenceRequest => |r| vec![Ask { licence_id: &r.licence_id, claimed_holder: r.holder.as_ref(), fields: &r.fields, token: &r.consent_token, ..Ask::default() }];
    ListLicencesRequest => |r| vec![Ask { subject: r.holder.as_ref(), fields: &r.fields, token: &r.consent_token, ..Ask::default() }];
    GetRecordRequest => |r| vec![Ask { subject: r.subject.as_ref(), version: r.version, fields: &r.fields, token: &r.consent_token, ..Ask::default() }];
    MatchRecordRequest => |r| vec![Ask { subject: r.subject.as_ref(), claims: &r.claims, token: &r.consent_token, ..Ask::default() }];
    BatchGetLicencesRequest => |r| r.items.iter().map(|i| Ask { licence_id: &i.licence_id, fields: &i.fields, token: &i.consent_token, ..Ask::default() }).collect();
    BatchVerifyLicencesRequest => |r| r.items.iter().map(|i| Ask { licence_id: &i.licence_id, claimed_holder: i.holder.as_ref(), fields: &i.fields, token: &i.consent_token, ..Ask::default() }).collect();
    BatchListLicencesRequest => |r| r.items.iter().map(|i| Ask { subject: i.holder.as_ref(), fields: &i.fields, token: &i.consent_token, ..Ask::default() }).collect();
    BatchGetRecordsRequest => |r| r.items.iter().map(|i| Ask { subject: i.subject.as_ref(), fields: &i.fields, token: &i.consent_token, ..Ask::default() }).collect();
    BatchMatchRecordsRequest => |r| r.items.iter().map(|i| Ask { subject: i.subject.as_ref(), claims: &i.claims, token: &i.consent_token, ..Ask::default() }).collect();
}

/// A batch answer: one result per item, each an answer or the item's own refusal.
pub trait BatchReply<A>: Sized {
    /// Assembles the batch answer from the items' results, in order.
    fn reply(items: Vec<Result<A>>) -> Self;
}

macro_rules! batch_reply {
    ($($reply:ident { $item:ident: $answer:ty })*) => {$(
        impl BatchReply<$answer> for $reply {
            fn reply(items: Vec<Result<$answer>>) -> Self {
                let items = items
                    .into_iter()
                    .map(|r| match r {
                        Ok(a) => $item { status: Some(ItemStatus::default()), answer: Some(a) },
                        Err(e) => $item { status: Some(NodeError::to_item_status(&e)), answer: None },
                    })
                    .collect();
                $reply { items }
            }
        }
    )*};
}

batch_reply! {
    BatchLicenceAnswer { LicenceItemResult: LicenceAnswer }
    BatchVerifyLicenceAnswer { VerifyItemResult: VerifyLicenceAnswer }
    BatchListLicencesAnswer { ListLicencesItemResult: ListLicencesAnswer }
    BatchRecordAnswer { RecordItemResult: RecordAnswer }
    BatchMatchAnswer { MatchItemResult: MatchAnswer }
}
