//! Grants: a requester applies, the provider approves or rejects, either side revokes.

use std::collections::BTreeSet;

use exchange_core::ident::PurposeCode;
use exchange_core::schema::SchemaRef;
use exchange_proto::v1::{
    ApplyGrantRequest, DecideGrantRequest, Grant, GrantStatus, ListGrantsRequest, ListGrantsResponse, ReasonCode, Role,
    ShareClass,
};

use super::validators::text;
use super::{Caller, Catalog, now_ms};
use crate::db::{GRANTS, META_NEXT_GRANT, put_meta_u64, put_msg};
use crate::error::{CatalogError, Result};

impl Catalog {
    /// Applies for a grant (department; the caller is the requester).
    pub fn apply_grant(&self, caller: &Caller, r: ApplyGrantRequest) -> Result<Grant> {
        caller.require(Role::Department)?;
        let dataset = self.existing_dataset("dataset", &r.dataset)?;
        if dataset.share_class == ShareClass::NotShared as i32 {
            return Err(CatalogError::precondition(
                ReasonCode::DatasetNotShared,
                format!("dataset {} is classed not shared (不予共享): no grant can be given on it", dataset.id),
            ));
        }
        let reference = SchemaRef::parse(&dataset.schema)
            .map_err(|e| CatalogError::Internal(format!("stored dataset schema: {e}")))?;
        let schema =
            self.schema(&reference)?.ok_or_else(|| CatalogError::Internal(format!("schema {reference} missing")))?;
        if r.purposes.is_empty() {
            return Err(CatalogError::bad_request(
                "purposes",
                "at least one purpose code (service item code) is required",
            ));
        }
        let mut purposes = BTreeSet::new();
        for (i, p) in r.purposes.iter().enumerate() {
            let p = PurposeCode::parse(p).map_err(|e| CatalogError::InvalidArgument {
                field: format!("purposes[{i}]"),
                message: e.to_string(),
                reason: ReasonCode::PurposeInvalid,
            })?;
            purposes.insert(p.to_string());
        }
        if r.fields.is_empty() {
            return Err(CatalogError::bad_request("fields", "at least one field is required"));
        }
        let mut fields = BTreeSet::new();
        let mut personal = false;
        for (i, f) in r.fields.iter().enumerate() {
            let spec = schema.field(f).ok_or_else(|| CatalogError::InvalidArgument {
                field: format!("fields[{i}]"),
                message: format!("field {f} is not in schema {reference}"),
                reason: ReasonCode::FieldNotInSchema,
            })?;
            personal |= spec.classification.is_personal();
            fields.insert(f.clone());
        }
        let now = now_ms();
        if r.expires_at_unix_ms != 0 && r.expires_at_unix_ms <= now {
            return Err(CatalogError::bad_request("expires_at_unix_ms", "is in the past"));
        }
        let legal_basis = text("legal_basis", &r.legal_basis, true)?;
        let service_item = text("service_item", &r.service_item, true)?;
        let _w = self.lock();
        let number = self.db.meta_u64(META_NEXT_GRANT)? + 1;
        let grant = Grant {
            id: format!("G{number:06}"),
            requester: caller.dept.clone(),
            dataset: dataset.id.clone(),
            purposes: purposes.into_iter().collect(),
            fields: fields.into_iter().collect(),
            // Personal data is never served without the subject's consent.
            consent_required: r.consent_required || personal,
            rate_limit_per_minute: r.rate_limit_per_minute,
            expires_at_unix_ms: r.expires_at_unix_ms,
            legal_basis,
            service_item,
            status: GrantStatus::Pending as i32,
            created_at_unix_ms: now,
            decided_at_unix_ms: 0,
            decision_note: String::new(),
        };
        let event = self.admin_event(&caller.dept, "grant.apply", &dataset.provider, &dataset.id, &grant.id);
        self.mutate(vec![event], false, |b| {
            put_meta_u64(b, META_NEXT_GRANT, number);
            put_msg(b, GRANTS, grant.id.as_bytes().to_vec(), &grant);
            Ok(())
        })?;
        Ok(grant)
    }

