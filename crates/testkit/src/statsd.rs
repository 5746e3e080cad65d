//! A stand-in for the Datadog agent's DogStatsD port: a UDP socket on 127.0.0.1:0 and a metrics sink
//! pointed at it, flushed only when a test asks, plus readers for the lines it received.

use std::net::UdpSocket;
use std::time::Duration;

pub struct StatsdAgent {
    socket: UdpSocket,
    pub metrics: telemetry::Metrics,
    /// The unified service tags every line ends with: `env:test,service:<service>,version:0.0.0-test`.
    pub service_tags: String,
}

impl StatsdAgent {
    /// A sink for `service`, flushed by [`StatsdAgent::lines`] only.
    pub fn start(service: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a DogStatsD stand-in");
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("read timeout");
        let target = telemetry::DogStatsdUrl::Udp {
            host: "127.0.0.1".into(),
            port: socket.local_addr().expect("addr").port(),
        };
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
        let mut lines = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            lines.extend(datagram.lines().map(str::to_owned));
        }
        lines
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
