//! When a request must be answered by: one [`Deadline`] type, and one rule for the margin a server keeps
//! before it, shared by every service.
//!
//! A server takes the caller's deadline from the `grpc-timeout` header, bounds it by its own budget when
//! it has one, and answers a little before it ([`Deadline::for_request`]): tonic honours `grpc-timeout`
//! too, and at the deadline itself it cancels the call with a bare CANCELLED "Timeout expired", so the
//! server's own DEADLINE_EXCEEDED, naming what was slow, must be sent first. Everything downstream of
//! the door then works to [`Deadline::remaining`] (or [`Deadline::limit`] of a configured timeout) and
//! adds no margin of its own.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The point in time a request must be answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// The part of what is left that a server keeps for sending its answer: 5% of it, 1 to 10 ms.
const MARGIN_SHARE: u32 = 20;
const MIN_MARGIN: Duration = Duration::from_millis(1);
const MAX_MARGIN: Duration = Duration::from_millis(10);

/// Further away than any real deadline: a budget past it is treated as no budget at all.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Deadline {
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// `budget` from now (saturating far in the future rather than overflowing).
    pub fn after(budget: Duration) -> Self {
        let now = Instant::now();
        Self(
            now.checked_add(budget)
                .or_else(|| now.checked_add(FOREVER))
                .unwrap_or(now),
        )
    }

    /// The caller's deadline from its `grpc-timeout` header (`<digits><H|M|S|m|u|n>`, at most 8 digits);
    /// `None` when the caller set none or sent one that does not parse.
    pub fn from_grpc_timeout(metadata: &MetadataMap) -> Option<Self> {
        Self::from_headers(metadata.as_ref())
    }

    /// [`Deadline::from_grpc_timeout`] for a request as a tower layer sees it.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let text = headers.get("grpc-timeout")?.to_str().ok()?;
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
        Instant::now().checked_add(timeout).map(Self)
    }

    /// What a server answers a request by: the caller's deadline or `budget` from now (when the server
    /// has a budget of its own), whichever comes first, less the answering margin. `None` when neither
    /// bounds the request.
    pub fn for_request(metadata: &MetadataMap, budget: Option<Duration>) -> Option<Self> {
        Self::for_headers(metadata.as_ref(), budget)
    }

    /// [`Deadline::for_request`] for a request as a tower layer sees it.
    pub fn for_headers(headers: &http::HeaderMap, budget: Option<Duration>) -> Option<Self> {
        let own = budget.map(Self::after);
        let caller = Self::from_headers(headers);
        let first = match (own, caller) {
            (Some(own), Some(caller)) => Some(own.min(caller)),
            (own, caller) => own.or(caller),
        };
        first.map(Self::answering)
    }

    /// This deadline less the answering margin (5% of what is left, 1 to 10 ms), so that the answer,
    /// with its reason, reaches the caller before the deadline itself.
    #[must_use]
    pub fn answering(self) -> Self {
        let left = self.remaining();
        let margin = (left / MARGIN_SHARE).clamp(MIN_MARGIN, MAX_MARGIN);
        Self(self.0.checked_sub(margin).unwrap_or(self.0))
    }

    /// This deadline, or `other` if that comes first (e.g. a caller's own, shorter deadline).
    #[must_use]
    pub fn or_sooner(self, other: Option<Self>) -> Self {
        other.map_or(self, |other| self.min(other))
    }

    /// This deadline, or `limit` from now if that comes first: a step's own share of the budget, so one
    /// slow dependency cannot eat the time the next step needs.
    #[must_use]
    pub fn capped(self, limit: Duration) -> Self {
        self.min(Self::after(limit))
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed: no work should start.
    pub fn is_spent(&self) -> bool {
        self.remaining().is_zero()
    }

    /// A configured timeout, shortened to what is left of the deadline.
    pub fn limit(&self, configured: Duration) -> Duration {
        configured.min(self.remaining())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    /// For `tokio::time::timeout_at` and friends.
    pub fn tokio_instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(header: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", header.parse().expect("ascii"));
        metadata
    }

    fn deadline_in(header: &str) -> Option<Duration> {
        Deadline::from_grpc_timeout(&metadata(header)).map(|d| d.remaining())
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
        assert_eq!(Deadline::from_grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn answers_a_little_before_the_deadline() {
        let now = Instant::now();
        let margin = |left: Duration| {
            let deadline = Deadline::at(now + left);
            deadline.instant() - deadline.answering().instant()
        };
        // 5% of what is left, at least 1 ms and at most 10 ms (the clock moves a little meanwhile).
        assert!(margin(Duration::from_millis(100)) <= Duration::from_millis(5));
        assert!(margin(Duration::from_millis(100)) >= Duration::from_millis(4));
        assert!(margin(Duration::from_millis(2)) >= Duration::from_millis(1));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_millis(10));
    }

    #[test]
    fn a_request_is_answered_by_the_sooner_of_its_callers_deadline_and_the_budget() {
        let within = |d: Option<Deadline>, low: u64, high: u64| {
            d.is_some_and(|d| {
                let left = d.remaining();
                left >= Duration::from_millis(low) && left <= Duration::from_millis(high)
            })
        };
        let budget = Some(Duration::from_millis(100));
        // The caller's 50 ms comes first: less its 2.5 ms margin.
        assert!(within(Deadline::for_request(&metadata("50m"), budget), 45, 48));
        // The budget comes first: 100 ms less 5.
        assert!(within(Deadline::for_request(&metadata("2S"), budget), 90, 95));
        assert!(within(Deadline::for_request(&MetadataMap::new(), budget), 90, 95));
        assert!(within(Deadline::for_request(&metadata("50m"), None), 45, 48));
        assert_eq!(Deadline::for_request(&MetadataMap::new(), None), None);
    }

    #[test]
    fn steps_share_the_budget() {
        let deadline = Deadline::after(Duration::from_millis(100));
        assert!(deadline.capped(Duration::from_millis(10)).remaining() <= Duration::from_millis(10));
        assert_eq!(deadline.capped(Duration::from_secs(1)), deadline);
        assert_eq!(deadline.limit(Duration::from_millis(5)), Duration::from_millis(5));
        assert!(deadline.limit(Duration::from_secs(5)) <= Duration::from_millis(100));
        let sooner = Deadline::after(Duration::from_millis(10));
        assert_eq!(deadline.or_sooner(Some(sooner)), sooner);
        assert_eq!(deadline.or_sooner(None), deadline);
        assert!(Deadline::after(Duration::ZERO).is_spent());
        // A budget too large to add to the clock is far away, not a panic.
        assert!(!Deadline::after(Duration::MAX).is_spent());
    }
}
