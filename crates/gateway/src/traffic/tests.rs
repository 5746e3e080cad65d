use super::*;

fn pinned() -> TrafficPolicy {
    TrafficPolicy::pinned([("customer_risk", ""), ("demand_surge", "1")])
}

fn parse(text: &str) -> Result<TrafficPolicy, PolicyError> {
    TrafficPolicy::parse(text, &pinned())
}

fn invalid(text: &str) -> String {
    match parse(text) {
        Err(error) => error.to_string(),
        Ok(policy) => panic!("accepted {text}: {policy:?}"),
    }
}

const EXPERIMENT: &str = r#"
models:
  customer_risk:
    experiment:
      name: risk-v2
      arms:
        - { variant: control, version: "1", weight: 90 }
        - { variant: treatment, version: "2", weight: 10 }
    shadow: "3"
"#;

#[test]
fn without_a_file_every_model_is_its_pinned_version_under_control() {
    let policy = pinned();
    let arm = policy.route("demand_surge").expect("route").arm("Z0001");
    assert_eq!(
        (arm.model.version.as_str(), arm.model.variant.as_str(), arm.share),
        ("1", CONTROL_VARIANT, 1.0)
    );
    assert_eq!(
        policy
            .route("customer_risk")
            .expect("route")
            .arm("C1")
            .model
            .version,
        ""
    );
    assert!(policy.route("other").is_none());
}

#[test]
fn a_file_routes_the_models_it_names_and_keeps_the_others_pinned() {
    let policy = parse(EXPERIMENT).expect("valid");
    let risk = policy.route("customer_risk").expect("route");
    assert_eq!(risk.arms().len(), 2);
    assert_eq!(risk.arms()[0].share, 0.9);
    let shadow = risk.shadow().expect("shadow");
    assert_eq!(
        (shadow.version.as_str(), shadow.variant.as_str()),
        ("3", SHADOW_VARIANT)
    );
    assert_eq!(policy.route("demand_surge"), pinned().route("demand_surge"));
    // JSON is YAML too.
    let json = r#"{"models": {"demand_surge": {"version": "7"}}}"#;
    let policy = parse(json).expect("valid JSON");
    assert_eq!(
        policy
            .route("demand_surge")
            .expect("route")
            .arm("Z1")
            .model
            .version,
        "7"
    );
}

#[test]
fn the_split_follows_the_weights_and_is_sticky() {
    let policy = parse(EXPERIMENT).expect("valid");
    let route = policy.route("customer_risk").expect("route");
    let ids: Vec<String> = (0..10_000).map(|i| format!("C{i:06}")).collect();
    let treated = ids
        .iter()
        .filter(|id| route.arm(id).model.variant == "treatment")
        .count();
    // 10% of 10,000 within 2 percentage points (the binomial's standard deviation is 0.3 points).
    assert!(
        (800..=1200).contains(&treated),
        "{treated} of 10000 in the 10% arm"
    );
    for id in &ids[..500] {
        assert_eq!(route.arm(id), route.arm(id), "{id} moved between arms");
    }
    // Three arms, uneven weights that do not add up to 100.
    let three = parse(
        r#"
models:
  demand_surge:
    experiment:
      name: surge-abc
      arms:
        - { variant: a, version: "1", weight: 5 }
        - { variant: b, version: "2", weight: 3 }
        - { variant: c, version: "3", weight: 2 }
"#,
    )
    .expect("valid");
    let route = three.route("demand_surge").expect("route");
    for (variant, expected) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
        let share = ids
            .iter()
            .filter(|id| route.arm(id).model.variant == variant)
            .count() as f64
            / 1e4;
        assert!(
            (share - expected).abs() <= 0.02,
            "arm {variant}: {share} for {expected}"
        );
    }
}

