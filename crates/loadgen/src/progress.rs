//! The live progress line a run shows while it lasts: once a second, on standard error, only when that is
//! a terminal (a log or a test's output gets the final report alone).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Calls answered and failed so far; [`Progress::start`] shows them.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    answered: AtomicU64,
    failed: AtomicU64,
}

/// Stops the progress line (and clears it) when dropped.
pub(crate) struct Shown {
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Counters for a run of `duration`, shown every second while the returned guard lives.
    pub(crate) fn start(duration: Duration) -> (Arc<Self>, Shown) {
        let progress = Arc::new(Self::default());
        let ticker = std::io::stderr().is_terminal().then(|| {
            let progress = progress.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                let mut last = (started, 0);
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    let answered = progress.answered.load(Ordering::Relaxed);
                    let rate = (answered - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                    last = (now, answered);
                    eprint!(
                        "\r{:>4.0} s of {}: {answered} calls, {rate:.0}/s, {} failed   ",
                        now.duration_since(started).as_secs_f64(),
                        duration.as_secs(),
                        progress.failed.load(Ordering::Relaxed),
                    );
                    let _ = std::io::stderr().flush();
                }
            })
        });
        (progress, Shown { ticker })
    }

    /// One call ended, failed or not.
    pub(crate) fn ended(&self, failed: bool) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            eprint!("\r{:60}\r", "");
        }
    }
}
