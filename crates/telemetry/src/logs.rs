//! Logs on stdout: one JSON object per line for Datadog's log collection, or a human format.
//!
//! Each JSON line has, at top level: `timestamp`, `level`, `message`, `target`, the event's fields and
//! the fields of the `tracing` spans it happened in (e.g. `request_id` recorded once on a request
//! span), `dd.trace_id` (decimal of the lower 64 bits of the 128-bit trace id) and `dd.span_id`
//! (decimal) from the current OpenTelemetry context, and `dd.service`, `dd.env`, `dd.version`: the
//! shape Datadog correlates with APM traces.
//!
//! Lines are written by a background thread (`tracing-appender`'s non-blocking writer) through a
//! bounded buffer in lossy mode: a slow stdout drops lines (counted in `telemetry.dropped{signal:log}`)
//! instead of stalling requests. The guard flushes on drop.

use std::{
    borrow::Cow,
    fmt,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing::{Event, Subscriber, field::Field, span};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter,
        format::Writer,
        time::{FormatTime, SystemTime},
        writer::EitherWriter,
    },
    layer,
    prelude::*,
    registry::LookupSpan,
};

use crate::{
    ServiceTags, TelemetryConfig,
    config::LogFormat,
    dropped,
    trace::propagation::{span_id_u64, trace_id_halves},
};

/// Value of the `alert` field on the log lines that mean someone must act now (a dependency down, a
/// service that cannot start): `tracing::error!(alert = telemetry::logs::CRITICAL, ...)`. Datadog
/// keeps them 90 days in the `critical-alerts` index (`@alert:critical`); other errors 30 days.
pub const CRITICAL: &str = "critical";

/// Libraries whose own lines repeat what this crate reports once, throttled: left out unless `RUST_LOG`
/// names them. The OpenTelemetry SDK logs every failed export (each second while the agent is down;
/// telemetry reports those as `telemetry.dropped` plus one warning a minute); the Redis client logs a
/// warning for every command an outage fails ("Broadcasting error ..."), where the services log `Redis
/// connection failed` at most once a second and count every failure in `redis.command.errors`.
const QUIET: &[(&str, &str)] = &[
    ("opentelemetry", ",opentelemetry=warn,opentelemetry_sdk=off"),
    ("fred", ",fred=error"),
];

/// `RUST_LOG` with the [`QUIET`] directives of the libraries it does not name.
fn with_quiet_libraries(filter: &str) -> String {
    QUIET
        .iter()
        .filter(|(library, _)| !filter.contains(library))
        .fold(filter.to_owned(), |all, (_, quiet)| all + quiet)
}

/// Keys this formatter writes itself; event or span fields with these names are not repeated.
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "message",
    "target",
    "dd.trace_id",
    "dd.span_id",
    "dd.service",
    "dd.env",
    "dd.version",
];

/// Attributes Datadog's log intake reads as its own (the line's service, host, source, status, trace):
/// an event or span field of that name would silently re-file the line, so it is written as
/// `field.<name>` instead.
const DATADOG_ATTRIBUTES: &[&str] = &[
    "service", "host", "source", "ddsource", "ddtags", "status", "trace_id",
];

/// The key a field is written under.
fn field_key(key: &str) -> std::borrow::Cow<'_, str> {
    match DATADOG_ATTRIBUTES.contains(&key) {
        true => format!("field.{key}").into(),
        false => key.into(),
    }
}

/// The Datadog JSON line format.
#[derive(Debug, Clone)]
pub struct DatadogJsonFormat {
    service: String,
    env: String,
    version: String,
}

impl DatadogJsonFormat {
    pub fn new(tags: &ServiceTags) -> Self {
        Self {
            service: tags.service.clone(),
            env: tags.env.clone(),
            version: tags.version.clone(),
        }
    }
}

/// A `fmt` layer writing Datadog JSON lines to `writer` (stdout in services, a buffer in tests).
pub fn json_layer<S, W>(tags: &ServiceTags, writer: W) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .event_format(DatadogJsonFormat::new(tags))
        .fmt_fields(SpanFields)
        .with_writer(writer)
        .and_then(SpanValuesLayer)
}