    fn existing_grant(&self, id: &str) -> Result<Grant> {
        if id.is_empty() {
            return Err(CatalogError::bad_request("grant_id", "is required"));
        }
        self.db.get(GRANTS, id.as_bytes())?.ok_or_else(|| CatalogError::NotFound(format!("grant {id} does not exist")))
    }

    /// Approves, rejects or revokes a grant.
    pub fn decide_grant(&self, caller: &Caller, r: &DecideGrantRequest, to: GrantStatus) -> Result<Grant> {
        caller.require(Role::Department)?;
        let note = text("note", &r.note, false)?;
        let _w = self.lock();
        let mut grant = self.existing_grant(&r.grant_id)?;
        let dataset = self.existing_dataset("grant.dataset", &grant.dataset)?;
        let is_provider = dataset.provider == caller.dept;
        let is_requester = grant.requester == caller.dept;
        let status = GrantStatus::try_from(grant.status).unwrap_or(GrantStatus::Unspecified);
        let action = match to {
            GrantStatus::Approved | GrantStatus::Rejected => {
                if !is_provider {
                    return Err(CatalogError::Forbidden(format!(
                        "only the provider {} may decide grants on {}",
                        dataset.provider, dataset.id
                    )));
                }
                if status != GrantStatus::Pending {
                    return Err(CatalogError::precondition(
                        ReasonCode::InvalidState,
                        format!(
                            "grant {} is {}, not pending: only a pending grant can be decided",
                            grant.id,
                            status.as_str_name()
                        ),
                    ));
                }
                if to == GrantStatus::Approved && grant.expires_at_unix_ms != 0 && grant.expires_at_unix_ms <= now_ms()
                {
                    return Err(CatalogError::precondition(
                        ReasonCode::GrantExpired,
                        format!("grant {} has already expired", grant.id),
                    ));
                }
                if to == GrantStatus::Approved { "grant.approve" } else { "grant.reject" }
            }
            _ => {
                if !is_provider && !is_requester {
                    return Err(CatalogError::Forbidden(format!(
                        "only the requester {} or the provider {} may revoke grant {}",
                        grant.requester, dataset.provider, grant.id
                    )));
                }
                if status == GrantStatus::Revoked {
                    // A retry of a revocation: answered as done, and published if the first
                    // call's publication failed.
                    self.publish_pending()?;
                    return Ok(grant);
                }
                if !matches!(status, GrantStatus::Pending | GrantStatus::Approved) {
                    return Err(CatalogError::precondition(
                        ReasonCode::InvalidState,
                        format!("grant {} is {}: there is nothing to revoke", grant.id, status.as_str_name()),
                    ));
                }
                "grant.revoke"
            }
        };
        grant.status = to as i32;
        grant.decided_at_unix_ms = now_ms();
        grant.decision_note = note;
        let event = self.admin_event(&caller.dept, action, &dataset.provider, &dataset.id, &grant.id);
        self.mutate(vec![event], true, |b| {
            put_msg(b, GRANTS, grant.id.as_bytes().to_vec(), &grant);
            Ok(())
        })?;
        Ok(grant)
    }

    /// Lists the grants the caller may see.
    pub fn list_grants(&self, caller: &Caller, r: &ListGrantsRequest) -> Result<ListGrantsResponse> {
        let sees_all = caller.has(Role::Operator) || caller.has(Role::Auditor);
        let all: Vec<Grant> = self.db.all(GRANTS)?;
        let grants = all
            .into_iter()
            .filter(|g| r.dataset.is_empty() || g.dataset == r.dataset)
            .filter(|g| r.requester.is_empty() || g.requester == r.requester)
            .filter(|g| r.status == 0 || g.status == r.status)
            .filter(|g| {
                sees_all || g.requester == caller.dept || g.dataset.split('/').next() == Some(caller.dept.as_str())
            })
            .collect();
        Ok(ListGrantsResponse { grants })
    }
}
