//! `pykv migrate`: an embedded data directory copied into a real Redis
//! started by the test, and back into a new directory, values and TTL
//! deadlines included; a directory a running server holds is refused.
//! Skipped when `redis-server` is not installed (.ci/run installs it and
//! runs this file after the Redis conformance runs).

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use common::redis_server::RedisServer;
use serde_json::json;

/// `pykv migrate ARGS`: exit code, stdout, stderr.
fn migrate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .arg("migrate")
        .args(args)
        .arg("--quiet")
        .output()
        .expect("run pykv migrate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every namespace's export, in order, as one text.
async fn exports(server: &Server, namespaces: &[&str]) -> String {
    let mut all = String::new();
    for ns in namespaces {
        let url = server.url(&format!("/namespaces/{ns}/export"));
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        all.push_str(&response.text().await.unwrap());
    }
    all
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[tokio::test]
async fn migrate_copies_a_data_directory_into_redis_and_back_with_deadlines() {
    if !RedisServer::available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let redis_url = redis.url();
    let from = tempfile::tempdir().unwrap();
    let embedded = ["--backend", "embedded"];

    let mut source = Server::start_in(from.path(), &embedded);
    for i in 0..1200 {
        let ttl = (i % 4 == 0).then_some(600);
        let body = json!({"key": format!("k{i:04}"), "value": {"i": i}, "ttl": ttl});
        assert_eq!(source.post_json("/set?ns=alpha", &body).await.status, 200);
    }
    for i in 0..3 {
        source.set(Some("beta"), &format!("b{i}"), json!("x")).await;
        source.set(None, &format!("d{i}"), json!(i)).await;
    }
    let namespaces = ["alpha", "beta"];
    let before = exports(&source, &namespaces).await;

    // A directory a running server holds is refused: its lock is taken.
    let (code, _, stderr) = migrate(&["--from-data-dir", dir_arg(from.path()), "--to", &redis_url]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("cannot open the source"), "{stderr}");
    source.terminate();
    source.wait_exit();

    let (code, stdout, stderr) =
        migrate(&["--from-data-dir", dir_arg(from.path()), "--to", &redis_url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("namespace \"alpha\": 1200 keys copied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("namespace \"beta\": 3 keys copied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the default namespace: 3 keys copied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("migrated 1206 keys in 3 namespaces"),
        "{stdout}"
    );

    // A server on that Redis serves the same keys, values and deadlines.
    let on_redis = Server::start_with(&["--backend", &redis_url]);
    assert_eq!(exports(&on_redis, &namespaces).await, before);
    assert_eq!(on_redis.value(None, "d2").await, Some(json!(2)));
    let left = on_redis.get("/ttl/k0000?ns=alpha").await.body["ttl"]
        .as_u64()
        .unwrap();
    assert!((590..=600).contains(&left), "{left}");
    assert_eq!(
        on_redis.get("/ttl/k0001?ns=alpha").await.body["ttl"],
        json!(null)
    );
    drop(on_redis);

    // And back, into a new directory.
    let back = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        migrate(&["--from", &redis_url, "--to-data-dir", dir_arg(back.path())]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("migrated 1206 keys in 3 namespaces"),
        "{stdout}"
    );
    let restored = Server::start_in(back.path(), &embedded);
    assert_eq!(exports(&restored, &namespaces).await, before);
    assert_eq!(restored.value(None, "d0").await, Some(json!(0)));

    // Only the namespaces named.
    let only = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = migrate(&[
        "--from",
        &redis_url,
        "--to-data-dir",
        dir_arg(only.path()),
        "--ns",
        "beta",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("migrated 3 keys in 1 namespaces"),
        "{stdout}"
    );
}

#[test]
fn migrate_needs_one_source_and_one_target() {
    let (code, _, stderr) = migrate(&["--to", "redis://127.0.0.1:1"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = migrate(&["--from-data-dir", "/nonexistent", "--to", "nonsense"]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// Into a Redis Cluster and back, when .ci/run gives one
/// (`PYKV_REDIS_CLUSTER_URL`), under a key prefix of the test's own.
#[tokio::test]
async fn migrate_copies_into_a_redis_cluster_and_back() {
    let Ok(cluster) = std::env::var("PYKV_REDIS_CLUSTER_URL") else {
        eprintln!("SKIPPED: PYKV_REDIS_CLUSTER_URL is not set");
        return;
    };
    let prefix = format!("migrate-{}", std::process::id());
    let from = tempfile::tempdir().unwrap();
    let embedded = ["--backend", "embedded"];
    let mut source = Server::start_in(from.path(), &embedded);
    for ns in ["c1", "c2", "c3"] {
        for i in 0..50 {
            let body = json!({"key": format!("k{i}"), "value": [ns, i], "ttl": 900});
            assert_eq!(
                source
                    .post_json(&format!("/set?ns={ns}"), &body)
                    .await
                    .status,
                200
            );
        }
    }
    let before = exports(&source, &["c1", "c2", "c3"]).await;
    source.terminate();
    source.wait_exit();

    let to_cluster = [
        "--from-data-dir",
        dir_arg(from.path()),
        "--to",
        &cluster,
        "--redis-prefix",
        &prefix,
    ];
    let (code, stdout, stderr) = migrate(&to_cluster);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("migrated 150 keys in 3 namespaces"),
        "{stdout}"
    );

    let back = tempfile::tempdir().unwrap();
    let from_cluster = [
        "--from",
        &cluster,
        "--to-data-dir",
        dir_arg(back.path()),
        "--redis-prefix",
        &prefix,
    ];
    let (code, stdout, stderr) = migrate(&from_cluster);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let restored = Server::start_in(back.path(), &embedded);
    assert_eq!(exports(&restored, &["c1", "c2", "c3"]).await, before);
}
