//! [`Bounds`]: the range of a numeric setting, in one place for clap, `--help` and the docs.

use std::any::TypeId;
use std::fmt;
use std::str::FromStr;

use clap::builder::RangedU64ValueParser;

/// The documented range of a numeric setting: its long flag and the least and greatest values
/// accepted, both included. [`Bounds::parser`] makes clap refuse anything else at start-up, naming
/// the flag (also when the value came from its environment variable):
///
/// ```text
/// error: invalid value '900000' for '--request-timeout-ms <REQUEST_TIMEOUT_MS>': 900000 is not in 1..=600000
/// ```
///
/// The flag's doc comment (its `--help`) states the range as [`Bounds`]' `Display` writes it
/// (`1 to 600000`); each binary's tests check that it does, and that every numeric flag has bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds<T = u64> {
    /// The long flag, without its dashes (`request-timeout-ms`).
    pub flag: &'static str,
    pub min: T,
    pub max: T,
}

impl<T> Bounds<T> {
    pub const fn new(flag: &'static str, min: T, max: T) -> Self {
        Self { flag, min, max }
    }
}

impl<T: PartialOrd> Bounds<T> {
    pub fn contains(&self, value: T) -> bool {
        self.min <= value && value <= self.max
    }
}

impl Bounds<u64> {
    /// clap's parser of an integer setting of type `T` (`u16`, `u32`, `u64`, `usize`) in these bounds:
    /// `value_parser = REQUEST_TIMEOUT_MS.parser::<u64>()`.
    pub fn parser<T>(&self) -> RangedU64ValueParser<T>
    where
        T: TryFrom<u64> + Clone + Send + Sync + 'static,
        <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
    {
        RangedU64ValueParser::<T>::new().range(self.min..=self.max)
    }
}

impl Bounds<f64> {
    /// clap's parser of a fractional setting of type `T` (`f32`, `f64`) in these bounds; NaN and the
    /// infinities are refused with the rest.
    pub fn parser<T>(&self) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
    where
        T: FromStr + Into<f64> + Copy + Send + Sync + 'static,
    {
        let bounds = *self;
        move |raw: &str| match raw.trim().parse::<T>() {
            Ok(value) if bounds.contains(value.into()) => Ok(value),
            _ => Err(format!("{raw} is not a number from {bounds}")),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Bounds<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min, self.max)
    }
}

/// The long flags of `command`'s numeric arguments (integers and floats, flattened ones included):
/// each needs [`Bounds`].
pub fn numeric_flags(command: &clap::Command) -> Vec<&str> {
    let numeric = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<u128>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<i128>(),
        TypeId::of::<isize>(),
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
    ];
    command
        .get_arguments()
        .filter(|arg| {
            let parsed = arg.get_value_parser().type_id();
            numeric.iter().any(|id| parsed == *id)
        })
        .filter_map(clap::Arg::get_long)
        .collect()
}

