//! Consent: a portal records a subject's consent, the consent's requester obtains short-lived
//! consent tokens from it, and a portal or the requester revokes it.

use std::collections::BTreeSet;

use exchange_core::ident::{PurposeCode, SubjectId, SubjectKind};
use exchange_core::schema::SchemaRef;
use exchange_core::token::ConsentClaims;
use exchange_proto::v1::SubjectKind as SubjectKindProto;
use exchange_proto::v1::{
    Consent, ConsentChannel, ConsentMethod, ConsentToken, IssueConsentTokenRequest, ReasonCode, RecordConsentRequest,
    RevokeConsentRequest, Role, Subject,
};

use super::validators::{dept, subject, text};
use super::{Caller, Catalog, now_ms};
use crate::db::{CONSENTS, put_msg};
use crate::error::{CatalogError, Result};
use crate::screen::no_identifier;

impl Catalog {
    /// Records a consent (portal).
    pub fn record_consent(&self, caller: &Caller, r: RecordConsentRequest) -> Result<Consent> {
        caller.require(Role::Portal)?;
        let subject_id = subject("subject", r.subject.as_ref())?;
        let requester = dept("requester", &r.requester)?;
        self.existing_member("requester", requester.as_str())?;
        if r.datasets.is_empty() {
            return Err(CatalogError::bad_request("datasets", "at least one dataset is required"));
        }
        let mut schemas = Vec::new();
        for (i, d) in r.datasets.iter().enumerate() {
            let dataset = self.existing_dataset(&format!("datasets[{i}]"), d)?;
            let reference = SchemaRef::parse(&dataset.schema)
                .map_err(|e| CatalogError::Internal(format!("stored schema ref: {e}")))?;
            schemas.push(
                self.schema(&reference)?
                    .ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?,
            );
        }
        if r.fields.is_empty() {
            return Err(CatalogError::bad_request("fields", "at least one field is required"));
        }
        for (i, f) in r.fields.iter().enumerate() {
            if !schemas.iter().any(|s| s.field(f).is_some()) {
                return Err(CatalogError::InvalidArgument {
                    field: format!("fields[{i}]"),
                    message: format!("field {f} is in none of the consented datasets' schemas"),
                    reason: ReasonCode::FieldNotInSchema,
                });
            }
        }
        let purpose = PurposeCode::parse(&r.purpose_code).map_err(|e| CatalogError::InvalidArgument {
            field: "purpose_code".into(),
            message: e.to_string(),
            reason: ReasonCode::PurposeInvalid,
        })?;
        let now = now_ms();
        if r.expires_at_unix_ms <= now {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "must be in the future"));
        }
        if r.expires_at_unix_ms > now + 366 * 24 * 3600 * 1000 {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "a consent lasts at most one year"));
        }
        let evidence = r
            .evidence
            .ok_or_else(|| CatalogError::bad_request("evidence", "is required: how did the subject authorise?"))?;
        if ConsentMethod::try_from(evidence.method).unwrap_or(ConsentMethod::Unspecified) == ConsentMethod::Unspecified
        {
            return Err(CatalogError::bad_request(
                "evidence.method",
                "must be FACE_SCAN, E_SIGNATURE, SMS_CODE or WRITTEN",
            ));
        }
        if ConsentChannel::try_from(evidence.channel).unwrap_or(ConsentChannel::Unspecified)
            == ConsentChannel::Unspecified
        {
            return Err(CatalogError::bad_request("evidence.channel", "must be ONLINE, COUNTER or SELF_SERVICE"));
        }
        text("evidence.reference", &evidence.reference, true)?;
        let application_id = text("application_id", &r.application_id, false)?;
        let id = format!("c-{}", hex_random(16));
        let consent = Consent {
            id: id.clone(),
            subject: Some(Subject {
                kind: match subject_id.kind() {
                    SubjectKind::Person => SubjectKindProto::Person as i32,
                    SubjectKind::Organisation => SubjectKindProto::Organisation as i32,
                },
                id: subject_id.as_str().to_string(),
            }),
            requester: requester.to_string(),
            datasets: r.datasets.clone(),
            fields: r.fields.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect(),
            purpose_code: purpose.to_string(),
            expires_at_unix_ms: r.expires_at_unix_ms,
            evidence: Some(evidence),
            application_id,
            recorded_by: caller.dept.clone(),
            recorded_at_unix_ms: now,
            revoked_at_unix_ms: 0,
        };
        let mut event = self.admin_event(requester.as_str(), "consent.record", "", "", &id);
        event.subject_digest = self.subject_digest(&subject_id);
        event.purpose_code = consent.purpose_code.clone();
        let _w = self.lock();
        self.mutate(vec![event], false, |b| {
            put_msg(b, CONSENTS, id.as_bytes().to_vec(), &consent);
            Ok(())
        })?;
        Ok(consent)
    }

    pub(super) fn subject_digest(&self, s: &SubjectId) -> String {
        self.digester.digest(s.kind().as_str(), s.as_str())
    }

    /// Issues a consent token (department; only the consent's requester).
    pub fn issue_consent_token(&self, caller: &Caller, r: &IssueConsentTokenRequest) -> Result<ConsentToken> {
        caller.require(Role::Department)?;
        if r.consent_id.is_empty() {
            return Err(CatalogError::bad_request("consent_id", "is required"));
        }
        let consent: Consent = self
            .db
            .get(CONSENTS, r.consent_id.as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("consent {} does not exist", r.consent_id)))?;
        if consent.requester != caller.dept {
            return Err(CatalogError::Forbidden(format!("consent {} was given to another requester", consent.id)));
        }
        if consent.revoked_at_unix_ms != 0 {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentRevoked,
                format!("consent {} was revoked", consent.id),
            ));
        }
        let now = now_ms();
        if consent.expires_at_unix_ms <= now {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentTokenExpired,
                format!("consent {} has expired", consent.id),
            ));
        }
        let dataset = self.existing_dataset("dataset", &r.dataset)?;
        if !consent.datasets.contains(&dataset.id) {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentWrongDataset,
                format!("consent {} does not cover dataset {}", consent.id, dataset.id),
            ));
        }
        // A consent may cover several datasets with one list of fields; a token for one
        // dataset carries only the consented fields of that dataset's schema, so that a field
        // of the same name in another dataset is never consented by accident.
        let reference =
            SchemaRef::parse(&dataset.schema).map_err(|e| CatalogError::Internal(format!("stored schema ref: {e}")))?;
        let schema =
            self.schema(&reference)?.ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?;
        let fields: Vec<String> = consent.fields.iter().filter(|f| schema.field(f).is_some()).cloned().collect();
        if fields.is_empty() {
            return Err(CatalogError::precondition(
                ReasonCode::FieldNotConsented,
                format!("consent {} covers no field of dataset {}", consent.id, dataset.id),
            ));
        }
        let subject = consent.subject.clone().unwrap_or_default();
        let kind = if subject.kind == SubjectKindProto::Organisation as i32 { "organisation" } else { "person" };
        let now_s = now / 1000;
        let exp = (now_s + self.settings.token_lifetime_secs).min(consent.expires_at_unix_ms / 1000);
        let claims = ConsentClaims {
            iss: self.settings.log_origin.clone(),
            aud: dataset.provider.clone(),
            sub: subject.id,
            sub_kind: kind.into(),
            req: consent.requester.clone(),
            ds: dataset.id.clone(),
            fld: fields,
            pur: consent.purpose_code.clone(),
            iat: now_s,
            nbf: now_s,
            exp,
            jti: consent.id.clone(),
        };
        let token =
            self.signers().token.issue(claims).map_err(|e| CatalogError::Internal(format!("issue token: {e}")))?;
        Ok(ConsentToken { token, expires_at_unix_ms: exp * 1000, consent_id: consent.id })
    }

    /// Revokes a consent (a portal, or the consent's requester).
    pub fn revoke_consent(&self, caller: &Caller, r: &RevokeConsentRequest) -> Result<Consent> {
        let reason = text("reason", &r.reason, false)?;
        // The reason goes into the entry that records the revocation.
        no_identifier("reason", &reason)?;
        if r.consent_id.is_empty() {
            return Err(CatalogError::bad_request("consent_id", "is required"));
        }
        let _w = self.lock();
        let mut consent: Consent = self
            .db
            .get(CONSENTS, r.consent_id.as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("consent {} does not exist", r.consent_id)))?;
        if !caller.has(Role::Portal) && consent.requester != caller.dept {
            return Err(CatalogError::RoleRequired { needed: "portal", caller: caller.dept.clone() });
        }
        if consent.revoked_at_unix_ms != 0 {
            // A retry: published if the first call's publication failed.
            self.publish_pending()?;
            return Ok(consent);
        }
        consent.revoked_at_unix_ms = now_ms();
        let subject_id = subject("subject", consent.subject.as_ref())?;
        let mut event = self.admin_event(&caller.dept, "consent.revoke", "", "", &consent.id);
        event.subject_digest = self.subject_digest(&subject_id);
        if !reason.is_empty() {
            event.reason = reason;
        }
        self.mutate(vec![event], true, |b| {
            put_msg(b, CONSENTS, consent.id.as_bytes().to_vec(), &consent);
            Ok(())
        })?;
        Ok(consent)
    }
}

fn hex_random(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
