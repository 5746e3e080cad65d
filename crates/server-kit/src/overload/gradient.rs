//! The adaptive concurrency limit: how many requests may run at once, moved every window so that the
//! latency of the calls served stays close to the latency the server has when nothing queues.
//!
//! A server past its capacity does not get faster by taking more work: every call admitted beyond the
//! point where its CPU (or a dependency) is saturated only waits, and with it every call behind it, until
//! deadlines pass and the answers are errors or degraded. The limit that keeps throughput at capacity with
//! no standing queue depends on the machine, the build, the mix and the neighbours, so it is measured,
//! not configured. This is the gradient controller of Envoy's adaptive concurrency filter (itself after
//! Netflix's concurrency-limits), with one difference in how the no-queue latency is learnt:
//!
//! - Every [`WINDOW`] (and at least [`MIN_SAMPLES`] calls), the median latency of the calls that finished
//!   is compared with a target: the no-queue latency plus a [`BUFFER`] of 25%, or the server's tolerated
//!   latency if that is higher: `gradient = clamp(target / median, 0.5, 2)` and
//!   `limit = limit × gradient + √limit`. Latency growing past the target with the work in flight shrinks
//!   the limit (by at most half a window); latency at or below it lets it grow, with √limit of headroom so
//!   that the limit settles a little above the point where latency reaches the target: throughput stays at
//!   capacity, latency near the target, and the excess is refused at once.
//! - The tolerated latency (the gateway: a tenth of its request budget) is the queueing callers accept
//!   without noticing. Without it, a server whose no-queue latency is a millisecond would refuse callers
//!   as soon as a few of them queue for a quarter of a millisecond, although their answers would come
//!   well inside the budget: of 32 callers whose answers took 8-9 ms, a fifth of the calls were refused.
//! - The no-queue latency is the median of the calls admitted while at most [`IDLE_IN_FLIGHT`] others
//!   ran, from the latest window that had enough of them. Envoy pins the limit low for a moment every
//!   minute to measure it; here the limit itself does that when needed: when calls get slower for a
//!   reason more admissions did not cause (a slow dependency), the limit falls until calls run nearly
//!   alone, those calls show the new no-queue latency, and the limit grows back, within a second or two.
//! - The limit never grows past twice the most calls the window had in flight (but at least
//!   [`INITIAL_LIMIT`]): unused headroom would let a sudden spike in before the next window could react.
//! - The limit falls only after two windows in a row called for it; the first of them holds it. One slow
//!   window is a transient, not load: a fresh process's first calls, or a stall of the machine. 64
//!   callers arriving at once at a gateway that had just started were answered in a median of 7-19 ms
//!   (p90 20-35 ms) in its first window, and in 6 ms from the next; cutting on that first window refused
//!   700-1,300 calls at a healthy gateway in a third of its starts. Overload lasts, and is cut one window
//!   (100 ms) later than it would be otherwise.
//!
//! The controller takes one uncontended lock per finished call (a few tens of nanoseconds); admission
//! reads one atomic.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often the limit moves.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);
/// A window closes only once this many calls finished in it (or after [`LONGEST_WINDOW`]).
pub(crate) const MIN_SAMPLES: usize = 20;
/// A window with fewer calls than [`MIN_SAMPLES`] closes after this long, if it has any.
const LONGEST_WINDOW: Duration = Duration::from_secs(1);
/// The limit never falls below this: a server always takes some work.
pub(crate) const MIN_LIMIT: usize = 3;
/// The limit a server starts with, and the least the in-flight cap on growth allows.
pub(crate) const INITIAL_LIMIT: usize = 64;
/// A call admitted with at most this many others in flight ran nearly alone: its latency is the
/// no-queue latency.
const IDLE_IN_FLIGHT: usize = MIN_LIMIT;
/// A window needs this many such calls to set the no-queue latency.
const MIN_IDLE_SAMPLES: usize = 5;
/// Latency this far above the no-queue latency is still taken as no queue.
const BUFFER: f64 = 0.25;
/// The most one window may shrink or grow the limit by.
const MIN_GRADIENT: f64 = 0.5;
const MAX_GRADIENT: f64 = 2.0;
/// Samples kept per window; past this many, the rest of the window's calls are not sampled.
const MAX_SAMPLES: usize = 4096;

