//! Bad input: every case answers a 4xx `{"detail": "..."}` naming the field
//! at fault, never a 5xx, and changes nothing stored.

mod common;

use common::{Resp, Server, enc};
use serde_json::json;

/// A server holding two sentinel keys, to check that bad requests change
/// nothing.
struct Fixture {
    s: Server,
}

impl Fixture {
    async fn new(args: &[&str]) -> Fixture {
        let s = Server::start_with(args);
        s.set(None, "keep", json!("safe")).await;
        s.set(Some("keep_ns"), "keep", json!({"still": "here"}))
            .await;
        Fixture { s }
    }

    /// Both sentinels intact, and nothing else stored.
    async fn assert_unchanged(&self) {
        assert_eq!(self.s.value(None, "keep").await, Some(json!("safe")));
        assert_eq!(
            self.s.value(Some("keep_ns"), "keep").await,
            Some(json!({"still": "here"}))
        );
        let st = self.s.stats().await;
        assert_eq!(st["total_keys"], json!(2), "{st}");
        assert_eq!(st["default_namespace"]["total_keys"], json!(1), "{st}");
        assert_eq!(
            st["namespaces"].as_object().map(|m| m.len()),
            Some(1),
            "{st}"
        );
        let r = self.s.get("/namespaces").await;
        assert_eq!(r.body, json!({"namespaces": ["keep_ns"], "count": 1}));
    }
}

/// `r` has status `status` and a JSON body `{"detail": "..."}` whose detail
/// mentions `field` (any case).
#[track_caller]
fn assert_rejected(r: &Resp, status: u16, field: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(
        r.body.as_object().is_some_and(|o| o.len() == 1),
        "{what}: the body should hold only `detail`: {r:?}"
    );
    let detail = r.detail();
    assert!(
        detail.to_lowercase().contains(&field.to_lowercase()),
        "{what}: detail should name `{field}`: {detail:?}"
    );
}

#[tokio::test]
async fn body_not_json_is_400() {
    let f = Fixture::new(&[]).await;
    for body in [
        "not json",
        "{\"key\": \"k\", \"value\": ",
        "{key: 'k', value: 'v'}",
        "{\"key\": \"k\", \"value\": \"v\"} trailing",
        "{\"key\": \"k\", \"value\": \"v\",}",
    ] {
        let r = f.s.post_raw("/set", body).await;
        assert_rejected(&r, 400, "json", body);
    }
    // Not even UTF-8.
    let r =
        f.s.post_raw(
            "/set",
            b"{\"key\": \"k\", \"value\": \"\xff\xfe\"}".to_vec(),
        )
        .await;
    assert!(r.status == 400 || r.status == 422, "invalid UTF-8: {r:?}");
    r.detail();
    // An empty body is not a JSON object either.
    let r = f.s.post_raw("/set", "").await;
    assert!(r.status == 400 || r.status == 422, "empty body: {r:?}");
    r.detail();
    f.assert_unchanged().await;
}

#[tokio::test]
async fn body_not_an_object_is_422() {
    let f = Fixture::new(&[]).await;
    for body in ["[\"k\", \"v\"]", "\"k\"", "42", "null", "true", "[]"] {
        let r = f.s.post_raw("/set", body).await;
        assert_rejected(&r, 422, "object", body);
    }
    f.assert_unchanged().await;
}

#[tokio::test]
async fn key_missing_wrong_type_or_empty_is_422() {
    let f = Fixture::new(&[]).await;
    for body in [
        json!({"value": "v"}),
        json!({"value": "v", "namespace": "keep_ns"}),
        json!({"key": 5, "value": "v"}),
        json!({"key": null, "value": "v"}),
        json!({"key": ["k"], "value": "v"}),
        json!({"key": {"k": 1}, "value": "v"}),
        json!({"key": true, "value": "v"}),
        json!({"key": "", "value": "v"}),
        json!({"key": "", "value": "v", "namespace": "keep_ns"}),
    ] {
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "key", &body.to_string());
        let r = f.s.post_json("/set?ns=keep_ns", &body).await;
        assert_rejected(&r, 422, "key", &body.to_string());
    }
    f.assert_unchanged().await;
}

