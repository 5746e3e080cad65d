//! Predictions kept for their labels: every prediction the models answer gets an id (UUIDv7) and a
//! record — model, version, arm and the output a label is compared with — kept for
//! `PREDICTION_TTL_SECS` in the quote store (Redis, or the embedded store), so a label that arrives
//! days later (RecordLabel) joins the prediction it is the ground truth of.
//!
//! In Redis a record is a field of a hash, `predictions:{<bucket>.<shard>}`: the bucket is the
//! [`BUCKET`] in which the id was minted (a UUIDv7 carries its time), the shard one of [`SHARDS`]
//! picked by the id's random tail, so the id alone names its hash. The hash expires the TTL after its
//! bucket ends, so a record lives at least the TTL and at most [`BUCKET`] longer. Writing many records
//! is then one command per hash instead of one per record, and the Redis client's work is per command:
//! the writer costs the gateway far less, and Redis holds one key per hash instead of one per record.
//! Records written by earlier releases as strings, `prediction:{<id>}`, still take their labels until
//! they expire.
//!
//! Records are written off the response path: the answer never waits for the store. With Redis, a
//! writer task takes them from a bounded queue, gathers what arrives within [`WRITE_LINGER`], and
//! writes each hash's share with one script call (the fields and the expiry together); a full queue or
//! a failed write drops the record and counts it (`model.prediction_records.dropped`), and a label for
//! it is then NOT_FOUND. When serving ends, [`PredictionStore::finish`] writes what is still queued
//! before the gateway exits, so an answered prediction keeps its record. A label is recorded once
//! (`HSETNX` of the field `<id>:label` beside the record, in one script): the same label again is a
//! duplicate, a different one a conflict.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use feature_store::RedisConnection;
use fred::interfaces::LuaInterface as _;
use moka::ops::compute::Op;
use serde::{Deserialize, Serialize};
use server_kit::Deadline;
use telemetry::catalog::MODEL_PREDICTION_RECORDS_DROPPED;
use telemetry::{Metrics, Tag};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::quotes::{Command, connected, now_ms, traced};

/// What a label is joined to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictionRecord {
    pub model: String,
    pub version: String,
    pub variant: String,
    /// The output a label is compared with: the risk score, or the surge factor.
    pub output: f64,
    pub created_at_ms: u64,
}

/// The ground truth of one prediction.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A customer-risk prediction's: whether the customer turned out bad (default, chargeback, abusive
    /// cancellation), and which outcome it was.
    Customer { bad: bool, outcome: i32 },
    /// A demand-surge prediction's: the surge factor the realised demand called for.
    Surge { factor: f64 },
}

impl Label {
    /// The value the model's output is scored against: 1 or 0 for a customer, the factor for a zone.
    pub fn truth(&self) -> f64 {
        match *self {
            Self::Customer { bad, .. } => f64::from(u8::from(bad)),
            Self::Surge { factor } => factor,
        }
    }
}

/// What recording a label did.
#[derive(Debug, Clone, PartialEq)]
pub enum Labelled {
    /// The first label of the prediction, which it returns.
    New(PredictionRecord),
    /// The same label was already recorded (a retry): nothing changed.
    Duplicate(PredictionRecord),
}

/// Records waiting for the Redis writer at most; past it a record is dropped (and counted) rather than
/// hold memory or an answer.
pub const WRITE_QUEUE: usize = 10_000;
/// Records sent together by the writer.
const WRITE_BATCH: usize = 256;
/// How long the writer gathers records after the first of a batch, so that each hash takes many at once.
/// A record reaches Redis this much later (a label sent sooner waits for it: `RECORD_WRITE_GRACE`).
pub const WRITE_LINGER: Duration = Duration::from_millis(10);
/// The span of time whose predictions share a hash (per shard).
pub const BUCKET: Duration = Duration::from_secs(10);
/// Hashes per bucket: spreads a bucket's writes over cluster slots and keeps each hash small.
pub const SHARDS: u8 = 4;
/// The most predictions the embedded store holds; the least recently used are evicted past it.
pub const MEMORY_CAPACITY: u64 = 500_000;

