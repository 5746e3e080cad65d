//! Running cargo and the service binaries.

use std::ffi::OsStr;
use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{SERVICES, root, target_dir};

pub fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

pub fn run(program: &OsStr, args: &[String], env: &[(&str, String)]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {} failed ({status})",
            program.to_string_lossy(),
            args.join(" ")
        ))
    }
}

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The three services as child processes; stopped with SIGTERM, as Kubernetes would.
pub struct Services {
    children: Vec<(&'static str, Child)>,
    gateway_port: u16,
}

impl Services {
    /// Starts model-service, feature-service and gateway (in that order) on `ports`, or free ones.
    /// Logs go to `target/demo/<service>.log`. DD_* and OTEL_* variables pass through unchanged; without a
    /// `REDIS_URL` the feature-service serves the embedded demo snapshot (`EMBEDDED_FEATURES`).
    pub fn start(bin: &Path, ports: Option<[u16; 3]>, env: &[(&str, String)]) -> Result<Self, String> {
        let ports = match ports {
            Some(p) => p,
            None => [free_port()?, free_port()?, free_port()?],
        };
        let logs = target_dir().join("demo");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let mut services = Self {
            children: Vec::new(),
            gateway_port: ports[2],
        };
        let redis_given =
            std::env::var_os("REDIS_URL").is_some() || env.iter().any(|(k, _)| *k == "REDIS_URL");
        for (name, port) in SERVICES.iter().zip(ports) {
            let log_path = logs.join(format!("{name}.log"));
            let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(bin.join(name));
            if *name == "model-service" {
                cmd.env("MODEL_REPOSITORY", root().join("crates/model-service/models"));
            }
            if *name == "feature-service" && !redis_given {
                // No Redis given: the demo's own made-up features, asked for by name.
                cmd.env("EMBEDDED_FEATURES", "true");
            }
            cmd.env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
                .env("FEATURE_SERVICE_URL", url(ports[1]))
                .env("MODEL_SERVICE_URL", url(ports[0]))
                .envs(env.iter().map(|(k, v)| (*k, v)))
                .stdout(log)
                .stderr(err);
            if std::env::var_os("DD_SERVICE").is_some() {
                // One DD_SERVICE for three processes would merge them in APM: each names itself.
                cmd.env_remove("DD_SERVICE");
            }
            let child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
            println!(
                "started {name} on 127.0.0.1:{port} (pid {}, log {})",
                child.id(),
                log_path.display()
            );
            services.children.push((name, child));
        }
        Ok(services)
    }

    /// Each service's name and process id.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(name, child)| ((*name).to_owned(), child.id()))
            .collect()
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// Waits for any service to exit (Ctrl-C reaches all of them through the process group).
    pub fn wait(mut self) -> Result<(), String> {
        loop {
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    let name = *name;
                    let stopped = self.stop();
                    return if status.success() {
                        stopped
                    } else {
                        Err(format!("{name} exited ({status})"))
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM to each service, then waits up to 10 s for each to exit cleanly.
    pub fn stop(mut self) -> Result<(), String> {
        let mut failures = Vec::new();
        for (name, child) in self.children.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        failures.push(format!("{name} exited with {status}"));
                        break;
                    }
                    Ok(None) if started.elapsed() < Duration::from_secs(10) => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        failures.push(format!("{name} did not stop within 10 s of SIGTERM"));
                        break;
                    }
                }
            }
        }
        self.children.clear();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
