//! TTLs: a key is served until its TTL runs out, then it is gone everywhere
//! (gets, counts, namespace lists).

mod common;

use std::time::Duration;

use common::{Server, seed_fields};
use serde_json::{Value, json};

/// Past a 1 s TTL, with margin.
const PAST_ONE_SECOND: Duration = Duration::from_millis(1600);

async fn set_ttl(s: &Server, ns: Option<&str>, key: &str, value: Value, ttl: u64) {
    let mut body = json!({"key": key, "value": value, "ttl": ttl});
    if let Some(ns) = ns {
        body["namespace"] = json!(ns);
    }
    let r = s.post_json("/set", &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "success", "key": key, "namespace": ns})
    );
}

#[tokio::test]
async fn expired_keys_are_gone_and_not_counted() {
    let s = Server::start();
    set_ttl(&s, None, "short", json!("d"), 1).await;
    s.set(None, "forever", json!("d")).await;
    set_ttl(&s, Some("mixed"), "short", json!("m"), 1).await;
    s.set(Some("mixed"), "forever", json!("m")).await;
    set_ttl(&s, Some("only-ttl"), "a", json!(1), 1).await;
    set_ttl(&s, Some("only-ttl"), "b", json!(2), 1).await;
    set_ttl(&s, Some("long"), "a", json!("long"), 3600).await;

    // Before: everything is served and counted.
    assert_eq!(s.value(None, "short").await, Some(json!("d")));
    assert_eq!(s.value(Some("mixed"), "short").await, Some(json!("m")));
    assert_eq!(s.value(Some("only-ttl"), "a").await, Some(json!(1)));
    assert_eq!(s.total_keys().await, 7);
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({"namespaces": ["long", "mixed", "only-ttl"], "count": 3})
    );

    tokio::time::sleep(PAST_ONE_SECOND).await;

    // After: the TTL keys are gone.
    assert_eq!(s.value(None, "short").await, None);
    assert_eq!(s.value(Some("mixed"), "short").await, None);
    assert_eq!(s.value(Some("only-ttl"), "a").await, None);
    assert_eq!(s.value(Some("only-ttl"), "b").await, None);
    assert_eq!(s.value(None, "forever").await, Some(json!("d")));
    assert_eq!(s.value(Some("mixed"), "forever").await, Some(json!("m")));
    assert_eq!(s.value(Some("long"), "a").await, Some(json!("long")));

    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(3), "{st}");
    assert_eq!(st["default_namespace"]["total_keys"], json!(1), "{st}");
    assert_eq!(st["namespaces"]["mixed"]["total_keys"], json!(1), "{st}");
    assert_eq!(st["namespaces"]["long"]["total_keys"], json!(1), "{st}");
    assert!(st["namespaces"].get("only-ttl").is_none(), "{st}");

    let r = s.get("/health").await;
    assert_eq!(r.body, json!({"status": "healthy", "store_size": 3}));
    let r = s.get("/health?ns=mixed").await;
    assert_eq!(
        r.body,
        json!({"status": "healthy", "store_size": 1, "namespace": "mixed"})
    );
    let r = s.get("/namespaces/mixed/keys").await;
    assert_eq!(r.body, json!({"namespace": "mixed", "total_keys": 1}));
    let r = s.get("/namespaces/only-ttl/keys").await;
    assert_eq!(r.body, json!({"namespace": "only-ttl", "total_keys": 0}));
    let r = s.get("/stats?ns=only-ttl").await;
    assert_eq!(r.body["total_keys"], json!(0), "{r:?}");
    assert_eq!(r.body["namespace_stats"]["total_keys"], json!(0), "{r:?}");
    let r = s.get("/stats?ns=mixed").await;
    assert_eq!(r.body["total_keys"], json!(1), "{r:?}");

    let r = s.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": ["long", "mixed"], "count": 2}));

    // An expired key cannot be deleted either.
    let r = s.delete("/delete/short?ns=mixed").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));
    let r = s.delete("/delete/short").await;
    assert_eq!(r.status, 404, "{r:?}");
}

#[tokio::test]
async fn expired_namespace_is_not_listed_even_if_never_read() {
    let s = Server::start();
    set_ttl(&s, Some("ephemeral"), "a", json!(1), 1).await;
    set_ttl(&s, None, "a", json!(1), 1).await;
    tokio::time::sleep(PAST_ONE_SECOND).await;
    let r = s.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": [], "count": 0}));
    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(0), "{st}");
    assert_eq!(st["namespaces"], json!({}), "{st}");
    assert_eq!(st["default_namespace"]["total_keys"], json!(0), "{st}");
    let r = s.get("/health").await;
    assert_eq!(r.body, json!({"status": "healthy", "store_size": 0}));

    // The namespace can be used again.
    s.set(Some("ephemeral"), "b", json!(2)).await;
    let r = s.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": ["ephemeral"], "count": 1}));
    assert_eq!(s.value(Some("ephemeral"), "a").await, None);
}

