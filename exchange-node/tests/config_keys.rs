//! The catalog's keys as the node takes them from signed configurations: one key per purpose
//! (a configuration signed with the catalog's token or checkpoint key is refused, consent
//! tokens verify only under the token keys listed), and the configuration key set followed
//! through a rotation (next published, switch, retire) without re-pinning, also across a
//! restart from the cache.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_core::digest::{key_id, sign_config};
use exchange_core::token::TokenError;
use exchange_node::db::TABLES;
use exchange_node::fedconfig::{FedState, Snapshot, Succession};
use exchange_proto::v1::{CatalogKey, FederationConfig, KeyPurpose, SignedFederationConfig};
use exchange_store::{KvStore, MemoryStore};
use prost::Message;

const NOW: i64 = 1_800_000_000_000;
const ORIGIN: &str = "exchange.test/log";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn listed(purpose: KeyPurpose, key: &SigningKey, signing: bool) -> CatalogKey {
    let public = key.verifying_key();
    CatalogKey {
        key_id: key_id(public.as_bytes()),
        public_key: public.as_bytes().to_vec(),
        purpose: purpose as i32,
        signing,
    }
}

/// A configuration listing `keys`, signed by `signer`.
fn signed(signer: &SigningKey, version: u64, keys: Vec<CatalogKey>) -> SignedFederationConfig {
    let body = FederationConfig {
        version,
        issued_at_unix_ms: NOW + version as i64,
        catalog_keys: keys,
        log_origin: ORIGIN.into(),
        ..Default::default()
    }
    .encode_to_vec();
    SignedFederationConfig {
        signature: sign_config(signer, &body).to_vec(),
        key_id: key_id(signer.verifying_key().as_bytes()),
        body,
    }
}

/// What the watcher does with a configuration: verify it under the keys trusted now, then
/// offer it.
fn accept(state: &FedState, config: &SignedFederationConfig) -> Result<Succession, String> {
    let snapshot = Snapshot::from_signed(&state.trusted(), config)?;
    state.offer(snapshot, NOW + 1_000)
}

/// A token whose header names `key`'s id and that `key` signs (the claims do not matter here:
/// the key is chosen, and the signature checked, before any claim is read).
fn token_signed_by(key: &SigningKey) -> String {
    let kid = key_id(key.verifying_key().as_bytes());
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#));
    let claims = URL_SAFE_NO_PAD.encode(r#"{"iss":"exchange.test/log"}"#);
    let signature = key.sign(format!("{header}.{claims}").as_bytes());
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[test]
fn each_purpose_verifies_under_its_own_keys_only() {
    let (config, token, checkpoint) = (key(1), key(2), key(3));
    let keys = vec![
        listed(KeyPurpose::Configuration, &config, true),
        listed(KeyPurpose::ConsentToken, &token, true),
        listed(KeyPurpose::Checkpoint, &checkpoint, true),
    ];
    let state = FedState::new(vec![config.verifying_key()], 300_000);
    // A configuration signed with the catalog's token key, or its checkpoint key, is no
    // configuration: neither key is a configuration key.
    for other in [&token, &checkpoint] {
        let refused = accept(&state, &signed(other, 1, keys.clone())).expect_err("not a configuration key");
        assert!(refused.contains("not a trusted configuration key"), "{refused}");
    }
    assert_eq!(accept(&state, &signed(&config, 1, keys)), Ok(Succession::Newer));

    // Tokens verify under the token key only: one signed with the checkpoint key or the
    // configuration key names a key the node does not take for tokens.
    let verifier = &state.current().expect("held").verifier;
    let now = NOW / 1000 + 1;
    // Under the token key, the signature verifies and the claims are read next.
    let past_the_key = verifier.verify_signature(&token_signed_by(&token), now).err();
    assert!(matches!(past_the_key, Some(TokenError::BadClaim(_))), "{past_the_key:?}");
    for other in [&checkpoint, &config] {
        let id = key_id(other.verifying_key().as_bytes());
        assert_eq!(verifier.verify_signature(&token_signed_by(other), now).err(), Some(TokenError::UnknownKey(id)));
    }
}

#[test]
fn the_configuration_key_rotates_without_re_pinning() {
    let (old, new, token, checkpoint) = (key(1), key(4), key(2), key(3));
    let others =
        || vec![listed(KeyPurpose::ConsentToken, &token, true), listed(KeyPurpose::Checkpoint, &checkpoint, true)];
    let with = |mut config_keys: Vec<CatalogKey>| {
        config_keys.extend(others());
        config_keys
    };
    // The node pins the old key only.
    let state = FedState::new(vec![old.verifying_key()], 300_000);
    accept(&state, &signed(&old, 1, with(vec![listed(KeyPurpose::Configuration, &old, true)]))).expect("v1");
    // Before the next key is published, a configuration signed with it is refused.
    assert!(
        accept(&state, &signed(&new, 2, with(vec![])))
            .expect_err("unpublished key")
            .contains("not a trusted configuration key")
    );
    // Step 1: the next key is published in a configuration signed by the current one.
    let published =
        with(vec![listed(KeyPurpose::Configuration, &old, true), listed(KeyPurpose::Configuration, &new, false)]);
    accept(&state, &signed(&old, 2, published)).expect("v2 publishes the next key");
    assert!(state.trusted().contains(&new.verifying_key()));
    // Step 2: the catalog signs with it, listing the old one as previous.
    let switched =
        with(vec![listed(KeyPurpose::Configuration, &new, true), listed(KeyPurpose::Configuration, &old, false)]);
    let v3 = signed(&new, 3, switched);
    assert_eq!(accept(&state, &v3), Ok(Succession::Newer), "signed by the learned key");

    // A restart with the old pin only serves the cached configuration signed by the new key
    // (the keys that verified it were cached with it).
    let store = MemoryStore::new(TABLES);
    let mut batch = exchange_store::WriteBatch::new();
    batch.put(exchange_node::db::META, exchange_node::db::META_CONFIG.to_vec(), v3.encode_to_vec());
    let trust: Vec<u8> = [old.verifying_key(), new.verifying_key()].iter().flat_map(|k| *k.as_bytes()).collect();
    batch.put(exchange_node::db::META, exchange_node::db::META_CONFIG_TRUST.to_vec(), trust);
    store.write(batch, exchange_store::Durability::Sync).expect("cache");
    let restarted = FedState::new(vec![old.verifying_key()], 300_000);
    restarted.load_cached(&store).expect("load");
    assert_eq!(restarted.current().map(|s| s.version), Some(3), "the cached configuration is served");

    // Step 3: the old key is retired; a node not pinning it trusts it no more.
    let pinned_new = FedState::new(vec![new.verifying_key()], 300_000);
    accept(&pinned_new, &signed(&new, 4, with(vec![listed(KeyPurpose::Configuration, &new, true)]))).expect("v4");
    let trusted: Vec<VerifyingKey> = pinned_new.trusted();
    assert_eq!(trusted, vec![new.verifying_key()]);
    assert!(
        accept(&pinned_new, &signed(&old, 5, with(vec![listed(KeyPurpose::Configuration, &old, true)])))
            .expect_err("the retired key")
            .contains("not a trusted configuration key")
    );
}
