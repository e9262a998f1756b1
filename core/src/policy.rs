//! Access policy: may this requester have these fields of this dataset for this purpose?
//!
//! The fields an answer may carry are requested ∩ granted ∩ consented. A query that names a
//! field outside its grant or consent is refused (not silently trimmed), so that a calling
//! system learns at once that its request exceeds what it may read; a query that names no
//! field gets every field the grant and the consent allow.
//!
//! Everything here is a pure function of its inputs; the current time is passed in.

use std::collections::BTreeSet;

use crate::schema::Schema;

/// A grant as a node holds it from the federation configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantTerms {
    /// Grant id.
    pub id: String,
    /// Requester department id.
    pub requester: String,
    /// Dataset id.
    pub dataset: String,
    /// Purpose codes covered.
    pub purposes: BTreeSet<String>,
    /// Fields covered.
    pub fields: BTreeSet<String>,
    /// Whether each query needs a consent token.
    pub consent_required: bool,
    /// Queries per minute, 0 = no limit.
    pub rate_limit_per_minute: u32,
    /// Expiry, Unix ms; `None` = none.
    pub expires_at_ms: Option<i64>,
}

/// The query being decided.
#[derive(Clone, Debug)]
pub struct QueryScope<'a> {
    /// The authenticated requester.
    pub requester: &'a str,
    /// The dataset.
    pub dataset: &'a str,
    /// The purpose code.
    pub purpose: &'a str,
    /// Requested fields; empty = all allowed.
    pub requested: &'a BTreeSet<String>,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// Why a query is refused by policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No approved grant for requester and dataset.
    #[error("{requester} holds no approved grant for {dataset}: apply for one at the catalog")]
    NoGrant {
        /// Requester.
        requester: String,
        /// Dataset.
        dataset: String,
    },
    /// Every grant for requester and dataset has expired.
    #[error("grant {grant} for {dataset} expired: ask the provider to renew it")]
    GrantExpired {
        /// The most recent grant.
        grant: String,
        /// Dataset.
        dataset: String,
    },
    /// No grant covers the purpose.
    #[error("purpose {purpose} is not covered by any grant for {dataset} (granted: {granted})")]
    PurposeNotGranted {
        /// The purpose asked.
        purpose: String,
        /// Dataset.
        dataset: String,
        /// The purposes granted, comma-separated.
        granted: String,
    },
    /// A requested field is not in the schema.
    #[error("field {field} is not in schema {schema}")]
    FieldNotInSchema {
        /// The field.
        field: String,
        /// The schema reference.
        schema: String,
    },
    /// A requested field is not granted.
    #[error("field {field} is not granted for {dataset} and purpose {purpose}")]
    FieldNotGranted {
        /// The field.
        field: String,
        /// Dataset.
        dataset: String,
        /// Purpose.
        purpose: String,
    },
    /// The query needs consent and carried no token.
    #[error("{dataset} holds personal data: the query needs a consent token from the catalog")]
    ConsentRequired {
        /// Dataset.
        dataset: String,
    },
    /// A requested field is not consented.
    #[error("field {field} is not covered by the subject's consent")]
    FieldNotConsented {
        /// The field.
        field: String,
    },
}

/// What policy allows for a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The grant that allows it.
    pub grant_id: String,
    /// Its rate limit per minute (0 = none).
    pub rate_limit_per_minute: u32,
    /// The fields the answer carries.
    pub fields: BTreeSet<String>,
    /// Whether a consent token must be (and was) checked.
    pub consent_needed: bool,
}

