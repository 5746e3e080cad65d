//! Datadog's API bodies as Rust types, strict where Datadog's own client types are lenient: every
//! struct refuses keys the API does not document (a typo is an error, not a silently ignored field),
//! and the read-only fields Datadog computes (ids, timestamps, authors, states) are not part of them,
//! so a file that carries one fails too. Field names, enums and nesting follow Datadog's v1 OpenAPI
//! schemas; only the parts this repository uses are modelled, and a widget type or option outside
//! them is reported as unknown rather than accepted unchecked.

pub mod dashboard;
pub mod logs_index;
pub mod monitor;
pub(crate) mod shared;
pub mod slo;

pub use dashboard::Dashboard;
pub use logs_index::{LogsIndex, LogsIndexesOrder};
pub use monitor::Monitor;
pub use slo::Slo;

/// Parses `value` as `T`, naming the JSON path of the first problem
/// (`widgets[2].definition.requests[0]: unknown field "q", expected one of ...`).
pub fn parse<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match path.as_str() {
            "." | "" => inner.to_string(),
            path => format!("at `{path}`: {inner}"),
        }
    })
}
