//! Standard schemas: registration of versions (each compatible with its predecessor) and
//! look-ups.

use exchange_core::digest::sha256_hex;
use exchange_core::schema::{Schema, SchemaRef};
use exchange_proto::v1::{ReasonCode, Role, SchemaVersion};
use exchange_store::ScanRange;

use super::{Caller, Catalog, now_ms};
use crate::db::{SCHEMAS, put_msg, schema_key, schema_prefix};
use crate::error::{CatalogError, Result};

impl Catalog {
    /// Registers a schema version (operator).
    pub fn register_schema(&self, caller: &Caller, definition_json: &str) -> Result<SchemaVersion> {
        caller.require(Role::Operator)?;
        let schema = Schema::from_json(definition_json)
            .map_err(|e| CatalogError::bad_request("definition_json", e.to_string()))?;
        let reference = schema.reference.clone();
        let name = reference.name().to_string();
        let version = reference.version();
        let _w = self.lock();
        if self.db.get::<SchemaVersion>(SCHEMAS, &schema_key(&name, version))?.is_some() {
            return Err(CatalogError::AlreadyExists(format!(
                "schema {reference} is already registered: register version {} instead",
                version + 1
            )));
        }
        let latest = self.latest_schema(&name)?;
        match (&latest, version) {
            (None, 1) => {}
            (None, v) => {
                return Err(CatalogError::precondition(
                    ReasonCode::SchemaIncompatible,
                    format!("schema {name} has no versions yet: register version 1 first, not {v}"),
                ));
            }
            (Some((prev_version, prev)), v) => {
                if v != prev_version + 1 {
                    return Err(CatalogError::precondition(
                        ReasonCode::SchemaIncompatible,
                        format!(
                            "the latest version of {name} is {prev_version}: the next one must be {}",
                            prev_version + 1
                        ),
                    ));
                }
                if let Err(problems) = prev.check_successor(&schema) {
                    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(CatalogError::precondition(
                        ReasonCode::SchemaIncompatible,
                        format!("{reference} is not compatible with version {prev_version}: {}", list.join("; ")),
                    ));
                }
            }
        }
        let canonical =
            serde_json::to_string(&schema).map_err(|e| CatalogError::Internal(format!("schema json: {e}")))?;
        let sv = SchemaVersion {
            reference: reference.to_string(),
            digest: sha256_hex(canonical.as_bytes()),
            definition_json: canonical,
            registered_at_unix_ms: now_ms(),
        };
        let event = self.admin_event(&caller.dept, "schema.register", "", "", &sv.reference);
        self.mutate(vec![event], true, |b| {
            put_msg(b, SCHEMAS, schema_key(&name, version), &sv);
            Ok(())
        })?;
        Ok(sv)
    }

    fn latest_schema(&self, name: &str) -> Result<Option<(u32, Schema)>> {
        let rows: Vec<(Vec<u8>, SchemaVersion)> =
            self.db.scan(SCHEMAS, ScanRange::prefix(schema_prefix(name)).reverse(), 1)?;
        match rows.into_iter().next() {
            Some((_, sv)) => {
                let schema = Schema::from_json(&sv.definition_json)
                    .map_err(|e| CatalogError::Internal(format!("stored schema {}: {e}", sv.reference)))?;
                Ok(Some((schema.reference.version(), schema)))
            }
            None => Ok(None),
        }
    }

    /// Loads a registered schema by reference.
    pub fn schema(&self, reference: &SchemaRef) -> Result<Option<Schema>> {
        match self.db.get::<SchemaVersion>(SCHEMAS, &schema_key(reference.name(), reference.version()))? {
            Some(sv) => Schema::from_json(&sv.definition_json)
                .map(Some)
                .map_err(|e| CatalogError::Internal(format!("stored schema {}: {e}", sv.reference))),
            None => Ok(None),
        }
    }

    /// Gets a schema version (0 = latest).
    pub fn get_schema(&self, _caller: &Caller, name: &str, version: u32) -> Result<SchemaVersion> {
        if name.is_empty() {
            return Err(CatalogError::bad_request("name", "is required"));
        }
        let found = if version == 0 {
            let rows: Vec<(Vec<u8>, SchemaVersion)> =
                self.db.scan(SCHEMAS, ScanRange::prefix(schema_prefix(name)).reverse(), 1)?;
            rows.into_iter().next().map(|(_, sv)| sv)
        } else {
            self.db.get(SCHEMAS, &schema_key(name, version))?
        };
        found.ok_or_else(|| {
            CatalogError::NotFound(if version == 0 {
                format!("schema {name} is not registered")
            } else {
                format!("schema {name}@{version} is not registered")
            })
        })
    }

    /// Lists schemas.
    pub fn list_schemas(&self, _caller: &Caller, all_versions: bool) -> Result<Vec<SchemaVersion>> {
        let all: Vec<SchemaVersion> = self.db.all(SCHEMAS)?;
        if all_versions {
            return Ok(all);
        }
        let mut latest: Vec<SchemaVersion> = Vec::new();
        for sv in all {
            let name = sv.reference.split('@').next().unwrap_or("").to_string();
            match latest.last_mut() {
                Some(last) if last.reference.split('@').next() == Some(name.as_str()) => *last = sv,
                _ => latest.push(sv),
            }
        }
        Ok(latest)
    }
}
