//! What every binary's settings tests check, whatever its `Config`: each numeric setting has a range
//! that `--help` states and clap enforces, so any value either stops the binary at start with clap's
//! one-line reason naming the flag, or leaves a value within the range; and a secret in the
//! environment is not printed by `--help`.
//!
//! A binary's test file keeps only what is its own: a [`SettingRanges`] of its `Config` (its bounds and
//! its numeric settings by flag, with [`server_numbers!`](crate::server_numbers) and
//! [`telemetry_numbers`] for the groups it flattens) on which
//! [`setting_ranges_tests!`](crate::setting_ranges_tests) writes the property tests, the variables and
//! message of its start-up test ([`assert_refused_at_start`]) and the secret its `--help` must hide
//! ([`assert_help_hides`]).

mod binary;
mod ranges;

pub use binary::{assert_bad_worker_counts_refused, assert_help_hides, assert_refused_at_start};
pub use ranges::{SettingRanges, extreme_value, telemetry_numbers};