/// Writes records into their hash and sets when it expires. KEYS: the hash; ARGV: the expiry (Unix
/// seconds), then id and record (JSON) pairs.
const WRITE_SCRIPT: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIREAT', KEYS[1], ARGV[1])";

/// RecordLabel's script on a record's hash.
const LABEL: Command = Command {
    command: "EVAL",
    statement: Some("EVAL label"),
};

/// RecordLabel's script on a record an earlier release kept as a string key.
const LABEL_STRING_RECORD: Command = Command {
    command: "EVAL",
    statement: Some("EVAL label_string_record"),
};

/// Returns {0} for an unknown prediction, {1, record} for a new label, {2, record, existing} when a label
/// was already there, {3, record} when the label is for another model's predictions. KEYS: the record's
/// hash; ARGV: the id, the label (JSON), the model. The label lives in the hash, as long as the record.
const LABEL_SCRIPT: &str = r"
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return {0} end
if cjson.decode(record).model ~= ARGV[3] then return {3, record} end
local label = ARGV[1] .. ':label'
if redis.call('HSETNX', KEYS[1], label, ARGV[2]) == 1 then return {1, record} end
return {2, record, redis.call('HGET', KEYS[1], label)}";

/// [`LABEL_SCRIPT`] for a record an earlier release wrote as a string. KEYS: the record, its label;
/// ARGV: the label (JSON), the model.
const STRING_LABEL_SCRIPT: &str = r"
local record = redis.call('GET', KEYS[1])
if not record then return {0} end
if cjson.decode(record).model ~= ARGV[2] then return {3, record} end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then ttl = 1 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ttl) then return {1, record} end
return {2, record, redis.call('GET', KEYS[2])}";

pub enum PredictionStore {
    Redis {
        connection: Arc<RedisConnection>,
        queue: mpsc::Sender<(String, PredictionRecord)>,
        metrics: Metrics,
        writer: Writer,
    },
    Memory {
        records: moka::sync::Cache<String, MemoryEntry>,
    },
}

/// The Redis writer task, and the signal that tells it to write what is queued and stop.
pub struct Writer {
    stop: Arc<Notify>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Clone)]
pub struct MemoryEntry {
    record: Arc<PredictionRecord>,
    label: Option<Label>,
}

impl PredictionStore {
    /// Records in Redis for `ttl`, written by a task of their own (spawned here: call from the runtime).
    pub fn redis(connection: Arc<RedisConnection>, ttl: Duration, metrics: Metrics) -> Self {
        let (queue, pending) = mpsc::channel(WRITE_QUEUE);
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(write(
            Arc::clone(&connection),
            pending,
            ttl,
            metrics.clone(),
            Arc::clone(&stop),
        ));
        Self::Redis {
            connection,
            queue,
            metrics,
            writer: Writer {
                stop,
                task: std::sync::Mutex::new(Some(task)),
            },
        }
    }

    /// Writes the records still queued and stops the writer, waiting at most `within`; records kept
    /// after it are dropped (and counted). Call once serving has ended. The embedded store has nothing
    /// to do.
    pub async fn finish(&self, within: Duration) {
        let Self::Redis { writer, .. } = self else {
            return;
        };
        let task = writer.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(task) = task else { return };
        writer.stop.notify_one();
        if tokio::time::timeout(within, task).await.is_err() {
            tracing::warn!(
                within_ms = within.as_millis() as u64,
                "prediction records still being written when the gateway stopped: labels for them will be NOT_FOUND"
            );
        }
    }

    /// Records in memory for `ttl`, lost on restart.
    pub fn memory(ttl: Duration) -> Self {
        let records = moka::sync::Cache::builder()
            .max_capacity(MEMORY_CAPACITY)
            .time_to_live(ttl)
            .build();
        Self::Memory { records }
    }

