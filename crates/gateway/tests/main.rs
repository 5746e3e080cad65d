//! The integration tests of `gateway`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod embedded_quote_store;
mod prediction_records;
mod quote_store_settings;
mod secrets_not_printed;
mod setting_ranges;
mod unworkable_settings;
mod validation_properties;
