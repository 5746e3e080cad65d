//! Where quotes are kept until their outcome is recorded: Redis in production (`QUOTE_REDIS_URL`), or an
//! embedded in-memory store for local work and the demo (lost on restart; not for production). The
//! embedded store is a bounded cache with the same lifetimes as Redis keys: past [`MEMORY_CAPACITY`] it
//! evicts the least recently used quotes rather than refusing new ones, and no call sweeps it.
//!
//! A quote lives for the quote TTL. In Redis it is one string key, `quote:<id>`, written with a single
//! `SET ... EX` (no script on the QuotePrice path). Recording its outcome is atomic (one Lua script on the
//! quote's keys: exists? set-if-absent, extend retention), so a retried RecordOutcome is recognised as a
//! duplicate and two different outcomes for one quote cannot both win. The outcome is kept beside the
//! quote in `{quote:<id>}:outcome` (the hash tag puts it in the quote's cluster slot, as the script
//! needs), and both keys' expiry is then the outcome retention, so an accepted outcome outlives its quote.
//! A quote stored by an earlier release as a hash (`quote` and, once recorded, `outcome` and
//! `outcome_at_ms` fields) still takes its outcome in that hash until it expires.
//!
//! The Redis connection is the feature store's ([`RedisConnection`]): the same URL schemes (standalone,
//! TLS, cluster), TLS files, pool, and throttled connection-failure log. Redis being away never stops the
//! gateway: it connects (and reconnects) in the background, and while it is not connected QuotePrice and
//! RecordOutcome fail at once with UNAVAILABLE (nothing was stored, so the caller retries; a retried
//! outcome is recognised as a duplicate). Every command is bounded by what remains of the request's
//! deadline. Predictions do not need the quote store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use feature_store::{RedisConfig, RedisConnection};
use fred::prelude::{Client, ClusterInterface, ConfigInterface, Expiration, KeysInterface, LuaInterface};
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use server_kit::Deadline;
use telemetry::trace::spans;

use crate::error::Error;
use crate::validate::{self, MAX_REVENUE_MULTIPLE};

/// What a quote remembers, for joining its outcome to the prediction that priced it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuoteRecord {
    pub quote_id: String,
    pub customer_id: String,
    pub zone_id: String,
    pub base_price: f64,
    pub price: f64,
    pub currency: String,
    pub risk_score: f64,
    pub risk_multiplier: f64,
    pub surge_factor: f64,
    pub risk_model_version: String,
    pub surge_model_version: String,
    /// The arm the quote is reported under in the business metrics: the risk model's, or the surge
    /// model's when only it is in an experiment, or both joined by `+` ([`quote_variant`]).
    pub experiment_variant: String,
    /// The arm of each model's prediction.
    #[serde(default)]
    pub risk_variant: String,
    #[serde(default)]
    pub surge_variant: String,
    pub created_at_ms: u64,
}

/// The variant a quote is reported under, from its two predictions' arms: an experiment on one model is
/// reported as that model's arm; experiments on both, as the pair (`treatment+control`), so no outcome is
/// credited to an arm that did not price it.
pub fn quote_variant<'a>(risk: &'a str, surge: &'a str) -> std::borrow::Cow<'a, str> {
    use crate::traffic::CONTROL_VARIANT;
    if surge == CONTROL_VARIANT || surge == risk {
        risk.into()
    } else if risk == CONTROL_VARIANT {
        surge.into()
    } else {
        format!("{risk}+{surge}").into()
    }
}

/// The recorded outcome of a quote; compared field by field to recognise retries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    pub booked: bool,
    pub revenue: f64,
    /// The customer's score, 1 to 5, if they gave one.
    #[serde(default)]
    pub satisfaction: Option<f64>,
    /// Whether the customer complained about the price.
    #[serde(default)]
    pub price_complaint: bool,
}

/// An outcome as Redis keeps it: with when it was recorded, which a retry's comparison ignores.
#[derive(Serialize)]
struct StoredOutcome<'a> {
    #[serde(flatten)]
    outcome: &'a Outcome,
    recorded_at_ms: u64,
}

