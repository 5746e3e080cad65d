//! Secrets out of what logs and errors show: [`redact_url`], shared with every binary's settings
//! ([`telemetry::Secret`] shows a URL the same way).

pub use telemetry::settings::redact_url;