    /// Keeps `record` under `id`, without waiting: see the module docs for what may drop it.
    pub fn keep(&self, id: String, record: PredictionRecord) {
        match self {
            Self::Redis { queue, metrics, .. } => {
                if let Err(error) = queue.try_send((id, record)) {
                    let (_, record) = error.into_inner();
                    metrics.incr(&MODEL_PREDICTION_RECORDS_DROPPED, &[Tag::model(&record.model)]);
                }
            }
            Self::Memory { records } => {
                let entry = MemoryEntry {
                    record: Arc::new(record),
                    label: None,
                };
                records.insert(id, entry);
            }
        }
    }

    /// Records `label` for prediction `id` of `model` (the model this kind of label is the truth of),
    /// once: see [`Labelled`]. A prediction of another model refuses it.
    pub async fn label(
        &self,
        id: &str,
        label: Label,
        model: &str,
        deadline: Deadline,
    ) -> Result<Labelled, Error> {
        match self {
            Self::Redis { connection, .. } => {
                let json = serde_json::to_string(&label).map_err(|e| Error::QuoteStore(e.to_string()))?;
                let client = connected(connection)?;
                let mut reply: Vec<Option<String>> = Vec::new();
                if let Some((hash, _)) = hash_of(id) {
                    reply = traced(
                        deadline,
                        LABEL,
                        client.eval(
                            LABEL_SCRIPT,
                            vec![hash],
                            vec![id.to_owned(), json.clone(), model.to_owned()],
                        ),
                    )
                    .await?;
                }
                // Not in a hash (or an id no hash holds): it may be a record an earlier release wrote.
                if reply.first().is_none_or(|status| status.as_deref() == Some("0")) {
                    reply = traced(
                        deadline,
                        LABEL_STRING_RECORD,
                        client.eval(
                            STRING_LABEL_SCRIPT,
                            vec![string_record_key(id), string_label_key(id)],
                            vec![json, model.to_owned()],
                        ),
                    )
                    .await?;
                }
                let status = reply.first().cloned().flatten();
                let field = |i: usize| -> Result<String, Error> {
                    reply
                        .get(i)
                        .cloned()
                        .flatten()
                        .ok_or_else(|| Error::QuoteStore("short label script reply".into()))
                };
                let record = || -> Result<PredictionRecord, Error> {
                    serde_json::from_str(&field(1)?)
                        .map_err(|e| Error::QuoteStore(format!("corrupt prediction record: {e}")))
                };
                match status.as_deref() {
                    Some("1") => Ok(Labelled::New(record()?)),
                    Some("2") => {
                        let existing: Label = serde_json::from_str(&field(2)?)
                            .map_err(|e| Error::QuoteStore(format!("corrupt label: {e}")))?;
                        same_label(id, existing, label)?;
                        Ok(Labelled::Duplicate(record()?))
                    }
                    Some("3") => Err(wrong_model(id, &record()?, label)),
                    _ => Err(Error::PredictionNotFound(id.to_owned())),
                }
            }
            Self::Memory { records } => {
                // One compute per id: concurrent labels for one prediction run one after the other.
                let mut labelled = None;
                records.entry_by_ref(id).and_compute_with(|current| {
                    let Some(current) = current else { return Op::Nop };
                    let entry = current.into_value();
                    let record = PredictionRecord::clone(&entry.record);
                    if record.model != model {
                        labelled = Some(Err(wrong_model(id, &record, label)));
                        return Op::Nop;
                    }
                    match entry.label {
                        Some(existing) => {
                            labelled =
                                Some(same_label(id, existing, label).map(|()| Labelled::Duplicate(record)));
                            Op::Nop
                        }
                        None => {
                            labelled = Some(Ok(Labelled::New(record)));
                            Op::Put(MemoryEntry {
                                label: Some(label),
                                ..entry
                            })
                        }
                    }
                });
                labelled.unwrap_or_else(|| Err(Error::PredictionNotFound(id.to_owned())))
            }
        }
    }
}

