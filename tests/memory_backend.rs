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
    let metrics = server.text("/metrics").await;
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
        stderr.contains(
            "unknown backend \"redis-ish\"; use embedded, redis://HOST:PORT or \
             redis-cluster://HOST:PORT[,HOST:PORT...]"
        ),
        "{stderr}"
    );
}

/// A store out of reach is the server's trouble and a passing one: every
/// route that needs the store answers 503 with `Retry-After`, never 500,
/// the reads, the writes and the server-wide views alike.
#[tokio::test]
async fn a_store_out_of_reach_is_answered_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let fault = [("PYKV_FAULT_MEMORY_BACKEND", "unavailable")];
    let server = Server::start_in_env(dir.path(), &["--backend", "memory"], &fault);
    let detail = "the storage backend is unavailable (PYKV_FAULT_MEMORY_BACKEND); retry in 1 s";
    let requests = [
        server.client.get(server.url("/get/k")),
        server.client.get(server.url("/get/k?ns=a")),
        (server.client.post(server.url("/set"))).body(r#"{"key":"k","value":1}"#),
        server.client.delete(server.url("/delete/k")),
        server.client.get(server.url("/keys?ns=a")),
        server.client.get(server.url("/stats")),
        server.client.get(server.url("/namespaces")),
        server.client.delete(server.url("/namespaces/a")),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let what = response.url().to_string();
        assert_eq!(response.status(), 503, "{what}");
        assert_eq!(response.headers()["retry-after"], "1", "{what}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({"detail": detail}), "{what}");
    }
    let health = server.get("/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(
        health.body,
        json!({
            "detail": "the storage backend is unavailable (PYKV_FAULT_MEMORY_BACKEND); \
                       writes are refused until it answers",
            "status": "unhealthy",
        })
    );
}

/// A store that accepted the request and went silent: `--request-timeout`
/// bounds the whole handling, the backend call included. Every route that
/// needs the store answers 503 with `Retry-After` once the limit has passed,
/// and the server goes on answering what needs no store.
#[tokio::test]
async fn a_silent_store_is_cut_off_by_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let fault = [("PYKV_FAULT_MEMORY_BACKEND", "hang")];
    let args = ["--backend", "memory", "--request-timeout", "1"];
    let server = Server::start_in_env(dir.path(), &args, &fault);
    let requests = [
        server.client.get(server.url("/get/k")),
        (server.client.post(server.url("/set"))).body(r#"{"key":"k","value":1}"#),
        server.client.delete(server.url("/delete/k?ns=a")),
        server.client.get(server.url("/stats?ns=a")),
    ];
    for request in requests {
        let started = std::time::Instant::now();
        let response = request.send().await.unwrap();
        let waited = started.elapsed();
        let what = response.url().to_string();
        assert_eq!(response.status(), 503, "{what}");
        assert_eq!(response.headers()["retry-after"], "1", "{what}");
        let body: serde_json::Value = response.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("within 1 s") && detail.contains("--request-timeout"),
            "{what}: {detail}"
        );
        assert!(
            waited >= std::time::Duration::from_millis(900),
            "{what}: answered after {waited:?}, before the limit"
        );
    }
    let openapi = server.get("/openapi.json").await;
    assert_eq!(openapi.status, 200);
}
