//! The HTTP API end to end: each route's answer shape and the counters
//! behind /stats and /health.

mod common;

use common::{Server, enc, seed_fields};
use serde_json::{Value, json};

#[tokio::test]
async fn set_get_delete_in_default_namespace() {
    let s = Server::start();
    let r = s
        .post_json("/set", &json!({"key": "user:123", "value": "alice"}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "success", "key": "user:123", "namespace": null})
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");

    let r = s.get("/get/user:123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"key": "user:123", "value": "alice", "namespace": null})
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");

    let r = s.delete("/delete/user:123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "deleted", "key": "user:123", "namespace": null})
    );

    let r = s.get("/get/user:123").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));
    let r = s.delete("/delete/user:123").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));
}

#[tokio::test]
async fn set_get_delete_with_namespace_in_query() {
    let s = Server::start();
    let r = s
        .post_json(
            "/set?ns=app1",
            &json!({"key": "user:123", "value": "alice"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "success", "key": "user:123", "namespace": "app1"})
    );

    let r = s.get("/get/user:123?ns=app1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"key": "user:123", "value": "alice", "namespace": "app1"})
    );
    // Not visible without the namespace.
    assert_eq!(s.value(None, "user:123").await, None);

    let r = s.delete("/delete/user:123?ns=app1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "deleted", "key": "user:123", "namespace": "app1"})
    );
    let r = s.get("/get/user:123?ns=app1").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));
    let r = s.delete("/delete/user:123?ns=app1").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));
}

#[tokio::test]
async fn namespace_in_body() {
    let s = Server::start();
    let r = s
        .post_json(
            "/set",
            &json!({"key": "user:123", "value": "alice", "namespace": "app1", "ttl": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "success", "key": "user:123", "namespace": "app1"})
    );
    assert_eq!(
        s.value(Some("app1"), "user:123").await,
        Some(json!("alice"))
    );
    assert_eq!(s.value(None, "user:123").await, None);
}

#[tokio::test]
async fn body_namespace_wins_over_query() {
    let s = Server::start();
    let r = s
        .post_json(
            "/set?ns=fromquery",
            &json!({"key": "k", "value": "v", "namespace": "frombody"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "success", "key": "k", "namespace": "frombody"})
    );
    assert_eq!(s.value(Some("frombody"), "k").await, Some(json!("v")));
    assert_eq!(s.value(Some("fromquery"), "k").await, None);
    assert_eq!(s.value(None, "k").await, None);
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({"namespaces": ["frombody"], "count": 1}),
        "{r:?}"
    );
}

#[tokio::test]
async fn overwrite_replaces_the_value() {
    let s = Server::start();
    s.set(Some("ns"), "k", json!("one")).await;
    s.set(Some("ns"), "k", json!({"two": 2})).await;
    assert_eq!(s.value(Some("ns"), "k").await, Some(json!({"two": 2})));
    let r = s.get("/namespaces/ns/keys").await;
    assert_eq!(r.body, json!({"namespace": "ns", "total_keys": 1}));
    assert_eq!(s.total_keys().await, 1);
}

#[tokio::test]
async fn any_json_value_round_trips() {
    let s = Server::start();
    let values = [
        json!("alice"),
        json!(""),
        json!("ключ 日本 🦀 \"quoted\" \\ \n\t"),
        json!("{\"user_id\": \"alice\", \"role\": \"admin\"}"),
        json!(0),
        json!(-17),
        json!(2.5),
        json!(-1.25e-7),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(true),
        json!(false),
        json!(null),
        json!([]),
        json!({}),
        json!([1, "two", null, [3.5, {"four": false}]]),
        json!({"user": {"id": 123, "tags": ["a", "b"], "profile": {"age": null, "ok": true}}}),
    ];
    for ns in [None, Some("vals")] {
        for (i, value) in values.iter().enumerate() {
            let key = format!("v{i}");
            s.set(ns, &key, value.clone()).await;
            let r = s.get(&format!("/get/{key}{}", common::ns_query(ns))).await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(
                r.body,
                json!({"key": key, "value": value, "namespace": ns}),
                "value {value} in {ns:?}"
            );
        }
    }
    // A pretty-printed body (with newlines) is the same JSON value.
    let r = s
        .post_raw(
            "/set",
            "{\n  \"key\": \"pretty\",\n  \"value\": {\n    \"a\": [1,\n 2],\n    \"b\": \"x\\ny\"\n  }\n}\n",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        s.value(None, "pretty").await,
        Some(json!({"a": [1, 2], "b": "x\ny"}))
    );
    assert_eq!(s.total_keys().await, 2 * values.len() as u64 + 1);
}