/// Chooses the grant for a query and the fields it allows, before consent.
///
/// `grants` are the approved grants of the federation configuration; those of other
/// requesters and datasets are ignored. Consent is checked afterwards with
/// [`apply_consent`], once the token has been verified.
pub fn decide(grants: &[GrantTerms], schema: &Schema, query: &QueryScope<'_>) -> Result<Decision, PolicyError> {
    for field in query.requested {
        if schema.field(field).is_none() {
            return Err(PolicyError::FieldNotInSchema { field: field.clone(), schema: schema.reference.to_string() });
        }
    }
    let mine: Vec<&GrantTerms> =
        grants.iter().filter(|g| g.requester == query.requester && g.dataset == query.dataset).collect();
    if mine.is_empty() {
        return Err(PolicyError::NoGrant { requester: query.requester.into(), dataset: query.dataset.into() });
    }
    let live: Vec<&GrantTerms> =
        mine.iter().copied().filter(|g| g.expires_at_ms.is_none_or(|exp| query.now_ms < exp)).collect();
    if live.is_empty() {
        let latest = mine.iter().max_by_key(|g| g.expires_at_ms).map(|g| g.id.clone()).unwrap_or_default();
        return Err(PolicyError::GrantExpired { grant: latest, dataset: query.dataset.into() });
    }
    let for_purpose: Vec<&GrantTerms> = live.iter().copied().filter(|g| g.purposes.contains(query.purpose)).collect();
    if for_purpose.is_empty() {
        let granted: BTreeSet<&str> = live.iter().flat_map(|g| g.purposes.iter().map(String::as_str)).collect();
        return Err(PolicyError::PurposeNotGranted {
            purpose: query.purpose.into(),
            dataset: query.dataset.into(),
            granted: granted.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    // The first grant that covers every requested field wins; grants are few per pair.
    let chosen = for_purpose.iter().find(|g| query.requested.iter().all(|f| g.fields.contains(f)));
    let Some(grant) = chosen else {
        let union: BTreeSet<&String> = for_purpose.iter().flat_map(|g| g.fields.iter()).collect();
        let field = query.requested.iter().find(|f| !union.contains(f)).cloned().unwrap_or_else(|| {
            // Every field is granted by some grant, but no single grant covers them all.
            query.requested.iter().next().cloned().unwrap_or_default()
        });
        return Err(PolicyError::FieldNotGranted {
            field,
            dataset: query.dataset.into(),
            purpose: query.purpose.into(),
        });
    };
    let fields: BTreeSet<String> = if query.requested.is_empty() {
        grant.fields.iter().filter(|f| schema.field(f).is_some()).cloned().collect()
    } else {
        query.requested.clone()
    };
    let personal = fields.iter().any(|f| schema.field(f).is_some_and(|spec| spec.classification.is_personal()));
    Ok(Decision {
        grant_id: grant.id.clone(),
        rate_limit_per_minute: grant.rate_limit_per_minute,
        fields,
        consent_needed: grant.consent_required || personal,
    })
}

/// Narrows a decision by the consented fields. With an explicit request every requested
/// field must be consented; with an empty request the answer keeps the consented ones.
pub fn apply_consent(
    decision: &Decision,
    requested: &BTreeSet<String>,
    consented: &BTreeSet<String>,
) -> Result<BTreeSet<String>, PolicyError> {
    if let Some(field) = requested.iter().find(|f| !consented.contains(*f)) {
        return Err(PolicyError::FieldNotConsented { field: field.clone() });
    }
    Ok(decision.fields.intersection(consented).cloned().collect())
}

/// A per-key rate limiter state for one grant: the generic cell rate algorithm (GCRA), which
/// keeps one timestamp per key and allows a burst of the whole minute's quota.
///
/// Time is counted in nanoseconds so that every limit a grant can state is honoured as it
/// is: in milliseconds, 60,000 a minute would be one per millisecond and anything above it
/// would round to no spacing at all, that is, no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    /// Theoretical arrival time of the next request, Unix ns.
    tat_ns: i64,
}

const NS_PER_MS: i64 = 1_000_000;
const MINUTE_NS: i64 = 60_000 * NS_PER_MS;

impl RateState {
    /// Tries to admit one request at `now_ms` under `per_minute` (0 = unlimited). On refusal
    /// returns the milliseconds after which a retry will be admitted.
    pub fn admit(&mut self, per_minute: u32, now_ms: i64) -> Result<(), u64> {
        if per_minute == 0 {
            return Ok(());
        }
        // At least 1 ns apart: u32::MAX a minute is about 14 µs apart, so never 0.
        let interval = (MINUTE_NS / i64::from(per_minute)).max(1);
        let burst = MINUTE_NS - interval;
        let now = now_ms.saturating_mul(NS_PER_MS);
        let tat = self.tat_ns.max(now);
        let allowed_at = tat - burst;
        if now < allowed_at {
            let wait_ms = (allowed_at - now + NS_PER_MS - 1) / NS_PER_MS;
            return Err(u64::try_from(wait_ms).unwrap_or(0).max(1));
        }
        self.tat_ns = tat + interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn schema() -> Schema {
        serde_json::from_str(
            r#"{
              "reference": "std.record.population@1",
              "title_zh": "人口基础信息", "title_en": "Population record",
              "key_field": "id_number", "holder_field": null,
              "fields": [
                {"name": "id_number", "type": {"type": "resident_id"}, "required": true, "classification": "personal", "label_zh": "身份证号", "label_en": "ID number"},
                {"name": "name", "type": {"type": "string", "max_len": 50}, "required": true, "classification": "personal", "label_zh": "姓名", "label_en": "Name"},
                {"name": "status", "type": {"type": "enum", "values": ["normal", "deceased"]}, "required": true, "classification": "internal", "label_zh": "状态", "label_en": "Status"},
                {"name": "district", "type": {"type": "string", "max_len": 50}, "required": false, "classification": "public", "label_zh": "辖区", "label_en": "District"}
              ]
            }"#,
        )
        .expect("schema json")
    }

    fn grant(id: &str, purposes: &[&str], fields: &[&str], expires: Option<i64>) -> GrantTerms {
        GrantTerms {
            id: id.into(),
            requester: "gov.sz.hcb".into(),
            dataset: "gov.sz.psb/population".into(),
            purposes: set(purposes),
            fields: set(fields),
            consent_required: false,
            rate_limit_per_minute: 0,
            expires_at_ms: expires,
        }
    }

    fn check(
        grants: &[GrantTerms],
        purpose: &str,
        requested: &[&str],
        expected: Result<(&str, &[&str], bool), PolicyError>,
    ) {
        let requested = set(requested);
        let q = QueryScope {
            requester: "gov.sz.hcb",
            dataset: "gov.sz.psb/population",
            purpose,
            requested: &requested,
            now_ms: 1_000,
        };
        let got = decide(grants, &schema(), &q);
        match expected {
            Ok((grant, fields, consent)) => {
                let d = got.expect("allowed");
                assert_eq!(d.grant_id, grant);
                assert_eq!(d.fields, set(fields));
                assert_eq!(d.consent_needed, consent);
            }
            Err(e) => assert_eq!(got, Err(e)),
        }
    }

    #[test]
    fn decides_the_table() {
        let g1 = grant("g1", &["RENT"], &["name", "status"], None);
        let g2 = grant("g2", &["RENT"], &["status", "district"], Some(5_000));
        let old = grant("g0", &["RENT"], &["name"], Some(500));
        check(std::slice::from_ref(&g1), "RENT", &["status"], Ok(("g1", &["status"], false)));
        check(std::slice::from_ref(&g1), "RENT", &[], Ok(("g1", &["name", "status"], true)));
        check(&[g1.clone(), g2.clone()], "RENT", &["district"], Ok(("g2", &["district"], false)));
        check(
            &[],
            "RENT",
            &[],
            Err(PolicyError::NoGrant { requester: "gov.sz.hcb".into(), dataset: "gov.sz.psb/population".into() }),
        );
        check(
            std::slice::from_ref(&old),
            "RENT",
            &[],
            Err(PolicyError::GrantExpired { grant: "g0".into(), dataset: "gov.sz.psb/population".into() }),
        );
        check(
            &[g1.clone(), old],
            "TAX",
            &[],
            Err(PolicyError::PurposeNotGranted {
                purpose: "TAX".into(),
                dataset: "gov.sz.psb/population".into(),
                granted: "RENT".into(),
            }),
        );
        check(
            std::slice::from_ref(&g1),
            "RENT",
            &["district"],
            Err(PolicyError::FieldNotGranted {
                field: "district".into(),
                dataset: "gov.sz.psb/population".into(),
                purpose: "RENT".into(),
            }),
        );
        check(
            &[g1],
            "RENT",
            &["photo"],
            Err(PolicyError::FieldNotInSchema { field: "photo".into(), schema: "std.record.population@1".into() }),
        );
    }

    #[test]
    fn consent_narrows_or_refuses() {
        let d = Decision {
            grant_id: "g".into(),
            rate_limit_per_minute: 0,
            fields: set(&["name", "status"]),
            consent_needed: true,
        };
        assert_eq!(apply_consent(&d, &set(&[]), &set(&["name"])), Ok(set(&["name"])));
        let explicit = Decision { fields: set(&["name"]), ..d.clone() };
        assert_eq!(apply_consent(&explicit, &set(&["name"]), &set(&["name", "status"])), Ok(set(&["name"])));
        assert_eq!(
            apply_consent(&d, &set(&["status"]), &set(&["name"])),
            Err(PolicyError::FieldNotConsented { field: "status".into() })
        );
    }

    #[test]
    fn rate_limit_allows_the_quota_then_says_when() {
        let mut s = RateState::default();
        for _ in 0..6 {
            assert_eq!(s.admit(6, 0), Ok(()));
        }
        let wait = s.admit(6, 0).expect_err("seventh refused");
        assert_eq!(wait, 10_000);
        assert_eq!(s.admit(6, 10_000), Ok(()));
        // Limits above one a millisecond are honoured too (they once became no limit).
        for per_minute in [60_000, 90_000, 1_000_000] {
            let mut s = RateState::default();
            let quota = (0..2_000_000).take_while(|_| s.admit(per_minute, 5).is_ok()).count();
            assert_eq!(quota, per_minute as usize, "{per_minute} a minute admits its quota at once, then refuses");
            assert_eq!(s.admit(per_minute, 5), Err(1), "{per_minute}: the next is admitted within a millisecond");
        }
        let mut unlimited = RateState::default();
        for _ in 0..1000 {
            assert_eq!(unlimited.admit(0, 0), Ok(()));
        }
    }
}
