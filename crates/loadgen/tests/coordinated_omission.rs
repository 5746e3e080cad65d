//! The load generator measures what a caller would see: its histogram holds a server's known latency, and
//! its open loop counts a stall against every request that was due during it (no coordinated omission),
//! where a closed loop, by waiting, hides all but one of them. The server is `loadgen::bare` on loopback,
//! answering after a fixed delay and stalling every call for a set time on demand.

use std::time::Duration;

use loadgen::bare::Bare;
use loadgen::{Ids, LoadOptions, Mix, OpenLoopOptions, Report, run_load, run_open_loop};

/// Every QuotePrice takes this long.
const DELAY: Duration = Duration::from_millis(5);
/// How long a stall holds every call.
const STALL: Duration = Duration::from_millis(400);

/// Serves `service` on an ephemeral loopback port; returns its URL.
async fn serve(service: Bare) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(service.serve(listener));
    format!("http://{addr}")
}

fn quote_ms(report: &Report, q: f64) -> f64 {
    report.rpcs["QuotePrice"].latency_us.value_at_quantile(q) as f64 / 1000.0
}

/// Calls whose latency was at least `ms`.
fn at_least(report: &Report, ms: u64) -> u64 {
    let h = &report.rpcs["QuotePrice"].latency_us;
    h.count_between(ms * 1000, h.max())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_histogram_holds_the_servers_latency() {
    let url = serve(Bare::with_delay(DELAY)).await;
    let options = LoadOptions {
        concurrency: 4,
        duration: Duration::from_secs(1),
        max_requests: u64::MAX,
        mix: Mix::Quote,
        ids: Ids::default(),
    };
    let report = run_load(&url, options).await.expect("load");
    let stats = &report.rpcs["QuotePrice"];
    assert_eq!(stats.errors.values().sum::<u64>(), 0, "{}", report.render());
    // The timer rounds sleeps up to its millisecond tick, and a machine busy with other tests adds more.
    let p50 = quote_ms(&report, 0.5);
    assert!(
        (5.0..15.0).contains(&p50),
        "p50 {p50} ms for a 5 ms server\n{}",
        report.render()
    );
    assert!(
        quote_ms(&report, 0.0) >= 5.0,
        "no call is faster than the server\n{}",
        report.render()
    );
    // Little's law: four callers always waiting, so calls a second x mean latency = 4. A histogram or a
    // count that lost or invented calls breaks it.
    let rate = stats.latency_us.len() as f64 / report.elapsed.as_secs_f64();
    let in_flight = rate * stats.latency_us.mean() / 1e6;
    assert!(
        (3.6..=4.1).contains(&in_flight),
        "{rate}/s x mean = {in_flight} in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_counts_a_stall_against_every_request_due_during_it() {
    let server = Bare::with_delay(DELAY);
    let url = serve(server.clone()).await;
    // 500 requests a second for 2 s, the server stalled for 400 ms from the first second on.
    const RATE: f64 = 500.0;
    let stalling = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.stall(STALL);
    });
    let options = OpenLoopOptions {
        rate: RATE,
        duration: Duration::from_secs(2),
        mix: Mix::Quote,
        ids: Ids::default(),
    };
    let report = run_open_loop(&url, options).await.expect("load");
    stalling.await.expect("stall");
    assert_eq!(report.total_requests(), 1000, "{}", report.render());
    // A request due t ms into the stall waits the 400 - t left of it: latencies spread evenly from 400 ms
    // down, so about 200 ms x 500/s = 100 calls took 200 ms or more, and the worst about the whole stall.
    // The 200 calls the stall releases at once are answered in a burst, which adds a few tens of
    // milliseconds to each, and on a machine busy with other tests up to about a hundred more: 100 to
    // about 160 such calls, bounded here by the 200 calls due during the stall. A generator that timed
    // calls from when they were sent would count a handful; one that timed them from the start of the
    // run, about 900.
    let long = at_least(&report, 200);
    assert!(
        (90..=200).contains(&long),
        "{long} calls of 200 ms or more\n{}",
        report.render()
    );
    let max = quote_ms(&report, 1.0);
    assert!((400.0..600.0).contains(&max), "max {max} ms\n{}", report.render());
    // The calls not due during the stall were served in about the server's time (a machine busy with
    // other tests adds some).
    let p50 = quote_ms(&report, 0.5);
    assert!(p50 < 25.0, "p50 {p50} ms\n{}", report.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_hides_a_stall_as_the_open_loop_is_built_not_to() {
    let server = Bare::with_delay(DELAY);
    let url = serve(server.clone()).await;
    let stalling = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.stall(STALL);
    });
    let options = LoadOptions {
        concurrency: 1,
        duration: Duration::from_millis(1500),
        max_requests: u64::MAX,
        mix: Mix::Quote,
        ids: Ids::default(),
    };
    let report = run_load(&url, options).await.expect("load");
    stalling.await.expect("stall");
    // The one caller waited out the stall in a single call and sent nothing meanwhile: one long sample
    // where the open loop above records a hundred. This is what the open loop's schedule corrects.
    assert_eq!(at_least(&report, 200), 1, "{}", report.render());
    assert!(quote_ms(&report, 1.0) >= 390.0, "{}", report.render());
}