/// The fmt layer's formatter of span fields, which writes nothing: [`JsonValues`] keeps a span's fields
/// for the lines written in it, already serialised, so no line re-reads them from text.
#[derive(Debug, Clone, Copy, Default)]
struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _: Writer<'writer>,
        _: R,
    ) -> fmt::Result {
        Ok(())
    }

    fn add_fields(
        &self,
        _: &'writer mut FormattedFields<Self>,
        _: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        Ok(())
    }
}

/// Fields, each value serialised as JSON once, when it is recorded: a span's (kept in its extensions by
/// [`SpanValuesLayer`]), copied into every line written in the span, and an event's. A span field
/// recorded twice has two members; the last is the one written.
#[derive(Debug, Default)]
struct JsonValues {
    /// The values' JSON, one after the other.
    json: Vec<u8>,
    /// Each field's name and where its value lies in `json`.
    members: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl JsonValues {
    fn push(&mut self, field: &Field, value: &impl serde::Serialize) {
        let start = self.json.len();
        match serde_json::to_writer(&mut self.json, value) {
            Ok(()) => self.members.push((field.name(), start..self.json.len())),
            Err(_) => self.json.truncate(start),
        }
    }

    fn members(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        self.members
            .iter()
            .map(|(name, range)| (*name, self.json.get(range.clone()).unwrap_or(b"null")))
    }
}

impl tracing::field::Visit for JsonValues {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json writes a non-finite float as null, as `Value::from` does.
        self.push(field, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, &value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format_args!("{value:?}"));
    }
}

/// Keeps each span's [`JsonValues`] for the JSON line format.
#[derive(Debug, Clone, Copy, Default)]
struct SpanValuesLayer;

impl<S> Layer<S> for SpanValuesLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: layer::Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut values = JsonValues::default();
        attrs.record(&mut values);
        if !values.members.is_empty() {
            span.extensions_mut().insert(values);
        }
    }

    fn on_record(&self, id: &span::Id, record: &span::Record<'_>, ctx: layer::Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<JsonValues>() {
            Some(values) => record.record(values),
            None => {
                let mut values = JsonValues::default();
                record.record(&mut values);
                extensions.insert(values);
            }
        }
    }
}

/// Set once the owning guard has stopped the writer thread: later lines (a test process going on
/// after its first guard, a last line at exit) are written to stdout directly.
static WRITE_DIRECTLY: AtomicBool = AtomicBool::new(false);

/// Stdout through the non-blocking writer thread, or directly once that has stopped.
#[derive(Clone)]
struct Stdout(NonBlocking);

impl<'a> MakeWriter<'a> for Stdout {
    type Writer = EitherWriter<NonBlocking, std::io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        if WRITE_DIRECTLY.load(Ordering::Relaxed) {
            EitherWriter::B(std::io::stdout())
        } else {
            EitherWriter::A(self.0.clone())
        }
    }
}

/// Stops the writer thread (flushing what it holds, bounded by tracing-appender at about 1 s).
pub(crate) fn stop_writer(guard: WorkerGuard) {
    WRITE_DIRECTLY.store(true, Ordering::Relaxed);
    drop(guard);
}

/// Installs the global subscriber; `None` when one is installed already (a second `init`).
pub(crate) fn install(config: &TelemetryConfig, tags: &ServiceTags) -> Option<WorkerGuard> {
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(config.log_buffer_lines.max(1))
        .lossy(true)
        .thread_name("telemetry-log")
        .finish(std::io::stdout());
    let dropped_lines = writer.error_counter();
    let writer = Stdout(writer);
    let filter = EnvFilter::try_new(with_quiet_libraries(&config.log_filter));
    let bad_filter = filter.is_err();
    let fallback = || EnvFilter::new(with_quiet_libraries("info"));
    let registry = tracing_subscriber::registry().with(filter.unwrap_or_else(|_| fallback()));
    let installed = match config.log_format {
        LogFormat::Json => registry.with(json_layer(tags, writer)).try_init(),
        LogFormat::Pretty => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(ansi)
                        .with_writer(writer),
                )
                .try_init()
        }
    };
    if installed.is_err() {
        return None;
    }
    dropped::register_log_writer(dropped_lines);
    if bad_filter {
        tracing::warn!(filter = %config.log_filter, "RUST_LOG is not a valid filter; logging at info");
    }
    Some(guard)
}

