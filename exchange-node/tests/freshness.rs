//! Freshness from signatures and no rollback, on configurations signed in-process with a
//! catalog key: the node's configuration ages from its signed `issued_at` whatever the
//! stream does, a re-signed configuration makes it fresh again, an older version or an older
//! `issued_at` is refused (also against the cached copy after a restart), and so is one
//! dated too far ahead or signed by another key.

use ed25519_dalek::SigningKey;
use exchange_core::digest::{key_id, sign_config};
use exchange_node::db::{META, META_CONFIG, TABLES};
use exchange_node::error::NodeError;
use exchange_node::fedconfig::{FedState, MAX_CLOCK_SKEW_MS, Snapshot, Succession};
use exchange_proto::v1::{FederationConfig, ReasonCode, SignedFederationConfig};
use exchange_store::{Durability, KvStore, MemoryStore, WriteBatch};
use prost::Message;

const MAX_AGE_MS: i64 = 300_000;
const NOW: i64 = 1_800_000_000_000;

fn catalog_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn signed_by(key: &SigningKey, version: u64, issued_at_ms: i64) -> SignedFederationConfig {
    let body = FederationConfig { version, issued_at_unix_ms: issued_at_ms, ..Default::default() }.encode_to_vec();
    SignedFederationConfig {
        signature: sign_config(key, &body).to_vec(),
        key_id: key_id(key.verifying_key().as_bytes()),
        body,
    }
}

fn snapshot(version: u64, issued_at_ms: i64) -> Snapshot {
    Snapshot::from_signed(&[catalog_key().verifying_key()], &signed_by(&catalog_key(), version, issued_at_ms))
        .expect("a configuration signed by the pinned key")
}

fn state() -> FedState {
    FedState::new(vec![catalog_key().verifying_key()], MAX_AGE_MS)
}

fn stale(state: &FedState, now: i64) -> bool {
    match state.fresh(now) {
        Ok(_) => false,
        Err(e @ NodeError::Unavailable { .. }) => {
            assert_eq!(e.reason(), ReasonCode::ConfigStale, "{e}");
            true
        }
        Err(e) => panic!("unexpected refusal {e}"),
    }
}

fn held(state: &FedState) -> (u64, i64) {
    let s = state.current().expect("a configuration held");
    (s.version, s.issued_at_ms)
}

#[test]
fn the_age_counts_from_the_newest_signed_issued_at() {
    let state = state();
    assert!(stale(&state, NOW), "no configuration: refused");
    assert_eq!(state.offer(snapshot(2, NOW - 1_000), NOW), Ok(Succession::Newer));
    assert_eq!(state.age_ms(NOW), Some(1_000));
    assert!(!stale(&state, NOW));
    // Nothing but time passes (a stream may well be open): stale after the maximum age.
    assert!(!stale(&state, NOW - 1_000 + MAX_AGE_MS));
    assert!(stale(&state, NOW + MAX_AGE_MS));
    // The same configuration again changes nothing; the catalog's re-signed copy does.
    assert_eq!(state.offer(snapshot(2, NOW - 1_000), NOW + MAX_AGE_MS), Ok(Succession::Same));
    assert!(stale(&state, NOW + MAX_AGE_MS));
    assert_eq!(state.offer(snapshot(2, NOW + MAX_AGE_MS), NOW + MAX_AGE_MS), Ok(Succession::Resigned));
    assert!(!stale(&state, NOW + MAX_AGE_MS + 1));
    assert_eq!(state.age_ms(NOW + MAX_AGE_MS + 1), Some(1));
}

#[test]
fn older_configurations_are_refused() {
    let state = state();
    assert_eq!(state.offer(snapshot(5, NOW), NOW), Ok(Succession::Newer));
    // An older version, even signed later, and the same version signed earlier: rollback.
    let older_version = state.offer(snapshot(4, NOW + 10), NOW + 10).expect_err("an older version");
    assert!(older_version.contains("rollback"), "{older_version}");
    let older_issue = state.offer(snapshot(5, NOW - 10), NOW + 10).expect_err("an older issue");
    assert!(older_issue.contains("rollback"), "{older_issue}");
    let newer_version_older_issue = state.offer(snapshot(6, NOW - 10), NOW + 10).expect_err("issued earlier");
    assert!(newer_version_older_issue.contains("before"), "{newer_version_older_issue}");
    assert_eq!(held(&state), (5, NOW), "the held configuration stays");
    // Dated further ahead than the clock skew allows: refused (it would stay fresh too long).
    let ahead = state.offer(snapshot(7, NOW + MAX_CLOCK_SKEW_MS + 1), NOW).expect_err("dated ahead");
    assert!(ahead.contains("future"), "{ahead}");
    assert_eq!(state.offer(snapshot(7, NOW + MAX_CLOCK_SKEW_MS), NOW), Ok(Succession::Newer));
    // Signed by another key: never a snapshot at all.
    let other = SigningKey::from_bytes(&[8; 32]);
    assert!(Snapshot::from_signed(&[catalog_key().verifying_key()], &signed_by(&other, 9, NOW)).is_err());
}

#[test]
fn after_a_restart_the_cached_configuration_is_the_reference() {
    let store = MemoryStore::new(TABLES);
    let mut batch = WriteBatch::new();
    batch.put(META, META_CONFIG.to_vec(), signed_by(&catalog_key(), 8, NOW).encode_to_vec());
    store.write(batch, Durability::Sync).expect("cache a configuration");

    let restarted = state();
    restarted.load_cached(&store).expect("load the cache");
    assert_eq!(held(&restarted), (8, NOW));
    // Its age is its own, not the time of the restart.
    assert!(stale(&restarted, NOW + MAX_AGE_MS + 1));
    // An older configuration offered after the restart is refused.
    assert!(restarted.offer(snapshot(7, NOW + 5), NOW + 5).is_err());
    assert!(restarted.offer(snapshot(8, NOW - 5), NOW + 5).is_err());
    assert_eq!(held(&restarted), (8, NOW));
    assert_eq!(restarted.offer(snapshot(9, NOW + 5), NOW + 5), Ok(Succession::Newer));

    // A cache signed by another key is not served.
    let forged = MemoryStore::new(TABLES);
    let mut batch = WriteBatch::new();
    batch.put(META, META_CONFIG.to_vec(), signed_by(&SigningKey::from_bytes(&[8; 32]), 99, NOW).encode_to_vec());
    forged.write(batch, Durability::Sync).expect("cache a forged configuration");
    let restarted = state();
    restarted.load_cached(&forged).expect("load the cache");
    assert!(restarted.current().is_none(), "a forged cache is refused");
}
