//! HTTP access to Datadog's API: the two key headers, JSON in and out, timeouts, one bounded wait on
//! rate limiting, and errors that carry the call and Datadog's own words.

use std::{fmt::Write as _, thread, time::Duration};

use serde_json::Value;
use ureq::{Agent, Body, RequestBuilder, http::Response};

use super::ApplyError;

/// A stalled connection must not hang a deploy pipeline; Datadog answers these calls in well under this.
const TIMEOUT_CONNECT: Duration = Duration::from_secs(10);
const TIMEOUT_CALL: Duration = Duration::from_secs(60);
/// Large organisations have big dashboard lists; ureq's default body limit (10 MB) is close to that.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Longest wait for a rate-limit window to reset before the one retry; beyond that, failing is clearer.
const MAX_RATE_LIMIT_WAIT: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// Datadog's answer to one call.
#[derive(Debug)]
pub(crate) struct Reply {
    pub method: Method,
    pub path: String,
    pub status: u16,
    /// The JSON body; `Null` when empty, a string when it is not JSON (a proxy's error page).
    pub body: Value,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a successful answer, or the error naming `context`.
    pub(crate) fn into_ok(self, context: &str) -> Result<Value, ApplyError> {
        match self.is_success() {
            true => Ok(self.body),
            false => Err(self.error(context)),
        }
    }

    /// The failure as an error naming `context` (the resource or the listing).
    pub(crate) fn error(&self, context: &str) -> ApplyError {
        let hint = match self.status {
            401 | 403 => {
                "; the application key in DD_APP_KEY may be wrong for this site or lack the permission this \
                 call needs"
            }
            429 => "; Datadog is still rate limiting after one wait, try again later",
            _ => "",
        };
        ApplyError::Api {
            context: context.to_owned(),
            method: self.method.as_str(),
            path: self.path.clone(),
            status: self.status,
            errors: self.errors(),
            hint: hint.to_owned(),
        }
    }

    /// A successful answer whose body lacks what Datadog documents.
    pub(crate) fn unexpected(&self, context: &str, message: &str) -> ApplyError {
        ApplyError::UnexpectedResponse {
            context: context.to_owned(),
            method: self.method.as_str(),
            path: self.path.clone(),
            status: self.status,
            message: message.to_owned(),
        }
    }

    /// What Datadog said went wrong: `{"errors": [...]}` in most APIs, `{"error": {code, message,
    /// details}}` in the logs configuration API, otherwise the body itself.
    pub(crate) fn errors(&self) -> String {
        if let Some(errors) = self.body.get("errors").and_then(Value::as_array) {
            let texts: Vec<String> = errors.iter().map(text_of).collect();
            return texts.join("; ");
        }
        if let Some(error) = self.body.get("error").filter(|e| e.is_object()) {
            return logs_error(error);
        }
        match &self.body {
            Value::Null => "(empty body)".to_owned(),
            other => truncate(&text_of(other), 500),
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn logs_error(error: &Value) -> String {
    let mut text = String::new();
    if let Some(code) = error.get("code").and_then(Value::as_str) {
        let _ = write!(text, "{code}: ");
    }
    text.push_str(
        error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)"),
    );
    if let Some(details) = error.get("details").and_then(Value::as_array) {
        for detail in details {
            let _ = write!(text, " ({})", logs_error(detail));
        }
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A client for one organisation.
pub(crate) struct Client {
    agent: Agent,
    base: String,
    api_key: String,
    app_key: String,
}

impl Client {
    pub(crate) fn new(api_url: &str, api_key: &str, app_key: &str) -> Self {
        let agent = Agent::config_builder()
            // Error statuses carry Datadog's explanation in the body, which the caller reports.
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT_CONNECT))
            .timeout_global(Some(TIMEOUT_CALL))
            .user_agent(concat!("datadog-resources/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            base: api_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            app_key: app_key.to_owned(),
        }
    }

    pub(crate) fn api_url(&self) -> &str {
        &self.base
    }

    /// `GET path?query`; `context` names what the call is for, in case it cannot be made.
    pub(crate) fn get(&self, context: &str, path: &str, query: &[(&str, &str)]) -> Result<Reply, ApplyError> {
        self.call(context, Method::Get, path, query, None)
    }

    /// `method path` with a JSON body.
    pub(crate) fn send(
        &self,
        context: &str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, ApplyError> {
        self.call(context, method, path, &[], Some(body))
    }

    fn call(
        &self,
        context: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, ApplyError> {
        let mut url = format!("{}{path}", self.base);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode(key));
            url.push('=');
            url.push_str(&encode(value));
        }
        let payload = body.map(Value::to_string).unwrap_or_default();
        let transport = |error: ureq::Error| ApplyError::Transport {
            context: context.to_owned(),
            method: method.as_str(),
            path: path.to_owned(),
            api_url: self.base.clone(),
            message: error.to_string(),
        };
        let mut waited = false;
        loop {
            let response = self.once(method, &url, &payload).map_err(transport)?;
            let status = response.status().as_u16();
            if status == 429 && !waited {
                waited = true;
                thread::sleep(Duration::from_secs(rate_limit_wait(&response)));
                continue;
            }
            let text = response
                .into_body()
                .with_config()
                .limit(BODY_LIMIT)
                .read_to_string()
                .map_err(transport)?;
            let body = match text.trim() {
                "" => Value::Null,
                trimmed => serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(text.clone())),
            };
            return Ok(Reply {
                method,
                path: path.to_owned(),
                status,
                body,
            });
        }
    }

    fn once(&self, method: Method, url: &str, payload: &str) -> Result<Response<Body>, ureq::Error> {
        match method {
            Method::Get => self.headers(self.agent.get(url)).call(),
            Method::Post => self.json(self.agent.post(url), payload),
            Method::Put => self.json(self.agent.put(url), payload),
            Method::Patch => self.json(self.agent.patch(url), payload),
        }
    }

    fn json(
        &self,
        request: RequestBuilder<ureq::typestate::WithBody>,
        payload: &str,
    ) -> Result<Response<Body>, ureq::Error> {
        self.headers(request)
            .content_type("application/json")
            .send(payload)
    }

    fn headers<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        request
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.app_key)
            .header("Accept", "application/json")
    }
}

/// Seconds to wait before retrying a 429: Datadog's `X-RateLimit-Reset` (seconds until the window
/// resets), at least one second and at most [`MAX_RATE_LIMIT_WAIT`].
fn rate_limit_wait(response: &Response<Body>) -> u64 {
    response
        .headers()
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_RATE_LIMIT_WAIT)
}

/// Percent-encodes a path segment or query component (RFC 3986 unreserved characters pass), so names
/// with spaces or slashes stay one segment.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}
