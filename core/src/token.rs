//! Consent tokens: short-lived EdDSA (Ed25519) JWTs issued by the catalog.
//!
//! A token says: subject `sub` lets requester `req` read fields `fld` of dataset `ds`, held by
//! the provider `aud`, for purpose `pur`, until `exp`; `jti` is the consent id, so that a
//! revocation of the consent reaches every token issued for it.
//!
//! Verification is strict and ordered, and each refusal names the check that failed:
//! size (at most [`MAX_TOKEN_BYTES`], checked before any parsing), header (algorithm pinned to
//! EdDSA: `none` and HMAC are refused; no `crit`), key id, signature (through `jsonwebtoken`,
//! then again with Ed25519 `verify_strict`, which `jsonwebtoken` does not use), required
//! claims, issuer, issue time not in the future, lifetime at most
//! [`MAX_TOKEN_LIFETIME_SECS`], validity window against the caller's clock, and then the query
//! binding (audience, requester, subject id and kind, dataset, purpose), as RFC 8725 asks. Revocation is the caller's: it holds the revocation
//! list of the federation configuration and calls [`VerifiedConsent::check_not_revoked`].

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::digest::key_id;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Leeway allowed for clock skew between the catalog and a node, in seconds.
pub const CLOCK_SKEW_LEEWAY_SECS: i64 = 5;

/// The longest lifetime (`exp - iat`) of a token the catalog may issue, in seconds; a token
/// claiming a longer one is refused, whoever signed it (RFC 8725 §3.10: short-lived).
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 3600;

/// The claims of a consent token, as they travel in the JWT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentClaims {
    /// Issuer: the catalog's name (its log origin).
    pub iss: String,
    /// Audience: the provider department whose node serves the data.
    pub aud: String,
    /// Subject: the resident ID or credit code of the data subject.
    pub sub: String,
    /// The subject's kind: `person` or `organisation`.
    pub sub_kind: String,
    /// The requester department the consent was given to.
    pub req: String,
    /// The dataset id.
    pub ds: String,
    /// The consented fields.
    pub fld: Vec<String>,
    /// The purpose code.
    pub pur: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The consent id.
    pub jti: String,
}

