//! `GET /watch`: the change feed, a conformance test run against every
//! backend (embedded, memory, Redis, Redis Cluster).

mod common;

use std::time::{Duration, Instant};

use common::sse::{Event, Feed};
use common::{Server, backend_supports, create_token};
use serde_json::json;

/// `(event, key)` of each event, to compare sequences.
fn ops(events: &[Event]) -> Vec<(String, String)> {
    (events.iter())
        .map(|e| (e.event.clone(), e.key().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    (list.iter())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn assert_growing(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].order() < pair[1].order(),
            "ids do not grow: {pair:?}"
        );
    }
}

#[tokio::test]
async fn set_delete_expire_and_clear_come_in_order_with_growing_ids() {
    let server = Server::start();
    let mut feed = Feed::open(&server, "ns=w", None, None).await;
    let ready = feed.next().await;
    assert_eq!(ready.event, "ready", "{ready:?}");

    server.set(Some("w"), "a", json!({"n": 1})).await;
    server.set(Some("w"), "b", json!([1, 2])).await;
    let incr = server
        .post_json("/incr?ns=w", &json!({"key": "c", "by": 5}))
        .await;
    assert_eq!(incr.status, 200, "{incr:?}");
    assert_eq!(server.delete("/delete/a?ns=w").await.status, 200);
    let expire = server
        .post_json("/expire?ns=w", &json!({"key": "b", "ttl": 100}))
        .await;
    assert_eq!(expire.status, 200, "{expire:?}");
    let r = server
        .post_json(
            "/set?ns=w",
            &json!({"key": "e", "value": "brief", "ttl": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Read once past its deadline: gone, and the feed says so.
    assert_eq!(server.get("/get/e?ns=w").await.status, 404);
    assert_eq!(server.delete("/namespaces/w").await.status, 200);

    let events = feed.take(8).await;
    assert_eq!(
        ops(&events),
        pairs(&[
            ("set", "a"),
            ("set", "b"),
            ("set", "c"),
            ("delete", "a"),
            ("set", "b"),
            ("set", "e"),
            ("expire", "e"),
            ("clear", ""),
        ])
    );
    assert_eq!(events[0].data["value"], json!({"n": 1}));
    assert_eq!(events[0].data["expires_at"], json!(null));
    assert_eq!(events[2].data["value"], json!(5));
    assert_eq!(
        events[4].data["value"],
        json!([1, 2]),
        "a TTL change is a set"
    );
    assert!(
        events[4].data["expires_at"].as_u64().is_some(),
        "{:?}",
        events[4]
    );
    assert_eq!(events[1].data.get("expires_at"), Some(&json!(null)));
    for event in &events {
        assert_eq!(event.data["op"], json!(event.event), "{event:?}");
        assert_eq!(event.data["id"], json!(event.id), "{event:?}");
    }
    let mut all = vec![ready];
    all.extend(events);
    assert_growing(&all);
}

#[tokio::test]
async fn a_prefix_picks_the_keys_it_starts() {
    let server = Server::start();
    let mut feed = Feed::open(&server, "ns=p&prefix=user%3A", None, None).await;
    assert_eq!(feed.next().await.event, "ready");
    for key in ["user:1", "cfg:x", "user:2", "usr"] {
        server.set(Some("p"), key, json!(key)).await;
    }
    assert_eq!(server.delete("/delete/cfg:x?ns=p").await.status, 200);
    assert_eq!(server.delete("/delete/user:1?ns=p").await.status, 200);
    let events = feed.take(3).await;
    assert_eq!(
        ops(&events),
        pairs(&[("set", "user:1"), ("set", "user:2"), ("delete", "user:1")])
    );
    // Another namespace's changes never show.
    server.set(Some("other"), "user:3", json!(3)).await;
    assert!(feed.next_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn last_event_id_resumes_without_a_gap_or_a_repeat() {
    let server = Server::start();
    let mut feed = Feed::open(&server, "ns=r", None, None).await;
    assert_eq!(feed.next().await.event, "ready");
    for i in 0..5 {
        server.set(Some("r"), &format!("k{i}"), json!(i)).await;
    }
    let seen = feed.take(2).await;
    assert_eq!(ops(&seen), pairs(&[("set", "k0"), ("set", "k1")]));
    drop(feed);
    for i in 5..8 {
        server.set(Some("r"), &format!("k{i}"), json!(i)).await;
    }
    let last = seen[1].id.clone();
    let mut resumed = Feed::open(&server, "ns=r", Some(&last), None).await;
    let ready = resumed.next().await;
    assert_eq!(
        (ready.event.as_str(), ready.id.as_str()),
        ("ready", last.as_str())
    );
    let rest = resumed.take(6).await;
    let keys: Vec<String> = rest.iter().map(|e| e.key().to_owned()).collect();
    assert_eq!(keys, ["k2", "k3", "k4", "k5", "k6", "k7"]);
    assert_growing(&rest);
    assert!(
        resumed
            .next_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    // The same position twice gives the same events with the same ids.
    let mut again = Feed::open(&server, "ns=r", Some(&last), None).await;
    assert_eq!(again.next().await.event, "ready");
    let ids: Vec<String> = again.take(6).await.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, rest.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn past_the_retention_window_a_reset_then_the_live_feed() {
    let server = Server::start_with(&["--watch-retention", "5"]);
    let mut feed = Feed::open(&server, "ns=x", None, None).await;
    let ready = feed.next().await;
    drop(feed);
    // Redis trims whole nodes of its stream (100 entries by default), so
    // write well past them.
    for i in 0..350 {
        server
            .set(Some("x"), &format!("k{}", i % 7), json!(i))
            .await;
    }
    for last in [ready.id.as_str(), "1-1", "not-an-id", "99999999999999-5"] {
        let mut late = Feed::open(&server, "ns=x", Some(last), None).await;
        let reset = late.next().await;
        assert_eq!(reset.event, "reset", "from {last}: {reset:?}");
        assert_eq!(reset.data["op"], "reset");
        server.set(Some("x"), "after", json!(last)).await;
        let live = late.next().await;
        assert_eq!((live.event.as_str(), live.key()), ("set", "after"));
        assert_eq!(live.data["value"], json!(last));
        assert!(live.order() > reset.order(), "{reset:?} {live:?}");
    }
}

#[tokio::test]
async fn an_id_from_before_a_restart_gets_a_reset() {
    if !backend_supports("persistence") {
        return;
    }
    let mut server = Server::start();
    let mut feed = Feed::open(&server, "ns=b", None, None).await;
    assert_eq!(feed.next().await.event, "ready");
    server.set(Some("b"), "k", json!(1)).await;
    let before = feed.next().await;
    drop(feed);
    server.restart();
    let mut after = Feed::open(&server, "ns=b", Some(&before.id), None).await;
    let reset = after.next().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    assert!(
        reset.order() > before.order(),
        "a new boot's ids are past the old ones"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_stalled_watcher_slows_no_writer_nor_other_watchers_and_holds_no_memory() {
    let server = Server::start_with(&["--watch-retention", "50"]);
    server.pin_to_one_node(); // the memory measured is the answering node's
    // Opened and never read again: its socket fills, then its producer waits.
    let mut stalled = Feed::open(&server, "ns=s", None, None).await;
    assert_eq!(stalled.next().await.event, "ready");
    let mut active = Feed::open(&server, "ns=s", None, None).await;
    assert_eq!(active.next().await.event, "ready");
    let value = "v".repeat(32 * 1024);
    let rss_before = rss_kib(server.pid());

    // 1000 writes of 32 KiB: 32 MiB through the feed, far past what any
    // socket buffer takes; the last 300 timed, when the stalled watcher's
    // socket is surely full.
    let writer = async {
        let mut started = Instant::now();
        for i in 0..1000 {
            if i == 700 {
                started = Instant::now();
            }
            server
                .set(Some("s"), &format!("k{}", i % 20), json!(value))
                .await;
        }
        let took = started.elapsed();
        server.set(Some("s"), "last", json!(true)).await;
        took
    };
    let reader = async {
        loop {
            let event = active
                .next_within(Duration::from_secs(60))
                .await
                .expect("events");
            if event.key() == "last" {
                return;
            }
        }
    };
    let (took, ()) = tokio::join!(writer, reader);
    let rss_after = rss_kib(server.pid());
    // Per-watcher queues would hold the 32 MiB for the stalled watcher.
    assert!(
        rss_after < rss_before + 24 * 1024,
        "the server grew from {rss_before} to {rss_after} KiB"
    );

    // Writers were not slowed: the same 300 writes, no watcher at all.
    let started = Instant::now();
    for i in 0..300 {
        server
            .set(Some("t"), &format!("k{}", i % 20), json!(value))
            .await;
    }
    let baseline = started.elapsed();
    eprintln!(
        "300 writes of 32 KiB: {took:?} beside a stalled watcher, {baseline:?} unwatched; \
         RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        took < baseline * 3 + Duration::from_secs(2),
        "writes took {took:?} beside a stalled watcher, {baseline:?} without"
    );

    // The stalled watcher, read at last, finds it fell behind.
    let mut saw_reset = false;
    while let Some(event) = stalled.next_within(Duration::from_secs(2)).await {
        if event.event == "reset" {
            saw_reset = true;
            break;
        }
    }
    assert!(saw_reset, "a watcher past the window gets a reset");
}

#[tokio::test]
async fn watching_takes_read_access_to_the_namespace() {
    let server = Server::start();
    let reader = create_token(server.data_dir(), &["--ns", "mine", "--access", "read"]);
    let other = create_token(server.data_dir(), &["--ns", "theirs", "--access", "write"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut feed = Feed::open(&server, "ns=mine", None, Some(&reader)).await;
    assert_eq!(feed.next().await.event, "ready");
    let refused = Feed::request(&server, "ns=mine", None, Some(&other)).await;
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    assert_eq!(
        Feed::request(&server, "ns=mine", None, None).await.status(),
        401
    );
    let bad = Feed::request(&server, "ns=bad%20name", None, Some(&reader)).await;
    assert!(
        matches!(bad.status().as_u16(), 403 | 422),
        "{}",
        bad.status()
    );
}

#[test]
fn pykv_watch_prints_one_line_per_event() {
    use std::io::{BufRead, BufReader};
    let server = Server::start();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args([
            "watch",
            "--ns",
            "c",
            "--prefix",
            "k",
            "--url",
            server.base_url(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.ends_with(" ready"), "{ready}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        server.set(Some("c"), "other", json!(0)).await;
        server.set(Some("c"), "k1", json!({"a": 1})).await;
        assert_eq!(server.delete("/delete/k1?ns=c").await.status, 200);
    });
    let set = lines.next().unwrap().unwrap();
    let delete = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let words: Vec<&str> = set.split(' ').collect();
    assert_eq!(words[1..], ["set", "k1", r#"{"a":1}"#], "{set}");
    let words: Vec<&str> = delete.split(' ').collect();
    assert_eq!(words[1..], ["delete", "k1"], "{delete}");
}

#[tokio::test]
async fn a_feed_outlives_the_header_read_timeout_and_ends_at_shutdown() {
    let mut server = Server::start_with(&["--header-read-timeout", "1"]);
    let mut feed = Feed::open(&server, "ns=long", None, None).await;
    assert_eq!(feed.next().await.event, "ready");
    // A connection with no request in flight is closed after 1 s; one
    // streaming a feed is answering all along.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.set(Some("long"), "still", json!(true)).await;
    let event = feed.next().await;
    assert_eq!((event.event.as_str(), event.key()), ("set", "still"));

    // SIGTERM: the server closes the feed rather than waiting for it.
    let started = Instant::now();
    server.terminate();
    assert!(server.wait_exit().success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server took {:?} to stop with a watcher",
        started.elapsed()
    );
    assert!(
        feed.ends_within(Duration::from_secs(2)).await,
        "the feed ended"
    );
}

#[tokio::test]
async fn an_eviction_is_an_evict_event() {
    if !backend_supports("limits") {
        return;
    }
    let server = Server::start_with(&["--max-keys", "3", "--eviction", "lru"]);
    let mut feed = Feed::open(&server, "ns=full", None, None).await;
    assert_eq!(feed.next().await.event, "ready");
    for i in 0..5 {
        server.set(Some("full"), &format!("k{i}"), json!(i)).await;
    }
    let events = feed.take(7).await;
    let evicted: Vec<&str> = (events.iter())
        .filter(|e| e.event == "evict")
        .map(Event::key)
        .collect();
    assert_eq!(evicted.len(), 2, "{events:?}");
    for key in evicted {
        assert_eq!(
            server.get(&format!("/get/{key}?ns=full")).await.status,
            404,
            "{key}"
        );
    }
    assert_eq!(events.iter().filter(|e| e.event == "set").count(), 5);
    assert_growing(&events);
}
