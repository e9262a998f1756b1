//! The dataset catalog: a department publishes its own datasets; anyone reads and searches.

use exchange_core::schema::SchemaRef;
use exchange_proto::v1::{
    Dataset, DatasetKind, ListDatasetsRequest, ListDatasetsResponse, ReasonCode, Role, ShareClass,
};

use super::validators::{dataset_id, text};
use super::{Caller, Catalog, now_ms};
use crate::db::{DATASETS, put_msg};
use crate::error::{CatalogError, Result};

impl Catalog {
    /// Publishes one of the caller's datasets (department).
    pub fn publish_dataset(&self, caller: &Caller, d: Option<Dataset>) -> Result<Dataset> {
        caller.require(Role::Department)?;
        let d = d.ok_or_else(|| CatalogError::bad_request("dataset", "is required"))?;
        let id = dataset_id("dataset.id", &d.id)?;
        if id.provider().as_str() != caller.dept {
            return Err(CatalogError::Forbidden(format!(
                "{} can publish only its own datasets (ids starting with {}/)",
                caller.dept, caller.dept
            )));
        }
        let kind = DatasetKind::try_from(d.kind).unwrap_or(DatasetKind::Unspecified);
        if kind == DatasetKind::Unspecified {
            return Err(CatalogError::bad_request("dataset.kind", "must be LICENCE or RECORD"));
        }
        let share = ShareClass::try_from(d.share_class).unwrap_or(ShareClass::Unspecified);
        if share == ShareClass::Unspecified {
            return Err(CatalogError::bad_request(
                "dataset.share_class",
                "must be UNCONDITIONAL, CONDITIONAL or NOT_SHARED",
            ));
        }
        let reference = SchemaRef::parse(&d.schema).map_err(|e| CatalogError::bad_ident("dataset.schema", e))?;
        let schema = self.schema(&reference)?.ok_or_else(|| {
            CatalogError::NotFound(format!("schema {reference} is not registered: the operator registers it first"))
        })?;
        if kind == DatasetKind::Licence && schema.holder_field.is_none() {
            return Err(CatalogError::bad_request(
                "dataset.schema",
                format!("{reference} has no holder field, so it cannot describe licences"),
            ));
        }
        let dataset = Dataset {
            id: id.to_string(),
            provider: caller.dept.clone(),
            kind: kind as i32,
            schema: reference.to_string(),
            share_class: share as i32,
            legal_basis: text("dataset.legal_basis", &d.legal_basis, true)?,
            description_zh: text("dataset.description_zh", &d.description_zh, false)?,
            description_en: text("dataset.description_en", &d.description_en, false)?,
            update_cycle: text("dataset.update_cycle", &d.update_cycle, false)?,
            record_count: d.record_count,
            last_updated_unix_ms: d.last_updated_unix_ms,
            published_at_unix_ms: now_ms(),
            personal_data: schema.has_personal_data(),
        };
        let _w = self.lock();
        let event = self.admin_event(&caller.dept, "dataset.publish", &caller.dept, &dataset.id, &dataset.schema);
        self.mutate(vec![event], true, |b| {
            put_msg(b, DATASETS, dataset.id.as_bytes().to_vec(), &dataset);
            Ok(())
        })?;
        // A node newly entitled to the subject digest key fetches it once it has published.
        Ok(dataset)
    }

    /// Whether `dept` provides a published dataset that holds personal data.
    pub(super) fn provides_personal_data(&self, dept: &str) -> Result<bool> {
        let datasets: Vec<Dataset> = self.db.all(DATASETS)?;
        Ok(datasets.iter().any(|d| d.provider == dept && d.personal_data))
    }

    pub(super) fn existing_dataset(&self, field: &str, id: &str) -> Result<Dataset> {
        let id = dataset_id(field, id)?;
        self.db.get(DATASETS, id.as_str().as_bytes())?.ok_or_else(|| CatalogError::InvalidArgument {
            field: field.into(),
            message: format!("dataset {id} is not in the catalog"),
            reason: ReasonCode::UnknownDataset,
        })
    }

    /// Gets a dataset.
    pub fn get_dataset(&self, _caller: &Caller, id: &str) -> Result<Dataset> {
        let id = dataset_id("id", id)?;
        self.db
            .get(DATASETS, id.as_str().as_bytes())?
            .ok_or_else(|| CatalogError::NotFound(format!("dataset {id} is not in the catalog")))
    }

    /// Lists and searches datasets.
    pub fn list_datasets(&self, _caller: &Caller, r: &ListDatasetsRequest) -> Result<ListDatasetsResponse> {
        let page_size = match r.page.as_ref().map(|p| p.page_size).unwrap_or(0) {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let token = r.page.as_ref().map(|p| p.page_token.clone()).unwrap_or_default();
        let query = r.query.to_lowercase();
        let all: Vec<Dataset> = self.db.all(DATASETS)?;
        let mut out: Vec<Dataset> = all
            .into_iter()
            .filter(|d| token.is_empty() || d.id > token)
            .filter(|d| r.provider.is_empty() || d.provider == r.provider)
            .filter(|d| r.kind == 0 || d.kind == r.kind)
            .filter(|d| {
                query.is_empty()
                    || [&d.id, &d.description_zh, &d.description_en, &d.schema, &d.legal_basis]
                        .iter()
                        .any(|t| t.to_lowercase().contains(&query))
            })
            .take(page_size + 1)
            .collect();
        let next = if out.len() > page_size {
            out.truncate(page_size);
            out.last().map(|d| d.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListDatasetsResponse { datasets: out, next_page_token: next })
    }
}