#[tokio::test]
async fn namespaces_lists_sorted_named_namespaces_with_live_keys() {
    let s = Server::start();
    let r = s.get("/namespaces").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"namespaces": [], "count": 0}));

    s.set(None, "default-key", json!(1)).await;
    for ns in ["zeta", "alpha", "Mid", "b-1", "a.b", "x_y", "9"] {
        s.set(Some(ns), "k", json!(ns)).await;
    }
    s.set(Some("alpha"), "k2", json!(2)).await;
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({
            "namespaces": ["9", "Mid", "a.b", "alpha", "b-1", "x_y", "zeta"],
            "count": 7
        }),
        "{r:?}"
    );

    // Deleting a namespace's last key removes it from the list.
    assert_eq!(s.delete("/delete/k?ns=zeta").await.status, 200);
    // Deleting one of two keys does not.
    assert_eq!(s.delete("/delete/k?ns=alpha").await.status, 200);
    // Clearing removes it.
    assert_eq!(s.delete("/namespaces/Mid").await.status, 200);
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({"namespaces": ["9", "a.b", "alpha", "b-1", "x_y"], "count": 5}),
        "{r:?}"
    );
}

#[tokio::test]
async fn namespace_key_counts() {
    let s = Server::start();
    for i in 0..3 {
        s.set(Some("app1"), &format!("k{i}"), json!(i)).await;
    }
    s.set(Some("app2"), "k0", json!(0)).await;
    s.set(None, "k0", json!(0)).await;
    let r = s.get("/namespaces/app1/keys").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"namespace": "app1", "total_keys": 3}));
    let r = s.get("/namespaces/app2/keys").await;
    assert_eq!(r.body, json!({"namespace": "app2", "total_keys": 1}));
    // A namespace never used is empty, not an error.
    let r = s.get("/namespaces/never-used/keys").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"namespace": "never-used", "total_keys": 0}));
}

#[tokio::test]
async fn clear_namespace() {
    let s = Server::start();
    for i in 0..5 {
        s.set(Some("a"), &format!("k{i}"), json!(i)).await;
    }
    for i in 0..2 {
        s.set(Some("b"), &format!("k{i}"), json!(i)).await;
    }
    s.set(None, "k0", json!("default")).await;
    assert_eq!(s.total_keys().await, 8);

    let r = s.delete("/namespaces/a").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "cleared", "namespace": "a", "keys_deleted": 5})
    );
    for i in 0..5 {
        assert_eq!(s.value(Some("a"), &format!("k{i}")).await, None);
    }
    assert_eq!(s.value(Some("b"), "k0").await, Some(json!(0)));
    assert_eq!(s.value(Some("b"), "k1").await, Some(json!(1)));
    assert_eq!(s.value(None, "k0").await, Some(json!("default")));
    assert_eq!(s.total_keys().await, 3);
    let r = s.get("/namespaces/a/keys").await;
    assert_eq!(r.body, json!({"namespace": "a", "total_keys": 0}));

    // Clearing again (or clearing a namespace never used) deletes nothing.
    let r = s.delete("/namespaces/a").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "cleared", "namespace": "a", "keys_deleted": 0})
    );
    let r = s.delete("/namespaces/never-used").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "cleared", "namespace": "never-used", "keys_deleted": 0})
    );

    // The namespace can be used again.
    s.set(Some("a"), "k0", json!("again")).await;
    assert_eq!(s.value(Some("a"), "k0").await, Some(json!("again")));
    let r = s.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": ["a", "b"], "count": 2}));
}

fn ns_stats(hits: u64, misses: u64, keys: u64) -> Value {
    json!({"cache_hits": hits, "cache_misses": misses, "total_keys": keys})
}

#[tokio::test]
async fn stats_on_a_fresh_server() {
    let s = Server::start();
    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(0), "{st}");
    assert_eq!(st["cache_hits"], json!(0), "{st}");
    assert_eq!(st["cache_misses"], json!(0), "{st}");
    assert_eq!(st["evictions"], json!(0), "{st}");
    assert_eq!(st["namespaces"], json!({}), "{st}");
    assert_eq!(
        seed_fields(&st["default_namespace"]),
        ns_stats(0, 0, 0),
        "{st}"
    );
    for field in ["last_compaction", "uptime_seconds"] {
        assert!(st.get(field).is_some(), "no {field} in {st}");
    }
    if common::backend_supports("persistence") {
        assert!(st["log_size"].is_number(), "{st}");
    } else {
        assert!(
            st.get("log_size").is_none(),
            "a log's size without a log: {st}"
        );
    }
    assert!(st["uptime_seconds"].is_number(), "{st}");
    assert!(st.get("namespace").is_none(), "{st}");
    assert!(st.get("namespace_stats").is_none(), "{st}");

    let r = s.get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"status": "healthy", "store_size": 0}));
}

