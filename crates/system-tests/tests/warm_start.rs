//! A gateway reports ready only once it has connected to both dependencies and knows every model's
//! inputs, so the first requests after a start (a rollout's new pod) spend their budget on the request,
//! not on a connection and a metadata fetch; with a dependency away it still starts, saying so.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proto::inference::v1::QuotePriceRequest;
use system_tests::processes::{ProcessStack, ServiceProcess, json_lines};

/// The loopback ports `pid` holds an established TCP connection to, from its open sockets and the
/// kernel's connection tables.
fn connected_ports(pid: u32) -> HashSet<u16> {
    let sockets: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) = (fields.get(2), fields.get(3), fields.get(9))
            else {
                continue;
            };
            const ESTABLISHED: &str = "01";
            if *state != ESTABLISHED || !sockets.contains(*inode) {
                continue;
            }
            let port = remote
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            ports.extend(port);
        }
    }
    ports
}

fn messages(lines: &[String]) -> Vec<String> {
    json_lines(lines)
        .iter()
        .filter_map(|line| line["message"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_gateway_is_ready_with_its_dependencies_connected_and_its_models_known() {
    let stack = ProcessStack::start(&[]).await;
    let pid = stack.gateway.pid().expect("running");
    // Nothing has been asked of the gateway yet: only its start can have opened these.
    let ports = connected_ports(pid);
    for dependency in [&stack.features, &stack.models] {
        assert!(
            ports.contains(&dependency.addr.port()),
            "the gateway reported ready without a connection to the {} ({}): it holds {ports:?}",
            dependency.name,
            dependency.addr
        );
    }
    let lines = json_lines(&stack.gateway.lines());
    let ready = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("connected to the feature-service and the model-service"))
        })
        .unwrap_or_else(|| panic!("no line of the warm start: {lines:#?}"));
    let models = ready["models"].as_str().expect("the models named");
    assert!(
        models.contains("customer_risk@") && models.contains("demand_surge@"),
        "{ready}"
    );

    let quote = stack
        .client()
        .quote_price(QuotePriceRequest {
            customer_id: "C000001".into(),
            zone_id: "Z0001".into(),
            base_price: 40.0,
            ..Default::default()
        })
        .await
        .expect("the first quote")
        .into_inner();
    assert!(quote.price > 0.0, "{quote:?}");
}

#[tokio::test]
async fn with_its_dependencies_away_the_gateway_starts_and_names_them() {
    // Ports nothing listens on: connections are refused at once.
    let closed = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let started = Instant::now();
    let gateway = ServiceProcess::start(
        "gateway",
        &[("FEATURE_SERVICE_URL", closed()), ("MODEL_SERVICE_URL", closed())],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the start waited {:?} for dependencies that refuse connections",
        started.elapsed()
    );
    let said = messages(&gateway.lines());
    for expected in [
        "the feature-service could not be reached at start",
        "the model-service did not give this model's inputs at start",
    ] {
        assert!(
            said.iter().any(|message| message.starts_with(expected)),
            "no {expected:?} among {said:#?}"
        );
    }
    assert!(
        !said
            .iter()
            .any(|message| message.starts_with("connected to the feature-service")),
        "{said:#?}"
    );
}
