//! The OTLP/gRPC span exporter: each batch is written straight into the bytes of one
//! `ExportTraceServiceRequest` and sent to the agent's `TraceService/Export`, retried on the codes the
//! OTLP specification names retryable.
//!
//! `opentelemetry-otlp`'s exporter first deep-copies the batch (so that it could retry), converts every
//! span into `opentelemetry-proto`'s message structs (a `String` for every attribute key and text value,
//! a `Vec` for every id), then encodes those and frees them on the connection's thread. On the gateway at
//! 64 callers that cost 6.6-6.9 µs of CPU a quote across its two threads, most of it in the allocator;
//! written directly, 3.0-3.4 µs (docs/benchmarks.md). A batch costs one buffer, and retries resend the
//! same bytes. The messages are `opentelemetry-proto`'s: the tests decode what this writes with its types
//! and compare it with that crate's own conversion of the same spans.

use std::{
    borrow::Cow,
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::{BufMut, Bytes};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value, trace::Status};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceResponse,
    trace::v1::{SpanFlags, span, status},
};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// The agent's trace intake.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Attempts per batch: the first and two retries.
const ATTEMPTS: u32 = 3;
/// The wait before the first retry; doubled before the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Exports spans over OTLP/gRPC on `channel`; see the module docs.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    channel: Channel,
    /// The runtime the channel's connection lives on; each export is sent from it.
    runtime: tokio::runtime::Handle,
    /// How long one attempt may take.
    timeout: Duration,
    /// The encoded `Resource` message every request carries.
    resource: Vec<u8>,
    /// The resource's schema URL.
    schema_url: String,
    /// Buffers kept between batches (only the batch processor's thread exports).
    scratch: Mutex<Scratch>,
}

impl OtlpExporter {
    /// An exporter on `channel`, whose connection task runs on `runtime`.
    pub(crate) fn new(channel: Channel, runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        Self {
            channel,
            runtime,
            timeout,
            resource: Vec::new(),
            schema_url: String::new(),
            scratch: Mutex::new(Scratch::default()),
        }
    }

    /// The request that carries `batch`.
    fn encode(&self, batch: &[SpanData]) -> Bytes {
        let mut scratch = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        Bytes::from(scratch.request(batch, &self.resource, &self.schema_url))
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let request = self.encode(&batch);
        drop(batch);
        let send = send_with_retries(self.channel.clone(), request, self.timeout);
        match self.runtime.spawn(send).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(status)) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export failed: {} ({})",
                status.message(),
                status.code()
            ))),
            Err(error) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export task failed: {error}"
            ))),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource.clear();
        encode_resource(&mut self.resource, resource);
        self.schema_url = resource.schema_url().unwrap_or_default().to_owned();
    }
}

/// Sends `request` until it is taken, it fails for good, or the attempts run out.
async fn send_with_retries(channel: Channel, request: Bytes, timeout: Duration) -> Result<(), tonic::Status> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let status = match send(channel.clone(), request.clone(), timeout).await {
            Ok(()) => return Ok(()),
            Err(status) => status,
        };
        if attempt == ATTEMPTS || !retryable(status.code()) {
            return Err(status);
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

/// One attempt.
async fn send(channel: Channel, request: Bytes, timeout: Duration) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let attempt = async {
        grpc.ready()
            .await
            .map_err(|error| tonic::Status::unavailable(format!("agent not reachable: {error}")))?;
        let mut request = tonic::Request::new(request);
        request.set_timeout(timeout);
        let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
        grpc.unary(request, path, ExportCodec).await
    };
    let response = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}")))??;
    if let Some(partial) = response.into_inner().partial_success
        && (partial.rejected_spans > 0 || !partial.error_message.is_empty())
    {
        tracing::warn!(
            rejected_spans = partial.rejected_spans,
            error = %partial.error_message,
            "the agent rejected part of a span batch"
        );
    }
    Ok(())
}

/// The codes OTLP/gRPC says to retry on (RESOURCE_EXHAUSTED only with the server's retry advice, which
/// the agent does not send).
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Sends a request already encoded; reads the answer as `ExportTraceServiceResponse`.
#[derive(Debug, Clone, Copy)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for ExportCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ExportCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        prost::Message::decode(src)
            .map(Some)
            .map_err(|error| tonic::Status::internal(format!("undecodable export response: {error}")))
    }
}

/// Buffers for one batch: a span's message, and each scope's spans.
#[derive(Debug, Default)]
struct Scratch {
    span: Vec<u8>,
    scopes: Vec<ScopeBuffer>,
}

