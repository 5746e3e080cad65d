//! Stand-ins for the Datadog agent's DogStatsD port: [`DogStatsdSocket`], a UDP socket on 127.0.0.1:0
//! that any sink sends to (one in this process, or a service started as a child process with
//! [`DogStatsdSocket::url`]), and [`StatsdAgent`], that socket with a metrics sink pointed at it and
//! flushed only when a test asks; plus readers for the lines they received.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// How long a read waits for the next datagram before deciding the sender is done.
const QUIET: Duration = Duration::from_millis(300);

/// The agent's DogStatsD port on loopback.
pub struct DogStatsdSocket {
    socket: UdpSocket,
}

impl DogStatsdSocket {
    pub fn bind() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a DogStatsD stand-in");
        socket.set_read_timeout(Some(QUIET)).expect("read timeout");
        Self { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }

    /// Where an in-process sink sends.
    pub fn target(&self) -> telemetry::DogStatsdUrl {
        telemetry::DogStatsdUrl::Udp {
            host: "127.0.0.1".into(),
            port: self.port(),
        }
    }

    /// `DD_DOGSTATSD_URL` for a service started as a process.
    pub fn url(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port())
    }

    /// The next datagram, or `None` once the socket has been quiet for a while.
    pub fn next_datagram(&self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// [`DogStatsdSocket::next_datagram`] off the async runtime, so that a test awaiting it leaves the
    /// servers and tasks on its own runtime running.
    pub async fn next_datagram_async(&self) -> Option<String> {
        let socket = Self {
            socket: self.socket.try_clone().expect("clone the socket"),
        };
        tokio::task::spawn_blocking(move || socket.next_datagram())
            .await
            .expect("receive task")
    }

    /// Every datagram until the socket stays quiet.
    pub fn receive_all(&self) -> Vec<String> {
        std::iter::from_fn(|| self.next_datagram()).collect()
    }

    /// Every datagram received within `wait`, stopping early at the first that `wanted` accepts.
    pub fn receive_until(&self, wait: Duration, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut datagrams = Vec::new();
        while Instant::now() < deadline {
            if let Some(datagram) = self.next_datagram() {
                let done = wanted(&datagram);
                datagrams.push(datagram);
                if done {
                    break;
                }
            }
        }
        datagrams
    }
}

/// A metrics sink for a service, sending to its own [`DogStatsdSocket`].
pub struct StatsdAgent {
    socket: DogStatsdSocket,
    pub metrics: telemetry::Metrics,
    /// The unified service tags every line ends with: `env:test,service:<service>,version:0.0.0-test`.
    pub service_tags: String,
}

impl StatsdAgent {
    /// A sink for `service`, flushed by [`StatsdAgent::lines`] only.
    pub fn start(service: &str) -> Self {
        let socket = DogStatsdSocket::bind();
        let target = socket.target();
        let tags = telemetry::ServiceTags {
            env: "test".into(),
            service: service.into(),
            version: "0.0.0-test".into(),
        };
        let service_tags = service_tags(service);
        let options = telemetry::MetricsOptions {
            flush_interval: Duration::from_secs(3600),
            ..telemetry::MetricsOptions::new(target, tags)
        };
        let metrics = telemetry::Metrics::start(options).expect("metrics sink");
        Self {
            socket,
            metrics,
            service_tags,
        }
    }

    /// Flushes the sink and returns every DogStatsD line received since the last call.
    pub fn lines(&self) -> Vec<String> {
        assert!(self.metrics.flush(Duration::from_secs(2)), "metrics flush");
        self.socket
            .receive_all()
            .iter()
            .flat_map(|datagram| datagram.lines().map(str::to_owned))
            .collect()
    }
}

/// The unified service tags a [`StatsdAgent`] for `service` ends every line with.
pub fn service_tags(service: &str) -> String {
    format!("env:test,service:{service},version:0.0.0-test")
}

fn suffix(service: &str, kind: &str, tags: &str) -> String {
    let unified = service_tags(service);
    if tags.is_empty() {
        format!("|{kind}|#{unified}")
    } else {
        format!("|{kind}|#{tags},{unified}")
    }
}

/// The value part of the line of `metric` whose own tags are exactly `tags`, e.g.
/// `("cache.feast.miss", "c", "feature_view:customer_profile")`, sent by `service`'s sink.
pub fn value_of(lines: &[String], service: &str, metric: &str, kind: &str, tags: &str) -> Option<String> {
    let suffix = suffix(service, kind, tags);
    lines.iter().find_map(|line| {
        line.strip_prefix(metric)?
            .strip_prefix(':')?
            .strip_suffix(&suffix)
            .map(str::to_owned)
    })
}

/// Every sample of distribution `metric` with exactly `tags`, across multi-value lines.
pub fn samples_of(lines: &[String], service: &str, metric: &str, tags: &str) -> Vec<f64> {
    let suffix = suffix(service, "d", tags);
    lines
        .iter()
        .filter_map(|line| {
            line.strip_prefix(metric)?
                .strip_prefix(':')?
                .strip_suffix(&suffix)
        })
        .flat_map(|values| values.split(':'))
        .map(|v| v.parse::<f64>().expect("a number"))
        .collect()
}

/// Each line of the count `metric` in `lines`, from any service: its value and its tags (what follows
/// `|c|#`, the unified service tags last).
pub fn counts<'a>(lines: &'a [String], metric: &'a str) -> impl Iterator<Item = (i64, &'a str)> + 'a {
    lines.iter().filter_map(move |line| {
        let (value, tags) = line.strip_prefix(metric)?.strip_prefix(':')?.split_once("|c|#")?;
        Some((value.parse::<i64>().expect("a count"), tags))
    })
}

/// The sum of the count `metric` over the lines whose tags start with `tags` (`""`: every line).
pub fn count_sum(lines: &[String], metric: &str, tags: &str) -> i64 {
    counts(lines, metric)
        .filter(|(_, line_tags)| line_tags.starts_with(tags))
        .map(|(value, _)| value)
        .sum()
}