/// What recording an outcome did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// First outcome for the quote; returns the quote it joins.
    New(Box<QuoteRecord>),
    /// The same outcome was already recorded (a retry): nothing changed.
    Duplicate(Box<QuoteRecord>),
}

pub enum QuoteStore {
    Redis {
        connection: Arc<RedisConnection>,
        ttl: Duration,
        retention: Duration,
    },
    Memory {
        quotes: moka::sync::Cache<String, MemoryEntry>,
        ttl: Duration,
    },
}

/// A quote in the embedded store. Cloned on every read, so the record is shared rather than copied.
#[derive(Clone)]
pub struct MemoryEntry {
    quote: Arc<QuoteRecord>,
    outcome: Option<Outcome>,
}

/// How long an embedded entry lives, as its Redis key would: the quote TTL from when it is stored, the
/// outcome retention from when its outcome is recorded (the only update an entry gets besides a re-put).
struct Lifetimes {
    ttl: Duration,
    retention: Duration,
}

impl Lifetimes {
    fn of(&self, entry: &MemoryEntry) -> Duration {
        if entry.outcome.is_some() {
            self.retention
        } else {
            self.ttl
        }
    }
}

impl moka::Expiry<String, MemoryEntry> for Lifetimes {
    fn expire_after_create(&self, _: &String, entry: &MemoryEntry, _: Instant) -> Option<Duration> {
        Some(self.of(entry))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &MemoryEntry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(entry))
    }
}

/// Returns {0} when the quote is unknown, {1, quote} when this outcome is new, {2, quote, existing} when
/// an outcome was already there, {3, quote} when the revenue is over what the quote allows. KEYS: the
/// quote, its outcome; ARGV: the outcome (JSON), the retention (s), now (ms), the revenue, the most
/// revenue a unit of price allows.
const OUTCOME_SCRIPT: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
local quote
if kind == 'string' then
  quote = redis.call('GET', KEYS[1])
elseif kind == 'hash' then
  quote = redis.call('HGET', KEYS[1], 'quote')
end
if not quote then return {0} end
if tonumber(ARGV[4]) > tonumber(ARGV[5]) * cjson.decode(quote).price then return {3, quote} end
if kind == 'string' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return {1, quote}
  end
  return {2, quote, redis.call('GET', KEYS[2])}
end
if redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'outcome_at_ms', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {1, quote}
end
return {2, quote, redis.call('HGET', KEYS[1], 'outcome')}";

/// A Redis setting the quote store needs (docs/deploy.md, "Known limits").
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub wanted: &'static str,
    /// What goes wrong without it.
    pub why: &'static str,
}

/// The settings [`QuoteStore::unsafe_settings`] reads.
pub const SETTINGS: [Setting; 2] = [
    Setting {
        name: "maxmemory-policy",
        wanted: "noeviction",
        why: "an evicted key is a lost quote, outcome or label, and an evicted hash of prediction records \
              thousands of predictions that can no longer be labelled",
    },
    Setting {
        name: "lazyfree-lazy-expire",
        wanted: "yes",
        why: "an expiring hash of prediction records is freed on Redis's main thread, where every command, \
              quotes included, waits for it",
    },
];

/// A server of the quote store whose setting is not the one wanted.
#[derive(Debug, PartialEq, Eq)]
pub struct UnsafeSetting {
    /// The cluster node, for a cluster.
    pub server: Option<String>,
    pub setting: &'static Setting,
    pub value: String,
}

/// The most quotes the embedded store holds. Past it the least recently used are evicted (their outcomes
/// are then refused as not found), so the store stays bounded without ever refusing a new quote.
pub const MEMORY_CAPACITY: usize = 200_000;

