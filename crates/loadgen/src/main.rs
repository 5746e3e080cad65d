//! `loadgen demo`: sample predictions and a latency summary; `loadgen run`: a load test with a report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::{
    BUNDLED_CUSTOMERS, BUNDLED_ZONES, DEFAULT_PER_BATCH, IdOrder, Ids, LoadOptions, MAX_PER_BATCH, Mix,
    OpenLoopOptions, Report, Summary, connect, customer, plot, quote_request, run_load, run_open_loop,
    wait_ready,
};
use proto::inference::v1::{
    BatchPredictCustomerRiskRequest, PredictCustomerRiskRequest, PredictDemandSurgeRequest,
    PredictionMetadata, RecordOutcomeRequest,
};

#[derive(Parser)]
#[command(version, about = "Demo client and load generator for the pricing gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Shows sample predictions, a quote and its outcome, then a short burst of traffic with latencies.
    Demo {
        #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:50051")]
        gateway: String,
        /// Requests in the traffic burst (1 to 1,000,000,000).
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        requests: u64,
    },
    /// Load for a fixed time: closed loop (fixed concurrency) or, with --rate, open loop (fixed arrival
    /// rate); prints throughput, goodput (answers neither errors nor degraded) and percentiles per RPC.
    Run {
        #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:50051")]
        gateway: String,
        /// Concurrent callers (1 to 10,000).
        #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
        concurrency: usize,
        /// Seconds to run (1 to 86,400).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: u64,
        /// Stop after this many requests (1 to 1,000,000,000); unset: only the time limits the run.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000), conflicts_with = "rate")]
        max_requests: Option<u64>,
        /// Open loop: start this many requests a second whatever the answers (1 to 1,000,000), with
        /// latency measured from each request's scheduled start; --concurrency is then ignored.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate: Option<u32>,
        #[arg(long, value_enum, default_value_t = Mix::Mixed)]
        mix: Mix,
        /// Customers asked about: C000001 up to this one (1 to 100,000,000; the bundled snapshot holds
        /// 2,000; a Redis filled for a benchmark may hold more).
        #[arg(long, default_value_t = BUNDLED_CUSTOMERS, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        customers: u32,
        /// Zones asked about: Z0001 up to this one (1 to 100,000,000; the bundled snapshot holds 200).
        #[arg(long, default_value_t = BUNDLED_ZONES, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        zones: u32,
        /// How the entities are walked: `unique` asks for each before any again, so with more of them than
        /// requests in the run no cache can answer.
        #[arg(long, value_enum, default_value_t = IdOrder::Random)]
        ids: IdOrder,
        /// Entities in each call of the batch mixes (1 to 500).
        #[arg(long, default_value_t = DEFAULT_PER_BATCH, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PER_BATCH)))]
        per_batch: u32,
        #[command(flatten)]
        output: Output,
    },
    /// Serves a bare InferenceService that answers every call at once with no work behind it: run the same
    /// load against it to measure the floor of one gRPC hop in the same session as the system's figures.
    Bare {
        #[arg(long, default_value = "127.0.0.1:50060")]
        listen: std::net::SocketAddr,
        /// A chain: QuotePrice first calls this bare service (`http://host:port`) in --shape, then
        /// answers — the floor of a request path of that shape.
        #[arg(long)]
        downstream: Option<String>,
        #[arg(long, value_enum, default_value_t = loadgen::bare::Shape::Two, requires = "downstream")]
        shape: loadgen::bare::Shape,
    },
    /// Stands in for the Datadog agent's OTLP trace intake: accepts every export and drops it, so the
    /// services' span path runs for real in a benchmark.
    Sink {
        #[arg(long, default_value = "127.0.0.1:4317")]
        otlp: std::net::SocketAddr,
    },
    /// Draws the latency-percentile curves of runs saved with `run --json` in one SVG, to compare them.
    Plot {
        /// The SVG to write.
        #[arg(long)]
        out: PathBuf,
        /// The plot's title.
        #[arg(long, default_value = "latency by percentile")]
        title: String,
        /// Runs saved by `loadgen run --json`.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
}

/// Where a run's report goes besides the text table.
#[derive(clap::Args)]
struct Output {
    /// Also write the report as JSON (throughput, errors by status, percentiles and the whole latency
    /// curve) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the run's latency-percentile curve to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The run's name in the JSON and the plot.
    #[arg(long, default_value = "run")]
    label: String,
}

