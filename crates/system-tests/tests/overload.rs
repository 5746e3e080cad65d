//! A spike of twice the system's capacity costs only the excess: the gateway's adaptive concurrency limit
//! refuses what it cannot serve at once (RESOURCE_EXHAUSTED), serves the rest whole and in time, and the
//! system is itself again the moment the spike ends.
//!
//! The figures are ratios to the capacity measured in the same run (before and after the spike), so they
//! busy machine where absolute rates do not; docs/operations.md has the release build's figures. The
//! test runs alone (`.config/nextest.toml`): other tests sharing the CPU would change the capacity
//! between its measurement and the spike.

use std::time::Duration;

use loadgen::{Ids, LoadOptions, Mix, OpenLoopOptions, Report, run_load, run_open_loop};
use system_tests::processes::ProcessStack;
use testkit::statsd::DogStatsdSocket;

/// A budget an unoptimised build meets at capacity with room to spare (release: 100 ms, of which 40 for
/// the features).
const BUDGET_MS: u64 = 300;
const FEATURE_TIMEOUT_MS: u64 = 120;

/// The least share of the capacity's goodput the spike must keep. A release build keeps all of it
/// (docs/operations.md); here the load generator is an unoptimised build in this process, on the same two
/// cores, and its own CPU doubles with the spike's rate, which no ratio cancels: about 0.85 to 1.2 is
/// what the services keep here on a machine at its usual speed, and 0.69 to 0.94 was seen on one running
/// at under half of it (capacity ~210/s). The fixed limit the gateway had before kept 0.30, so 0.6 still
/// tells the two apart.
const MIN_GOODPUT_RATIO: f64 = 0.6;

/// Callers for the capacity measurement: enough to saturate the three services on two cores.
const CAPACITY_CALLERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_capacity_costs_only_the_excess() {
    let statsd = DogStatsdSocket::bind();
    let env = [
        // Telemetry on: metrics to a real DogStatsD socket (the test agent's traces would add a fourth
        // process to measure; trace export's cost is measured by the benchmarks).
        ("DD_DOGSTATSD_URL", statsd.url()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
        ("DD_ENV", "overload-test".to_owned()),
    ];
    let gateway_env = [
        ("REQUEST_TIMEOUT_MS", BUDGET_MS.to_string()),
        ("FEATURE_TIMEOUT_MS", FEATURE_TIMEOUT_MS.to_string()),
    ];
    let stack = ProcessStack::start_each(&env, &[], &[], &gateway_env).await;
    let url = stack.gateway.url();

    // Warm up (connections, model metadata, allocator), then measure what the system serves.
    closed_loop(&url, Duration::from_secs(1)).await;
    let capacity = closed_loop(&url, Duration::from_secs(3)).await;
    let answered = capacity.total_requests() as f64 / capacity.elapsed.as_secs_f64();
    let errors: u64 = capacity.rpcs.values().flat_map(|s| s.errors.values()).sum();
    assert!(
        errors * 100 <= capacity.total_requests(),
        "the capacity run itself failed calls:\n{}",
        capacity.render()
    );
    let good = capacity.goodput();
    eprintln!("capacity ({CAPACITY_CALLERS} callers):\n{}", capacity.render());

    // The spike: twice that, open loop, as independent callers send it.
    let spike = open_loop(&url, 2.0 * answered, Duration::from_secs(6)).await;
    eprintln!("spike at {:.0}/s:\n{}", 2.0 * answered, spike.render());
    let stats = &spike.rpcs["QuotePrice"];
    let refused = stats.errors_with(tonic::Code::ResourceExhausted);
    let failed: u64 = stats.errors.values().sum::<u64>() - refused;
    assert!(
        refused > 0,
        "twice the capacity was served without refusing anything: the spike was no spike"
    );
    assert!(
        failed * 100 <= stats.latency_us.len(),
        "{failed} calls failed other than by a refusal: {:?}",
        stats.errors
    );
    // Timed from the send: the budget is the gateway's deadline, which starts when the call arrives; the
    // time a call waited in this process's generator for its turn to be sent is not the services'.
    let served_p99_ms = stats.good_from_send_us.value_at_quantile(0.99) / 1000;
    assert!(
        served_p99_ms <= BUDGET_MS,
        "p99 of the served calls {served_p99_ms} ms from the send ({} ms from the schedule), past the \
         {BUDGET_MS} ms budget",
        stats.good_us.value_at_quantile(0.99) / 1000
    );
    // A refusal is cheap: refused calls come back no slower than served ones.
    assert!(
        stats.refused_us.value_at_quantile(0.5) <= stats.good_us.value_at_quantile(0.5),
        "refusals (p50 {} µs) slower than answers (p50 {} µs)",
        stats.refused_us.value_at_quantile(0.5),
        stats.good_us.value_at_quantile(0.5)
    );

    // The spike over, half the capacity is served whole at once: nothing was left open or queued.
    let after = open_loop(&url, 0.5 * answered, Duration::from_secs(2)).await;
    eprintln!("after the spike, at {:.0}/s:\n{}", 0.5 * answered, after.render());
    let after_stats = &after.rpcs["QuotePrice"];
    let after_errors: u64 = after_stats.errors.values().sum();
    assert!(
        after_errors * 100 <= after_stats.latency_us.len(),
        "after the spike {after_errors} calls failed: {:?}",
        after_stats.errors
    );
    let after_ratio = after.goodput() / (0.5 * good);
    assert!(
        after_ratio >= 0.9,
        "after the spike the goodput is {after_ratio:.2} of the offered half capacity"
    );

    // The spike's goodput against the capacity measured on both sides of it: one window of a few seconds
    // on a shared machine can land high or low by a fifth.
    let capacity_after = closed_loop(&url, Duration::from_secs(3)).await;
    eprintln!(
        "capacity again ({CAPACITY_CALLERS} callers):\n{}",
        capacity_after.render()
    );
    let good = (good + capacity_after.goodput()) / 2.0;
    let ratio = spike.goodput() / good;
    assert!(
        ratio >= MIN_GOODPUT_RATIO,
        "goodput under the spike is {ratio:.2} of capacity ({:.0}/s against {good:.0}/s, the mean of the \
         windows before and after)",
        spike.goodput()
    );
}

async fn closed_loop(url: &str, duration: Duration) -> Report {
    let options = LoadOptions {
        concurrency: CAPACITY_CALLERS,
        duration,
        max_requests: u64::MAX,
        mix: Mix::Quote,
        ids: Ids::default(),
    };
    run_load(url, options).await.expect("closed-loop load")
}

async fn open_loop(url: &str, rate: f64, duration: Duration) -> Report {
    let options = OpenLoopOptions {
        rate,
        duration,
        mix: Mix::Quote,
        ids: Ids::default(),
    };
    run_open_loop(url, options).await.expect("open-loop load")
}
