//! `GET /ttl/{key}` and `POST /expire`: a key's TTL read and changed on its
//! own; a conformance test run against every backend.

mod common;

use std::time::Duration;

use common::Server;
use serde_json::json;

#[tokio::test]
async fn ttl_reads_the_seconds_left_and_expire_changes_them_keeping_the_value() {
    let server = Server::start();
    server.set(Some("s"), "session", json!({"user": 1})).await;
    let r = server.get("/ttl/session?ns=s").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text, r#"{"key":"session","namespace":"s","ttl":null}"#);

    let r = server
        .post_json("/expire?ns=s", &json!({"key": "session", "ttl": 100}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text, r#"{"key":"session","namespace":"s","ttl":100}"#);
    let left = server.get("/ttl/session?ns=s").await.body["ttl"]
        .as_u64()
        .unwrap();
    assert!((99..=100).contains(&left), "{left}");
    assert_eq!(
        server.value(Some("s"), "session").await,
        Some(json!({"user": 1}))
    );

    // null makes the key persistent again.
    let r = server
        .post_json("/expire?ns=s", &json!({"key": "session", "ttl": null}))
        .await;
    assert_eq!(r.body["ttl"], json!(null), "{r:?}");
    assert_eq!(
        server.get("/ttl/session?ns=s").await.body["ttl"],
        json!(null)
    );

    // A short TTL is served rounded up, then the key goes.
    server
        .post_json("/expire?ns=s", &json!({"key": "session", "ttl": 1}))
        .await;
    assert_eq!(server.get("/ttl/session?ns=s").await.body["ttl"], 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(server.get("/ttl/session?ns=s").await.status, 404);
    assert_eq!(server.value(Some("s"), "session").await, None);
}

#[tokio::test]
async fn missing_keys_and_bad_bodies_are_4xx_and_change_nothing() {
    let server = Server::start();
    assert_eq!(server.get("/ttl/nope?ns=s").await.status, 404);
    let r = server
        .post_json("/expire?ns=s", &json!({"key": "nope", "ttl": 5}))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    server.set(Some("s"), "k", json!(1)).await;
    for (body, status) in [
        ("{not json", 400),
        (r#"{"key": "k"}"#, 422),
        (r#"{"ttl": 5}"#, 422),
        (r#"{"key": "", "ttl": 5}"#, 422),
        (r#"{"key": "k", "ttl": 0}"#, 422),
        (r#"{"key": "k", "ttl": -5}"#, 422),
        (r#"{"key": "k", "ttl": "5"}"#, 422),
    ] {
        let r = server.post_raw("/expire?ns=s", body.to_owned()).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
    }
    assert_eq!(server.get("/ttl/k?ns=s").await.body["ttl"], json!(null));
    assert_eq!(server.value(Some("s"), "k").await, Some(json!(1)));
}

#[tokio::test]
async fn a_deadline_set_by_expire_survives_a_restart() {
    if !common::backend_supports("persistence") {
        return;
    }
    let mut server = Server::start_with(&["--fsync", "always"]);
    server.set(Some("p"), "k", json!("v")).await;
    server
        .post_json("/expire?ns=p", &json!({"key": "k", "ttl": 1000}))
        .await;
    server.set(Some("p"), "gone", json!("v")).await;
    server
        .post_json("/expire?ns=p", &json!({"key": "gone", "ttl": 1}))
        .await;
    server.restart();
    let left = server.get("/ttl/k?ns=p").await.body["ttl"]
        .as_u64()
        .unwrap();
    assert!((990..=1000).contains(&left), "{left}");
    assert_eq!(server.value(Some("p"), "k").await, Some(json!("v")));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(server.get("/ttl/gone?ns=p").await.status, 404);
}

#[test]
fn the_cli_reads_and_sets_ttls() {
    let server = Server::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(args)
            .args(["--url", server.base_url()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(run(&["set", "k", "v", "--ns", "c"]).0, Some(0));
    assert_eq!(run(&["ttl", "k", "--ns", "c"]), (Some(0), "none\n".into()));
    assert_eq!(
        run(&["expire", "k", "60", "--ns", "c"]),
        (Some(0), "60\n".into())
    );
    assert_eq!(
        run(&["expire", "k", "none", "--ns", "c"]),
        (Some(0), "none\n".into())
    );
    assert_eq!(run(&["ttl", "missing", "--ns", "c"]).0, Some(1));
}
