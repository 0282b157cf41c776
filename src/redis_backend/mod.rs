//! The store over Redis: one Redis server (`--backend redis://HOST:PORT`)
//! or a Redis Cluster (`--backend redis-cluster://HOST:PORT,...`), behind
//! the same [`KvBackend`] interface as the embedded engine, so that PyKV
//! nodes hold no data of their own and any number of them can serve the
//! same tenants.
//!
//! # Why this design
//!
//! - **One slot per namespace.** Every Redis key of a namespace carries the
//!   hash tag of the namespace ([`layout`]), so each operation is one Lua
//!   script on one slot ([`scripts`]): atomic, one round trip, and legal
//!   in Redis Cluster. The price is that one namespace cannot outgrow one
//!   shard; a namespace could later be split by giving its keys several
//!   tags and listing them with a merge, which nothing here prevents.
//! - **Data, index and deadlines apart.** Values live in a hash (stored as
//!   the exact JSON text), the keys again in a sorted set whose scores are
//!   all 0, so that `ZRANGEBYLEX` lists them in byte order from any cursor
//!   without a scan: a key present for the whole listing is met exactly
//!   once, whatever is written meanwhile. Deadlines live in a third sorted
//!   set, scored by time.
//! - **Expiry without Redis TTLs.** A Redis TTL would drop the value but
//!   leave the index and the counters wrong. Here a key past its deadline
//!   is filtered out of every read, and counted out of every figure by
//!   `ZCOUNT` over the deadlines (O(log n)): live keys = `ZCARD` of the
//!   index minus the keys due. Writes reap a few due keys each.
//! - **Clearing in O(1).** A clear `RENAME`s the namespace's three
//!   structures aside (O(1)) and queues them; a background task
//!   ([`reclaim`]) deletes them in bounded batches, so no Redis shard is
//!   blocked for a time that grows with the namespace. A node that stops
//!   midway leaves the rest queued: the next clear of the namespace
//!   carries on.
//! - **Redis's clock.** Deadlines are computed by the scripts from `TIME`,
//!   so PyKV nodes with skewed clocks agree on what has expired.
//! - **Bounded patience.** Every call has a deadline (`--backend-timeout`)
//!   and a few quick retries ([`connection`]); a Redis out of reach is a
//!   503 with `Retry-After` ([`errors`]), never a hang or a 500. After a
//!   timeout a cluster connection is renewed in the background
//!   ([`shared`]), so the replica that replaced a hung master is found.
//! - **Quotas in Redis.** `PUT /quota` keeps a namespace's quota in its
//!   slot, where every node reads it and a restart finds it; the write
//!   scripts check it and evict (exact LRU, by a sorted set of last
//!   accesses) in the same atomic step as the write ([`scripts`]), so
//!   writers on any number of nodes never take a namespace past it.
//!   Bounds on the whole store are Redis's `maxmemory`.
//! - **Eviction stays with PyKV.** Redis must not evict PyKV's indexes or
//!   counters, which have no TTL: the start refuses a `maxmemory-policy`
//!   other than `noeviction` or `volatile-*`. When Redis is full its OOM
//!   answer is a 507.
//!
//! - **A change feed per namespace.** Each script appends its change to
//!   the namespace's stream while the namespace is watched ([`watch`]).
//!
//! - **Replicas, on request.** With `--redis-wait-replicas N` each write's
//!   script is followed by `WAIT N` in the same round trip
//!   ([`replicated`]); a write fewer replicas confirm in time is applied
//!   but answered 503 ([`BackendError::NotReplicated`]), through its
//!   [`Commit`].
//!
//! Not here: compaction (Redis persists by itself).

mod connection;
mod errors;
mod layout;
mod ops;
mod reclaim;
mod replicated;
mod scripts;
mod shared;
mod target;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use redis::{RedisResult, Script, ScriptInvocation};

pub use connection::Patience;
pub use target::RedisTarget;
pub use watch::{MAX_WATCHERS, RedisWatcher};

