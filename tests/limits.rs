//! Bounded memory through the real server: limits, LRU, quotas from a
//! file, `noeviction`'s 507, and evictions that survive a restart.

mod common;

use common::{Server, run_to_exit};
use serde_json::json;

fn quota_file(dir: &std::path::Path, toml: &str) -> String {
    let path = dir.join("quotas.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn concurrent_writers_keep_the_store_within_max_keys() {
    if !common::backend_supports("limits") {
        return;
    }
    let server = std::sync::Arc::new(Server::start_with(&["--max-keys", "300"]));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let server = server.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let r = server
                        .set(Some(&format!("w{w}")), &format!("k{i}"), json!(i))
                        .await;
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let stats = server.stats().await;
    assert!(stats["total_keys"].as_u64().unwrap() <= 300, "{stats}");
    assert_eq!(
        stats["evictions"],
        1200 - stats["total_keys"].as_u64().unwrap()
    );
    assert_eq!(stats["max_keys"], 300);
}

#[tokio::test]
async fn max_memory_bounds_used_bytes_and_stats_report_them() {
    if !common::backend_supports("limits") {
        return;
    }
    let server = Server::start_with(&["--max-memory", "64kb"]);
    let value = "v".repeat(500);
    for i in 0..1_000 {
        server.set(Some("a"), &format!("k{i}"), json!(value)).await;
    }
    let stats = server.stats().await;
    let used = stats["used_bytes"].as_u64().unwrap();
    assert!(used <= 64 * 1024, "{stats}");
    assert!(used > 48 * 1024, "evicts only what it must: {stats}");
    assert_eq!(stats["max_bytes"], 64 * 1024);
    // The store's total also counts the namespace's own overhead (its
    // struct, a shard and its map slot: under 2 KB), the namespace's does
    // not.
    let entries = stats["namespaces"]["a"]["used_bytes"].as_u64().unwrap();
    assert!(entries < used && used - entries <= 2048, "{stats}");
    assert!(stats["namespaces"]["a"]["evictions"].as_u64().unwrap() > 800);
}

#[tokio::test]
async fn lru_keeps_a_hot_working_set() {
    if !common::backend_supports("limits") {
        return;
    }
    let server = Server::start_with(&["--max-keys", "200"]);
    for h in 0..40 {
        server.set(None, &format!("hot{h}"), json!(h)).await;
    }
    for round in 0..20 {
        for h in 0..40 {
            assert!(
                server.value(None, &format!("hot{h}")).await.is_some(),
                "hot{h} evicted in round {round}"
            );
        }
        for c in 0..50 {
            server
                .set(None, &format!("cold{round}-{c}"), json!(c))
                .await;
        }
    }
    assert!(server.total_keys().await <= 200);
}

#[tokio::test]
async fn a_tenant_writing_ten_times_its_quota_never_evicts_another_tenants_key() {
    if !common::backend_supports("quotas") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let quotas = quota_file(
        dir.path(),
        "[default]\nmax_keys = 1000\n\n[namespace.noisy]\nmax_keys = 50\n",
    );
    let server = Server::start_with(&["--quotas", &quotas]);
    for i in 0..100 {
        server.set(Some("quiet"), &format!("k{i}"), json!(i)).await;
    }
    for i in 0..500 {
        server.set(Some("noisy"), &format!("k{i}"), json!(i)).await;
    }
    for i in 0..100 {
        assert_eq!(
            server.value(Some("quiet"), &format!("k{i}")).await,
            Some(json!(i))
        );
    }
    let stats = server.stats().await;
    assert_eq!(stats["namespaces"]["noisy"]["total_keys"], 50);
    assert_eq!(stats["namespaces"]["noisy"]["evictions"], 450);
    assert_eq!(stats["namespaces"]["quiet"]["evictions"], 0);
}

#[tokio::test]
async fn noeviction_answers_507_and_changes_nothing() {
    if !common::backend_supports("limits") {
        return;
    }
    let server = Server::start_with(&["--max-keys", "3", "--eviction", "noeviction"]);
    for k in ["a", "b", "c"] {
        server.set(Some("t"), k, json!(k)).await;
    }
    let before = server.stats().await;
    let r = server
        .post_json("/set?ns=t", &json!({"key": "d", "value": "d"}))
        .await;
    assert_eq!(r.status, 507, "{r:?}");
    assert!(r.detail().contains("limit"), "{}", r.detail());
    assert!(
        r.detail().contains("--eviction lru"),
        "says what to do: {}",
        r.detail()
    );
    assert_eq!(server.get("/get/d?ns=t").await.status, 404);
    let after = server.stats().await;
    assert_eq!(after["total_keys"], before["total_keys"]);
    assert_eq!(after["used_bytes"], before["used_bytes"]);
    assert_eq!(after["evictions"], 0);
    // Overwrites and deletes still work at the limit.
    assert_eq!(server.set(Some("t"), "a", json!("A")).await.status, 200);
    assert_eq!(server.delete("/delete/b?ns=t").await.status, 200);
    assert_eq!(server.set(Some("t"), "d", json!("d")).await.status, 200);
}

/// A namespace at its quota under `noeviction`: a write that would pass
/// it is 507, saying what to do, and changes nothing; overwrites that do
/// not grow it and deletes still work; an entry larger than the quota's
/// bytes is refused; other namespaces keep their own quota.
#[tokio::test]
async fn a_namespace_at_its_quota_refuses_writes_under_noeviction() {
    if !common::backend_supports("quotas") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let quotas = quota_file(
        dir.path(),
        "[namespace.t]\nmax_keys = 3\nmax_bytes = \"4kb\"\n",
    );
    let server = Server::start_with(&["--quotas", &quotas, "--eviction", "noeviction"]);
    for k in ["a", "b", "c"] {
        assert_eq!(server.set(Some("t"), k, json!(k)).await.status, 200);
    }
    let r = server
        .post_json("/set?ns=t", &json!({"key": "d", "value": "d"}))
        .await;
    assert_eq!(r.status, 507, "{r:?}");
    assert!(
        r.detail()
            .contains("namespace \"t\" is at its limit of 4096 bytes and 3 keys"),
        "{}",
        r.detail()
    );
    assert!(r.detail().contains("--eviction lru"), "{}", r.detail());
    let r = server
        .post_json("/incr?ns=t", &json!({"key": "n", "by": 1}))
        .await;
    assert_eq!(r.status, 507, "{r:?}");
    assert_eq!(server.get("/get/d?ns=t").await.status, 404);
    assert_eq!(server.get("/get/n?ns=t").await.status, 404);
    let quota = server.get("/quota?ns=t").await;
    assert_eq!(quota.body["used_keys"], 3, "{quota:?}");
    assert_eq!(quota.body["max_keys"], 3, "{quota:?}");

    assert_eq!(server.set(Some("t"), "a", json!("A")).await.status, 200);
    assert_eq!(server.delete("/delete/b?ns=t").await.status, 200);
    assert_eq!(server.set(Some("t"), "d", json!("d")).await.status, 200);
    let big = server
        .post_json("/set?ns=t", &json!({"key": "a", "value": "x".repeat(5000)}))
        .await;
    assert_eq!(big.status, 507, "{big:?}");
    assert!(
        big.detail().contains("more than the 4096 bytes"),
        "{}",
        big.detail()
    );
    assert_eq!(server.value(Some("t"), "a").await, Some(json!("A")));
    for i in 0..10 {
        let other = server.set(Some("u"), &format!("k{i}"), json!(i)).await;
        assert_eq!(other.status, 200, "{other:?}");
    }
    assert_eq!(server.stats().await["evictions"], 0);
}

#[tokio::test]
async fn an_eviction_survives_a_restart() {
    if !common::backend_supports("limits") || !common::backend_supports("persistence") {
        return;
    }
    let mut server = Server::start_with(&["--max-keys", "10"]);
    for i in 0..30 {
        server.set(None, &format!("k{i}"), json!(i)).await;
    }
    let mut present = Vec::new();
    for i in 0..30 {
        present.push(server.value(None, &format!("k{i}")).await.is_some());
    }
    assert_eq!(present.iter().filter(|p| **p).count(), 10);
    let log = std::fs::read_to_string(server.data_dir().join("wal.log")).unwrap();
    assert_eq!(log.matches("\"evicted\":true").count(), 20);

    server.terminate();
    assert!(server.wait_exit().success());
    server.restart();
    for (i, was_present) in present.iter().enumerate() {
        let now_present = server.value(None, &format!("k{i}")).await.is_some();
        assert_eq!(now_present, *was_present, "key k{i} after restart");
    }
}

#[tokio::test]
async fn a_bad_quota_file_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = quota_file(dir.path(), "[namespace.\"a b\"]\nmax_keys = 1\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(["serve", "--port", "0", "--quotas", &quotas, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("quota file"), "{stderr}");
    assert!(stderr.contains("a b"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn an_admin_sets_a_quota_while_the_server_runs() {
    if !common::backend_supports("quotas") {
        return;
    }
    let server = Server::start();
    for i in 0..20 {
        server.set(Some("t"), &format!("k{i}"), json!(i)).await;
    }
    let r = server.get("/quota?ns=t").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["max_keys"], json!(null));
    assert_eq!(r.body["used_keys"], 20);

    let put = |body: serde_json::Value| {
        let request = server.client.put(server.url("/quota?ns=t")).json(&body);
        server.send(request)
    };
    let r = put(json!({"max_keys": 5, "max_bytes": null})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["max_keys"], 5);
    assert_eq!(
        r.body["used_keys"], 5,
        "over the new quota: evicted at once"
    );
    server.set(Some("t"), "more", json!(1)).await;
    assert_eq!(server.get("/namespaces/t/keys").await.body["total_keys"], 5);

    for bad in [
        json!({"max_keys": -1}),
        json!({"max_keys": "ten"}),
        json!([1]),
    ] {
        assert_eq!(put(bad.clone()).await.status, 422, "{bad}");
    }
    let r = server
        .send(server.client.put(server.url("/quota?ns=t")).body("{nope"))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(server.get("/quota?ns=t").await.body["max_keys"], 5);
}

/// Absurd numeric flags stop the start with the flag and its range named,
/// instead of a server that refuses (or evicts) every write, panics, or
/// never answers.
#[test]
fn absurd_flags_are_refused_at_start_naming_the_flag_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let max = "9223372036854775807";
    for (flag, value, range) in [
        ("--max-keys", "10000000000000000000", max),
        ("--max-memory", "9000000000gb", max),
        ("--max-memory", "99999999999999999999999", max),
        ("--max-connections", "0", "1..=1000000"),
        ("--max-connections", "100000000000", "1..=1000000"),
        ("--max-header-bytes", "1000000000", "8192..=1048576"),
        ("--max-body-bytes", "0", "64..=1073741824"),
        ("--max-key-bytes", "0", "1..=16777216"),
        ("--header-read-timeout", "18446744073709551615", "1..=86400"),
        ("--request-timeout", "0", "1..=86400"),
        ("--compact-ratio", "NaN", "over 1"),
        ("--compact-ratio", "0.5", "over 1"),
    ] {
        let (code, stderr) = run_to_exit(dir.path(), &[flag, value]);
        assert!(
            code.is_some_and(|c| c != 0),
            "{flag} {value} exited {code:?}"
        );
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(stderr.contains(range), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flag} {value}: {stderr}");
    }
    // The quota file is held to the same bound.
    let quotas = quota_file(dir.path(), "[default]\nmax_keys = 10000000000000000000\n");
    let (code, stderr) = run_to_exit(dir.path(), &["--quotas", &quotas]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}");
    assert!(
        stderr.contains("max_keys") && stderr.contains(max),
        "{stderr}"
    );
}

/// The largest limits accepted (those of `PUT /quota`) mean "practically
/// unlimited", under both policies.
#[tokio::test]
async fn the_largest_accepted_limits_keep_every_key() {
    if !common::backend_supports("limits") {
        return;
    }
    let max = "9223372036854775807";
    for policy in ["noeviction", "lru"] {
        let server =
            Server::start_with(&["--max-keys", max, "--max-memory", max, "--eviction", policy]);
        for i in 0..5 {
            server.set(Some("t"), &format!("k{i}"), json!(i)).await;
        }
        for i in 0..5 {
            assert_eq!(
                server.value(Some("t"), &format!("k{i}")).await,
                Some(json!(i)),
                "{policy}: k{i}"
            );
        }
        let stats = server.stats().await;
        assert_eq!(stats["total_keys"], 5, "{policy}: {stats}");
        assert_eq!(stats["evictions"], 0, "{policy}: {stats}");
        assert_eq!(stats["max_keys"], json!(9223372036854775807u64));
    }
}
