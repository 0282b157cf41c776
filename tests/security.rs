//! Security: tokens and what they allow, tenants kept apart, admin-only
//! routes, revocation without restart, rate limits, CORS, connection and
//! header limits, slow clients, secrets kept out of logs, and a
//! deterministic mini-fuzz of the parsers that read bytes from outside.
//!
//! Every test runs the real `pykv` binary; tokens are made with the real
//! `pykv token create` in the server's data directory.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, enc};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pykv");

// ---- helpers -----------------------------------------------------------

/// `pykv token create --data-dir DIR ARGS...`: the token it prints.
fn create_token(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pykv token create");
    assert!(out.status.success(), "pykv token create {args:?}: {out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("pykv_"), "{token:?}");
    // Shown once on stdout, never on stderr.
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    token
}

/// The tokens of one test server: an admin, two tenants with write access
/// (`alpha`, `beta`), and a read-only token on `alpha`.
struct Tokens {
    admin: String,
    alpha: String,
    beta: String,
    alpha_read: String,
}

fn make_tokens(dir: &Path) -> Tokens {
    Tokens {
        admin: create_token(dir, &["--admin"]),
        alpha: create_token(dir, &["--ns", "alpha", "--access", "write"]),
        beta: create_token(dir, &["--ns", "beta", "--access", "write"]),
        alpha_read: create_token(dir, &["--ns", "alpha", "--access", "read"]),
    }
}

/// A server whose data dir holds tokens before it starts.
fn closed_server(args: &[&str]) -> (Server, Tokens, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = make_tokens(dir.path());
    let server = Server::start_in(dir.path(), args);
    (server, tokens, dir)
}

/// One answer, whatever its body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// A refusal: the status, a JSON `detail`, and for 401 the bearer
    /// challenge.
    fn assert_refused(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert!(
            self.json()["detail"].is_string(),
            "{what}: no detail: {self:?}"
        );
        if status == 401 {
            assert_eq!(self.header("www-authenticate"), Some("Bearer"), "{what}");
        }
    }
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    call_with(server, method, path, token, body, &[]).await
}

async fn call_with(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(status < 500, "{method} {path}: {status} {text}");
    Answer {
        status,
        headers,
        text,
    }
}

fn set_body(key: &str, namespace: Option<&str>) -> Value {
    match namespace {
        Some(ns) => json!({"key": key, "value": "v", "namespace": ns}),
        None => json!({"key": key, "value": "v"}),
    }
}

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

/// `127.0.0.1:PORT` of a server.
fn addr(server: &Server) -> SocketAddr {
    server
        .base_url()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether the server answers `GET /health` normally.
async fn assert_alive(server: &Server, token: Option<&str>) {
    let r = call(server, Method::GET, "/health", token, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["status"], "healthy");
}

/// Writes `request` on a new connection and reads until the server closes
/// it or `wait` passes: what was read, and whether the connection closed.
fn raw_exchange(to: SocketAddr, request: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(to).unwrap();
    // The server may refuse in the middle of a large request: a failed
    // write is one way of closing.
    let _ = stream.write_all(request);
    read_until_closed(&mut stream, wait)
}

fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if complete_response(&got) {
                    return (got, false);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false);
            }
            Err(_) => return (got, true),
        }
    }
}

