//! The change feed over Redis: one stream per namespace, written by the
//! same script as each change (see [`super::scripts`]), read by each
//! watcher with `XREAD BLOCK` on a connection of its own.
//!
//! Why a connection per watcher: a blocking read holds its connection
//! until it answers; on the shared multiplexed connection it would hold
//! up every request queued behind it. The number of watchers per PyKV
//! node is bounded ([`MAX_WATCHERS`]), and so are these connections.
//!
//! Each poll first keeps the feed alive (the marker and the stream live
//! [`LINGER`] past the last watcher's call) and reaps a few keys past
//! their deadline, so `expire` events come within about a second of the
//! deadline while the namespace is watched, however quiet it is.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::layout::{NamespaceKeys, suffix};
use super::scripts::{REAP_SCRIPT, WATCH_OPEN_SCRIPT};
use super::target::RedisTarget;
use super::{RedisBackend, invocation, within};
use crate::backend::BackendError;
use crate::feed::{Change, ChangeKind, EventId, FeedItem, LINGER};

/// Watchers one PyKV node holds over Redis at once, each with its own
/// connection; past it, `GET /watch` answers 503.
pub const MAX_WATCHERS: usize = 256;
/// How long one `XREAD` blocks, and so how often a watcher keeps its feed
/// alive and reaps expired keys.
const TICK: Duration = Duration::from_secs(1);
/// Events read at a time.
const BATCH: usize = 256;
/// Expired keys reaped per tick.
const REAP_MOST: usize = 100;

/// A watcher's connection of its own.
enum Dedicated {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Dedicated {
    /// Opens one, answering within `patience` plus the blocking time.
    async fn open(target: &RedisTarget, timeout: Duration) -> redis::RedisResult<Dedicated> {
        let patient = timeout + TICK;
        match target {
            RedisTarget::Single { url } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(patient));
                let client = redis::Client::open(url.as_str())?;
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Dedicated::Single(connection))
            }
            RedisTarget::Cluster { seeds } => {
                let client = ClusterClientBuilder::new(seeds.to_vec())
                    .retries(1)
                    .connection_timeout(timeout)
                    .response_timeout(patient)
                    .build()?;
                Ok(Dedicated::Cluster(client.get_async_connection().await?))
            }
        }
    }

    async fn query(&mut self, command: &redis::Cmd) -> redis::RedisResult<Value> {
        match self {
            Dedicated::Single(c) => command.query_async(c).await,
            Dedicated::Cluster(c) => command.query_async(c).await,
        }
    }
}

/// One watcher of a namespace's stream.
pub struct RedisWatcher {
    backend: Arc<WatchContext>,
    keys: NamespaceKeys,
    feed_key: String,
    connection: Dedicated,
    /// The feed's epoch, and the last id handed out (or skipped).
    done: EventId,
    first: Option<FeedItem>,
    last_tick: Instant,
    _permit: OwnedSemaphorePermit,
}

/// What a watcher needs of its backend, shared.
struct WatchContext {
    connection: Arc<super::shared::SharedConnection>,
    patience: super::Patience,
    /// Events the feed keeps, should this watcher create it again.
    retain: usize,
}

/// The feed as `WATCH_OPEN` found it.
struct Opened {
    epoch: u64,
    first: Option<EventId>,
    last: Option<EventId>,
}

