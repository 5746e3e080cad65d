//! What a load run measured ([`Report`]: a latency histogram and outcome counts per RPC), and the forms
//! people read it in: a text table ([`Report::render`]) and a JSON summary ([`Summary`]) that keeps the
//! whole latency-percentile curve, so runs can be compared and plotted later ([`crate::plot`]).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::MAX_OUTSTANDING;

/// Latency histograms (µs) and outcome counts per RPC.
#[derive(Debug, Default)]
pub struct Report {
    pub elapsed: Duration,
    pub rpcs: BTreeMap<&'static str, RpcStats>,
    /// Open loop: requests due that were not sent because [`MAX_OUTSTANDING`] were still unanswered.
    pub unsent: u64,
    /// Open loop: the most a request was sent after its scheduled start (the generator falling behind).
    pub max_send_lag: Duration,
}

#[derive(Debug)]
pub struct RpcStats {
    /// Every call's latency (open loop: from its scheduled start, so a backlog is not hidden).
    pub latency_us: Histogram<u64>,
    /// Latency of the good answers: OK and not degraded.
    pub good_us: Histogram<u64>,
    /// The same answers timed from the moment each call was sent rather than scheduled: what the
    /// server took, without the generator's own lag (equal to `good_us` in a closed loop).
    pub good_from_send_us: Histogram<u64>,
    /// Latency of the calls refused RESOURCE_EXHAUSTED (shed by an overloaded server).
    pub refused_us: Histogram<u64>,
    /// The same refusals timed from the moment each call was sent rather than scheduled: how quickly
    /// the server refuses, without the generator's own lag (equal to `refused_us` in a closed loop).
    pub refused_from_send_us: Histogram<u64>,
    /// OK answers built (partly) from default features or fallbacks.
    pub degraded: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
}

/// A histogram of 1 µs to 60 s at three significant digits: every latency a call can have is recorded
/// within 0.1%.
fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Default for RpcStats {
    fn default() -> Self {
        Self {
            latency_us: histogram(),
            good_us: histogram(),
            good_from_send_us: histogram(),
            refused_us: histogram(),
            refused_from_send_us: histogram(),
            degraded: 0,
            errors: BTreeMap::new(),
        }
    }
}

/// How one call ended: answered (degraded or not) or failed with a status.
pub type Outcome = Result<Answer, tonic::Status>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Good,
    Degraded,
}

impl Answer {
    pub(crate) fn of(degraded: bool) -> Self {
        if degraded { Self::Degraded } else { Self::Good }
    }
}

impl RpcStats {
    /// A call that took `latency` from its scheduled start and `from_send` from the moment it was sent.
    pub fn record(&mut self, latency: Duration, from_send: Duration, outcome: &Outcome) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let (latency, from_send) = (micros(latency), micros(from_send));
        self.latency_us.saturating_record(latency);
        match outcome {
            Ok(Answer::Good) => {
                self.good_us.saturating_record(latency);
                self.good_from_send_us.saturating_record(from_send);
            }
            Ok(Answer::Degraded) => self.degraded += 1,
            Err(status) => {
                if status.code() == tonic::Code::ResourceExhausted {
                    self.refused_us.saturating_record(latency);
                    self.refused_from_send_us.saturating_record(from_send);
                }
                *self.errors.entry(format!("{:?}", status.code())).or_default() += 1;
            }
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.good_us.add(&other.good_us);
        let _ = self.good_from_send_us.add(&other.good_from_send_us);
        let _ = self.refused_us.add(&other.refused_us);
        let _ = self.refused_from_send_us.add(&other.refused_from_send_us);
        self.degraded += other.degraded;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }

    /// Failed calls with this gRPC code.
    pub fn errors_with(&self, code: tonic::Code) -> u64 {
        self.errors.get(&format!("{code:?}")).copied().unwrap_or(0)
    }
}

impl Report {
    pub fn total_requests(&self) -> u64 {
        self.rpcs.values().map(|s| s.latency_us.len()).sum()
    }

    /// Good answers (OK, not degraded) in all RPCs.
    pub fn good(&self) -> u64 {
        self.rpcs.values().map(|s| s.good_us.len()).sum()
    }

