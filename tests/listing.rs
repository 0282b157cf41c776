//! `GET /keys`: a namespace's keys page by page, in order, with a prefix.

mod common;

use common::{Server, enc};
use serde_json::json;

#[tokio::test]
async fn pages_walk_every_key_once_in_order_with_a_prefix() {
    let server = Server::start();
    for i in 0..120 {
        server
            .set(Some("n"), &format!("user:{i:03}"), json!(i))
            .await;
    }
    server.set(Some("n"), "other", json!(0)).await;
    server.set(None, "user:default", json!(0)).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = "/keys?ns=n&prefix=user%3A&limit=50".to_string();
        if let Some(c) = &cursor {
            path += &format!("&cursor={}", enc(c));
        }
        let r = server.get(&path).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["namespace"], "n");
        let keys = r.body["keys"].as_array().unwrap();
        assert!(keys.len() <= 50);
        seen.extend(keys.iter().map(|k| k.as_str().unwrap().to_owned()));
        match r.body["cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..120).map(|i| format!("user:{i:03}")).collect();
    assert_eq!(seen, expected);

    let r = server.get("/keys").await;
    assert_eq!(
        r.body,
        json!({"namespace": null, "keys": ["user:default"], "cursor": null})
    );
}

#[tokio::test]
async fn bad_listing_queries_are_422() {
    let server = Server::start();
    server.set(Some("n"), "k", json!(1)).await;
    for path in [
        "/keys?ns=a%20b",
        "/keys?ns=",
        "/keys?limit=0",
        "/keys?limit=1001",
        "/keys?limit=ten",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 422, "{path}: {r:?}");
        assert!(!r.detail().is_empty());
    }
    assert_eq!(server.total_keys().await, 1);
}
