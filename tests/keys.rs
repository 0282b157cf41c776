//! Keys are any non-empty UTF-8 string and round-trip through the path of
//! `/get/{key}` and `/delete/{key}` when percent-encoded.

mod common;

use common::{Server, enc, ns_query};
use serde_json::json;

const ODD_KEYS: &[&str] = &[
    "user:123",
    "a/b/c",
    "/leading-slash",
    "trailing-slash/",
    "a//double",
    "with space",
    "  spaces around  ",
    "what?",
    "what?x=1&y=2",
    "100%",
    "a%2Fb",
    "%",
    "%zz",
    "hash#tag",
    "#",
    "plus+sign",
    "semi;colon,comma",
    "quote\"apostrophe'",
    "back\\slash",
    "tab\tnewline\ncr\r",
    "brackets[]{}<>|^`",
    "at@dollar$amp&eq=",
    "ключ",
    "日本",
    "🦀🔑",
    "é (precomposed)",
    "e\u{301} (combining)",
    "mixed/ключ?x=日本#frag 🦀",
    "~tilde-dot.under_score",
    "...",
];

async fn round_trip(s: &Server, ns: Option<&str>) {
    let ns_json = json!(ns);
    for (i, key) in ODD_KEYS.iter().enumerate() {
        let r = s
            .post_json(
                &format!("/set{}", ns_query(ns)),
                &json!({"key": key, "value": {"i": i, "key": key}}),
            )
            .await;
        assert_eq!(r.status, 200, "set {key:?}: {r:?}");
        assert_eq!(
            r.body,
            json!({"status": "success", "key": key, "namespace": ns_json})
        );
    }
    for (i, key) in ODD_KEYS.iter().enumerate() {
        let r = s.get(&format!("/get/{}{}", enc(key), ns_query(ns))).await;
        assert_eq!(r.status, 200, "get {key:?}: {r:?}");
        assert_eq!(
            r.body,
            json!({"key": key, "value": {"i": i, "key": key}, "namespace": ns_json}),
            "get {key:?}"
        );
    }
    let r = s.get(&format!("/health{}", ns_query(ns))).await;
    assert_eq!(r.body["store_size"], json!(ODD_KEYS.len()), "{r:?}");
    for key in ODD_KEYS {
        let r = s
            .delete(&format!("/delete/{}{}", enc(key), ns_query(ns)))
            .await;
        assert_eq!(r.status, 200, "delete {key:?}: {r:?}");
        assert_eq!(
            r.body,
            json!({"status": "deleted", "key": key, "namespace": ns_json})
        );
        assert_eq!(s.value(ns, key).await, None, "{key:?} after delete");
    }
    let r = s.get(&format!("/health{}", ns_query(ns))).await;
    assert_eq!(r.body["store_size"], json!(0), "{r:?}");
}

#[tokio::test]
async fn odd_keys_round_trip_in_the_default_namespace() {
    let s = Server::start();
    round_trip(&s, None).await;
}

#[tokio::test]
async fn odd_keys_round_trip_in_a_namespace() {
    let s = Server::start();
    round_trip(&s, Some("odd")).await;
}

#[tokio::test]
async fn encoded_and_literal_percent_keys_are_distinct() {
    let s = Server::start();
    s.set(None, "a/b", json!("slash")).await;
    s.set(None, "a%2Fb", json!("literal percent")).await;
    s.set(None, "a b", json!("space")).await;
    s.set(None, "a+b", json!("plus")).await;
    s.set(None, "a%20b", json!("literal %20")).await;
    assert_eq!(s.value(None, "a/b").await, Some(json!("slash")));
    assert_eq!(s.value(None, "a%2Fb").await, Some(json!("literal percent")));
    assert_eq!(s.value(None, "a b").await, Some(json!("space")));
    assert_eq!(s.value(None, "a+b").await, Some(json!("plus")));
    assert_eq!(s.value(None, "a%20b").await, Some(json!("literal %20")));
    // In a path, `+` is a plus and `%20` a space.
    let r = s.get("/get/a+b").await;
    assert_eq!(r.body["value"], json!("plus"), "{r:?}");
    let r = s.get("/get/a%20b").await;
    assert_eq!(r.body["value"], json!("space"), "{r:?}");
    // Lower-case percent escapes decode the same.
    let r = s.get("/get/a%2fb").await;
    assert_eq!(r.body["value"], json!("slash"), "{r:?}");
    assert_eq!(s.total_keys().await, 5);
}

#[tokio::test]
async fn unencoded_slashes_in_the_key_work() {
    let s = Server::start();
    s.set(None, "a/b/c", json!("default")).await;
    s.set(Some("ns"), "a/b/c", json!("ns")).await;
    s.set(None, "a/b", json!("shorter")).await;

    let r = s.get("/get/a/b/c").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"key": "a/b/c", "value": "default", "namespace": null})
    );
    let r = s.get("/get/a/b/c?ns=ns").await;
    assert_eq!(
        r.body,
        json!({"key": "a/b/c", "value": "ns", "namespace": "ns"})
    );
    let r = s.get("/get/a/b").await;
    assert_eq!(r.body["value"], json!("shorter"), "{r:?}");
    let r = s.get("/get/a/b/c/d").await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.body, json!({"detail": "Key not found"}));

    let r = s.delete("/delete/a/b/c?ns=ns").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"status": "deleted", "key": "a/b/c", "namespace": "ns"})
    );
    let r = s.delete("/delete/a/b/c").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.value(None, "a/b/c").await, None);
    assert_eq!(s.value(None, "a/b").await, Some(json!("shorter")));
    // Unencoded non-ASCII and colons in the path (reqwest encodes the
    // former as UTF-8 percent escapes, as a browser does).
    s.set(None, "ключ:日本", json!("utf8")).await;
    let r = s.get("/get/ключ:日本").await;
    assert_eq!(r.body["value"], json!("utf8"), "{r:?}");
    assert_eq!(r.body["key"], json!("ключ:日本"), "{r:?}");
}

#[tokio::test]
async fn keys_that_look_like_namespaced_keys() {
    let s = Server::start();
    // A key made of a namespace and a key, and the same pair as a namespace.
    s.set(None, "ns:key", json!("default")).await;
    s.set(Some("ns"), "key", json!("namespaced")).await;
    s.set(Some("ns"), "ns:key", json!("namespaced prefix"))
        .await;
    assert_eq!(s.value(None, "ns:key").await, Some(json!("default")));
    assert_eq!(s.value(Some("ns"), "key").await, Some(json!("namespaced")));
    assert_eq!(
        s.value(Some("ns"), "ns:key").await,
        Some(json!("namespaced prefix"))
    );
    assert_eq!(s.value(None, "key").await, None);
    assert_eq!(s.total_keys().await, 3);
}
