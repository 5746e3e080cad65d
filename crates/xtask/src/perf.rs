//! `cargo xtask bench` (`just bench`): the system against the floor, in one run, written to
//! docs/PERFORMANCE.md.
//!
//! It starts a real redis-server filled in Feast's layout by `materialize --snapshot`, the three services
//! (release builds, features and quotes in that Redis), stand-ins for the agent (a UDP socket for
//! DogStatsD, `loadgen sink` for OTLP), and bare reference chains of the same shapes with no work in
//! them (`loadgen bare --downstream`), and times Redis's own round trips for a feature read and a quote
//! write (`redis-benchmark`, one caller). Then, all on this machine's cores: QuotePrice closed loop at 1 and
//! 64 callers against each reference and the system with telemetry off and on, the CRAI cache off (every
//! request the full path) and on; the highest open-loop rate held with p99 ≤ 5 ms, by the system and by
//! the bare two-call chain; latency at fixed rates; each service's RSS and CPU under load; and the ratios
//! again (telemetry on against off, the system against the two bare chains), in rounds of 64-caller runs
//! whose order alternates, with the CPU each process spends an answer in the system's runs. Each run also
//! leaves its report and latency curve under `target/bench/`, and the plots go to `docs/performance/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bench::UdpSink;
use crate::process::{Services, free_port};
use crate::{root, target_dir};

/// The p99 the highest sustained rate is held to.
const P99_LIMIT_MS: f64 = 5.0;
/// Rounds of 64-caller runs after the main runs (telemetry off and on, the bare two-call and four-call
/// chains), whose ratios are read from the sums over the rounds. With three, two runs an hour apart put
/// telemetry's cost at 10.3% and 4.1%, where alternating rounds of their two builds in between measured
/// 10.6% for each: the machine's spells weigh less over six.
const ROUNDS: usize = 6;

/// One run's QuotePrice (or PredictCustomerRisk) figures, from `loadgen run --json`.
#[derive(Debug, Clone, Default)]
struct Figures {
    per_second: f64,
    /// Answers, degraded ones included: the calls sent less those that failed or were refused.
    answered: f64,
    /// Answers a second, degraded ones included: what was sent less what failed or was refused.
    answered_per_second: f64,
    good_per_second: f64,
    errors: u64,
    unsent: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

/// Runs `loadgen run` and reads its JSON report back.
struct Loadgen {
    bin: PathBuf,
    out: PathBuf,
}

impl Loadgen {
    fn run(&self, gateway: &str, label: &str, rpc: &str, args: &[&str]) -> Result<Figures, String> {
        let json = self.out.join(format!("{label}.json"));
        let mix = if rpc == "PredictCustomerRisk" {
            "risk"
        } else {
            "quote"
        };
        let mut all = vec![
            "run",
            "--gateway",
            gateway,
            "--mix",
            mix,
            "--label",
            label,
            "--json",
        ];
        let json_arg = json.to_string_lossy().into_owned();
        all.push(&json_arg);
        all.extend(args);
        // The report is read from its JSON file; what loadgen prints is not needed.
        capture(&self.bin, &all)?;
        let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
        let report: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
        let stats = &report["rpcs"][rpc];
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let errors: u64 = stats["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(serde_json::Value::as_u64).sum());
        let requests = number(&stats["requests"]);
        let per_second = number(&stats["per_second"]);
        #[allow(clippy::cast_precision_loss)]
        let answered_share = if requests > 0.0 {
            (requests - errors as f64).max(0.0) / requests
        } else {
            0.0
        };
        let figures = Figures {
            per_second,
            answered: requests * answered_share,
            answered_per_second: per_second * answered_share,
            good_per_second: number(&stats["good_per_second"]),
            errors,
            unsent: report["unsent"].as_u64().unwrap_or(0),
            p50: number(&stats["latency_ms"]["p50"]),
            p90: number(&stats["latency_ms"]["p90"]),
            p99: number(&stats["latency_ms"]["p99"]),
            p99_9: number(&stats["latency_ms"]["p99_9"]),
            max: number(&stats["latency_ms"]["max"]),
        };
        println!(
            "{label}: {:.0} req/s ({:.0} answered, {:.0} good), {} errors, p50 {:.3} ms, p99 {:.3} ms",
            figures.per_second,
            figures.answered_per_second,
            figures.good_per_second,
            figures.errors,
            figures.p50,
            figures.p99
        );
        Ok(figures)
    }

    fn plot(&self, out: &Path, title: &str, labels: &[&str]) -> Result<(), String> {
        let mut args = vec![
            "plot".to_owned(),
            "--out".to_owned(),
            out.to_string_lossy().into_owned(),
            "--title".to_owned(),
            title.to_owned(),
        ];
        args.extend(
            labels
                .iter()
                .map(|l| self.out.join(format!("{l}.json")).to_string_lossy().into_owned()),
        );
        crate::process::run(self.bin.as_os_str(), &args, &[])
    }
}

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &Path, args: &[&str]) -> Result<Guard, String> {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Guard)
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

/// Bare reference servers with no work behind them: a leaf, and fronts that call it in the system's two
/// shapes (`loadgen bare --downstream --shape`).
struct BareChains {
    _servers: Vec<Guard>,
    leaf: String,
    two: String,
    four: String,
}

impl BareChains {
    fn start(loadgen: &Path) -> Result<Self, String> {
        let serve = |args: &[&str]| -> Result<(Guard, String), String> {
            let port = free_port()?;
            let addr = format!("127.0.0.1:{port}");
            let server = spawn(loadgen, &[&["bare", "--listen", &addr][..], args].concat())?;
            wait_listening(port)?;
            Ok((server, format!("http://{addr}")))
        };
        let (leaf_server, leaf) = serve(&[])?;
        let (two_server, two) = serve(&["--downstream", &leaf, "--shape", "two"])?;
        let (four_server, four) = serve(&["--downstream", &leaf, "--shape", "four"])?;
        Ok(Self {
            _servers: vec![leaf_server, two_server, four_server],
            leaf,
            two,
            four,
        })
    }
}

/// What one round measures, in its first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    TelemetryOff,
    TelemetryOn,
    BareTwo,
    BareFour,
}

