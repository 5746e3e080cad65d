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
//!
//! Origin fields: the crate writes `name:value|type|#own_tags,default_tags` (events:
//! `_e{..}:title|text|k:..|t:..|#own_tags,default_tags`) and has no hook for the fields DogStatsD
//! protocol 1.2+ puts after the tags (`|c:<container>|e:<external data>`). The default tags always
//! close the line, and the crate copies them verbatim, so the fields are appended to the last default
//! tag: every line then ends `...,version:3|c:<id>|e:<data>`, and `format::line_overhead` counts them
//! through [`Transport::default_tags_joined`]. This holds while `env:`, `service:` and `version:` are
//! all among the default tags (they always are): otherwise the crate appends `DD_ENV`/`DD_SERVICE`/
//! `DD_VERSION` tags after ours. The test `origin_fields_end_every_line_the_crate_writes` pins this
//! layout against the crate version in use.

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
    /// The service tags (and the entity id tag), the last one followed by the origin fields.
    default_tags: Vec<String>,
    client: Option<Client>,
    /// When the current flush's waiting budget runs out.
    wait_until: Instant,
}

impl Transport {
    /// `origin_fields` (`|c:..|e:..`, possibly empty) end every line; they ride on the last of
    /// `default_tags`, which always holds the service tags.
    pub(crate) fn new(target: DogStatsdUrl, mut default_tags: Vec<String>, origin_fields: &str) -> Self {
        if let Some(last) = default_tags.last_mut() {
            last.push_str(origin_fields);
        }
        Self {
            target,
            default_tags,
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
        for tag in &self.default_tags {
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

    /// What the crate appends after a line's own tags: the service tags and the origin fields
    /// (`env:..,service:..,version:..|c:..|e:..`).
    pub(crate) fn default_tags_joined(&self) -> String {
        self.default_tags.join(",")
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

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;
    use crate::{EventAlert, catalog::MODEL_VERSION_LOADED, metrics::format::line_overhead};

    /// The crate's line layout that the origin fields and `line_overhead` rely on.
    #[test]
    fn origin_fields_end_every_line_the_crate_writes() {
        let agent = UdpSocket::bind("127.0.0.1:0").expect("bind");
        agent
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let target = DogStatsdUrl::Udp {
            host: "127.0.0.1".into(),
            port: agent.local_addr().expect("addr").port(),
        };
        let tags = ["env:e", "service:s", "version:1", "dd.internal.entity_id:uid"].map(String::from);
        let fields = "|c:in-4026532|e:it-false,cn-app,pu-uid";
        let mut transport = Transport::new(target, tags.to_vec(), fields);
        transport.begin_flush();
        let receive = || {
            let mut buf = [0u8; 2048];
            let n = agent.recv(&mut buf).expect("a datagram");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let default_tags = transport.default_tags_joined();
        assert_eq!(
            default_tags,
            "env:e,service:s,version:1,dd.internal.entity_id:uid|c:in-4026532|e:it-false,cn-app,pu-uid"
        );

        transport.send(Line::Count("m", 5), "a:b").expect("sent");
        let line = receive();
        assert_eq!(line, format!("m:5|c|#a:b,{default_tags}"));
        assert_eq!(line.len(), line_overhead("m", "c", "a:b", &default_tags) + 1);

        transport
            .send(Line::Distribution("d", "1:2.5"), "")
            .expect("sent");
        let line = receive();
        assert_eq!(line, format!("d:1:2.5|d|#{default_tags}"));
        assert_eq!(
            line.len(),
            line_overhead("d", "d", "", &default_tags) + "1:2.5".len()
        );

        let event = PendingEvent::new(&MODEL_VERSION_LOADED, EventAlert::Info, "t", "x", &[]).expect("event");
        transport.send_event(&event).expect("sent");
        assert_eq!(
            receive(),
            format!("_e{{1,1}}:t|x|k:model_version_loaded|t:info|#event:model_version_loaded,{default_tags}")
        );
    }
}
