//! The catalog's signing keys: one Ed25519 key per purpose (configurations, consent tokens,
//! checkpoints), so that one can rotate without the others and a signature made for one
//! purpose never passes for another, and the public keys published beside them.
//!
//! Rotation is by publication. The next key of a purpose is first published (listed in the
//! signed configuration, not signing), so that every verifier knows it before anything is
//! signed with it; then the catalog signs with it, and the key it replaces stays published
//! until the operator retires it (a consent token lives at most its lifetime; checkpoints
//! signed by the previous key stay checkable while it is listed). Verifiers take the
//! configuration keys listed in the last configuration they verified as the keys the next
//! one may be signed with: that is how nodes and clients follow a switch without re-pinning.
//! The files and the operator's steps are in [`crate::keyring`].

use ed25519_dalek::{SigningKey, VerifyingKey};
use exchange_core::checkpoint::NoteSigner;
use exchange_core::digest::key_id;
use exchange_core::token::TokenIssuer;
use exchange_proto::v1::{CatalogKey, KeyPurpose};

/// The purposes, in the order the configuration lists them.
pub const PURPOSES: [KeyPurpose; 3] = [KeyPurpose::Configuration, KeyPurpose::ConsentToken, KeyPurpose::Checkpoint];

/// The name of a purpose as operators write it (and the keyring's file stem).
pub fn purpose_name(purpose: KeyPurpose) -> &'static str {
    match purpose {
        KeyPurpose::Unspecified => "unspecified",
        KeyPurpose::Configuration => "configuration",
        KeyPurpose::ConsentToken => "token",
        KeyPurpose::Checkpoint => "checkpoint",
    }
}

/// Parses a purpose name (`configuration`, `token`, `checkpoint`).
pub fn parse_purpose(name: &str) -> Option<KeyPurpose> {
    PURPOSES.into_iter().find(|p| purpose_name(*p) == name)
}

/// The catalog's keys: the signing key of each purpose and the public keys published beside
/// them (a purpose's next or previous key).
#[derive(Clone)]
pub struct CatalogKeys {
    /// Signs federation configurations.
    pub config: SigningKey,
    /// Signs consent tokens.
    pub token: SigningKey,
    /// Signs checkpoints of the central log.
    pub checkpoint: SigningKey,
    /// Public keys published beside the signing ones.
    pub published: Vec<(KeyPurpose, VerifyingKey)>,
}

impl std::fmt::Debug for CatalogKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material: the key ids only.
        let ids: Vec<String> =
            self.catalog_keys().iter().map(|k| format!("{}:{}", purpose_name(k.purpose()), k.key_id)).collect();
        f.debug_struct("CatalogKeys").field("keys", &ids).finish()
    }
}

impl CatalogKeys {
    /// The keys, refused when two purposes share a key (a token signature would then pass as
    /// a checkpoint's, or the other way round) or one key is listed twice.
    pub fn new(
        config: SigningKey,
        token: SigningKey,
        checkpoint: SigningKey,
        published: Vec<(KeyPurpose, VerifyingKey)>,
    ) -> Result<Self, String> {
        let keys = Self { config, token, checkpoint, published };
        let all = keys.catalog_keys();
        for (i, a) in all.iter().enumerate() {
            if let Some(b) = all[i + 1..].iter().find(|b| b.public_key == a.public_key) {
                if a.purpose == b.purpose {
                    return Err(format!("the {} key {} is listed twice", purpose_name(a.purpose()), a.key_id));
                }
                return Err(format!(
                    "key {} serves as {} and {} key: each purpose needs its own key",
                    a.key_id,
                    purpose_name(a.purpose()),
                    purpose_name(b.purpose())
                ));
            }
        }
        Ok(keys)
    }

    /// Fresh random keys, one per purpose, none published beside them (in-process catalogs of
    /// tests and benchmarks).
    pub fn random() -> Self {
        let key = || {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            SigningKey::from_bytes(&seed)
        };
        Self { config: key(), token: key(), checkpoint: key(), published: Vec::new() }
    }

