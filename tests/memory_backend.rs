//! The test-only backend (`--backend memory`) itself: what it refuses.
//! What it shares with every backend is checked by the API conformance
//! tests, run against it by .ci/run.

mod common;

use common::{Server, run_to_exit};
use serde_json::json;

#[tokio::test]
async fn it_keeps_keys_and_answers_501_for_what_it_lacks() {
    let server = Server::start_with(&["--backend", "memory"]);
    assert_eq!(server.set(Some("a"), "k", json!([1])).await.status, 200);
    assert_eq!(server.value(Some("a"), "k").await, Some(json!([1])));

    let compact = server.post_json("/compact", &json!({})).await;
    assert_eq!(compact.status, 501, "{compact:?}");
    assert_eq!(
        compact.detail(),
        "this server's storage backend (memory) does not support compaction (it keeps no \
         log); run the server with --backend embedded for it"
    );
    let quota = server.get("/quota?ns=a").await;
    assert_eq!(quota.status, 501, "{quota:?}");
    assert!(
        quota.detail().contains("does not support quotas"),
        "{quota:?}"
    );

    // No log: /stats has no log_size, and /metrics no log family.
    let stats = server.stats().await;
    assert_eq!(stats.get("log_size"), None, "{stats}");
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("pykv_keys"), "{metrics}");
    assert!(!metrics.contains("pykv_log_size_bytes"), "{metrics}");
}

#[test]
fn it_refuses_to_start_with_limits_it_cannot_keep() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &["--backend", "memory", "--max-keys", "10"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--backend memory does not support memory or key limits"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_backend_is_refused_with_the_ones_available() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &["--backend", "redis-ish"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown backend \"redis-ish\"; the one available is embedded"),
        "{stderr}"
    );
}