impl QuoteStore {
    /// Starts connecting to Redis in the background (retried 50 ms doubling to 2 s, forever); fails only
    /// on a malformed URL or unreadable TLS files.
    pub fn redis(config: &RedisConfig, ttl: Duration, retention: Duration) -> Result<Self, Error> {
        let connection =
            RedisConnection::open(config).map_err(|e| Error::QuoteStore(format!("QUOTE_REDIS_URL: {e}")))?;
        let connection = Arc::new(connection);
        Ok(Self::Redis {
            connection,
            ttl,
            retention,
        })
    }

    /// Waits up to `timeout` for the first connection to the quote store (at once for the embedded one);
    /// `false` if it did not come, and the store keeps trying in the background.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        match self {
            Self::Redis { connection, .. } => connection.connected_within(timeout).await.is_ok(),
            Self::Memory { .. } => true,
        }
    }

    /// The quote store's Redis settings that lose or stall what it keeps ([`SETTINGS`]), as each server
    /// answers `CONFIG GET` (each primary of a cluster). `None` when they cannot be read: not connected,
    /// or `CONFIG` refused, as managed services often do. An embedded store has none.
    pub async fn unsafe_settings(&self) -> Option<Vec<UnsafeSetting>> {
        let Self::Redis { connection, .. } = self else {
            return Some(Vec::new());
        };
        let client = connected(connection).ok()?;
        let servers = match client.cached_cluster_state() {
            Some(cluster) => cluster.unique_primary_nodes().into_iter().map(Some).collect(),
            None => vec![None],
        };
        let mut found = Vec::new();
        for server in servers {
            for setting in &SETTINGS {
                let reply: HashMap<String, String> = match &server {
                    Some(server) => {
                        client
                            .with_cluster_node(server.clone())
                            .config_get(setting.name)
                            .await
                    }
                    None => client.config_get(setting.name).await,
                }
                .ok()?;
                let value = reply.get(setting.name)?;
                if value != setting.wanted {
                    found.push(UnsafeSetting {
                        server: server.as_ref().map(ToString::to_string),
                        setting,
                        value: value.clone(),
                    });
                }
            }
        }
        Some(found)
    }

    pub fn memory(ttl: Duration, retention: Duration) -> Self {
        let quotes = moka::sync::Cache::builder()
            .max_capacity(MEMORY_CAPACITY as u64)
            // Quotes are written once and read at most a few times soon after, so recency is what
            // matters, and plain LRU admits every new quote (TinyLFU may refuse a new, never-read key in
            // favour of an older one).
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(Lifetimes { ttl, retention })
            .build();
        Self::Memory { quotes, ttl }
    }

    /// The Redis connection of a Redis-backed store, which the prediction records share.
    pub fn redis_connection(&self) -> Option<Arc<RedisConnection>> {
        match self {
            Self::Redis { connection, .. } => Some(Arc::clone(connection)),
            Self::Memory { .. } => None,
        }
    }

    pub fn ttl(&self) -> Duration {
        match self {
            Self::Redis { ttl, .. } | Self::Memory { ttl, .. } => *ttl,
        }
    }

    pub async fn put(&self, quote: &QuoteRecord, deadline: Deadline) -> Result<(), Error> {
        match self {
            Self::Redis { connection, ttl, .. } => {
                let json = serde_json::to_string(quote).map_err(|e| Error::QuoteStore(e.to_string()))?;
                let expiry = Expiration::EX(seconds(*ttl));
                let started = Instant::now();
                let written = within(
                    deadline,
                    connected(connection)?.set::<(), _, _>(
                        key(&quote.quote_id),
                        json,
                        Some(expiry),
                        None,
                        false,
                    ),
                )
                .await;
                // The write's time, on the request's span: a span of its own cost every quote about 20 µs
                // of CPU (docs/benchmarks.md). RecordOutcome's and RecordLabel's scripts, one a call, have
                // their spans.
                opentelemetry::Context::current()
                    .span()
                    .set_attribute(KeyValue::new(
                        "quote_store.write_ms",
                        started.elapsed().as_secs_f64() * 1000.0,
                    ));
                written
            }
            Self::Memory { quotes, .. } => {
                // Ids are minted by QuotePrice just before this, so no outcome can race the put.
                let entry = MemoryEntry {
                    quote: Arc::new(quote.clone()),
                    outcome: None,
                };
                quotes.insert(quote.quote_id.clone(), entry);
                Ok(())
            }
        }
    }

    pub async fn record_outcome(
        &self,
        quote_id: &str,
        outcome: Outcome,
        deadline: Deadline,
    ) -> Result<Recorded, Error> {
        match self {
            Self::Redis {
                connection,
                retention,
                ..
            } => {
                let recorded_at_ms = now_ms();
                let json = serde_json::to_string(&StoredOutcome {
                    outcome: &outcome,
                    recorded_at_ms,
                })
                .map_err(|e| Error::QuoteStore(e.to_string()))?;
                let args = vec![
                    json,
                    seconds(*retention).to_string(),
                    recorded_at_ms.to_string(),
                    outcome.revenue.to_string(),
                    MAX_REVENUE_MULTIPLE.to_string(),
                ];
                let reply: Vec<Option<String>> = traced(
                    deadline,
                    RECORD_OUTCOME,
                    connected(connection)?.eval(
                        OUTCOME_SCRIPT,
                        vec![key(quote_id), outcome_key(quote_id)],
                        args,
                    ),
                )
                .await?;
                let status = reply.first().cloned().flatten();
                let quote = || parse::<QuoteRecord>(reply.get(1));
                match status.as_deref() {
                    Some("1") => Ok(Recorded::New(Box::new(quote()?))),
                    Some("2") => {
                        let existing: Outcome = parse(reply.get(2))?;
                        same_outcome(quote_id, existing, outcome)
                            .map(|()| Ok(Recorded::Duplicate(Box::new(quote()?))))?
                    }
                    Some("3") => {
                        let quote = quote()?;
                        Err(validate::revenue_over_quote(
                            outcome.revenue,
                            quote.price,
                            &quote.currency,
                        ))
                    }
                    _ => Err(Error::QuoteNotFound(quote_id.to_owned())),
                }
            }
            Self::Memory { quotes, .. } => {
                // One compute per quote id: concurrent outcomes for one quote run one after the other,
                // so exactly one is New. An expired entry is absent here.
                let mut recorded = None;
                quotes.entry_by_ref(quote_id).and_compute_with(|current| {
                    let Some(current) = current else { return Op::Nop };
                    let entry = current.into_value();
                    let quote = Box::new(QuoteRecord::clone(&entry.quote));
                    if let Err(error) =
                        validate::revenue_within_quote(outcome.revenue, quote.price, &quote.currency)
                    {
                        recorded = Some(Err(error));
                        return Op::Nop;
                    }
                    match entry.outcome {
                        Some(existing) => {
                            recorded = Some(
                                same_outcome(quote_id, existing, outcome)
                                    .map(|()| Recorded::Duplicate(quote)),
                            );
                            Op::Nop
                        }
                        None => {
                            recorded = Some(Ok(Recorded::New(quote)));
                            Op::Put(MemoryEntry {
                                outcome: Some(outcome),
                                ..entry
                            })
                        }
                    }
                });
                recorded.unwrap_or_else(|| Err(Error::QuoteNotFound(quote_id.to_owned())))
            }
        }
    }
}

