//! A DogStatsD agent stand-in on a real socket (UDP or Unix datagram), shared by the tests that read
//! what the metrics sink sends.

#![allow(dead_code)] // Each test file uses a different part of this.

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use telemetry::{DogStatsdUrl, Metrics, MetricsOptions, ServiceTags};

/// How long the stand-in waits for the next datagram before deciding the sink is done.
const QUIET: Duration = Duration::from_millis(300);

/// A UDP agent on an ephemeral loopback port and the URL that reaches it.
pub fn udp_agent() -> (UdpSocket, DogStatsdUrl) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind test agent");
    socket.set_read_timeout(Some(QUIET)).expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let target = DogStatsdUrl::Udp {
        host: "127.0.0.1".into(),
        port,
    };
    (socket, target)
}

/// An agent's Unix datagram socket at `path`.
pub fn unix_agent(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(path).expect("bind agent socket");
    socket.set_read_timeout(Some(QUIET)).expect("timeout");
    socket
}

/// A socket datagrams are read from.
pub trait Datagrams {
    fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Datagrams for UdpSocket {
    fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

impl Datagrams for UnixDatagram {
    fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

/// Every datagram until the socket stays quiet.
pub fn receive_all(socket: &impl Datagrams) -> Vec<String> {
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = socket.recv_datagram(&mut buf) {
        datagrams.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    datagrams
}

/// A sink to `target` that flushes only when asked (`Metrics::flush`), with `options` adjusted.
pub fn start_with(
    target: DogStatsdUrl,
    tags: ServiceTags,
    adjust: impl FnOnce(MetricsOptions) -> MetricsOptions,
) -> Metrics {
    let options = MetricsOptions {
        flush_interval: Duration::from_secs(3600),
        ..MetricsOptions::new(target, tags)
    };
    Metrics::start(adjust(options)).expect("start sink")
}