/// The limit and the window of latencies it is moved by; see the module docs.
#[derive(Debug)]
pub(crate) struct Gradient {
    max: usize,
    /// The tolerated latency (µs): a median at or below it never shrinks the limit.
    tolerated: f64,
    limit: AtomicUsize,
    /// The most calls in flight at once during the current window.
    peak: AtomicUsize,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    /// Latencies (µs) of the calls that finished in this window.
    latencies: Vec<u32>,
    /// Those of the calls among them admitted while at most [`IDLE_IN_FLIGHT`] others ran.
    idle: Vec<u32>,
    /// The no-queue latency (µs), once a window had enough idle calls to show it.
    no_queue: Option<u32>,
    /// Whether the last window called for a cut (the first of a run holds the limit instead).
    cut_called: bool,
}

impl Gradient {
    /// A limit between [`MIN_LIMIT`] and `max` (which wins if it is lower), starting at
    /// [`INITIAL_LIMIT`], that never shrinks while the median latency is at most `tolerated`.
    pub(crate) fn new(max: usize, tolerated: Duration) -> Self {
        let max = max.max(1);
        Self {
            max,
            tolerated: tolerated.as_secs_f64() * 1e6,
            limit: AtomicUsize::new(INITIAL_LIMIT.min(max)),
            peak: AtomicUsize::new(0),
            window: Mutex::new(Window {
                started: Instant::now(),
                latencies: Vec::with_capacity(MAX_SAMPLES),
                idle: Vec::with_capacity(MAX_SAMPLES),
                no_queue: None,
                cut_called: false,
            }),
        }
    }

    /// The limit now.
    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A call was admitted with `in_flight` calls (itself included) running.
    pub(crate) fn admitted(&self, in_flight: usize) {
        self.peak.fetch_max(in_flight, Ordering::Relaxed);
    }

    /// A call admitted with `in_flight` calls (itself included) running finished after `latency`.
    /// Returns the new limit when this call closed a window that moved it.
    pub(crate) fn finished(&self, latency: Duration, in_flight: usize, now: Instant) -> Option<usize> {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX).max(1);
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.latencies.len() < MAX_SAMPLES {
            window.latencies.push(micros);
            if in_flight <= IDLE_IN_FLIGHT {
                window.idle.push(micros);
            }
        }
        let elapsed = now.saturating_duration_since(window.started);
        let samples = window.latencies.len();
        if elapsed < WINDOW || (samples < MIN_SAMPLES && elapsed < LONGEST_WINDOW) {
            return None;
        }
        let peak = self.peak.swap(0, Ordering::Relaxed);
        let current = self.limit();
        let next = window.close(current, peak, self.max, self.tolerated, now);
        drop(window);
        if next == current {
            return None;
        }
        self.limit.store(next, Ordering::Relaxed);
        Some(next)
    }
}

impl Window {
    /// The next limit after `current`, given that at most `peak` calls were in flight; starts a new window.
    fn close(&mut self, current: usize, peak: usize, max: usize, tolerated: f64, now: Instant) -> usize {
        if self.idle.len() >= MIN_IDLE_SAMPLES {
            self.no_queue = Some(median(&mut self.idle));
        }
        let sample = median(&mut self.latencies);
        // Before any window showed the no-queue latency (a start under load), the quickest call stands in:
        // lower than the truth, so the limit errs toward refusing until idle calls show the real figure.
        let no_queue = self
            .no_queue
            .unwrap_or_else(|| self.latencies.iter().copied().min().unwrap_or(sample));
        self.latencies.clear();
        self.idle.clear();
        self.started = now;
        let target = (f64::from(no_queue) * (1.0 + BUFFER)).max(tolerated);
        let next = next_limit(current, peak, max, target, f64::from(sample));
        // A cut only on the second window in a row that calls for one (module docs).
        let cut = next < current;
        let hold = cut && !self.cut_called;
        self.cut_called = cut;
        if hold { current } else { next }
    }
}

/// The gradient step toward the `target` median (module docs), clamped to `MIN_LIMIT..=max` and to twice
/// the `peak` in flight.
fn next_limit(current: usize, peak: usize, max: usize, target: f64, sample: f64) -> usize {
    let gradient = (target / sample.max(1.0)).clamp(MIN_GRADIENT, MAX_GRADIENT);
    let current_f = current as f64;
    let mut next = (current_f * gradient + current_f.sqrt()).round() as usize;
    if next > current {
        next = next.min((2 * peak).max(INITIAL_LIMIT)).max(current);
    }
    next.clamp(MIN_LIMIT.min(max), max)
}

/// The median of `values` (not empty), reordering them.
fn median(values: &mut [u32]) -> u32 {
    let middle = values.len() / 2;
    *values.select_nth_unstable(middle).1
}

#[cfg(test)]
mod tests;
