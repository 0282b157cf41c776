//! What a namespace costs (issue 12, item 4): a namespace's own memory is
//! counted in `used_bytes` (what `--max-memory` bounds) while it holds
//! keys, and freed with its last key, so that many small tenants, or
//! tenants that come and go, cannot grow the process past its limit.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

/// Writers sending at once.
const WRITERS: usize = 8;

/// Sets one key in each of `count` namespaces `{prefix}{i}`, from
/// [`WRITERS`] concurrent writers.
async fn one_key_each(server: &Arc<Server>, prefix: &str, count: usize) {
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (server, prefix) = (server.clone(), prefix.to_string());
            tokio::spawn(async move {
                for i in (w..count).step_by(WRITERS) {
                    server
                        .set(Some(&format!("{prefix}{i}")), "k", json!(i))
                        .await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
}

/// Resident memory of a process, from /proc, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Polls `/stats` until `done` holds, for up to 3 s (the expiry thread
/// frees empty namespaces every 100 ms).
async fn stats_once(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let stats = server.stats().await;
        if done(&stats) || start.elapsed() > Duration::from_secs(3) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn namespaces_count_in_used_bytes_until_cleared_then_are_freed() {
    const NAMESPACES: usize = 2_000;
    let server = Arc::new(Server::start());
    one_key_each(&server, "tenant", NAMESPACES).await;

    let stats = server.stats().await;
    let entries: u64 = stats["namespaces"]
        .as_object()
        .unwrap()
        .values()
        .map(|ns| ns["used_bytes"].as_u64().unwrap())
        .sum::<u64>()
        + stats["default_namespace"]["used_bytes"].as_u64().unwrap();
    let used = stats["used_bytes"].as_u64().unwrap();
    // A namespace's struct, shards and map slot take more than 200 bytes:
    // the total counts them beside the entries.
    assert!(
        used >= entries + 200 * NAMESPACES as u64,
        "used_bytes {used} counts little beyond the entries' {entries}"
    );

    for i in 0..NAMESPACES {
        let r = server.delete(&format!("/namespaces/tenant{i}")).await;
        assert_eq!(r.body["keys_deleted"], 1, "{r:?}");
    }
    let stats = stats_once(&server, |s| s["used_bytes"] == 0).await;
    assert_eq!(
        stats["used_bytes"], 0,
        "cleared namespaces still count: {stats}"
    );
    assert_eq!(stats["total_keys"], 0, "{stats}");
    let r = server.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": [], "count": 0}));
}

/// Under a small `--max-memory`, a stream of new one-key namespaces evicts
/// older ones, and the namespaces evicted empty are freed: the process
/// stays bounded. Before, each kept about 2 KB after its key was evicted.
#[tokio::test]
async fn many_namespaces_under_max_memory_keep_the_process_bounded() {
    const NAMESPACES: usize = 5_000;
    let server = Arc::new(Server::start_with(&["--max-memory", "256kb"]));
    one_key_each(&server, "warmup", 500).await;
    let before = rss_bytes(server.pid());

    one_key_each(&server, "tenant", NAMESPACES).await;

    let stats = server.stats().await;
    assert!(
        stats["used_bytes"].as_u64().unwrap() <= 256 * 1024,
        "{stats}"
    );
    let grown = rss_bytes(server.pid()).saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "{NAMESPACES} namespaces, most evicted, grew the process by {grown} bytes"
    );
    eprintln!("{NAMESPACES} namespaces grew the process by {grown} bytes; {stats}");
    // Eviction made room for each new namespace's overhead too, freeing
    // those it emptied, and evicted no more than that: the store is full.
    let keys = stats["total_keys"].as_u64().unwrap();
    assert!(keys >= 64, "only {keys} keys left in 256 KB: {stats}");
    // An evicted namespace can come back.
    server.set(Some("tenant0"), "k", json!("back")).await;
    assert_eq!(
        server.value(Some("tenant0"), "k").await,
        Some(json!("back"))
    );
}