#[tokio::test]
async fn value_missing_is_422() {
    let f = Fixture::new(&[]).await;
    for body in [
        json!({"key": "keep"}),
        json!({"key": "new"}),
        json!({"key": "keep", "namespace": "keep_ns"}),
        json!({"key": "new", "ttl": 10}),
    ] {
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "value", &body.to_string());
    }
    assert_eq!(f.s.value(None, "new").await, None);
    f.assert_unchanged().await;
}

#[tokio::test]
async fn bad_ttl_is_422() {
    let f = Fixture::new(&[]).await;
    for ttl in [
        json!(0),
        json!(-1),
        json!(-3600),
        json!(1.5),
        json!(0.5),
        json!("10"),
        json!(true),
        json!(false),
        json!([10]),
        json!({"seconds": 10}),
    ] {
        // A new key, and an existing one that must keep its value and no TTL.
        for key in ["new", "keep"] {
            let body = json!({"key": key, "value": "changed", "ttl": ttl});
            let r = f.s.post_json("/set", &body).await;
            assert_rejected(&r, 422, "ttl", &body.to_string());
            let r = f.s.post_json("/set?ns=keep_ns", &body).await;
            assert_rejected(&r, 422, "ttl", &body.to_string());
        }
    }
    assert_eq!(f.s.value(None, "new").await, None);
    f.assert_unchanged().await;
}

