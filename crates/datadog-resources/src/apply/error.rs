//! Why `apply` stopped. Every message says which file and resource it was about (when one), which call
//! to Datadog failed, what status came back and what Datadog said, so the fix can start from the message.

use std::path::PathBuf;

/// An `apply` failure.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Datadog could not be reached or the answer could not be read (DNS, TLS, timeout, connection reset).
    #[error("{context}: {method} {path} on {api_url} failed before Datadog answered: {message}")]
    Transport {
        context: String,
        method: &'static str,
        path: String,
        api_url: String,
        message: String,
    },

    /// `GET /api/v1/validate` refused the API key.
    #[error(
        "Datadog refused the API key: {method} {path} returned {status} ({errors}). The key in DD_API_KEY is \
         not valid for {api_url}; check the key, and DD_SITE if the organisation is on another Datadog site"
    )]
    ApiKey {
        api_url: String,
        method: &'static str,
        path: String,
        status: u16,
        errors: String,
    },

    /// Datadog answered a call with an error status.
    #[error("{context}: {method} {path} returned {status}: {errors}{hint}")]
    Api {
        /// The resource (`deploy/datadog/monitors/api-down.json (monitor "API down")`) or the listing.
        context: String,
        method: &'static str,
        path: String,
        status: u16,
        /// Datadog's `errors` array (or the logs API's `error` object), as text.
        errors: String,
        /// A hint for statuses whose cause is usually the same (a 403 is a key or permission problem).
        hint: String,
    },

    /// Datadog's monitor validation rejected a monitor; nothing was written to monitors.
    #[error(
        "{file} ({label}): Datadog's monitor validation rejected it: {method} {path} returned {status}: \
         {errors}. No monitor was written"
    )]
    InvalidMonitor {
        file: PathBuf,
        label: String,
        method: &'static str,
        path: String,
        status: u16,
        errors: String,
    },

    /// More than one object in the organisation carries a resource's identity, so updating either would
    /// leave the other behind.
    #[error(
        "{file} ({label}): the organisation has {count} {noun}s with exactly this {field} (ids {ids}); \
         delete the duplicate in Datadog so only one is left, then apply again"
    )]
    Duplicate {
        file: PathBuf,
        label: String,
        noun: &'static str,
        field: &'static str,
        count: usize,
        ids: String,
    },

    /// A placeholder could not be filled in.
    #[error("{file} ({label}): {message}")]
    Render {
        file: PathBuf,
        label: String,
        message: String,
    },

    /// A resource lacks the field that identifies it, so it cannot be found again.
    #[error("{file}: the {noun} has no {field:?}, which apply needs to find it in the organisation")]
    Unnamed {
        file: PathBuf,
        noun: &'static str,
        field: &'static str,
    },

    /// A successful answer did not have the shape Datadog documents.
    #[error("{context}: {method} {path} returned {status} with an undocumented body: {message}")]
    UnexpectedResponse {
        context: String,
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },

    /// The plan could not be written out.
    #[error("cannot write the plan: {0}")]
    Output(#[from] std::io::Error),
}
