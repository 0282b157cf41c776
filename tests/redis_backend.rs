//! The Redis backend itself: what its start checks, how it answers when
//! Redis fails, how it reclaims a cleared namespace, and two PyKV nodes
//! over one Redis Cluster. What it shares with every backend is checked by
//! the API conformance tests, which .ci/run runs against a Redis server and
//! a Redis Cluster.
//!
//! The tests run real `redis-server` processes of their own (skipped when
//! it is not installed); the cluster tests use the cluster .ci/run starts,
//! named by `PYKV_REDIS_CLUSTER_URL` (skipped when unset).

mod common;

use std::time::{Duration, Instant};

use common::redis_server::{RedisCluster, RedisServer, free_port};
use common::sse::Feed;
use common::{Resp, Server, enc, run_to_exit};
use serde_json::json;

/// `--backend-timeout` of the failure tests.
const TIMEOUT: &str = "500ms";
/// How long a request may take when Redis is down or hung: the deadline,
/// plus the time of a debug build's HTTP round trip.
const PATIENCE: Duration = Duration::from_millis(2500);

fn redis_args<'a>(url: &'a str, prefix: &'a str) -> Vec<&'a str> {
    vec!["--backend", url, "--redis-prefix", prefix]
}

#[test]
fn a_malformed_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &["--backend", "redis-cluster://nohost"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"nohost\" is not HOST:PORT"), "{stderr}");
}

#[test]
fn an_unreachable_redis_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let (code, stderr) = run_to_exit(
        dir.path(),
        &["--backend", &url, "--backend-timeout", "300ms"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the Redis backend {url}")),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
}

#[tokio::test]
async fn a_policy_that_evicts_pykv_keys_is_refused() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &["--backend", &redis.url()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("has maxmemory-policy allkeys-lru")
            && stderr.contains("set `maxmemory-policy noeviction`"),
        "{stderr}"
    );

    // A volatile-* policy spares keys without a TTL, and PyKV sets none.
    let redis = RedisServer::start(&["--maxmemory-policy", "volatile-lru"]);
    let server = Server::start_with(&redis_args(&redis.url(), "volatile"));
    let health = server.get("/health").await;
    assert_eq!(health.status, 200, "{health:?}");
}

/// A Redis that dies: every request is answered 503 with `Retry-After`
/// within the deadline, never 500 and never a hang; once Redis is back,
/// requests succeed again by themselves.
#[tokio::test]
async fn a_redis_that_dies_is_503_then_recovers_by_itself() {
    if !RedisServer::available() {
        return;
    }
    let mut redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut args = redis_args(&url, "dies");
    args.extend(["--backend-timeout", TIMEOUT]);
    let server = Server::start_with(&args);
    server.set(Some("a"), "k", json!(1)).await;

    redis.kill();
    expect_503_within_deadline(&server).await;
    let health = server.get("/health").await;
    assert_eq!(health.status, 503, "{health:?}");

    let _redis = RedisServer::start_on(redis.port, &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let set = set_raw(&server, "a", "k2").await;
        if set.status == 200 {
            break;
        }
        assert_eq!(set.status, 503, "{set:?}");
        assert!(
            Instant::now() < deadline,
            "writes did not come back: {set:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.value(Some("a"), "k2").await, Some(json!("v")));
}

/// A hung Redis (SIGSTOP: its sockets stay open, nothing answers): cut at
/// `--backend-timeout`, 503; it answers again once resumed.
#[tokio::test]
async fn a_hung_redis_is_cut_at_the_backend_timeout() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let mut args = redis_args(&url, "hung");
    args.extend(["--backend-timeout", TIMEOUT]);
    let server = Server::start_with(&args);
    server.set(Some("a"), "k", json!(1)).await;

    redis.pause(true);
    expect_503_within_deadline(&server).await;
    redis.pause(false);

    let deadline = Instant::now() + Duration::from_secs(15);
    while server.get("/get/k?ns=a").await.status != 200 {
        assert!(Instant::now() < deadline, "reads did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis out of memory (its `maxmemory` under `noeviction`) is a full
/// store: 507, never 500.
#[tokio::test]
async fn a_full_redis_is_507() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]);
    let server = Server::start_with(&redis_args(&redis.url(), "full"));
    let big = "x".repeat(100_000);
    for i in 0..200 {
        let body = json!({"key": format!("k{i}"), "value": big});
        let set = server.post_json("/set?ns=a", &body).await;
        match set.status {
            200 => continue,
            507 => return,
            _ => panic!("set {i}: {set:?}"),
        }
    }
    panic!("20 MB went into a Redis of 3 MB");
}

/// Clearing answers at once and leaves the keys to a background task,
/// which deletes them all in batches.
#[tokio::test]
async fn a_cleared_namespace_is_reclaimed_in_the_background() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let server = Server::start_with(&redis_args(&redis.url(), "reclaim"));
    for i in 0..700 {
        server.set(Some("big"), &format!("k{i:04}"), json!(i)).await;
    }
    let clear = server.delete("/namespaces/big").await;
    assert_eq!(clear.status, 200, "{clear:?}");
    assert_eq!(server.get("/keys?ns=big").await.body["keys"], json!([]));

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg("reclaim:*cleared*")
            .query(&mut connection)
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still there: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let queued: i64 = redis::cmd("LLEN")
        .arg("reclaim:{ns:big}:reclaim")
        .query(&mut connection)
        .unwrap();
    assert_eq!(queued, 0);
}

