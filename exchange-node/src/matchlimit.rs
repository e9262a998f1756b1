//! Match stays match (核验, not search): the node limits the distinct values one requester
//! tries for one field of one subject within a window, so that `MatchRecord` cannot be turned
//! into a guessing oracle for a held value.
//!
//! The tries are kept in memory (a node restart forgets them; the access log keeps every
//! match, served or refused, for auditors), under the subject's keyed digest and the SHA-256
//! of the canonical claimed value, never the id or the value in clear. A value already tried
//! within the window does not count again; a request whose claims would go beyond the limit
//! for any field is refused whole and counts nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use exchange_core::digest::sha256;

/// The most distinct values one requester may try for one field of one subject within
/// [`MATCH_WINDOW_MS`].
pub const MATCH_VALUES_PER_WINDOW: usize = 3;

/// The window of [`MATCH_VALUES_PER_WINDOW`]: 24 hours, sliding (a try counts for 24 hours
/// after it was first made).
pub const MATCH_WINDOW_MS: i64 = 24 * 3_600_000;

/// Above this many tracked (requester, subject, field) keys, keys whose tries have all left
/// the window are dropped at the next admission.
const PRUNE_ABOVE: usize = 100_000;

/// Who tries which field of which subject.
type Key = (String, String, String);

/// The digests of the values tried, each with when it was first tried.
type Tries = Vec<([u8; 32], i64)>;

/// A field a request would try beyond the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverLimit {
    /// The field.
    pub field: String,
    /// The distinct values already tried for it within the window.
    pub tried: usize,
}

/// The distinct values tried per (requester, subject digest, field), with when each was
/// first tried.
#[derive(Debug, Default)]
pub struct MatchLimiter {
    tried: Mutex<HashMap<Key, Tries>>,
}

/// The digest under which a claimed value is remembered: SHA-256 of its canonical text.
pub fn value_digest(canonical: &str) -> [u8; 32] {
    sha256(canonical.as_bytes())
}

impl MatchLimiter {
    /// Admits the claims of one request (`claims`: field and value digest, each field once)
    /// by `requester` about the subject `subject_digest` at `now_ms`: all of them, counting
    /// the values not tried yet, or none, naming the first field that would exceed the limit.
    pub fn admit(
        &self,
        requester: &str,
        subject_digest: &str,
        claims: &[(&str, [u8; 32])],
        now_ms: i64,
    ) -> Result<(), OverLimit> {
        let mut tried = self.tried.lock().unwrap_or_else(PoisonError::into_inner);
        let in_window = |at: i64| now_ms.saturating_sub(at) < MATCH_WINDOW_MS;
        if tried.len() > PRUNE_ABOVE {
            tried.retain(|_, values| {
                values.retain(|(_, at)| in_window(*at));
                !values.is_empty()
            });
        }
        let key = |field: &str| (requester.to_string(), subject_digest.to_string(), field.to_string());
        for (field, digest) in claims {
            let Some(values) = tried.get_mut(&key(field)) else { continue };
            values.retain(|(_, at)| in_window(*at));
            if !values.iter().any(|(d, _)| d == digest) && values.len() >= MATCH_VALUES_PER_WINDOW {
                return Err(OverLimit { field: (*field).to_string(), tried: values.len() });
            }
        }
        for (field, digest) in claims {
            let values = tried.entry(key(field)).or_default();
            if !values.iter().any(|(d, _)| d == digest) {
                values.push((*digest, now_ms));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn try_name(l: &MatchLimiter, who: &str, value: &str, at: i64) -> Result<(), OverLimit> {
        l.admit(who, "subject-digest", &[("name", value_digest(value))], at)
    }

    #[test]
    fn at_most_three_distinct_values_per_field_subject_and_requester() {
        let l = MatchLimiter::default();
        for value in ["a", "b", "c"] {
            assert_eq!(try_name(&l, "r", value, 0), Ok(()));
        }
        // Repeating a value tried already costs nothing.
        assert_eq!(try_name(&l, "r", "b", HOUR), Ok(()));
        assert_eq!(try_name(&l, "r", "d", HOUR), Err(OverLimit { field: "name".into(), tried: 3 }));
        // Another requester, another subject or another field has its own count.
        assert_eq!(try_name(&l, "other", "d", HOUR), Ok(()));
        assert_eq!(l.admit("r", "another-subject", &[("name", value_digest("d"))], HOUR), Ok(()));
        assert_eq!(l.admit("r", "subject-digest", &[("birth_date", value_digest("d"))], HOUR), Ok(()));
        // After the window the first tries leave it.
        for value in ["d", "e", "f"] {
            assert_eq!(try_name(&l, "r", value, MATCH_WINDOW_MS), Ok(()));
        }
        assert_eq!(try_name(&l, "r", "g", MATCH_WINDOW_MS + HOUR), Err(OverLimit { field: "name".into(), tried: 3 }));
    }

    #[test]
    fn a_refused_request_counts_nothing() {
        let l = MatchLimiter::default();
        for value in ["a", "b", "c"] {
            assert_eq!(try_name(&l, "r", value, 0), Ok(()));
        }
        let claims = [("birth_date", value_digest("1990-01-01")), ("name", value_digest("z"))];
        assert_eq!(l.admit("r", "subject-digest", &claims, 1), Err(OverLimit { field: "name".into(), tried: 3 }));
        // birth_date was not counted: three fresh values still pass.
        for value in ["1", "2", "3"] {
            assert_eq!(l.admit("r", "subject-digest", &[("birth_date", value_digest(value))], 2), Ok(()));
        }
    }
}
