//! Settings that cannot work stop the gateway at start with a one-line reason naming them, instead of a
//! gateway that reports SERVING and fails every call: a downstream URL without `http(s)://`, a host or a
//! port (tonic took `127.0.0.1:58053` and every call failed with "transport error"), and a feature
//! timeout that leaves the model call none of the request's budget.

use testkit::settings::assert_refused_at_start;

const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// Starts the gateway with `variable=value` (and a free port) and asserts it is refused at once, the
/// first line of its standard error naming `flag` and `reason`.
async fn refused(variable: &str, value: &str, flag: &str, reason: &str) {
    let env = [(variable, value), ("LISTEN_ADDR", "127.0.0.1:0")];
    assert_refused_at_start(BIN, &[], &env, flag, reason).await;
}

#[tokio::test]
async fn a_service_url_without_a_scheme_is_refused() {
    let reason = "'127.0.0.1:58053' for '--model-service-url <MODEL_SERVICE_URL>': no scheme";
    refused(
        "MODEL_SERVICE_URL",
        "127.0.0.1:58053",
        "--model-service-url",
        reason,
    )
    .await;
}

#[tokio::test]
async fn a_service_url_with_another_scheme_is_refused() {
    let flag = "--feature-service-url";
    refused("FEATURE_SERVICE_URL", "ftp://x", flag, "ftp:// is no gRPC scheme").await;
}

#[tokio::test]
async fn a_service_url_without_a_host_or_a_port_is_refused() {
    refused(
        "FEATURE_SERVICE_URL",
        "http://:50052",
        "--feature-service-url",
        "no host",
    )
    .await;
    refused(
        "MODEL_SERVICE_URL",
        "http://model-service",
        "--model-service-url",
        "no port",
    )
    .await;
}

#[tokio::test]
async fn a_feature_timeout_as_long_as_the_budget_is_refused_naming_both() {
    for (request, feature) in [("40", "40"), ("100", "250")] {
        let env = [
            ("REQUEST_TIMEOUT_MS", request),
            ("FEATURE_TIMEOUT_MS", feature),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ];
        let reason =
            format!("(FEATURE_TIMEOUT_MS) {feature} must be below --request-timeout-ms (REQUEST_TIMEOUT_MS)");
        assert_refused_at_start(BIN, &[], &env, "--feature-timeout-ms", &reason).await;
    }
}