    /// Good answers a second: the goodput.
    pub fn goodput(&self) -> f64 {
        self.good() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A table: one line per RPC with count, throughput, goodput, outcomes and latency percentiles in ms,
    /// then the errors by status.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "{:<22} {:>8} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
            "rpc",
            "requests",
            "req/s",
            "good/s",
            "degraded",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "good p99 ms"
        );
        for (rpc, stats) in &self.rpcs {
            let h = &stats.latency_us;
            let errors: u64 = stats.errors.values().sum();
            let p = Percentiles::of(h);
            out.push_str(&format!(
                "{:<22} {:>8} {:>9.0} {:>9.0} {:>8} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10.3}\n",
                rpc,
                h.len(),
                h.len() as f64 / secs,
                stats.good_us.len() as f64 / secs,
                stats.degraded,
                errors,
                p.p50,
                p.p90,
                p.p99,
                p.p99_9,
                p.max,
                ms(&stats.good_us, 0.99),
            ));
            for (code, n) in &stats.errors {
                out.push_str(&format!("    {n} x {code}\n"));
            }
            let (refused, from_send) = (&stats.refused_us, &stats.refused_from_send_us);
            if !refused.is_empty() {
                out.push_str(&format!(
                    "    refused in p50 {:.3} ms, p99 {:.3} ms (from the send: p50 {:.3} ms, p99 {:.3} ms)\n",
                    ms(refused, 0.5),
                    ms(refused, 0.99),
                    ms(from_send, 0.5),
                    ms(from_send, 0.99)
                ));
            }
        }
        if self.unsent > 0 {
            out.push_str(&format!(
                "{} requests not sent: {MAX_OUTSTANDING} were still unanswered\n",
                self.unsent
            ));
        }
        if self.max_send_lag > Duration::from_millis(10) {
            out.push_str(&format!(
                "the generator fell behind its schedule by up to {:.1} ms (latencies count from the schedule)\n",
                self.max_send_lag.as_secs_f64() * 1000.0
            ));
        }
        out
    }

    /// The report as a [`Summary`] named `label`, for a run described by `load`.
    pub fn summary(&self, label: &str, load: &str) -> Summary {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let rpcs = self
            .rpcs
            .iter()
            .map(|(rpc, stats)| {
                let summary = RpcSummary {
                    requests: stats.latency_us.len(),
                    per_second: stats.latency_us.len() as f64 / secs,
                    good_per_second: stats.good_us.len() as f64 / secs,
                    degraded: stats.degraded,
                    errors: stats.errors.clone(),
                    latency_ms: Percentiles::of(&stats.latency_us),
                    good_latency_ms: Percentiles::of(&stats.good_us),
                    refused_latency_ms: (!stats.refused_us.is_empty())
                        .then(|| Percentiles::of(&stats.refused_us)),
                    refused_from_send_ms: (!stats.refused_from_send_us.is_empty())
                        .then(|| Percentiles::of(&stats.refused_from_send_us)),
                    curve: curve(&stats.latency_us),
                };
                ((*rpc).to_owned(), summary)
            })
            .collect();
        Summary {
            label: label.to_owned(),
            load: load.to_owned(),
            seconds: secs,
            unsent: self.unsent,
            max_send_lag_ms: self.max_send_lag.as_secs_f64() * 1000.0,
            rpcs,
        }
    }
}

/// The `q` quantile of `h` (µs) in milliseconds; 0 when it is empty.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A load run in JSON: what `loadgen run --json` writes and `loadgen plot` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The run's name in tables and plots.
    pub label: String,
    /// The load as the run described it ("open loop, 5000 requests a second, 8 s, mix Quote").
    pub load: String,
    /// Seconds the rates are per: the run's duration (open loop: its schedule's).
    pub seconds: f64,
    /// Open loop: requests due that could not be sent.
    pub unsent: u64,
    /// Open loop: the most a request was sent after its scheduled start, in ms.
    pub max_send_lag_ms: f64,
    pub rpcs: BTreeMap<String, RpcSummary>,
}

/// One RPC's figures in a [`Summary`]; latencies in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcSummary {
    pub requests: u64,
    pub per_second: f64,
    /// Answers neither errors nor degraded, a second.
    pub good_per_second: f64,
    pub degraded: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Every call (open loop: from its scheduled start).
    pub latency_ms: Percentiles,
    /// The good answers.
    pub good_latency_ms: Percentiles,
    /// Calls refused RESOURCE_EXHAUSTED, from their scheduled start and from their send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_latency_ms: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_from_send_ms: Option<Percentiles>,
    /// Every call's latency by percentile: `[percentile, ms]` pairs from 0 to 100, closer together
    /// toward the tail (what [`crate::plot`] draws).
    pub curve: Vec<[f64; 2]>,
}

