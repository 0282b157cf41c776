//! Test harness: runs the real `pykv` binary on an ephemeral port and talks
//! HTTP to it.
//!
//! ```ignore
//! let server = Server::start();               // fresh temporary data dir
//! server.set(Some("app1"), "user:1", json!("alice")).await;
//! let r = server.get(&format!("/get/{}?ns=app1", enc("user:1"))).await;
//! assert_eq!(r.status, 200);
//! ```
//!
//! Durability tests can `kill()` (SIGKILL) or `terminate()` (SIGTERM) the
//! process, check its exit status, and `restart()` it in the same data dir;
//! or use `Server::start_in(dir, args)` with a directory they own.
//!
//! Starting, killing and waiting are blocking calls (they are short); HTTP
//! helpers are async (reqwest), for `#[tokio::test]`.
//!
//! Over a Redis backend with `PYKV_TEST_NODES=2`, each `Server` is two PyKV
//! nodes over the same store (the same Redis key prefix and token file),
//! and consecutive requests alternate between them: the conformance suite
//! then shows that a stateless node answers as if it were the only one
//! (see `nodes_under_test`).

#![allow(dead_code)]

#[allow(dead_code)]
pub mod sse;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod redis_server;

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `wait_exit` waits for the process to end.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const LISTENING_PREFIX: &str = "PyKV listening on ";

/// A running `pykv serve`. Dropping it kills the process (SIGKILL).
pub struct Server {
    child: Mutex<Child>,
    base: String,
    data_dir: PathBuf,
    /// Owned temporary data dir (removed on drop), `None` with `start_in`.
    _temp: Option<TempDir>,
    args: Vec<String>,
    stderr: Mutex<Option<JoinHandle<String>>>,
    status: Option<ExitStatus>,
    /// The second node, when each test server is two (`nodes_under_test`).
    peer: Option<Peer>,
    /// Counts requests, to alternate them between the nodes.
    turn: AtomicUsize,
    /// Set by `pin_to_one_node`: every request goes to the first node.
    pinned: AtomicBool,
    pub client: reqwest::Client,
}

/// A second PyKV node over the same store as a `Server`'s first: its own
/// data directory and port, the same flags, the first node's Redis key
/// prefix and token file.
struct Peer {
    child: Child,
    base: String,
    _data_dir: TempDir,
    _stderr: JoinHandle<String>,
}

impl Peer {
    fn start(store_dir: &Path, args: &[String]) -> Peer {
        let data_dir = tempfile::Builder::new()
            .prefix("pykv-test-peer-")
            .tempdir()
            .expect("create the second node's data dir");
        let (child, base, stderr) = spawn(data_dir.path(), store_dir, args, &[]);
        Peer {
            child,
            base,
            _data_dir: data_dir,
            _stderr: stderr,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer: status and body parsed as JSON (every PyKV answer is
/// JSON; a body that is not fails the test).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub content_type: Option<String>,
}

impl Resp {
    /// `body["detail"]` as a string; fails the test if it is missing or not a
    /// string.
    pub fn detail(&self) -> &str {
        self.body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no string `detail` in {self:?}"))
    }
}

impl Server {
    /// Starts a server with default flags in a fresh temporary data dir.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra flags (e.g. `["--max-key-bytes", "16"]`) in
    /// a fresh temporary data dir.
    pub fn start_with(args: &[&str]) -> Server {
        let temp = tempfile::Builder::new()
            .prefix("pykv-test-")
            .tempdir()
            .expect("create temp data dir");
        let mut server = Server::start_in(temp.path(), args);
        server._temp = Some(temp);
        server
    }

    /// Starts a server in `data_dir`, which the caller owns (and may reuse
    /// for another server after this one has exited).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_in_env(data_dir, args, &[])
    }

    /// As `start_in`, with extra environment variables (test-only hooks
    /// such as `PYKV_FAULT_WAL_WRITER`); `restart` does not keep them.
    pub fn start_in_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, base, stderr) = spawn(data_dir, data_dir, &args, env);
        let peer = (nodes_under_test() == 2 && !names_a_backend(&args))
            .then(|| Peer::start(data_dir, &args));
        // reqwest's rustls takes the process's provider: ring, as the server.
        pykv::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build HTTP client");
        Server {
            child: Mutex::new(child),
            base,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            args,
            stderr: Mutex::new(Some(stderr)),
            status: None,
            peer,
            turn: AtomicUsize::new(0),
            pinned: AtomicBool::new(false),
            client,
        }
    }

