//! Counters of telemetry dropped instead of blocking, by signal and reason. Each metrics sink keeps
//! its own (for metric drops); spans and logs count into [`PROCESS`], which the sink installed by
//! [`crate::init`] reports. Both come out as `telemetry.dropped{signal,reason}` at each flush.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use tracing_appender::non_blocking::ErrorCounter;

use crate::tags::{DropReason, Signal};

const SIGNALS: [Signal; 3] = [Signal::Metric, Signal::Span, Signal::Log];
const REASONS: usize = DropReason::ALL.len();

/// Drop counts, reset as they are reported.
#[derive(Debug)]
pub(crate) struct DropCounters {
    pending: [[AtomicU64; REASONS]; 3],
    total: [AtomicU64; 3],
}

/// Span and log drops of this process.
pub(crate) static PROCESS: DropCounters = DropCounters::new();

impl DropCounters {
    pub(crate) const fn new() -> Self {
        Self {
            pending: [const { [const { AtomicU64::new(0) }; REASONS] }; 3],
            total: [const { AtomicU64::new(0) }; 3],
        }
    }

    pub(crate) fn add(&self, signal: Signal, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        let s = signal_index(signal);
        self.pending[s][reason_index(reason)].fetch_add(n, Ordering::Relaxed);
        self.total[s].fetch_add(n, Ordering::Relaxed);
    }

    /// Puts back counts that could not be reported (they did not happen twice).
    pub(crate) fn restore(&self, signal: Signal, reason: DropReason, n: u64) {
        self.pending[signal_index(signal)][reason_index(reason)].fetch_add(n, Ordering::Relaxed);
    }

    /// Takes every non-zero pending count.
    pub(crate) fn take(&self, out: &mut Vec<(Signal, DropReason, u64)>) {
        for (s, signal) in SIGNALS.iter().enumerate() {
            for (r, reason) in DropReason::ALL.iter().enumerate() {
                let n = self.pending[s][r].swap(0, Ordering::Relaxed);
                if n > 0 {
                    out.push((*signal, *reason, n));
                }
            }
        }
    }

    /// Everything dropped for `signal` since start.
    pub(crate) fn total(&self, signal: Signal) -> u64 {
        self.total[signal_index(signal)].load(Ordering::Relaxed)
    }
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Metric => 0,
        Signal::Span => 1,
        Signal::Log => 2,
    }
}

fn reason_index(reason: DropReason) -> usize {
    DropReason::ALL.iter().position(|r| *r == reason).unwrap_or(0)
}

/// The stdout log writer's count of lines it dropped (lossy mode), registered by `init`.
static LOG_WRITER: OnceLock<ErrorCounter> = OnceLock::new();
static LOG_SEEN: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn register_log_writer(counter: ErrorCounter) {
    let _ = LOG_WRITER.set(counter);
}

/// Moves newly dropped log lines into [`PROCESS`].
pub(crate) fn collect_log_drops() {
    if let Some(counter) = LOG_WRITER.get() {
        let now = counter.dropped_lines();
        let before = LOG_SEEN.swap(now, Ordering::Relaxed);
        PROCESS.add(
            Signal::Log,
            DropReason::QueueFull,
            now.saturating_sub(before) as u64,
        );
    }
}

/// Spans dropped by this process since start (queue full or export failed).
pub fn spans_dropped() -> u64 {
    PROCESS.total(Signal::Span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_and_restore() {
        let counters = DropCounters::new();
        counters.add(Signal::Metric, DropReason::SeriesLimit, 3);
        counters.add(Signal::Span, DropReason::QueueFull, 2);
        let mut out = Vec::new();
        counters.take(&mut out);
        assert_eq!(
            out,
            vec![
                (Signal::Metric, DropReason::SeriesLimit, 3),
                (Signal::Span, DropReason::QueueFull, 2)
            ]
        );
        out.clear();
        counters.take(&mut out);
        assert!(out.is_empty());
        counters.restore(Signal::Span, DropReason::QueueFull, 2);
        counters.take(&mut out);
        assert_eq!(out, vec![(Signal::Span, DropReason::QueueFull, 2)]);
        assert_eq!(counters.total(Signal::Metric), 3);
    }
}