impl Side {
    const ALL: [Self; 4] = [
        Self::TelemetryOff,
        Self::TelemetryOn,
        Self::BareTwo,
        Self::BareFour,
    ];

    fn tag(self) -> &'static str {
        match self {
            Self::TelemetryOff => "telemetry-off",
            Self::TelemetryOn => "telemetry-on",
            Self::BareTwo => "bare-two-calls",
            Self::BareFour => "bare-four-calls",
        }
    }
}

/// One round of 64-caller runs after the main runs: answered/s of each side, and the CPU the system's
/// two runs used.
#[derive(Debug, Clone, Default)]
struct Round {
    off: f64,
    on: f64,
    bare_two: f64,
    bare_four: f64,
    cpu_off: CpuSpent,
    cpu_on: CpuSpent,
}

/// CPU time (s) used during runs of the system, by process, and the answers given in them.
#[derive(Debug, Clone, Default)]
struct CpuSpent {
    seconds: Vec<(String, f64)>,
    answered: f64,
}

impl CpuSpent {
    fn add(&mut self, other: &Self) {
        for (name, seconds) in &other.seconds {
            match self.seconds.iter_mut().find(|(n, _)| n == name) {
                Some((_, sum)) => *sum += seconds,
                None => self.seconds.push((name.clone(), *seconds)),
            }
        }
        self.answered += other.answered;
    }

    /// µs of CPU an answer, by process, and in all.
    fn per_answer(&self) -> (Vec<(&str, f64)>, f64) {
        let each: Vec<(&str, f64)> = self
            .seconds
            .iter()
            .map(|(name, seconds)| (name.as_str(), 1e6 * seconds / self.answered.max(1.0)))
            .collect();
        let all = each.iter().map(|(_, us)| us).sum();
        (each, all)
    }
}

impl Round {
    fn side(&mut self, side: Side) -> &mut f64 {
        match side {
            Side::TelemetryOff => &mut self.off,
            Side::TelemetryOn => &mut self.on,
            Side::BareTwo => &mut self.bare_two,
            Side::BareFour => &mut self.bare_four,
        }
    }
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port}"))
}

/// The Redis round trips on a quote's serial path, alone: their medians at one caller (ms), from
/// `redis-benchmark`, Redis's own C client, so that no client library's cost is in them.
#[derive(Debug, Clone, Copy)]
struct RedisFloor {
    /// HGETALL of one entity's feature hash, as the feature-service reads it.
    read_p50: f64,
    /// SET ... EX of a quote-sized value, as the gateway stores a quote.
    write_p50: f64,
}

/// A quote as the gateway stores it is about this many bytes of JSON.
const QUOTE_BYTES: usize = 400;
/// The copy of a materialized feature hash the floor reads, and the key the floor's SET writes.
const FLOOR_FEATURES: &str = "bench:floor:features";
const FLOOR_QUOTE: &str = "bench:floor:quote";

