//! [`Secret`]: a setting that must not reach logs or `--help` as it is (a Redis URL with its password,
//! an API key).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A secret-bearing setting: a URL whose user info may hold a password (`redis://:pw@host:6379`), or
/// a key. `Debug` and `Display` show a URL without its password (scheme, host, port and path kept, as
/// [`redact_url`] does) and anything else as `***`; [`Secret::expose`] gives the value itself.
///
/// Parsed by clap like a `String` (`#[arg(long, env = "REDIS_URL", hide_env_values = true)]`); clap
/// prints environment values in `--help` unless `hide_env_values` is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it (a connection); never for a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value itself, owned.
    pub fn into_inner(self) -> String {
        self.0
    }

    /// What `Debug` and `Display` show.
    fn redacted(&self) -> String {
        if self.0.contains("://") {
            redact_url(&self.0)
        } else {
            "***".to_owned()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// So that APIs taking `impl Into<String>` (`RedisConfig::new`) take a `Secret` as they took a `String`.
impl From<Secret> for String {
    fn from(secret: Secret) -> Self {
        secret.0
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(value))
    }
}

/// `url` with the password of its user info, and the value of any query parameter named like a
/// password (`sentinelPassword=`), replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (user_info, after) = match rest[..authority_end].rfind('@') {
        // A URL with only a user part (`redis://secret@host`) is how some clients pass a password alone.
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => (format!("{user}:***@"), &rest[at + 1..]),
            None => ("***@".to_owned(), &rest[at + 1..]),
        },
        None => (String::new(), rest),
    };
    format!(
        "{}{user_info}{}",
        &url[..scheme_end],
        redact_query_passwords(after)
    )
}

/// `rest` (host onwards) with the values of password-like query parameters replaced by `***`.
fn redact_query_passwords(rest: &str) -> String {
    let Some((before, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.to_ascii_lowercase().contains("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut redacted = format!("{before}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

/// The long flags of `command`'s [`Secret`] arguments whose environment value `--help` would print
/// (no `hide_env_values = true`): each binary's tests expect none.
pub fn secrets_shown_by_help(command: &clap::Command) -> Vec<&str> {
    command
        .get_arguments()
        .filter(|arg| arg.get_value_parser().type_id() == std::any::TypeId::of::<Secret>())
        .filter(|arg| arg.get_env().is_some() && !arg.is_hide_env_values_set())
        .filter_map(clap::Arg::get_long)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@host:6380"),
            "rediss://user:***@host:6380"
        );
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redact_url("redis-cluster://u:pw@a:1?node=b:2&node=c:3"),
            "redis-cluster://u:***@a:1?node=b:2&node=c:3"
        );
        assert_eq!(
            redact_url("redis-sentinel://u:pw@a:26379/1?sentinelServiceName=m&sentinelPassword=pw2#x"),
            "redis-sentinel://u:***@a:26379/1?sentinelServiceName=m&sentinelPassword=***#x"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn a_secret_shows_a_url_without_its_password_and_nothing_of_a_key() {
        let url = Secret::from("redis://:hunter2@redis:6379");
        assert_eq!(format!("{url:?}"), r#""redis://:***@redis:6379""#);
        assert_eq!(url.to_string(), "redis://:***@redis:6379");
        assert_eq!(url.expose(), "redis://:hunter2@redis:6379");
        let key = Secret::new("0123456789abcdef");
        assert_eq!(format!("{key:?} {key}"), r#""***" ***"#);
        assert_eq!(format!("{:?}", Some(Secret::from("hunter2"))), r#"Some("***")"#);
        assert_eq!(String::from(key), "0123456789abcdef");
    }

    #[test]
    fn secrets_without_hidden_environment_values_are_found() {
        use clap::{CommandFactory, Parser};

        #[derive(Parser)]
        struct Cli {
            #[arg(long, env = "TEST_SHOWN_URL")]
            shown: Option<Secret>,
            #[arg(long, env = "TEST_HIDDEN_URL", hide_env_values = true)]
            hidden: Option<Secret>,
            #[arg(long, env = "TEST_PLAIN")]
            plain: Option<String>,
        }

        assert_eq!(secrets_shown_by_help(&Cli::command()), ["shown"]);
    }
}
