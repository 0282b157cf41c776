//! Tokens: who may do what. Every endpoint without a token, with an unknown
//! or altered one, another tenant's, a read token writing; the body's
//! namespace against `?ns=`; admin-only routes; filtered listings; tokens
//! created and revoked without a restart.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{backend_supports, create_token};
use crate::support::{BIN, call, call_with, closed_server, poll_status, set_body};

/// Every request a tenant could make in namespace `ns` (`None`: the
/// default namespace), with the access it needs: `true` for writes.
fn namespaced_requests(ns: Option<&str>) -> Vec<(Method, String, Option<Value>, bool)> {
    let q = ns.map(|n| format!("?ns={n}")).unwrap_or_default();
    let mut requests = vec![
        (
            Method::POST,
            format!("/set{q}"),
            Some(set_body("k", None)),
            true,
        ),
        (Method::GET, format!("/get/k{q}"), None, false),
        (Method::DELETE, format!("/delete/k{q}"), None, true),
        (Method::GET, format!("/keys{q}"), None, false),
    ];
    if let Some(n) = ns {
        requests.push((
            Method::POST,
            "/set".into(),
            Some(set_body("k", Some(n))),
            true,
        ));
        requests.push((Method::GET, format!("/namespaces/{n}/keys"), None, false));
        requests.push((Method::DELETE, format!("/namespaces/{n}"), None, true));
        requests.push((Method::GET, format!("/stats?ns={n}"), None, false));
        requests.push((Method::GET, format!("/health?ns={n}"), None, false));
    }
    requests
}