impl Output {
    /// Prints `report` and writes the files asked for.
    fn write(&self, report: &Report, load: &str) -> anyhow::Result<()> {
        print!("{}", report.render());
        let summary = report.summary(&self.label, load);
        if let Some(path) = &self.json {
            let json = serde_json::to_string_pretty(&summary)?;
            std::fs::write(path, json + "\n").map_err(|e| write_error(path, &e))?;
        }
        if let Some(path) = &self.plot {
            let svg = plot::svg(&format!("latency by percentile: {load}"), &[summary])?;
            std::fs::write(path, svg).map_err(|e| write_error(path, &e))?;
        }
        Ok(())
    }
}

fn write_error(path: &Path, error: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot write {}: {error}", path.display())
}

/// ", N entities a call" for the batch mixes.
fn batch_note(mix: Mix, per_batch: u32) -> String {
    match mix {
        Mix::BatchRisk | Mix::BatchSurge => format!(", {per_batch} entities a call"),
        Mix::Quote | Mix::Risk | Mix::Surge | Mix::Mixed => String::new(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo { gateway, requests } => demo(&gateway, requests).await,
        Command::Run {
            gateway,
            concurrency,
            seconds,
            max_requests,
            rate,
            mix,
            customers,
            zones,
            ids,
            per_batch,
            output,
        } => {
            let ids = Ids {
                customers,
                zones,
                order: ids,
                per_batch,
            };
            wait_ready(&gateway, Duration::from_secs(60)).await?;
            if let Some(rate) = rate {
                let load = format!(
                    "open loop, {rate} requests a second, {seconds} s, mix {mix:?}{}",
                    batch_note(mix, per_batch)
                );
                println!("load: {load}");
                let options = OpenLoopOptions {
                    rate: f64::from(rate),
                    duration: Duration::from_secs(seconds),
                    mix,
                    ids,
                };
                return output.write(&run_open_loop(&gateway, options).await?, &load);
            }
            let options = LoadOptions {
                concurrency,
                duration: Duration::from_secs(seconds),
                max_requests: max_requests.unwrap_or(u64::MAX),
                mix,
                ids,
            };
            let load = format!(
                "{concurrency} concurrent, {seconds} s, mix {mix:?}{}",
                batch_note(mix, per_batch)
            );
            println!("load: {load}");
            output.write(&run_load(&gateway, options).await?, &load)
        }
        Command::Bare {
            listen,
            downstream,
            shape,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let bare = match downstream {
                None => loadgen::bare::Bare::default(),
                Some(url) => {
                    let channel = tonic::transport::Endpoint::from_shared(url.clone())
                        .map_err(|e| anyhow::anyhow!("--downstream {url}: {e}"))?
                        .tcp_nodelay(true)
                        .connect_lazy();
                    loadgen::bare::Bare::chained(channel, shape)
                }
            };
            println!("bare InferenceService on {listen}");
            bare.serve(listener).await?;
            Ok(())
        }
        Command::Sink { otlp } => {
            let listener = tokio::net::TcpListener::bind(otlp)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {otlp}: {e}"))?;
            println!("OTLP trace sink on {otlp}");
            loadgen::sink::serve(loadgen::sink::Sink::default(), listener).await?;
            Ok(())
        }
        Command::Plot { out, title, runs } => {
            let mut summaries = Vec::with_capacity(runs.len());
            for path in &runs {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                let summary: Summary = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{} is not a `loadgen run --json` report: {e}", path.display())
                })?;
                summaries.push(summary);
            }
            std::fs::write(&out, plot::svg(&title, &summaries)?).map_err(|e| write_error(&out, &e))
        }
    }
}

fn describe(meta: Option<&PredictionMetadata>) -> String {
    let Some(m) = meta else { return String::new() };
    let mut text = format!("{} v{} [{}]", m.model_name, m.model_version, m.experiment_variant);
    if m.degraded {
        text.push_str(" DEGRADED");
        if !m.missing_features.is_empty() {
            text.push_str(&format!(" missing={}", m.missing_features.join(",")));
        }
        if !m.stale_features.is_empty() {
            text.push_str(&format!(" stale={}", m.stale_features.join(",")));
        }
    }
    text
}