use crate::backend::{BackendError, Commit};
use crate::store::{EvictionPolicy, Limit, Limits, StoreError, validate_namespace};
use layout::{NamespaceKeys, suffix};
use replicated::Replicated;
use shared::SharedConnection;

const NAME: &str = "redis";

/// How a PyKV node uses Redis: from `pykv serve`'s flags.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `--redis-prefix`: the first part of every Redis key.
    pub prefix: String,
    pub patience: Patience,
    pub max_key_bytes: usize,
    /// `--redis-wait-replicas`.
    pub wait_replicas: u32,
    /// The quota file's quotas and `--eviction`; no global limit (Redis's
    /// `maxmemory` is the store's).
    pub limits: Limits,
}

/// A store in Redis, shared by every PyKV node pointed at it.
pub struct RedisBackend {
    connection: Arc<SharedConnection>,
    /// `--redis-prefix`: the first part of every Redis key.
    prefix: String,
    patience: Patience,
    max_key_bytes: usize,
    /// Quotas of the node's quota file, under those `PUT /quota` keeps in
    /// Redis, and the eviction policy.
    limits: Limits,
    started: Instant,
    /// Where to open a watcher's own connection.
    target: RedisTarget,
    /// Permits for watchers, each holding a connection ([`MAX_WATCHERS`]).
    watchers: Arc<tokio::sync::Semaphore>,
    /// Events a namespace's feed keeps, about (`--watch-retention`).
    feed_retention: AtomicUsize,
    /// `--redis-wait-replicas`, when above 0.
    wait: Option<WaitReplicas>,
}

/// Writes wait for this many replicas, on a connection of their own
/// (see [`replicated`] for why).
struct WaitReplicas {
    replicas: u32,
    connection: Arc<SharedConnection>,
}

impl RedisBackend {
    /// Connects and checks the store (see [`connection::open`]).
    pub async fn open(target: &RedisTarget, options: RedisOptions) -> anyhow::Result<RedisBackend> {
        let patience = options.patience;
        let (connection, client) = connection::open(target, patience).await?;
        let wait = match options.wait_replicas {
            0 => None,
            replicas => {
                let (connection, client) = connection::connect(target, patience).await?;
                let connection = Arc::new(SharedConnection::new(connection, client, patience));
                Some(WaitReplicas {
                    replicas,
                    connection,
                })
            }
        };
        Ok(RedisBackend {
            connection: Arc::new(SharedConnection::new(connection, client, patience)),
            prefix: options.prefix,
            patience,
            max_key_bytes: options.max_key_bytes,
            limits: options.limits,
            started: Instant::now(),
            target: target.clone(),
            watchers: Arc::new(tokio::sync::Semaphore::new(MAX_WATCHERS)),
            feed_retention: AtomicUsize::new(crate::feed::DEFAULT_RETAIN_EVENTS),
            wait,
        })
    }

    /// How many events a namespace's feed keeps, about: `XADD`'s `MAXLEN
    /// ~` trims whole nodes of the stream, so at least this many.
    pub fn set_feed_retention(&self, events: usize) {
        self.feed_retention.store(events, Ordering::Relaxed);
    }

