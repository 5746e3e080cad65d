//! Installs what the tests need on a fresh machine, and nothing when it is already there.

use std::process::{Command, Stdio};

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn has_nextest() -> bool {
    succeeds("cargo", &["nextest", "--version"])
}

/// redis-server and redis-cli (the tests start their own servers and a 3-node cluster).
pub fn redis() -> Result<(), String> {
    if succeeds("redis-server", &["--version"]) && succeeds("redis-cli", &["--version"]) {
        return Ok(());
    }
    apt_install(&["redis-server", "redis-tools"])?;
    // Debian's package may start a system redis on 6379; the tests never use it, so leave it be.
    if succeeds("redis-server", &["--version"]) {
        Ok(())
    } else {
        Err("redis-server still missing after apt-get install".into())
    }
}

/// The version of Datadog's APM test agent the trace tests were written against (OTLP over gRPC in, OTLP
/// JSON out on the OTLP HTTP port).
const TEST_AGENT: &str = "ddapm-test-agent==1.69.1";

/// Datadog's APM test agent in its own virtualenv (`target/venvs/ddapm`): sharing a venv with other
/// packages can make pip resolve an old agent without OTLP support.
pub fn test_agent() -> Result<(), String> {
    let venv = crate::target_dir().join("venvs/ddapm");
    let agent = venv.join("bin/ddapm-test-agent");
    let agent_str = agent.to_string_lossy().into_owned();
    if succeeds(&agent_str, &["--help"]) {
        return Ok(());
    }
    let venv_str = venv.to_string_lossy().into_owned();
    if !succeeds("python3", &["-m", "venv", &venv_str]) {
        // Debian's python3 splits venv into its own package.
        apt_install(&["python3-venv"])?;
        if !succeeds("python3", &["-m", "venv", "--clear", &venv_str]) {
            return Err(format!("`python3 -m venv {venv_str}` failed"));
        }
    }
    println!("installing {TEST_AGENT} into {venv_str}");
    let pip = venv.join("bin/pip").to_string_lossy().into_owned();
    let status = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check", TEST_AGENT])
        .status()
        .map_err(|e| format!("cannot run {pip}: {e}"))?;
    if status.success() && succeeds(&agent_str, &["--help"]) {
        Ok(())
    } else {
        Err(format!("installing {TEST_AGENT} failed ({status})"))
    }
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let sudo: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    println!("installing {} with apt-get", packages.join(" "));
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut full: Vec<&str> = sudo.to_vec();
        full.push("apt-get");
        full.extend(args);
        let status = Command::new(full[0])
            .args(&full[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{}` failed; install {} yourself and rerun",
                full.join(" "),
                packages.join(" ")
            ))
        }
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(packages);
    apt(&install)
}
