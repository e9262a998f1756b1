//! The calendar of licence validity: dates are civil dates in China Standard Time (UTC+8,
//! no daylight saving), written `YYYY-MM-DD`, so that they compare as strings; and a
//! licence's standing on a given day follows from its revocation and its validity dates.

/// The civil date (`YYYY-MM-DD`) in China Standard Time of an instant in Unix milliseconds.
pub fn date_cst(unix_ms: i64) -> String {
    let days = (unix_ms + 8 * 3_600_000).div_euclid(86_400_000);
    // Civil-from-days (H. Hinnant), valid for every day a licence can carry.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Where a licence stands on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In force.
    Valid,
    /// Its validity has not begun.
    NotYetValid,
    /// Its validity has ended.
    Expired,
    /// Revoked by its issuer (whatever the dates say).
    Revoked,
}

/// The standing on `day` (`YYYY-MM-DD`) of a licence valid from `valid_from` to `valid_until`
/// inclusive (each empty when open-ended); revocation overrides the dates.
pub fn standing(revoked: bool, valid_from: &str, valid_until: &str, day: &str) -> Standing {
    if revoked {
        Standing::Revoked
    } else if !valid_from.is_empty() && day < valid_from {
        Standing::NotYetValid
    } else if !valid_until.is_empty() && day > valid_until {
        Standing::Expired
    } else {
        Standing::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_china_standard_time() {
        assert_eq!(date_cst(0), "1970-01-01");
        // 1970-01-01 16:00 UTC is already the 2nd in Beijing.
        assert_eq!(date_cst(16 * 3_600_000), "1970-01-02");
        assert_eq!(date_cst(16 * 3_600_000 - 1), "1970-01-01");
        // 2024-02-29 (leap day), 2000-03-01 (century leap year), before the epoch.
        assert_eq!(date_cst(1_709_164_800_000), "2024-02-29");
        assert_eq!(date_cst(951_868_800_000 - 8 * 3_600_000), "2000-03-01");
        assert_eq!(date_cst(-86_400_000 - 8 * 3_600_000), "1969-12-31");
    }

    #[test]
    fn standing_follows_revocation_then_dates_inclusive() {
        let day = "2026-12-02";
        assert_eq!(standing(false, "2026-12-02", "2026-12-02", day), Standing::Valid);
        assert_eq!(standing(false, "2026-12-03", "", day), Standing::NotYetValid);
        assert_eq!(standing(false, "", "2026-12-01", day), Standing::Expired);
        assert_eq!(standing(false, "", "", day), Standing::Valid);
        assert_eq!(standing(true, "", "", day), Standing::Revoked);
        assert_eq!(standing(true, "2030-01-01", "2020-01-01", day), Standing::Revoked);
    }
}
