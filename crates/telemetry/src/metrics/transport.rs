//! The connection to the agent: a `dogstatsd::Client` used unbatched from the flush thread only, one
//! line per datagram (each line already packed up to the datagram limit).
//!
//! Why not the crate's own batching: its batch thread reads an unbounded channel, retries with sleeps,
//! prints failures to stdout (where our JSON logs go) and is not joined on shutdown, and it reports no
//! send errors back. Unbatched, every send returns its error, which we count.
//!
//! Unix sockets: `dogstatsd::Client::new` BINDS a new socket file at the path when it cannot connect,
//! which would squat the agent's path. So the client is only built after the path is checked to be an
//! existing socket that accepts a connection; otherwise the flush is dropped and counted, and the
//! connection is retried at the next flush.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    os::unix::{fs::FileTypeExt, net::UnixDatagram},
    path::Path,
    time::{Duration, Instant},
};

use dogstatsd::{Client, DogstatsdError, EventOptions, OptionsBuilder};

use super::events::PendingEvent;
use crate::{config::DogStatsdUrl, tags::DropReason};

/// A line to send: name, DogStatsD kind and the value text (`5`, `0.25`, `1:2:3`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Line<'a> {
    Count(&'a str, i64),
    Gauge(&'a str, &'a str),
    Distribution(&'a str, &'a str),
}

/// How long one flush may wait, in total, for a full agent socket to drain (the crate's Unix socket is
/// non-blocking, and Linux queues only a few datagrams per socket, `net.unix.max_dgram_qlen`). The
/// flush thread can afford to wait a little; past the budget, lines are dropped and counted.
const FULL_SOCKET_BUDGET: Duration = Duration::from_millis(100);
const FULL_SOCKET_PAUSE: Duration = Duration::from_micros(200);

pub(crate) struct Transport {
    target: DogStatsdUrl,
    service_tags: Vec<String>,
    client: Option<Client>,
    /// When the current flush's waiting budget runs out.
    wait_until: Instant,
}

impl Transport {
    pub(crate) fn new(target: DogStatsdUrl, service_tags: Vec<String>) -> Self {
        Self {
            target,
            service_tags,
            client: None,
            wait_until: Instant::now(),
        }
    }

    /// Starts a flush: resets the waiting budget.
    pub(crate) fn begin_flush(&mut self) {
        self.wait_until = Instant::now() + FULL_SOCKET_BUDGET;
    }

    /// Makes sure a client exists; `Err` when the agent cannot be reached now.
    pub(crate) fn connect(&mut self) -> Result<(), DropReason> {
        if self.client.is_some() {
            return Ok(());
        }
        let mut options = OptionsBuilder::new();
        for tag in &self.service_tags {
            options.default_tag(tag.clone());
        }
        match &self.target {
            DogStatsdUrl::Unix(path) => {
                if !agent_socket_is_listening(path) {
                    return Err(DropReason::AgentUnavailable);
                }
                options.socket_path(Some(path.to_string_lossy().into_owned()));
            }
            DogStatsdUrl::Udp { host, port } => {
                // Resolved once here (DNS can block; this is the flush thread) so each send does not.
                let addr = (host.as_str(), *port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or(DropReason::AgentUnavailable)?;
                let from = match addr {
                    SocketAddr::V4(_) => "0.0.0.0:0",
                    SocketAddr::V6(_) => "[::]:0",
                };
                options.from_addr(from.to_owned()).to_addr(addr.to_string());
            }
        }
        let client = Client::new(options.build()).map_err(|_| DropReason::AgentUnavailable)?;
        self.client = Some(client);
        Ok(())
    }

    /// Sends one line as one datagram.
    pub(crate) fn send(&mut self, line: Line<'_>, tags: &str) -> Result<(), DropReason> {
        self.connect()?;
        let Some(client) = &self.client else {
            return Err(DropReason::AgentUnavailable);
        };
        let tag_list: &[&str] = if tags.is_empty() { &[] } else { &[tags] };
        let send = || match line {
            Line::Count(name, n) => client.count(name, n, tag_list),
            Line::Gauge(name, value) => client.gauge(name, value, tag_list),
            Line::Distribution(name, values) => client.distribution(name, values, tag_list),
        };
        let mut result = send();
        while matches!(&result, Err(DogstatsdError::IoError(e)) if e.kind() == std::io::ErrorKind::WouldBlock)
            && Instant::now() < self.wait_until
        {
            std::thread::sleep(FULL_SOCKET_PAUSE);
            result = send();
        }
        match result {
            Ok(()) => Ok(()),
            Err(DogstatsdError::IoError(error)) if error.kind() == std::io::ErrorKind::WouldBlock => {
                // The agent's socket stayed full: drop this line, keep the connection.
                Err(DropReason::SendFailed)
            }
            Err(_) => {
                // Agent restarted or gone: reconnect (after the socket checks) at the next flush.
                if matches!(self.target, DogStatsdUrl::Unix(_)) {
                    self.client = None;
                }
                Err(DropReason::SendFailed)
            }
        }
    }

    /// Sends one event as one datagram (events are rare: no waiting for a full socket).
    pub(crate) fn send_event(&mut self, event: &PendingEvent) -> Result<(), DropReason> {
        self.connect()?;
        let Some(client) = &self.client else {
            return Err(DropReason::AgentUnavailable);
        };
        let options = EventOptions::new()
            .with_aggregation_key(event.name)
            .with_alert_type(event.alert.into());
        client
            .event_with_options(
                event.title.as_str(),
                event.text.as_str(),
                [&event.tags],
                Some(options),
            )
            .map_err(|_| DropReason::SendFailed)
    }

    /// The service tags as the crate appends them (`env:..,service:..,version:..`).
    pub(crate) fn service_tags_joined(&self) -> String {
        self.service_tags.join(",")
    }
}

/// True when `path` is an existing Unix socket (symlinks followed) that accepts a datagram connection.
/// Never creates a file. The window between this check and the crate's own connect is microseconds;
/// the agent would have to delete its socket exactly then for the crate to bind one.
fn agent_socket_is_listening(path: &Path) -> bool {
    let is_socket = std::fs::metadata(path)
        .map(|meta| meta.file_type().is_socket())
        .unwrap_or(false);
    is_socket
        && UnixDatagram::unbound()
            .and_then(|probe| probe.connect(path))
            .is_ok()
}