impl<S, N> FormatEvent<S, N> for DatadogJsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);

        // Span fields, root first, so an inner span's field wins over an outer one's: the JSON that
        // [`SpanValuesLayer`] keeps, as it is. A span formatted by another layer's formatter into a whole
        // object (`JsonFields`) is read from that text.
        let spans: Vec<_> = ctx
            .event_scope()
            .map(|scope| scope.from_root().collect())
            .unwrap_or_default();
        let extensions: Vec<_> = spans.iter().map(|span| span.extensions()).collect();
        let mut span_fields: Vec<(Cow<'_, str>, Cow<'_, [u8]>)> = Vec::new();
        for extensions in &extensions {
            if let Some(values) = extensions.get::<JsonValues>() {
                for (key, json) in values.members() {
                    keep(&mut span_fields, key.into(), json.into());
                }
            } else if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                && formatted.fields.starts_with('{')
                && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&formatted.fields)
            {
                for (key, value) in map {
                    if let Ok(json) = serde_json::to_vec(&value) {
                        keep(&mut span_fields, key.into(), json.into());
                    }
                }
            }
        }

        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let meta = event.metadata();
        let target = fields.log_target.as_deref().unwrap_or(meta.target());

        let mut line = JsonObject::with_capacity(256);
        let result = (|| {
            line.entry("timestamp", &timestamp)?;
            line.entry("level", meta.level().as_str())?;
            line.entry("message", fields.message.as_deref().unwrap_or(""))?;
            line.entry("target", target)?;
            for (key, json) in fields.values.members() {
                if !RESERVED.contains(&key) {
                    line.raw(&field_key(key), json)?;
                }
            }
            for (key, json) in &span_fields {
                let shadowed = fields.values.members().any(|(k, _)| k == key);
                if !shadowed && !RESERVED.contains(&key.as_ref()) {
                    line.raw(&field_key(key), json)?;
                }
            }
            let otel = opentelemetry::Context::current();
            let span = otel.span();
            let sc = span.span_context();
            if sc.is_valid() {
                line.entry("dd.trace_id", &trace_id_halves(sc.trace_id()).1.to_string())?;
                line.entry("dd.span_id", &span_id_u64(sc.span_id()).to_string())?;
            }
            line.entry("dd.service", &self.service)?;
            line.entry("dd.env", &self.env)?;
            line.entry("dd.version", &self.version)
        })();
        let line = line.end();
        result.map_err(|_| fmt::Error)?;
        let line = std::str::from_utf8(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Sets `key` to `json` in `fields`: replaced where present, else added.
fn keep<'a>(fields: &mut Vec<(Cow<'a, str>, Cow<'a, [u8]>)>, key: Cow<'a, str>, json: Cow<'a, [u8]>) {
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = json,
        None => fields.push((key, json)),
    }
}

/// A JSON object written member by member, with members whose value is JSON already.
struct JsonObject {
    out: Vec<u8>,
}

impl JsonObject {
    fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Self { out }
    }

    fn key(&mut self, key: &str) -> serde_json::Result<()> {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        serde_json::to_writer(&mut self.out, key)?;
        self.out.push(b':');
        Ok(())
    }

    fn entry(&mut self, key: &str, value: &(impl serde::Serialize + ?Sized)) -> serde_json::Result<()> {
        self.key(key)?;
        serde_json::to_writer(&mut self.out, value)
    }

    /// A member whose value is `json`, serialised by serde_json.
    fn raw(&mut self, key: &str, json: &[u8]) -> serde_json::Result<()> {
        self.key(key)?;
        self.out.extend_from_slice(json);
        Ok(())
    }

    fn end(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

/// An event's fields: `message` and the `log` crate's target set apart as text, the rest as JSON.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    log_target: Option<String>,
    values: JsonValues,
}

impl Fields {
    /// A field whose value is text.
    fn text(&mut self, field: &Field, text: &str) {
        match field.name() {
            "message" => self.message = Some(text.to_owned()),
            "log.target" => self.log_target = Some(text.to_owned()),
            _ => self.json(field, &text),
        }
    }

