//! Browsers: CORS closed by default and open only to the named origins,
//! cross-site simple requests refused, and DNS rebinding (foreign `Host`
//! names) refused on loopback.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Server;
use crate::support::{Answer, addr, call_with, set_body};

const EVIL: &str = "https://evil.example";
const APP: &str = "https://app.example";

async fn preflight(server: &Server, origin: &str) -> Answer {
    call_with(
        server,
        Method::OPTIONS,
        "/set",
        None,
        None,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, authorization",
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn cors_is_closed_by_default() {
    let server = Server::start();
    let r = preflight(&server, EVIL).await;
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
    assert!(
        !(200..300).contains(&r.status),
        "a preflight was accepted: {r:?}"
    );
    for (m, path, body) in [
        (Method::GET, "/health", None),
        (Method::GET, "/stats", None),
        (Method::POST, "/set", Some(set_body("k", Some("a")))),
        (Method::GET, "/get/nope", None),
    ] {
        let r = call_with(
            &server,
            m.clone(),
            path,
            None,
            body.as_ref(),
            &[("origin", EVIL)],
        )
        .await;
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "{m} {path}: {r:?}"
        );
        assert_eq!(
            r.header("access-control-allow-credentials"),
            None,
            "{m} {path}"
        );
    }
}

#[tokio::test]
async fn cors_allows_only_the_named_origins() {
    let server = Server::start_with(&["--cors-origin", APP]);
    let r = preflight(&server, APP).await;
    assert!((200..300).contains(&r.status), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP), "{r:?}");
    let methods = r
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{r:?}");
    let r = call_with(
        &server,
        Method::GET,
        "/health",
        None,
        None,
        &[("origin", APP)],
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), Some(APP), "{r:?}");

    for origin in [
        EVIL,
        "https://app.example.evil.example",
        "http://app.example",
        "null",
    ] {
        let r = preflight(&server, origin).await;
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "preflight from {origin}: {r:?}"
        );
        let r = call_with(
            &server,
            Method::GET,
            "/health",
            None,
            None,
            &[("origin", origin)],
        )
        .await;
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "GET from {origin}: {r:?}"
        );
    }

    let server = Server::start_with(&["--cors-origin", "*"]);
    let r = preflight(&server, EVIL).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{r:?}");
    // Never credentials with a wildcard.
    assert_ne!(r.header("access-control-allow-credentials"), Some("true"));
}

// ---- browsers: cross-site requests and DNS rebinding ----------------------

/// A request as a foreign page's `fetch(url, {mode: "no-cors"})` sends it:
/// a "simple" request, with no preflight, `Origin` and a `text/plain` body.
async fn simple_request(
    server: &Server,
    method: Method,
    path: &str,
    origin: Option<&str>,
) -> Answer {
    let mut headers = vec![("content-type", "text/plain;charset=UTF-8")];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    let body = json!({"key": "flag", "value": "on"});
    let mut request = server.client.request(method.clone(), server.url(path));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if method == Method::POST {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}

#[tokio::test]
async fn a_foreign_page_cannot_change_anything() {
    let server = Server::start();
    server.pin_to_one_node(); // a node's own origin is its own address
    server.set(Some("prod"), "flag", json!("off")).await;
    for (method, path) in [
        (Method::POST, "/set?ns=prod"),
        // The same with a percent-encoded namespace.
        (Method::POST, "/set?ns=%70rod"),
        (Method::DELETE, "/namespaces/prod"),
        (Method::DELETE, "/delete/flag?ns=prod"),
        (Method::POST, "/compact"),
        (Method::GET, "/get/flag?ns=prod"),
        (Method::GET, "/get/fl%61g?ns=prod"),
        (Method::GET, "/stats"),
    ] {
        let r = simple_request(&server, method.clone(), path, Some(EVIL)).await;
        r.assert_refused(403, &format!("{method} {path}"));
        let detail = r.json()["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains("cross-site") && detail.contains("--cors-origin"),
            "{detail}"
        );
        assert_eq!(r.header("access-control-allow-origin"), None);
    }
    assert_eq!(server.value(Some("prod"), "flag").await, Some(json!("off")));
    let compactions = server.stats().await["last_compaction"].clone();
    assert_eq!(
        compactions,
        Value::Null,
        "a foreign page started a compaction"
    );

    // The console's own page (same origin) and clients sending no Origin.
    let own = server.base_url().to_owned();
    for origin in [Some(own.as_str()), None] {
        let r = simple_request(&server, Method::POST, "/set?ns=prod", origin).await;
        assert_eq!(r.status, 200, "{origin:?}: {r:?}");
        let r = simple_request(&server, Method::GET, "/get/flag?ns=prod", origin).await;
        assert_eq!(r.status, 200, "{origin:?}: {r:?}");
    }
    let r = simple_request(&server, Method::DELETE, "/namespaces/prod", Some(&own)).await;
    assert_eq!(r.status, 200, "{r:?}");
    if crate::common::backend_supports("compaction") {
        let r = simple_request(&server, Method::POST, "/compact", None).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
}

#[tokio::test]
async fn an_origin_allowed_by_cors_origin_may_write() {
    let server = Server::start_with(&["--cors-origin", APP]);
    let r = simple_request(&server, Method::POST, "/set?ns=prod", Some(APP)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    for origin in [EVIL, "null", "http://app.example"] {
        let r = simple_request(&server, Method::POST, "/set?ns=prod", Some(origin)).await;
        r.assert_refused(403, origin);
        let r = preflight(&server, origin).await;
        assert_eq!(r.status, 403, "preflight from {origin}: {r:?}");
    }
    assert_eq!(server.value(Some("prod"), "flag").await, Some(json!("on")));
}

#[tokio::test]
async fn a_loopback_server_answers_only_to_its_own_names() {
    let server = Server::start();
    let port = addr(&server).port();
    let host = |name: &str| format!("{name}:{port}");
    for (method, path) in [
        (Method::POST, "/set?ns=prod"),
        (Method::GET, "/get/flag?ns=prod"),
        (Method::GET, "/health"),
        (Method::DELETE, "/namespaces/prod"),
    ] {
        for name in ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io"] {
            let r = call_with(
                &server,
                method.clone(),
                path,
                None,
                Some(&set_body("flag", None)),
                &[("host", &host(name))],
            )
            .await;
            r.assert_refused(403, &format!("{method} {path} as {name}"));
            let detail = r.json()["detail"].as_str().unwrap().to_owned();
            assert!(detail.contains("--allowed-host"), "{detail}");
        }
    }
    assert_eq!(server.value(Some("prod"), "flag").await, None);
    for name in ["localhost", "127.0.0.1", "[::1]", "app.localhost"] {
        let r = call_with(
            &server,
            Method::POST,
            "/set?ns=prod",
            None,
            Some(&set_body("flag", None)),
            &[("host", &host(name))],
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let r = call_with(
            &server,
            Method::GET,
            "/get/flag?ns=prod",
            None,
            None,
            &[("host", &host(name))],
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {r:?}");
    }

    // A name given by --allowed-host, with its pages as the server's own.
    let server = Server::start_with(&["--allowed-host", "kv.example.com"]);
    let r = call_with(
        &server,
        Method::GET,
        "/health",
        None,
        None,
        &[("host", "kv.example.com")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call_with(
        &server,
        Method::POST,
        "/set?ns=prod",
        None,
        Some(&set_body("flag", None)),
        &[("origin", "https://kv.example.com")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call_with(
        &server,
        Method::GET,
        "/health",
        None,
        None,
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
}
