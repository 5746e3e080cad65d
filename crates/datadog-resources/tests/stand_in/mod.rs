//! A stand-in for the parts of Datadog's HTTP API that `apply` uses, answering as Datadog's v1 OpenAPI
//! spec and the v2 metric tag configuration models document: it checks the `DD-API-KEY` and
//! `DD-APPLICATION-KEY` headers, keeps dashboards, monitors, SLOs, logs indexes, the index order and
//! metric tag configurations in memory, gives ids the way Datadog does (`abc-def-ghi` dashboards, integer
//! monitors, 32-hex SLOs), adds the computed fields and server-side defaults Datadog adds, and records
//! every request so tests can say what was sent.
//!
//! It runs on its own thread and Tokio runtime, so tests call the blocking `apply` directly.

mod dashboards;
pub mod fixtures;
mod logs;
mod metrics;
mod monitors;
mod slos;
mod v1;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
};

use axum::{
    Router,
    body::Bytes,
    extract::State as Extract,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const API_KEY: &str = "stand-in-api-key";
pub const APP_KEY: &str = "stand-in-app-key";

/// A request as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    pub body: Value,
}

impl Request {
    /// A write: anything but a read, except monitor validation (which saves nothing).
    pub fn is_write(&self) -> bool {
        self.method != "GET" && !(self.method == "POST" && self.path.ends_with("/validate"))
    }

    /// `"PUT /api/v1/monitor/1"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the organisation holds.
#[derive(Debug, Default)]
pub struct Org {
    pub requests: Vec<Request>,
    pub dashboards: Vec<Value>,
    pub monitors: Vec<Value>,
    pub slos: Vec<Value>,
    pub indexes: Vec<Value>,
    pub index_order: Vec<String>,
    /// Tag configurations by metric name (the `data` object of the v2 response).
    pub tag_configs: Vec<(String, Value)>,
    /// Metrics the organisation has never received: a tag configuration cannot be created for them.
    pub unknown_metrics: Vec<String>,
    /// Paths answered once with 429 before being served.
    pub rate_limit_once: Vec<String>,
    /// Ticks for ids and timestamps.
    clock: u64,
}

impl Org {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// An ISO 8601 timestamp that moves with every write.
    fn now(&mut self) -> String {
        let t = self.tick();
        format!(
            "2026-01-01T{:02}:{:02}:{:02}.000000+00:00",
            t / 3600 % 24,
            t / 60 % 60,
            t % 60
        )
    }
}

/// A running stand-in; stops when dropped.
pub struct StandIn {
    url: String,
    org: Arc<Mutex<Org>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let address: SocketAddr = listener.local_addr().expect("stand-in address");
        let org = Arc::new(Mutex::new(Org::default()));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&org));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stand-in runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    served = axum::serve(listener, app) => served.expect("stand-in server"),
                    _ = stopped => {}
                }
            });
        });
        Self {
            url: format!("http://{address}"),
            org,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The organisation, to read or seed.
    pub fn org(&self) -> MutexGuard<'_, Org> {
        self.org.lock().expect("stand-in state")
    }

    pub fn requests(&self) -> Vec<Request> {
        self.org().requests.clone()
    }

    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.is_write())
            .map(Request::line)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.org().requests.clear();
    }

    /// Adds a monitor as if created earlier (through the same path as `POST /api/v1/monitor`).
    pub fn seed_monitor(&self, body: Value) -> Value {
        let mut org = self.org();
        monitors::create(&mut org, body).1
    }

    pub fn seed_dashboard(&self, body: Value) -> Value {
        let mut org = self.org();
        dashboards::write(&mut org, body, None).1
    }

    pub fn seed_slo(&self, body: Value) -> Value {
        let mut org = self.org();
        slos::create(&mut org, body).1
    }

    /// Adds a logs index (appended to the index order, as Datadog does for new indexes).
    pub fn seed_index(&self, body: Value) {
        let mut org = self.org();
        logs::create(&mut org, body);
    }

    /// Adds a metric tag configuration with these attributes.
    pub fn seed_tag_config(&self, metric: &str, attributes: Value) {
        let mut org = self.org();
        metrics::create(
            &mut org,
            metric,
            &json!({"data": {"type": "manage_tags", "id": metric, "attributes": attributes}}),
        );
    }

    pub fn tag_config(&self, metric: &str) -> Option<Value> {
        self.org()
            .tag_configs
            .iter()
            .find(|(m, _)| m == metric)
            .map(|(_, c)| c.clone())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A JSON answer.
pub(crate) type Reply = (StatusCode, Value);

pub(crate) fn ok(body: Value) -> Reply {
    (StatusCode::OK, body)
}

/// Datadog's `APIErrorResponse`.
pub(crate) fn errors(status: StatusCode, message: &str) -> Reply {
    (status, json!({ "errors": [message] }))
}

/// The logs configuration API's `LogsAPIErrorResponse`.
pub(crate) fn logs_error(status: StatusCode, message: &str) -> Reply {
    (
        status,
        json!({ "error": { "code": "InvalidArgument", "message": message } }),
    )
}

async fn handle(
    Extract(org): Extract<Arc<Mutex<Org>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(mut org) = org.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "stand-in state poisoned").into_response();
    };
    let path = decode(uri.path());
    let query: Vec<(String, String)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(&key.replace('+', " ")), decode(&value.replace('+', " ")))
        })
        .collect();
    let parsed: Result<Value, _> = match body.is_empty() {
        true => Ok(Value::Null),
        false => serde_json::from_slice(&body),
    };
    org.requests.push(Request {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: parsed.as_ref().cloned().unwrap_or(Value::Null),
    });
    if let Some(i) = org.rate_limit_once.iter().position(|p| *p == path) {
        org.rate_limit_once.remove(i);
        let mut response = errors(StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response_json();
        response
            .headers_mut()
            .insert("X-RateLimit-Reset", HeaderValue::from_static("1"));
        return response;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    // The key check needs only the API key; everything else needs both.
    let app_key_needed = path != "/api/v1/validate";
    if header("DD-API-KEY") != API_KEY || (app_key_needed && header("DD-APPLICATION-KEY") != APP_KEY) {
        return errors(StatusCode::FORBIDDEN, "Forbidden").into_response_json();
    }
    let Ok(body) = parsed else {
        return errors(StatusCode::BAD_REQUEST, "Invalid JSON").into_response_json();
    };
    let query = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply = match segments.as_slice() {
        ["api", "v2", "metrics", metric, "tags"] => metrics::route(&mut org, method.as_str(), metric, &body),
        ["api", "v1", rest @ ..] => v1::route(&mut org, method.as_str(), rest, &query, body),
        _ => None,
    };
    reply
        .unwrap_or_else(|| errors(StatusCode::NOT_FOUND, "Not found"))
        .into_response_json()
}

trait IntoResponseJson {
    fn into_response_json(self) -> Response;
}

impl IntoResponseJson for Reply {
    fn into_response_json(self) -> Response {
        let (status, body) = self;
        (status, axum::Json(body)).into_response()
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
