//! Revocation with a real server and the real `pykv token` commands: a
//! revoked token is refused within a second, and revoking the last token
//! never opens the server. Only `pykv token open`, an operator's explicit
//! act, does, and the server says so loudly in its log.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Resp, Server, create_token, pykv_token};
use reqwest::Method;
use serde_json::{Value, json};

/// SECURITY.md's promise.
const REVOKED_WITHIN: Duration = Duration::from_secs(1);

/// `pykv token create ARGS`: the token and its id.
fn create_listed_token(dir: &Path, args: &[&str]) -> (String, String) {
    let before = ids(dir);
    let token = create_token(dir, args);
    let id = ids(dir)
        .into_iter()
        .find(|id| !before.contains(id))
        .expect("the new token is listed");
    (token, id)
}

fn ids(dir: &Path) -> Vec<String> {
    let out = pykv_token(dir, &["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `pykv token revoke ID`, which must succeed: its stderr.
fn revoke(dir: &Path, id: &str) -> String {
    let out = pykv_token(dir, &["revoke", id]);
    assert!(out.status.success(), "pykv token revoke {id}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

async fn call(server: &Server, method: Method, path: &str, token: Option<&str>) -> Resp {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method == Method::POST {
        request = request.json(&json!({"key": "k", "value": "changed"}));
    }
    server.send(request).await
}

/// Repeats `GET path` with `token` every 25 ms until every node of the
/// server has answered `want` (one answer in a row per node: requests
/// alternate between nodes), for up to 1.5 s; returns the last answer and
/// how long it took.
async fn wait_for(server: &Server, path: &str, token: Option<&str>, want: u16) -> (Resp, Duration) {
    let start = Instant::now();
    let mut in_a_row = 0;
    loop {
        let r = call(server, Method::GET, path, token).await;
        in_a_row = if r.status == want { in_a_row + 1 } else { 0 };
        if in_a_row == server.nodes() || start.elapsed() > Duration::from_millis(1500) {
            return (r, start.elapsed());
        }
        if in_a_row == 0 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Reads, changes, clears and the server-wide routes, each with the
/// revoked token and with none: every one must be 401 with a `detail`
/// that says how to create a token or open the server on purpose.
async fn assert_closed_to_everyone(server: &Server, revoked: &str, context: &str) {
    let requests = [
        (Method::GET, "/get/k?ns=alpha"),
        (Method::POST, "/set?ns=alpha"),
        (Method::DELETE, "/namespaces/alpha"),
        (Method::GET, "/namespaces"),
        (Method::GET, "/stats"),
        (Method::GET, "/metrics"),
        (Method::POST, "/compact"),
    ];
    for (method, path) in requests {
        for token in [Some(revoked), None] {
            let who = if token.is_some() {
                "the revoked token"
            } else {
                "no token"
            };
            let r = call(server, method.clone(), path, token).await;
            assert_eq!(
                r.status, 401,
                "{context}: {method} {path} with {who}: {r:?}"
            );
            let detail = r.detail();
            assert!(
                detail.contains("pykv token create") && detail.contains("pykv token open"),
                "{context}: {method} {path}: the refusal should say what to do: {detail}"
            );
        }
    }
}

#[tokio::test]
async fn revoking_the_last_token_keeps_the_server_closed_until_opened_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (token, id) = create_listed_token(dir.path(), &["--ns", "alpha", "--access", "write"]);
    let mut server = Server::start_in(dir.path(), &[]);
    let r = call(&server, Method::POST, "/set?ns=alpha", Some(&token)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = call(&server, Method::GET, "/get/k?ns=alpha", None).await;
    assert_eq!(r.status, 401, "closed while the token exists: {r:?}");

    // Opening is refused while a token exists, and changes nothing.
    let out = pykv_token(dir.path(), &["open"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Revoke them first"),
        "{out:?}"
    );

    let warning = revoke(dir.path(), &id);
    assert!(
        warning.contains("last token") && warning.contains("pykv token open"),
        "revoking the last token should warn that the server stays closed: {warning}"
    );
    let (r, took) = wait_for(&server, "/get/k?ns=alpha", Some(&token), 401).await;
    assert_eq!(
        r.status, 401,
        "the revoked token still reads after {took:?}: {r:?}"
    );
    assert!(
        took <= REVOKED_WITHIN,
        "the revoked token was refused only after {took:?}"
    );

    // Closed to everyone, and it stays so over several reloads of the file.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_closed_to_everyone(&server, &token, "after the last revocation").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listing = pykv_token(dir.path(), &["list"]);
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("stays closed"),
        "{listing:?}"
    );

    // The explicit act opens it; the data is as the refusals left it.
    let out = pykv_token(dir.path(), &["open"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no longer requires a token"),
        "{out:?}"
    );
    let (r, took) = wait_for(&server, "/get/k?ns=alpha", None, 200).await;
    assert_eq!(
        r.status, 200,
        "not open {took:?} after `pykv token open`: {r:?}"
    );
    assert_eq!(r.body["value"], json!("changed"), "{r:?}");
    assert_eq!(call(&server, Method::GET, "/stats", None).await.status, 200);

    server.terminate();
    server.wait_exit();
    let log = server.take_stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("none exists")),
        "the server should log that it stays closed with no token:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("TOKENS ARE NO LONGER REQUIRED")),
        "the server should log loudly that it was opened:\n{log}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_within_a_second_while_others_remain() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, _) = create_listed_token(dir.path(), &["--admin"]);
    let (tenant, id) = create_listed_token(dir.path(), &["--ns", "alpha", "--access", "read"]);
    let server = Server::start_in(dir.path(), &[]);
    let r = call(&server, Method::GET, "/get/k?ns=alpha", Some(&tenant)).await;
    assert_eq!(r.status, 404, "{r:?}");

    let warning = revoke(dir.path(), &id);
    assert!(!warning.contains("last token"), "{warning}");
    let (r, took) = wait_for(&server, "/get/k?ns=alpha", Some(&tenant), 401).await;
    assert_eq!(
        r.status, 401,
        "the revoked token still reads after {took:?}: {r:?}"
    );
    assert!(
        took <= REVOKED_WITHIN,
        "the revoked token was refused only after {took:?}"
    );
    assert_eq!(
        call(&server, Method::GET, "/metrics", None).await.status,
        401
    );
    // Prometheus text, not JSON: the status alone.
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200, "the admin token is unaffected");
}

/// Replaces `path` with a file holding `text` at once (renamed over it),
/// so that the server never reads it missing or half written: each step
/// of the test below shows one state of the file.
fn replace_file(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Sends a few requests with `token` and with none, over `period`: every
/// answer must be 401 (a closed server that stays closed).
async fn stays_refused(server: &Server, token: &str, period: Duration, context: &str) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        for (method, path) in [
            (Method::GET, "/get/k?ns=alpha"),
            (Method::POST, "/set?ns=alpha"),
            (Method::GET, "/stats"),
        ] {
            let r = call(server, method.clone(), path, None).await;
            assert_eq!(r.status, 401, "{context}: {method} {path}, no token: {r:?}");
        }
        let r = call(server, Method::GET, "/get/k?ns=beta", Some(token)).await;
        assert_eq!(
            r.status, 403,
            "{context}: another tenant's namespace: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A closed server whose token file is edited by hand, broken or removed
/// never opens by itself: a file that no longer holds a token nor says
/// `"auth": "open"` (`{"tokens": []}`), a missing one, one that is not
/// JSON and one that cannot be read all leave it refusing requests (401),
/// and its log says why each time. Before the fix, `{"tokens": []}` opened
/// it to everyone with a warning. Only `pykv token open` opens it.
#[tokio::test]
async fn a_hand_edited_broken_or_missing_token_file_never_opens_a_closed_server() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    let (token, _) = create_listed_token(dir.path(), &["--ns", "alpha", "--access", "write"]);
    let mut server = Server::start_in(dir.path(), &[]);
    let r = call(&server, Method::POST, "/set?ns=alpha", Some(&token)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Each change is left in place over several reloads (every 250 ms).
    let settle = Duration::from_millis(900);

    // Not JSON: the tokens loaded before stay in force, nothing opens.
    replace_file(&tokens, "{ \"tokens\": [");
    stays_refused(&server, &token, settle, "a token file that is not JSON").await;
    let r = call(&server, Method::GET, "/get/k?ns=alpha", Some(&token)).await;
    assert_eq!(r.status, 200, "the tokens loaded before stay: {r:?}");

    // Unreadable, whoever the tests run as (root ignores permissions): a
    // link to a directory in its place.
    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let link = dir.path().join("tokens.link");
    std::os::unix::fs::symlink(&directory, &link).unwrap();
    std::fs::rename(&link, &tokens).unwrap();
    stays_refused(&server, &token, settle, "an unreadable token file").await;

    // Every token removed by hand, with no word on the mode.
    replace_file(&tokens, r#"{"tokens": []}"#);
    let (r, _) = wait_for(&server, "/get/k?ns=alpha", Some(&token), 401).await;
    assert_eq!(r.status, 401, "the removed token still reads: {r:?}");
    let until = Instant::now() + settle;
    while Instant::now() < until {
        assert_closed_to_everyone(&server, &token, "a token file edited to {\"tokens\": []}").await;
    }

    // No file at all.
    std::fs::remove_file(&tokens).unwrap();
    let until = Instant::now() + settle;
    while Instant::now() < until {
        assert_closed_to_everyone(&server, &token, "a deleted token file").await;
    }

    // The explicit act, and only it, opens the server.
    let out = pykv_token(dir.path(), &["open"]);
    assert!(out.status.success(), "{out:?}");
    let (r, took) = wait_for(&server, "/get/k?ns=alpha", None, 200).await;
    assert_eq!(
        r.status, 200,
        "not open {took:?} after `pykv token open`: {r:?}"
    );

    server.terminate();
    server.wait_exit();
    let log = server.take_stderr();
    let warned = |what: &str| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(what) && l.contains("tokens.json"))
    };
    for (why, what) in [
        ("not JSON", "is not valid"),
        ("unreadable", "cannot read the token file"),
        (
            "edited to {\"tokens\": []}",
            "holds no token and does not say",
        ),
        ("deleted", "the token file disappeared"),
        ("opened on purpose", "TOKENS ARE NO LONGER REQUIRED"),
    ] {
        assert!(
            warned(what),
            "the log should say why ({why}: {what:?}):\n{log}"
        );
    }
    assert!(
        log.lines().filter(|l| l.contains("stays closed")).count() >= 2,
        "the log should say the server stays closed:\n{log}"
    );
}