    /// The keys of `namespace`, once its name is checked.
    fn namespace(&self, namespace: Option<&str>) -> Result<NamespaceKeys, StoreError> {
        namespace.map_or(Ok(()), validate_namespace)?;
        Ok(NamespaceKeys::new(&self.prefix, namespace))
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(StoreError::KeyTooLong {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Runs one call to Redis within the deadline; after a timeout, has
    /// a cluster's layout looked up afresh ([`shared`]).
    async fn call<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, BackendError> {
        self.noting_timeouts(within(self.patience, call).await)
    }

    /// `result`, after starting a renewal of the connection if it is a
    /// timeout.
    fn noting_timeouts<T>(&self, result: Result<T, BackendError>) -> Result<T, BackendError> {
        if let Err(BackendError::TimedOut { .. }) = result {
            self.connection.renew();
            if let Some(wait) = &self.wait {
                wait.connection.renew();
            }
        }
        result
    }

    /// Runs `invocation` (a script given the namespace's keys).
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut connection = self.connection.get();
        self.call(invocation.invoke_async(&mut connection)).await
    }

    /// Runs `invocation`, a script that writes. With
    /// `--redis-wait-replicas N` it is followed by `WAIT N` in the same
    /// round trip; the [`Commit`] then fails when fewer replicas
    /// confirmed the write within [`RedisBackend::wait_budget`]: the write
    /// stands, but the client is told it is not yet safe.
    async fn run_write<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<(T, Commit), BackendError> {
        let Some(wait) = &self.wait else {
            return Ok((self.run(invocation).await?, Commit::done()));
        };
        let budget = self.wait_budget();
        let mut connection = Replicated::new(wait.connection.get(), wait.replicas, budget);
        let answer = self.call(invocation.invoke_async(&mut connection)).await?;
        let confirmed = connection.confirmed();
        if confirmed >= wait.replicas {
            return Ok((answer, Commit::done()));
        }
        let shortfall = BackendError::NotReplicated {
            confirmed,
            wanted: wait.replicas,
            after: budget,
        };
        Ok((answer, Commit::pending(async move { Err(shortfall) })))
    }

    /// How long `WAIT` may block: three quarters of the call's deadline,
    /// so that its answer (and the write's) arrives before the deadline
    /// cuts the call.
    fn wait_budget(&self) -> std::time::Duration {
        self.patience.timeout * 3 / 4
    }

    /// Adds a named namespace to the registry the server-wide figures
    /// walk; called when a script reports it created the namespace's
    /// statistics (its first write or read since a clear).
    async fn register(&self, namespace: Option<&str>, created: i64) -> Result<(), BackendError> {
        let Some(name) = namespace.filter(|_| created == 1) else {
            return Ok(());
        };
        let mut connection = self.connection.get();
        let command = redis::cmd("SADD")
            .arg(layout::registry_key(&self.prefix))
            .arg(name)
            .to_owned();
        self.call(command.query_async::<i64>(&mut connection))
            .await
            .map(drop)
    }

    /// Appends what a script that may grow a namespace needs to keep its
    /// quota: the policy, then the quota file's max bytes and max keys
    /// ("" for none), which a quota kept in Redis overrides.
    fn quota_args(&self, call: &mut ScriptInvocation<'_>, namespace: Option<&str>) {
        let policy = match self.limits.policy {
            EvictionPolicy::Lru => "lru",
            EvictionPolicy::Noeviction => "noeviction",
        };
        let Limit {
            max_bytes,
            max_keys,
        } = self.limits.quota_of(namespace);
        call.arg(policy)
            .arg(limit_arg(max_bytes))
            .arg(limit_arg(max_keys));
    }

    fn unsupported(capability: &'static str) -> BackendError {
        BackendError::Unsupported {
            backend: NAME,
            capability,
        }
    }
}

/// A bound as the scripts take it: the number, or "" for none.
fn limit_arg(limit: Option<u64>) -> String {
    limit.map_or(String::new(), |n| n.to_string())
}

/// `script` with the namespace's keys in the order the scripts expect.
fn invocation<'a>(script: &'a Script, keys: &NamespaceKeys) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for name in [
        suffix::DATA,
        suffix::INDEX,
        suffix::DEADLINES,
        suffix::STATS,
        suffix::WATCHED,
        suffix::FEED,
        suffix::LRU,
        suffix::QUOTA,
    ] {
        invocation.key(keys.key(name));
    }
    invocation
}

/// `call` cut at the deadline, its error mapped for the HTTP layer.
async fn within<T>(
    patience: Patience,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(patience.timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(errors::from_redis(&error, patience.timeout)),
        Err(_) => Err(BackendError::TimedOut {
            after: patience.timeout,
        }),
    }
}
