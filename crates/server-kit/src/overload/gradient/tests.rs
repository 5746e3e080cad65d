use super::*;

/// A limit and the clock its windows close by.
struct Sim {
    gradient: Gradient,
    now: Instant,
}

impl Sim {
    fn new(max: usize) -> Self {
        Self::tolerating(max, Duration::ZERO)
    }

    fn tolerating(max: usize, tolerated: Duration) -> Self {
        Self {
            gradient: Gradient::new(max, tolerated),
            now: Instant::now(),
        }
    }

    fn limit(&self) -> usize {
        self.gradient.limit()
    }

    /// One window of calls, the `i`th of them admitted with `in_flight(i, limit)` running (capped by
    /// the limit) and taking `latency(limit)`.
    fn window(&mut self, latency: impl Fn(usize) -> Duration, in_flight: impl Fn(usize, usize) -> usize) {
        self.now += WINDOW;
        let limit = self.limit();
        for i in 0..MIN_SAMPLES {
            let running = in_flight(i, limit).min(limit);
            self.gradient.admitted(running);
            self.gradient.finished(latency(limit), running, self.now);
        }
    }

    /// `windows` windows with `in_flight` callers: the limit after them.
    fn drive(&mut self, windows: usize, latency: impl Fn(usize) -> Duration, in_flight: usize) -> usize {
        for _ in 0..windows {
            self.window(&latency, |_, _| in_flight);
        }
        self.limit()
    }
}

/// A server that saturates at `saturation` calls in flight, each taking `service` alone: past it,
/// latency grows with the calls in flight (they queue).
fn saturating(service: Duration, saturation: usize) -> impl Fn(usize) -> Duration {
    move |in_flight| service.mul_f64((in_flight as f64 / saturation as f64).max(1.0))
}

#[test]
fn under_overload_the_limit_settles_just_past_saturation() {
    let mut sim = Sim::new(512);
    // Light traffic first shows the no-queue latency.
    sim.drive(3, |_| Duration::from_millis(1), 1);
    // Then far more callers than the server can take at once: the limit binds.
    let limit = sim.drive(50, saturating(Duration::from_millis(1), 8), 10_000);
    assert!(
        (8..=20).contains(&limit),
        "limit {limit}: at least the 8 that saturate the server, and not far past them"
    );
}

#[test]
fn queueing_within_the_tolerated_latency_is_never_refused() {
    let mut sim = Sim::tolerating(512, Duration::from_millis(10));
    sim.drive(3, |_| Duration::from_millis(1), 1);
    // 32 callers on a server that saturates at 8: each waits 4 ms, within the 10 tolerated.
    let service = saturating(Duration::from_millis(1), 8);
    let limit = sim.drive(50, &service, 32);
    assert_eq!(limit, INITIAL_LIMIT, "never below the 32 callers");
    // 1,000 callers would wait 125 ms: the limit settles where the median reaches 10 ms, 80 in flight.
    let limit = sim.drive(50, &service, 1_000);
    assert!(
        (80..=100).contains(&limit),
        "limit {limit}: at least the 80 that wait 10 ms, and not far past them"
    );
}

#[test]
fn a_slow_dependency_is_learnt_as_the_new_no_queue_latency() {
    let mut sim = Sim::new(512);
    sim.drive(3, |_| Duration::from_millis(1), 1);
    // Every call now takes 30 ms whatever the concurrency: the limit first falls...
    let slow = |_| Duration::from_millis(30);
    let fallen = sim.drive(8, slow, 100);
    assert!(fallen < 10, "limit {fallen}");
    // ...until calls run nearly alone, their latency becomes the no-queue latency, and the limit grows
    // back to what the 100 callers use within two seconds.
    for _ in 0..20 {
        sim.window(slow, |i, _| if i % 2 == 0 { 1 } else { 100 });
    }
    assert!(sim.limit() >= 100, "limit {}", sim.limit());
}

#[test]
fn the_limit_grows_no_further_than_traffic_uses_it() {
    let mut sim = Sim::new(512);
    let limit = sim.drive(30, |_| Duration::from_millis(1), 5);
    assert_eq!(
        limit, INITIAL_LIMIT,
        "5 in flight never need more than the initial 64"
    );
    let limit = sim.drive(30, |_| Duration::from_millis(1), 100);
    assert_eq!(limit, 200, "twice the peak of 100");
}

#[test]
fn the_limit_stays_within_its_bounds() {
    let mut sim = Sim::new(512);
    sim.drive(3, |_| Duration::from_millis(1), 1);
    // Calls that never get faster however few are admitted (and never run alone): the limit halves
    // each window, and the √limit headroom holds it at 4 or 5, above the floor of 3.
    let limit = sim.drive(50, |_| Duration::from_secs(2), 512);
    assert!((MIN_LIMIT..=5).contains(&limit), "limit {limit}");
    let mut small = Sim::new(2);
    assert_eq!(
        small.limit(),
        2,
        "MAX_CONCURRENT_REQUESTS below the initial limit wins"
    );
    assert_eq!(
        small.drive(10, |_| Duration::from_secs(2), 2),
        2,
        "and the floor never exceeds it"
    );
}

#[test]
fn a_window_waits_for_enough_calls() {
    let gradient = Gradient::new(512, Duration::ZERO);
    let later = Instant::now() + WINDOW * 2;
    for i in 0..MIN_SAMPLES - 1 {
        let (latency, in_flight) = if i < MIN_SAMPLES / 2 {
            (Duration::from_millis(1), 1)
        } else {
            (Duration::from_secs(1), 64)
        };
        assert_eq!(
            gradient.finished(latency, in_flight, later),
            None,
            "too few calls to judge by"
        );
    }
    // Half the calls waited a thousand times as long as those that ran alone: a window that calls for a
    // cut, held as the first of its kind.
    assert_eq!(gradient.finished(Duration::from_secs(1), 64, later), None);
    // The next window like it cuts: halved, plus headroom.
    let next = later + WINDOW;
    for _ in 0..MIN_SAMPLES - 1 {
        assert_eq!(gradient.finished(Duration::from_secs(1), 64, next), None);
    }
    assert_eq!(gradient.finished(Duration::from_secs(1), 64, next), Some(40));
}

#[test]
fn one_slow_window_is_a_transient_and_cuts_nothing() {
    let mut sim = Sim::tolerating(512, Duration::from_millis(10));
    sim.drive(3, |_| Duration::from_millis(1), 1);
    let fast = |_| Duration::from_millis(4);
    let slow = |_| Duration::from_millis(30);
    // 64 callers served in 4 ms, then one window of 30 ms calls (a fresh process's first calls, a stall
    // of the machine), then 4 ms again: the limit never falls below the callers.
    assert_eq!(sim.drive(3, fast, 64), 128);
    assert_eq!(sim.drive(1, slow, 64), 128, "held by the first slow window");
    assert_eq!(sim.drive(1, fast, 64), 128);
    // Slow windows that last, as overload does: the first holds again, and each after it cuts.
    assert_eq!(sim.drive(1, slow, 64), 128);
    assert_eq!(
        sim.drive(1, slow, 64),
        75,
        "cut on the second: halved, plus headroom"
    );
    assert_eq!(sim.drive(1, slow, 64), 46, "and on the third");
}
