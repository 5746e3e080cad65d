//! Reading the OTLP JSON the APM test agent hands back: flat spans with their service's resource.

use base64::Engine;
use serde_json::Value;

/// One received span, with its resource's unified service tags.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub env: String,
    pub version: String,
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_span_id: u64,
    pub name: String,
    pub kind: String,
    pub attributes: Vec<(String, String)>,
    /// The spans this one links to: (trace id, span id).
    pub links: Vec<(u128, u64)>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Flattens the agent's `/test/session/traces` answer (a list of OTLP export requests).
pub fn spans(exports: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for export in exports.as_array().into_iter().flatten() {
        for resource_spans in field(export, "resource_spans").as_array().into_iter().flatten() {
            let resource = attributes(field(field(resource_spans, "resource"), "attributes"));
            let get = |key: &str| {
                resource
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let (service, env, version) = (
                get("service.name"),
                get("deployment.environment.name"),
                get("service.version"),
            );
            for scope in field(resource_spans, "scope_spans")
                .as_array()
                .into_iter()
                .flatten()
            {
                for span in field(scope, "spans").as_array().into_iter().flatten() {
                    out.push(Span {
                        service: service.clone(),
                        env: env.clone(),
                        version: version.clone(),
                        trace_id: id(field(span, "trace_id")) as u128
                            | (id_high(field(span, "trace_id")) << 64),
                        span_id: id(field(span, "span_id")),
                        parent_span_id: id(field(span, "parent_span_id")),
                        name: field(span, "name").as_str().unwrap_or_default().to_owned(),
                        kind: field(span, "kind").as_str().unwrap_or_default().to_owned(),
                        attributes: attributes(field(span, "attributes")),
                        links: field(span, "links")
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|link| {
                                let trace = field(link, "trace_id");
                                (
                                    u128::from(id(trace)) | (id_high(trace) << 64),
                                    id(field(link, "span_id")),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

/// OTLP JSON exists in snake_case (protobuf field names) and camelCase (proto3 JSON): accept both.
fn field<'a>(value: &'a Value, snake: &str) -> &'a Value {
    if let Some(found) = value.get(snake) {
        return found;
    }
    let camel: String = snake
        .split('_')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_owned()
            } else {
                part[..1].to_uppercase() + &part[1..]
            }
        })
        .collect();
    value.get(camel).unwrap_or(&Value::Null)
}

fn bytes(value: &Value) -> Vec<u8> {
    let Some(text) = value.as_str() else {
        return Vec::new();
    };
    // Hex in OTLP/JSON proper; base64 where the agent serialised the protobuf with bytes as base64.
    if text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) && !text.is_empty() {
        (0..text.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    }
}

/// The low 64 bits (big-endian, as ids are written) of an id.
fn id(value: &Value) -> u64 {
    let b = bytes(value);
    b.iter()
        .rev()
        .take(8)
        .rev()
        .fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

fn id_high(value: &Value) -> u128 {
    let b = bytes(value);
    if b.len() <= 8 {
        return 0;
    }
    u128::from(
        b[..b.len() - 8]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

fn attributes(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            let value = field(kv, "value");
            let text = ["string_value", "int_value", "bool_value", "double_value"]
                .iter()
                .find_map(|k| {
                    let v = field(value, k);
                    (!v.is_null()).then(|| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                })
                .unwrap_or_default();
            (field(kv, "key").as_str().unwrap_or_default().to_owned(), text)
        })
        .collect()
}
