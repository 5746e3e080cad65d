//! Online model quality from delayed labels: each labelled prediction joins its model version and arm's
//! window of the latest [`WINDOW`] labels, and a reporter sends, every `QUALITY_REPORT_SECS`, the
//! window's quality on the scale of the offline metric the version's manifest records — AUC when it
//! records `auc` (binary labels), R² when it records `r2` — as `model.accuracy`, beside that offline value
//! as `model.accuracy.baseline`, so "online below baseline − 5 points" can be monitored.
//!
//! Each label also adds its error to `model.prediction_error` (squared error of a probability: its mean
//! is the Brier score; absolute error of a value: its mean is the MAE; its count is the labels joined), a
//! distribution Datadog aggregates exactly over every pod. The windowed gauges are per pod: labels spread over the pods, so
//! each window is a sample of the same predictions, and their average across pods is what the monitor
//! reads.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use server_kit::Deadline;
use telemetry::catalog::{MODEL_ACCURACY, MODEL_ACCURACY_BASELINE, MODEL_PREDICTION_ERROR};
use telemetry::{Metrics, Tag};

use crate::downstream::{Downstream, ModelRef};
use crate::predictions::{Label, PredictionRecord};

/// Labels per model version and arm the quality is computed over: the latest ones.
pub const WINDOW: usize = 1_000;
/// Labels a window needs before its quality is reported: below it the figure is mostly noise.
pub const MIN_LABELS: usize = 100;
/// Windows kept at most (model versions × arms with labels); past it the new one is not tracked.
const MAX_WINDOWS: usize = 64;

/// The offline metrics a manifest may record, and how the online figure is computed for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityMetric {
    /// Area under the ROC curve of a probability against 0/1 labels.
    Auc,
    /// Coefficient of determination of a value against realised values.
    R2,
}

impl QualityMetric {
    /// The manifest key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Auc => "auc",
            Self::R2 => "r2",
        }
    }

    /// The quality of `pairs` of (prediction, truth); `None` when it is undefined (one class only, or
    /// no variance in the truth).
    pub fn of(self, pairs: &[(f64, f64)]) -> Option<f64> {
        match self {
            Self::Auc => auc(pairs),
            Self::R2 => r2(pairs),
        }
    }
}

/// Mann-Whitney: the probability that a positive outranks a negative, ties counting half.
fn auc(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = pairs
        .iter()
        .map(|&(score, truth)| (score, truth >= 0.5))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|(_, positive)| *positive).count();
    let negatives = sorted.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the positives' ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        #[allow(clippy::cast_precision_loss)] // ranks below 2^52
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = sorted[i..=j].iter().filter(|(_, positive)| *positive).count();
        #[allow(clippy::cast_precision_loss)]
        {
            rank_sum += average_rank * tied_positives as f64;
        }
        i = j + 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

fn r2(pairs: &[(f64, f64)]) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    let mean = pairs.iter().map(|&(_, truth)| truth).sum::<f64>() / pairs.len().max(1) as f64;
    let total: f64 = pairs.iter().map(|&(_, truth)| (truth - mean).powi(2)).sum();
    let residual: f64 = pairs
        .iter()
        .map(|&(predicted, truth)| (truth - predicted).powi(2))
        .sum();
    (total > 0.0).then(|| 1.0 - residual / total)
}

/// One model version and arm's latest labels.
#[derive(Default)]
struct Window {
    pairs: VecDeque<(f64, f64)>,
}

type Key = (String, String, String);

/// The windows of every model version and arm that got labels.
pub struct Quality {
    windows: Mutex<HashMap<Key, Window>>,
    metrics: Metrics,
}