/// The Redis writer: batches of records gathered for [`WRITE_LINGER`], sent one script call per hash,
/// until the store is dropped or `stop` is notified; then it sends what is queued and returns.
async fn write(
    connection: Arc<RedisConnection>,
    mut pending: mpsc::Receiver<(String, PredictionRecord)>,
    ttl: Duration,
    metrics: Metrics,
    stop: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut stopping = false;
    loop {
        if !stopping {
            tokio::select! {
                received = pending.recv_many(&mut batch, WRITE_BATCH) => if received == 0 { return },
                () = stop.notified() => stopping = true,
            }
        }
        if stopping {
            // Nothing more is accepted; what is buffered is still received.
            pending.close();
            if pending.recv_many(&mut batch, WRITE_BATCH).await == 0 {
                return;
            }
        } else if batch.len() < WRITE_BATCH {
            tokio::select! {
                () = tokio::time::sleep(WRITE_LINGER) => {}
                () = stop.notified() => stopping = true,
            }
            while batch.len() < WRITE_BATCH {
                let Ok(record) = pending.try_recv() else { break };
                batch.push(record);
            }
        }
        send(&connection, &mut batch, ttl, &metrics).await;
    }
}

/// Sends `batch` (emptying it): one script call per hash, concurrently on one client.
async fn send(
    connection: &RedisConnection,
    batch: &mut Vec<(String, PredictionRecord)>,
    ttl: Duration,
    metrics: &Metrics,
) {
    static WRITE_FAILED: telemetry::logs::Throttle = telemetry::logs::Throttle::new(Duration::from_secs(10));
    let dropped = |error: &dyn std::fmt::Display, record: &PredictionRecord| {
        metrics.incr(&MODEL_PREDICTION_RECORDS_DROPPED, &[Tag::model(&record.model)]);
        if let Some(held_back) = WRITE_FAILED.ready() {
            tracing::warn!(%error, held_back, "prediction record not stored: labels for it will be NOT_FOUND");
        }
    };
    let client = match connection.client() {
        Ok(client) => client.clone(),
        Err(error) => {
            for (_, record) in batch.drain(..) {
                dropped(&error, &record);
            }
            return;
        }
    };
    // Each hash's share: its expiry, then the id and record pairs the script takes, and the records.
    let mut hashes: BTreeMap<String, (Vec<String>, Vec<PredictionRecord>)> = BTreeMap::new();
    for (id, record) in batch.drain(..) {
        let Some((hash, bucket_end)) = hash_of(&id) else {
            dropped(&format!("prediction id {id} is not a UUIDv7"), &record);
            continue;
        };
        let json = match serde_json::to_string(&record) {
            Ok(json) => json,
            Err(error) => {
                dropped(&error, &record);
                continue;
            }
        };
        let (args, records) = hashes.entry(hash).or_insert_with(|| {
            let expires = (bucket_end + ttl).as_secs().to_string();
            (vec![expires], Vec::new())
        });
        args.push(id);
        args.push(json);
        records.push(record);
    }
    let writes = hashes.into_iter().map(|(hash, (args, records))| {
        let client = client.clone();
        async move {
            let written: Result<(), _> = client.eval(WRITE_SCRIPT, vec![hash], args).await;
            (written, records)
        }
    });
    for (written, records) in futures::future::join_all(writes).await {
        if let Err(error) = written {
            for record in &records {
                dropped(&error, record);
            }
        }
    }
}

fn wrong_model(id: &str, record: &PredictionRecord, label: Label) -> Error {
    let given = match label {
        Label::Customer { .. } => "customer_outcome",
        Label::Surge { .. } => "realised_surge_factor",
    };
    Error::invalid(
        "label",
        format!(
            "prediction {id} is a {} prediction: a {given} label is not its truth",
            record.model
        ),
    )
}

fn same_label(id: &str, existing: Label, new: Label) -> Result<(), Error> {
    if existing == new {
        Ok(())
    } else {
        Err(Error::LabelConflict(id.to_owned()))
    }
}

/// The hash that holds prediction `id`'s record and label, and when the id's bucket ends (since the
/// Unix epoch); `None` for an id that is not a UUIDv7 (no id the gateway mints).
pub fn hash_of(id: &str) -> Option<(String, Duration)> {
    let (uuid, minted) = minted(id)?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let minted = minted.as_millis();
    let bucket = minted / BUCKET.as_millis();
    let shard = uuid.as_bytes()[15] % SHARDS;
    let bucket_end = Duration::from_millis(u64::try_from((bucket + 1) * BUCKET.as_millis()).ok()?);
    Some((format!("predictions:{{{bucket}.{shard}}}"), bucket_end))
}