/// Why a token was refused. Messages never contain the subject id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("consent token is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not three base64url parts with a JSON header and claims.
    #[error("consent token is malformed: {0}")]
    Malformed(String),
    /// The header names another algorithm than EdDSA.
    #[error("consent token algorithm {0} is refused: only EdDSA (Ed25519) is accepted")]
    AlgorithmRefused(String),
    /// The header has a `crit` member (RFC 7515 §4.1.11): no extension is understood here,
    /// and an empty list is itself invalid.
    #[error("consent token header names critical extensions (crit), none of which is understood")]
    CriticalHeader,
    /// The header names no key id or one the verifier does not know.
    #[error("consent token key id {0:?} is not a known catalog key")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("consent token signature does not verify against the catalog key")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("consent token claim {0} is missing or malformed")]
    BadClaim(String),
    /// Issued by someone else.
    #[error("consent token issuer {found:?} is not the catalog {expected:?}")]
    WrongIssuer {
        /// The catalog's name.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// Expired.
    #[error("consent token expired at {exp} (now {now}): ask the catalog for a new one")]
    Expired {
        /// Its `exp`, Unix seconds.
        exp: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Issued in the future, beyond the clock-skew leeway.
    #[error("consent token is issued at {iat}, in the future (now {now}): the issuer's clock is wrong")]
    IssuedInFuture {
        /// Its `iat`.
        iat: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Valid for longer than the catalog ever issues.
    #[error("consent token lives {lifetime} s (iat to exp), more than the {max} s a consent token may live")]
    LifetimeTooLong {
        /// `exp - iat`, seconds.
        lifetime: i64,
        /// [`MAX_TOKEN_LIFETIME_SECS`].
        max: i64,
    },
    /// Not valid yet.
    #[error("consent token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// Its `nbf`.
        nbf: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// Issued for another provider.
    #[error("consent token is for provider {found}, not {expected}")]
    WrongAudience {
        /// This provider.
        expected: String,
        /// The token's `aud`.
        found: String,
    },
    /// Issued to another requester.
    #[error("consent token was issued to {found}, not to the caller {expected}")]
    WrongRequester {
        /// The authenticated caller.
        expected: String,
        /// The token's `req`.
        found: String,
    },
    /// About another subject, or the same id as another kind of subject (ids are not
    /// repeated here: they are personal data).
    #[error("consent token is about another subject than the one queried")]
    WrongSubject,
    /// For another dataset.
    #[error("consent token covers dataset {found}, not {expected}")]
    WrongDataset {
        /// The queried dataset.
        expected: String,
        /// The token's `ds`.
        found: String,
    },
    /// For another purpose.
    #[error("consent token covers purpose {found}, not {expected}")]
    WrongPurpose {
        /// The query's purpose.
        expected: String,
        /// The token's `pur`.
        found: String,
    },
    /// The consent was revoked.
    #[error("consent {0} was revoked by the subject")]
    Revoked(String),
}

/// Issues consent tokens with the catalog's Ed25519 key.
pub struct TokenIssuer {
    issuer: String,
    key_id: String,
    encoding_key: EncodingKey,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .field("encoding_key", &"<hidden>")
            .finish()
    }
}

impl TokenIssuer {
    /// An issuer named `issuer` signing with `key`.
    pub fn new(issuer: impl Into<String>, key: &SigningKey) -> Result<Self, TokenError> {
        let der =
            key.to_pkcs8_der().map_err(|e| TokenError::Malformed(format!("signing key cannot be encoded: {e}")))?;
        Ok(Self {
            issuer: issuer.into(),
            key_id: key_id(key.verifying_key().as_bytes()),
            encoding_key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// The issuer name put in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id put in the header's `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `claims` (whose `iss` is overwritten with this issuer's name).
    pub fn issue(&self, mut claims: ConsentClaims) -> Result<String, TokenError> {
        claims.iss = self.issuer.clone();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|e| TokenError::Malformed(format!("cannot sign token: {e}")))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
        }
        Ok(token)
    }
}

struct VerifierKey {
    key_id: String,
    verifying_key: VerifyingKey,
    decoding_key: DecodingKey,
}

/// Verifies consent tokens against the catalog's keys (several, so that keys can rotate).
pub struct TokenVerifier {
    issuer: String,
    keys: Vec<VerifierKey>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.key_id.as_str()).collect();
        f.debug_struct("TokenVerifier").field("issuer", &self.issuer).field("key_ids", &ids).finish()
    }
}

/// What a query claims, which a token must match.
#[derive(Clone, Debug)]
pub struct TokenExpectation<'a> {
    /// This provider's department id.
    pub audience: &'a str,
    /// The authenticated requester.
    pub requester: &'a str,
    /// The queried subject id (canonical form).
    pub subject: &'a str,
    /// The queried subject's kind (`person` or `organisation`), bound like the id.
    pub subject_kind: &'a str,
    /// The queried dataset id.
    pub dataset: &'a str,
    /// The query's purpose code.
    pub purpose: &'a str,
}

/// A token whose signature, validity and binding were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedConsent {
    /// The verified claims.
    pub claims: ConsentClaims,
}

impl VerifiedConsent {
    /// The consent id (`jti`).
    pub fn consent_id(&self) -> &str {
        &self.claims.jti
    }

    /// The consented fields.
    pub fn fields(&self) -> BTreeSet<String> {
        self.claims.fld.iter().cloned().collect()
    }

    /// Refuses a revoked consent; `is_revoked` asks the caller's revocation list.
    pub fn check_not_revoked(&self, is_revoked: impl Fn(&str) -> bool) -> Result<(), TokenError> {
        if is_revoked(&self.claims.jti) {
            return Err(TokenError::Revoked(self.claims.jti.clone()));
        }
        Ok(())
    }

    /// Whether the token is still within its validity window at `now_secs`.
    pub fn is_current(&self, now_secs: i64) -> bool {
        now_secs < self.claims.exp + CLOCK_SKEW_LEEWAY_SECS && now_secs + CLOCK_SKEW_LEEWAY_SECS >= self.claims.nbf
    }
}

