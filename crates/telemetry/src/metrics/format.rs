//! Number formatting and value packing for DogStatsD lines, off the request path (flush thread).
//!
//! Distribution samples go out as DogStatsD protocol v1.1 multi-value lines, `name:v1:v2:v3|d|#tags`
//! (agent >= 6.25 / 7.25; see Datadog's "Datagram Format" page), as many values per line as fit in the
//! transport's datagram limit. Values are rounded to 6 significant digits: Datadog's distributions are
//! DDSketches with 1% relative accuracy, so the extra digits only cost datagram space.

use std::fmt::Write;

/// Significant digits kept for gauges and distribution samples.
const SIGNIFICANT_DIGITS: i32 = 6;

/// Appends `value` in the shortest form DogStatsD parses (integers without `.0`, exponent when huge
/// or tiny).
pub(crate) fn push_value(out: &mut String, value: f64) {
    let value = round_significant(value);
    let magnitude = value.abs();
    // Writing to a String cannot fail.
    let _ = if value.fract() == 0.0 && magnitude < 1e15 {
        write!(out, "{}", value as i64)
    } else if (1e-6..1e15).contains(&magnitude) {
        write!(out, "{value}")
    } else {
        write!(out, "{value:e}")
    };
}

fn round_significant(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let digits = SIGNIFICANT_DIGITS - 1 - value.abs().log10().floor() as i32;
    if !(0..=17).contains(&digits) {
        return value;
    }
    let scale = 10f64.powi(digits);
    let rounded = (value * scale).round() / scale;
    if rounded.is_finite() { rounded } else { value }
}

/// Splits `samples` into `v1:v2:...` strings, each at most `budget` bytes (always at least one value
/// per string, so an oversized budget problem can never loop or lose samples).
pub(crate) fn pack_samples(samples: &[f64], budget: usize, mut emit: impl FnMut(&str)) {
    let mut packed = String::with_capacity(budget.min(8192));
    let mut value = String::with_capacity(24);
    for sample in samples {
        value.clear();
        push_value(&mut value, *sample);
        if !packed.is_empty() && packed.len() + 1 + value.len() > budget {
            emit(&packed);
            packed.clear();
        }
        if !packed.is_empty() {
            packed.push(':');
        }
        packed.push_str(&value);
    }
    if !packed.is_empty() {
        emit(&packed);
    }
}

/// Bytes a line takes besides its value: `name:` + `|d` + `|#tags,default_tags`, as the dogstatsd
/// crate writes it. `default_tags` is everything the crate appends after the line's own tags: the
/// service tags and, riding on the last of them, the origin fields (`env:..,version:..|c:..|e:..`).
pub(crate) fn line_overhead(name: &str, suffix: &str, tags: &str, default_tags: &str) -> usize {
    let tag_section = match (tags.is_empty(), default_tags.is_empty()) {
        (true, true) => 0,
        (false, true) => 2 + tags.len(),
        (true, false) => 2 + default_tags.len(),
        (false, false) => 3 + tags.len() + default_tags.len(),
    };
    name.len() + 1 + 1 + suffix.len() + tag_section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(value: f64) -> String {
        let mut out = String::new();
        push_value(&mut out, value);
        out
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(3.0), "3");
        assert_eq!(format(-2.0), "-2");
        assert_eq!(format(0.0), "0");
        assert_eq!(format(12.3456789), "12.3457");
        assert_eq!(format(0.1 + 0.2), "0.3");
        assert_eq!(format(0.000_123_456_78), "0.000123457");
        assert_eq!(format(1e20), "1e20");
        assert_eq!(format(1.5e-9), "1.5e-9");
    }

    #[test]
    fn packs_within_budget_without_losing_samples() {
        let samples: Vec<f64> = (0..1000).map(|i| f64::from(i) * 1.25).collect();
        let mut parts = Vec::new();
        pack_samples(&samples, 100, |s| parts.push(s.to_owned()));
        assert!(parts.iter().all(|p| p.len() <= 100));
        let count: usize = parts.iter().map(|p| p.split(':').count()).sum();
        assert_eq!(count, 1000);
    }

    #[test]
    fn overhead_matches_the_crates_layout() {
        // "m:V|d|#a:b,env:x" without V.
        assert_eq!(line_overhead("m", "d", "a:b", "env:x"), "m:|d|#a:b,env:x".len());
        assert_eq!(line_overhead("m", "c", "", "env:x"), "m:|c|#env:x".len());
        assert_eq!(line_overhead("m", "g", "", ""), "m:|g".len());
        // The origin fields after the tags count too.
        let with_origin = "env:x|c:in-42|e:it-false,cn-app,pu-1";
        assert_eq!(
            line_overhead("m", "d", "a:b", with_origin),
            "m:|d|#a:b,env:x|c:in-42|e:it-false,cn-app,pu-1".len()
        );
    }
}