/// An expired key is neither served nor counted while it is still in
/// Redis: counts subtract the keys past their deadline (O(log n)) rather
/// than wait for them to be removed.
#[tokio::test]
async fn expired_keys_still_in_redis_are_not_counted() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let server = Server::start_with(&redis_args(&redis.url(), "expiry"));
    server.set(Some("n"), "stays", json!(1)).await;
    let body = json!({"key": "goes", "value": 2, "ttl": 1});
    assert_eq!(server.post_json("/set?ns=n", &body).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let counted = server.get("/namespaces/n/keys").await;
    assert_eq!(counted.body, json!({"namespace": "n", "total_keys": 1}));
    assert_eq!(
        server.get("/keys?ns=n").await.body["keys"],
        json!(["stays"])
    );
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let held: bool = redis::cmd("HEXISTS")
        .arg("expiry:{ns:n}:data")
        .arg("goes")
        .query(&mut connection)
        .unwrap();
    assert!(held, "the expired key should not have been removed yet");

    assert_eq!(server.value(Some("n"), "goes").await, None);
    let stats = server.stats().await;
    assert_eq!(stats["namespaces"]["n"]["expirations"], json!(1), "{stats}");
}

/// Two PyKV nodes over one Redis Cluster: what one acknowledges, the other
/// reads at once; deletes, listings, counts and clears agree.
#[tokio::test]
async fn two_nodes_over_the_cluster_read_each_others_writes_at_once() {
    let Some(cluster) = std::env::var("PYKV_REDIS_CLUSTER_URL").ok() else {
        eprintln!("SKIPPED: PYKV_REDIS_CLUSTER_URL is not set (.ci/run sets it)");
        return;
    };
    let prefix = format!("two-nodes-{}", std::process::id());
    let a = Server::start_with(&redis_args(&cluster, &prefix));
    let b = Server::start_with(&redis_args(&cluster, &prefix));
    for i in 0..40 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let ns = ["t1", "t2", "t3", "t4"][i % 4];
        let key = format!("key:{i}");
        writer.set(Some(ns), &key, json!({"i": i})).await;
        assert_eq!(reader.value(Some(ns), &key).await, Some(json!({"i": i})));
        writer.set(Some(ns), &key, json!([i, "again"])).await;
        assert_eq!(
            reader.value(Some(ns), &key).await,
            Some(json!([i, "again"]))
        );
    }
    let deleted = b.delete(&format!("/delete/{}?ns=t1", enc("key:0"))).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(a.value(Some("t1"), "key:0").await, None);

    for ns in ["t1", "t2", "t3", "t4"] {
        let path = format!("/keys?ns={ns}");
        let (on_a, on_b) = (a.get(&path).await, b.get(&path).await);
        assert_eq!(on_a.body["keys"], on_b.body["keys"], "{ns}");
    }
    assert_eq!(
        a.get("/namespaces").await.body,
        b.get("/namespaces").await.body
    );

    // Both nodes writing to one namespace at once: every acknowledged
    // write is listed by both.
    tokio::join!(write_through(&a, "a"), write_through(&b, "b"));
    let (on_a, on_b) = (a.get("/keys?ns=t5").await, b.get("/keys?ns=t5").await);
    assert_eq!(
        on_a.body["keys"].as_array().map(Vec::len),
        Some(50),
        "{on_a:?}"
    );
    assert_eq!(on_a.body["keys"], on_b.body["keys"]);

    assert_eq!(a.delete("/namespaces/t2").await.status, 200);
    assert_eq!(b.get("/keys?ns=t2").await.body["keys"], json!([]));
    assert_eq!(b.value(Some("t2"), "key:1").await, None);
}

