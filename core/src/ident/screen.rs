//! Finding personal identifiers in free text that is about to leave its department (trace
//! ids, reasons, notes bound for the central access log), so that it can be refused before
//! anything is logged.

use super::{CreditCode, ResidentId};

/// What kind of identifier [`find_identifier`] found. It never carries the identifier itself:
/// the caller must not log what it is refusing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoundIdentifier {
    /// A valid resident ID (GB 11643).
    ResidentId,
    /// A valid unified social credit code (GB 32100).
    CreditCode,
}

impl FoundIdentifier {
    /// A short name for messages ("a resident ID").
    pub fn describe(self) -> &'static str {
        match self {
            Self::ResidentId => "a resident ID",
            Self::CreditCode => "a unified social credit code",
        }
    }
}

/// Looks for a valid resident ID or credit code in `text`; returns what it found and the
/// 1-based character position where it starts.
///
/// - A resident ID is found anywhere inside a run of digits (and `X`/`x`), also padded with
///   more digits on either side: its region, birth date and check character make a chance
///   match in a run of random digits rare.
/// - A credit code is found as a whole token (a maximal run of ASCII letters and digits) of
///   exactly 18 characters. Inside longer tokens it is not looked for: one window in about 230
///   of random hexadecimal passes its province and check-character rules, so a search inside
///   every 32-character hex trace id would refuse about one request in sixteen.
pub fn find_identifier(text: &str) -> Option<(FoundIdentifier, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let token = &chars[start..i];
        if let Some(at) = resident_id_in(token) {
            return Some((FoundIdentifier::ResidentId, start + at + 1));
        }
        if token.len() == CreditCode::LEN && CreditCode::parse(&token.iter().collect::<String>()).is_ok() {
            return Some((FoundIdentifier::CreditCode, start + 1));
        }
    }
    None
}

/// The offset of the first valid resident ID in a token, looking in its runs of digits.
fn resident_id_in(token: &[char]) -> Option<usize> {
    let n = ResidentId::LEN;
    if token.len() < n {
        return None;
    }
    (0..=token.len() - n).find(|&s| {
        let window = &token[s..s + n];
        window[..n - 1].iter().all(char::is_ascii_digit)
            && matches!(window[n - 1], '0'..='9' | 'X' | 'x')
            && ResidentId::parse(&window.iter().collect::<String>()).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESIDENT: &str = "11010519491231002X";
    const CREDIT: &str = "91350100M000100Y43";

    #[test]
    fn finds_identifiers_alone_padded_and_among_words() {
        assert!(ResidentId::parse(RESIDENT).is_ok() && CreditCode::parse(CREDIT).is_ok());
        assert_eq!(find_identifier(RESIDENT), Some((FoundIdentifier::ResidentId, 1)));
        assert_eq!(find_identifier(&RESIDENT.to_lowercase()), Some((FoundIdentifier::ResidentId, 1)));
        assert_eq!(find_identifier(&format!("req-{RESIDENT}-1")), Some((FoundIdentifier::ResidentId, 5)));
        assert_eq!(find_identifier(&format!("0042{RESIDENT}77")), Some((FoundIdentifier::ResidentId, 5)));
        assert_eq!(find_identifier(&format!("abc{RESIDENT}")), Some((FoundIdentifier::ResidentId, 4)));
        assert_eq!(find_identifier(&format!("申请人 {RESIDENT} 的租赁")), Some((FoundIdentifier::ResidentId, 5)));
        assert_eq!(find_identifier(CREDIT), Some((FoundIdentifier::CreditCode, 1)));
        assert_eq!(
            find_identifier(&format!("licence for {}", CREDIT.to_lowercase())),
            Some((FoundIdentifier::CreditCode, 13))
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in
            ["", "rental filing 2026-12-02", "4bf92f3577b34da6a3ce929d0e0e4736", "SZ-0001", "00-4bf92f3577b34da6-01"]
        {
            assert_eq!(find_identifier(text), None, "{text}");
        }
        // One character off: the check character no longer matches.
        assert_eq!(find_identifier("110105194912310021"), None);
        assert_eq!(find_identifier("91350100M000100Y44"), None);
    }

    #[test]
    fn random_hex_trace_ids_are_almost_never_refused() {
        // A fixed linear congruential sequence: the same 10,000 trace ids every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut refused = 0;
        for _ in 0..10_000 {
            let mut id = String::with_capacity(32);
            for _ in 0..32 {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                id.push(char::from(b"0123456789abcdef"[(state >> 60) as usize]));
            }
            refused += usize::from(find_identifier(&id).is_some());
        }
        assert!(refused <= 2, "{refused} of 10,000 random trace ids would be refused");
    }
}
