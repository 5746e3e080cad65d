//! The container build (`deploy/Dockerfile`): hadolint finds nothing, not even style, and the image
//! holds what the chart runs: each Deployment's command is a binary the build copies, the model-service's
//! repository is where the image puts the models, the chart's user is the image's, its ports the image's.
//! (No Docker engine is needed for these; building the image needs one.)

use deploy_checks::{ci_values_files, component, container, env_value, render, root, run, tool, workloads};

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile")
}

/// The Dockerfile's instructions with continuation lines joined.
fn instructions() -> Vec<String> {
    dockerfile()
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn hadolint_finds_nothing() {
    let path = root().join("deploy/Dockerfile");
    let output = run(
        &tool("hadolint"),
        &["--failure-threshold", "style", &path.to_string_lossy()],
    );
    assert!(
        output.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn hadolint_rejects_what_it_should() {
    // Proves the check above can fail: an unpinned base, apt without pinning or cleanup, root.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian\nRUN apt-get update && apt-get install -y curl\n",
    )
    .expect("write");
    let output = run(
        &tool("hadolint"),
        &["--failure-threshold", "style", &bad.to_string_lossy()],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "hadolint accepted:\n{text}");
    assert!(text.contains("DL3006") || text.contains("DL3008"), "{text}");
}

#[test]
fn the_image_holds_what_the_chart_runs() {
    let instructions = instructions();
    let build = instructions
        .iter()
        .find(|line| line.contains("cargo build --release"))
        .expect("a release build");
    let cook = instructions
        .iter()
        .find(|line| line.contains("cargo chef cook"))
        .expect("a dependency layer");
    // The packages of the cargo command (the part before any `&&`).
    let packages = |line: &str| -> Vec<String> {
        let cargo = line.split("&&").next().unwrap_or_default();
        let words: Vec<&str> = cargo.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "-p")
            .map(|w| w[1].to_owned())
            .collect()
    };
    assert_eq!(
        packages(cook),
        packages(build),
        "the dependency layer builds the same packages"
    );
    let image_user = instructions
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("the runtime stage sets its user");
    let env_models = instructions
        .iter()
        .find_map(|line| line.strip_prefix("ENV MODEL_REPOSITORY="))
        .expect("the image names its model repository");
    assert!(
        instructions
            .iter()
            .any(|line| line.starts_with("COPY --from=builder /out/models/ ")
                && line.ends_with(&format!(" {env_models}/"))),
        "the models are copied to {env_models}"
    );
    let exposed: Vec<u64> = instructions
        .iter()
        .find_map(|line| line.strip_prefix("EXPOSE "))
        .expect("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    for model in ["customer_risk", "demand_surge"] {
        assert!(
            build.contains(&format!("crates/model-service/models/{model}")),
            "{model} is copied"
        );
        assert!(root().join("crates/model-service/models").join(model).is_dir());
    }

    for values in ci_values_files() {
        let objects = render(&values, &[]);
        for workload in workloads(&objects) {
            let pod = &workload["spec"]["template"]["spec"];
            let c = container(workload);
            let command = c["command"][0].as_str().expect("command");
            let binary = command
                .strip_prefix("/usr/local/bin/")
                .expect("a binary of the image");
            assert!(
                build.contains(&format!("target/release/{binary}")),
                "{command}: the image has no {binary}"
            );
            let user = format!(
                "{}:{}",
                pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
            );
            assert_eq!(
                user,
                image_user,
                "{}: the chart's user is the image's",
                values.display()
            );
            if let Some(port) = c["ports"]
                .as_array()
                .and_then(|ports| ports.iter().find(|p| p["name"] == "grpc"))
            {
                let port = port["containerPort"].as_u64().expect("port");
                assert!(exposed.contains(&port), "{binary} port {port} is not EXPOSEd");
            }
        }
        let models = container(component(&objects, "Deployment", "model-service"));
        let repository = env_value(models, "MODEL_REPOSITORY").expect("MODEL_REPOSITORY");
        let from_image = !models["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["mountPath"] == repository);
        if from_image {
            assert_eq!(repository, env_models, "{}", values.display());
        }
    }
}

#[test]
fn the_build_context_leaves_out_what_the_build_does_not_read() {
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore"))
        .expect("deploy/Dockerfile.dockerignore (BuildKit reads <Dockerfile>.dockerignore)");
    let entries: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target", ".git"] {
        assert!(entries.contains(&needed), "{needed} is not ignored");
    }
    // Everything the build copies by path is in the context.
    for kept in [
        "crates",
        "proto",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        assert!(
            !entries.contains(&kept),
            "{kept} is ignored but the build needs it"
        );
        assert!(root().join(kept).exists(), "{kept}");
    }
}