#[test]
fn a_new_experiment_name_reshuffles_the_arms() {
    let renamed = EXPERIMENT.replace("risk-v2", "risk-v3");
    let (a, b) = (parse(EXPERIMENT).expect("valid"), parse(&renamed).expect("valid"));
    let (a, b) = (
        a.route("customer_risk").expect("a"),
        b.route("customer_risk").expect("b"),
    );
    let ids: Vec<String> = (0..2_000).map(|i| format!("C{i:06}")).collect();
    let moved = ids
        .iter()
        .filter(|id| a.arm(id).model.variant != b.arm(id).model.variant)
        .count();
    // Independent 90/10 draws disagree 18% of the time.
    assert!((200..=520).contains(&moved), "{moved} of 2000 changed arm");
}

#[test]
fn the_bucket_of_an_entity_never_changes() {
    // xxh3 is specified bit for bit: a change here would move every running experiment's customers.
    assert_eq!(bucket("risk-v2", "C000001"), bucket("risk-v2", "C000001"));
    assert_eq!(
        bucket("risk-v2", "C000001"),
        xxhash_rust::xxh3::xxh3_64(b"risk-v2\0C000001") % BUCKETS
    );
    assert_ne!(
        bucket("risk-v2", "C000001"),
        bucket("risk-v2C", "000001"),
        "the separator counts"
    );
}

#[test]
fn invalid_policies_are_refused_with_the_reason() {
    let cases = [
        ("models: {fraud: {version: '1'}}", "not one this gateway serves"),
        ("models: {customer_risk: {versoin: '1'}}", "unknown field"),
        ("models: [1, 2]", "not a valid policy document"),
        (
            "models: {customer_risk: {version: '1', experiment: {name: x, arms: [{variant: a, version: '1', weight: 1}]}}}",
            "both `version` and `experiment`",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: []}}}",
            "0 arms",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: a, version: '1', weight: 0}]}}}",
            "add up to 0",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: a, version: '1', weight: -1}]}}}",
            "not a number ≥ 0",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: a, version: '1', weight: .nan}]}}}",
            "not a number ≥ 0",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: a, version: '1', weight: 1}, {variant: a, version: '2', weight: 1}]}}}",
            "used by two arms",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: Treatment, version: '1', weight: 1}]}}}",
            "variant \"Treatment\"",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: shadow, version: '1', weight: 1}]}}}",
            "reserved",
        ),
        (
            "models: {customer_risk: {experiment: {name: x, arms: [{variant: a, version: '', weight: 1}]}}}",
            "names no version",
        ),
        (
            "models: {customer_risk: {experiment: {name: 'a b', arms: [{variant: a, version: '1', weight: 1}]}}}",
            "experiment name",
        ),
        (
            "models: {customer_risk: {version: '1', shadow: '1'}}",
            "also answers traffic",
        ),
        ("models: {customer_risk: {shadow: ''}}", "`shadow` is empty"),
    ];
    for (text, reason) in cases {
        let error = invalid(text);
        assert!(error.contains(reason), "{text}: {error} lacks {reason:?}");
    }
    let nine_arms: Vec<String> = (0..9)
        .map(|i| format!("{{variant: v{i}, version: '{i}', weight: 1}}"))
        .collect();
    let text = format!(
        "models: {{customer_risk: {{experiment: {{name: x, arms: [{}]}}}}}}",
        nine_arms.join(", ")
    );
    assert!(invalid(&text).contains("9 arms"));
}

#[test]
fn an_unreadable_or_oversized_file_refuses_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.yaml");
    let error = Traffic::new(pinned(), Some(&missing), Metrics::disabled())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("cannot read it"), "{error}");
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "#".repeat(MAX_FILE_BYTES as usize + 1)).expect("write");
    let error = Traffic::new(pinned(), Some(&big), Metrics::disabled())
        .err()
        .expect("refused");
    assert!(error.to_string().contains("larger than"), "{error}");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, EXPERIMENT).expect("write");
    let traffic = Traffic::new(pinned(), Some(&good), Metrics::disabled()).expect("valid");
    assert_eq!(**traffic.load(), parse(EXPERIMENT).expect("valid"));
}

#[test]
fn the_policy_is_described_one_line_per_model() {
    let described = describe(&parse(EXPERIMENT).expect("valid"));
    assert_eq!(
        described,
        "customer_risk: control=1 90.00%, treatment=2 10.00% (experiment risk-v2); shadow 3\n\
         demand_surge: control=1 100.00%"
    );
}
