//! The integration tests of `deploy-checks`, built as one binary: each file here is a module, so the suite
//! links once instead of once per file (nextest still runs each test in a process of its own). A file
//! not named below is not compiled, and `cargo xtask lint` fails on one.

mod agent_values;
mod configuration;
mod dockerfile;
mod helm_chart;
mod references;
mod runs_as_the_chart_runs_it;