#[derive(Debug)]
struct ScopeBuffer {
    scope: InstrumentationScope,
    /// `scope` as an encoded `InstrumentationScope` message, written when the buffer takes the scope.
    encoded: Vec<u8>,
    /// The encoded `spans` fields of this scope's `ScopeSpans`.
    spans: Vec<u8>,
}

impl ScopeBuffer {
    fn new(scope: &InstrumentationScope) -> Self {
        let mut buffer = Self {
            scope: scope.clone(),
            encoded: Vec::new(),
            spans: Vec::new(),
        };
        encode_scope(&mut buffer.encoded, scope);
        buffer
    }

    /// The buffer, emptied, for `scope`'s spans; its allocations are kept.
    fn reuse(&mut self, scope: &InstrumentationScope) {
        if self.scope != *scope {
            self.scope = scope.clone();
            self.encoded.clear();
            encode_scope(&mut self.encoded, scope);
        }
        self.spans.clear();
    }
}

// Field numbers, from opentelemetry-proto's `trace.proto`, `common.proto` and `resource.proto` (v1).
mod field {
    pub(super) const REQUEST_RESOURCE_SPANS: u32 = 1;
    pub(super) const RESOURCE_SPANS_RESOURCE: u32 = 1;
    pub(super) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
    pub(super) const RESOURCE_SPANS_SCHEMA_URL: u32 = 3;
    pub(super) const RESOURCE_ATTRIBUTES: u32 = 1;
    pub(super) const SCOPE_SPANS_SCOPE: u32 = 1;
    pub(super) const SCOPE_SPANS_SPANS: u32 = 2;
    pub(super) const SCOPE_SPANS_SCHEMA_URL: u32 = 3;
    pub(super) const SCOPE_NAME: u32 = 1;
    pub(super) const SCOPE_VERSION: u32 = 2;
    pub(super) const SCOPE_ATTRIBUTES: u32 = 3;
    pub(super) const SPAN_TRACE_ID: u32 = 1;
    pub(super) const SPAN_SPAN_ID: u32 = 2;
    pub(super) const SPAN_TRACE_STATE: u32 = 3;
    pub(super) const SPAN_PARENT_SPAN_ID: u32 = 4;
    pub(super) const SPAN_NAME: u32 = 5;
    pub(super) const SPAN_KIND: u32 = 6;
    pub(super) const SPAN_START: u32 = 7;
    pub(super) const SPAN_END: u32 = 8;
    pub(super) const SPAN_ATTRIBUTES: u32 = 9;
    pub(super) const SPAN_DROPPED_ATTRIBUTES: u32 = 10;
    pub(super) const SPAN_EVENTS: u32 = 11;
    pub(super) const SPAN_DROPPED_EVENTS: u32 = 12;
    pub(super) const SPAN_LINKS: u32 = 13;
    pub(super) const SPAN_DROPPED_LINKS: u32 = 14;
    pub(super) const SPAN_STATUS: u32 = 15;
    pub(super) const SPAN_FLAGS: u32 = 16;
    pub(super) const EVENT_TIME: u32 = 1;
    pub(super) const EVENT_NAME: u32 = 2;
    pub(super) const EVENT_ATTRIBUTES: u32 = 3;
    pub(super) const EVENT_DROPPED_ATTRIBUTES: u32 = 4;
    pub(super) const LINK_TRACE_ID: u32 = 1;
    pub(super) const LINK_SPAN_ID: u32 = 2;
    pub(super) const LINK_TRACE_STATE: u32 = 3;
    pub(super) const LINK_ATTRIBUTES: u32 = 4;
    pub(super) const LINK_DROPPED_ATTRIBUTES: u32 = 5;
    pub(super) const LINK_FLAGS: u32 = 6;
    pub(super) const STATUS_MESSAGE: u32 = 2;
    pub(super) const STATUS_CODE: u32 = 3;
    pub(super) const KEY_VALUE_KEY: u32 = 1;
    pub(super) const KEY_VALUE_VALUE: u32 = 2;
    pub(super) const ANY_STRING: u32 = 1;
    pub(super) const ANY_BOOL: u32 = 2;
    pub(super) const ANY_INT: u32 = 3;
    pub(super) const ANY_DOUBLE: u32 = 4;
    pub(super) const ANY_ARRAY: u32 = 5;
    pub(super) const ARRAY_VALUES: u32 = 1;
}