#[tokio::test]
async fn setting_again_without_ttl_clears_the_ttl() {
    let s = Server::start();
    set_ttl(&s, None, "k", json!("v1"), 1).await;
    set_ttl(&s, Some("ns"), "k", json!("v1"), 1).await;
    s.set(None, "k", json!("v2")).await;
    s.set(Some("ns"), "k", json!("v2")).await;
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(s.value(None, "k").await, Some(json!("v2")));
    assert_eq!(s.value(Some("ns"), "k").await, Some(json!("v2")));
    assert_eq!(s.total_keys().await, 2);
}

#[tokio::test]
async fn setting_again_with_a_longer_ttl_extends_it() {
    let s = Server::start();
    set_ttl(&s, Some("ns"), "k", json!("v1"), 1).await;
    set_ttl(&s, Some("ns"), "k", json!("v2"), 60).await;
    // And the other way round: a long TTL replaced by a short one.
    set_ttl(&s, Some("ns"), "shrinks", json!("v1"), 60).await;
    set_ttl(&s, Some("ns"), "shrinks", json!("v2"), 1).await;
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(s.value(Some("ns"), "k").await, Some(json!("v2")));
    assert_eq!(s.value(Some("ns"), "shrinks").await, None);
    let r = s.get("/namespaces/ns/keys").await;
    assert_eq!(r.body, json!({"namespace": "ns", "total_keys": 1}));
}

#[tokio::test]
async fn ttl_with_namespace_in_query_and_null_ttl() {
    let s = Server::start();
    let r = s
        .post_json("/set?ns=q", &json!({"key": "k", "value": 1, "ttl": 1}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // An explicit null TTL means no TTL (as in the seed's Optional[int]).
    let r = s
        .post_json("/set?ns=q", &json!({"key": "n", "value": 1, "ttl": null}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.value(Some("q"), "k").await, Some(json!(1)));
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert_eq!(s.value(Some("q"), "k").await, None);
    assert_eq!(s.value(Some("q"), "n").await, Some(json!(1)));
}

#[tokio::test]
async fn get_of_an_expired_key_is_a_miss() {
    let s = Server::start();
    set_ttl(&s, Some("ns"), "k", json!(1), 1).await;
    s.set(Some("ns"), "stay", json!(1)).await;
    assert!(s.value(Some("ns"), "k").await.is_some());
    tokio::time::sleep(PAST_ONE_SECOND).await;
    assert!(s.value(Some("ns"), "k").await.is_none());
    let r = s.get("/stats?ns=ns").await;
    assert_eq!(
        seed_fields(&r.body["namespace_stats"]),
        json!({"cache_hits": 1, "cache_misses": 1, "total_keys": 1}),
        "{r:?}"
    );
    assert_eq!(r.body["cache_hits"], json!(1), "{r:?}");
    assert_eq!(r.body["cache_misses"], json!(1), "{r:?}");
}

/// Issue 12, item 3: a key set twice within one millisecond with the same
/// TTL (a client that pipelines or retries) lost its place in the expiry
/// index, and stayed counted, and held a `noeviction` store at its limit,
/// until someone read it. Each key is sent twice at once, so most pairs
/// land in the same millisecond.
#[tokio::test]
async fn keys_set_twice_at_once_with_one_ttl_are_freed_by_the_expiry_cycle() {
    if !common::backend_supports("limits") {
        return;
    }
    let s = Server::start_with(&["--max-keys", "100", "--eviction", "noeviction"]);
    for i in 0..100 {
        let key = format!("k{i}");
        tokio::join!(
            set_ttl(&s, Some("burst"), &key, json!(i), 1),
            set_ttl(&s, Some("burst"), &key, json!(i), 1),
        );
    }
    assert_eq!(s.total_keys().await, 100);

    tokio::time::sleep(PAST_ONE_SECOND).await;

    // Nobody read the keys: only the active expiry cycle freed them.
    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(0), "{st}");
    assert_eq!(st["used_bytes"], json!(0), "{st}");
    let r = s.get("/namespaces").await;
    assert_eq!(r.body["namespaces"], json!([]), "{r:?}");
    let quota = s.get("/quota?ns=burst").await;
    assert_eq!(quota.body["used_keys"], json!(0), "{quota:?}");
    // The limit is free again: 100 new keys fit.
    for i in 0..100 {
        s.set(Some("burst"), &format!("new{i}"), json!(i)).await;
    }
}
