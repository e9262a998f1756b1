//! Validators of request fields that several areas share: each names the field it refuses
//! and why.

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use exchange_core::ident::{DatasetId, DeptId, SubjectId, SubjectKind};
use exchange_proto::v1::SubjectKind as SubjectKindProto;
use exchange_proto::v1::{Role, Subject};

use crate::error::{CatalogError, Result};

/// Longest accepted free text (names, notes, legal bases), in characters.
const MAX_TEXT: usize = 500;

pub(super) fn text(field: &str, value: &str, required: bool) -> Result<String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(CatalogError::bad_request(field, "is required"));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(CatalogError::bad_request(field, format!("is longer than {MAX_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(CatalogError::bad_request(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

pub(super) fn dept(field: &str, value: &str) -> Result<DeptId> {
    DeptId::parse(value).map_err(|e| CatalogError::bad_ident(field, e))
}

pub(super) fn dataset_id(field: &str, value: &str) -> Result<DatasetId> {
    DatasetId::parse(value).map_err(|e| CatalogError::bad_ident(field, e))
}

pub(super) fn subject(field: &str, s: Option<&Subject>) -> Result<SubjectId> {
    let s = s.ok_or_else(|| CatalogError::bad_request(field, "is required"))?;
    let kind = match SubjectKindProto::try_from(s.kind) {
        Ok(SubjectKindProto::Person) => SubjectKind::Person,
        Ok(SubjectKindProto::Organisation) => SubjectKind::Organisation,
        _ => return Err(CatalogError::bad_request(format!("{field}.kind"), "must be PERSON or ORGANISATION")),
    };
    SubjectId::parse(kind, &s.id).map_err(|e| CatalogError::bad_ident(format!("{field}.id"), e))
}

pub(super) fn roles(field: &str, raw: &[i32]) -> Result<Vec<i32>> {
    let mut out = BTreeSet::new();
    for r in raw {
        match Role::try_from(*r) {
            Ok(Role::Unspecified) | Err(_) => {
                return Err(CatalogError::bad_request(field, format!("{r} is not a role")));
            }
            Ok(role) => {
                out.insert(role as i32);
            }
        }
    }
    if out.is_empty() {
        return Err(CatalogError::bad_request(field, "at least one role is required"));
    }
    Ok(out.into_iter().collect())
}

pub(super) fn signing_key_field(field: &str, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        CatalogError::bad_request(field, format!("must be a 32-byte Ed25519 public key, got {} bytes", bytes.len()))
    })?;
    let key =
        VerifyingKey::from_bytes(&arr).map_err(|_| CatalogError::bad_request(field, "is not an Ed25519 public key"))?;
    if key.is_weak() {
        return Err(CatalogError::bad_request(field, "is a weak (small-order) Ed25519 key"));
    }
    Ok(())
}

/// A member's certificate fingerprints: at least one, each a SHA-256 (32 bytes). Without one
/// any certificate of the federation CA naming the department would be the member, and an
/// old certificate could not be shut out by replacing the list.
pub(super) fn fingerprints(field: &str, fps: &[Vec<u8>]) -> Result<()> {
    if fps.is_empty() {
        return Err(CatalogError::bad_request(
            field,
            "at least one certificate fingerprint is required (the SHA-256 of the member's DER certificate, \
             as `exchange ca issue` prints it): a member without one could be impersonated by any certificate naming it",
        ));
    }
    for (i, fp) in fps.iter().enumerate() {
        if fp.len() != 32 {
            return Err(CatalogError::bad_request(format!("{field}[{i}]"), "must be a 32-byte SHA-256 fingerprint"));
        }
    }
    Ok(())
}

pub(super) fn endpoint(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !value.is_empty() && !value.starts_with("https://") {
        return Err(CatalogError::bad_request(field, "must be an https:// address (every connection is mutual TLS)"));
    }
    text(field, value, false)
}