impl Scratch {
    /// An `ExportTraceServiceRequest` with one `ResourceSpans` (the process's resource, already
    /// encoded) and a `ScopeSpans` for each instrumentation scope in `batch`, in the order first seen.
    fn request(&mut self, batch: &[SpanData], resource: &[u8], schema_url: &str) -> Vec<u8> {
        let mut used = 0;
        for data in batch {
            let scope = &data.instrumentation_scope;
            let index = match self.scopes[..used]
                .iter()
                .position(|buffer| buffer.scope == *scope)
            {
                Some(index) => index,
                None => {
                    // A buffer left from an earlier batch is reused, its scope kept if it is the same.
                    match self.scopes.get_mut(used) {
                        Some(buffer) => buffer.reuse(scope),
                        None => self.scopes.push(ScopeBuffer::new(scope)),
                    }
                    used += 1;
                    used - 1
                }
            };
            self.span.clear();
            encode_span(&mut self.span, data);
            message(
                &mut self.scopes[index].spans,
                field::SCOPE_SPANS_SPANS,
                &self.span,
            );
        }

        let scopes = &self.scopes[..used];
        let scope_spans_len = |buffer: &ScopeBuffer| {
            field_len(field::SCOPE_SPANS_SCOPE, buffer.encoded.len())
                + buffer.spans.len()
                + string_len(
                    field::SCOPE_SPANS_SCHEMA_URL,
                    buffer.scope.schema_url().unwrap_or_default(),
                )
        };
        let resource_spans_len = field_len(field::RESOURCE_SPANS_RESOURCE, resource.len())
            + string_len(field::RESOURCE_SPANS_SCHEMA_URL, schema_url)
            + scopes
                .iter()
                .map(|buffer| field_len(field::RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len(buffer)))
                .sum::<usize>();

        let request_len = field_len(field::REQUEST_RESOURCE_SPANS, resource_spans_len);
        let mut out = Vec::with_capacity(request_len);
        length_delimited(&mut out, field::REQUEST_RESOURCE_SPANS, resource_spans_len);
        message(&mut out, field::RESOURCE_SPANS_RESOURCE, resource);
        for buffer in scopes {
            length_delimited(
                &mut out,
                field::RESOURCE_SPANS_SCOPE_SPANS,
                scope_spans_len(buffer),
            );
            message(&mut out, field::SCOPE_SPANS_SCOPE, &buffer.encoded);
            out.put_slice(&buffer.spans);
            string(
                &mut out,
                field::SCOPE_SPANS_SCHEMA_URL,
                buffer.scope.schema_url().unwrap_or_default(),
            );
        }
        string(&mut out, field::RESOURCE_SPANS_SCHEMA_URL, schema_url);
        debug_assert_eq!(
            out.len(),
            request_len,
            "the request's length was computed exactly"
        );
        out
    }
}

/// A `Resource` message: the resource's attributes.
fn encode_resource(buf: &mut Vec<u8>, resource: &Resource) {
    for (key, value) in resource.iter() {
        key_value(buf, field::RESOURCE_ATTRIBUTES, key.as_str(), value);
    }
}

/// An `InstrumentationScope` message.
fn encode_scope(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
    string(buf, field::SCOPE_NAME, scope.name());
    string(buf, field::SCOPE_VERSION, scope.version().unwrap_or_default());
    attributes(buf, field::SCOPE_ATTRIBUTES, scope.attributes());
}

