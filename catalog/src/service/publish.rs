//! The federation configuration: every change is written with the entries that record it
//! and the duty to publish it in one batch, then signed and broadcast to watching nodes; the
//! heartbeat re-signs it so that nodes can count freshness from signatures.

use std::collections::BTreeMap;
use std::sync::Arc;

use exchange_core::digest::{key_id, sign_config};
use exchange_proto::v1::{
    AccessEvent, ConfigGrant, Consent, Dataset, EventKind, FederationConfig, Grant, GrantStatus, Member, Outcome,
    RevokedConsent, SchemaVersion, SignedFederationConfig,
};
use exchange_store::WriteBatch;
use prost::Message;
use tokio::sync::watch;

use super::{Catalog, now_ms};
use crate::db::{
    CONSENTS, DATASETS, GRANTS, MEMBERS, META, META_CONFIG, META_CONFIG_PENDING, META_CONFIG_VERSION, SCHEMAS,
    put_meta_u64,
};
use crate::error::{CatalogError, Result};
use crate::log::Staged;

impl Catalog {
    /// A receiver of configuration versions (for watch streams).
    pub fn subscribe(&self) -> watch::Receiver<Arc<SignedFederationConfig>> {
        self.config_tx.subscribe()
    }

    /// A receiver of the per-member reset counters: a member's watch streams end when its
    /// counter changes (suspension, replaced certificate fingerprints), so that a stream
    /// opened with what no longer authenticates does not go on.
    pub fn stream_resets(&self) -> watch::Receiver<BTreeMap<String, u64>> {
        self.stream_resets.subscribe()
    }

    /// Ends the watch streams of `dept`.
    pub(super) fn reset_streams(&self, dept: &str) {
        self.stream_resets.send_modify(|counters| *counters.entry(dept.to_string()).or_default() += 1);
    }

    pub(super) fn admin_event(
        &self,
        requester: &str,
        action: &str,
        provider: &str,
        dataset: &str,
        note: &str,
    ) -> AccessEvent {
        AccessEvent {
            recorder: self.settings.catalog_id.clone(),
            time_unix_ms: now_ms(),
            kind: EventKind::Admin as i32,
            requester: requester.into(),
            provider: provider.into(),
            dataset: dataset.into(),
            action: action.into(),
            outcome: Outcome::Served as i32,
            note: note.into(),
            ..Default::default()
        }
    }

    /// Writes `change` and the events recording it in one batch (the caller holds the
    /// writer lock), then republishes the configuration when it changed.
    pub(super) fn mutate(
        &self,
        mut events: Vec<AccessEvent>,
        affects_config: bool,
        change: impl FnOnce(&mut WriteBatch) -> Result<()>,
    ) -> Result<()> {
        // A change committed earlier whose publication failed goes out first.
        self.publish_pending()?;
        let mut batch = WriteBatch::new();
        change(&mut batch)?;
        if affects_config {
            // The change and the duty to publish it commit together: if the publication
            // below fails, the next change, a retried call or the next start publishes it.
            put_meta_u64(&mut batch, META_CONFIG_PENDING, 1);
        }
        let first = self.log.next_sequence(&self.db, &self.settings.catalog_id)?;
        for (seq, e) in (first..).zip(events.iter_mut()) {
            e.recorder = self.settings.catalog_id.clone();
            e.sequence = seq;
        }
        let mut staged = Staged::default();
        self.log.stage(&self.db, &events, &mut batch, &mut staged)?;
        self.db.commit(batch)?;
        self.log.committed(&staged);
        if affects_config {
            self.publish_config()?;
        }
        Ok(())
    }

    /// Publishes the configuration if a committed change is still unpublished (writer lock
    /// held). A retried revocation calls it, so that the retry publishes what the first call
    /// committed.
    pub(super) fn publish_pending(&self) -> Result<()> {
        if self.db.meta_u64(META_CONFIG_PENDING)? != 0 { self.publish_config() } else { Ok(()) }
    }

