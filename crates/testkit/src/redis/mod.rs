//! Real `redis-server` processes for tests: one standalone server ([`RedisServer`]) or a Redis Cluster
//! ([`RedisCluster`]: primaries, optionally with replicas, and what failover tests need), on ephemeral
//! loopback ports, without persistence, in a temporary directory, and killed on drop. A standalone server
//! can require a password, serve TLS ([`RedisTlsOptions`]), and be killed and started again on the same port
//! ([`RedisServer::kill`], [`RedisServer::restart`]) for outage tests.
//!
//! Ports are picked by binding `127.0.0.1:0` and releasing the port; another process can take it before
//! redis-server binds it, so a server that fails to start is retried on fresh ports. Readiness is observed,
//! never slept for: redis-server's "Ready to accept connections" log line, then a `PING` that must answer
//! (on the plain port; a TLS-only server is ready at its log line).

mod cluster;
mod resp;

use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use cluster::{ClusterNode, RedisCluster, RedisClusterOptions};
pub use resp::Reply;
use resp::{read_reply, send};

/// How long one redis-server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How many fresh ports a start gets before giving up (and how many tries a restart gets on its port).
const START_ATTEMPTS: usize = 5;
/// Socket timeout of the kit's own commands (PING, CLUSTER INFO, ...).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The files a TLS server reads, in its directory.
const TLS_CERT_FILE: &str = "tls-server.crt";
const TLS_KEY_FILE: &str = "tls-server.key";
const TLS_CA_FILE: &str = "tls-ca.crt";

/// Options of a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Sets `requirepass`: clients must AUTH with this password (it goes into [`RedisServer::url`]).
    pub password: Option<String>,
    /// More `redis-server` arguments, e.g. `["--maxmemory", "1mb"]`.
    pub args: Vec<String>,
    /// Serve TLS (`--tls-port`); [`RedisServer::url`] is then `rediss://`.
    pub tls: Option<RedisTlsOptions>,
}

/// TLS for a [`RedisServer`], e.g. from [`crate::certs::TestPki::redis_tls`]; the kit writes the PEM
/// texts into the server's directory.
#[derive(Clone)]
pub struct RedisTlsOptions {
    /// The server's certificate chain (its certificate first), PEM. Clients connect to `127.0.0.1`: it
    /// needs that IP address among its subject alternative names.
    pub cert_pem: String,
    /// The server's private key, PEM.
    pub key_pem: String,
    /// The CA that client certificates are checked against (`--tls-ca-cert-file`), PEM.
    pub ca_pem: String,
    pub auth_clients: TlsAuthClients,
    /// Also listen in plain text on another port, so that [`RedisServer::command`] (plain RESP) works;
    /// without it the plain port is closed (`--port 0`).
    pub plain_port: bool,
}

/// The key stays out of test output.
impl fmt::Debug for RedisTlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTlsOptions")
            .field("auth_clients", &self.auth_clients)
            .field("plain_port", &self.plain_port)
            .finish_non_exhaustive()
    }
}

/// `--tls-auth-clients`: whether clients must present a certificate signed by the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuthClients {
    #[default]
    No,
    Optional,
    Yes,
}

impl TlsAuthClients {
    fn as_arg(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Optional => "optional",
            Self::Yes => "yes",
        }
    }
}