/// A connected client of the quote store (the prediction records' too), or UNAVAILABLE at once
/// (commands would otherwise queue until reconnected).
pub(crate) fn connected(connection: &RedisConnection) -> Result<&Client, Error> {
    connection
        .client()
        .map_err(|error| Error::QuoteStore(error.to_string()))
}

/// A quote store command, as its span names it: `command` (`SET`, `EVAL`) and, for a script, what it
/// does (`statement`, never a key or a value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Command {
    pub command: &'static str,
    pub statement: Option<&'static str>,
}

/// A Redis command bounded by the request's deadline.
///
/// The command is boxed before anything awaits it. A fred command's future is several kilobytes, and an
/// `async fn` keeps a future it is given both as its argument and inside what it awaits, so each layer
/// held by value doubled it: the quote's write made QuotePrice's whole future about 22 KB, allocated and
/// copied for every request.
pub(crate) fn within<T>(
    deadline: Deadline,
    command: impl Future<Output = Result<T, fred::error::Error>>,
) -> impl Future<Output = Result<T, Error>> {
    let command = Box::pin(command);
    async move {
        within_classed(deadline, command)
            .await
            .map_err(|(error, _)| error)
    }
}

/// [`within`], in a `redis.query` span under the request's span (`db.system=redis`,
/// `peer.service=redis`): the quote store is on the gateway's service map and in the request's trace,
/// and APM's trace metrics for the span give its latency and errors. A failure or a timeout marks the
/// span failed, classed as the feature store classes Redis failures. The command is boxed, as in
/// [`within`].
pub(crate) fn traced<T>(
    deadline: Deadline,
    sent: Command,
    command: impl Future<Output = Result<T, fred::error::Error>>,
) -> impl Future<Output = Result<T, Error>> {
    let command = Box::pin(command);
    async move {
        let cx = spans::redis_span(&opentelemetry::Context::current(), sent.command, sent.statement);
        let result = within_classed(deadline, command).await;
        if let Err((error, error_type)) = &result {
            spans::record_error(&cx, error_type, error.to_string());
        }
        spans::end(&cx);
        result.map_err(|(error, _)| error)
    }
}

