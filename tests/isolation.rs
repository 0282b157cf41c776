//! Namespaces are truly isolated: no prefix tricks, no cross-talk, also under
//! concurrent load and while a large namespace is being cleared.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Server, seed_fields};
use serde_json::json;

#[tokio::test]
async fn default_key_with_namespace_prefix_is_a_different_key() {
    let s = Server::start();
    s.set(None, "app1:user:123", json!("in default")).await;
    s.set(Some("app1"), "user:123", json!("in app1")).await;

    assert_eq!(
        s.value(None, "app1:user:123").await,
        Some(json!("in default"))
    );
    assert_eq!(
        s.value(Some("app1"), "user:123").await,
        Some(json!("in app1"))
    );
    assert_eq!(s.value(None, "user:123").await, None);
    assert_eq!(s.value(Some("app1"), "app1:user:123").await, None);

    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(2), "{st}");
    assert_eq!(st["default_namespace"]["total_keys"], json!(1), "{st}");
    assert_eq!(st["namespaces"]["app1"]["total_keys"], json!(1), "{st}");

    // Deleting one leaves the other.
    assert_eq!(s.delete("/delete/user:123?ns=app1").await.status, 200);
    assert_eq!(
        s.value(None, "app1:user:123").await,
        Some(json!("in default"))
    );
    assert_eq!(s.delete("/delete/user:123?ns=app1").await.status, 404);
}

#[tokio::test]
async fn clearing_a_namespace_never_touches_default_keys_with_its_prefix() {
    let s = Server::start();
    let default_keys = ["app1:a", "app1:b", "app1", "app1:", "app1:user:123"];
    for key in default_keys {
        s.set(None, key, json!(key)).await;
    }
    for key in ["a", "b", "user:123"] {
        s.set(Some("app1"), key, json!(key)).await;
    }
    // Namespaces whose names start with "app1".
    s.set(Some("app10"), "a", json!("app10")).await;
    s.set(Some("app1.x"), "a", json!("app1.x")).await;
    s.set(Some("app1_"), "a", json!("app1_")).await;

    let r = s.delete("/namespaces/app1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "cleared", "namespace": "app1", "keys_deleted": 3})
    );

    for key in default_keys {
        assert_eq!(s.value(None, key).await, Some(json!(key)), "{key}");
    }
    for ns in ["app10", "app1.x", "app1_"] {
        assert_eq!(s.value(Some(ns), "a").await, Some(json!(ns)), "{ns}");
    }
    let st = s.stats().await;
    assert_eq!(st["total_keys"], json!(8), "{st}");
    assert_eq!(st["default_namespace"]["total_keys"], json!(5), "{st}");
    let r = s.get("/namespaces").await;
    assert_eq!(
        r.body,
        json!({"namespaces": ["app1.x", "app10", "app1_"], "count": 3})
    );
}

#[tokio::test]
async fn same_key_in_several_namespaces_holds_separate_values() {
    let s = Server::start();
    s.set(None, "k", json!("default")).await;
    s.set(Some("a"), "k", json!("a")).await;
    s.set(Some("b"), "k", json!("b")).await;
    // Names are case-sensitive.
    s.set(Some("A"), "k", json!("A")).await;
    // Keys are case-sensitive.
    s.set(Some("a"), "K", json!("a-upper")).await;

    assert_eq!(s.value(None, "k").await, Some(json!("default")));
    assert_eq!(s.value(Some("a"), "k").await, Some(json!("a")));
    assert_eq!(s.value(Some("b"), "k").await, Some(json!("b")));
    assert_eq!(s.value(Some("A"), "k").await, Some(json!("A")));
    assert_eq!(s.value(Some("a"), "K").await, Some(json!("a-upper")));
    assert_eq!(s.value(None, "K").await, None);

    // Overwriting in one namespace leaves the others.
    s.set(Some("b"), "k", json!("b2")).await;
    assert_eq!(s.value(Some("a"), "k").await, Some(json!("a")));
    assert_eq!(s.value(None, "k").await, Some(json!("default")));

    // Deleting in one namespace leaves the others.
    let r = s.delete("/delete/k?ns=a").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.value(Some("a"), "k").await, None);
    assert_eq!(s.value(Some("a"), "K").await, Some(json!("a-upper")));
    assert_eq!(s.value(Some("b"), "k").await, Some(json!("b2")));
    assert_eq!(s.value(Some("A"), "k").await, Some(json!("A")));
    assert_eq!(s.value(None, "k").await, Some(json!("default")));

    // Deleting in the default namespace leaves the named ones.
    assert_eq!(s.delete("/delete/k").await.status, 200);
    assert_eq!(s.value(Some("b"), "k").await, Some(json!("b2")));
    assert_eq!(s.total_keys().await, 3);
}

const TASKS: usize = 16;
const SETS_PER_TASK: usize = 200;

