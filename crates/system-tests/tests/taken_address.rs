//! Each service, started on an address another process already listens on, stops at once: exit code 1,
//! `<service>: cannot bind <addr>: ...` on stderr for whoever started it, and a critical JSON log line
//! (`cannot bind`, `alert: critical`, the address) that the critical-lines monitor pages on.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::processes::json_lines;
use system_tests::services::bundled_models;
use testkit::bin_dir;

/// Far longer than a failed bind takes; only a service that did not stop runs into it.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn every_service_stops_with_a_critical_line_when_its_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a listening socket");
    let addr = taken.local_addr().expect("its address");
    for service in ["gateway", "feature-service", "model-service"] {
        let mut child = Command::new(bin_dir().join(service))
            .env("LISTEN_ADDR", addr.to_string())
            .env("LOG_FORMAT", "json")
            .env("DD_TRACE_ENABLED", "false")
            .env("DD_DOGSTATSD_DISABLE", "true")
            .env("EMBEDDED_FEATURES", "true")
            .env("MODEL_REPOSITORY", bundled_models())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {service}: {e}"));
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > EXIT_WITHIN {
                let _ = child.kill();
                panic!("{service} still running {EXIT_WITHIN:?} after starting on a taken address");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("output");
        assert_eq!(output.status.code(), Some(1), "{service}: {:?}", output.status);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("{service}: cannot bind {addr}: ")),
            "{service} stderr: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
        let lines = json_lines(&lines);
        let line = lines
            .iter()
            .find(|l| l["message"] == "cannot bind")
            .unwrap_or_else(|| panic!("{service}: no `cannot bind` line in {lines:#?}"));
        assert_eq!(line["alert"], "critical", "{line}");
        assert_eq!(line["level"], "ERROR", "{line}");
        assert_eq!(line["listen_addr"], addr.to_string(), "{line}");
        assert_eq!(line["dd.service"], service, "{line}");
    }
}
