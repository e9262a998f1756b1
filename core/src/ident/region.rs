//! Province-level administrative-division codes (GB/T 2260), the first two digits of the
//! region code in resident IDs and credit codes.

/// The two-digit province-level codes of GB/T 2260, in ascending order.
pub const PROVINCE_CODES: [&str; 34] = [
    "11", "12", "13", "14", "15", // Beijing, Tianjin, Hebei, Shanxi, Inner Mongolia
    "21", "22", "23", // Liaoning, Jilin, Heilongjiang
    "31", "32", "33", "34", "35", "36", "37", // Shanghai .. Shandong
    "41", "42", "43", "44", "45", "46", // Henan .. Hainan
    "50", "51", "52", "53", "54", // Chongqing .. Tibet
    "61", "62", "63", "64", "65", // Shaanxi .. Xinjiang
    "71", // Taiwan
    "81", "82", // Hong Kong, Macao
];

/// Whether `code` (two digits) is a province-level code of GB/T 2260.
pub fn is_province_code(code: &str) -> bool {
    PROVINCE_CODES.binary_search(&code).is_ok()
}

/// The reason text for a region code whose first two digits are not a province code.
pub(crate) fn not_a_province(code: &str) -> String {
    format!("{code} is not a province-level code of GB/T 2260 (11 to 82, e.g. 11 Beijing, 44 Guangdong)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(PROVINCE_CODES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn province_codes() {
        for (code, expected) in
            [("11", true), ("44", true), ("82", true), ("10", false), ("00", false), ("99", false), ("1", false)]
        {
            assert_eq!(is_province_code(code), expected, "{code}");
        }
    }
}
