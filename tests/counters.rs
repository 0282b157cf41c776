//! `POST /incr`: atomic counters, a conformance test run against every
//! backend.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

async fn incr(server: &Server, ns: &str, body: Value) -> common::Resp {
    server.post_json(&format!("/incr?ns={ns}"), &body).await
}

#[tokio::test]
async fn counts_from_zero_adds_and_subtracts() {
    let server = Server::start();
    let r = incr(&server, "app1", json!({"key": "page_views"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.text,
        r#"{"key":"page_views","value":1,"namespace":"app1"}"#
    );
    let r = incr(&server, "app1", json!({"key": "page_views", "by": 41})).await;
    assert_eq!(r.body["value"], 42);
    let r = incr(&server, "app1", json!({"key": "page_views", "by": -50})).await;
    assert_eq!(r.body["value"], -8);
    // A counter is an ordinary key to every other route.
    assert_eq!(
        server.value(Some("app1"), "page_views").await,
        Some(json!(-8))
    );
    server.set(Some("app1"), "n", json!(10)).await;
    assert_eq!(
        incr(&server, "app1", json!({"key": "n"})).await.body["value"],
        11
    );
    // The default namespace.
    let r = server.post_json("/incr", &json!({"key": "c"})).await;
    assert_eq!(r.text, r#"{"key":"c","value":1,"namespace":null}"#);
}

#[tokio::test]
async fn a_value_that_is_not_an_integer_or_an_overflow_is_409_and_changes_nothing() {
    let server = Server::start();
    for (value, named) in [
        (json!("7"), "a JSON string"),
        (json!({"a": 1}), "a JSON object"),
        (json!(1.5), "not a 64-bit integer"),
        (json!(true), "a JSON boolean"),
    ] {
        server.set(Some("t"), "k", value.clone()).await;
        let r = incr(&server, "t", json!({"key": "k"})).await;
        assert_eq!(r.status, 409, "{value}: {r:?}");
        assert!(r.detail().contains(named), "{value}: {r:?}");
        assert_eq!(server.value(Some("t"), "k").await, Some(value));
    }
    server.set(Some("t"), "big", json!(i64::MAX)).await;
    let r = incr(&server, "t", json!({"key": "big"})).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.detail().contains("64-bit"), "{r:?}");
    assert_eq!(server.value(Some("t"), "big").await, Some(json!(i64::MAX)));
    let r = incr(&server, "t", json!({"key": "big", "by": i64::MIN})).await;
    assert_eq!(r.body["value"], -1, "{r:?}");
}

#[tokio::test]
async fn bad_bodies_are_4xx_and_change_nothing() {
    let server = Server::start();
    for (body, status) in [
        ("{not json", 400),
        (r#"{"by": 1}"#, 422),
        (r#"{"key": ""}"#, 422),
        (r#"{"key": "k", "by": "1"}"#, 422),
        (r#"{"key": "k", "by": 1.5}"#, 422),
        (r#"{"key": "k", "by": 9223372036854775808}"#, 422),
        (r#"{"key": "k", "ttl": 0}"#, 422),
        (r#"{"key": "k", "ttl": -1}"#, 422),
        ("[1]", 422),
    ] {
        let r = server.post_raw("/incr?ns=t", body.to_owned()).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
        assert!(!r.detail().is_empty());
    }
    assert_eq!(server.value(Some("t"), "k").await, None);
    // Other fields are ignored, as on POST /set.
    let r = server
        .post_raw("/incr?ns=t", r#"{"key": "k", "extra": 1}"#.to_owned())
        .await;
    assert_eq!(r.body["value"], 1, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_never_lose_an_update() {
    let server = std::sync::Arc::new(Server::start());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let r = incr(&server, "load", json!({"key": "hits"})).await;
                    assert_eq!(r.status, 200, "{r:?}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(server.value(Some("load"), "hits").await, Some(json!(400)));
}

#[tokio::test]
async fn ttl_is_set_when_given_and_kept_otherwise() {
    let server = Server::start();
    let r = incr(&server, "s", json!({"key": "short", "ttl": 1})).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.set(Some("s"), "kept", json!(5)).await;
    let r = server
        .post_json("/set?ns=s", &json!({"key": "kept", "value": 5, "ttl": 1}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        incr(&server, "s", json!({"key": "kept"})).await.body["value"],
        6
    );
    incr(&server, "s", json!({"key": "forever"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.value(Some("s"), "short").await, None);
    assert_eq!(
        server.value(Some("s"), "kept").await,
        None,
        "the TTL was kept"
    );
    assert_eq!(server.value(Some("s"), "forever").await, Some(json!(1)));
}

#[tokio::test]
async fn a_counter_outlives_a_restart() {
    if !common::backend_supports("persistence") {
        return;
    }
    let mut server = Server::start_with(&["--fsync", "always"]);
    for _ in 0..3 {
        incr(&server, "p", json!({"key": "c", "by": 2})).await;
    }
    server.restart();
    assert_eq!(server.value(Some("p"), "c").await, Some(json!(6)));
    assert_eq!(
        incr(&server, "p", json!({"key": "c"})).await.body["value"],
        7
    );
}

#[tokio::test]
async fn a_read_token_cannot_count() {
    let server = Server::start();
    let reader = common::create_token(server.data_dir(), &["--ns", "app1", "--access", "read"]);
    let writer = common::create_token(server.data_dir(), &["--ns", "app1", "--access", "write"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let send = |token: &str| {
        server
            .client
            .post(server.url("/incr?ns=app1"))
            .bearer_auth(token)
            .json(&json!({"key": "c"}))
    };
    assert_eq!(server.send(send(&reader)).await.status, 403);
    assert_eq!(server.send(send(&writer)).await.status, 200);
    let other = server
        .client
        .post(server.url("/incr?ns=other"))
        .bearer_auth(&writer)
        .json(&json!({"key": "c"}));
    assert_eq!(server.send(other).await.status, 403);
}

#[test]
fn the_cli_counts() {
    let server = Server::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(args)
            .args(["--url", server.base_url()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["incr", "visits", "--ns", "web"]), "1\n");
    assert_eq!(
        run(&["incr", "visits", "--ns", "web", "--by", "-3"]),
        "-2\n"
    );
}