/// Routes only an admin token may use.
const ADMIN_ONLY: [(&str, &str); 4] = [
    ("POST", "/compact"),
    ("GET", "/metrics"),
    ("GET", "/performance"),
    ("GET", "/performance/recent-errors"),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

#[tokio::test]
async fn every_endpoint_refuses_a_missing_or_unknown_token() {
    let (server, tokens, _dir) = closed_server(&[]);
    let unknown = format!("pykv_{}", "0".repeat(64));
    let mut requests = namespaced_requests(Some("alpha"));
    requests.extend(namespaced_requests(None));
    requests.push((Method::GET, "/namespaces".into(), None, false));
    requests.push((Method::GET, "/stats".into(), None, false));
    for (m, path) in ADMIN_ONLY {
        requests.push((method(m), path.into(), None, true));
    }
    for (m, path, body, _) in &requests {
        let what = format!("{m} {path}");
        call(&server, m.clone(), path, None, body.as_ref())
            .await
            .assert_refused(401, &format!("{what} without a token"));
        call(&server, m.clone(), path, Some(&unknown), body.as_ref())
            .await
            .assert_refused(401, &format!("{what} with an unknown token"));
        // The token without the scheme, or under another one.
        for header in [tokens.admin.clone(), format!("Basic {}", tokens.admin)] {
            let r = call_with(
                &server,
                m.clone(),
                path,
                None,
                body.as_ref(),
                &[("authorization", &header)],
            )
            .await;
            r.assert_refused(401, &format!("{what} with Authorization: {header:.12}..."));
        }
        // An admin token's prefix, or the token with a byte changed.
        let mut altered = tokens.admin.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        for bad in [
            tokens.admin[..tokens.admin.len() - 1].to_owned(),
            String::from_utf8(altered).unwrap(),
        ] {
            call(&server, m.clone(), path, Some(&bad), body.as_ref())
                .await
                .assert_refused(401, &format!("{what} with an altered token"));
        }
    }
    // Nothing was stored by any of them.
    let r = call(&server, Method::GET, "/stats", Some(&tokens.admin), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total_keys"], 0, "{r:?}");

    // What needs no token: the documentation, the console, liveness.
    for path in ["/openapi.json", "/docs", "/ui"] {
        let r = call(&server, Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "GET {path} without a token: {r:?}");
    }
    let r = call(&server, Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), json!({"status": "healthy", "store_size": 0}));
}

#[tokio::test]
async fn tenants_stay_in_their_namespaces() {
    let (server, tokens, _dir) = closed_server(&[]);
    let admin = Some(tokens.admin.as_str());
    // Something to read in each namespace, so that reads are real.
    for ns in ["alpha", "beta"] {
        let r = call(
            &server,
            Method::POST,
            "/set",
            admin,
            Some(&set_body("k", Some(ns))),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    // Another tenant's namespace, and the default namespace: 403, for
    // reads and writes, however the namespace is named.
    for token in [&tokens.alpha, &tokens.alpha_read] {
        for ns in [Some("beta"), None] {
            for (m, path, body, _) in namespaced_requests(ns) {
                call(&server, m.clone(), &path, Some(token), body.as_ref())
                    .await
                    .assert_refused(403, &format!("{m} {path} by an alpha token"));
            }
        }
    }
    // A read token writing its own namespace: 403; reading it: 200.
    for (m, path, body, write) in namespaced_requests(Some("alpha")) {
        let r = call(
            &server,
            m.clone(),
            &path,
            Some(&tokens.alpha_read),
            body.as_ref(),
        )
        .await;
        if write {
            r.assert_refused(403, &format!("{m} {path} by a read token"));
        } else {
            assert_eq!(r.status, 200, "{m} {path} by a read token: {r:?}");
        }
    }
    // Nothing changed: both keys are still there, nothing else.
    for ns in ["alpha", "beta"] {
        let r = call(
            &server,
            Method::GET,
            &format!("/get/k?ns={ns}"),
            admin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{ns}: {r:?}");
    }
    let r = call(&server, Method::GET, "/stats", admin, None).await;
    assert_eq!(r.json()["total_keys"], 2, "{r:?}");

    // The right token: every request of its namespace works.
    for (m, path, body, _) in namespaced_requests(Some("alpha")) {
        let r = call(
            &server,
            m.clone(),
            &path,
            Some(&tokens.alpha),
            body.as_ref(),
        )
        .await;
        // A delete may find the key already gone.
        assert!(
            r.status == 200 || (r.status == 404 && r.json()["detail"] == "Key not found"),
            "{m} {path} by the alpha token: {r:?}"
        );
    }
    // And the admin token, every namespace, the default one included.
    for ns in [Some("beta"), None] {
        for (m, path, body, _) in namespaced_requests(ns) {
            let r = call(&server, m.clone(), &path, admin, body.as_ref()).await;
            assert!(
                r.status == 200 || r.status == 404,
                "{m} {path} by the admin token: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_body_namespace_cannot_take_a_token_elsewhere() {
    let (server, tokens, _dir) = closed_server(&[]);
    let alpha = Some(tokens.alpha.as_str());
    // The query names the token's own namespace, the body another one: the
    // body wins, so it is the body's that the token must allow.
    for path in ["/set?ns=alpha", "/set"] {
        for target in ["beta", "gamma"] {
            let body = json!({"key": "stolen", "value": "x", "namespace": target});
            call(&server, Method::POST, path, alpha, Some(&body))
                .await
                .assert_refused(403, &format!("POST {path} with namespace {target}"));
        }
    }
    // A null namespace in the body falls back to the query.
    let body = json!({"key": "stolen", "value": "x", "namespace": null});
    call(&server, Method::POST, "/set?ns=beta", alpha, Some(&body))
        .await
        .assert_refused(403, "null body namespace, ?ns=beta");
    call(&server, Method::POST, "/set", alpha, Some(&body))
        .await
        .assert_refused(403, "null body namespace, no query: the default namespace");
    // Names that are not the token's by a hair: case, padding, escapes.
    for target in ["Alpha", "alpha ", " alpha", "alpha\u{0}", "alph\\u0061x"] {
        let body = json!({"key": "stolen", "value": "x", "namespace": target});
        let r = call(&server, Method::POST, "/set?ns=alpha", alpha, Some(&body)).await;
        assert!(
            r.status == 403 || r.status == 422,
            "namespace {target:?}: {r:?}"
        );
    }
    // An escaped spelling of its own namespace is its own namespace.
    let escaped = r#"{"key":"mine","value":1,"namespace":"\u0061lpha"}"#;
    let r = server
        .client
        .post(server.url("/set?ns=beta"))
        .bearer_auth(&tokens.alpha)
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Nothing reached another namespace or the default one.
    let admin = Some(tokens.admin.as_str());
    let r = call(&server, Method::GET, "/namespaces", admin, None).await;
    assert_eq!(r.json()["namespaces"], json!(["alpha"]), "{r:?}");
    let r = call(&server, Method::GET, "/stats", admin, None).await;
    assert_eq!(r.json()["total_keys"], 1, "{r:?}");
    let r = call(&server, Method::GET, "/get/stolen?ns=beta", admin, None).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn server_wide_routes_are_admin_only() {
    let (server, tokens, _dir) = closed_server(&[]);
    for (m, path) in ADMIN_ONLY {
        for token in [&tokens.alpha, &tokens.alpha_read, &tokens.beta] {
            call(&server, method(m), path, Some(token), None)
                .await
                .assert_refused(403, &format!("{m} {path} by a tenant"));
        }
        if path == "/compact" && !backend_supports("compaction") {
            continue;
        }
        let r = call(&server, method(m), path, Some(&tokens.admin), None).await;
        assert_eq!(r.status, 200, "{m} {path} by the admin: {r:?}");
    }
}

#[tokio::test]
async fn a_tenant_sees_only_its_namespaces() {
    let (server, tokens, _dir) = closed_server(&[]);
    let admin = Some(tokens.admin.as_str());
    for (ns, keys) in [
        (Some("alpha"), 2),
        (Some("beta"), 3),
        (Some("gamma"), 1),
        (None, 4),
    ] {
        for i in 0..keys {
            let q = ns.map(|n| format!("?ns={n}")).unwrap_or_default();
            let r = call(
                &server,
                Method::POST,
                &format!("/set{q}"),
                admin,
                Some(&set_body(&format!("k{i}"), None)),
            )
            .await;
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let r = call(
        &server,
        Method::GET,
        "/get/k0?ns=alpha",
        Some(&tokens.alpha),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    if backend_supports("compaction") {
        call(&server, Method::POST, "/compact", admin, None).await;
    }

    for token in [&tokens.alpha, &tokens.alpha_read] {
        let r = call(&server, Method::GET, "/namespaces", Some(token), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json(), json!({"namespaces": ["alpha"], "count": 1}));

        let stats = call(&server, Method::GET, "/stats", Some(token), None)
            .await
            .json();
        assert_eq!(stats["total_keys"], 2, "{stats}");
        assert_eq!(stats["cache_hits"], 1, "{stats}");
        let names: Vec<&String> = stats["namespaces"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["alpha"], "{stats}");
        if backend_supports("persistence") {
            assert_eq!(stats["log_size"], 0, "{stats}");
        } else {
            assert_eq!(stats.get("log_size"), None, "{stats}");
        }
        assert_eq!(stats["last_compaction"], Value::Null, "{stats}");
        for field in ["total_keys", "cache_hits", "cache_misses"] {
            assert_eq!(stats["default_namespace"][field], 0, "{stats}");
        }
        // Nothing server-wide leaks through the text either.
        assert!(!stats.to_string().contains("beta"), "{stats}");
        assert!(!stats.to_string().contains("gamma"), "{stats}");

        let r = call(&server, Method::GET, "/health", Some(token), None).await;
        assert_eq!(r.json()["store_size"], 2, "{r:?}");
    }
    let stats = call(&server, Method::GET, "/stats", Some(&tokens.beta), None)
        .await
        .json();
    assert_eq!(stats["total_keys"], 3, "{stats}");

    // The admin sees everything; an anonymous liveness check, nothing.
    let r = call(&server, Method::GET, "/namespaces", admin, None).await;
    assert_eq!(r.json()["namespaces"], json!(["alpha", "beta", "gamma"]));
    let stats = call(&server, Method::GET, "/stats", admin, None)
        .await
        .json();
    assert_eq!(stats["total_keys"], 10, "{stats}");
    let r = call(&server, Method::GET, "/health", None, None).await;
    assert_eq!(r.json()["store_size"], 0, "{r:?}");
}

#[tokio::test]
async fn tokens_created_and_revoked_take_effect_without_restart() {
    let (server, tokens, dir) = closed_server(&[]);
    let token_ids = || -> Vec<(String, Vec<String>)> {
        let out = Command::new(BIN)
            .args(["token", "list", "--json", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let namespaces = t["namespaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_owned())
                    .collect();
                (t["id"].as_str().unwrap().to_owned(), namespaces)
            })
            .collect()
    };
    let listing = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    for token in [
        &tokens.admin,
        &tokens.alpha,
        &tokens.beta,
        &tokens.alpha_read,
    ] {
        assert!(
            !listing.contains(token.as_str()),
            "a token is stored in clear"
        );
    }

    // A token created while the server runs works within a few seconds.
    let fresh = create_token(dir.path(), &["--ns", "delta", "--access", "write"]);
    let body = set_body("k", Some("delta"));
    let status = poll_status(&server, &fresh, &body, |s| s == 200).await;
    assert_eq!(status, 200, "a new token was not accepted within 3 s");

    // Revoked: refused within a few seconds, without a restart.
    let id = token_ids()
        .into_iter()
        .find(|(_, ns)| ns == &["delta"])
        .unwrap()
        .0;
    let out = Command::new(BIN)
        .args(["token", "revoke", "--data-dir"])
        .arg(dir.path())
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&fresh));
    let status = poll_status(&server, &fresh, &body, |s| s == 401).await;
    assert_eq!(status, 401, "a revoked token still worked after 3 s");
    let r = call(&server, Method::POST, "/set", Some(&fresh), Some(&body)).await;
    r.assert_refused(401, "revoked token");
    // The other tokens are unaffected.
    let r = call(
        &server,
        Method::GET,
        "/namespaces",
        Some(&tokens.alpha),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    // Revoking an unknown id fails without touching the file.
    let out = Command::new(BIN)
        .args(["token", "revoke", "--data-dir"])
        .arg(dir.path())
        .arg(&id)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(token_ids().len(), 4);
}