#[tokio::test]
async fn stats_count_hits_and_misses_per_namespace() {
    let s = Server::start();
    s.set(None, "d1", json!("x")).await;
    s.set(Some("app1"), "a", json!(1)).await;
    s.set(Some("app1"), "b", json!(2)).await;
    s.set(Some("app1"), "gone", json!(3)).await;
    s.set(Some("app2"), "c", json!(3)).await;
    assert_eq!(s.delete("/delete/gone?ns=app1").await.status, 200);
    // Deleting a missing key is neither a hit nor a miss.
    assert_eq!(s.delete("/delete/missing?ns=app1").await.status, 404);

    // default: 2 hits, 1 miss
    assert!(s.value(None, "d1").await.is_some());
    assert!(s.value(None, "d1").await.is_some());
    assert!(s.value(None, "a").await.is_none());
    // app1: 1 hit, 3 misses (one of them a deleted key)
    assert!(s.value(Some("app1"), "a").await.is_some());
    assert!(s.value(Some("app1"), "nope").await.is_none());
    assert!(s.value(Some("app1"), "d1").await.is_none());
    assert!(s.value(Some("app1"), "gone").await.is_none());
    // app2: 1 hit
    assert!(s.value(Some("app2"), "c").await.is_some());
    // a namespace without keys: 1 miss, counted globally only
    assert!(s.value(Some("ghost"), "c").await.is_none());

    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(4), "{st}");
    assert_eq!(st["cache_hits"], json!(4), "{st}");
    assert_eq!(st["cache_misses"], json!(5), "{st}");
    assert_eq!(
        seed_fields(&st["namespaces"]),
        json!({"app1": ns_stats(1, 3, 2), "app2": ns_stats(1, 0, 1)}),
        "{st}"
    );
    assert_eq!(
        seed_fields(&st["default_namespace"]),
        ns_stats(2, 1, 1),
        "{st}"
    );

    // Stats for one namespace.
    let r = s.get("/stats?ns=app1").await;
    assert_eq!(r.status, 200, "{r:?}");
    let st = r.body;
    assert_eq!(st["namespace"], json!("app1"), "{st}");
    assert_eq!(
        seed_fields(&st["namespace_stats"]),
        ns_stats(1, 3, 2),
        "{st}"
    );
    assert_eq!(st["total_keys"], json!(2), "{st}");
    assert_eq!(st["cache_hits"], json!(4), "{st}");
    assert_eq!(st["cache_misses"], json!(5), "{st}");

    let r = s.get("/stats?ns=never-used").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["namespace"], json!("never-used"), "{r:?}");
    assert_eq!(
        seed_fields(&r.body["namespace_stats"]),
        ns_stats(0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.body["total_keys"], json!(0), "{r:?}");

    // Reading stats is not a GET of a key: the counters did not move.
    let st = s.stats().await;
    assert_eq!(st["cache_hits"], json!(4), "{st}");
    assert_eq!(st["cache_misses"], json!(5), "{st}");
}

#[tokio::test]
async fn health_counts_live_keys() {
    let s = Server::start();
    s.set(None, "d", json!(1)).await;
    s.set(Some("app1"), "a", json!(1)).await;
    s.set(Some("app1"), "b", json!(1)).await;
    s.set(Some("app2"), "a", json!(1)).await;
    let r = s.get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"status": "healthy", "store_size": 4}));
    let r = s.get("/health?ns=app1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "healthy", "store_size": 2, "namespace": "app1"})
    );
    let r = s.get("/health?ns=empty").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "healthy", "store_size": 0, "namespace": "empty"})
    );
}