/// A `Span` message.
fn encode_span(buf: &mut Vec<u8>, data: &SpanData) {
    let context = &data.span_context;
    bytes_field(buf, field::SPAN_TRACE_ID, &context.trace_id().to_bytes());
    bytes_field(buf, field::SPAN_SPAN_ID, &context.span_id().to_bytes());
    string(buf, field::SPAN_TRACE_STATE, &trace_state(context.trace_state()));
    if data.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes_field(buf, field::SPAN_PARENT_SPAN_ID, &data.parent_span_id.to_bytes());
    }
    string(buf, field::SPAN_NAME, &data.name);
    varint(
        buf,
        field::SPAN_KIND,
        span::SpanKind::from(data.span_kind.clone()) as u64,
    );
    fixed64(buf, field::SPAN_START, nanos(data.start_time));
    fixed64(buf, field::SPAN_END, nanos(data.end_time));
    attributes(buf, field::SPAN_ATTRIBUTES, &data.attributes);
    varint(
        buf,
        field::SPAN_DROPPED_ATTRIBUTES,
        u64::from(data.dropped_attributes_count),
    );
    for event in &data.events.events {
        let len = fixed64_len(field::EVENT_TIME, nanos(event.timestamp))
            + string_len(field::EVENT_NAME, &event.name)
            + attributes_len(field::EVENT_ATTRIBUTES, &event.attributes)
            + varint_len(
                field::EVENT_DROPPED_ATTRIBUTES,
                u64::from(event.dropped_attributes_count),
            );
        length_delimited(buf, field::SPAN_EVENTS, len);
        fixed64(buf, field::EVENT_TIME, nanos(event.timestamp));
        string(buf, field::EVENT_NAME, &event.name);
        attributes(buf, field::EVENT_ATTRIBUTES, &event.attributes);
        varint(
            buf,
            field::EVENT_DROPPED_ATTRIBUTES,
            u64::from(event.dropped_attributes_count),
        );
    }
    varint(
        buf,
        field::SPAN_DROPPED_EVENTS,
        u64::from(data.events.dropped_count),
    );
    for link in &data.links.links {
        let context = &link.span_context;
        let state = trace_state(context.trace_state());
        let flags = span_flags(context.is_remote(), context.trace_flags().to_u8());
        let len = field_len(field::LINK_TRACE_ID, 16)
            + field_len(field::LINK_SPAN_ID, 8)
            + string_len(field::LINK_TRACE_STATE, &state)
            + attributes_len(field::LINK_ATTRIBUTES, &link.attributes)
            + varint_len(
                field::LINK_DROPPED_ATTRIBUTES,
                u64::from(link.dropped_attributes_count),
            )
            + fixed32_len(field::LINK_FLAGS, flags);
        length_delimited(buf, field::SPAN_LINKS, len);
        bytes_field(buf, field::LINK_TRACE_ID, &context.trace_id().to_bytes());
        bytes_field(buf, field::LINK_SPAN_ID, &context.span_id().to_bytes());
        string(buf, field::LINK_TRACE_STATE, &state);
        attributes(buf, field::LINK_ATTRIBUTES, &link.attributes);
        varint(
            buf,
            field::LINK_DROPPED_ATTRIBUTES,
            u64::from(link.dropped_attributes_count),
        );
        fixed32(buf, field::LINK_FLAGS, flags);
    }
    varint(
        buf,
        field::SPAN_DROPPED_LINKS,
        u64::from(data.links.dropped_count),
    );
    // Always present, as the SDK's conversion sends it.
    let code = status::StatusCode::from(&data.status) as u64;
    let message_text = match &data.status {
        Status::Error { description } => description.as_ref(),
        _ => "",
    };
    let len = string_len(field::STATUS_MESSAGE, message_text) + varint_len(field::STATUS_CODE, code);
    length_delimited(buf, field::SPAN_STATUS, len);
    string(buf, field::STATUS_MESSAGE, message_text);
    varint(buf, field::STATUS_CODE, code);
    fixed32(
        buf,
        field::SPAN_FLAGS,
        span_flags(data.parent_span_is_remote, context.trace_flags().to_u8()),
    );
}

/// OTLP's span flags: the W3C trace flags, and whether the parent (or linked) context is remote.
fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    let mut flags = u32::from(trace_flags) | SpanFlags::ContextHasIsRemoteMask as u32;
    if remote {
        flags |= SpanFlags::ContextIsRemoteMask as u32;
    }
    flags
}

/// The W3C `tracestate` header of a context (empty, and not allocated, for most).
fn trace_state(state: &opentelemetry::trace::TraceState) -> Cow<'static, str> {
    let header = state.header();
    if header.is_empty() {
        Cow::Borrowed("")
    } else {
        Cow::Owned(header)
    }
}

/// Nanoseconds since the Unix epoch (0 for a time before it).
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

fn attributes<'a>(buf: &mut Vec<u8>, tag: u32, attributes: impl IntoIterator<Item = &'a KeyValue>) {
    for attribute in attributes {
        key_value(buf, tag, attribute.key.as_str(), &attribute.value);
    }
}

fn attributes_len(tag: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|attribute| field_len(tag, key_value_len(attribute.key.as_str(), &attribute.value)))
        .sum()
}

/// A `KeyValue` message as field `tag`.
fn key_value(buf: &mut Vec<u8>, tag: u32, key: &str, value: &Value) {
    length_delimited(buf, tag, key_value_len(key, value));
    string(buf, field::KEY_VALUE_KEY, key);
    length_delimited(buf, field::KEY_VALUE_VALUE, any_value_len(value));
    any_value(buf, value);
}

