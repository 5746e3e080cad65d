//! The three services as separate processes (their real binaries), for tests that need what only a
//! process has: its own telemetry (service name, DogStatsD and OTLP sinks), its stdout log lines, and
//! SIGTERM.
//!
//! The binaries are the ones `cargo test --workspace` / `cargo nextest run --workspace` build next to the
//! test executables (`target/<profile>/`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_kit::test_certs::TlsArgs;
use tonic::transport::{Channel, Endpoint};

use testkit::bin_dir;

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test` (or `cargo test --workspace`), which builds it",
        path.display()
    );
    path
}

/// The JSON log lines among a process's stdout lines (what `terminate` and `wait_exit` return), parsed;
/// other lines (a panic message, a line cut by a kill) are left out.
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// One service process; its stdout lines are collected; killed on drop if still running.
pub struct ServiceProcess {
    pub name: &'static str,
    pub addr: SocketAddr,
    env: Vec<(String, String)>,
    /// How the kit itself connects when the service speaks TLS.
    tls: Option<server_kit::ClientTlsArgs>,
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServiceProcess {
    /// Starts binary `name` listening on a free loopback port, with `env` on top of this process's
    /// environment, and waits until its health check answers SERVING.
    pub async fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        Self::start_tls(name, env, None).await
    }

    /// [`ServiceProcess::start`] for a service that speaks TLS: the kit connects (health checks,
    /// [`ServiceProcess::channel`]) with `tls`, to `https://localhost:<port>`.
    pub async fn start_tls(
        name: &'static str,
        env: &[(&str, String)],
        tls: Option<server_kit::ClientTlsArgs>,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let mut process = Self::spawn(name, addr, env, tls);
        process.wait_serving(Duration::from_secs(60)).await;
        process
    }

    /// Kills the process at once (SIGKILL: a crash, nothing flushed or drained).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the service again on the same address with the same environment (after [`Self::kill`]),
    /// and waits until it is SERVING.
    pub async fn restart(&mut self) {
        self.kill();
        let (env, tls) = (std::mem::take(&mut self.env), self.tls.take());
        *self = Self::spawn(self.name, self.addr, env, tls);
        self.wait_serving(Duration::from_secs(60)).await;
    }

    fn spawn(
        name: &'static str,
        addr: SocketAddr,
        env: Vec<(String, String)>,
        tls: Option<server_kit::ClientTlsArgs>,
    ) -> Self {
        let mut command = Command::new(binary(name));
        if name == "model-service" {
            command.env("MODEL_REPOSITORY", crate::services::bundled_models());
        }
        let given = |key: &str| env.iter().any(|(k, _)| k == key);
        if name == "gateway" && !given("LOG_SAMPLE_RATE") {
            // Tests read the lines of the requests they send: every one is written unless a test
            // measures the production policy.
            command.env("LOG_SAMPLE_RATE", "1");
        }
        if name == "feature-service" && !given("REDIS_URL") && !given("EMBEDDED_FEATURES") {
            // A test that gives no Redis asks for the embedded snapshot, as the service requires.
            command.env("EMBEDDED_FEATURES", "true");
        }
        let mut child = command
            .env("LISTEN_ADDR", addr.to_string())
            .env("LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stdout.take().map(|stdout| {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(line);
                }
            })
        });
        Self {
            name,
            addr,
            env,
            tls,
            child: Some(child),
            lines,
            reader,
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` (the test certificate's name) with TLS.
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel_with(self.tls.as_ref())
    }

    /// A channel to the service with other TLS settings than the kit's (`None`: plaintext).
    pub fn channel_with(&self, tls: Option<&server_kit::ClientTlsArgs>) -> Channel {
        let endpoint = Endpoint::from_shared(self.url()).expect("valid url");
        match tls {
            Some(tls) => tls.configure(endpoint).expect("TLS settings"),
            None => endpoint,
        }
        .connect_lazy()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn wait_serving(&mut self, timeout: Duration) {
        let channel = self.channel();
        let (child, lines) = (&mut self.child, &self.lines);
        let exited = || match child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => {
                let output = lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                Some(format!(
                    "exited while starting ({status}); its output: {output:?}"
                ))
            }
            _ => None,
        };
        crate::services::wait_serving(self.name, &channel, timeout, exited).await;
    }

    /// Sends SIGTERM and returns at once (the process drains and exits by itself; see [`Self::wait_exit`]).
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`STOP` freezes the process as a hung host would, `CONT` resumes it).
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status();
        }
    }

    /// SIGTERM, then waits (up to 15 s) for the exit, which flushes the process's telemetry; returns the
    /// exit status and every line the process wrote to stdout.
    pub async fn terminate(self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal_term();
        self.wait_exit().await
    }

    /// Waits (up to 15 s) for the process to exit; returns its exit status and every line it wrote to
    /// stdout.
    pub async fn wait_exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} ignored SIGTERM",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pipe closed with the process: the reader ends once it has read the last line.
        if let Some(reader) = self.reader.take() {
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        }
        (status, self.lines())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The three services as processes, wired together; `env` goes to all three (telemetry settings).
pub struct ProcessStack {
    pub models: ServiceProcess,
    pub features: ServiceProcess,
    pub gateway: ServiceProcess,
}

impl ProcessStack {
    pub async fn start(env: &[(&str, String)]) -> Self {
        Self::start_each(env, &[], &[], &[]).await
    }

    /// [`ProcessStack::start`] with more environment for each service on top of `env`.
    pub async fn start_each(
        env: &[(&str, String)],
        models_env: &[(&str, String)],
        features_env: &[(&str, String)],
        gateway_env: &[(&str, String)],
    ) -> Self {
        let models = ServiceProcess::start("model-service", &[env, models_env].concat()).await;
        let features = ServiceProcess::start("feature-service", &[env, features_env].concat()).await;
        let env = [env, gateway_env].concat();
        let mut gateway_env = env.clone();
        if !env.iter().any(|(k, _)| *k == "REQUEST_TIMEOUT_MS") {
            gateway_env.extend(crate::services::test_budget_env());
        }
        gateway_env.push(("FEATURE_SERVICE_URL", features.url()));
        gateway_env.push(("MODEL_SERVICE_URL", models.url()));
        let gateway = ServiceProcess::start("gateway", &gateway_env).await;
        Self {
            models,
            features,
            gateway,
        }
    }

    /// The three services speaking mutual TLS with `pki`'s certificates: each requires a client
    /// certificate from its CA, and the gateway presents one to the other two. `env` goes to all three.
    pub async fn start_mutual_tls(env: &[(&str, String)], pki: &server_kit::test_certs::TestPki) -> Self {
        let path = |p: &std::path::Path| p.display().to_string();
        let mut server_env = env.to_vec();
        server_env.extend([
            ("TLS_CERT_FILE", path(&pki.server_cert)),
            ("TLS_KEY_FILE", path(&pki.server_key)),
            ("TLS_CLIENT_CA_FILE", path(&pki.ca_cert)),
        ]);
        let kit = Some(pki.client_args(true));
        let models = ServiceProcess::start_tls("model-service", &server_env, kit.clone()).await;
        let features = ServiceProcess::start_tls("feature-service", &server_env, kit.clone()).await;
        let mut gateway_env = server_env;
        gateway_env.extend([
            ("DOWNSTREAM_TLS_CA_FILE", path(&pki.ca_cert)),
            ("DOWNSTREAM_TLS_CERT_FILE", path(&pki.client_cert)),
            ("DOWNSTREAM_TLS_KEY_FILE", path(&pki.client_key)),
            ("FEATURE_SERVICE_URL", features.url()),
            ("MODEL_SERVICE_URL", models.url()),
        ]);
        gateway_env.extend(crate::services::test_budget_env());
        let gateway = ServiceProcess::start_tls("gateway", &gateway_env, kit).await;
        Self {
            models,
            features,
            gateway,
        }
    }

    pub fn client(&self) -> proto::inference::v1::inference_service_client::InferenceServiceClient<Channel> {
        proto::inference::v1::inference_service_client::InferenceServiceClient::new(self.gateway.channel())
    }

    /// SIGTERM to each, gateway first; returns each one's stdout lines, and asserts clean exits.
    pub async fn terminate(self) -> Vec<(&'static str, Vec<String>)> {
        let mut out = Vec::new();
        for process in [self.gateway, self.features, self.models] {
            let name = process.name;
            let (status, lines) = process.terminate().await;
            assert!(status.success(), "{name} exited with {status}");
            out.push((name, lines));
        }
        out
    }
}