impl TokenVerifier {
    /// A verifier for tokens of `issuer` signed by any of `keys`.
    pub fn new(issuer: impl Into<String>, keys: &[VerifyingKey]) -> Self {
        let keys = keys
            .iter()
            .map(|k| VerifierKey {
                key_id: key_id(k.as_bytes()),
                verifying_key: *k,
                decoding_key: DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(k.as_bytes()))
                    .unwrap_or_else(|_| DecodingKey::from_ed_der(k.as_bytes())),
            })
            .collect();
        Self { issuer: issuer.into(), keys }
    }

    /// Checks a token's form, signature and validity at `now_secs` (Unix seconds), but not
    /// yet its binding to a query. The result can be cached until it expires.
    pub fn verify_signature(&self, token: &str, now_secs: i64) -> Result<VerifiedConsent, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts".into()));
        };
        // The header is read by hand first so that `alg: none` and unknown algorithms get a
        // precise refusal instead of a parse error.
        let header_json =
            URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| TokenError::Malformed("header is not base64url".into()))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed("header is not JSON".into()))?;
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("");
        if alg != "EdDSA" {
            return Err(TokenError::AlgorithmRefused(if alg.is_empty() { "(missing)".into() } else { alg.into() }));
        }
        if header.get("crit").is_some() {
            return Err(TokenError::CriticalHeader);
        }
        let kid = header.get("kid").and_then(|k| k.as_str()).unwrap_or("");
        let key = self.keys.iter().find(|k| k.key_id == kid).ok_or_else(|| TokenError::UnknownKey(kid.to_string()))?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time and audience are checked below against the caller's clock and query, so that
        // each failure gets its own precise refusal and this crate reads no clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "sub", "iss"]);
        let data = jsonwebtoken::decode::<ConsentClaims>(token, &key.decoding_key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => TokenError::BadClaim(c.clone()),
            jsonwebtoken::errors::ErrorKind::Json(_) => {
                TokenError::BadClaim("set (a claim is missing or has the wrong type)".into())
            }
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::AlgorithmRefused(alg.into()),
            other => TokenError::Malformed(format!("{other:?}")),
        })?;
        // jsonwebtoken verifies Ed25519 non-strictly; insist on the strict rules too (no
        // small-order keys or non-canonical signatures).
        let sig_bytes =
            URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| TokenError::Malformed("signature is not base64url".into()))?;
        let signature = Signature::from_slice(&sig_bytes).map_err(|_| TokenError::BadSignature)?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        key.verifying_key.verify_strict(signed.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;

        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer { expected: self.issuer.clone(), found: claims.iss });
        }
        if claims.iat > now_secs + CLOCK_SKEW_LEEWAY_SECS {
            return Err(TokenError::IssuedInFuture { iat: claims.iat, now: now_secs });
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime > MAX_TOKEN_LIFETIME_SECS {
            return Err(TokenError::LifetimeTooLong { lifetime, max: MAX_TOKEN_LIFETIME_SECS });
        }
        if now_secs >= claims.exp + CLOCK_SKEW_LEEWAY_SECS {
            return Err(TokenError::Expired { exp: claims.exp, now: now_secs });
        }
        if now_secs + CLOCK_SKEW_LEEWAY_SECS < claims.nbf {
            return Err(TokenError::NotYetValid { nbf: claims.nbf, now: now_secs });
        }
        if claims.jti.is_empty() {
            return Err(TokenError::BadClaim("jti".into()));
        }
        Ok(VerifiedConsent { claims })
    }

    /// Checks a verified token's binding to a query: audience, requester, subject, dataset,
    /// purpose, in that order.
    pub fn check_binding(consent: &VerifiedConsent, expected: &TokenExpectation<'_>) -> Result<(), TokenError> {
        let c = &consent.claims;
        if c.aud != expected.audience {
            return Err(TokenError::WrongAudience { expected: expected.audience.into(), found: c.aud.clone() });
        }
        if c.req != expected.requester {
            return Err(TokenError::WrongRequester { expected: expected.requester.into(), found: c.req.clone() });
        }
        if c.sub != expected.subject || c.sub_kind != expected.subject_kind {
            return Err(TokenError::WrongSubject);
        }
        if c.ds != expected.dataset {
            return Err(TokenError::WrongDataset { expected: expected.dataset.into(), found: c.ds.clone() });
        }
        if c.pur != expected.purpose {
            return Err(TokenError::WrongPurpose { expected: expected.purpose.into(), found: c.pur.clone() });
        }
        Ok(())
    }

    /// Verifies a token and its binding in one step.
    pub fn verify(
        &self,
        token: &str,
        expected: &TokenExpectation<'_>,
        now_secs: i64,
    ) -> Result<VerifiedConsent, TokenError> {
        let consent = self.verify_signature(token, now_secs)?;
        Self::check_binding(&consent, expected)?;
        Ok(consent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: i64 = 1_800_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims() -> ConsentClaims {
        ConsentClaims {
            iss: "catalog.sz".into(),
            aud: "gov.sz.psb".into(),
            sub: "11010519491231002X".into(),
            sub_kind: "person".into(),
            req: "gov.sz.hcb".into(),
            ds: "gov.sz.psb/population".into(),
            fld: vec!["name".into(), "status".into()],
            pur: "SZ-HCB-ZLBA-001".into(),
            iat: NOW - 10,
            nbf: NOW - 10,
            exp: NOW + 300,
            jti: "consent-1".into(),
        }
    }

    fn expectation() -> TokenExpectation<'static> {
        TokenExpectation {
            audience: "gov.sz.psb",
            requester: "gov.sz.hcb",
            subject: "11010519491231002X",
            subject_kind: "person",
            dataset: "gov.sz.psb/population",
            purpose: "SZ-HCB-ZLBA-001",
        }
    }

    fn issue(c: ConsentClaims) -> String {
        let issuer = TokenIssuer::new("catalog.sz", &key(1)).expect("issuer");
        issuer.issue(c).expect("issue")
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new("catalog.sz", &[key(9).verifying_key(), key(1).verifying_key()])
    }

    fn check(token: &str, expected: Result<(), TokenError>) {
        let got = verifier().verify(token, &expectation(), NOW).map(|_| ());
        assert_eq!(got, expected, "token {token}");
    }

    fn forge(header: &str, claims: &ConsentClaims, sig: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"));
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn accepts_a_good_token() {
        let token = issue(claims());
        let v = verifier().verify(&token, &expectation(), NOW).expect("valid");
        assert_eq!(v.consent_id(), "consent-1");
        assert_eq!(v.fields().len(), 2);
        assert!(v.check_not_revoked(|id| id == "other").is_ok());
        assert_eq!(v.check_not_revoked(|id| id == "consent-1"), Err(TokenError::Revoked("consent-1".into())));
    }

    #[test]
    fn refuses_each_binding_mismatch() {
        let mut c = claims();
        c.aud = "gov.sz.amr".into();
        check(&issue(c), Err(TokenError::WrongAudience { expected: "gov.sz.psb".into(), found: "gov.sz.amr".into() }));
        let mut c = claims();
        c.req = "gov.sz.ca".into();
        check(&issue(c), Err(TokenError::WrongRequester { expected: "gov.sz.hcb".into(), found: "gov.sz.ca".into() }));
        let mut c = claims();
        c.sub = "440524188001010014".into();
        check(&issue(c), Err(TokenError::WrongSubject));
        let mut c = claims();
        c.ds = "gov.sz.psb/household".into();
        check(
            &issue(c),
            Err(TokenError::WrongDataset {
                expected: "gov.sz.psb/population".into(),
                found: "gov.sz.psb/household".into(),
            }),
        );
        let mut c = claims();
        c.pur = "OTHER".into();
        check(&issue(c), Err(TokenError::WrongPurpose { expected: "SZ-HCB-ZLBA-001".into(), found: "OTHER".into() }));
    }

    #[test]
    fn refuses_expired_and_not_yet_valid() {
        let mut c = claims();
        c.exp = NOW - 60;
        check(&issue(c), Err(TokenError::Expired { exp: NOW - 60, now: NOW }));
        let mut c = claims();
        c.nbf = NOW + 60;
        check(&issue(c), Err(TokenError::NotYetValid { nbf: NOW + 60, now: NOW }));
    }

    #[test]
    fn refuses_none_hmac_unknown_key_and_other_signer() {
        let kid = key_id(key(1).verifying_key().as_bytes());
        let none = forge(&format!(r#"{{"alg":"none","kid":"{kid}"}}"#), &claims(), b"");
        check(&none, Err(TokenError::AlgorithmRefused("none".into())));
        // HS256 "signed" with the catalog's public key as the secret: the classic confusion.
        let hs = forge(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &claims(), &[0u8; 32]);
        check(&hs, Err(TokenError::AlgorithmRefused("HS256".into())));
        let other = TokenIssuer::new("catalog.sz", &key(7)).expect("issuer").issue(claims()).expect("issue");
        let other_kid = key_id(key(7).verifying_key().as_bytes());
        check(&other, Err(TokenError::UnknownKey(other_kid)));
        // Right kid, wrong signer.
        let good = issue(claims());
        let (signed, _) = good.rsplit_once('.').expect("parts");
        let forged_sig = ed25519_dalek::Signer::sign(&key(7), signed.as_bytes());
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(forged_sig.to_bytes()));
        check(&forged, Err(TokenError::BadSignature));
    }

    #[test]
    fn refuses_oversized_and_garbage_before_parsing() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        check(&big, Err(TokenError::TooLarge { len: MAX_TOKEN_BYTES + 1, max: MAX_TOKEN_BYTES }));
        assert!(matches!(verifier().verify("x.y", &expectation(), NOW), Err(TokenError::Malformed(_))));
        assert!(matches!(verifier().verify("!!.!!.!!", &expectation(), NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn refuses_tampered_claims() {
        let good = issue(claims());
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let mut c = claims();
        c.fld.push("photo".into());
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        check(&parts.join("."), Err(TokenError::BadSignature));
    }

    #[test]
    fn refuses_wrong_issuer() {
        let t = TokenIssuer::new("someone.else", &key(1)).expect("issuer").issue(claims()).expect("issue");
        check(&t, Err(TokenError::WrongIssuer { expected: "catalog.sz".into(), found: "someone.else".into() }));
    }

    /// A token with `header`, signed properly by the catalog's key (1), so that a refusal
    /// comes from what the header or claims say, not from the signature.
    fn signed(header: &str, c: &ConsentClaims) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("json"));
        let sig = ed25519_dalek::Signer::sign(&key(1), format!("{h}.{body}").as_bytes());
        format!("{h}.{body}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    #[test]
    fn refuses_critical_header_extensions_even_an_empty_list() {
        let kid = key_id(key(1).verifying_key().as_bytes());
        let mut c = claims();
        c.iss = "catalog.sz".into();
        // The same header without crit verifies: the refusals below are about crit alone.
        check(&signed(&format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#), &c), Ok(()));
        let unknown = format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp-ext"],"exp-ext":1}}"#);
        check(&signed(&unknown, &c), Err(TokenError::CriticalHeader));
        check(&signed(&format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":[]}}"#), &c), Err(TokenError::CriticalHeader));
    }

    #[test]
    fn refuses_a_future_issue_time_and_a_long_lifetime() {
        let mut c = claims();
        c.iat = NOW + 3600;
        c.nbf = NOW - 10;
        check(&issue(c), Err(TokenError::IssuedInFuture { iat: NOW + 3600, now: NOW }));
        // Within the clock-skew leeway is fine.
        let mut c = claims();
        c.iat = NOW + CLOCK_SKEW_LEEWAY_SECS;
        check(&issue(c), Ok(()));
        let mut c = claims();
        c.exp = c.iat + 3 * 365 * 86_400;
        check(&issue(c), Err(TokenError::LifetimeTooLong { lifetime: 3 * 365 * 86_400, max: MAX_TOKEN_LIFETIME_SECS }));
        let mut c = claims();
        c.exp = c.iat + MAX_TOKEN_LIFETIME_SECS;
        check(&issue(c), Ok(()));
    }

    #[test]
    fn binds_the_subject_kind() {
        let mut c = claims();
        c.sub_kind = "organisation".into();
        check(&issue(c), Err(TokenError::WrongSubject));
    }

    #[test]
    fn debug_hides_key_material() {
        let issuer = TokenIssuer::new("catalog.sz", &key(1)).expect("issuer");
        let text = format!("{issuer:?}");
        assert!(text.contains("<hidden>"));
    }
}
