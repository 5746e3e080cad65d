//! What every binary's `Config` needs beyond clap itself: [`Secret`], a string whose `Debug` and
//! `Display` never show the secret in it (so the `Config` structs derive `Debug` and can be logged),
//! and [`Bounds`], the documented range of a numeric setting, enforced by clap when the flag or
//! variable is parsed, so that a bad value stops the process at start with a one-line reason naming
//! it, instead of overflowing a deadline or an allocation once requests arrive.
//!
//! clap prints a variable's value in `--help` unless the argument says `hide_env_values = true`: every
//! argument parsed to a [`Secret`] says it (each binary's tests check that).

mod bounds;
mod secret;

pub use bounds::{Bounds, bounds_problems, numeric_flags};
pub use secret::{Secret, redact_url, secrets_shown_by_help};
