//! Consent: a portal records a subject's consent, the consent's requester obtains short-lived
//! consent tokens from it, and a portal or the requester revokes it.

use std::collections::BTreeSet;

use exchange_core::ident::{PurposeCode, SubjectId, SubjectKind};
use exchange_core::schema::{Schema, SchemaRef};
use exchange_core::token::ConsentClaims;
use exchange_proto::v1::SubjectKind as SubjectKindProto;
use exchange_proto::v1::{
    Consent, ConsentChannel, ConsentMethod, ConsentScope, ConsentToken, Dataset, IssueConsentTokenRequest, ReasonCode,
    RecordConsentRequest, RevokeConsentRequest, Role, Subject,
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
        let scopes = self.consent_scopes(&r)?;
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
            datasets: scopes.iter().map(|s| s.dataset.clone()).collect(),
            fields: scopes.iter().flat_map(|s| s.fields.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect(),
            purpose_code: purpose.to_string(),
            expires_at_unix_ms: r.expires_at_unix_ms,
            evidence: Some(evidence),
            application_id,
            recorded_by: caller.dept.clone(),
            recorded_at_unix_ms: now,
            revoked_at_unix_ms: 0,
            scopes,
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

    /// What a consent request covers, dataset by dataset, from its `scopes` or from the
    /// `datasets` + `fields` shorthand; every dataset exists and every field is its schema's.
    fn consent_scopes(&self, r: &RecordConsentRequest) -> Result<Vec<ConsentScope>> {
        let shorthand = !r.datasets.is_empty() || !r.fields.is_empty();
        if shorthand && !r.scopes.is_empty() {
            return Err(CatalogError::bad_request(
                "scopes",
                "give either scopes or the datasets and fields shorthand, not both",
            ));
        }
        let scopes = if shorthand { self.scopes_of_shorthand(r)? } else { r.scopes.clone() };
        if scopes.is_empty() {
            return Err(CatalogError::bad_request("scopes", "at least one dataset and its fields are required"));
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(scopes.len());
        for (i, scope) in scopes.into_iter().enumerate() {
            let (dataset, schema) = self.dataset_schema(&format!("scopes[{i}].dataset"), &scope.dataset)?;
            if !seen.insert(dataset.id.clone()) {
                return Err(CatalogError::bad_request(
                    format!("scopes[{i}].dataset"),
                    format!("dataset {} is given twice: list all its fields in one scope", dataset.id),
                ));
            }
            if scope.fields.is_empty() {
                return Err(CatalogError::bad_request(
                    format!("scopes[{i}].fields"),
                    format!("name at least one field of dataset {}", dataset.id),
                ));
            }
            for (j, f) in scope.fields.iter().enumerate() {
                if schema.field(f).is_none() {
                    return Err(CatalogError::InvalidArgument {
                        field: format!("scopes[{i}].fields[{j}]"),
                        message: format!("field {f} is not in the schema of dataset {}", dataset.id),
                        reason: ReasonCode::FieldNotInSchema,
                    });
                }
            }
            let fields = scope.fields.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
            out.push(ConsentScope { dataset: dataset.id, fields });
        }
        Ok(out)
    }

    /// The shorthand read as scopes: each field goes to the one listed dataset whose schema
    /// has it. A name two listed schemas share (`address`, `status`) is refused: the subject's
    /// consent must say which dataset's it is.
    fn scopes_of_shorthand(&self, r: &RecordConsentRequest) -> Result<Vec<ConsentScope>> {
        if r.datasets.is_empty() {
            return Err(CatalogError::bad_request("datasets", "at least one dataset is required"));
        }
        if r.fields.is_empty() {
            return Err(CatalogError::bad_request("fields", "at least one field is required"));
        }
        let mut scopes = Vec::with_capacity(r.datasets.len());
        let mut schemas = Vec::with_capacity(r.datasets.len());
        for (i, d) in r.datasets.iter().enumerate() {
            let (dataset, schema) = self.dataset_schema(&format!("datasets[{i}]"), d)?;
            scopes.push(ConsentScope { dataset: dataset.id, fields: Vec::new() });
            schemas.push(schema);
        }
        for (j, f) in r.fields.iter().enumerate() {
            let holders: Vec<usize> = (0..schemas.len()).filter(|&k| schemas[k].field(f).is_some()).collect();
            match holders.as_slice() {
                [] => {
                    return Err(CatalogError::InvalidArgument {
                        field: format!("fields[{j}]"),
                        message: format!("field {f} is in none of the consented datasets' schemas"),
                        reason: ReasonCode::FieldNotInSchema,
                    });
                }
                [k] => scopes[*k].fields.push(f.clone()),
                several => {
                    let names: Vec<&str> = several.iter().map(|&k| scopes[k].dataset.as_str()).collect();
                    return Err(CatalogError::bad_request(
                        format!("fields[{j}]"),
                        format!(
                            "field {f} is in the schemas of {}: say per dataset which the subject consents to (scopes)",
                            names.join(" and ")
                        ),
                    ));
                }
            }
        }
        if let Some(empty) = scopes.iter().find(|s| s.fields.is_empty()) {
            return Err(CatalogError::bad_request(
                "fields",
                format!("no listed field is in the schema of dataset {}: name one or drop the dataset", empty.dataset),
            ));
        }
        Ok(scopes)
    }

    /// A published dataset and the schema version it follows.
    fn dataset_schema(&self, field: &str, id: &str) -> Result<(Dataset, Schema)> {
        let dataset = self.existing_dataset(field, id)?;
        let reference =
            SchemaRef::parse(&dataset.schema).map_err(|e| CatalogError::Internal(format!("stored schema ref: {e}")))?;
        let schema =
            self.schema(&reference)?.ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?;
        Ok((dataset, schema))
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
        let (dataset, schema) = self.dataset_schema("dataset", &r.dataset)?;
        if !consent.datasets.contains(&dataset.id) {
            return Err(CatalogError::precondition(
                ReasonCode::ConsentWrongDataset,
                format!("consent {} does not cover dataset {}", consent.id, dataset.id),
            ));
        }
        // A token carries the fields consented for its own dataset, and only those of them
        // its schema still has (a schema may have changed since the consent).
        let consented: Vec<String> = match consent.scopes.iter().find(|s| s.dataset == dataset.id) {
            Some(scope) => scope.fields.clone(),
            // Recorded before scopes existed: one list for all its datasets.
            None => consent.fields.clone(),
        };
        let fields: Vec<String> = consented.into_iter().filter(|f| schema.field(f).is_some()).collect();
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
