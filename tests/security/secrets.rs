//! Secrets stay out of logs and answers: tokens in debug logs (text and
//! JSON), and what `/performance/recent-errors` keeps of a request.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::{Server, create_token};
use crate::support::{BIN, call, closed_server, make_tokens, set_body};

#[tokio::test]
async fn tokens_never_appear_in_logs_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = make_tokens(dir.path());
    let unknown = format!("pykv_{}", "f".repeat(64));
    for format in ["text", "json"] {
        let (mut child, base, stderr) = spawn_logging(dir.path(), format);
        pykv::tls::install_default_provider();
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
    server.pin_to_one_node(); // a node keeps the errors it answered
    let admin = Some(tokens.admin.as_str());
    let alpha = Some(tokens.alpha.as_str());
    let raw = |method: Method, path: &str, token: Option<&str>, body: &str| {
        raw_request(&server, method, path, token, body)
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
    let errors = recent_errors_keeping_no_secret(&server, admin, sent).await;
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

/// The routes added after the first check of recent errors: `/batch`,
/// `/namespaces/{ns}/import`, `/watch` with `Last-Event-ID`, `/incr`,
/// `/expire`, and the `If-Match` / `If-None-Match` headers of `/set` and
/// `/delete`. Bad requests carrying a secret in each place a client can
/// put one leave it neither in `/performance/recent-errors` nor in the
/// server's log at debug level.
#[tokio::test]
async fn newer_routes_keep_nothing_a_client_sent_in_errors_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = make_tokens(dir.path());
    let mut server = Server::start_in_env(dir.path(), &[], &[("RUST_LOG", "debug")]);
    server.pin_to_one_node(); // a node keeps the errors it answered, and its log
    let admin = Some(tokens.admin.as_str());
    let alpha = Some(tokens.alpha.as_str());
    // A stored value a failed increment must not repeat.
    let r = call(
        &server,
        Method::POST,
        "/set?ns=alpha",
        alpha,
        Some(&json!({"key": "text", "value": "SECRET00"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let raw = |method: Method, path: &str, token: Option<&str>, body: &str| {
        raw_request(&server, method, path, token, body)
    };
    let post = |path: &str, token: Option<&str>, body: &str| raw(Method::POST, path, token, body);
    let requests = [
        // Batches: the op's kind, an unknown field, a namespace, a TTL, an
        // increment, a tag, `atomic`, `ops` itself, a namespace refused.
        post("/batch", admin, r#"{"ops":[{"op":"SECRET20","key":"k"}]}"#),
        post(
            "/batch",
            admin,
            r#"{"ops":[{"op":"set","key":"k","value":1,"SECRET21":1}]}"#,
        ),
        post(
            "/batch",
            admin,
            r#"{"ops":[{"op":"get","key":"k"}],"namespace":"SECRET22;bad"}"#,
        ),
        post(
            "/batch",
            admin,
            r#"{"ops":[{"op":"set","key":"k","value":1,"ttl":"SECRET23;x"}]}"#,
        ),
        post(
            "/batch?ns=alpha",
            alpha,
            r#"{"ops":[{"op":"incr","key":"k","by":"SECRET24"}]}"#,
        ),
        post(
            "/batch?ns=alpha",
            alpha,
            r#"{"ops":[{"op":"set","key":"k","value":1,"if_match":"SECRET25"}]}"#,
        ),
        post(
            "/batch?ns=alpha",
            alpha,
            r#"{"ops":[],"atomic":"SECRET26"}"#,
        ),
        post("/batch?ns=alpha", alpha, r#"{"ops":"SECRET27"}"#),
        post(
            "/batch",
            alpha,
            r#"{"ops":[{"op":"get","key":"k"}],"namespace":"SECRET28"}"#,
        ),
        post(
            "/batch?ns=alpha",
            alpha,
            r#"{"ops":[{"op":"incr","key":"text"}],"atomic":true}"#,
        ),
        post(
            "/batch?ns=alpha",
            alpha,
            r#"{"ops":[{"op":"get","key":["SECRET29"]}]}"#,
        ),
        // Imports: a line's key, value and time, a line that is no JSON, a
        // namespace in the path, a namespace refused.
        post(
            "/namespaces/alpha/import",
            alpha,
            "{\"key\":\"SECRET30\",\"value\":1,\"expires_at\":\"SECRET31\"}\n",
        ),
        post("/namespaces/alpha/import", alpha, "SECRET32 is no JSON\n"),
        post(
            "/namespaces/alpha/import",
            alpha,
            "{\"value\":\"SECRET33\"}\n",
        ),
        post(
            "/namespaces/alpha/import",
            alpha,
            "{\"key\":\"k\",\"value\":1,\"expires_at\":null}\n{\"key\":{\"SECRET34\":1},\"value\":1}\n",
        ),
        post("/namespaces/SECRET35%3B/import", admin, ""),
        post("/namespaces/SECRET36/import", alpha, ""),
        // The change feed: a namespace, a namespace refused, a prefix
        // where the namespace is refused.
        raw(Method::GET, "/watch?ns=SECRET37%3Bbad", admin, ""),
        raw(Method::GET, "/watch?ns=SECRET38", alpha, ""),
        raw(Method::GET, "/watch?ns=SECRET39&prefix=SECRET40", alpha, ""),
        // Counters: `by`, `ttl`, the key, a stored value that is no number.
        post("/incr?ns=alpha", alpha, r#"{"key":"k","by":"SECRET41"}"#),
        post(
            "/incr?ns=alpha",
            alpha,
            r#"{"key":"k","by":1,"ttl":"SECRET42;x"}"#,
        ),
        post("/incr?ns=alpha", alpha, r#"{"key":{"SECRET43":1}}"#),
        post("/incr?ns=alpha", alpha, r#"{"key":"text"}"#),
        post(
            "/incr?ns=alpha",
            alpha,
            r#"{"key":"k","by":1e400,"SECRET44":1}"#,
        ),
        // TTL changes: `ttl`, the key, an unknown key, another namespace.
        post(
            "/expire?ns=alpha",
            alpha,
            r#"{"key":"k","ttl":"SECRET45;x"}"#,
        ),
        post("/expire?ns=alpha", alpha, r#"{"key":["SECRET46"],"ttl":1}"#),
        post("/expire?ns=alpha", alpha, r#"{"key":"SECRET47","ttl":1}"#),
        post("/expire?ns=SECRET48", alpha, r#"{"key":"k","ttl":1}"#),
        // Preconditions: both headers at once, a tag that is none of ours
        // (refused with 412), on a set and on a delete.
        post("/set?ns=alpha", alpha, r#"{"key":"text","value":1}"#)
            .header("if-match", "\"SECRET49\"")
            .header("if-none-match", "SECRET50"),
        post("/set?ns=alpha", alpha, r#"{"key":"text","value":1}"#).header("if-match", "SECRET51"),
        raw(Method::DELETE, "/delete/text?ns=alpha", alpha, "")
            .header("if-match", "W/\"SECRET52\""),
    ];
    let sent = requests.len();
    for (i, request) in requests.into_iter().enumerate() {
        let status = server.send_raw(request).await;
        assert!((400..500).contains(&status), "request {i}: {status}");
    }
    // The change feed's `Last-Event-ID`, not ASCII, and ASCII that is no
    // id of the feed.
    let bad_id = reqwest::header::HeaderValue::from_bytes(b"SECRET53\xff").unwrap();
    let request = raw(Method::GET, "/watch?ns=alpha", alpha, "").header("last-event-id", bad_id);
    assert_eq!(server.send_raw(request).await, 422);
    // An id the feed never gave: the feed starts over with a `reset` event
    // (200), or a backend refuses it; either way nothing of it is kept.
    let request =
        raw(Method::GET, "/watch?ns=alpha", alpha, "").header("last-event-id", "SECRET54");
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    drop(response);
    let errors_sent = sent + 1 + usize::from(status >= 400);

    recent_errors_keeping_no_secret(&server, admin, errors_sent).await;

    server.terminate();
    server.wait_exit();
    let log = server.take_stderr();
    assert!(log.contains("DEBUG"), "no debug line in the log:\n{log}");
    let leaks: Vec<&str> = log.lines().filter(|l| l.contains("SECRET")).collect();
    assert!(leaks.is_empty(), "client input in the log: {leaks:#?}");
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

/// `/performance/recent-errors`, read with `admin`: it must list `count`
/// errors and repeat no `SECRET` a request carried. Returns its body.
async fn recent_errors_keeping_no_secret(
    server: &Server,
    admin: Option<&str>,
    count: usize,
) -> serde_json::Value {
    let path = "/performance/recent-errors";
    let r = call(server, Method::GET, path, admin, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let errors = r.json();
    assert_eq!(errors["count"], json!(count), "{errors}");
    assert!(!r.text.contains("SECRET"), "client input kept: {}", r.text);
    errors
}

/// A request with `body` sent as it is, as JSON, with `token` if any.
fn raw_request(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> reqwest::RequestBuilder {
    let request = server
        .client
        .request(method, server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}
