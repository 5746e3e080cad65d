//! The caller's deadline, as gRPC carries it: the `grpc-timeout` request header.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The call's deadline from its `grpc-timeout` header (`<digits><H|M|S|m|u|n>`, at most 8 digits); `None`
/// when the caller set none or sent one that does not parse.
pub fn grpc_deadline(metadata: &MetadataMap) -> Option<Instant> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

/// When to give up so that a handler's own DEADLINE_EXCEEDED (with its reason) reaches the caller before
/// the deadline itself: tonic honours `grpc-timeout` too, and at the deadline it cancels the call with a
/// bare CANCELLED "Timeout expired". 5% of what is left, 1 to 10 ms, before `deadline`.
pub fn answer_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    let margin = (left / 20).clamp(Duration::from_millis(1), Duration::from_millis(10));
    deadline.checked_sub(margin).unwrap_or(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline_in(header: &str) -> Option<Duration> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", header.parse().expect("ascii"));
        grpc_deadline(&metadata).map(|d| d.saturating_duration_since(Instant::now()))
    }

    #[test]
    fn grpc_timeouts_parse() {
        let close = |d: Option<Duration>, want: Duration| {
            d.is_some_and(|d| d <= want && want - d < Duration::from_millis(50))
        };
        assert!(close(deadline_in("250m"), Duration::from_millis(250)));
        assert!(close(deadline_in("2S"), Duration::from_secs(2)));
        assert!(close(deadline_in("1M"), Duration::from_secs(60)));
        assert!(close(deadline_in("1H"), Duration::from_secs(3600)));
        assert!(close(deadline_in("5000u"), Duration::from_millis(5)));
        assert!(close(deadline_in("99999999n"), Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123", "123456789m", "12x", "-1m", "+1m", "1.5S"] {
            assert_eq!(deadline_in(bad), None, "{bad}");
        }
        assert_eq!(grpc_deadline(&MetadataMap::new()), None);
    }

    #[test]
    fn answers_a_little_before_the_deadline() {
        let now = Instant::now();
        let margin = |left: Duration| {
            let deadline = now + left;
            deadline - answer_by(deadline)
        };
        // 5% of what is left, at least 1 ms and at most 10 ms (the clock moves a little meanwhile).
        assert!(margin(Duration::from_millis(100)) <= Duration::from_millis(5));
        assert!(margin(Duration::from_millis(100)) >= Duration::from_millis(4));
        assert!(margin(Duration::from_millis(2)) >= Duration::from_millis(1));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_millis(10));
    }
}
