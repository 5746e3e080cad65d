//! The integration tests of `datadog-resources`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod stand_in;

mod apply;
mod checker;
mod secrets_not_printed;
