//! Whether Redis holds any key of a Feast project: a bounded `SCAN`, asked once at start so that a
//! `FEAST_PROJECT` that names no key (every feature would be NOT_FOUND) is said out loud.
//!
//! `SCAN` walks the keyspace a page at a time and never blocks Redis as `KEYS` would. Its `MATCH` glob
//! (`*<project>`, the project being the end of every key Feast writes) runs on the server; each key it
//! returns is then parsed ([`crate::layout::key_project`]), so that the keys of `dynamic_pricing` do not
//! count for `pricing`. At most [`MAX_PAGES`] pages of [`PAGE`] keys are walked per node: past a million
//! keys with none of the project's, the answer is "not within the bound" rather than a longer walk at
//! every start. In a cluster each primary holds its own slots and is walked in turn.

use std::time::Duration;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::{CustomCommand, Value};

use crate::Error;
use crate::layout::key_project;

/// Keys Redis looks at per `SCAN` call (its `COUNT`).
const PAGE: u32 = 1_000;
/// `SCAN` calls per node at most.
const MAX_PAGES: u32 = 1_000;

/// What a walk of the keyspace found of a project's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectKeys {
    /// At least one key of the project.
    Found,
    /// None: the whole keyspace was walked (every primary's, in a cluster).
    Missing,
    /// None in the first million keys of some node; the rest was not walked.
    NotWithinBound,
}

impl ProjectKeys {
    /// The answer over several nodes: found on one is found; otherwise missing only if missing on all.
    pub(crate) fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Found, _) | (_, Self::Found) => Self::Found,
            (Self::NotWithinBound, _) | (_, Self::NotWithinBound) => Self::NotWithinBound,
            (Self::Missing, Self::Missing) => Self::Missing,
        }
    }
}

/// Walks `client`'s keyspace for a key of `project`, each call answered within `timeout`.
pub(crate) async fn project_keys(
    client: &Client,
    project: &str,
    timeout: Duration,
) -> Result<ProjectKeys, Error> {
    let pattern = format!("*{}", glob_escape(project));
    let mut cursor = Bytes::from_static(b"0");
    for _ in 0..MAX_PAGES {
        let args: Vec<Value> = vec![
            Value::Bytes(cursor.clone()),
            "MATCH".into(),
            pattern.as_str().into(),
            "COUNT".into(),
            PAGE.into(),
        ];
        let reply = tokio::time::timeout(
            timeout,
            client.custom::<Value, Value>(CustomCommand::new_static("SCAN", None::<u16>, false), args),
        )
        .await
        .map_err(|_| Error::Timeout(timeout))?
        .map_err(|error| Error::from_redis(error, timeout))?;
        let (next, keys) = scan_reply(reply).ok_or_else(|| {
            Error::Redis(fred::error::Error::new(
                fred::error::ErrorKind::Parse,
                "unexpected SCAN reply",
            ))
        })?;
        if keys
            .iter()
            .any(|key| key_project(key) == Some(project.as_bytes()))
        {
            return Ok(ProjectKeys::Found);
        }
        if &next[..] == b"0" {
            return Ok(ProjectKeys::Missing);
        }
        cursor = next;
    }
    Ok(ProjectKeys::NotWithinBound)
}

/// `[cursor, [key, ...]]`.
fn scan_reply(reply: Value) -> Option<(Bytes, Vec<Bytes>)> {
    let Value::Array(mut parts) = reply else {
        return None;
    };
    let keys = match parts.pop()? {
        Value::Array(keys) => keys.into_iter().filter_map(bytes_of).collect(),
        _ => return None,
    };
    let cursor = bytes_of(parts.pop()?)?;
    Some((cursor, keys))
}

fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(string) => Some(string.into_inner()),
        _ => None,
    }
}

/// `text` as a Redis glob that matches it literally.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_of_a_project_match_literally() {
        assert_eq!(glob_escape("pricing"), "pricing");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn found_anywhere_wins_and_missing_needs_every_node() {
        use ProjectKeys::*;
        assert_eq!(Missing.merge(Found), Found);
        assert_eq!(NotWithinBound.merge(Found), Found);
        assert_eq!(Missing.merge(NotWithinBound), NotWithinBound);
        assert_eq!(Missing.merge(Missing), Missing);
    }

    #[test]
    fn a_scan_reply_is_a_cursor_and_keys() {
        let reply = Value::Array(vec![
            Value::from("17"),
            Value::Array(vec![Value::Bytes(Bytes::from_static(b"k1")), Value::from("k2")]),
        ]);
        let (cursor, keys) = scan_reply(reply).expect("parses");
        assert_eq!(&cursor[..], b"17");
        assert_eq!(keys, [Bytes::from_static(b"k1"), Bytes::from_static(b"k2")]);
        assert!(scan_reply(Value::Null).is_none());
    }
}