fn key_value_len(key: &str, value: &Value) -> usize {
    string_len(field::KEY_VALUE_KEY, key) + field_len(field::KEY_VALUE_VALUE, any_value_len(value))
}

/// The body of an `AnyValue` message. Its `oneof` field is written even when it holds its type's default,
/// as prost does.
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(value) => {
            encode_key(field::ANY_BOOL, WireType::Varint, buf);
            encode_varint(u64::from(*value), buf);
        }
        Value::I64(value) => {
            encode_key(field::ANY_INT, WireType::Varint, buf);
            encode_varint(*value as u64, buf);
        }
        Value::F64(value) => {
            encode_key(field::ANY_DOUBLE, WireType::SixtyFourBit, buf);
            buf.put_u64_le(value.to_bits());
        }
        Value::Array(array) => {
            length_delimited(buf, field::ANY_ARRAY, array_len(array));
            match array {
                Array::Bool(values) => array_values(buf, values.iter().map(|v| Value::Bool(*v))),
                Array::I64(values) => array_values(buf, values.iter().map(|v| Value::I64(*v))),
                Array::F64(values) => array_values(buf, values.iter().map(|v| Value::F64(*v))),
                Array::String(values) => array_values(buf, values.iter().map(|v| Value::String(v.clone()))),
                // A kind of array this build does not know: its text, as a string.
                _ => array_values(buf, std::iter::once(Value::String(array.to_string().into()))),
            }
        }
        Value::String(text) => {
            length_delimited(buf, field::ANY_STRING, text.as_str().len());
            buf.put_slice(text.as_str().as_bytes());
        }
        // A kind of value this build does not know: its text, as a string.
        other => {
            let text = other.to_string();
            length_delimited(buf, field::ANY_STRING, text.len());
            buf.put_slice(text.as_bytes());
        }
    }
}

fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(value) => key_len(field::ANY_BOOL) + encoded_len_varint(u64::from(*value)),
        Value::I64(value) => key_len(field::ANY_INT) + encoded_len_varint(*value as u64),
        Value::F64(_) => key_len(field::ANY_DOUBLE) + 8,
        Value::Array(array) => field_len(field::ANY_ARRAY, array_len(array)),
        Value::String(text) => field_len(field::ANY_STRING, text.as_str().len()),
        other => field_len(field::ANY_STRING, other.to_string().len()),
    }
}

/// The body of an `ArrayValue` message.
fn array_len(array: &Array) -> usize {
    let each = |value: Value| field_len(field::ARRAY_VALUES, any_value_len(&value));
    match array {
        Array::Bool(values) => values.iter().map(|v| each(Value::Bool(*v))).sum(),
        Array::I64(values) => values.iter().map(|v| each(Value::I64(*v))).sum(),
        Array::F64(values) => values.iter().map(|v| each(Value::F64(*v))).sum(),
        Array::String(values) => values.iter().map(|v| each(Value::String(v.clone()))).sum(),
        _ => each(Value::String(array.to_string().into())),
    }
}

fn array_values(buf: &mut Vec<u8>, values: impl Iterator<Item = Value>) {
    for value in values {
        length_delimited(buf, field::ARRAY_VALUES, any_value_len(&value));
        any_value(buf, &value);
    }
}

// Scalar and length-delimited fields. Like prost, a scalar or string at its default is left out; a
// message is always written.

/// A field's key and length, before `len` bytes of body.
fn length_delimited(buf: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

/// An embedded message whose body is `body`.
fn message(buf: &mut Vec<u8>, tag: u32, body: &[u8]) {
    length_delimited(buf, tag, body.len());
    buf.put_slice(body);
}

/// The bytes a length-delimited field of `len` bytes of body takes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn string(buf: &mut Vec<u8>, tag: u32, text: &str) {
    bytes_field(buf, tag, text.as_bytes());
}

fn string_len(tag: u32, text: &str) -> usize {
    if text.is_empty() {
        0
    } else {
        field_len(tag, text.len())
    }
}

fn bytes_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        message(buf, tag, bytes);
    }
}

fn varint(buf: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(value, buf);
    }
}

fn varint_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

fn fixed64(buf: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::SixtyFourBit, buf);
        buf.put_u64_le(value);
    }
}

fn fixed64_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 8 }
}

fn fixed32(buf: &mut Vec<u8>, tag: u32, value: u32) {
    if value != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, buf);
        buf.put_u32_le(value);
    }
}

fn fixed32_len(tag: u32, value: u32) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 4 }
}

#[cfg(test)]
mod tests;