/// The use cases of NAMESPACES.md, as written there.
#[tokio::test]
async fn seed_use_cases() {
    let s = Server::start();
    let sets = [
        ("tenant_acme", "config:theme", "dark"),
        ("tenant_acme", "user:count", "1500"),
        ("tenant_globex", "config:theme", "light"),
        ("tenant_globex", "user:count", "3200"),
        ("dev", "db:host", "localhost"),
        ("dev", "debug", "true"),
        ("staging", "db:host", "staging-db.example.com"),
        ("staging", "debug", "false"),
        ("prod", "db:host", "prod-db.example.com"),
        ("prod", "debug", "false"),
        ("auth", "session:user1", "token_abc"),
        ("payment", "balance:user1", "1000.00"),
    ];
    for (ns, key, value) in sets {
        let r = s
            .post_json(
                &format!("/set?ns={ns}"),
                &json!({"key": key, "value": value}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let sessions = [
        (
            "webapp",
            "session:alice",
            "{\"user_id\": \"alice\", \"role\": \"admin\"}",
            3600,
        ),
        (
            "mobileapp",
            "session:bob",
            "{\"user_id\": \"bob\", \"role\": \"user\"}",
            7200,
        ),
    ];
    for (ns, key, value, ttl) in sessions {
        let r = s
            .post_json(
                &format!("/set?ns={ns}"),
                &json!({"key": key, "value": value, "ttl": ttl}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    for (ns, key, value) in sets {
        let r = s.get(&format!("/get/{key}?ns={ns}")).await;
        assert_eq!(
            r.body,
            json!({"key": key, "value": value, "namespace": ns}),
            "{r:?}"
        );
    }
    for (ns, key, value, _) in sessions {
        assert_eq!(s.value(Some(ns), key).await, Some(json!(value)));
    }
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({
            "namespaces": ["auth", "dev", "mobileapp", "payment", "prod", "staging",
                           "tenant_acme", "tenant_globex", "webapp"],
            "count": 9
        })
    );
    assert_eq!(s.total_keys().await, 14);
    // Colons may be sent encoded too.
    assert_eq!(
        s.get(&format!("/get/{}?ns=dev", enc("db:host"))).await.body["value"],
        json!("localhost")
    );
}

/// Every answer decodes into its type of `pykv::api`, the types the Rust
/// client decodes with, and that value encodes back to the very bytes the
/// server sent: the types hold every field, in the server's order.
#[tokio::test]
async fn every_answer_round_trips_through_its_api_type() {
    use pykv::api;

    let s = Server::start();
    let key = "k\"é/x";
    let set = s
        .post_json(
            "/set?ns=app1",
            &json!({"key": key, "value": {"a": [1, 2.5], "b": null}, "ttl": 60}),
        )
        .await;
    round_trip::<api::SetAnswer>(&set);
    round_trip::<api::SetAnswer>(&s.set(None, "plain", json!("v")).await);
    s.set(Some("app1"), "k2", json!(1)).await;
    round_trip::<api::GetAnswer>(&s.get(&format!("/get/{}?ns=app1", enc(key))).await);
    round_trip::<api::GetAnswer>(&s.get("/get/plain").await);
    round_trip::<api::NamespacesAnswer>(&s.get("/namespaces").await);
    round_trip::<api::NamespaceKeysAnswer>(&s.get("/namespaces/app1/keys").await);
    round_trip::<api::KeysAnswer>(&s.get("/keys?ns=app1&limit=1").await);
    round_trip::<api::KeysAnswer>(&s.get("/keys").await);
    round_trip::<api::StatsAnswer>(&s.get("/stats").await);
    round_trip::<api::StatsAnswer>(&s.get("/stats?ns=app1").await);
    round_trip::<api::HealthAnswer>(&s.get("/health").await);
    round_trip::<api::HealthAnswer>(&s.get("/health?ns=app1").await);
    if common::backend_supports("quotas") {
        round_trip::<api::QuotaAnswer>(&s.get("/quota?ns=app1").await);
        let put = s.client.put(s.url("/quota")).body(r#"{"max_keys": 10}"#);
        round_trip::<api::QuotaAnswer>(&s.send(put).await);
    }
    let incr = s
        .post_json("/incr?ns=app1", &json!({"key": "n", "by": -2}))
        .await;
    round_trip::<api::IncrAnswer>(&incr);
    round_trip::<api::DeleteAnswer>(&s.delete("/delete/k2?ns=app1").await);
    round_trip::<api::ClearAnswer>(&s.delete("/namespaces/app1").await);
    if common::backend_supports("compaction") {
        round_trip::<api::CompactAnswer>(&s.post_raw("/compact", "").await);
    }
    let missing = s.get("/get/missing").await;
    assert_eq!(missing.status, 404);
    let error: api::ErrorBody = serde_json::from_str(&missing.text).unwrap();
    assert_eq!(serde_json::to_string(&error).unwrap(), missing.text);
    round_trip::<api::Performance>(&s.get("/performance").await);
    round_trip::<api::RecentErrors>(&s.get("/performance/recent-errors").await);
}

/// Decodes a 200 answer as `T` and encodes it again: the same bytes.
fn round_trip<T>(answer: &common::Resp)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let what = std::any::type_name::<T>();
    assert_eq!(answer.status, 200, "{what}: {answer:?}");
    let decoded: T = serde_json::from_str(&answer.text)
        .unwrap_or_else(|e| panic!("{what} cannot decode {}: {e}", answer.text));
    assert_eq!(
        serde_json::to_string(&decoded).unwrap(),
        answer.text,
        "{what}"
    );
}
