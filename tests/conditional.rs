//! Check-and-set with HTTP's validators: `ETag` on `GET /get/{key}`,
//! `If-Match` and `If-None-Match: *` on `POST /set` and `DELETE
//! /delete/{key}`; a conformance test run against every backend.

mod common;

use std::sync::Arc;

use common::Server;
use serde_json::json;

async fn etag(server: &Server, path: &str) -> String {
    let r = server.client.get(server.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.headers()["etag"].to_str().unwrap().to_owned()
}

/// `(status, ETag header)` of a write with these headers.
async fn write(
    request: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> (u16, Option<String>) {
    let mut request = request;
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    let tag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), tag)
}

fn set(server: &Server, value: serde_json::Value) -> reqwest::RequestBuilder {
    (server.client.post(server.url("/set?ns=cas"))).json(&json!({"key": "k", "value": value}))
}

#[tokio::test]
async fn the_etag_changes_with_the_value_and_if_match_guards_writes() {
    let server = Server::start();
    server.set(Some("cas"), "k", json!({"v": 1})).await;
    let first = etag(&server, "/get/k?ns=cas").await;
    assert!(first.starts_with('"') && first.len() == 18, "{first}");
    assert_eq!(
        etag(&server, "/get/k?ns=cas").await,
        first,
        "stable while unchanged"
    );

    // A write with the current tag passes; the tag then changes.
    let (status, _) = write(set(&server, json!({"v": 2})), &[("if-match", &first)]).await;
    assert_eq!(status, 200);
    let second = etag(&server, "/get/k?ns=cas").await;
    assert_ne!(second, first);

    // A stale tag: 412, the current tag in the answer, nothing written.
    let (status, current) = write(set(&server, json!({"v": 3})), &[("if-match", &first)]).await;
    assert_eq!((status, current.as_deref()), (412, Some(second.as_str())));
    assert_eq!(server.value(Some("cas"), "k").await, Some(json!({"v": 2})));

    // Delete: a stale tag keeps the key, the current one deletes it.
    let delete = || server.client.delete(server.url("/delete/k?ns=cas"));
    assert_eq!(write(delete(), &[("if-match", &first)]).await.0, 412);
    assert_eq!(server.value(Some("cas"), "k").await, Some(json!({"v": 2})));
    assert_eq!(write(delete(), &[("if-match", &second)]).await.0, 200);
    assert_eq!(server.value(Some("cas"), "k").await, None);
    // If-Match on a missing key: 412 with no tag.
    let (status, tag) = write(set(&server, json!(1)), &[("if-match", &second)]).await;
    assert_eq!((status, tag), (412, None));
}

#[tokio::test]
async fn if_none_match_star_creates_only() {
    let server = Server::start();
    let create = [("if-none-match", "*")];
    assert_eq!(write(set(&server, json!("first")), &create).await.0, 200);
    let (status, tag) = write(set(&server, json!("second")), &create).await;
    assert_eq!(status, 412);
    assert_eq!(tag.unwrap(), etag(&server, "/get/k?ns=cas").await);
    assert_eq!(server.value(Some("cas"), "k").await, Some(json!("first")));
}

/// RFC 9110's reading: an `If-Match` that is no tag of ours (a weak tag,
/// a list, a typo) never holds, so the write is refused, never silently
/// done; `If-None-Match: "<tag>"` writes unless the key has that tag.
#[tokio::test]
async fn preconditions_are_read_as_rfc_9110_reads_them() {
    let server = Server::start();
    server.set(Some("cas"), "k", json!(1)).await;
    for value in ["abc", "W/\"0000000000000001\"", "\"a\", \"b\""] {
        let (status, _) = write(set(&server, json!(2)), &[("if-match", value)]).await;
        assert_eq!(status, 412, "If-Match: {value}");
    }
    assert_eq!(server.value(Some("cas"), "k").await, Some(json!(1)));
    let current = etag(&server, "/get/k?ns=cas").await;
    let (status, _) = write(set(&server, json!(2)), &[("if-none-match", &current)]).await;
    assert_eq!(status, 412, "If-None-Match with the current tag");
    let other = "\"0000000000000001\"";
    let (status, _) = write(set(&server, json!(3)), &[("if-none-match", other)]).await;
    assert_eq!(status, 200, "If-None-Match with another tag");
    let both = [("if-match", "*"), ("if-none-match", "*")];
    assert_eq!(write(set(&server, json!(4)), &both).await.0, 422);
    assert_eq!(server.value(Some("cas"), "k").await, Some(json!(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_writers_with_one_tag_exactly_one_wins() {
    let server = Arc::new(Server::start());
    server.set(Some("cas"), "k", json!(0)).await;
    let tag = etag(&server, "/get/k?ns=cas").await;
    let writers: Vec<_> = (1..=10)
        .map(|i| {
            let (server, tag) = (server.clone(), tag.clone());
            tokio::spawn(
                async move { write(set(&server, json!(i)), &[("if-match", &tag)]).await.0 },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for writer in writers {
        statuses.push(writer.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        9,
        "{statuses:?}"
    );
}

/// The Rust client and the CLI speak it too: the tag from a read, a write
/// guarded by it, and the refusal once it is stale.
#[test]
fn the_client_and_the_cli_check_and_set() {
    use pykv::client::{Client, Error, Precondition};

    let server = Server::start();
    let kv = Client::new(server.base_url()).unwrap();
    kv.set(Some("cas"), "k", &json!(1), None).unwrap();
    let read = kv.get(Some("cas"), "k").unwrap();
    let tag = read.etag().unwrap().to_owned();
    kv.set_if(
        Some("cas"),
        "k",
        &json!(2),
        None,
        Precondition::Matches(&tag),
    )
    .unwrap();
    match kv.set_if(
        Some("cas"),
        "k",
        &json!(3),
        None,
        Precondition::Matches(&tag),
    ) {
        Err(Error::PreconditionFailed { current, .. }) => {
            assert_eq!(current.as_deref(), kv.get(Some("cas"), "k").unwrap().etag());
        }
        other => panic!("a stale tag was accepted: {other:?}"),
    }
    let absent = kv.set_if(Some("cas"), "new", &json!(1), None, Precondition::Absent);
    assert!(absent.is_ok());

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(args)
            .args(["--url", server.base_url()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, tag) = run(&["etag", "k", "--ns", "cas"]);
    assert_eq!(code, Some(0));
    let tag = tag.trim();
    assert_eq!(
        run(&["set", "k", "v", "--ns", "cas", "--if-match", tag]).0,
        Some(0)
    );
    assert_eq!(
        run(&["set", "k", "w", "--ns", "cas", "--if-match", tag]).0,
        Some(2)
    );
    assert_eq!(
        run(&["set", "k", "w", "--ns", "cas", "--if-absent"]).0,
        Some(2)
    );
    assert_eq!(
        run(&["del", "k", "--ns", "cas", "--if-match", tag]).0,
        Some(2)
    );
    assert_eq!(kv.value(Some("cas"), "k").unwrap(), Some(json!("v")));
}