/// Whether `bytes` hold a whole answer: its head and `Content-Length`
/// bytes of body.
fn complete_response(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

/// The status of the first answer in raw bytes, if any.
fn raw_status(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// ---- tokens: who may do what --------------------------------------------

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
    call(&server, Method::POST, "/compact", admin, None).await;

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
        assert_eq!(stats["log_size"], 0, "{stats}");
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

/// Sends `POST /set` with `token` every 100 ms for up to 3 s until `done`
/// says yes to the status; returns the last status.
async fn poll_status(
    server: &Server,
    token: &str,
    body: &Value,
    done: impl Fn(u16) -> bool,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = call(server, Method::POST, "/set", Some(token), Some(body))
            .await
            .status;
        if done(status) || Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rate_limits_are_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = dir.path().join("quotas.toml");
    std::fs::write(&quotas, "[default]\nrequests_per_second = 1\nburst = 3\n").unwrap();
    let tokens = make_tokens(dir.path());
    let server = Server::start_in(dir.path(), &["--quotas", quotas.to_str().unwrap()]);

    // Another tenant's refused requests do not drain alpha's bucket.
    for _ in 0..10 {
        call(
            &server,
            Method::GET,
            "/get/k?ns=alpha",
            Some(&tokens.beta),
            None,
        )
        .await
        .assert_refused(403, "beta reading alpha");
    }
    let alpha = Some(tokens.alpha.as_str());
    for i in 0..3 {
        let r = call(
            &server,
            Method::POST,
            "/set?ns=alpha",
            alpha,
            Some(&set_body(&format!("k{i}"), None)),
        )
        .await;
        assert_eq!(r.status, 200, "request {i} of the burst: {r:?}");
    }
    let r = call(&server, Method::GET, "/get/k0?ns=alpha", alpha, None).await;
    r.assert_refused(429, "the 4th quick request");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{r:?}");
    // Other namespaces are unaffected.
    let r = call(
        &server,
        Method::POST,
        "/set?ns=beta",
        Some(&tokens.beta),
        Some(&set_body("k", None)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // After the wait it says, alpha works again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = call(&server, Method::GET, "/get/k0?ns=alpha", alpha, None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

// ---- browsers: CORS ------------------------------------------------------

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
    server.set(Some("prod"), "flag", json!("off")).await;
    for (method, path) in [
        (Method::POST, "/set?ns=prod"),
        // The same through the router rather than the hot path.
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
    let r = simple_request(&server, Method::POST, "/compact", None).await;
    assert_eq!(r.status, 200, "{r:?}");
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

// ---- connections, headers, slow clients ----------------------------------

#[tokio::test]
async fn oversized_headers_are_refused() {
    let server = Server::start_with(&["--max-header-bytes", "8192"]);
    let to = addr(&server);
    let big = "a".repeat(10 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n");
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        raw_exchange(to, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    match raw_status(&answer) {
        Some(431) => {}
        None => assert!(
            closed,
            "neither 431 nor closed: {:?}",
            String::from_utf8_lossy(&answer)
        ),
        Some(other) => panic!(
            "a 10 KB header answered {other}: {:?}",
            String::from_utf8_lossy(&answer)
        ),
    }
    // Many headers adding up past the limit, each small.
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(30)))
        .collect();
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n");
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        raw_exchange(to, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(
        raw_status(&answer) == Some(431) || (raw_status(&answer).is_none() && closed),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_alive(&server, None).await;
    // A normal header is fine.
    let r = call_with(
        &server,
        Method::GET,
        "/health",
        None,
        None,
        &[("x-small", &"c".repeat(1000))],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_client_that_stops_mid_request_line_is_cut_off() {
    let server = Server::start_with(&["--header-read-timeout", "1"]);
    let to = addr(&server);
    let started = Instant::now();
    let (answer, closed) =
        tokio::task::spawn_blocking(move || raw_exchange(to, b"GET /hea", Duration::from_secs(6)))
            .await
            .unwrap();
    let took = started.elapsed();
    // Cut off: closed, or answered with a client error (408) and closed.
    let refused = raw_status(&answer).is_some_and(|s| (400..500).contains(&s));
    assert!(
        closed || refused,
        "the connection was still open after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");
    if let Some(status) = raw_status(&answer) {
        assert!(
            (400..500).contains(&status),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // Headers trickled byte by byte, slower than the limit allows in total.
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        for b in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1234567890\r\n\r\n" {
            if stream.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(150));
            if started.elapsed() > Duration::from_secs(6) {
                return false;
            }
        }
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(1));
        raw_status(&answer) != Some(200)
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a slowloris client got its answer after {:?}",
        started.elapsed()
    );
    assert_alive(&server, None).await;
}

/// The header timeout bounds the wait for a request's head, not the
/// answering of it: a body sent within `--request-timeout` but over more
/// than the header timeout is still answered.
#[tokio::test]
async fn a_request_being_answered_outlives_the_header_timeout() {
    let server = Server::start_with(&["--header-read-timeout", "1", "--request-timeout", "10"]);
    let to = addr(&server);
    let body = br#"{"key":"slow","value":"body"}"#;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        let head = format!(
            "POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(body.len().div_ceil(5)) {
            std::thread::sleep(Duration::from_millis(600));
            stream.write_all(chunk).unwrap();
        }
        read_until_closed(&mut stream, Duration::from_secs(5)).0
    })
    .await
    .unwrap();
    assert_eq!(
        raw_status(&answer),
        Some(200),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(server.value(None, "slow").await, Some(json!("body")));
}

#[tokio::test]
async fn idle_connections_cannot_hold_every_slot() {
    // Connections that never send a byte are cut off by the header
    // timeout, so they cannot keep others out for long.
    let server = Server::start_with(&["--max-connections", "2", "--header-read-timeout", "1"]);
    let to = addr(&server);
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(to).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (answer, _) = tokio::task::spawn_blocking(move || {
        raw_exchange(
            to,
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        raw_status(&answer),
        Some(200),
        "two idle connections kept a third out for 5 s: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
}

/// Connections in the middle of a request are not idle: at the limit, a
/// new connection waits for one of them to end.
#[tokio::test]
async fn connections_over_the_limit_wait_for_a_busy_one_to_end() {
    let server = Server::start_with(&["--max-connections", "4", "--header-read-timeout", "30"]);
    let to = addr(&server);
    // Four connections each in the middle of a request head.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(to).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let result = tokio::task::spawn_blocking(move || {
        let mut fifth = TcpStream::connect(to).unwrap();
        fifth
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (early, _) = read_until_closed(&mut fifth, Duration::from_secs(1));
        // One of the four goes away: the fifth is served.
        drop(held.pop());
        let (late, _) = read_until_closed(&mut fifth, Duration::from_secs(5));
        (early, late, held)
    })
    .await
    .unwrap();
    let (early, late, held) = result;
    assert!(
        early.is_empty(),
        "a 5th connection was served while 4 were busy: {:?}",
        String::from_utf8_lossy(&early)
    );
    assert_eq!(
        raw_status(&late),
        Some(200),
        "the 5th connection was not served once a slot was free: {:?}",
        String::from_utf8_lossy(&late)
    );
    drop(held);
    assert_alive(&server, None).await;
}

/// A keep-alive connection that has had its answer, left open.
fn idle_after_one_request(to: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(to).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(raw_status(&buf[..n]), Some(200));
    stream
}

/// Whether the server has closed `stream`, waiting at most `wait`.
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes on an idle connection: {:?}", &buf[..n]),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// One request on a new keep-alive connection: its status, how long it
/// took, and the connection, left open.
fn timed_request(to: SocketAddr) -> (Option<u16>, Duration, TcpStream) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(to).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(15));
    (raw_status(&answer), started.elapsed(), stream)
}

/// At the limit, the connection idle the longest is closed for a new one,
/// so idle connections cannot keep anyone out (they once made a request
/// wait for the header timeout).
#[tokio::test]
async fn idle_connections_make_room_oldest_first() {
    let server = Server::start_with(&["--max-connections", "16", "--header-read-timeout", "10"]);
    let to = addr(&server);
    tokio::task::spawn_blocking(move || {
        let mut idle: Vec<TcpStream> = (0..16).map(|_| idle_after_one_request(to)).collect();
        // Each new connection stays open, so that the server stays at its
        // limit.
        let mut new = Vec::new();
        for round in 0..2 {
            let (status, took, stream) = timed_request(to);
            new.push(stream);
            assert_eq!(status, Some(200), "round {round}");
            assert!(
                took < Duration::from_secs(2),
                "round {round}: waited {took:?}"
            );
            // The oldest idle connection left, and only it.
            assert!(
                closed_by_server(&mut idle[round], Duration::from_secs(2)),
                "round {round}: the oldest idle connection is still open"
            );
            for (i, stream) in idle.iter_mut().enumerate().skip(round + 1) {
                assert!(
                    !closed_by_server(stream, Duration::from_millis(20)),
                    "round {round}: connection {i} was closed instead"
                );
            }
        }
        // A connection used again is no longer the oldest idle one.
        let mut third = idle.remove(2);
        third
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = third.read(&mut buf).unwrap();
        assert_eq!(raw_status(&buf[..n]), Some(200));
        let (status, _, _stream) = timed_request(to);
        assert_eq!(status, Some(200));
        assert!(!closed_by_server(&mut third, Duration::from_millis(100)));
        assert!(
            closed_by_server(&mut idle[2], Duration::from_secs(2)),
            "the 4th was oldest"
        );
    })
    .await
    .unwrap();
    assert_alive(&server, None).await;
}

/// Connections that never send a byte are idle too.
#[tokio::test]
async fn silent_connections_make_room() {
    let server = Server::start_with(&["--max-connections", "4", "--header-read-timeout", "10"]);
    let to = addr(&server);
    tokio::task::spawn_blocking(move || {
        let mut silent: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(to).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let (status, took, _stream) = timed_request(to);
        assert_eq!(status, Some(200));
        assert!(took < Duration::from_secs(2), "waited {took:?}");
        assert!(closed_by_server(&mut silent[0], Duration::from_secs(2)));
        for stream in &mut silent[1..] {
            assert!(!closed_by_server(stream, Duration::from_millis(20)));
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408() {
    let server = Server::start_with(&["--request-timeout", "1"]);
    let to = addr(&server);
    let started = Instant::now();
    let (answer, _) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        stream
            .write_all(b"POST /set?ns=a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":")
            .unwrap();
        read_until_closed(&mut stream, Duration::from_secs(5))
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(raw_status(&answer), Some(408), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("\"detail\""), "{text:?}");
    assert_alive(&server, None).await;
    let r = call(&server, Method::GET, "/get/k?ns=a", None, None).await;
    assert_eq!(r.status, 404, "a timed-out write was applied: {r:?}");
}

// ---- secrets stay out of logs and answers --------------------------------

#[tokio::test]
async fn tokens_never_appear_in_logs_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = make_tokens(dir.path());
    let unknown = format!("pykv_{}", "f".repeat(64));
    for format in ["text", "json"] {
        let (mut child, base, stderr) = spawn_logging(dir.path(), format);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut answers = String::new();
        for token in [&tokens.admin, &tokens.alpha, &tokens.alpha_read, &unknown] {
            for (m, path, body) in [
                (Method::POST, "/set?ns=alpha", Some(set_body("k", None))),
                (Method::POST, "/set", Some(set_body("k", Some("beta")))),
                (Method::GET, "/get/k?ns=alpha", None),
                (Method::GET, "/get/nope?ns=alpha", None),
                (Method::GET, "/stats", None),
                (Method::GET, "/metrics", None),
                (Method::GET, "/performance/recent-errors", None),
                (Method::POST, "/compact", None),
            ] {
                let mut request = client
                    .request(m, format!("{base}{path}"))
                    .bearer_auth(token);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                let response = request.send().await.unwrap();
                answers.push_str(&format!("{:?}", response.headers()));
                answers.push_str(&response.text().await.unwrap());
            }
            // The token in a malformed header, too.
            let response = client
                .get(format!("{base}/stats"))
                .header("authorization", format!("Token {token}"))
                .send()
                .await
                .unwrap();
            answers.push_str(&response.text().await.unwrap());
        }
        // A revocation and a reload are logged, without the token.
        let extra = create_token(dir.path(), &["--ns", "omega", "--access", "read"]);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let response = client
            .get(format!("{base}/namespaces"))
            .bearer_auth(&extra)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = child.kill();
        let _ = child.wait();
        let log = stderr.join().unwrap();
        assert!(
            log.contains("DEBUG") || log.contains("\"DEBUG\"") || log.contains("debug"),
            "no debug line in the log ({format}); is RUST_LOG honoured?\n{log}"
        );
        for token in [
            &tokens.admin,
            &tokens.alpha,
            &tokens.alpha_read,
            &unknown,
            &extra,
        ] {
            assert!(
                !log.contains(token.as_str()),
                "a token is in the {format} log:\n{log}"
            );
            // Nor the hex part alone, nor the whole hash of a token.
            assert!(!log.contains(&token[5..]), "a token's hex is in the log");
            assert!(
                !log.contains(&pykv::auth::hash_token(token)),
                "a token's hash is in the log"
            );
            assert!(!answers.contains(token.as_str()), "a token is in an answer");
        }
        assert!(
            !log.to_ascii_lowercase().contains("authorization: bearer"),
            "{log}"
        );
    }
}

/// `/performance/recent-errors` describes what a client sent instead of
/// repeating it, whatever its shape: secrets in a TTL (with the `;` that
/// once ended the redaction), a key of the wrong type, namespace names in
/// the body, the query and the path, a query value, a quota, a broken
/// body, a key in a path, a method, a token.
#[tokio::test]
async fn recent_errors_never_keep_what_a_client_sent() {
    let (server, tokens, _dir) = closed_server(&[]);
    let admin = Some(tokens.admin.as_str());
    let alpha = Some(tokens.alpha.as_str());
    let raw = |method: Method, path: &str, token: Option<&str>, body: &str| {
        let mut request = server
            .client
            .request(method, server.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    let requests = [
        raw(
            Method::POST,
            "/set?ns=alpha",
            alpha,
            r#"{"key":"k","value":1,"ttl":"a;SECRET01"}"#,
        ),
        raw(
            Method::POST,
            "/set?ns=alpha",
            alpha,
            r#"{"key":"k","value":1,"ttl":"x got y; SECRET02 got"}"#,
        ),
        raw(
            Method::POST,
            "/set?ns=alpha",
            alpha,
            r#"{"key":{"SECRET03":1},"value":1}"#,
        ),
        raw(
            Method::POST,
            "/set",
            admin,
            r#"{"key":"k","value":1,"namespace":"SECRET04;bad name"}"#,
        ),
        raw(
            Method::POST,
            "/set",
            admin,
            r#"{"key":"k","value":1,"namespace":["SECRET05"]}"#,
        ),
        raw(
            Method::POST,
            "/set?ns=SECRET06%3Bbad",
            admin,
            r#"{"key":"k","value":1}"#,
        ),
        raw(Method::GET, "/get/k?ns=SECRET07;bad", admin, ""),
        // A tenant token refused elsewhere: the scope names the namespace.
        raw(Method::GET, "/get/k?ns=SECRET08", alpha, ""),
        raw(Method::GET, "/get/k?ns=SECRET09%20bad", alpha, ""),
        raw(Method::DELETE, "/namespaces/SECRET10%3B", admin, ""),
        raw(Method::GET, "/keys?ns=alpha&limit=SECRET11", admin, ""),
        raw(
            Method::PUT,
            "/quota?ns=alpha",
            admin,
            r#"{"max_keys":"SECRET12"}"#,
        ),
        raw(Method::POST, "/set?ns=alpha", alpha, r#"{"key":"SECRET13"#),
        raw(Method::POST, "/set?ns=alpha", alpha, r#"["SECRET14"]"#),
        raw(Method::GET, "/get/SECRET15?ns=alpha", alpha, ""),
        raw(Method::POST, "/get/SECRET16", admin, ""),
        raw(Method::GET, "/no/such/SECRET17", admin, ""),
        raw(Method::from_bytes(b"SECRET18").unwrap(), "/set", admin, ""),
        raw(Method::GET, "/get/k", Some("pykv_SECRET19"), ""),
    ];
    let sent = requests.len();
    for request in requests {
        let response = server.send_raw(request).await;
        assert!((400..500).contains(&response), "{response}");
    }
    let r = call(
        &server,
        Method::GET,
        "/performance/recent-errors",
        admin,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let errors = r.json();
    assert_eq!(errors["count"], json!(sent), "{errors}");
    assert!(!r.text.contains("SECRET"), "client input kept: {}", r.text);
    // What was wrong is still said, the input described.
    let detail = |i: usize| errors["errors"][i]["detail"].as_str().unwrap().to_owned();
    assert!(
        detail(0).starts_with("field `ttl`")
            && detail(0).contains("got a JSON string of 10 characters"),
        "{}",
        detail(0)
    );
    assert!(
        detail(3).contains("a string of 17 characters"),
        "{}",
        detail(3)
    );
    assert_eq!(errors["errors"][sent - 2]["method"], "OTHER", "{errors}");
}

/// `pykv serve` with `RUST_LOG=debug`, logging in `format`: the child, its
/// base URL, and the thread collecting its stderr.
fn spawn_logging(
    dir: &Path,
    format: &str,
) -> (std::process::Child, String, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-format",
            format,
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let collector = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        String::from_utf8_lossy(&all).into_owned()
    });
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("pykv printed its listening line")
            .unwrap();
        if let Some(url) = line.strip_prefix("PyKV listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, base, collector)
}

// ---- deterministic mini-fuzz ---------------------------------------------

/// Valid inputs to mutate: log lines as the server writes them and as PyKV
/// writes them, and `POST /set` bodies.
fn log_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        pykv::fuzzing::encode_set_record(Some("app1"), "user:1", "\"alice\"", Some(1_732_553_600_123), 1_732_550_000_123),
        pykv::fuzzing::encode_set_record(None, "ключ \"q\"\n/?#%", "{\"a\":[1,2.5,null,true]}", None, 0),
        br#"{"timestamp": 1234567890.123, "action": "SET", "key": "user:123", "value": "alice", "namespace": "app1", "ttl": 3600}"#.to_vec(),
        br#"{"timestamp":1.0,"action":"DEL","key":"k","value":null,"namespace":null,"ttl":null,"evicted":true}"#.to_vec(),
        br#"{"timestamp":1.0,"action":"CLEAR","key":null,"value":null,"namespace":"app1","ttl":null}"#.to_vec(),
        br#"{"action":"SET","key":"k","value":1e308,"ttl":1e308,"timestamp":-1e308}"#.to_vec(),
        br#"{"action":"SET","key":"k","value":[],"ttl":-5,"expires_at":18446744073709551615}"#.to_vec(),
    ];
    for s in &mut seeds {
        if s.last() == Some(&b'\n') {
            s.pop();
        }
    }
    seeds
}

fn set_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"key":"user:123","value":"alice","namespace":"app1","ttl":3600}"#,
        r#"{"key":"k","value":{"a":[1,2.5,null]},"ttl":null,"namespace":null}"#,
        "{\"key\":\"k\",\"value\":{\n \"a\": 1\n}}",
        r#"{"key":"\ud83d\ude00","value":"\u0000","ttl":3153600000}"#,
        r#"{"key":"k","value":1,"ttl":3153600001}"#,
        r#"[{"key":"k","value":1}]"#,
        r#"  {"key":"k","value":1,"key":"dup"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Every fourth input random bytes, the others a mutated seed.
fn fuzz_input(rng: &mut fastrand::Rng, i: usize, seeds: &[Vec<u8>]) -> Vec<u8> {
    if i.is_multiple_of(4) {
        let len = rng.usize(0..256);
        return std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
    }
    let pick = rng.usize(..seeds.len());
    mutate(rng, &seeds[pick], seeds)
}

/// `input` with a few random byte-level changes: flips, insertions of
/// interesting bytes, deletions, splices of another seed, truncations.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud800",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"null",
        b"-",
        b"1e999",
        b"-0",
        b"18446744073709551616",
        b"\xff",
        b"\xc3",
        b"\xe2\x80",
        b"\0",
        b"\n",
        b"\"action\":\"SET\"",
        b"\"ttl\":",
        b"\"namespace\":",
    ];
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(0..6) {
            0 if !out.is_empty() => {
                let at = rng.usize(..out.len());
                out[at] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let at = rng.usize(..=out.len());
                let piece = INTERESTING[rng.usize(..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let from = rng.usize(..out.len());
                let to = (from + rng.usize(1..=8)).min(out.len());
                out.drain(from..to);
            }
            3 => {
                let other = &seeds[rng.usize(..seeds.len())];
                let cut = rng.usize(..=out.len());
                let from = rng.usize(..=other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            4 if !out.is_empty() => out.truncate(rng.usize(..out.len())),
            _ => {
                let at = rng.usize(..=out.len());
                out.insert(at, rng.u8(..));
            }
        }
    }
    out
}

/// 20,000 inputs per parser (random bytes, and mutated valid inputs),
/// from a fixed seed: none may panic, and what is accepted is sane.
#[test]
fn mini_fuzz_of_the_parsers() {
    const CASES: usize = 20_000;
    let mut rng = fastrand::Rng::with_seed(0x5eed_0f9b);
    let log = log_seeds();
    let set = set_seeds();
    for seed in &log {
        assert!(
            pykv::fuzzing::decode_log_line(seed).is_ok(),
            "{}",
            String::from_utf8_lossy(seed)
        );
    }
    assert!(pykv::fuzzing::parse_set_request(&set[0]).is_ok());
    let mut accepted = [0usize; 2];
    for i in 0..CASES {
        let input = fuzz_input(&mut rng, i, &log);
        let outcome = std::panic::catch_unwind(|| pykv::fuzzing::decode_log_line(&input));
        match outcome {
            Err(_) => panic!(
                "the log parser panicked on {:?}",
                String::from_utf8_lossy(&input)
            ),
            Ok(Ok(record)) => {
                accepted[0] += 1;
                if let Some(value) = &record.value {
                    // JSON text as the grammar has it (serde_json's tree
                    // parser also refuses numbers past f64, like 1e400).
                    serde_json::from_str::<&serde_json::value::RawValue>(value).unwrap_or_else(
                        |e| panic!("a SET value that is not JSON ({e}) from {input:?}"),
                    );
                }
            }
            Ok(Err(_)) => {}
        }

        let input = fuzz_input(&mut rng, i, &set);
        let outcome = std::panic::catch_unwind(|| pykv::fuzzing::parse_set_request(&input));
        match outcome {
            Err(_) => panic!(
                "the /set parser panicked on {:?}",
                String::from_utf8_lossy(&input)
            ),
            Ok(Ok(parsed)) => {
                accepted[1] += 1;
                assert!(!parsed.key.is_empty());
                assert!(!parsed.value.contains(['\n', '\r']), "{parsed:?}");
                // JSON text the server can embed as it is in answers and
                // log lines. (serde_json's tree parser refuses lone UTF-16
                // surrogates such as "\ud800", which the JSON grammar
                // allows: see `lone_surrogates_in_a_set_body`.)
                serde_json::from_str::<&serde_json::value::RawValue>(&parsed.value)
                    .unwrap_or_else(|e| panic!("a value that is not JSON ({e}): {parsed:?}"));
                if let Some(ttl) = parsed.ttl {
                    assert!((1..=pykv::http::MAX_TTL_SECS).contains(&ttl));
                }
            }
            Ok(Err((status, detail))) => {
                assert!(
                    status == 400 || status == 422,
                    "{status} {detail} for {input:?}"
                )
            }
        }
    }
    // The mutations keep enough inputs valid to reach past the first check.
    assert!(
        accepted[0] > 100 && accepted[1] > 100,
        "accepted {accepted:?}"
    );
}

/// The same bytes through the real server's `POST /set`: never a 5xx, and
/// the server keeps answering.
#[tokio::test]
async fn mini_fuzz_of_set_over_http() {
    let server = Server::start();
    let mut rng = fastrand::Rng::with_seed(7);
    let seeds = set_seeds();
    let encoded = enc("ä");
    for i in 0..1500 {
        let body = mutate(&mut rng, &seeds[i % seeds.len()], &seeds);
        let ns = ["a", "b", "%ZZ", "a%00", &encoded, ""][i % 6];
        let r = server
            .client
            .post(server.url(&format!("/set?ns={ns}")))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            [200, 400, 413, 422].contains(&status),
            "POST /set?ns={ns} {:?}: {status} {text}",
            String::from_utf8_lossy(&body)
        );
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
    }
    assert_alive(&server, None).await;
}

/// Lone UTF-16 surrogates (`"\ud800"`) are valid JSON grammar that
/// serde_json's tree parser refuses. In a pretty-printed value (with a
/// newline), the `/set` parser re-parses the value to compact it: that must
/// be a 200 or a 422, never a panic and a dropped connection.
#[tokio::test]
async fn lone_surrogates_in_a_set_body() {
    let bodies: [&[u8]; 4] = [
        b"{\"key\":\"k\",\"value\":[\n\"\\ud800\"]}",
        b"{\"key\":\"k\",\"value\":{\"a\":\n\"x\\udfffy\"}}",
        b"{\"key\":\"k\",\"value\":\"a\\ud800b\"}",
        b"{\"key\":\"k\\ud800\",\"value\":1}",
    ];
    for body in bodies {
        let parsed = std::panic::catch_unwind(|| pykv::fuzzing::parse_set_request(body));
        assert!(
            parsed.is_ok(),
            "the /set parser panicked on {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let server = Server::start();
    for body in bodies {
        let r = server
            .client
            .post(server.url("/set"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let r = r.unwrap_or_else(|e| {
            panic!(
                "POST /set {:?}: no answer ({e})",
                String::from_utf8_lossy(body)
            )
        });
        let status = r.status().as_u16();
        assert!(status == 200 || status == 422, "{status}");
    }
    assert_alive(&server, None).await;
}