impl RedisBackend {
    /// Opens a watcher of `namespace` from `from` (see
    /// [`crate::backend::KvBackend::watch`]).
    pub(super) async fn open_watcher(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<RedisWatcher, BackendError> {
        let keys = self.namespace(namespace)?;
        let permit =
            (self.watchers.clone())
                .try_acquire_owned()
                .map_err(|_| BackendError::Unavailable {
                    detail: format!(
                        "this node already serves {MAX_WATCHERS} watchers, each with its own Redis \
                     connection; retry later or watch through another node"
                    ),
                })?;
        let context = Arc::new(WatchContext {
            connection: self.connection.clone(),
            patience: self.patience,
            retain: self
                .feed_retention
                .load(std::sync::atomic::Ordering::Relaxed),
        });
        let opened = open_feed(&context, &keys, context.retain, true)
            .await?
            .expect("created when missing");
        let connection = within(
            self.patience,
            Dedicated::open(&self.target, self.patience.timeout),
        )
        .await?;
        let last = opened.last.unwrap_or(EventId {
            epoch: opened.epoch,
            seq: 0,
        });
        let resumable = |id: &EventId| {
            id.epoch == opened.epoch
                && id.seq <= last.seq
                && opened.first.is_some_and(|first| id.seq + 1 >= first.seq)
        };
        let (done, first) = match from.map(str::parse::<EventId>) {
            None => (last, FeedItem::Ready { at: last }),
            Some(Ok(id)) if resumable(&id) => (id, FeedItem::Ready { at: id }),
            Some(_) => (last, FeedItem::Reset { at: last }),
        };
        Ok(RedisWatcher {
            feed_key: keys.key(suffix::FEED),
            backend: context,
            keys,
            connection,
            done,
            first: Some(first),
            last_tick: Instant::now(),
            _permit: permit,
        })
    }
}

/// Runs `WATCH_OPEN`: keeps the feed alive, creating it when `create`;
/// `None` when it does not exist and was not to be created.
async fn open_feed(
    context: &WatchContext,
    keys: &NamespaceKeys,
    retain: usize,
    create: bool,
) -> Result<Option<Opened>, BackendError> {
    let mut call = invocation(&WATCH_OPEN_SCRIPT, keys);
    call.arg(LINGER.as_millis() as u64)
        .arg(retain)
        .arg(if create { "1" } else { "0" });
    let mut connection = context.connection.get();
    let answer: Vec<String> = within(context.patience, call.invoke_async(&mut connection)).await?;
    let [epoch, first, last] = answer.as_slice() else {
        return Ok(None);
    };
    Ok(Some(Opened {
        epoch: epoch.parse().unwrap_or(0),
        first: first.parse().ok(),
        last: last.parse().ok(),
    }))
}

impl RedisWatcher {
    /// The next items, blocking up to about `wait` (at most [`TICK`]).
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<FeedItem>, BackendError> {
        if let Some(first) = self.first.take() {
            return Ok(vec![first]);
        }
        if self.last_tick.elapsed() >= TICK {
            self.last_tick = Instant::now();
            if let Some(reset) = self.tick().await? {
                return Ok(vec![reset]);
            }
        }
        // Never 0, which XREAD reads as "block forever".
        let block = wait.clamp(Duration::from_millis(1), TICK);
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.feed_key)
            .arg(self.done.to_string());
        let patience = super::Patience {
            timeout: self.backend.patience.timeout + block,
            ..self.backend.patience
        };
        let answer = within(patience, self.connection.query(&command)).await?;
        Ok(self.items_of(&answer))
    }

    /// Keeps the feed alive and reaps expired keys; a `Reset` when the
    /// feed was gone (no watcher kept it alive) or is another one now.
    async fn tick(&mut self) -> Result<Option<FeedItem>, BackendError> {
        let context = self.backend.clone();
        let mut reap = invocation(&REAP_SCRIPT, &self.keys);
        reap.arg(REAP_MOST);
        let mut connection = context.connection.get();
        within(context.patience, reap.invoke_async::<i64>(&mut connection)).await?;
        let opened = open_feed(&context, &self.keys, 0, false).await?;
        match opened {
            Some(opened) if opened.epoch == self.done.epoch => Ok(None),
            _ => {
                let opened = open_feed(&context, &self.keys, context.retain, true)
                    .await?
                    .expect("created when missing");
                let at = opened.last.unwrap_or(EventId {
                    epoch: opened.epoch,
                    seq: 0,
                });
                self.done = at;
                Ok(Some(FeedItem::Reset { at }))
            }
        }
    }

    /// The events of an `XREAD` answer; a `Reset` in place of any that
    /// does not follow the last one handed out (trimmed events between).
    fn items_of(&mut self, answer: &Value) -> Vec<FeedItem> {
        let mut items = Vec::new();
        for (id, fields) in entries_of(answer) {
            let Ok(id) = id.parse::<EventId>() else {
                continue;
            };
            if id.epoch != self.done.epoch || id.seq != self.done.seq + 1 {
                items.push(FeedItem::Reset { at: id });
                self.done = id;
                continue;
            }
            self.done = id;
            if let Some(change) = change_of(&fields) {
                items.push(FeedItem::Event {
                    id,
                    change: Arc::new(change),
                });
            }
        }
        items
    }
}

/// `(id, fields)` of each entry of an `XREAD` answer (one stream).
fn entries_of(answer: &Value) -> Vec<(String, Vec<(String, String)>)> {
    // RESP2: [[stream, [[id, [f, v, ...]], ...]]]; RESP3 may be a map.
    let streams: Vec<&Value> = match answer {
        Value::Array(streams) => streams.iter().collect(),
        Value::Map(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for stream in streams {
        let entries = match stream {
            Value::Array(pair) if pair.len() == 2 => &pair[1],
            other => other,
        };
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(parts) = entry else { continue };
            let (Some(id), Some(Value::Array(flat))) = (parts.first().and_then(text), parts.get(1))
            else {
                continue;
            };
            let texts: Vec<String> = flat.iter().filter_map(text).collect();
            let fields = (texts.chunks(2))
                .filter(|pair| pair.len() == 2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            out.push((id, fields));
        }
    }
    out
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// The change an entry's fields describe; `None` for the feed's own
/// `open` entry.
fn change_of(fields: &[(String, String)]) -> Option<Change> {
    let field = |name: &str| {
        (fields.iter())
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
    };
    let kind = ChangeKind::parse(field("op")?)?;
    let key = field("key").unwrap_or("");
    Some(match kind {
        ChangeKind::Set => Change::set(
            key,
            field("value").unwrap_or("null"),
            field("exp").and_then(|at| at.parse().ok()),
        ),
        ChangeKind::Clear => Change::clear(),
        kind => Change::removed(kind, key),
    })
}