    /// A field whose value is not text (or not one set apart as text).
    fn json(&mut self, field: &Field, value: &impl serde::Serialize) {
        match field.name() {
            "message" => self.message = serde_json::to_string(value).ok(),
            "log.target" => self.log_target = None,
            // The rest of what tracing-log adds for `log` records is noise in Datadog.
            "log.module_path" | "log.file" | "log.line" => {}
            _ => self.values.push(field, value),
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.json(field, &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.json(field, &value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.json(field, &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.json(field, &value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, &value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, &format!("{value:?}"));
    }
}

/// Lets a repeated log line through at most once per interval: during an outage every request fails the
/// same way, and one line a second says as much as a thousand (metrics and spans still count each one).
///
/// ```
/// use std::time::Duration;
/// static REDIS_DOWN: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(1));
/// if let Some(held_back) = REDIS_DOWN.ready() {
///     tracing::warn!(held_back, "Redis unreachable");
/// }
/// ```
///
/// Lock-free: it sits on the request path of every failing request.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    /// Milliseconds since the process's first throttled line before which no line passes.
    next_ms: std::sync::atomic::AtomicU64,
    held_back: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new(interval: std::time::Duration) -> Self {
        Self {
            interval_ms: interval.as_millis() as u64,
            next_ms: std::sync::atomic::AtomicU64::new(0),
            held_back: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one let through)` when a line may be logged now.
    pub fn ready(&self) -> Option<u64> {
        // `Instant::now` is not const: statics share one origin, set by the first call.
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = u64::try_from(ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_millis())
            .unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod throttle_tests {
    use std::time::Duration;

    use super::Throttle;

    #[test]
    fn lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_millis(200));
        assert_eq!(throttle.ready(), Some(0));
        assert_eq!(throttle.ready(), None);
        assert_eq!(throttle.ready(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.ready(), Some(2));
        assert_eq!(throttle.ready(), None);
    }
}

#[cfg(test)]
mod filter_tests {
    use super::with_quiet_libraries;

    #[test]
    fn chatty_libraries_are_quiet_unless_rust_log_names_them() {
        let filter = with_quiet_libraries("info");
        assert!(filter.contains(",fred=error"), "{filter}");
        assert!(filter.contains(",opentelemetry_sdk=off"), "{filter}");
        let filter = with_quiet_libraries("info,fred=debug");
        assert!(!filter.contains("fred=error"), "asked for: {filter}");
        assert!(filter.contains(",opentelemetry_sdk=off"), "{filter}");
    }
}

/// Log lines kept in memory for tests (feature `testing`): the JSON layer writing into a buffer.
///
/// ```ignore
/// let (logs, _guard) = telemetry::logs::capture::Logs::capture(&tags);
/// // ... code that logs on this thread ...
/// assert_eq!(logs.with_message("redis connection failed").len(), 1);
/// ```
#[cfg(feature = "testing")]
// Test support: a line that is not JSON is a failed test, so it panics.
#[allow(clippy::expect_used)]
pub mod capture {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::prelude::*;

    use crate::ServiceTags;

    /// The bytes the JSON layer wrote.
    #[derive(Clone, Default)]
    pub struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Logs {
        type Writer = Logs;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Logs {
        /// Captures the current thread's logs, as the JSON layer writes them for `tags`, until the
        /// guard drops.
        pub fn capture(tags: &ServiceTags) -> (Self, tracing::subscriber::DefaultGuard) {
            let logs = Logs::default();
            let guard = tracing::subscriber::set_default(
                tracing_subscriber::registry().with(super::json_layer(tags, logs.clone())),
            );
            (logs, guard)
        }

        pub fn text(&self) -> String {
            let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
            String::from_utf8(bytes).expect("the layer writes UTF-8")
        }

        /// Every line, parsed.
        pub fn lines(&self) -> Vec<Value> {
            self.text()
                .lines()
                .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
                .collect()
        }

        /// The lines whose message is `message`.
        pub fn with_message(&self, message: &str) -> Vec<Value> {
            self.lines()
                .into_iter()
                .filter(|line| line["message"] == message)
                .collect()
        }
    }
}