/// A private `redis-server` on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    /// The port clients use ([`RedisServer::url`]): the TLS port when the server serves TLS.
    port: u16,
    /// The plain-text port the kit's own commands use, if there is one.
    plain_port: Option<u16>,
    options: RedisOptions,
    /// Arguments before the caller's (cluster mode), kept for restarts.
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a standalone server without persistence and waits until it answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options` and waits until it answers `PING`.
    pub fn start_with(options: RedisOptions) -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&options, &[]) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// One attempt on a fresh port, with `extra` arguments before the caller's.
    fn try_start(options: &RedisOptions, extra: &[String]) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("testkit-redis-").tempdir()?;
        if let Some(tls) = &options.tls {
            std::fs::write(dir.path().join(TLS_CERT_FILE), &tls.cert_pem)?;
            std::fs::write(dir.path().join(TLS_KEY_FILE), &tls.key_pem)?;
            std::fs::write(dir.path().join(TLS_CA_FILE), &tls.ca_pem)?;
        }
        let port = crate::free_port();
        let plain_port = match &options.tls {
            None => Some(port),
            Some(tls) if tls.plain_port => Some(crate::free_port()),
            Some(_) => None,
        };
        let (child, stdout) = spawn(dir.path(), port, plain_port, options, extra)?;
        // Built before the checks so that a failed start drops it, which kills the process.
        let server = Self {
            child,
            port,
            plain_port,
            options: options.clone(),
            extra: extra.to_vec(),
            dir,
        };
        server.wait_ready(stdout)?;
        Ok(server)
    }

    fn wait_ready(&self, stdout: ChildStdout) -> io::Result<()> {
        wait_ready(stdout)?;
        if self.plain_port.is_some() {
            self.command(&["PING"])?.expect_status("PONG")?;
        }
        Ok(())
    }

    /// `redis://[:password@]127.0.0.1:<port>`, or `rediss://...` when the server serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.options.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The plain-text `redis://` URL of a TLS server started with [`RedisTlsOptions::plain_port`] (of any
    /// server without TLS: [`RedisServer::url`]).
    pub fn plain_url(&self) -> Option<String> {
        let port = self.plain_port?;
        Some(match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        })
    }

    /// The CA file the server was given, which also signs what tests make it serve: what a client trusts.
    pub fn tls_ca_file(&self) -> Option<PathBuf> {
        self.options
            .tls
            .as_ref()
            .map(|_| self.dir.path().join(TLS_CA_FILE))
    }

    /// The port clients connect to (the TLS port of a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's working directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one command on a fresh connection (after AUTH when the server has a password), over the plain
    /// port: a TLS server needs [`RedisTlsOptions::plain_port`] for it.
    pub fn command(&self, args: &[&str]) -> io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.command_bytes(&args)
    }

    /// [`RedisServer::command`] with binary arguments (Feast's keys and fields are binary).
    pub fn command_bytes(&self, args: &[&[u8]]) -> io::Result<Reply> {
        let port = self.plain_port.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this redis-server serves TLS only; the kit's client speaks plain RESP \
                 (start it with RedisTlsOptions::plain_port)",
            )
        })?;
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        if let Some(password) = &self.options.password {
            send(&mut stream, &[b"AUTH", password.as_bytes()])?;
            read_reply(&mut reader)?.expect_status("OK")?;
        }
        send(&mut stream, args)?;
        read_reply(&mut reader)
    }

    /// Kills the server now (for outage tests); the port is released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server if it runs and starts a new one on the same port(s), with the same options and
    /// directory (so the same certificates), and waits until it is ready. It loads what the old one saved
    /// in that directory: nothing, unless a test ran `SAVE` (periodic snapshots are off). The port may be
    /// taken meanwhile by another process: a few tries.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let mut last_error = None;
        for attempt in 0..START_ATTEMPTS {
            if attempt > 0 {
                // Only after a failed bind: give the port a moment to be released.
                std::thread::sleep(Duration::from_millis(100));
            }
            match spawn(
                self.dir.path(),
                self.port,
                self.plain_port,
                &self.options,
                &self.extra,
            ) {
                Ok((child, stdout)) => {
                    self.child = child;
                    match self.wait_ready(stdout) {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            self.kill();
                            last_error = Some(error);
                        }
                    }
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not restart")))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `redis-server` on `port` (TLS when `options.tls`, plain text on `plain_port` if any), in `dir`.
fn spawn(
    dir: &Path,
    port: u16,
    plain_port: Option<u16>,
    options: &RedisOptions,
    extra: &[String],
) -> io::Result<(Child, ChildStdout)> {
    let mut command = Command::new("redis-server");
    match &options.tls {
        None => {
            command.args(["--port", &port.to_string()]);
        }
        Some(tls) => {
            let plain = plain_port.map_or_else(|| "0".to_owned(), |p| p.to_string());
            command
                .args(["--port", &plain, "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(dir.join(TLS_CERT_FILE))
                .arg("--tls-key-file")
                .arg(dir.join(TLS_KEY_FILE))
                .arg("--tls-ca-cert-file")
                .arg(dir.join(TLS_CA_FILE))
                .args(["--tls-auth-clients", tls.auth_clients.as_arg()]);
        }
    }
    command
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .args(&options.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(password) = &options.password {
        command.args(["--requirepass", password]);
    }
    let mut child = command.spawn().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot run redis-server (is it installed?): {error}"),
        )
    })?;
    match child.stdout.take() {
        Some(stdout) => Ok((child, stdout)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other("redis-server has no stdout"))
        }
    }
}

/// Reads redis-server's log until it is ready to accept connections or exits (a taken port, a bad flag).
/// The reader thread keeps draining the log afterwards so the server never blocks on a full pipe.
fn wait_ready(stdout: ChildStdout) -> io::Result<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let mut sent = false;
        while let Some(Ok(line)) = lines.next() {
            if !sent && line.contains("Ready to accept connections") {
                sent = tx.send(Ok(())).is_ok();
            } else if !sent {
                tail.push(line);
            }
        }
        if !sent {
            let _ = tx.send(Err(tail.join("\n")));
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(log)) => Err(io::Error::other(format!(
            "redis-server exited during start-up:\n{log}"
        ))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "redis-server did not become ready",
        )),
    }
}