/// The UUID `id` and when it was minted (since the Unix epoch); `None` for an id that is not a UUID or
/// carries no time (only v1, v6 and v7 do).
pub(crate) fn minted(id: &str) -> Option<(uuid::Uuid, Duration)> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some((uuid, Duration::new(secs, nanos)))
}

/// Where an earlier release kept prediction `id`'s record: a string key of its own. `{id}` is a hash
/// tag: a record and its label share a cluster slot, as the script needs.
fn string_record_key(id: &str) -> String {
    format!("prediction:{{{id}}}")
}

fn string_label_key(id: &str) -> String {
    format!("prediction:{{{id}}}:label")
}

/// A new prediction's record, created now.
pub fn record(model: &str, version: &str, variant: &str, output: f64) -> PredictionRecord {
    PredictionRecord {
        model: model.to_owned(),
        version: version.to_owned(),
        variant: variant.to_owned(),
        output,
        created_at_ms: now_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_label_joins_its_prediction_once() {
        let store = PredictionStore::memory(Duration::from_secs(60));
        store.keep("p1".into(), record("customer_risk", "1", "control", 0.8));
        let bad = Label::Customer {
            bad: true,
            outcome: 3,
        };
        let first = store
            .label("p1", bad, "customer_risk", deadline())
            .await
            .expect("labelled");
        assert!(matches!(&first, Labelled::New(r) if r.output == 0.8 && r.version == "1"));
        let again = store
            .label("p1", bad, "customer_risk", deadline())
            .await
            .expect("a retry");
        assert!(matches!(again, Labelled::Duplicate(_)));
        let other = Label::Customer {
            bad: false,
            outcome: 1,
        };
        assert!(matches!(
            store.label("p1", other, "customer_risk", deadline()).await,
            Err(Error::LabelConflict(_))
        ));
        assert!(matches!(
            store.label("nope", bad, "customer_risk", deadline()).await,
            Err(Error::PredictionNotFound(_))
        ));
        let surge = Label::Surge { factor: 1.2 };
        let wrong = store.label("p1", surge, "demand_surge", deadline()).await;
        assert!(
            matches!(&wrong, Err(Error::InvalidArgument { field, .. }) if field == "label"),
            "{wrong:?}"
        );
    }

    #[test]
    fn truth_of_a_label() {
        assert_eq!(
            Label::Customer {
                bad: true,
                outcome: 2
            }
            .truth(),
            1.0
        );
        assert_eq!(
            Label::Customer {
                bad: false,
                outcome: 1
            }
            .truth(),
            0.0
        );
        assert_eq!(Label::Surge { factor: 1.7 }.truth(), 1.7);
        assert_eq!(string_record_key("a"), "prediction:{a}");
        assert_eq!(string_label_key("a"), "prediction:{a}:label");
    }

    #[test]
    fn an_id_names_the_hash_of_its_bucket_and_shard() {
        // Minted 2026-01-01T00:00:05.123Z: the bucket of 10 s that starts at 00:00:00.
        let id = "019b76da-bc03-7000-8000-000000000006";
        let (hash, bucket_end) = hash_of(id).expect("a UUIDv7");
        let bucket = 1_767_225_600_000_u64 / 10_000;
        assert_eq!(
            hash,
            format!("predictions:{{{bucket}.2}}"),
            "shard: last byte 6 mod 4"
        );
        assert_eq!(bucket_end, Duration::from_secs(1_767_225_610));
        let later = "019b76da-bc03-7000-8000-000000000007";
        assert_eq!(
            hash_of(later).expect("v7").0,
            format!("predictions:{{{bucket}.3}}")
        );
        assert_eq!(hash_of("5f0d7c53-2a3e-4b8e-9a63-0c4f6e2d9b11"), None, "a UUIDv4");
        assert_eq!(hash_of("not-an-id"), None);
    }
}