/// Namespaces that are not `[A-Za-z0-9_.-]{1,64}`.
const BAD_NAMESPACES: &[&str] = &[
    "",
    "a b",
    "a/b",
    "ü",
    "app1:x",
    "a?b",
    "a%b",
    "a#b",
    "a+b",
    "日本",
    " lead",
    "tab\t",
    // 65 characters
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

#[test]
fn the_long_namespace_is_65_characters() {
    assert_eq!(BAD_NAMESPACES.last().unwrap().len(), 65);
}

#[tokio::test]
async fn bad_namespace_on_set_is_422() {
    let f = Fixture::new(&[]).await;
    for ns in BAD_NAMESPACES {
        let what = format!("set with namespace {ns:?}");
        let body = json!({"key": "keep", "value": "changed"});
        let r = f.s.post_json(&format!("/set?ns={}", enc(ns)), &body).await;
        assert_rejected(&r, 422, "namespace", &format!("{what} in query"));
        let body = json!({"key": "keep", "value": "changed", "namespace": ns});
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "namespace", &format!("{what} in body"));
        // A bad body namespace is refused even with a good one in the query.
        let r = f.s.post_json("/set?ns=keep_ns", &body).await;
        assert_rejected(&r, 422, "namespace", &format!("{what} in body"));
    }
    // A namespace that is not a string.
    for ns in [json!(5), json!(["a"]), json!({"a": 1}), json!(true)] {
        let body = json!({"key": "keep", "value": "changed", "namespace": ns});
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "namespace", &body.to_string());
    }
    // 64 characters and every allowed character are fine.
    let ok = "a".repeat(64);
    let r =
        f.s.post_json(&format!("/set?ns={ok}"), &json!({"key": "k", "value": 1}))
            .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r =
        f.s.post_json(
            "/set",
            &json!({"key": "k", "value": 1, "namespace": "Az09_.-"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(f.s.delete(&format!("/namespaces/{ok}")).await.status, 200);
    assert_eq!(f.s.delete("/namespaces/Az09_.-").await.status, 200);
    f.assert_unchanged().await;
}

#[tokio::test]
async fn bad_namespace_on_every_endpoint_is_422() {
    let f = Fixture::new(&[]).await;
    for ns in BAD_NAMESPACES {
        let q = format!("?ns={}", enc(ns));
        for (method, path) in [
            ("GET", format!("/get/keep{q}")),
            ("DELETE", format!("/delete/keep{q}")),
            ("GET", format!("/stats{q}")),
            ("GET", format!("/health{q}")),
        ] {
            let r = request(&f.s, method, &path).await;
            assert_rejected(&r, 422, "namespace", &format!("{method} {path}"));
        }
        // In the path: an empty segment is a route that does not exist.
        if ns.is_empty() {
            continue;
        }
        for (method, path) in [
            ("GET", format!("/namespaces/{}/keys", enc(ns))),
            ("DELETE", format!("/namespaces/{}", enc(ns))),
        ] {
            let r = request(&f.s, method, &path).await;
            assert_rejected(&r, 422, "namespace", &format!("{method} {path}"));
        }
    }
    // Empty namespaces in paths, and unencoded slashes: not found, as JSON.
    for (method, path) in [
        ("GET", "/namespaces//keys"),
        ("DELETE", "/namespaces/"),
        ("GET", "/namespaces/a/b/keys"),
        ("DELETE", "/namespaces/a/b"),
    ] {
        let r = request(&f.s, method, path).await;
        assert!(
            r.status == 404 || r.status == 405 || r.status == 422,
            "{method} {path}: {r:?}"
        );
        r.detail();
    }
    // The stats did not count the refused gets.
    let st = f.s.stats().await;
    assert_eq!(st["cache_hits"], json!(0), "{st}");
    assert_eq!(st["cache_misses"], json!(0), "{st}");
    f.assert_unchanged().await;
}

async fn request(s: &Server, method: &str, path: &str) -> Resp {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    s.send(s.client.request(method, s.url(path))).await
}

#[tokio::test]
async fn key_over_the_default_limit_of_1024_bytes_is_422() {
    let f = Fixture::new(&[]).await;
    let at_limit = "k".repeat(1024);
    let over = "k".repeat(1025);
    // Multi-byte: 513 × 2 bytes = 1026 bytes, but only 513 characters.
    let over_in_bytes = "é".repeat(513);
    for key in [&over, &over_in_bytes] {
        let body = json!({"key": key, "value": "v"});
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "key", &format!("key of {} bytes", key.len()));
        let r = f.s.post_json("/set?ns=keep_ns", &body).await;
        assert_rejected(&r, 422, "key", &format!("key of {} bytes", key.len()));
        // Get and delete refuse it too, or do not find it; never a 5xx.
        let r = f.s.get(&format!("/get/{}", enc(key))).await;
        assert!(r.status == 404 || r.status == 422, "{r:?}");
        r.detail();
        let r = f.s.delete(&format!("/delete/{}", enc(key))).await;
        assert!(r.status == 404 || r.status == 422, "{r:?}");
        r.detail();
    }
    f.assert_unchanged().await;

    let ok_in_bytes = "é".repeat(512);
    for key in [&at_limit, &ok_in_bytes] {
        f.s.set(Some("limits"), key, json!(key.len())).await;
        assert_eq!(f.s.value(Some("limits"), key).await, Some(json!(key.len())));
    }
}

#[tokio::test]
async fn key_over_a_custom_limit_is_422() {
    let f = Fixture::new(&["--max-key-bytes", "16"]).await;
    for key in [
        "k".repeat(17),
        "日本日本日本".to_string(),
        "ключ-ключ".to_string(),
    ] {
        assert!(key.len() > 16);
        let body = json!({"key": key, "value": "v"});
        let r = f.s.post_json("/set", &body).await;
        assert_rejected(&r, 422, "key", &format!("key {key:?}"));
    }
    f.assert_unchanged().await;
    for key in [
        "k".repeat(16),
        "日本日本日".to_string(),
        "ключключ".to_string(),
    ] {
        assert!(key.len() <= 16);
        f.s.set(None, &key, json!(1)).await;
        assert_eq!(f.s.value(None, &key).await, Some(json!(1)));
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let f = Fixture::new(&["--max-body-bytes", "1024"]).await;
    let body_of = |len: usize| {
        let skeleton = r#"{"key":"big","value":""}"#;
        let body = format!(
            r#"{{"key":"big","value":"{}"}}"#,
            "x".repeat(len - skeleton.len())
        );
        assert_eq!(body.len(), len);
        body
    };
    let r = f.s.post_raw("/set", body_of(2000)).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(!r.detail().is_empty());
    assert_eq!(f.s.value(None, "big").await, None);
    // Far over the limit too.
    let r = f.s.post_raw("/set", body_of(200_000)).await;
    assert_eq!(r.status, 413, "{r:?}");
    r.detail();
    f.assert_unchanged().await;

    // Under the limit is fine.
    let r = f.s.post_raw("/set", body_of(1000)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        f.s.value(None, "big").await,
        Some(json!("x".repeat(1000 - 24)))
    );
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let f = Fixture::new(&[]).await;
    // `/` redirects to the console and `/keys` lists keys: neither is unknown.
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/keys/extra"),
        ("POST", "/set/extra"),
        ("GET", "/namespaces/keep_ns/unknown"),
        ("GET", "/stats/extra"),
    ] {
        let r = request(&f.s, method, path).await;
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert!(!r.detail().is_empty());
    }
    f.assert_unchanged().await;
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let f = Fixture::new(&[]).await;
    for (method, path) in [
        ("GET", "/set"),
        ("PUT", "/set"),
        ("POST", "/get/keep"),
        ("PUT", "/get/keep"),
        ("POST", "/delete/keep"),
        ("GET", "/delete/keep"),
        ("POST", "/namespaces"),
        ("DELETE", "/namespaces"),
        ("POST", "/namespaces/keep_ns/keys"),
        ("DELETE", "/namespaces/keep_ns/keys"),
        ("GET", "/namespaces/keep_ns"),
        ("POST", "/stats"),
        ("DELETE", "/health"),
        ("PATCH", "/health"),
    ] {
        let r = request(&f.s, method, path).await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert!(!r.detail().is_empty());
    }
    // RFC 9110: a 405 names the methods the route accepts.
    for (method, path, allow) in [
        ("TRACE", "/get/keep", "GET, HEAD"),
        ("POST", "/quota", "GET, PUT, HEAD"),
        ("GET", "/namespaces/keep_ns", "DELETE"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = (f.s.client.request(method.clone(), f.s.url(path)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
    f.assert_unchanged().await;
}

#[tokio::test]
async fn empty_key_in_path_is_4xx_json() {
    let f = Fixture::new(&[]).await;
    for (method, path) in [
        ("GET", "/get/"),
        ("DELETE", "/delete/"),
        ("GET", "/get/?ns=keep_ns"),
        ("DELETE", "/delete/?ns=keep_ns"),
    ] {
        let r = request(&f.s, method, path).await;
        assert!(r.status == 404 || r.status == 422, "{method} {path}: {r:?}");
        r.detail();
    }
    f.assert_unchanged().await;
}

/// A pile of bad requests of every kind in a row: still no 5xx, and the
/// server keeps serving.
#[tokio::test]
async fn bad_requests_never_break_the_server() {
    let f = Fixture::new(&[]).await;
    let bodies = [
        "",
        "{",
        "}",
        "[[[[[[[[[[",
        "{\"key\":\"k\",\"value\":1,\"ttl\":1e400}",
        "{\"key\":\"k\",\"value\":1e400}",
        "{\"key\":\"k\",\"value\":\"\\ud800\"}",
        "{\"key\":\"\\u0000\",\"value\":1,\"ttl\":-0}",
        "{\"key\":\"k\",\"value\":1,\"ttl\":99999999999999999999999}",
        "{\"key\":\"k\",\"key\":\"k2\",\"value\":1,\"namespace\":\"\"}",
    ];
    for body in bodies {
        let r = f.s.post_raw("/set", body).await;
        assert!(
            (400..500).contains(&r.status) || r.status == 200,
            "{body}: {r:?}"
        );
        if r.status != 200 {
            r.detail();
        }
    }
    let r = f.s.get("/health").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(f.s.value(None, "keep").await, Some(json!("safe")));
}
