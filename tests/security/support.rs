//! Helpers shared by the security tests: tokens made with the real
//! `pykv token create`, requests that keep any answer, and raw connections.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Server, create_token};

pub const BIN: &str = env!("CARGO_BIN_EXE_pykv");

/// The tokens of one test server: an admin, two tenants with write access
/// (`alpha`, `beta`), and a read-only token on `alpha`.
pub struct Tokens {
    pub admin: String,
    pub alpha: String,
    pub beta: String,
    pub alpha_read: String,
}

pub fn make_tokens(dir: &Path) -> Tokens {
    Tokens {
        admin: create_token(dir, &["--admin"]),
        alpha: create_token(dir, &["--ns", "alpha", "--access", "write"]),
        beta: create_token(dir, &["--ns", "beta", "--access", "write"]),
        alpha_read: create_token(dir, &["--ns", "alpha", "--access", "read"]),
    }
}

/// A server whose data dir holds tokens before it starts.
pub fn closed_server(args: &[&str]) -> (Server, Tokens, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = make_tokens(dir.path());
    let server = Server::start_in(dir.path(), args);
    (server, tokens, dir)
}

/// One answer, whatever its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// A refusal: the status, a JSON `detail`, and for 401 the bearer
    /// challenge.
    pub fn assert_refused(&self, status: u16, what: &str) {
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

pub async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    call_with(server, method, path, token, body, &[]).await
}

pub async fn call_with(
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

pub fn set_body(key: &str, namespace: Option<&str>) -> Value {
    match namespace {
        Some(ns) => json!({"key": key, "value": "v", "namespace": ns}),
        None => json!({"key": key, "value": "v"}),
    }
}

/// `127.0.0.1:PORT` of a server.
pub fn addr(server: &Server) -> SocketAddr {
    server
        .base_url()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether the server answers `GET /health` normally.
pub async fn assert_alive(server: &Server, token: Option<&str>) {
    let r = call(server, Method::GET, "/health", token, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["status"], "healthy");
}

/// Writes `request` on a new connection and reads until the server closes
/// it or `wait` passes: what was read, and whether the connection closed.
pub fn raw_exchange(to: SocketAddr, request: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(to).unwrap();
    // The server may refuse in the middle of a large request: a failed
    // write is one way of closing.
    let _ = stream.write_all(request);
    read_until_closed(&mut stream, wait)
}

pub fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
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
pub fn raw_status(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `POST /set` with `token` every 100 ms for up to 3 s until `done`
/// says yes to the status of every node (one answer in a row per node:
/// requests alternate between them); returns the last status.
pub async fn poll_status(
    server: &Server,
    token: &str,
    body: &Value,
    done: impl Fn(u16) -> bool,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut in_a_row = 0;
    loop {
        let status = call(server, Method::POST, "/set", Some(token), Some(body))
            .await
            .status;
        in_a_row = if done(status) { in_a_row + 1 } else { 0 };
        if in_a_row == server.nodes() || Instant::now() >= deadline {
            return status;
        }
        if in_a_row == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
