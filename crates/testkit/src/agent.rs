//! Datadog's APM test agent (PyPI `ddapm-test-agent`), started per test on free loopback ports, taking
//! OTLP traces over gRPC and handing back what it received, as OTLP JSON, on its OTLP HTTP port.
//!
//! `cargo xtask test` installs it in its own virtualenv (`target/venvs/ddapm`); `DDAPM_TEST_AGENT` names
//! another executable.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestAgent {
    child: Child,
    pub port: u16,
    pub otlp_grpc_port: u16,
    pub otlp_http_port: u16,
}

fn executable() -> PathBuf {
    if let Some(path) = std::env::var_os("DDAPM_TEST_AGENT") {
        return PathBuf::from(path);
    }
    let venv = crate::installed("venvs/ddapm/bin/ddapm-test-agent");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("ddapm-test-agent")
    }
}

impl TestAgent {
    /// Starts the agent and waits until its OTLP ports answer.
    pub fn start() -> Self {
        let (port, otlp_grpc_port, otlp_http_port) =
            (crate::free_port(), crate::free_port(), crate::free_port());
        let exe = executable();
        let child = Command::new(&exe)
            .arg(format!("--port={port}"))
            .arg(format!("--otlp-grpc-port={otlp_grpc_port}"))
            .arg(format!("--otlp-http-port={otlp_http_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (run `cargo xtask test` to install it): {e}",
                    exe.display()
                )
            });
        let mut agent = Self {
            child,
            port,
            otlp_grpc_port,
            otlp_http_port,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("ddapm-test-agent exited at start: {status}");
            }
            let grpc_up = std::net::TcpStream::connect(("127.0.0.1", otlp_grpc_port)).is_ok();
            if grpc_up && agent.get("/test/session/traces").is_ok() {
                return agent;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "ddapm-test-agent did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The endpoint to give `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_grpc_port)
    }

    fn get(&self, path: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}{path}", self.otlp_http_port);
        ureq::get(&url)
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())
    }

    /// Every OTLP trace export the agent received this session, as JSON (`resourceSpans`...).
    pub fn traces(&self) -> serde_json::Value {
        let body = self.get("/test/session/traces").expect("test agent traces");
        serde_json::from_str(&body).expect("traces are JSON")
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