    /// `http://127.0.0.1:PORT` of the first node, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Full URL of `path`, which must start with `/` and be already encoded,
    /// on the node whose turn it is.
    pub fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'), "path must start with '/': {path}");
        format!("{}{}", self.next_base(), path)
    }

    /// The first node's base URL and the second's, in turns; the first's
    /// only when there is one node or the test pinned it.
    fn next_base(&self) -> &str {
        match &self.peer {
            Some(peer) if !self.pinned.load(Ordering::Relaxed) => {
                if self.turn.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                    &self.base
                } else {
                    &peer.base
                }
            }
            _ => &self.base,
        }
    }

    /// How many PyKV nodes answer this server's requests (1 or 2).
    pub fn nodes(&self) -> usize {
        1 + self.peer.is_some() as usize
    }

    /// Sends every later request to the first node. For the tests of what a
    /// node keeps to itself by design (README, "Running on Redis Cluster"):
    /// its request metrics and recent errors, its rate limits, its own
    /// process (memory, signals, restart); with one node it changes nothing.
    pub fn pin_to_one_node(&self) {
        self.pinned.store(true, Ordering::Relaxed);
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }

    /// SIGKILL, then reaps the process; returns its exit status.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let _ = self.child_mut().kill();
        self.wait_exit()
    }

    /// Sends SIGTERM (a graceful shutdown); use `wait_exit` to reap it.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run `kill -TERM`")
            .success();
        assert!(ok, "`kill -TERM {}` failed", self.pid());
    }

    /// Waits (up to 20 s) for the process to exit and returns its status;
    /// fails the test with the server's stderr if it does not exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            let child = self.child_mut();
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.status = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let pid = child.id();
                let stderr = self.take_stderr();
                panic!("pykv (pid {pid}) did not exit within {EXIT_TIMEOUT:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && self.child_mut().try_wait().expect("try_wait").is_none()
    }

    /// Everything the server wrote to stderr; the process must have exited
    /// (call `kill` or `wait_exit` first). Empty on a second call.
    pub fn take_stderr(&mut self) -> String {
        assert!(
            self.child_mut().try_wait().expect("try_wait").is_some(),
            "take_stderr: the server is still running"
        );
        self.stderr
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Starts a new process with the same flags in the same data dir,
    /// SIGKILLing the old one first if it is still running. The URL changes.
    pub fn restart(&mut self) {
        self.kill();
        let (child, base, stderr) = spawn(&self.data_dir, &self.data_dir, &self.args, &[]);
        self.child = Mutex::new(child);
        self.base = base;
        self.stderr = Mutex::new(Some(stderr));
        self.status = None;
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// For failure messages: whether the process is still running and, if
    /// it has died, its exit status and stderr.
    fn post_mortem(&self) -> String {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match child.try_wait() {
            Ok(None) => format!("pykv (pid {}) is still running", child.id()),
            Ok(Some(status)) => {
                let stderr = self
                    .stderr
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                let stderr = stderr.map(|h| h.join().unwrap_or_default());
                format!(
                    "pykv exited with {status}; stderr:\n{}",
                    stderr.unwrap_or_default()
                )
            }
            Err(e) => format!("pykv: try_wait failed: {e}"),
        }
    }

    // ---- HTTP helpers -------------------------------------------------

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => panic!("HTTP request failed: {e:?}\n{}", self.post_mortem()),
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("read HTTP body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer ({status}) is not JSON ({e}): {text:?}"));
        Resp {
            status,
            body,
            text,
            content_type,
        }
    }

    /// Sends a request whatever its answer's body; returns the status.
    pub async fn send_raw(&self, request: reqwest::RequestBuilder) -> u16 {
        match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(e) => panic!("HTTP request failed: {e:?}\n{}", self.post_mortem()),
        }
    }

    /// `GET path`'s body as text, whatever its status and type.
    pub async fn text(&self, path: &str) -> String {
        let request = self.client.get(self.url(path));
        match request.send().await {
            Ok(response) => response.text().await.expect("read HTTP body"),
            Err(e) => panic!("HTTP request failed: {e:?}\n{}", self.post_mortem()),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.client.delete(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    /// POST with a raw body, sent as `Content-Type: application/json`.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// `POST /set` of `{"key","value"}` (namespace via `?ns=`); asserts 200.
    pub async fn set(&self, ns: Option<&str>, key: &str, value: Value) -> Resp {
        let body = serde_json::json!({ "key": key, "value": value });
        let r = self
            .post_json(&format!("/set{}", ns_query(ns)), &body)
            .await;
        assert_eq!(r.status, 200, "set {ns:?}/{key:?}: {r:?}");
        r
    }

    /// `GET /get/{key}?ns=`: `Some(value)` on 200, `None` on 404; anything
    /// else fails the test.
    pub async fn value(&self, ns: Option<&str>, key: &str) -> Option<Value> {
        let r = self
            .get(&format!("/get/{}{}", enc(key), ns_query(ns)))
            .await;
        match r.status {
            200 => Some(r.body["value"].clone()),
            404 => {
                assert_eq!(r.body, serde_json::json!({"detail": "Key not found"}));
                None
            }
            _ => panic!("get {ns:?}/{key:?}: {r:?}"),
        }
    }

    /// `GET /stats` (200 asserted), the JSON body.
    pub async fn stats(&self) -> Value {
        let r = self.get("/stats").await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    /// `stats.total_keys`.
    pub async fn total_keys(&self) -> u64 {
        self.stats().await["total_keys"]
            .as_u64()
            .expect("total_keys is an integer")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.status.is_none() {
            let child = self.child_mut();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `?ns=NS` (encoded), or nothing for the default namespace.
pub fn ns_query(ns: Option<&str>) -> String {
    ns.map(|ns| format!("?ns={}", enc(ns))).unwrap_or_default()
}

/// Percent-encodes every byte outside the unreserved set `A-Za-z0-9-._~`.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The backend the API conformance tests run against: `PYKV_TEST_BACKEND`
/// (as `--backend` takes it), or the server's default when unset.
pub fn test_backend() -> Option<String> {
    std::env::var("PYKV_TEST_BACKEND")
        .ok()
        .filter(|name| !name.is_empty())
}

/// How many PyKV nodes each test server is: 2 with `PYKV_TEST_NODES=2`
/// over a Redis backend, whose nodes keep no state of their own; else 1.
pub fn nodes_under_test() -> usize {
    let over_redis = test_backend().is_some_and(|name| name.starts_with("redis"));
    let asked = std::env::var("PYKV_TEST_NODES").ok();
    match asked.as_deref() {
        None | Some("" | "1") => 1,
        Some("2") if over_redis => 2,
        Some(other) => panic!("PYKV_TEST_NODES={other:?}: 1, or 2 over a Redis backend"),
    }
}

/// Whether a test's own flags choose the backend (it then runs as given).
fn names_a_backend(args: &[impl AsRef<std::ffi::OsStr>]) -> bool {
    args.iter().any(|arg| arg.as_ref() == "--backend")
}

/// `--backend` for the backend under test, unless the test names one.
///
/// Over Redis the servers keep their tokens in Redis unless given
/// `--tokens-file`; the conformance tests edit and read the token file of
/// the data directory (`pykv token --data-dir`, tokens.json), so they are
/// given that file. Tokens kept in Redis are tested in
/// tests/redis_backend.rs.
/// `store_dir` is the data directory of the server's first node, which
/// names its Redis key prefix and holds its token file.
fn backend_args(store_dir: &Path, args: &[impl AsRef<std::ffi::OsStr>]) -> Vec<String> {
    match test_backend() {
        Some(name) if !names_a_backend(args) => {
            let mut flags = vec!["--backend".into(), name.clone()];
            if name.starts_with("redis") {
                flags.extend(["--redis-prefix".into(), redis_prefix(store_dir)]);
                if !args.iter().any(|arg| arg.as_ref() == "--tokens-file") {
                    let file = store_dir.join("tokens.json");
                    flags.extend(["--tokens-file".into(), file.display().to_string()]);
                }
            }
            flags
        }
        _ => Vec::new(),
    }
}

/// A Redis key prefix of the server's own, so that tests running side by
/// side on one Redis never see each other's data: from the test process
/// and the server's data directory, which is the same across `restart`
/// (so a restarted server finds its data again) and never shared by two
/// servers running at once.
fn redis_prefix(data_dir: &Path) -> String {
    let dir = data_dir.file_name().unwrap_or_default().to_string_lossy();
    let dir: String = (dir.chars())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("t{}-{dir}", std::process::id())
}

/// Whether the backend under test has `capability`; when not, says that
/// the calling test is SKIPPED, and the test returns. Capabilities:
/// `persistence` (data outlives a restart, the log's figures), `limits`
/// (limits on the whole store, `--max-memory` and `--max-keys`, and the
/// accounting of the store's own structures), `quotas` (per-namespace
/// quotas from `--quotas` and `PUT /quota`, kept by LRU eviction or 507),
/// `compaction`.
///
/// The embedded backend has them all, the Redis backend quotas only, the
/// memory backend none: a backend that gains one is added here.
#[allow(dead_code)]
pub fn backend_supports(capability: &str) -> bool {
    assert!(
        matches!(
            capability,
            "persistence" | "limits" | "quotas" | "compaction"
        ),
        "unknown capability {capability:?}"
    );
    let backend = test_backend().unwrap_or_else(|| "embedded".into());
    let supported =
        backend == "embedded" || (capability == "quotas" && backend.starts_with("redis"));
    if !supported {
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        eprintln!("SKIPPED {test}: backend {backend} lacks {capability}");
    }
    supported
}

/// `pykv serve` on a free loopback port in `data_dir`, over the store of
/// the node whose data directory is `store_dir` (`backend_args`), quiet
/// logs, its output piped.
fn serve_command(
    data_dir: &Path,
    store_dir: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pykv"));
    command
        .arg("serve")
        .args(["--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .args(backend_args(store_dir, args))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Spawns `pykv serve` and waits for its listening line. Returns the child,
/// the base URL, and the thread collecting stderr.
fn spawn(
    data_dir: &Path,
    store_dir: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> (Child, String, JoinHandle<String>) {
    let mut child = serve_command(data_dir, store_dir, args)
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn the pykv binary");
    let stderr = collect(child.stderr.take().expect("stderr pipe"));

    // Read stdout on a thread so the wait can time out; keep draining it
    // afterwards so the server never blocks on a full pipe.
    let stdout = child.stdout.take().expect("stdout pipe");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(url) = line.trim_end().strip_prefix(LISTENING_PREFIX) {
                let _ = tx.send(Ok(url.to_owned()));
                lines.for_each(drop);
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });

    let failure = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(url)) => {
            let port = (url.strip_prefix("http://127.0.0.1:"))
                .or_else(|| url.strip_prefix("https://127.0.0.1:"));
            assert!(
                port.is_some_and(|port| port.parse::<u16>().is_ok()),
                "unexpected listening URL {url:?}"
            );
            return (child, url, stderr);
        }
        Ok(Err(stdout)) => {
            format!("pykv closed stdout without a listening line; stdout:\n{stdout}")
        }
        Err(_) => format!("no `{LISTENING_PREFIX}...` line on stdout within {START_TIMEOUT:?}"),
    };
    let _ = child.kill();
    let status = child.wait().ok();
    let stderr = stderr.join().unwrap_or_default();
    panic!(
        "starting pykv serve {args:?} in {}: {failure}\nexit status: {status:?}\nstderr:\n{stderr}",
        data_dir.display()
    );
}

/// Reads a pipe to its end on a thread, keeping at most the last 64 KiB.
fn collect(mut pipe: ChildStderr) -> JoinHandle<String> {
    std::thread::spawn(move || {
        const KEEP: usize = 64 * 1024;
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * KEEP {
                kept.drain(..kept.len() - KEEP);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// The seed's fields of per-namespace statistics (`cache_hits`,
/// `cache_misses`, `total_keys`), leaving out the ones this server adds
/// (`used_bytes`, `evictions`); applied to each value of a `namespaces`
/// map when given one.
pub fn seed_fields(stats: &Value) -> Value {
    const SEED: [&str; 3] = ["cache_hits", "cache_misses", "total_keys"];
    let Some(object) = stats.as_object() else {
        return stats.clone();
    };
    if object.contains_key("total_keys") {
        return SEED
            .iter()
            .filter_map(|f| object.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    object
        .iter()
        .map(|(name, ns)| (name.clone(), seed_fields(ns)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A key as the durability tests track it: (namespace, key).
pub type Key = (Option<String>, String);

/// Checks that `server` holds exactly `expected` (keys in `absent` must be
/// missing), with matching /namespaces, per-namespace counts and
/// total_keys.
pub async fn check_exact_state(
    server: &Server,
    expected: &BTreeMap<Key, Value>,
    absent: &[Key],
    context: &str,
) {
    for ((ns, key), value) in expected {
        assert_eq!(
            server.value(ns.as_deref(), key).await.as_ref(),
            Some(value),
            "{context}: {ns:?}/{key}"
        );
    }
    for (ns, key) in absent {
        assert_eq!(
            server.value(ns.as_deref(), key).await,
            None,
            "{context}: {ns:?}/{key} should be absent"
        );
    }
    let mut per_ns: BTreeMap<String, u64> = BTreeMap::new();
    for (ns, _) in expected.keys() {
        if let Some(ns) = ns {
            *per_ns.entry(ns.clone()).or_default() += 1;
        }
    }
    let r = server.get("/namespaces").await;
    assert_eq!(r.status, 200);
    let names: Vec<&String> = per_ns.keys().collect();
    assert_eq!(
        r.body,
        json!({"namespaces": names, "count": names.len()}),
        "{context}: /namespaces"
    );
    for (ns, n) in &per_ns {
        let r = server.get(&format!("/namespaces/{}/keys", enc(ns))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["total_keys"], json!(n), "{context}: keys of {ns}");
    }
    assert_eq!(
        server.total_keys().await,
        expected.len() as u64,
        "{context}: /stats total_keys"
    );
}

/// `pykv token ARGS --data-dir DIR`, run to its end.
pub fn pykv_token(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pykv"))
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run pykv token")
}

/// `pykv token create ARGS --data-dir DIR`: the token it prints, which is
/// shown once on stdout and never on stderr.
pub fn create_token(dir: &Path, args: &[&str]) -> String {
    let out = pykv_token(dir, &[&["create"], args].concat());
    assert!(out.status.success(), "pykv token create {args:?}: {out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("pykv_"), "{token:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token));
    token
}

/// Runs `pykv serve` expecting it to exit by itself (within 20 s); fails if
/// it keeps running. Returns the exit code (`None`: killed by a signal) and
/// stderr.
pub fn run_to_exit(data_dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = (serve_command(data_dir, data_dir, args).spawn()).expect("spawn pykv");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "pykv {args:?} in {} kept running instead of refusing to start; stdout:\n{}\nstderr:\n{}",
                data_dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What the server said about one key: the state after the last
/// acknowledged operation (`None`: absent), and the state an operation
/// whose answer never came would leave (it may or may not have happened).
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    pub acked: Option<Value>,
    pub inflight: Option<Option<Value>>,
}

/// What concurrent writers were told, key by key.
pub type Model = std::collections::HashMap<Key, Tracked>;

/// Checks every key of `model` on `server`: its value must be what the last
/// acknowledged operation left, or what an unanswered later one would
/// leave. Settles the unanswered ones to what the server shows. Returns the
/// number of keys present.
pub async fn verify_acknowledged(server: &Server, model: &mut Model, context: &str) -> u64 {
    let mut present = 0;
    let mut wrong = Vec::new();
    for ((ns, key), tracked) in model.iter_mut() {
        let actual = server.value(ns.as_deref(), key).await;
        let ok = actual == tracked.acked || tracked.inflight.as_ref() == Some(&actual);
        if !ok {
            wrong.push(format!(
                "{ns:?}/{key}: got {actual:?}, acknowledged {:?} (unanswered: {:?})",
                tracked.acked, tracked.inflight
            ));
        }
        present += actual.is_some() as u64;
        tracked.acked = actual;
        tracked.inflight = None;
    }
    assert!(
        wrong.is_empty(),
        "{context}: {} of {} keys differ from what was acknowledged, e.g.:\n{}",
        wrong.len(),
        model.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    present
}