    /// The signing key of `purpose`.
    pub fn signing(&self, purpose: KeyPurpose) -> Option<&SigningKey> {
        match purpose {
            KeyPurpose::Configuration => Some(&self.config),
            KeyPurpose::ConsentToken => Some(&self.token),
            KeyPurpose::Checkpoint => Some(&self.checkpoint),
            KeyPurpose::Unspecified => None,
        }
    }

    /// Every key in force, as the configuration lists them: per purpose the signing key
    /// first, then the ones published beside it.
    pub fn catalog_keys(&self) -> Vec<CatalogKey> {
        let key = |purpose: KeyPurpose, public: &VerifyingKey, signing: bool| CatalogKey {
            key_id: key_id(public.as_bytes()),
            public_key: public.as_bytes().to_vec(),
            purpose: purpose as i32,
            signing,
        };
        let mut out = Vec::new();
        for purpose in PURPOSES {
            if let Some(signing) = self.signing(purpose) {
                out.push(key(purpose, &signing.verifying_key(), true));
            }
            out.extend(self.published.iter().filter(|(p, _)| *p == purpose).map(|(p, public)| key(*p, public, false)));
        }
        out
    }
}

/// What signs with the keys: the configuration key itself, the consent-token issuer (its
/// `kid` the token key's id) and the checkpoint signer (its note key id from the checkpoint
/// key under the log origin). Swapped whole when the keys are reloaded.
pub struct Signers {
    /// The keys.
    pub keys: CatalogKeys,
    /// Signs consent tokens with the token key.
    pub token: TokenIssuer,
    /// Signs checkpoints with the checkpoint key.
    pub checkpoint: NoteSigner,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signers").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl Signers {
    /// The signers of `keys` for the log origin `origin` (also the tokens' issuer).
    pub fn new(origin: &str, keys: CatalogKeys) -> Result<Self, String> {
        let checkpoint = NoteSigner::new(origin.to_owned(), keys.checkpoint.clone())
            .map_err(|e| format!("log origin cannot name a note key: {e}"))?;
        let token = TokenIssuer::new(origin.to_owned(), &keys.token).map_err(|e| format!("token issuer: {e}"))?;
        Ok(Self { keys, token, checkpoint })
    }

    /// The public key that signs configurations.
    pub fn config_public(&self) -> VerifyingKey {
        self.keys.config.verifying_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn each_purpose_has_its_own_key() {
        let keys = CatalogKeys::new(k(1), k(2), k(3), vec![(KeyPurpose::ConsentToken, k(4).verifying_key())])
            .expect("separate keys");
        let listed = keys.catalog_keys();
        assert_eq!(listed.len(), 4);
        assert_eq!(listed.iter().filter(|c| c.signing).count(), 3);
        assert!(!listed[2].signing && listed[2].purpose == KeyPurpose::ConsentToken as i32);
        let e = CatalogKeys::new(k(1), k(2), k(2), vec![]).expect_err("token key as checkpoint key");
        assert!(e.contains("token and checkpoint key"), "{e}");
        let e = CatalogKeys::new(k(1), k(2), k(3), vec![(KeyPurpose::Checkpoint, k(2).verifying_key())])
            .expect_err("a token key published as a checkpoint key");
        assert!(e.contains("each purpose needs its own key"), "{e}");
        let e = CatalogKeys::new(k(1), k(2), k(3), vec![(KeyPurpose::ConsentToken, k(2).verifying_key())])
            .expect_err("listed twice");
        assert!(e.contains("listed twice"), "{e}");
        assert!(!format!("{keys:?}").contains(&hex::encode(k(1).to_bytes())));
    }

    #[test]
    fn purposes_have_names() {
        for p in PURPOSES {
            assert_eq!(parse_purpose(purpose_name(p)), Some(p));
        }
        assert_eq!(parse_purpose("unspecified"), None);
    }
}