/// 16 tasks × 200 sets at once: half to each task's own namespace, a quarter
/// to distinct keys of a shared namespace, a quarter to 10 keys of the shared
/// namespace that every task overwrites. Then 16 × 100 concurrent gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sets_in_distinct_and_shared_namespaces() {
    let s = Arc::new(Server::start());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..SETS_PER_TASK {
                let value = json!({"t": t, "i": i});
                match i % 4 {
                    0 | 1 => {
                        s.set(Some(&format!("own{t}")), &format!("k{i}"), value)
                            .await
                    }
                    2 => s.set(Some("shared"), &format!("t{t}:k{i}"), value).await,
                    _ => {
                        s.set(Some("shared"), &format!("hot{}", (i / 4) % 10), value)
                            .await
                    }
                };
            }
        }));
    }
    for task in tasks {
        task.await.expect("set task panicked");
    }

    let own_keys = SETS_PER_TASK / 2;
    let shared_keys = TASKS * SETS_PER_TASK / 4 + 10;
    for t in 0..TASKS {
        let r = s.get(&format!("/namespaces/own{t}/keys")).await;
        assert_eq!(
            r.body,
            json!({"namespace": format!("own{t}"), "total_keys": own_keys})
        );
    }
    let r = s.get("/namespaces/shared/keys").await;
    assert_eq!(
        r.body,
        json!({"namespace": "shared", "total_keys": shared_keys})
    );
    let r = s.get("/namespaces").await;
    assert_eq!(r.body["count"], json!(TASKS + 1), "{r:?}");
    let st = s.stats().await;
    assert_eq!(
        st["total_keys"],
        json!(TASKS * own_keys + shared_keys),
        "{st}"
    );
    assert_eq!(st["default_namespace"]["total_keys"], json!(0), "{st}");

    // Each hot key holds one of the values written to it.
    for h in 0..10 {
        let v = s
            .value(Some("shared"), &format!("hot{h}"))
            .await
            .expect("hot key");
        let i = v["i"].as_u64().unwrap() as usize;
        assert!(v["t"].as_u64().unwrap() < TASKS as u64, "{v}");
        assert!(i % 4 == 3 && (i / 4) % 10 == h, "hot{h} = {v}");
    }

    // Concurrent gets: 50 hits and 50 misses per task, counted exactly.
    let before = s.stats().await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let ns = format!("own{t}");
            for i in 0..100 {
                // Keys k{i} exist for i % 4 in {0, 1}.
                let key = format!("k{}", 2 * i);
                let v = s.value(Some(&ns), &key).await;
                if (2 * i) % 4 == 0 {
                    assert_eq!(v, Some(json!({"t": t, "i": 2 * i})));
                } else {
                    assert_eq!(v, None);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("get task panicked");
    }
    let st = s.stats().await;
    let delta = |field: &str| st[field].as_u64().unwrap() - before[field].as_u64().unwrap();
    assert_eq!(delta("cache_hits"), (TASKS * 50) as u64, "{st}");
    assert_eq!(delta("cache_misses"), (TASKS * 50) as u64, "{st}");
    for t in 0..TASKS {
        let ns = &st["namespaces"][format!("own{t}")];
        assert_eq!(
            seed_fields(ns),
            json!({"cache_hits": 50, "cache_misses": 50, "total_keys": own_keys}),
            "own{t}"
        );
    }
}

const BIG: usize = 20_000;
const SMALL: usize = 100;
const LOADERS: usize = 32;

/// A namespace of 20k keys is cleared while another namespace is being read;
/// every read of the other namespace answers correctly throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clearing_a_large_namespace_while_another_is_read() {
    let s = Arc::new(Server::start());
    let mut loaders = Vec::new();
    for l in 0..LOADERS {
        let s = s.clone();
        loaders.push(tokio::spawn(async move {
            for i in (l..BIG).step_by(LOADERS) {
                s.set(Some("big"), &format!("key:{i}"), json!(i)).await;
            }
        }));
    }
    for i in 0..SMALL {
        s.set(Some("small"), &format!("key:{i}"), json!({"small": i}))
            .await;
    }
    for loader in loaders {
        loader.await.expect("loader panicked");
    }
    let r = s.get("/namespaces/big/keys").await;
    assert_eq!(r.body, json!({"namespace": "big", "total_keys": BIG}));

    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (s, done, reads) = (s.clone(), done.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r;
            // Keep reading until the clear has answered, and a little after.
            let mut after = 0;
            while after < 20 {
                if done.load(Ordering::SeqCst) {
                    after += 1;
                }
                let key = format!("key:{}", i % SMALL);
                let v = s.value(Some("small"), &key).await;
                assert_eq!(v, Some(json!({"small": i % SMALL})), "{key}");
                reads.fetch_add(1, Ordering::Relaxed);
                i += 7;
            }
        }));
    }
    // Let the readers get going first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = s.delete("/namespaces/big").await;
    done.store(true, Ordering::SeqCst);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "cleared", "namespace": "big", "keys_deleted": BIG})
    );
    for reader in readers {
        reader.await.expect("reader panicked");
    }
    assert!(reads.load(Ordering::Relaxed) >= 80);

    let r = s.get("/namespaces/big/keys").await;
    assert_eq!(r.body, json!({"namespace": "big", "total_keys": 0}));
    let r = s.get("/namespaces/small/keys").await;
    assert_eq!(r.body, json!({"namespace": "small", "total_keys": SMALL}));
    let r = s.get("/namespaces").await;
    assert_eq!(r.body, json!({"namespaces": ["small"], "count": 1}));
    assert_eq!(s.value(Some("big"), "key:0").await, None);
    assert_eq!(s.total_keys().await, SMALL as u64);
}