/// Measures [`RedisFloor`] against the Redis on `port` once it holds the materialized features.
fn redis_floor(port: u16) -> Result<RedisFloor, String> {
    let port = port.to_string();
    // Feast's entity keys are binary: a script copies one feature hash to a key the benchmark can name.
    let copy = "for _ = 1, 1000 do local k = redis.call('RANDOMKEY'); \
                if k and redis.call('TYPE', k).ok == 'hash' then \
                return redis.call('COPY', k, KEYS[1], 'REPLACE') end end return 0";
    let copied = capture("redis-cli", &["-p", &port, "EVAL", copy, "1", FLOOR_FEATURES])?;
    if copied.trim() != "1" {
        return Err(format!(
            "no feature hash found in the Redis on port {port} to measure a read"
        ));
    }
    let p50 = |command: &[&str]| -> Result<f64, String> {
        let args = [&["-p", &port, "-c", "1", "-n", "20000", "--csv"][..], command].concat();
        let csv = capture("redis-benchmark", &args)?;
        // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
        csv.lines()
            .nth(1)
            .and_then(|row| row.split(',').nth(4))
            .and_then(|field| field.trim_matches('"').parse().ok())
            .ok_or_else(|| format!("redis-benchmark {}: no p50 in {csv:?}", command.join(" ")))
    };
    let value = "x".repeat(QUOTE_BYTES);
    let floor = RedisFloor {
        read_p50: p50(&["HGETALL", FLOOR_FEATURES])?,
        write_p50: p50(&["SET", FLOOR_QUOTE, &value, "EX", "150"])?,
    };
    capture("redis-cli", &["-p", &port, "DEL", FLOOR_FEATURES, FLOOR_QUOTE])?;
    println!(
        "redis floor: HGETALL p50 {:.3} ms, SET p50 {:.3} ms",
        floor.read_p50, floor.write_p50
    );
    Ok(floor)
}

/// `program`'s standard output, or why it failed.
fn capture(program: impl AsRef<Path>, args: &[&str]) -> Result<String, String> {
    let program = program.as_ref();
    let name = program.display();
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{name} {} failed ({})", args.join(" "), output.status));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("{name}: {e}"))
}

/// Peak RSS (MB) and mean CPU (% of one core) of each process while a run lasts.
struct Usage {
    rows: Vec<(String, f64, f64)>,
}