/// Two PyKV nodes over one Redis Cluster: watchers on each see the same
/// events, with the same ids, whichever node took the writes; and a
/// client resumes on one node from an id it got from the other.
#[tokio::test]
async fn two_nodes_over_the_cluster_feed_the_same_events() {
    let Some(cluster) = std::env::var("PYKV_REDIS_CLUSTER_URL").ok() else {
        eprintln!("SKIPPED: PYKV_REDIS_CLUSTER_URL is not set (.ci/run sets it)");
        return;
    };
    let prefix = format!("two-feeds-{}", std::process::id());
    let a = Server::start_with(&redis_args(&cluster, &prefix));
    let b = Server::start_with(&redis_args(&cluster, &prefix));
    let mut on_a = Feed::open(&a, "ns=f", None, None).await;
    let mut on_b = Feed::open(&b, "ns=f", None, None).await;
    assert_eq!(on_a.next().await.event, "ready");
    assert_eq!(on_b.next().await.event, "ready");
    for i in 0..20 {
        let writer = if i % 2 == 0 { &a } else { &b };
        writer.set(Some("f"), &format!("k{i}"), json!(i)).await;
    }
    assert_eq!(b.delete("/delete/k3?ns=f").await.status, 200);
    let seen_a = on_a.take(21).await;
    let seen_b = on_b.take(21).await;
    assert_eq!(seen_a, seen_b, "both nodes feed the same events and ids");
    assert_eq!(seen_a[20].event, "delete");
    // Resumed on B from an id A handed out.
    let mut resumed = Feed::open(&b, "ns=f", Some(&seen_a[9].id), None).await;
    assert_eq!(resumed.next().await.event, "ready");
    assert_eq!(resumed.take(11).await, seen_a[10..].to_vec());
}

/// How the master holding the test namespace is taken away.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failover {
    /// `kill -9`.
    Kill,
    /// `kill -STOP`: a hung node whose sockets stay open.
    Stop,
    /// `CLUSTER FAILOVER` on its replica.
    Graceful,
}

#[tokio::test]
async fn a_killed_master_costs_503s_only_until_its_replica_takes_over() {
    failover_under_writes(Failover::Kill, 0).await;
}

#[tokio::test]
async fn a_hung_master_costs_503s_only_until_its_replica_takes_over() {
    failover_under_writes(Failover::Stop, 0).await;
}

#[tokio::test]
async fn a_graceful_failover_loses_no_acknowledged_write() {
    failover_under_writes(Failover::Graceful, 0).await;
}

#[tokio::test]
async fn waiting_for_a_replica_a_killed_master_loses_no_acknowledged_write() {
    failover_under_writes(Failover::Kill, 1).await;
}