impl Quality {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            windows: Mutex::default(),
            metrics,
        }
    }

    /// A new label of `record`'s prediction: its error, its count, and its place in the window.
    pub fn observe(&self, record: &PredictionRecord, label: &Label) {
        let tags = [
            Tag::model(&record.model),
            Tag::model_version(&record.version),
            Tag::variant(&record.variant),
        ];
        let truth = label.truth();
        let error = match label {
            Label::Customer { .. } => (record.output - truth).powi(2),
            Label::Surge { .. } => (record.output - truth).abs(),
        };
        self.metrics.distribution(&MODEL_PREDICTION_ERROR, error, &tags);
        let key = (
            record.model.clone(),
            record.version.clone(),
            record.variant.clone(),
        );
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(&key) && windows.len() >= MAX_WINDOWS {
            return;
        }
        let window = windows.entry(key).or_default();
        if window.pairs.len() == WINDOW {
            window.pairs.pop_front();
        }
        window.pairs.push_back((record.output, truth));
    }

    /// Every window with at least [`MIN_LABELS`] labels, copied out of the lock.
    fn ready(&self) -> Vec<(Key, Vec<(f64, f64)>)> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows
            .iter()
            .filter(|(_, window)| window.pairs.len() >= MIN_LABELS)
            .map(|(key, window)| (key.clone(), window.pairs.iter().copied().collect()))
            .collect()
    }

    /// Sends each ready window's quality and its version's baseline, asking the model-service (through
    /// the metadata cache) which offline metric the version's manifest records.
    pub async fn report(&self, downstream: &Downstream) {
        for ((model, version, variant), pairs) in self.ready() {
            let reference = ModelRef::new(&model, &version, &variant);
            let deadline = Deadline::after(Duration::from_secs(2));
            let Ok(spec) = downstream.model_spec(&reference, deadline).await else {
                continue;
            };
            let Some((metric, baseline)) = [QualityMetric::Auc, QualityMetric::R2]
                .into_iter()
                .find_map(|m| spec.metrics.get(m.key()).map(|&value| (m, value)))
            else {
                continue;
            };
            self.metrics.gauge(
                &MODEL_ACCURACY_BASELINE,
                baseline,
                &[Tag::model(&model), Tag::model_version(&version)],
            );
            if let Some(online) = metric.of(&pairs) {
                let tags = [
                    Tag::model(&model),
                    Tag::model_version(&version),
                    Tag::variant(&variant),
                ];
                self.metrics.gauge(&MODEL_ACCURACY, online, &tags);
            }
        }
    }

    /// Reports every `interval` until the guard is dropped.
    pub fn spawn_reporter(self: &Arc<Self>, downstream: Downstream, interval: Duration) -> ReportGuard {
        let quality = Arc::clone(self);
        ReportGuard(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                quality.report(&downstream).await;
            }
        }))
    }
}

/// Stops the reporter when dropped.
pub struct ReportGuard(tokio::task::JoinHandle<()>);

impl Drop for ReportGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_inverted_random_and_tied_rankings() {
        let perfect = [(0.1, 0.0), (0.2, 0.0), (0.8, 1.0), (0.9, 1.0)];
        assert_eq!(auc(&perfect), Some(1.0));
        let inverted: Vec<_> = perfect.iter().map(|&(s, t)| (s, 1.0 - t)).collect();
        assert_eq!(auc(&inverted), Some(0.0));
        // Every score tied: no ranking at all.
        assert_eq!(auc(&[(0.5, 0.0), (0.5, 1.0), (0.5, 1.0)]), Some(0.5));
        // One of the two positives outranks the one negative.
        assert_eq!(auc(&[(0.2, 1.0), (0.5, 0.0), (0.9, 1.0)]), Some(0.5));
        assert_eq!(auc(&[(0.2, 1.0), (0.9, 1.0)]), None, "one class only");
    }

    #[test]
    fn r2_of_exact_mean_and_worse_predictions() {
        let truth = [1.0, 2.0, 3.0];
        let exact: Vec<_> = truth.iter().map(|&t| (t, t)).collect();
        assert_eq!(r2(&exact), Some(1.0));
        let mean: Vec<_> = truth.iter().map(|&t| (2.0, t)).collect();
        assert_eq!(r2(&mean), Some(0.0));
        let worse: Vec<_> = truth.iter().map(|&t| (4.0 - t, t)).collect();
        assert!(r2(&worse).expect("defined") < 0.0);
        assert_eq!(r2(&[(1.0, 2.0), (3.0, 2.0)]), None, "no variance");
    }

    #[test]
    fn a_window_keeps_the_latest_labels_only() {
        let quality = Quality::new(Metrics::disabled());
        let record = |output| crate::predictions::record("customer_risk", "1", "control", output);
        let bad = Label::Customer {
            bad: true,
            outcome: 2,
        };
        for _ in 0..WINDOW + 5 {
            quality.observe(&record(0.9), &bad);
        }
        let ready = quality.ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].1.len(), WINDOW);
    }
}