/// The command's answer, or its error and the error's class.
async fn within_classed<T>(
    deadline: Deadline,
    command: impl Future<Output = Result<T, fred::error::Error>>,
) -> Result<T, (Error, &'static str)> {
    match tokio::time::timeout(deadline.remaining(), command).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err((
            Error::QuoteStore(error.to_string()),
            feature_store::Error::redis_error_type(&error),
        )),
        Err(_) => Err((Error::DeadlineExceeded(QUOTE_STORE), "timeout")),
    }
}

/// RecordOutcome's script.
const RECORD_OUTCOME: Command = Command {
    command: "EVAL",
    statement: Some("EVAL record_outcome"),
};

/// The quote store, as errors name it.
pub const QUOTE_STORE: &str = "quote store";

fn same_outcome(quote_id: &str, existing: Outcome, new: Outcome) -> Result<(), Error> {
    if existing == new {
        Ok(())
    } else {
        Err(Error::OutcomeConflict(quote_id.to_owned()))
    }
}

fn parse<T: serde::de::DeserializeOwned>(field: Option<&Option<String>>) -> Result<T, Error> {
    let text = field
        .and_then(Option::as_deref)
        .ok_or_else(|| Error::QuoteStore("short script reply".into()))?;
    serde_json::from_str(text).map_err(|e| Error::QuoteStore(format!("corrupt quote record: {e}")))
}

fn key(quote_id: &str) -> String {
    format!("quote:{quote_id}")
}

/// Hash-tagged with the quote's key, so the two share a cluster slot.
fn outcome_key(quote_id: &str) -> String {
    format!("{{quote:{quote_id}}}:outcome")
}

/// A Redis expiry in whole seconds, at least one.
pub(crate) fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs().max(1)).unwrap_or(i64::MAX)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retried outcome is compared with the one read back from the store's JSON, so the read must give
    /// back the very number written; 3.8697382367037685 is one a fast, inexact parse returns one ULP off.
    #[test]
    fn an_outcome_read_back_equals_the_one_written() {
        let outcome = Outcome {
            booked: true,
            revenue: 3.869_738_236_703_768_5,
            satisfaction: Some(4.0),
            price_complaint: false,
        };
        let json = serde_json::to_string(&outcome).expect("JSON");
        let back: Outcome = parse(Some(&Some(json))).expect("parse");
        assert_eq!(
            same_outcome("q", back, outcome).map_err(|e| e.to_string()),
            Ok(())
        );
    }
}