/// The percentiles a report names, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Percentiles {
    /// Those of `h` (µs); all 0 when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: ms(h, 0.5),
            p90: ms(h, 0.9),
            p99: ms(h, 0.99),
            p99_9: ms(h, 0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// Tenths of a "nine" the curve is sampled at: percentiles 0, 20.6, 36.9, ... 99.999 (fifty points), then
/// the maximum.
const CURVE_POINTS_PER_NINE: u32 = 10;
const CURVE_NINES: u32 = 5;

/// `h`'s latency (ms) at percentiles spaced evenly in "nines" (`-log10(1 - p)`), then at 100.
fn curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<[f64; 2]> = (0..CURVE_NINES * CURVE_POINTS_PER_NINE)
        .map(|k| {
            let q = 1.0 - 10f64.powf(-f64::from(k) / f64::from(CURVE_POINTS_PER_NINE));
            [100.0 * q, ms(h, q)]
        })
        .collect();
    points.push([100.0, h.max() as f64 / 1000.0]);
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of 1,000 good QuotePrice calls taking 1, 2, ... 1,000 ms, and 10 refused in 1 ms.
    fn report() -> Report {
        let mut stats = RpcStats::default();
        for ms in 1..=1000 {
            let latency = Duration::from_millis(ms);
            stats.record(latency, latency, &Ok(Answer::Good));
        }
        for _ in 0..10 {
            let refused = Err(tonic::Status::resource_exhausted("busy"));
            stats.record(Duration::from_millis(3), Duration::from_millis(1), &refused);
        }
        Report {
            elapsed: Duration::from_secs(2),
            rpcs: [("QuotePrice", stats)].into(),
            ..Report::default()
        }
    }

    #[test]
    fn percentiles_are_read_within_the_histograms_precision() {
        let p = Percentiles::of(&report().rpcs["QuotePrice"].good_us);
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.001 + 0.001;
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p90, 900.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.p99_9, 999.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
    }

    #[test]
    fn a_good_answer_is_timed_from_its_schedule_and_from_its_send() {
        let mut stats = RpcStats::default();
        stats.record(
            Duration::from_millis(5),
            Duration::from_millis(2),
            &Ok(Answer::Good),
        );
        stats.record(
            Duration::from_millis(7),
            Duration::from_millis(7),
            &Ok(Answer::Degraded),
        );
        assert_eq!(stats.good_us.len(), 1);
        assert_eq!(stats.good_us.max() / 1000, 5);
        assert_eq!(stats.good_from_send_us.len(), 1);
        assert_eq!(stats.good_from_send_us.max() / 1000, 2);
        let mut merged = RpcStats::default();
        merged.merge(&stats);
        assert_eq!(merged.good_from_send_us.max() / 1000, 2);
    }

    #[test]
    fn a_summary_survives_its_json_and_names_every_outcome() {
        let summary = report().summary("before", "1 concurrent, 2 s, mix Quote");
        let json = serde_json::to_string(&summary).expect("serialize");
        let back: Summary = serde_json::from_str(&json).expect("parse");
        let quote = &back.rpcs["QuotePrice"];
        assert_eq!(quote.requests, 1010);
        assert_eq!(quote.per_second, 505.0);
        assert_eq!(quote.good_per_second, 500.0);
        assert_eq!(quote.errors["ResourceExhausted"], 10);
        // (A histogram reads a value back as the top of its bucket: 3 ms as 3.001.)
        let p50 = |p: Option<Percentiles>| p.map(|p| (p.p50 * 100.0).round() / 100.0);
        assert_eq!(p50(quote.refused_from_send_ms), Some(1.0));
        assert_eq!(p50(quote.refused_latency_ms), Some(3.0));
        // The curve rises from the fastest call to the slowest, ever closer to the tail.
        let curve = &quote.curve;
        assert_eq!(curve.first(), Some(&[0.0, 1.0]));
        let [top, slowest] = curve.last().copied().expect("points");
        assert!(top == 100.0 && (slowest - 1000.0).abs() <= 1.0, "{curve:?}");
        assert!(
            curve.windows(2).all(|w| w[0][0] < w[1][0] && w[0][1] <= w[1][1]),
            "{curve:?}"
        );
        let svg = crate::plot::svg(
            "compare",
            &[
                back.clone(),
                Summary {
                    label: "after".into(),
                    ..back
                },
            ],
        )
        .expect("plot");
        assert!(
            svg.contains("before QuotePrice") && svg.contains("after QuotePrice"),
            "{svg}"
        );
    }
}