/// Samples `/proc` for `pids` every 200 ms until `done`.
fn sample(pids: Vec<(String, u32)>, ticks: f64, done: Arc<AtomicBool>) -> std::thread::JoinHandle<Usage> {
    std::thread::spawn(move || {
        let cpu = |pid: u32| proc_times(pid, ticks).map(|t| t.own);
        let rss = |pid: u32| -> Option<f64> {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        let started = Instant::now();
        let first: Vec<f64> = pids.iter().map(|(_, pid)| cpu(*pid).unwrap_or(0.0)).collect();
        let mut peak = vec![0.0_f64; pids.len()];
        while !done.load(Ordering::Relaxed) {
            for (i, (_, pid)) in pids.iter().enumerate() {
                peak[i] = peak[i].max(rss(*pid).unwrap_or(0.0));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let rows = pids
            .iter()
            .zip(first)
            .zip(peak)
            .map(|(((name, pid), before), peak)| {
                let used = cpu(*pid).unwrap_or(before) - before;
                (name.clone(), peak, 100.0 * used / elapsed)
            })
            .collect();
        Usage { rows }
    })
}

/// A process's CPU time so far (s), from `/proc/<pid>/stat`: its own, and that of its children it has
/// waited for.
struct Times {
    own: f64,
    children: f64,
}

fn proc_times(pid: u32, ticks: f64) -> Option<Times> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's closing parenthesis, from the 12th: utime, stime, cutime, cstime.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, system, child_user, child_system] = fields[..] else {
        return None;
    };
    Some(Times {
        own: (user + system) / ticks,
        children: (child_user + child_system) / ticks,
    })
}

/// Runs `run` (a load generator run) and measures the CPU time (s) each of `pids` used meanwhile, and
/// this process's: its own is the DogStatsD stand-in's (nothing else of it runs then), and its waited
/// children's is the load generator's.
fn cpu_during<T>(
    pids: &[(String, u32)],
    ticks: f64,
    run: impl FnOnce() -> Result<T, String>,
) -> Result<(T, Vec<(String, f64)>), String> {
    let me = std::process::id();
    let read = |pid: u32| {
        proc_times(pid, ticks).unwrap_or(Times {
            own: 0.0,
            children: 0.0,
        })
    };
    let before: Vec<Times> = pids.iter().map(|(_, pid)| read(*pid)).collect();
    let mine = read(me);
    let result = run()?;
    let mut used: Vec<(String, f64)> = pids
        .iter()
        .zip(before)
        .map(|((name, pid), before)| (name.clone(), (read(*pid).own - before.own).max(0.0)))
        .collect();
    let after = read(me);
    used.push((
        "the DogStatsD stand-in".to_owned(),
        (after.own - mine.own).max(0.0),
    ));
    used.push((
        "the load generator".to_owned(),
        (after.children - mine.children).max(0.0),
    ));
    Ok((result, used))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The whole benchmark; writes docs/PERFORMANCE.md.
pub fn run(bin: &Path, seconds: u64) -> Result<(), String> {
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let plots = root().join("docs/performance");
    std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let loadgen = Loadgen {
        bin: bin.join("loadgen"),
        out,
    };
    let secs = seconds.to_string();
    let short = (seconds / 2).max(3).to_string();

    // Redis in Feast's layout, holding the bundled snapshot.
    let redis_port = free_port()?;
    let port_arg = redis_port.to_string();
    let redis_server = spawn(
        Path::new("redis-server"),
        &[
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )?;
    wait_listening(redis_port)?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    crate::process::run(
        bin.join("materialize").as_os_str(),
        &[
            "--redis-url".to_owned(),
            redis_url.clone(),
            "--snapshot".to_owned(),
            "--rebase-timestamps".to_owned(),
        ],
        &[
            ("DD_TRACE_ENABLED", "false".to_owned()),
            ("DD_DOGSTATSD_DISABLE", "true".to_owned()),
        ],
    )?;

    // What Redis alone takes for the round trips a quote waits for, before anything else runs.
    let redis = redis_floor(redis_port)?;

    // The agent's stand-ins.
    let statsd = UdpSink::start()?;
    let otlp_port = free_port()?;
    let otlp_addr = format!("127.0.0.1:{otlp_port}");
    let otlp_sink = spawn(&bin.join("loadgen"), &["sink", "--otlp", &otlp_addr])?;
    wait_listening(otlp_port)?;

    // The floor: bare services with no work, one hop, and chains of the system's two shapes. They stay
    // up, idle, for the rounds at the end.
    let chains = BareChains::start(&bin.join("loadgen"))?;
    let mut references = BTreeMap::new();
    let mut bare_held = 0_u32;
    for (name, url) in [
        ("two calls", &chains.two),
        ("four calls", &chains.four),
        ("one hop", &chains.leaf),
    ] {
        let tag = name.replace(' ', "-");
        let c1 = loadgen.run(
            url,
            &format!("bare-{tag}-c1"),
            "QuotePrice",
            &["--concurrency", "1", "--seconds", &short],
        )?;
        let c64 = loadgen.run(
            url,
            &format!("bare-{tag}-c64"),
            "QuotePrice",
            &["--concurrency", "64", "--seconds", &secs],
        )?;
        if name == "two calls" {
            // The open-loop floor: what the system's own search is judged against.
            bare_held = search(&loadgen, url, &short, "bare-two-calls-search")?.1;
        }
        references.insert(name, (c1, c64));
    }

    let telemetry_off = vec![
        ("DD_DOGSTATSD_DISABLE", "true".to_owned()),
        ("DD_TRACE_ENABLED", "false".to_owned()),
    ];
    let telemetry_on = vec![
        ("DD_DOGSTATSD_URL", format!("udp://127.0.0.1:{}", statsd.port)),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_addr}")),
    ];
    let with = |telemetry: &[(&'static str, String)], cache_ms: &str| {
        let mut env = telemetry.to_vec();
        env.extend([
            ("REDIS_URL", redis_url.clone()),
            ("QUOTE_REDIS_URL", redis_url.clone()),
            ("CRAI_CACHE_TTL_MS", cache_ms.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]);
        env
    };
    // Every request the full path: the cache off, and ids walked in turn.
    let unique = ["--ids", "unique"];
    let ticks = clock_ticks();
    let mut system = BTreeMap::new();
    let mut usage = None;
    for (name, env) in [
        ("telemetry off", with(&telemetry_off, "0")),
        ("telemetry on", with(&telemetry_on, "0")),
        ("telemetry on, CRAI cache on", with(&telemetry_on, "300000")),
    ] {
        let tag = name.replace([' ', ','], "-");
        let (services, gateway) = start_warm(bin, &loadgen, &env, &tag)?;
        let ids: &[&str] = if name.contains("cache on") { &[] } else { &unique };
        let c1 = loadgen.run(
            &gateway,
            &format!("{tag}-c1"),
            "QuotePrice",
            &[&["--concurrency", "1", "--seconds", &short][..], ids].concat(),
        )?;
        let risk_c1 = loadgen.run(
            &gateway,
            &format!("{tag}-risk-c1"),
            "PredictCustomerRisk",
            &[&["--concurrency", "1", "--seconds", &short][..], ids].concat(),
        )?;
        let done = Arc::new(AtomicBool::new(false));
        let sampler = (name == "telemetry on").then(|| sample(services.pids(), ticks, Arc::clone(&done)));
        let c64 = loadgen.run(
            &gateway,
            &format!("{tag}-c64"),
            "QuotePrice",
            &[&["--concurrency", "64", "--seconds", &secs][..], ids].concat(),
        )?;
        done.store(true, Ordering::Relaxed);
        if let Some(sampler) = sampler {
            usage = sampler.join().ok();
        }
        let mut open = (Vec::new(), 0);
        if name == "telemetry on" {
            open = open_loop(&loadgen, &gateway, &short)?;
        }
        services.stop()?;
        system.insert(name, (c1, risk_c1, c64, open));
    }
    // The ratios again, in rounds whose order alternates, so that a slow spell of the machine falls on
    // every side: telemetry off, telemetry on, the bare two-call chain and the four-call chain.
    let mut rounds = Vec::with_capacity(ROUNDS);
    for n in 0..ROUNDS {
        let mut sides = Side::ALL;
        if n % 2 == 1 {
            sides.reverse();
        }
        let mut round = Round::default();
        for side in sides {
            let tag = format!("round-{n}-{}", side.tag());
            let label = format!("{tag}-c64");
            let c64 = ["--concurrency", "64", "--seconds", &short];
            let figures = match side {
                Side::TelemetryOff | Side::TelemetryOn => {
                    let telemetry = if side == Side::TelemetryOn {
                        &telemetry_on
                    } else {
                        &telemetry_off
                    };
                    let (services, gateway) = start_warm(bin, &loadgen, &with(telemetry, "0"), &tag)?;
                    let mut pids = services.pids();
                    pids.push(("redis-server".to_owned(), redis_server.0.id()));
                    pids.push(("the OTLP stand-in".to_owned(), otlp_sink.0.id()));
                    let (figures, seconds) = cpu_during(&pids, ticks, || {
                        loadgen.run(&gateway, &label, "QuotePrice", &[&c64[..], &unique].concat())
                    })?;
                    services.stop()?;
                    let spent = CpuSpent {
                        seconds,
                        answered: figures.answered,
                    };
                    if side == Side::TelemetryOn {
                        round.cpu_on = spent;
                    } else {
                        round.cpu_off = spent;
                    }
                    figures
                }
                Side::BareTwo => loadgen.run(&chains.two, &label, "QuotePrice", &c64)?,
                Side::BareFour => loadgen.run(&chains.four, &label, "QuotePrice", &c64)?,
            };
            *round.side(side) = figures.answered_per_second;
        }
        rounds.push(round);
    }
    drop(chains);
    loadgen.plot(
        &plots.join("quote-c64.svg"),
        "QuotePrice, 64 callers: latency by percentile",
        &[
            "bare-two-calls-c64",
            "bare-four-calls-c64",
            "telemetry-off-c64",
            "telemetry-on-c64",
            "telemetry-on--CRAI-cache-on-c64",
        ],
    )?;
    loadgen.plot(
        &plots.join("quote-open-loop.svg"),
        "QuotePrice, open loop, telemetry on: latency by percentile",
        &["open-1000", "open-2500", "open-5000"],
    )?;
    let floor = Floor {
        references: &references,
        redis,
        bare_held,
    };
    let text = report(
        &floor,
        &system,
        &rounds,
        usage.as_ref(),
        seconds,
        statsd.received(),
    );
    let path = root().join("docs/PERFORMANCE.md");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Starts the services with `env` and warms their connections and the model catalog (`tag` names the
/// warm-up's report); returns them and the gateway's URL.
fn start_warm(
    bin: &Path,
    loadgen: &Loadgen,
    env: &[(&str, String)],
    tag: &str,
) -> Result<(Services, String), String> {
    let services = Services::start(bin, None, env)?;
    let gateway = services.gateway_url();
    wait_listening(
        gateway
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    )?;
    loadgen.run(
        &gateway,
        &format!("{tag}-warm-up"),
        "QuotePrice",
        &["--concurrency", "4", "--seconds", "2"],
    )?;
    Ok((services, gateway))
}

/// Open loop at fixed rates, then the search for the highest rate held ([`search`]): every run as
/// (rate, figures), fixed rates first, then the search's in the order run, and the held rate (0 when none
/// held).
fn open_loop(loadgen: &Loadgen, gateway: &str, seconds: &str) -> Result<(Vec<(u32, Figures)>, u32), String> {
    let mut runs = Vec::new();
    for rate in [1000, 2500, 5000] {
        runs.push((
            rate,
            open_run(loadgen, gateway, rate, seconds, &format!("open-{rate}"))?,
        ));
    }
    let (searched, held) = search(loadgen, gateway, seconds, "search")?;
    runs.extend(searched);
    Ok((runs, held))
}

/// One open-loop QuotePrice run at `rate`, every id new, reported under `label`.
fn open_run(loadgen: &Loadgen, url: &str, rate: u32, seconds: &str, label: &str) -> Result<Figures, String> {
    loadgen.run(
        url,
        label,
        "QuotePrice",
        &[
            "--rate",
            &rate.to_string(),
            "--seconds",
            seconds,
            "--ids",
            "unique",
        ],
    )
}

/// Whether an open-loop run held its rate: p99 ≤ [`P99_LIMIT_MS`], no error and no backlog.
fn holds(figures: &Figures) -> bool {
    figures.errors == 0 && figures.unsent == 0 && figures.p99 <= P99_LIMIT_MS
}

/// The search for the highest open-loop rate `url` holds ([`holds`]): up 30% a step from 1,000/s until
/// one fails, then the gap halved three times. Every run as (rate, figures) in the order run, labelled
/// `{prefix}-{rate}`, and the held rate (0 when none held).
fn search(
    loadgen: &Loadgen,
    url: &str,
    seconds: &str,
    prefix: &str,
) -> Result<(Vec<(u32, Figures)>, u32), String> {
    let mut runs = Vec::new();
    let mut run = |rate: u32| -> Result<bool, String> {
        let figures = open_run(loadgen, url, rate, seconds, &format!("{prefix}-{rate}"))?;
        let passed = holds(&figures);
        runs.push((rate, figures));
        Ok(passed)
    };
    let (mut held, mut failed) = (0_u32, None);
    let mut rate = 1000_u32;
    while failed.is_none() && rate <= 60_000 {
        if run(rate)? {
            held = rate;
            rate = rate * 13 / 10;
        } else {
            failed = Some(rate);
        }
    }
    if let Some(mut high) = failed {
        let mut low = held;
        for _ in 0..3 {
            let mid = (low + high) / 2;
            if mid <= low.max(100) || mid >= high {
                break;
            }
            if run(mid)? {
                low = mid;
                held = mid;
            } else {
                high = mid;
            }
        }
    }
    Ok((runs, held))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(|| "?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    format!("{cores} cores ({cpu}), {memory} of memory")
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

type System<'a> = BTreeMap<&'a str, (Figures, Figures, Figures, (Vec<(u32, Figures)>, u32))>;

/// What the bare references measured: each chain at one and at 64 callers, Redis's own round trips,
/// and the highest open-loop rate the two-call chain held.
struct Floor<'a> {
    references: &'a BTreeMap<&'a str, (Figures, Figures)>,
    redis: RedisFloor,
    bare_held: u32,
}

fn report(
    floor: &Floor<'_>,
    system: &System<'_>,
    rounds: &[Round],
    usage: Option<&Usage>,
    seconds: u64,
    datagrams: u64,
) -> String {
    let &Floor {
        references,
        redis,
        bare_held,
    } = floor;
    let mut md = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let _ = writeln!(md, "# Performance\n");
    let _ = writeln!(
        md,
        "Written by `just bench` (`cargo xtask bench --skip-micro` for these load runs only) on {}, commit `{}`: {}. \
         Everything shares those cores: the three services (release builds), redis-server, the load generator and the \
         agent's stand-ins (a UDP socket for DogStatsD, `loadgen sink` for OTLP traces). Features and quotes are in a \
         real Redis filled in Feast's layout from the bundled snapshot (`materialize --snapshot`). Closed-loop runs \
         last {seconds} s (64 callers) or {} s (1 caller); latencies are the caller's, in milliseconds. Rerun: `just bench`.\n",
        date.trim(),
        commit(),
        machine(),
        (seconds / 2).max(3)
    );
    let _ = writeln!(
        md,
        "The floor is measured in the same run: bare services with no work behind them (`loadgen bare`), one gRPC \
         hop, and chains of the system's two shapes, two calls in a row (one feature fetch, one model-service \
         call: what a quote takes now) and two such pairs at once (four calls: a quote's path before it was \
         merged). \"CRAI cache off\" runs ask for every customer in turn with the cache disabled, so every request \
         takes the full path.\n"
    );
    let _ = writeln!(md, "## QuotePrice, closed loop\n");
    let _ = writeln!(
        md,
        "| what | 64 callers: answered/s | errors | p50 | p99 | p99.9 | 1 caller: p50 | p99 |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, (c1, c64)) in references {
        let _ = writeln!(
            md,
            "| bare, {name} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            c64.answered_per_second, c64.errors, c64.p50, c64.p99, c64.p99_9, c1.p50, c1.p99
        );
    }
    for (name, (c1, _, c64, _)) in system {
        let name = if name.contains("cache on") {
            (*name).to_owned()
        } else {
            format!("{name}, CRAI cache off")
        };
        let _ = writeln!(
            md,
            "| system, {name} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            c64.answered_per_second, c64.errors, c64.p50, c64.p99, c64.p99_9, c1.p50, c1.p99
        );
    }
    let bare = |name: &str| {
        references
            .get(name)
            .map_or(0.0, |(_, c64)| c64.answered_per_second)
    };
    if let (Some((_, _, off, _)), Some((_, _, on, _))) =
        (system.get("telemetry off"), system.get("telemetry on"))
    {
        let _ = writeln!(
            md,
            "\nWith telemetry on and the cache off, the system holds {:.0}% of the bare two-call chain's throughput and \
             {:.0}% of the four-call chain's. With telemetry on it answered {:.0}% of the requests a second it \
             answered with telemetry off. One run each: single runs of the same build on this machine have \
             differed by more than 10%. Answered/s counts the answers, degraded ones included, and not the calls \
             that failed or that the adaptive limit refused (the errors column): 64 callers are more than the \
             gateway lets in once its median latency passes a tenth of the budget.\n",
            100.0 * on.answered_per_second / bare("two calls").max(1.0),
            100.0 * on.answered_per_second / bare("four calls").max(1.0),
            100.0 * on.answered_per_second / off.answered_per_second.max(1.0)
        );
    }
    if !rounds.is_empty() {
        let mut sum = Round::default();
        for r in rounds {
            sum.off += r.off;
            sum.on += r.on;
            sum.bare_two += r.bare_two;
            sum.bare_four += r.bare_four;
            sum.cpu_off.add(&r.cpu_off);
            sum.cpu_on.add(&r.cpu_on);
        }
        let share = |part: f64, whole: f64| 100.0 * part / whole.max(1.0);
        let each: Vec<String> = rounds
            .iter()
            .map(|r| {
                format!(
                    "{:.0} with telemetry on against {:.0} off ({:.0}%), the bare chains {:.0} and {:.0} ({:.0}% and {:.0}%)",
                    r.on,
                    r.off,
                    share(r.on, r.off),
                    r.bare_two,
                    r.bare_four,
                    share(r.on, r.bare_two),
                    share(r.on, r.bare_four)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "The ratios, measured again after those runs in {} rounds of {} s runs at 64 callers (CRAI cache off): the \
             system with telemetry off and on, each on freshly started services, and the bare two-call and four-call \
             chains, the order within a round alternating so that a slow spell of the machine falls on every side. \
             Over the rounds, with telemetry on the system answered **{:.1}%** of what it answered with telemetry off, \
             **{:.1}%** of the bare two-call chain's answers and **{:.1}%** of the four-call chain's. By round, \
             answered/s: {}.\n",
            rounds.len(),
            (seconds / 2).max(3),
            share(sum.on, sum.off),
            share(sum.on, sum.bare_two),
            share(sum.on, sum.bare_four),
            each.join("; ")
        );
        let (off_each, off_all) = sum.cpu_off.per_answer();
        let (on_each, on_all) = sum.cpu_on.per_answer();
        if off_all > 0.0 && on_all > 0.0 {
            let parts = |each: &[(&str, f64)]| {
                each.iter()
                    .map(|(name, us)| format!("{name} {us:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "What those runs of the system cost in CPU, from `/proc/<pid>/stat` and summed over the rounds, in µs \
                 an answer: with telemetry off **{off_all:.1}** ({}); with telemetry on **{on_all:.1}** ({}). Telemetry \
                 on takes {:.1}% more CPU an answer: were the rate bound by CPU alone, it would answer {:.1}% of the \
                 telemetry-off rate: a reading of telemetry's cost that does not rest on how the rates \
                 settled, and that says which process pays it.\n",
                parts(&off_each),
                parts(&on_each),
                100.0 * (on_all / off_all - 1.0),
                100.0 * off_all / on_all
            );
        }
    }
    let _ = writeln!(md, "![QuotePrice, 64 callers](performance/quote-c64.svg)\n");
    let _ = writeln!(md, "## One caller\n");
    let _ = writeln!(
        md,
        "| what | QuotePrice p50 | p99 | PredictCustomerRisk p50 | p99 |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    for (name, (c1, risk, _, _)) in system {
        let _ = writeln!(
            md,
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            c1.p50, c1.p99, risk.p50, risk.p99
        );
    }
    if let Some((two_calls, _)) = references.get("two calls") {
        let bare = two_calls.p50;
        let _ = writeln!(
            md,
            "| floor: the bare two-call chain, and Redis's round trips alone | {:.3} | | {:.3} | |",
            bare + redis.read_p50 + redis.write_p50,
            bare + redis.read_p50
        );
        let _ = writeln!(
            md,
            "\nThe floor row adds medians measured alone in this run: the bare two-call chain ({bare:.3} ms), one \
             HGETALL of a feature hash ({:.3} ms; the feature fetch waits for it) and, for QuotePrice, one SET of a \
             {QUOTE_BYTES}-byte value ({:.3} ms; a quote is stored before it is answered), each from \
             `redis-benchmark`, Redis's own client, at one caller. A request that misses the CRAI cache waits for \
             each of them in turn, so on this machine no build of this design answers it much faster than that sum.",
            redis.read_p50, redis.write_p50
        );
    }
    if let Some((_, _, _, (open, held))) = system.get("telemetry on") {
        let _ = writeln!(md, "\n## QuotePrice, open loop (telemetry on, CRAI cache off)\n");
        let _ = writeln!(
            md,
            "Requests start on a fixed schedule; each latency counts from its scheduled start, so queueing shows. \
             The first three rows are fixed rates; the rest are the search for the highest rate held with p99 ≤ \
             {P99_LIMIT_MS} ms, no error and no backlog (up 30% a step from 1,000/s until one fails, then the gap \
             halved three times), in the order run.\n"
        );
        let _ = writeln!(
            md,
            "| rate (req/s) | achieved | errors | not sent | p50 | p90 | p99 | p99.9 | max | held |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for (i, (rate, f)) in open.iter().enumerate() {
            let verdict = if i < 3 {
                ""
            } else if holds(f) {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                md,
                "| {rate} | {:.0} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {verdict} |",
                f.per_second, f.errors, f.unsent, f.p50, f.p90, f.p99, f.p99_9, f.max
            );
        }
        if *held > 0 {
            let _ = write!(md, "\nThe highest rate held: **{held} QuotePrice/s**.");
        } else {
            let _ = write!(md, "\nNo rate tried held p99 ≤ {P99_LIMIT_MS} ms.");
        }
        if bare_held > 0 {
            let _ = writeln!(
                md,
                " The bare two-call chain, searched the same way in this run, held {bare_held}/s: the system \
                 held {:.0}% of it.\n",
                100.0 * f64::from(*held) / f64::from(bare_held)
            );
        } else {
            let _ = writeln!(
                md,
                " The bare two-call chain, searched the same way in this run, held no rate tried.\n"
            );
        }
        let _ = writeln!(md, "![QuotePrice, open loop](performance/quote-open-loop.svg)\n");
    }
    if let Some(usage) = usage {
        let _ = writeln!(md, "## Resources under load (telemetry on, 64 callers)\n");
        let _ = writeln!(md, "| service | peak RSS (MB) | CPU (% of one core) |");
        let _ = writeln!(md, "| --- | --- | --- |");
        for (name, rss, cpu) in &usage.rows {
            let _ = writeln!(md, "| {name} | {rss:.0} | {cpu:.0} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "The DogStatsD stand-in received {datagrams} datagrams over the runs with telemetry on. Each run's report \
         (JSON, with its whole latency curve) is in `target/bench/`; compare runs with `loadgen plot --out x.svg a.json b.json`."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About a third of a second of a shell's CPU.
    fn busy_shell() -> Command {
        let mut shell = Command::new("sh");
        shell.args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]);
        shell
    }

    fn used(used: &[(String, f64)], name: &str) -> f64 {
        used.iter()
            .find(|(n, _)| n == name)
            .map(|(_, seconds)| *seconds)
            .unwrap_or_else(|| panic!("no {name} in {used:?}"))
    }

    #[test]
    fn a_waited_child_is_counted_as_the_load_generator_and_not_as_this_process() {
        let ((), spent) = cpu_during(&[], clock_ticks(), || {
            let status = busy_shell().status().map_err(|e| e.to_string())?;
            assert!(status.success());
            Ok(())
        })
        .unwrap();
        let child = used(&spent, "the load generator");
        let own = used(&spent, "the DogStatsD stand-in");
        assert!(child > 0.05, "the child's CPU was not counted: {spent:?}");
        assert!(
            own < child / 2.0,
            "the child's CPU was counted as this process's: {spent:?}"
        );
    }

    /// Whether `pid` has exited: until it is waited for, its figures stay readable in `/proc`.
    fn exited(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| Some(stat.rsplit_once(')')?.1.trim_start().starts_with('Z')))
            .unwrap_or(true)
    }

    #[test]
    fn a_process_is_counted_under_its_name() {
        let mut child = busy_shell().spawn().unwrap();
        let pid = child.id();
        let pids = [("busy".to_owned(), pid)];
        let ((), spent) = cpu_during(&pids, clock_ticks(), || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !exited(pid) {
                assert!(Instant::now() < deadline, "the shell's loop did not end");
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
        .unwrap();
        let _ = child.wait();
        let busy = used(&spent, "busy");
        assert!(busy > 0.05, "the shell's loop used {busy} s: {spent:?}");
        assert!(used(&spent, "the load generator") < busy / 2.0, "{spent:?}");
    }
}
