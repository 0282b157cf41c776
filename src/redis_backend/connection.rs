//! Connecting to Redis, with bounded patience, and the checks made at
//! start.
//!
//! Why the `redis` crate's retry defaults are replaced: they retry up to
//! 16 times with backoff up to minutes, so a Redis that went away would
//! hang requests far past any client's patience. Here a call retries a
//! few times, quickly, and the whole call is cut at `--backend-timeout`.

use std::time::Duration;

use anyhow::{Context, bail};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, RedisFuture, Value};

use super::target::RedisTarget;

/// How patient calls to Redis are.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Deadline of one call, retries included.
    pub timeout: Duration,
    pub retries: u32,
}

/// A connection to one server or to a cluster: cheap to clone, shared by
/// every request (both multiplex calls over a few sockets).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Connects, checks that the store is fit for PyKV, and logs what it
/// found; an error says what is wrong and what to do.
pub async fn open(target: &RedisTarget, patience: Patience) -> anyhow::Result<Opened> {
    let (mut connection, client) = connect(target, patience).await?;
    let patient = patience.timeout * (patience.retries + 2);
    tokio::time::timeout(patient, check(&mut connection, target))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {patient:?}"))
        .and_then(|checked| checked)
        .with_context(|| format!("cannot use the Redis backend {target}"))?;
    Ok((connection, client))
}

/// Connects, without checking: for [`open`], and for another connection
/// to a store already checked.
pub async fn connect(target: &RedisTarget, patience: Patience) -> anyhow::Result<Opened> {
    let connecting = async {
        match target {
            RedisTarget::Single { url } => open_single(url, patience).await,
            RedisTarget::Cluster { seeds } => open_cluster(seeds, patience).await,
        }
    };
    // Connecting may take a few attempts: allow each its deadline.
    let patient = patience.timeout * (patience.retries + 2);
    tokio::time::timeout(patient, connecting)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {patient:?}"))
        .and_then(|opened| opened)
        .with_context(|| format!("cannot reach the Redis backend {target}"))
}

/// A connection, and for a cluster the client that can make another.
pub type Opened = (Connection, Option<ClusterClient>);

async fn open_single(url: &str, patience: Patience) -> anyhow::Result<Opened> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(patience.retries as usize)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(patience.timeout / 4)
        .set_connection_timeout(Some(patience.timeout))
        .set_response_timeout(Some(patience.timeout));
    let manager = ConnectionManager::new_with_config(client, config).await?;
    Ok((Connection::Single(manager), None))
}

async fn open_cluster(seeds: &[String], patience: Patience) -> anyhow::Result<Opened> {
    let client = ClusterClientBuilder::new(seeds.to_vec())
        .retries(patience.retries)
        .min_retry_wait(10)
        .max_retry_wait((patience.timeout.as_millis() / 4).max(10) as u64)
        .connection_timeout(patience.timeout)
        .response_timeout(patience.timeout)
        .build()?;
    let connection = client.get_async_connection().await?;
    Ok((Connection::Cluster(connection), Some(client)))
}

/// Checks the kind of server and the eviction policy of every node.
async fn check(connection: &mut Connection, target: &RedisTarget) -> anyhow::Result<()> {
    let info = text_of(connection, redis::cmd("INFO").arg("server")).await?;
    let version = info_field(&info, "redis_version").unwrap_or("?").to_owned();
    let policies = match connection {
        Connection::Single(single) => {
            let cluster = text_of(single, redis::cmd("INFO").arg("cluster")).await?;
            if info_field(&cluster, "cluster_enabled") == Some("1") {
                bail!(
                    "{target} is a node of a Redis Cluster: use \
                     --backend redis-cluster://HOST:PORT[,HOST:PORT...]"
                );
            }
            policies_in(&policy_query().query_async(single).await?)?
        }
        Connection::Cluster(cluster) => {
            let state = text_of(cluster, redis::cmd("CLUSTER").arg("INFO")).await?;
            if info_field(&state, "cluster_state") != Some("ok") {
                bail!("the Redis Cluster at {target} is not ready (cluster_state is not ok)");
            }
            let all_nodes = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllNodes,
                Some(ResponsePolicy::CombineArrays),
            ));
            policies_in(&cluster.route_command(policy_query(), all_nodes).await?)?
        }
    };
    if let Some(bad) = policies.iter().find(|p| !keeps_pykv_keys(p)) {
        bail!(
            "the Redis backend {target} has maxmemory-policy {bad}, which lets Redis evict \
             PyKV's keys and indexes; set `maxmemory-policy noeviction` (or a volatile-* \
             policy) on every node"
        );
    }
    tracing::info!(
        backend = %target,
        redis_version = %version,
        maxmemory_policy = ?policies,
        "connected to the Redis backend"
    );
    Ok(())
}

/// The first text of an answer: a cluster connection sends some commands
/// (INFO) to every master and answers with a map of node to text.
async fn text_of<C: ConnectionLike + Send>(
    connection: &mut C,
    command: &Cmd,
) -> anyhow::Result<String> {
    let answer: Value = command.query_async(connection).await?;
    let mut texts = Vec::new();
    flatten(&answer, &mut texts);
    let text = match answer {
        Value::Map(_) => texts.into_iter().nth(1),
        _ => texts.into_iter().next(),
    };
    text.ok_or_else(|| anyhow::anyhow!("an empty answer from Redis"))
}

/// `CONFIG GET maxmemory-policy`.
fn policy_query() -> Cmd {
    let mut command = redis::cmd("CONFIG");
    command.arg("GET").arg("maxmemory-policy");
    command
}

/// The policies in a `CONFIG GET maxmemory-policy` answer, or in the
/// answers of every node of a cluster put end to end.
fn policies_in(answer: &Value) -> anyhow::Result<Vec<String>> {
    let mut flat: Vec<String> = Vec::new();
    flatten(answer, &mut flat);
    let policies: Vec<String> = (flat.chunks(2))
        .filter(|pair| pair.len() == 2 && pair[0] == "maxmemory-policy")
        .map(|pair| pair[1].clone())
        .collect();
    if policies.is_empty() {
        bail!("CONFIG GET maxmemory-policy gave no answer (is CONFIG disabled?)");
    }
    Ok(policies)
}

fn flatten(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| flatten(v, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => out.push(text.clone()),
        _ => {}
    }
}

/// Policies under which Redis never evicts a key without a TTL: PyKV's
/// indexes and counters have none.
fn keeps_pykv_keys(policy: &str) -> bool {
    policy == "noeviction" || policy.starts_with("volatile-")
}

/// A `field:value` line of an INFO answer.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}
