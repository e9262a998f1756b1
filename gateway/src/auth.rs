//! Which calling system is calling: a bearer token per system, of which the gateway keeps
//! only the SHA-256.

use axum::http::HeaderMap;
use sha2::{Digest as _, Sha256};

use crate::config::CallerConfig;
use crate::error::ApiError;

/// The calling systems the gateway knows.
#[derive(Clone, Debug)]
pub struct Callers {
    known: Vec<(String, [u8; 32])>,
}

impl Callers {
    /// From checked configuration entries.
    pub fn new(callers: &[CallerConfig]) -> Callers {
        let known = callers
            .iter()
            .filter_map(|c| {
                let digest: [u8; 32] = hex::decode(&c.token_sha256).ok()?.try_into().ok()?;
                Some((c.name.clone(), digest))
            })
            .collect();
        Callers { known }
    }

    /// The name of the system whose token the `Authorization: Bearer` header carries.
    ///
    /// Tokens are compared by their SHA-256: what a timing difference could reveal is a
    /// prefix of a digest, which says nothing usable about any token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let value = headers.get(axum::http::header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("no Authorization header: send `Authorization: Bearer <token>`")
        })?;
        let text = value.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"))?;
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        self.known
            .iter()
            .find(|(_, d)| *d == digest)
            .map(|(name, _)| name.clone())
            .ok_or_else(|| ApiError::unauthenticated("the bearer token is not one of a configured calling system"))
    }
}

/// A new random token for a calling system, and its SHA-256 in hex for the configuration.
pub fn new_token() -> (String, String) {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    (token, digest)
}