/// What is wrong with the bounds of `command`'s numeric settings, for each binary's tests: a numeric flag
/// without bounds (or bounds naming no numeric flag), a `--help` that does not state its range, a default
/// outside it, clap refusing either end of the range or accepting a value just past it. `args` are what
/// the command needs besides (its required flags).
pub fn bounds_problems(
    command: &clap::Command,
    args: &[&str],
    integers: &[Bounds],
    fractions: &[Bounds<f64>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let numeric = numeric_flags(command);
    let listed: Vec<&str> = integers
        .iter()
        .map(|bounds| bounds.flag)
        .chain(fractions.iter().map(|bounds| bounds.flag))
        .collect();
    for flag in &numeric {
        if !listed.contains(flag) {
            problems.push(format!("--{flag} is a number without bounds"));
        }
    }
    let parses = |flag: &str, value: &str| {
        let argv = std::iter::once(command.get_name().to_owned())
            .chain(args.iter().map(|arg| (*arg).to_owned()))
            .chain([format!("--{flag}={value}")]);
        command.clone().try_get_matches_from(argv).is_ok()
    };
    let mut check = |flag: &str, range: String, ends: [String; 2], past: Vec<String>| {
        let Some(arg) = command.get_arguments().find(|arg| arg.get_long() == Some(flag)) else {
            problems.push(format!("bounds name --{flag}, which is not a numeric flag"));
            return;
        };
        let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string);
        if !help.is_some_and(|help| help.contains(&range)) {
            problems.push(format!("--help of --{flag} does not state its range ({range})"));
        }
        let defaults = arg.get_default_values().iter().filter_map(|value| value.to_str());
        for value in ends.iter().map(String::as_str).chain(defaults) {
            if !parses(flag, value) {
                problems.push(format!("--{flag}={value} is refused, though within {range}"));
            }
        }
        for value in past {
            if parses(flag, &value) {
                problems.push(format!("--{flag}={value} is accepted, though outside {range}"));
            }
        }
    };
    for bounds in integers {
        let mut past = vec![bounds.max.saturating_add(1).to_string(), u64::MAX.to_string()];
        if bounds.min > 0 {
            past.push((bounds.min - 1).to_string());
        }
        let ends = [bounds.min.to_string(), bounds.max.to_string()];
        check(bounds.flag, bounds.to_string(), ends, past);
    }
    for bounds in fractions {
        let past = [bounds.min - 1.0, bounds.max + 1.0, f64::NAN, f64::INFINITY]
            .iter()
            .map(ToString::to_string)
            .collect();
        let ends = [bounds.min.to_string(), bounds.max.to_string()];
        check(bounds.flag, bounds.to_string(), ends, past);
    }
    problems
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const COUNT: Bounds = Bounds::new("count", 1, 600);
    const RATIO: Bounds<f64> = Bounds::new("ratio", 0.0, 1000.0);

    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, default_value_t = 5, value_parser = COUNT.parser::<u32>())]
        count: u32,
        #[arg(long, default_value_t = 0.1, value_parser = RATIO.parser::<f32>())]
        ratio: f32,
        #[arg(long, default_value = "x")]
        name: String,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bin").chain(args.iter().copied()))
    }

    #[test]
    fn integers_outside_the_bounds_are_refused_naming_the_flag() {
        assert_eq!(parse(&["--count", "1"]).map(|cli| cli.count).ok(), Some(1));
        assert_eq!(parse(&["--count", "600"]).map(|cli| cli.count).ok(), Some(600));
        for value in ["0", "601", "-1", "18446744073709551616", "1e3", ""] {
            let error = parse(&[&format!("--count={value}")]).expect_err(value);
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{value}");
            assert!(error.to_string().contains("--count"), "{error}");
        }
        let error = parse(&["--count", "601"]).expect_err("above");
        assert!(error.to_string().contains("601 is not in 1..=600"), "{error}");
    }

    #[test]
    fn fractions_outside_the_bounds_or_not_numbers_are_refused() {
        assert_eq!(parse(&[]).map(|cli| cli.ratio).ok(), Some(0.1));
        assert_eq!(
            parse(&["--ratio", "1000"]).map(|cli| cli.ratio).ok(),
            Some(1000.0)
        );
        for value in ["-0.5", "1000.5", "NaN", "inf", "-inf", "1e39", "x"] {
            let error = parse(&[&format!("--ratio={value}")]).expect_err(value);
            assert!(
                error.to_string().contains("--ratio") && error.to_string().contains("0 to 1000"),
                "{error}"
            );
        }
    }

    #[test]
    fn numeric_flags_are_found_by_type() {
        use clap::CommandFactory;
        assert_eq!(numeric_flags(&Cli::command()), ["count", "ratio"]);
        assert_eq!(COUNT.to_string(), "1 to 600");
        assert!(RATIO.contains(0.0) && !RATIO.contains(f64::NAN));
    }

    #[test]
    fn missing_or_wrong_bounds_are_reported() {
        use clap::CommandFactory;
        let command = Cli::command();
        // The help above states no range, which is reported for each.
        let problems = bounds_problems(&command, &[], &[COUNT], &[RATIO]);
        assert_eq!(
            problems,
            [
                "--help of --count does not state its range (1 to 600)",
                "--help of --ratio does not state its range (0 to 1000)",
            ]
        );
        let problems = bounds_problems(&command, &[], &[Bounds::new("count", 0, 700)], &[]);
        assert_eq!(
            problems,
            [
                "--ratio is a number without bounds",
                "--help of --count does not state its range (0 to 700)",
                "--count=0 is refused, though within 0 to 700",
                "--count=700 is refused, though within 0 to 700",
            ]
        );
        let problems = bounds_problems(&command, &[], &[COUNT, Bounds::new("name", 1, 2)], &[RATIO]);
        assert!(
            problems
                .iter()
                .any(|problem| problem.contains("--name=3 is accepted")),
            "{problems:?}"
        );
    }
}