    /// The heartbeat: re-signs the current configuration with a fresh `issued_at`, same
    /// version and content, and broadcasts it. Nodes count their configuration's age from the
    /// newest signed `issued_at`, so a catalog that stalls, or anyone replaying old copies,
    /// leads to CONFIG_STALE after the maximum age, as an outage does. An unpublished change
    /// is published first (as a new version).
    pub fn heartbeat(&self) -> Result<()> {
        let _w = self.lock();
        if self.db.meta_u64(META_CONFIG_PENDING)? != 0 {
            return self.publish_config();
        }
        let current = self.config_tx.borrow().clone();
        let mut body = FederationConfig::decode(current.body.as_slice())
            .map_err(|e| CatalogError::Internal(format!("stored configuration does not decode: {e}")))?;
        body.issued_at_unix_ms = now_ms().max(body.issued_at_unix_ms + 1);
        self.sign_store_broadcast(body.encode_to_vec(), WriteBatch::new())
    }

    /// Builds, signs, stores and broadcasts a new configuration version (writer lock held).
    pub(super) fn publish_config(&self) -> Result<()> {
        let now = now_ms();
        let version = self.db.meta_u64(META_CONFIG_VERSION)? + 1;
        let members: Vec<Member> = self.db.all(MEMBERS)?;
        let grants: Vec<Grant> = self.db.all(GRANTS)?;
        let schemas: Vec<SchemaVersion> = self.db.all(SCHEMAS)?;
        let datasets: Vec<Dataset> = self.db.all(DATASETS)?;
        let consents: Vec<Consent> = self.db.all(CONSENTS)?;
        let body = FederationConfig {
            version,
            issued_at_unix_ms: now,
            members,
            grants: grants
                .into_iter()
                .filter(|g| g.status == GrantStatus::Approved as i32)
                .filter(|g| g.expires_at_unix_ms == 0 || g.expires_at_unix_ms > now)
                .map(|g| ConfigGrant {
                    id: g.id,
                    requester: g.requester,
                    dataset: g.dataset,
                    purposes: g.purposes,
                    fields: g.fields,
                    consent_required: g.consent_required,
                    rate_limit_per_minute: g.rate_limit_per_minute,
                    expires_at_unix_ms: g.expires_at_unix_ms,
                })
                .collect(),
            schemas,
            datasets,
            revoked_consents: consents
                .into_iter()
                .filter(|c| c.revoked_at_unix_ms != 0 && c.expires_at_unix_ms > now)
                .map(|c| RevokedConsent {
                    consent_id: c.id,
                    revoked_at_unix_ms: c.revoked_at_unix_ms,
                    expires_at_unix_ms: c.expires_at_unix_ms,
                })
                .collect(),
            catalog_keys: self.signers().keys.catalog_keys(),
            log_origin: self.settings.log_origin.clone(),
        }
        .encode_to_vec();
        let mut batch = WriteBatch::new();
        put_meta_u64(&mut batch, META_CONFIG_VERSION, version);
        put_meta_u64(&mut batch, META_CONFIG_PENDING, 0);
        self.sign_store_broadcast(body, batch)?;
        tracing::info!(version, "federation configuration published");
        Ok(())
    }

    /// Signs an encoded configuration, stores it with `batch` in one write and hands it to
    /// every watcher (writer lock held).
    fn sign_store_broadcast(&self, body: Vec<u8>, mut batch: WriteBatch) -> Result<()> {
        let signers = self.signers();
        let signed = SignedFederationConfig {
            signature: sign_config(&signers.keys.config, &body).to_vec(),
            key_id: key_id(signers.config_public().as_bytes()),
            body,
        };
        batch.put(META, META_CONFIG.to_vec(), signed.encode_to_vec());
        self.db.commit(batch)?;
        self.config_tx.send_replace(Arc::new(signed));
        Ok(())
    }

    /// The current signed configuration.
    pub fn current_config(&self) -> Arc<SignedFederationConfig> {
        self.config_tx.borrow().clone()
    }
}
