//! Ordering of version folder names, so the default version is the newest one: `"10"` after `"9"`,
//! `"1.10"` after `"1.9"`, `"2024-02-01"` after `"2024-01-15"`.

use std::cmp::Ordering;

/// Compares two version names piece by piece: runs of ASCII digits compare as numbers (of any length,
/// so no overflow), other runs compare as text, and a name that is a prefix of the other sorts first.
/// Names that compare equal that way (`"01"` and `"1"`) fall back to plain text order, so the order
/// is total and sorting is deterministic.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = Chunks(a);
    let mut right = Chunks(b);
    loop {
        let ordering = match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => compare_chunks(x, y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
}

fn compare_chunks(x: &str, y: &str) -> Ordering {
    let x_numeric = x.starts_with(|c: char| c.is_ascii_digit());
    let y_numeric = y.starts_with(|c: char| c.is_ascii_digit());
    match (x_numeric, y_numeric) {
        (true, true) => {
            let x = x.trim_start_matches('0');
            let y = y.trim_start_matches('0');
            // Without leading zeros, a longer run of digits is a larger number.
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        // Numbers before text, so "1.0" < "1.a" does not depend on ASCII order.
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

/// Splits a name into maximal runs of ASCII digits and of everything else.
struct Chunks<'a>(&'a str);

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let first = self.0.chars().next()?;
        let numeric = first.is_ascii_digit();
        let end = self
            .0
            .find(|c: char| c.is_ascii_digit() != numeric)
            .unwrap_or(self.0.len());
        let (chunk, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut names: Vec<&str>) -> Vec<&str> {
        names.sort_by(|a, b| compare_versions(a, b));
        names
    }

    #[test]
    fn numbers_compare_by_value_not_text() {
        assert_eq!(
            sorted(vec!["10", "9", "1", "2", "100"]),
            ["1", "2", "9", "10", "100"]
        );
    }

    #[test]
    fn dotted_and_dated_versions() {
        assert_eq!(
            sorted(vec!["1.10", "1.9", "1.9.1", "2"]),
            ["1.9", "1.9.1", "1.10", "2"]
        );
        assert_eq!(
            sorted(vec!["2024-02-01", "2024-01-15", "2023-12-31"]),
            ["2023-12-31", "2024-01-15", "2024-02-01"]
        );
    }

    #[test]
    fn text_and_mixed_names() {
        assert_eq!(sorted(vec!["v10", "v9", "v2-rc1"]), ["v2-rc1", "v9", "v10"]);
        assert_eq!(sorted(vec!["b", "a", "1"]), ["1", "a", "b"]);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "123456789012345678901234567890";
        assert_eq!(compare_versions(big, "9"), Ordering::Greater);
        assert_eq!(compare_versions("9", big), Ordering::Less);
    }

    #[test]
    fn leading_zeros_are_equal_numbers_but_order_is_total() {
        assert_eq!(compare_chunks("007", "7"), Ordering::Equal);
        assert_ne!(compare_versions("007", "7"), Ordering::Equal);
        assert_eq!(compare_versions("7", "7"), Ordering::Equal);
    }
}
