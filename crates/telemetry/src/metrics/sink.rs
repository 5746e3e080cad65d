//! The flush thread: every interval (and on demand, and at shutdown) it drains the aggregator, packs
//! the values into DogStatsD lines within the datagram limit and sends them, then reports what was
//! dropped as `telemetry.dropped`. Nothing here runs on the request path.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender},
    },
    time::{Duration, Instant},
};

use super::{
    aggregator::{Aggregator, Snapshot, SnapshotValue},
    events::EventQueue,
    format::{line_overhead, pack_samples, push_value},
    transport::{Line, Transport},
};
use crate::{
    catalog::{MetricKind, TELEMETRY_DROPPED},
    dropped::{self, DropCounters},
    tags::{DropReason, Signal},
};

pub(crate) enum Command {
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// Counters the sink keeps for tests and diagnostics.
#[derive(Debug, Default)]
pub(crate) struct SinkCounters {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub flushes: AtomicU64,
}

pub(crate) struct Worker {
    pub aggregator: Arc<Aggregator>,
    pub events: Arc<EventQueue>,
    pub transport: Transport,
    pub max_datagram: usize,
    pub interval: Duration,
    pub drops: Arc<DropCounters>,
    /// Whether this sink also reports the process's span and log drops (the one `init` installed).
    pub report_process_drops: bool,
    pub counters: Arc<SinkCounters>,
}

impl Worker {
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        let default_tags = self.transport.default_tags_joined();
        let mut snapshots = Vec::new();
        let mut next = Instant::now() + self.interval;
        loop {
            match commands.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(Command::Flush(ack)) => {
                    self.flush(&mut snapshots, &default_tags);
                    let _ = ack.send(());
                }
                Ok(Command::Shutdown(ack)) => {
                    self.flush(&mut snapshots, &default_tags);
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush(&mut snapshots, &default_tags);
                    next = Instant::now() + self.interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush(&mut snapshots, &default_tags);
                    return;
                }
            }
        }
    }

    fn flush(&mut self, snapshots: &mut Vec<Snapshot>, default_tags: &str) {
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.aggregator.drain(snapshots);
        self.transport.begin_flush();
        let connected = self.transport.connect();
        for snapshot in snapshots.drain(..) {
            if connected.is_err() {
                let lost = match &snapshot.value {
                    SnapshotValue::Samples(samples) => samples.len() as u64,
                    _ => 1,
                };
                self.drops.add(Signal::Metric, DropReason::AgentUnavailable, lost);
                continue;
            }
            self.send_snapshot(&snapshot, default_tags);
        }
        for event in self.events.take() {
            match connected.and_then(|()| self.transport.send_event(&event)) {
                Ok(()) => {
                    self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                }
                Err(reason) => self.drops.add(Signal::Metric, reason, 1),
            }
        }
        self.report_drops(default_tags);
    }

    fn send_snapshot(&mut self, snapshot: &Snapshot, default_tags: &str) {
        let name = snapshot.metric.name;
        let tags = &*snapshot.tags;
        match &snapshot.value {
            SnapshotValue::Count(n) => {
                let len = n.to_string().len();
                self.send(Line::Count(name, *n), len, tags, default_tags, 1);
            }
            SnapshotValue::Gauge(value) => {
                let mut text = String::with_capacity(24);
                push_value(&mut text, *value);
                self.send(Line::Gauge(name, &text), text.len(), tags, default_tags, 1);
            }
            SnapshotValue::Samples(samples) => {
                let suffix = MetricKind::Distribution.suffix();
                let budget =
                    self.max_datagram
                        .saturating_sub(line_overhead(name, suffix, tags, default_tags));
                pack_samples(samples, budget, |packed| {
                    let values = packed.split(':').count() as u64;
                    self.send(
                        Line::Distribution(name, packed),
                        packed.len(),
                        tags,
                        default_tags,
                        values,
                    );
                });
            }
        }
    }

    fn send(&mut self, line: Line<'_>, value_len: usize, tags: &str, default_tags: &str, values: u64) {
        let (name, suffix) = match line {
            Line::Count(name, _) => (name, "c"),
            Line::Gauge(name, _) => (name, "g"),
            Line::Distribution(name, _) => (name, "d"),
        };
        match self.transport.send(line, tags) {
            Ok(()) => {
                let bytes = line_overhead(name, suffix, tags, default_tags) + value_len;
                self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err(reason) => self.drops.add(Signal::Metric, reason, values),
        }
    }

    /// Sends `telemetry.dropped`; counts that cannot be sent are kept for the next flush.
    fn report_drops(&mut self, default_tags: &str) {
        let mut pending = Vec::new();
        self.drops.take(&mut pending);
        let own = pending.len();
        if self.report_process_drops {
            dropped::collect_log_drops();
            dropped::PROCESS.take(&mut pending);
        }
        for (i, (signal, reason, n)) in pending.into_iter().enumerate() {
            let tags = format!("signal:{},reason:{}", signal.as_str(), reason.as_str());
            let sent = self
                .transport
                .send(Line::Count(TELEMETRY_DROPPED.name, n as i64), &tags)
                .is_ok();
            let counters: &DropCounters = if i < own { &self.drops } else { &dropped::PROCESS };
            if sent {
                let bytes =
                    line_overhead(TELEMETRY_DROPPED.name, "c", &tags, default_tags) + n.to_string().len();
                self.counters.datagrams.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            } else {
                counters.restore(signal, reason, n);
            }
        }
    }
}
