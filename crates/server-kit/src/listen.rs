//! Where a service answers: its address bound at start-up, connections accepted only once it serves.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpSocket};

/// Connections waiting to be accepted, as `TcpListener::bind` allows.
const BACKLOG: u32 = 1024;

/// Where a service answers.
///
/// A socket [`Listen::bind`] binds at start-up (so an address a running service listens on stops this one
/// at once) accepts connections only when [`crate::Server::serve`] starts serving, after the service has
/// loaded what it needs (models, the feature registry, its store). A caller that connects before, as the
/// gateway does while a dependency restarts, is refused at once and fails fast; a listening socket would
/// take its connection and leave the call unanswered until its deadline. A listener already accepting
/// (tests) is served as it is.
#[derive(Debug)]
pub enum Listen {
    Bound(TcpSocket),
    Ready(TcpListener),
}

impl Listen {
    /// `addr` bound, not yet listened on.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restart binds again at once over the last run's closed connections.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Self::Bound(socket))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Bound(socket) => socket.local_addr(),
            Self::Ready(listener) => listener.local_addr(),
        }
    }

    /// Accepting connections from now on.
    pub fn listen(self) -> io::Result<TcpListener> {
        match self {
            Self::Bound(socket) => socket.listen(BACKLOG),
            Self::Ready(listener) => Ok(listener),
        }
    }
}

/// Runs a service's `main` (its telemetry, then [`run_process`]) to its end on a multi-threaded Tokio
/// runtime with `workers` workers (`ServerArgs::worker_threads`), or one per CPU the process may use. The
/// configuration is parsed first, on the calling thread, so that a bad `TOKIO_WORKER_THREADS` is refused
/// like any other setting (clap's one line naming `--worker-threads`, exit code 2) instead of making the
/// runtime panic.
pub fn block_on(service: &str, workers: Option<u32>, main: impl Future<Output = ExitCode>) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = workers {
        builder.worker_threads(usize::try_from(workers).unwrap_or(usize::MAX));
    }
    match builder.build() {
        Ok(runtime) => runtime.block_on(main),
        Err(error) => {
            eprintln!("{service}: cannot start its runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What a service's `main` does once its configuration is parsed and telemetry started: binds `addr`
/// ([`Listen::bind`]), then runs `run` on it until it returns. An address it cannot bind, or `run`
/// failing, is a critical log line (`cannot bind`, `<service> stopped`), a line on stderr for whoever
/// started the process, and a failing exit code.
pub async fn run_process<F, E>(service: &str, addr: SocketAddr, run: impl FnOnce(Listen) -> F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let listener = match Listen::bind(addr) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, listen_addr = %addr, "cannot bind");
            eprintln!("{service}: cannot bind {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match run(listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(alert = telemetry::logs::CRITICAL, %error, "{service} stopped");
            eprintln!("{service}: {error}");
            ExitCode::FAILURE
        }
    }
}

impl From<TcpListener> for Listen {
    fn from(listener: TcpListener) -> Self {
        Self::Ready(listener)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_address_refuses_connections_until_it_listens() {
        let bound = Listen::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
        assert!(
            matches!(bound, Listen::Bound(_)),
            "bound, not listening: {bound:?}"
        );
        let addr = bound.local_addr().expect("bound address");
        // What a caller sees while the service loads: refused at once, not held.
        let refused = tokio::net::TcpStream::connect(addr).await;
        assert_eq!(
            refused.expect_err("not listening yet").kind(),
            io::ErrorKind::ConnectionRefused
        );
        let listener = bound.listen().expect("listens");
        // A second service on a listening address stops at start-up, before loading anything.
        assert!(Listen::bind(addr).is_err(), "bound over a listening service");
        let (connected, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        connected.expect("connects once listening");
        accepted.expect("accepted");
    }
}
