//! Moving a tenant: `GET /namespaces/{ns}/export` (NDJSON streamed out)
//! and `POST /namespaces/{ns}/import` (NDJSON streamed in), and the CLI's
//! `pykv export` / `pykv import` between two real servers. A conformance
//! test file: it runs against every backend (`PYKV_TEST_BACKEND`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Resp, Server, create_token};
use serde_json::{Value, json};

/// An export's lines, parsed, after checking the answer's status and type.
async fn export(server: &Server, ns: &str) -> Vec<Value> {
    let text = export_text(server, ns, None).await;
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

async fn export_text(server: &Server, ns: &str, token: Option<&str>) -> String {
    let mut request = server
        .client
        .get(server.url(&format!("/namespaces/{ns}/export")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("export answered");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-ndjson",
        "an export is NDJSON"
    );
    response.text().await.expect("the export is read whole")
}

async fn import(server: &Server, ns: &str, body: impl Into<reqwest::Body>) -> Resp {
    import_as(server, ns, body, None).await
}

async fn import_as(
    server: &Server,
    ns: &str,
    body: impl Into<reqwest::Body>,
    token: Option<&str>,
) -> Resp {
    let mut request = (server.client)
        .post(server.url(&format!("/namespaces/{ns}/import")))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    server.send(request).await
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An NDJSON line as an export writes it (fields in its order).
fn line(key: &str, value: Value, expires_at: Option<f64>) -> String {
    format!(
        "{{\"key\":{},\"value\":{value},\"expires_at\":{}}}\n",
        json!(key),
        json!(expires_at)
    )
}

async fn live_keys(server: &Server, ns: &str) -> u64 {
    let r = server.get(&format!("/namespaces/{ns}/keys")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["total_keys"].as_u64().unwrap()
}

#[tokio::test]
async fn an_export_imported_elsewhere_keeps_values_and_absolute_deadlines() {
    let source = Server::start();
    let values = [
        ("plain", json!("alice")),
        ("object", json!({"a": [1, 2.5, null], "b": "x\ny"})),
        ("number", json!(-12)),
        ("unicode/ключ ?#", json!("é")),
    ];
    for (key, value) in &values {
        source.set(Some("app"), key, value.clone()).await;
    }
    let before = now_secs();
    let r = (source.post_json(
        "/set?ns=app",
        &json!({"key": "session", "value": 1, "ttl": 300}),
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    source.set(Some("other"), "elsewhere", json!(0)).await;

    let lines = export(&source, "app").await;
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["number", "object", "plain", "session", "unicode/ключ ?#"],
        "every key once, in key order, none of another namespace"
    );
    for (key, value) in &values {
        let exported = lines.iter().find(|l| l["key"] == *key).unwrap();
        assert_eq!(exported["value"], *value, "{key}");
        assert_eq!(exported["expires_at"], Value::Null, "{key} never expires");
    }
    let deadline = lines[3]["expires_at"]
        .as_f64()
        .expect("an absolute deadline");
    assert!(
        (before + 299.0..=now_secs() + 300.0).contains(&deadline),
        "the deadline is absolute: {deadline}, set at {before} with a TTL of 300 s"
    );

    // Into another server, under another name: the same keys, values and
    // deadlines, to the millisecond.
    let target = Server::start();
    let text = export_text(&source, "app", None).await;
    let r = import(&target, "moved", text.clone()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text, r#"{"namespace":"moved","imported":5}"#);
    assert_eq!(export_text(&target, "moved", None).await, text);
    let left = target.get("/ttl/session?ns=moved").await.body["ttl"]
        .as_u64()
        .unwrap();
    assert!((295..=300).contains(&left), "{left}");
    assert_eq!(
        target.value(Some("moved"), "object").await,
        Some(values[1].1.clone())
    );

    // A line whose deadline has passed is skipped and not counted; a
    // blank line is skipped; unknown fields are ignored.
    let body = [
        line("gone", json!(1), Some(now_secs() - 10.0)),
        "\n".into(),
        r#"{"key":"kept","value":2,"expires_at":null,"namespace":"ignored"}"#.into(),
    ]
    .concat();
    let r = import(&target, "moved", body).await;
    assert_eq!(r.body["imported"], 1, "{r:?}");
    assert_eq!(target.value(Some("moved"), "gone").await, None);
    assert_eq!(target.value(Some("moved"), "kept").await, Some(json!(2)));
    // An empty body imports nothing.
    assert_eq!(
        import(&target, "empty", "").await.text,
        r#"{"namespace":"empty","imported":0}"#
    );
    assert!(export(&target, "empty").await.is_empty());
}

#[tokio::test]
async fn keys_live_for_the_whole_export_appear_exactly_once_under_concurrent_writes() {
    const STABLE: usize = 4000;
    let server = Arc::new(Server::start());
    let body: String = (0..STABLE)
        .map(|i| line(&format!("k{i:05}"), json!(i), None))
        .collect();
    assert_eq!(import(&server, "busy", body).await.body["imported"], STABLE);

    // Writers add and delete keys among the stable ones (and rewrite
    // stable ones) for as long as the export runs.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (server, stop) = (server.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let churn = format!("k{:05}-churn-{w}-{n}", (n * 37 + w * 997) % STABLE);
                server.set(Some("busy"), &churn, json!(n)).await;
                server
                    .set(
                        Some("busy"),
                        &format!("k{:05}", (n * 53) % STABLE),
                        json!(-1),
                    )
                    .await;
                let r = server.delete(&format!("/delete/{churn}?ns=busy")).await;
                assert_eq!(r.status, 200, "{r:?}");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut exports = 0;
    let mut writes = 0;
    // Several exports while the writers run.
    while exports < 3 {
        let lines = export(&server, "busy").await;
        let keys: Vec<String> = lines
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_owned())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        let stable: Vec<&String> = keys.iter().filter(|k| k.len() == 6).collect();
        assert_eq!(stable.len(), STABLE, "every stable key exactly once");
        exports += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writes += writer.await.unwrap();
    }
    assert!(writes > 0, "the writers ran during the exports");
}

/// Peak resident memory of a process, in bytes (Linux's `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn an_import_far_past_the_body_limit_streams_in_bounded_memory() {
    const LINES: usize = 100_000;
    const KEYS: usize = 500;
    let server = Server::start_with(&["--max-body-bytes", "65536"]);
    server.pin_to_one_node(); // the memory measured is the answering node's
    // 100,000 lines of about 640 bytes over 500 keys: 64 MB of body, a
    // thousand times --max-body-bytes, for a few hundred KB of data.
    let filler = "x".repeat(600);
    let mut body = String::with_capacity(LINES * 660);
    for i in 0..LINES {
        body.push_str(&line(
            &format!("key{:04}", i % KEYS),
            json!(format!("{i}:{filler}")),
            None,
        ));
    }
    let body_bytes = body.len() as u64;
    let before = peak_rss(server.pid());
    let r = import(&server, "big", body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["imported"], LINES);
    let grown = peak_rss(server.pid()).saturating_sub(before);
    // Measured: 17 to 30 MB on the embedded engine, whatever the body's
    // size (allocator caches of the workers and the log's writer), 7 MB on
    // the test-only backend; a body read whole would take its 64 MB.
    assert!(
        grown < body_bytes / 2,
        "the server's peak memory grew by {grown} bytes for a body of {body_bytes}"
    );
    assert_eq!(live_keys(&server, "big").await, KEYS as u64);
    // The last line of each key won.
    let last = LINES - KEYS;
    assert_eq!(
        server.value(Some("big"), "key0000").await,
        Some(json!(format!("{last}:{filler}")))
    );
}

#[tokio::test]
async fn a_bad_line_is_refused_with_its_number_and_nothing_after_it_is_applied() {
    let server = Server::start_with(&["--max-key-bytes", "32", "--max-body-bytes", "4096"]);
    // The bad line comes after two full chunks of 1,000 lines.
    let good: String = (1..=2500)
        .map(|i| line(&format!("a{i:05}"), json!(i), None))
        .collect();
    let after: String = (1..=10)
        .map(|i| line(&format!("z{i}"), json!(i), None))
        .collect();
    let cases: [(&str, u16, &str); 8] = [
        ("{not json", 400, "not valid JSON"),
        (r#"[1, 2]"#, 422, "JSON object"),
        (r#"{"key": "k"}"#, 422, "`value`"),
        (r#"{"value": 1}"#, 422, "`key`"),
        (r#"{"key": "", "value": 1}"#, 422, "`key`"),
        (
            r#"{"key": "k", "value": 1, "expires_at": -5}"#,
            422,
            "`expires_at`",
        ),
        (
            r#"{"key": "k", "value": 1, "expires_at": "soon"}"#,
            422,
            "expires_at",
        ),
        (
            r#"{"key": "a key much longer than thirty-two bytes", "value": 1}"#,
            422,
            "`key`",
        ),
    ];
    for (n, (bad, status, names)) in cases.iter().enumerate() {
        let ns = format!("bad{n}");
        let r = import(&server, &ns, format!("{good}{bad}\n{after}")).await;
        assert_eq!(r.status, *status, "{bad}: {r:?}");
        let detail = r.detail();
        assert!(detail.starts_with("line 2501: "), "{bad}: {detail}");
        assert!(detail.contains(names), "{bad}: {detail}");
        assert!(detail.contains("2500 keys imported"), "{detail}");
        assert_eq!(live_keys(&server, &ns).await, 2500, "{bad}");
        assert_eq!(server.value(Some(&ns), "z1").await, None, "{bad}");
    }
    // A line over --max-body-bytes: 413, with its number.
    let long = line("long", json!("y".repeat(5000)), None);
    let r = import(
        &server,
        "long",
        format!("{}{long}{after}", line("first", json!(1), None)),
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.detail().starts_with("line 2: "), "{r:?}");
    assert_eq!(live_keys(&server, "long").await, 1);
    // A bad namespace name is refused before the body.
    let r = import(&server, "no%20spaces", line("k", json!(1), None)).await;
    assert_eq!(r.status, 422, "{r:?}");
}

#[tokio::test]
async fn quotas_apply_to_an_import() {
    if !common::backend_supports("quotas") {
        return;
    }
    let server = Server::start_with(&["--eviction", "noeviction"]);
    let put = (server.client.put(server.url("/quota?ns=q"))).json(&json!({"max_keys": 5}));
    assert_eq!(server.send(put).await.status, 200);
    let body: String = (1..=8)
        .map(|i| line(&format!("k{i}"), json!(i), None))
        .collect();
    let r = import(&server, "q", body).await;
    assert_eq!(r.status, 507, "{r:?}");
    assert!(r.detail().starts_with("line 6: "), "{r:?}");
    assert!(r.detail().contains("5 keys imported"), "{r:?}");
    assert_eq!(live_keys(&server, "q").await, 5);
    assert_eq!(server.value(Some("q"), "k6").await, None);
}

#[tokio::test]
async fn an_export_needs_read_access_and_an_import_write_access() {
    let dir = tempfile::tempdir().unwrap();
    let read = create_token(dir.path(), &["--ns", "t", "--access", "read"]);
    let write = create_token(dir.path(), &["--ns", "t", "--access", "write"]);
    let other = create_token(dir.path(), &["--ns", "u", "--access", "write"]);
    let server = Server::start_in(dir.path(), &[]);
    let body = line("k", json!("v"), None);

    assert_eq!(
        import_as(&server, "t", body.clone(), None).await.status,
        401
    );
    assert_eq!(
        import_as(&server, "t", body.clone(), Some(&read))
            .await
            .status,
        403
    );
    assert_eq!(
        import_as(&server, "t", body.clone(), Some(&other))
            .await
            .status,
        403
    );
    let r = import_as(&server, "t", body.clone(), Some(&write)).await;
    assert_eq!(r.status, 200, "{r:?}");

    let url = server.url("/namespaces/t/export");
    let status = |token: Option<&str>| {
        let mut request = server.client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        server.send_raw(request)
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(&other)).await, 403);
    assert_eq!(export_text(&server, "t", Some(&read)).await, body);
    assert_eq!(export_text(&server, "t", Some(&write)).await, body);
}

/// `pykv ARGS`, `stdin` fed from `input`: its stdout, stderr and status.
fn pykv(args: &[&str], input: &[u8]) -> (Vec<u8>, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pykv");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// A tenant moved with the CLI from an embedded server to a server on
/// another backend: the backend under test, or the test-only one when the
/// embedded one is under test.
#[tokio::test]
async fn the_cli_moves_a_tenant_between_two_servers_and_backends() {
    let source = Server::start_with(&["--backend", "embedded"]);
    let target = match common::test_backend() {
        Some(_) => Server::start(),
        None => Server::start_with(&["--backend", "memory"]),
    };
    let mut expected = BTreeMap::new();
    for i in 0..1500 {
        let key = format!("user:{i}");
        let value = json!({"n": i});
        let ttl = (i % 3 == 0).then_some(600);
        let r = source
            .post_json(
                "/set?ns=tenant",
                &json!({"key": key, "value": value, "ttl": ttl}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        expected.insert(key, value);
    }
    let (file, stderr, ok) = pykv(&["export", "--url", source.base_url(), "tenant"], b"");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("exported 1500 keys"), "{stderr}");
    assert_eq!(file.iter().filter(|b| **b == b'\n').count(), 1500);

    let (out, stderr, ok) = pykv(&["import", "--url", target.base_url(), "tenant"], &file);
    assert!(ok, "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        r#"imported 1500 keys into namespace "tenant""#
    );
    for (key, value) in expected.iter().step_by(97) {
        assert_eq!(
            target.value(Some("tenant"), key).await.as_ref(),
            Some(value)
        );
    }
    assert_eq!(live_keys(&target, "tenant").await, 1500);
    // The deadlines came along: the same export, byte for byte.
    let (again, _, ok) = pykv(&["export", "--url", target.base_url(), "tenant"], b"");
    assert!(ok);
    assert_eq!(again, file);
    let left = target.get("/ttl/user:0?ns=tenant").await.body["ttl"]
        .as_u64()
        .unwrap();
    assert!((590..=600).contains(&left), "{left}");

    // A refused line exits 2 and names it, even with 30 MB still to send
    // after it: the server reads the rest before answering.
    let mut bad = b"{\"key\":1}\n".to_vec();
    let filler = line("more", json!("z".repeat(1000)), None);
    bad.extend(filler.repeat(30_000).into_bytes());
    let (_, stderr, ok) = pykv(&["import", "--url", target.base_url(), "tenant"], &bad);
    assert!(!ok);
    assert!(stderr.contains("line 1:"), "{stderr}");
    assert_eq!(target.value(Some("tenant"), "more").await, None);
}

/// A client that stops sending its body is cut after `--request-timeout`
/// without news (408), naming the line it waited for; what it sent before
/// stays imported. The upload as a whole has no deadline.
#[tokio::test]
async fn an_import_that_stalls_is_cut_after_the_request_timeout() {
    use std::io::Read;
    use std::net::TcpStream;

    let server = Server::start_with(&["--request-timeout", "1"]);
    let address = server.base_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let first = line("sent", json!(1), None);
    let head = format!(
        "POST /namespaces/stall/import HTTP/1.1\r\nHost: {address}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n",
        first.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("line 2: no more of the request body arrived for 1 s"),
        "{answer}"
    );
    assert!(answer.contains("1 keys imported"), "{answer}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(server.value(Some("stall"), "sent").await, Some(json!(1)));
}

/// Pages end by size as well as by count (1 MiB of keys and values): a
/// namespace of large values is exported whole, each key once.
#[tokio::test]
async fn large_values_are_exported_whole_across_pages() {
    let server = Server::start();
    let big = "v".repeat(300_000);
    for i in 0..9 {
        server
            .set(
                Some("large"),
                &format!("big{i}"),
                json!(format!("{i}{big}")),
            )
            .await;
    }
    let lines = export(&server, "large").await;
    assert_eq!(lines.len(), 9);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["key"], format!("big{i}"));
        assert_eq!(line["value"], format!("{i}{big}"));
    }
}

/// An import is acknowledged only once it is durable: every key of an
/// answered import survives `kill -9` (a backend that keeps data).
#[tokio::test]
async fn an_acknowledged_import_survives_kill_9() {
    if !common::backend_supports("persistence") {
        return;
    }
    let mut server = Server::start();
    let body: String = (0..2500)
        .map(|i| {
            line(
                &format!("k{i:04}"),
                json!(i),
                (i % 2 == 0).then_some(now_secs() + 600.0),
            )
        })
        .collect();
    assert_eq!(
        import(&server, "durable", body).await.body["imported"],
        2500
    );
    let before = export_text(&server, "durable", None).await;
    server.restart();
    assert_eq!(export_text(&server, "durable", None).await, before);
}
