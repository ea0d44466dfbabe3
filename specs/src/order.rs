//! The order of version names.
//!
//! A version name is split at `.` into segments. Two names are compared segment by segment,
//! left to right, and the first difference decides:
//! - two numeric segments (only ASCII digits) compare as numbers, of any length, so
//!   `1.0.0.10` comes after `1.0.0.9` and `01` equals `1`;
//! - a numeric segment comes before a non-numeric one (`1.0.9` < `1.0.beta`);
//! - two non-numeric segments compare bytewise (`1.0-beta` < `1.0-rc`).
//!
//! If every segment of the shorter name equals the other's, the shorter name comes first
//! (`1.4` < `1.4.0`). The order is total and deterministic; names that compare equal but
//! differ in spelling (`1.01` and `1.1`) cannot both exist in one game: validation rejects
//! the pair.

use std::cmp::Ordering;

/// Compares two version names by the rules in the module documentation.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ordering = compare_segments(x, y);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

fn is_numeric(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

fn compare_segments(x: &str, y: &str) -> Ordering {
    match (is_numeric(x), is_numeric(y)) {
        (true, true) => {
            let x = x.trim_start_matches('0');
            let y = y.trim_start_matches('0');
            // Without leading zeros, a longer run of digits is a larger number.
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.as_bytes().cmp(y.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        use Ordering::*;
        let cases = [
            ("1.0.0.10", "1.0.0.9", Greater),
            ("1.0.0.9", "1.0.0.10", Less),
            ("1.4", "1.4.0", Less),
            ("1.01", "1.1", Equal),
            ("1.0.9", "1.0.beta", Less),
            ("1.0-beta", "1.0-rc", Less),
            ("2", "10", Less),
            ("99999999999999999999999", "100000000000000000000000", Less),
            ("1.0.0", "1.0.0", Equal),
            ("a", "B", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    proptest! {
        #[test]
        fn antisymmetric_and_transitive(a in "[0-9a-c]{1,3}(\\.[0-9a-c]{1,3}){0,3}",
                                        b in "[0-9a-c]{1,3}(\\.[0-9a-c]{1,3}){0,3}",
                                        c in "[0-9a-c]{1,3}(\\.[0-9a-c]{1,3}){0,3}") {
            prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
            if compare_versions(&a, &b) != Ordering::Greater && compare_versions(&b, &c) != Ordering::Greater {
                prop_assert_ne!(compare_versions(&a, &c), Ordering::Greater);
            }
        }
    }
}
