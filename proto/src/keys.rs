//! The catalog's keys as a signed configuration lists them, by purpose: what each verifier
//! takes from a verified configuration (nodes the token keys, auditors the checkpoint keys,
//! every verifier the configuration keys the next version may be signed with).

use ed25519_dalek::VerifyingKey;

use crate::v1::{FederationConfig, KeyPurpose};

impl FederationConfig {
    /// The catalog's public keys listed for `purpose`, signing or published beside (next or
    /// previous). An entry that is no Ed25519 key, or a weak one, is left out, and so is every
    /// key of another purpose: a signature made for one purpose never passes for another.
    pub fn catalog_keys_for(&self, purpose: KeyPurpose) -> Vec<VerifyingKey> {
        self.catalog_keys
            .iter()
            .filter(|k| k.purpose == purpose as i32)
            .filter_map(|k| <[u8; 32]>::try_from(k.public_key.as_slice()).ok())
            .filter_map(|k| VerifyingKey::from_bytes(&k).ok())
            .filter(|k| !k.is_weak())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::CatalogKey;

    #[test]
    fn keys_are_taken_by_purpose_only() {
        let key = |seed: u8, purpose: KeyPurpose| CatalogKey {
            key_id: String::new(),
            public_key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().as_bytes().to_vec(),
            purpose: purpose as i32,
            signing: true,
        };
        let config = FederationConfig {
            catalog_keys: vec![
                key(1, KeyPurpose::Configuration),
                key(2, KeyPurpose::ConsentToken),
                key(3, KeyPurpose::Checkpoint),
                key(4, KeyPurpose::Unspecified),
                CatalogKey {
                    public_key: vec![1, 2, 3],
                    purpose: KeyPurpose::ConsentToken as i32,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let seed = |s: u8| ed25519_dalek::SigningKey::from_bytes(&[s; 32]).verifying_key();
        assert_eq!(config.catalog_keys_for(KeyPurpose::Configuration), vec![seed(1)]);
        assert_eq!(config.catalog_keys_for(KeyPurpose::ConsentToken), vec![seed(2)]);
        assert_eq!(config.catalog_keys_for(KeyPurpose::Checkpoint), vec![seed(3)]);
    }
}
