//! [`SettingRanges`]: the properties of a binary's numeric settings, checked on its clap `Config`.

use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner, contextualize_config};
use telemetry::TelemetryConfig;
use telemetry::settings::{Bounds, bounds_problems, numeric_flags};

/// How many values [`SettingRanges::assert_any_value_refused_or_within_bounds`] tries.
const CASES: u32 = 1024;

/// The numeric settings of one binary's `Config` (`C`) and their documented ranges.
pub struct SettingRanges<C> {
    /// The binary's name, as `argv[0]`.
    pub name: &'static str,
    /// What the binary needs besides (its required flags and their values), before the flag tested.
    pub required: &'static [&'static str],
    /// The ranges of its integer settings, its own and those of the groups it flattens.
    pub integer: Vec<Bounds>,
    /// The ranges of its fractional settings.
    pub fraction: Vec<Bounds<f64>>,
    /// Every numeric setting of a parsed `C`, by flag.
    pub numbers: fn(&C) -> Vec<(&'static str, f64)>,
}

impl<C: Parser> SettingRanges<C> {
    /// `C` parsed from the binary's name, its required flags and `extra`.
    fn parse<'a>(&'a self, extra: impl IntoIterator<Item = &'a str>) -> Result<C, clap::Error> {
        let argv = std::iter::once(self.name)
            .chain(self.required.iter().copied())
            .chain(extra);
        C::try_parse_from(argv)
    }

    /// The long flag of every numeric setting.
    pub fn flags() -> Vec<String> {
        numeric_flags(&C::command())
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Asserts that every numeric flag has bounds that `--help` states and clap enforces (what
    /// [`bounds_problems`] checks), and that [`SettingRanges::numbers`] names every numeric setting,
    /// so the property of [`SettingRanges::check`] covers them all.
    pub fn assert_documented_and_complete(&self) {
        let command = C::command();
        let problems = bounds_problems(&command, self.required, &self.integer, &self.fraction);
        assert!(problems.is_empty(), "{problems:#?}");
        let config = self.parse([]).expect("defaults parse");
        let mut checked: Vec<&str> = (self.numbers)(&config)
            .into_iter()
            .map(|(flag, _)| flag)
            .collect();
        let mut numeric = numeric_flags(&command);
        checked.sort_unstable();
        numeric.sort_unstable();
        assert_eq!(checked, numeric);
    }

    /// Whether `value` lies within the bounds documented for `flag`.
    #[allow(clippy::cast_precision_loss)]
    pub fn within(&self, flag: &str, value: f64) -> bool {
        let integer = self
            .integer
            .iter()
            .find(|bounds| bounds.flag == flag)
            .map(|bounds| Bounds::new(bounds.flag, bounds.min as f64, bounds.max as f64));
        let fraction = self.fraction.iter().copied().find(|bounds| bounds.flag == flag);
        integer.or(fraction).is_some_and(|bounds| bounds.contains(value))
    }

    /// The property: `--{flag}={value}` is either refused as a bad value with a message naming the
    /// flag, or parsed into a `C` whose every numeric setting lies within its bounds.
    pub fn check(&self, flag: &str, value: &str) -> Result<(), TestCaseError> {
        let arg = format!("--{flag}={value}");
        match self.parse([arg.as_str()]) {
            Err(error) => {
                prop_assert!(
                    matches!(
                        error.kind(),
                        clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                    ),
                    "{arg}: {error}"
                );
                prop_assert!(
                    error.to_string().contains(&format!("--{flag} ")),
                    "{arg}: {error}"
                );
            }
            Ok(config) => {
                for (setting, number) in (self.numbers)(&config) {
                    prop_assert!(self.within(setting, number), "{arg}: {setting} = {number}");
                }
            }
        }
        Ok(())
    }

    /// Runs [`SettingRanges::check`] on 1024 pairs of a numeric flag and an [`extreme_value`], as
    /// `proptest!` would (`PROPTEST_*` variables apply; failures persist next to the calling test).
    #[track_caller]
    pub fn assert_any_value_refused_or_within_bounds(&self) {
        let mut config = contextualize_config(ProptestConfig::with_cases(CASES));
        config.source_file = Some(std::panic::Location::caller().file());
        self.assert_property(config);
    }

    fn assert_property(&self, config: ProptestConfig) {
        let mut runner = TestRunner::new(config);
        let strategy = (prop::sample::select(Self::flags()), extreme_value());
        if let Err(error) = runner.run(&strategy, |(flag, value)| self.check(&flag, &value)) {
            panic!("{error}\n{runner}");
        }
    }
}

/// The two property tests of a binary's settings, on its [`SettingRanges`] (an expression, evaluated in
/// each test): `every_number_has_enforced_and_documented_bounds` and
/// `any_value_is_refused_naming_its_flag_or_kept_within_bounds`.
///
/// ```ignore
/// testkit::setting_ranges_tests!(ranges());
/// ```
#[macro_export]
macro_rules! setting_ranges_tests {
    ($ranges:expr) => {
        #[test]
        fn every_number_has_enforced_and_documented_bounds() {
            $ranges.assert_documented_and_complete();
        }

        #[test]
        fn any_value_is_refused_naming_its_flag_or_kept_within_bounds() {
            $ranges.assert_any_value_refused_or_within_bounds();
        }
    };
}

/// The numeric settings of a flattened `server_kit::ServerArgs` (an expression of type
/// `&ServerArgs`), by flag, for [`SettingRanges::numbers`]. A macro, expanded in the test that has
/// server-kit, because server-kit depends on this kit (its `test-certs` feature) and not the reverse.
#[macro_export]
macro_rules! server_numbers {
    ($server:expr) => {{
        let server = $server;
        [
            (
                "max-concurrent-requests",
                f64::from(server.max_concurrent_requests),
            ),
            ("max-request-bytes", f64::from(server.max_request_bytes)),
            ("max-response-bytes", f64::from(server.max_response_bytes)),
            ("shutdown-drain-delay-ms", server.shutdown_drain_delay_ms as f64),
            ("shutdown-grace-ms", server.shutdown_grace_ms as f64),
            // Unset is the runtime's own choice, one worker per CPU: within the bounds.
            ("worker-threads", f64::from(server.worker_threads.unwrap_or(1))),
        ]
    }};
}

/// The numeric settings of a flattened [`TelemetryConfig`], by flag, for [`SettingRanges::numbers`].
#[allow(clippy::cast_precision_loss)]
pub fn telemetry_numbers(telemetry: &TelemetryConfig) -> Vec<(&'static str, f64)> {
    vec![
        ("dd-dogstatsd-port", f64::from(telemetry.dogstatsd_port)),
        (
            "metrics-flush-interval-ms",
            telemetry.metrics_flush_interval_ms as f64,
        ),
        ("metrics-max-series", telemetry.metrics_max_series as f64),
        ("metrics-max-samples", telemetry.metrics_max_samples as f64),
        ("otel-bsp-max-queue-size", telemetry.span_queue_size as f64),
        ("log-buffer-lines", telemetry.log_buffer_lines as f64),
        ("otel-traces-sampler-arg", telemetry.sampler_arg.unwrap_or(0.0)),
    ]
}

/// What a deployment could hand a numeric setting by mistake: the ends of every integer type and past
/// them, negatives, fractions and non-numbers, long runs of digits, and arbitrary numbers.
pub fn extreme_value() -> impl Strategy<Value = String> {
    let fixed = [
        "0",
        "1",
        "-1",
        "-0",
        "+1",
        "65535",
        "65536",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "0.5",
        "1e3",
        "NaN",
        "inf",
        "-inf",
        "1e309",
        "0x10",
        "1_000",
        " 5",
        "",
    ];
    prop_oneof![
        prop::sample::select(fixed.to_vec()).prop_map(str::to_owned),
        any::<u64>().prop_map(|value| value.to_string()),
        any::<i64>().prop_map(|value| value.to_string()),
        any::<f64>().prop_map(|value| value.to_string()),
        "[0-9]{15,400}",
    ]
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const COUNT: Bounds = Bounds::new("count", 1, 600);
    const RATIO: Bounds<f64> = Bounds::new("ratio", 0.0, 1.0);

    #[derive(Debug, Parser)]
    struct Cli {
        /// Things (1 to 600).
        #[arg(long, default_value_t = 5, value_parser = COUNT.parser::<u32>())]
        count: u32,
        /// A share (0 to 1).
        #[arg(long, default_value_t = 0.5, value_parser = RATIO.parser::<f64>())]
        ratio: f64,
    }

    /// Like `Cli`, but its count takes any `u32`, whatever its help says.
    #[derive(Debug, Parser)]
    struct Lax {
        /// Things (1 to 600).
        #[arg(long, default_value_t = 5)]
        count: u32,
    }

    fn cli() -> SettingRanges<Cli> {
        SettingRanges {
            name: "cli",
            required: &[],
            integer: vec![COUNT],
            fraction: vec![RATIO],
            numbers: |cli| vec![("count", f64::from(cli.count)), ("ratio", cli.ratio)],
        }
    }

    fn lax() -> SettingRanges<Lax> {
        SettingRanges {
            name: "lax",
            required: &[],
            integer: vec![COUNT],
            fraction: vec![],
            numbers: |lax| vec![("count", f64::from(lax.count))],
        }
    }

    #[test]
    fn bounded_settings_pass() {
        assert_eq!(SettingRanges::<Cli>::flags(), ["count", "ratio"]);
        cli().assert_documented_and_complete();
        cli().assert_any_value_refused_or_within_bounds();
    }

    #[test]
    #[should_panic(expected = "left: [\"count\"]")]
    fn a_number_left_out_of_the_list_fails() {
        let ranges = SettingRanges {
            numbers: |cli: &Cli| vec![("count", f64::from(cli.count))],
            ..cli()
        };
        ranges.assert_documented_and_complete();
    }

    #[test]
    fn a_value_kept_outside_its_bounds_fails_the_property() {
        assert!(lax().check("count", "601").is_err());
        assert!(lax().check("count", "600").is_ok());
        assert!(lax().check("count", "-1").is_ok(), "refused, naming --count");
        assert!(cli().check("count", "601").is_ok(), "refused, naming --count");
        assert!(cli().within("ratio", 1.0) && !cli().within("ratio", 1.5) && !cli().within("none", 1.0));
    }

    #[test]
    #[should_panic(expected = "--count=601 is accepted, though outside 1 to 600")]
    fn unenforced_bounds_fail() {
        lax().assert_documented_and_complete();
    }

    #[test]
    #[should_panic(expected = "minimal failing input")]
    fn unenforced_bounds_fail_the_property() {
        // Not persisted: this failure is expected, not one to replay.
        let config = ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::with_cases(CASES)
        };
        lax().assert_property(config);
    }
}