async fn demo(gateway: &str, requests: u64) -> anyhow::Result<()> {
    println!("waiting for the gateway at {gateway} ...");
    wait_ready(gateway, Duration::from_secs(120)).await?;
    let mut client = connect(gateway).await?;

    // Ids picked from the bundled snapshot: healthy, a stale profile (older than the view's 7-day max
    // age), no activity row, and a customer the store has never seen.
    println!("\n== customer risk");
    for id in ["C000001", "C001234", "C000008", "C000074", "C999999"].map(str::to_owned) {
        let r = client
            .predict_customer_risk(PredictCustomerRiskRequest {
                customer_id: id,
                ..Default::default()
            })
            .await?
            .into_inner();
        println!(
            "{:<8} risk_score={:.4} multiplier={:.2}  {}",
            r.customer_id,
            r.risk_score,
            r.risk_multiplier,
            describe(r.metadata.as_ref())
        );
    }

    // Healthy zones, a stale demand row (over its 1-hour max age), no weather row, an unknown zone.
    println!("\n== demand surge (now)");
    for id in ["Z0001", "Z0150", "Z0057", "Z0032", "Z9999"].map(str::to_owned) {
        let r = client
            .predict_demand_surge(PredictDemandSurgeRequest {
                zone_id: id,
                ..Default::default()
            })
            .await?
            .into_inner();
        println!(
            "{:<8} surge_factor={:.3}  {}",
            r.zone_id,
            r.surge_factor,
            describe(r.metadata.as_ref())
        );
    }

    println!("\n== quote and outcome");
    let quote = client.quote_price(quote_request(7)).await?.into_inner();
    let (risk_mult, surge) = (
        quote.risk.as_ref().map_or(f64::NAN, |r| r.risk_multiplier),
        quote.surge.as_ref().map_or(f64::NAN, |s| s.surge_factor),
    );
    println!(
        "quote {}: {:.2} {} = base {:.2} x risk {:.2} x surge {:.3}",
        quote.quote_id, quote.price, quote.currency, quote.base_price, risk_mult, surge
    );
    let outcome = RecordOutcomeRequest {
        quote_id: quote.quote_id.clone(),
        booked: true,
        revenue: quote.price,
        ..Default::default()
    };
    let recorded = client.record_outcome(outcome).await?.into_inner();
    println!(
        "outcome recorded for {} (duplicate: {})",
        recorded.quote_id, recorded.duplicate
    );

    let batch = BatchPredictCustomerRiskRequest {
        customer_ids: (0..100).map(customer).collect(),
        ..Default::default()
    };
    let scored = client
        .batch_predict_customer_risk(batch)
        .await?
        .into_inner()
        .results;
    let mean = scored.iter().map(|r| r.risk_score).sum::<f64>() / scored.len().max(1) as f64;
    println!(
        "batch of {} customers scored in one call: mean risk {:.4}",
        scored.len(),
        mean
    );

    println!("\n== {requests} requests, 8 concurrent, mixed RPCs");
    let options = LoadOptions {
        concurrency: 8,
        duration: Duration::from_secs(60),
        max_requests: requests,
        mix: Mix::Mixed,
        ids: Ids::default(),
    };
    let report = run_load(gateway, options).await?;
    print!("{}", report.render());
    let errors: u64 = report.rpcs.values().flat_map(|s| s.errors.values()).sum();
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    println!(
        "\ndemo ok: {} requests in {:.2} s",
        report.total_requests(),
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    #[test]
    fn settings_outside_their_ranges_are_refused() {
        Cli::command().debug_assert();
        for bad in [
            ["run", "--concurrency", "0"],
            ["run", "--concurrency", "10001"],
            ["run", "--seconds", "0"],
            ["run", "--seconds", "18446744073709551615"],
            ["run", "--max-requests", "0"],
            ["run", "--rate", "0"],
            ["run", "--rate", "1000001"],
            ["demo", "--requests", "-1"],
        ] {
            let args = std::iter::once("loadgen").chain(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?} accepted");
        }
        let args = ["loadgen", "run", "--concurrency", "64", "--seconds", "5"];
        assert!(Cli::try_parse_from(args).is_ok());
    }
}