#[tokio::test]
async fn waiting_for_a_replica_a_hung_master_loses_no_acknowledged_write() {
    failover_under_writes(Failover::Stop, 1).await;
}

#[tokio::test]
async fn waiting_for_a_replica_a_graceful_failover_loses_no_acknowledged_write() {
    failover_under_writes(Failover::Graceful, 1).await;
}

/// The master that holds a namespace goes away while two PyKV nodes write
/// to it: every answer is 200 or 503 with `Retry-After`, none takes longer
/// than the deadline, and writes succeed again by themselves once a
/// replica has taken over. Every acknowledged write is then read back
/// (for a graceful failover, none may be lost; after a crash Redis, which
/// replicates asynchronously, may lose the last ones: they are counted).
/// The window of refused writes and the loss are printed.
///
/// With `--redis-wait-replicas 1` (`wait_replicas`), a write is
/// acknowledged only once the slot's replica has it, so no acknowledged
/// write may be lost, whatever the failure. The promoted replica has no
/// replica of its own, so writes are refused until the old master comes
/// back as its replica: the test brings it back (restarted after kill -9,
/// resumed after STOP) once the failover is done, and the window counts
/// that time too.
async fn failover_under_writes(failover: Failover, wait_replicas: u32) {
    if !RedisServer::available() {
        return;
    }
    let mut cluster = RedisCluster::start();
    let url = cluster.url();
    let mut args = redis_args(&url, "failover");
    let wait = wait_replicas.to_string();
    args.extend(["--backend-timeout", TIMEOUT, "--redis-wait-replicas", &wait]);
    let nodes = [Server::start_with(&args), Server::start_with(&args)];
    let first = nodes[0].set(Some("fo"), "before", json!(0)).await;
    assert_eq!(first.status, 200, "{first:?}");

    let slot_key = "failover:{ns:fo}:data";
    let old_master = cluster.master_port_of(slot_key);
    let witness = (cluster.nodes.iter())
        .map(|node| node.port)
        .find(|port| *port != old_master)
        .expect("six nodes");
    match failover {
        Failover::Kill => cluster.master_of(slot_key).kill(),
        Failover::Stop => cluster.master_of(slot_key).pause(true),
        Failover::Graceful => cluster.fail_over_to_replica_of(slot_key),
    }
    let began = Instant::now();
    let mut revived = failover == Failover::Graceful || wait_replicas == 0;
    let mut refused: Option<(Duration, Duration)> = None;
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let elapsed = began.elapsed();
        assert!(
            elapsed < Duration::from_secs(30),
            "writes did not come back within 30 s"
        );
        let done = match refused {
            Some((_, last)) => elapsed > last + Duration::from_secs(1),
            None => failover == Failover::Graceful && elapsed > Duration::from_secs(5),
        };
        if done {
            break;
        }
        if !revived && cluster.master_port_seen_by(witness, slot_key) != old_master {
            let old = (cluster.nodes.iter_mut())
                .find(|node| node.port == old_master)
                .expect("the old master is one of the nodes");
            match failover {
                Failover::Kill => old.restart(),
                _ => old.pause(false),
            }
            revived = true;
        }
        let node = &nodes[i % 2];
        let started = Instant::now();
        let body = json!({"key": format!("k{i}"), "value": i});
        let response = (node.client.post(node.url("/set?ns=fo")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let waited = started.elapsed();
        assert!(waited < PATIENCE, "write {i} took {waited:?}");
        match response.status().as_u16() {
            200 => acknowledged.push(i),
            503 => {
                assert!(response.headers().contains_key("retry-after"), "write {i}");
                let at = began.elapsed();
                refused = Some((refused.map_or(at, |(first, _)| first), at));
            }
            status => panic!("write {i}: {status} {:?}", response.text().await),
        }
    }
    let mut lost = 0;
    for (n, i) in acknowledged.iter().enumerate() {
        let key = format!("k{i}");
        if nodes[n % 2].value(Some("fo"), &key).await != Some(json!(i)) {
            lost += 1;
        }
    }
    let window = refused.map_or(Duration::ZERO, |(first, last)| last - first);
    eprintln!(
        "FAILOVER {failover:?}, --redis-wait-replicas {wait_replicas}: writes refused from \
         {:?} to {:?} after the fault (a window of {window:?}); {} acknowledged, {lost} lost",
        refused.map(|(first, _)| first),
        refused.map(|(_, last)| last),
        acknowledged.len()
    );
    if failover == Failover::Graceful || wait_replicas > 0 {
        assert_eq!(lost, 0, "acknowledged writes lost");
    }
    if failover == Failover::Graceful {
        let new_master = cluster.master_port_of(slot_key);
        assert_ne!(new_master, old_master, "the replica did not take over");
    }
    assert!(!acknowledged.is_empty());
}

/// 25 writes to namespace t5 through `server`, keys named after `node`.
async fn write_through(server: &Server, node: &str) {
    for i in 0..25 {
        server
            .set(Some("t5"), &format!("{node}:{i:02}"), json!(i))
            .await;
    }
}

async fn set_raw(server: &Server, ns: &str, key: &str) -> Resp {
    let body = json!({"key": key, "value": "v"});
    server.post_json(&format!("/set?ns={ns}"), &body).await
}

/// Every kind of request answers 503 with `Retry-After` within
/// [`PATIENCE`].
async fn expect_503_within_deadline(server: &Server) {
    let requests = [
        server.client.get(server.url("/get/k?ns=a")),
        (server.client.post(server.url("/set?ns=a"))).json(&json!({"key": "k", "value": 2})),
        server.client.delete(server.url("/delete/k?ns=a")),
        server.client.get(server.url("/keys?ns=a")),
        server.client.get(server.url("/stats")),
        server.client.delete(server.url("/namespaces/a")),
    ];
    for request in requests {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let waited = started.elapsed();
        let what = response.url().to_string();
        assert_eq!(response.status(), 503, "{what}");
        assert!(response.headers().contains_key("retry-after"), "{what}");
        assert!(waited < PATIENCE, "{what} took {waited:?}");
    }
}

/// `--redis-wait-replicas 1`: writes are confirmed by the slot's replica
/// before they are acknowledged. Without it (the replica killed) a write
/// is applied on the master but answered 503 with `Retry-After` within the
/// deadline, saying so; reads still answer; once the replica is back,
/// writes are acknowledged again by themselves.
#[tokio::test]
async fn waiting_for_a_replica_refuses_unconfirmed_writes_within_the_deadline() {
    if !RedisServer::available() {
        return;
    }
    let mut cluster = RedisCluster::start();
    let url = cluster.url();
    let mut args = redis_args(&url, "wait");
    args.extend(["--backend-timeout", TIMEOUT, "--redis-wait-replicas", "1"]);
    let server = Server::start_with(&args);
    let slot_key = "wait:{ns:w}:data";
    for i in 0..20 {
        let set = server.set(Some("w"), &format!("k{i}"), json!(i)).await;
        assert_eq!(set.status, 200, "{set:?}");
    }

    cluster.replica_of(slot_key).kill();
    let started = Instant::now();
    let set = set_raw(&server, "w", "unconfirmed").await;
    let waited = started.elapsed();
    assert_eq!(set.status, 503, "{set:?}");
    assert!(waited < PATIENCE, "took {waited:?}");
    assert!(
        set.detail().contains("applied on the Redis master")
            && set.detail().contains("0 of the 1 replicas"),
        "{}",
        set.detail()
    );
    let refused = (server.client.post(server.url("/set?ns=w")))
        .json(&json!({"key": "again", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    // Applied on the master, as the answer says; reads are not held up.
    assert_eq!(
        server.value(Some("w"), "unconfirmed").await,
        Some(json!("v"))
    );
    assert_eq!(server.value(Some("w"), "k3").await, Some(json!(3)));

    cluster.replica_of(slot_key).restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let set = set_raw(&server, "w", "confirmed").await;
        if set.status == 200 {
            break;
        }
        assert_eq!(set.status, 503, "{set:?}");
        assert!(Instant::now() < deadline, "writes did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// LRU under a quota is exact on Redis (a sorted set of last accesses):
/// a read makes a key recent, so the key neither read nor written for
/// longest is the one evicted.
#[tokio::test]
async fn a_quota_evicts_the_least_recently_read_or_written_key() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let server = Server::start_with(&redis_args(&redis.url(), "lru"));
    let put = server.client.put(server.url("/quota?ns=q"));
    let put = server.send(put.json(&json!({"max_keys": 3}))).await;
    assert_eq!(put.status, 200, "{put:?}");
    for k in ["a", "b", "c"] {
        server.set(Some("q"), k, json!(k)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.value(Some("q"), "a").await, Some(json!("a")));
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.set(Some("q"), "d", json!("d")).await;
    assert_eq!(server.value(Some("q"), "b").await, None, "b was the oldest");
    for k in ["a", "c", "d"] {
        assert_eq!(server.value(Some("q"), k).await, Some(json!(k)), "{k}");
    }
    let stats = server.stats().await;
    assert_eq!(stats["namespaces"]["q"]["evictions"], 1, "{stats}");
}

/// A quota set through one node holds for both, under concurrent writers
/// on both: never exceeded at any moment (a third task keeps counting),
/// exactly the quota's keys kept; with `noeviction`, exactly that many
/// writes acknowledged. The quota is kept in Redis: a restarted node finds
/// it.
#[tokio::test]
async fn a_quota_holds_under_concurrent_writers_on_two_nodes() {
    let Some(cluster) = std::env::var("PYKV_REDIS_CLUSTER_URL").ok() else {
        eprintln!("SKIPPED: PYKV_REDIS_CLUSTER_URL is not set (.ci/run sets it)");
        return;
    };
    for policy in ["lru", "noeviction"] {
        let prefix = format!("quota-{policy}-{}", std::process::id());
        let mut args = redis_args(&cluster, &prefix);
        args.extend(["--eviction", policy]);
        let mut a = Server::start_with(&args);
        let b = Server::start_with(&args);
        let put = a.client.put(a.url("/quota?ns=q"));
        let put = a.send(put.json(&json!({"max_keys": 50}))).await;
        assert_eq!(put.status, 200, "{put:?}");

        let stop = std::sync::atomic::AtomicBool::new(false);
        let watch = async {
            let mut most = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let count = b.get("/namespaces/q/keys").await.body["total_keys"]
                    .as_u64()
                    .unwrap_or(0);
                most = most.max(count);
            }
            most
        };
        let writers = async {
            let (on_a, on_b) = tokio::join!(
                write_many(&a, "a", 150, policy),
                write_many(&b, "b", 150, policy)
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            on_a + on_b
        };
        let (most, acknowledged) = tokio::join!(watch, writers);
        assert!(most <= 50, "{policy}: {most} keys seen");
        let quota = a.get("/quota?ns=q").await;
        assert_eq!(quota.body["used_keys"], 50, "{policy}: {quota:?}");
        let stats = b.stats().await;
        match policy {
            "lru" => assert_eq!(stats["namespaces"]["q"]["evictions"], 250, "{stats}"),
            _ => assert_eq!(acknowledged, 50, "noeviction: acknowledged writes"),
        }

        a.terminate();
        assert!(a.wait_exit().success());
        a.restart();
        let quota = a.get("/quota?ns=q").await;
        assert_eq!(quota.body["max_keys"], 50, "after a restart: {quota:?}");
    }
}

/// `count` writes of distinct keys to namespace q through `server`; under
/// `noeviction` a refused one is 507. Returns how many were acknowledged.
async fn write_many(server: &Server, node: &str, count: usize, policy: &str) -> usize {
    let mut acknowledged = 0;
    for i in 0..count {
        let set = set_raw(server, "q", &format!("{node}{i}")).await;
        match set.status {
            200 => acknowledged += 1,
            507 if policy == "noeviction" => {}
            _ => panic!("{policy}: {set:?}"),
        }
    }
    acknowledged
}

/// Tokens over Redis: one created with `pykv token create --backend
/// redis-cluster://...` is honoured by both nodes within a second;
/// revoked, it is refused by both within a second. Nothing is written to
/// a token file.
#[tokio::test]
async fn a_token_created_or_revoked_by_the_cli_takes_effect_on_every_node_within_a_second() {
    let Some(cluster) = std::env::var("PYKV_REDIS_CLUSTER_URL").ok() else {
        eprintln!("SKIPPED: PYKV_REDIS_CLUSTER_URL is not set (.ci/run sets it)");
        return;
    };
    let prefix = format!("tokens-{}", std::process::id());
    let nodes = [
        Server::start_with(&redis_args(&cluster, &prefix)),
        Server::start_with(&redis_args(&cluster, &prefix)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let token_cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--backend", &cluster, "--redis-prefix", &prefix]);
        common::pykv_token(dir.path(), &all)
    };

    // A first token closes both nodes to requests without one.
    let admin = token_cli(&["create", "--admin"]);
    assert!(admin.status.success(), "{admin:?}");
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(3);
        while node.get("/get/k?ns=t").await.status != 401 {
            assert!(Instant::now() < deadline, "{} still open", node.base_url());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let created = token_cli(&["create", "--ns", "t", "--access", "write"]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let since = Instant::now();
    for node in &nodes {
        let status = status_with_token_once(node, &token, 200).await;
        assert_eq!(status, 200, "the new token on {}", node.base_url());
    }
    let took = since.elapsed();
    assert!(took < Duration::from_secs(1), "honoured after {took:?}");
    eprintln!("a new token was honoured by both nodes after {took:?}");
    assert!(
        !dir.path().join("tokens.json").exists(),
        "the CLI wrote Redis, not a file"
    );

    let listed = token_cli(&["list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{listed}");
    let id = (tokens.iter())
        .find(|t| t["namespaces"] == json!(["t"]))
        .and_then(|t| t["id"].as_str())
        .unwrap()
        .to_owned();
    let revoked = token_cli(&["revoke", &id]);
    assert!(revoked.status.success(), "{revoked:?}");
    let since = Instant::now();
    for node in &nodes {
        let status = status_with_token_once(node, &token, 401).await;
        assert_eq!(status, 401, "the revoked token on {}", node.base_url());
    }
    let took = since.elapsed();
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    eprintln!("a revoked token was refused by both nodes after {took:?}");
}

/// The status of a write with `token`, asked every 20 ms until it is
/// `wanted` (at most 3 s).
async fn status_with_token_once(server: &Server, token: &str, wanted: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let request = (server.client.post(server.url("/set?ns=t")))
            .bearer_auth(token)
            .json(&json!({"key": "k", "value": 1}));
        let status = request.send().await.unwrap().status().as_u16();
        if status == wanted || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Token edits in Redis are optimistic (a version checked by the write):
/// `pykv token create` run six times at once loses none of them.
#[test]
fn concurrent_token_edits_in_redis_lose_nothing() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let args = |extra: &[&'static str]| {
        let mut all: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        all.extend(["--backend".into(), url.clone()]);
        all.extend(["--redis-prefix".into(), "edits".into()]);
        all
    };
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let args = args(&["create", "--admin"]);
            let dir = dir.path();
            scope.spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = common::pykv_token(dir, &args);
                assert!(out.status.success(), "{out:?}");
            });
        }
    });
    let list = args(&["list", "--json"]);
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    let out = common::pykv_token(dir.path(), &list);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["tokens"].as_array().map(Vec::len),
        Some(6),
        "{listed}"
    );
}
