//! The namespace demo, in Python (`examples/namespace_demo.py`) and in Rust
//! (`pykv::client::demo`, which `examples/namespace_demo.rs` runs), against
//! a real server: it passes, says what it did, cleans up after itself, and
//! refuses to touch namespaces that already hold keys.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Server;
use pykv::client::{Client, demo};
use serde_json::json;

/// Lines every run of the demo prints, in either language.
const EXPECTED_LINES: &[&str] = &[
    "=== 1. Basic usage ===",
    "=== 2. Multi-tenant SaaS ===",
    "=== 3. Environment separation ===",
    "=== 4. Microservices architecture ===",
    "=== 5. Session storage with TTL ===",
    "=== 6. Clearing the demo's namespaces ===",
    "  GET tenant_acme/config:theme -> \"dark\"",
    "  GET tenant_globex/config:theme -> \"light\"",
    "  GET prod/db:host -> \"prod-db.example.com\"",
    "  webapp/session:alice has role admin",
    "  GET webapp/session:temp -> 404 Key not found",
    "  namespaces left: []",
    "All checks passed.",
];

fn assert_narrates(stdout: &str) {
    for line in EXPECTED_LINES {
        assert!(
            stdout.lines().any(|l| l == *line),
            "no line {line:?} in:\n{stdout}"
        );
    }
}

/// Whether `python3` can import `requests`; if not, says why the Python
/// tests are skipped (CI installs it).
fn python_with_requests() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: python3 with `requests` is not available (pip install requests)");
    }
    ok
}

fn python_demo(url: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/namespace_demo.py");
    Command::new("python3")
        .arg(script)
        .env("PYKV_URL", url)
        .output()
        .expect("run python3")
}

fn rust_demo(url: &str) -> anyhow::Result<String> {
    let mut out = Vec::new();
    demo::run(url, &mut out)?;
    Ok(String::from_utf8(out).expect("UTF-8 narration"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn python_demo_passes_and_cleans_up() {
    if !python_with_requests() {
        return;
    }
    let server = Server::start();
    let output = python_demo(server.base_url());
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\nstderr:\n{}",
        text(&output.stderr)
    );
    assert_narrates(&stdout);
    let kv = Client::new(server.base_url()).unwrap();
    assert!(kv.namespaces().unwrap().namespaces.is_empty());
    // It can run again on the same server.
    let again = python_demo(server.base_url());
    assert!(again.status.success(), "{}", text(&again.stderr));
}

#[test]
fn python_demo_leaves_busy_namespaces_alone() {
    if !python_with_requests() {
        return;
    }
    let server = Server::start();
    let kv = Client::new(server.base_url()).unwrap();
    kv.set(Some("prod"), "db:host", &json!("the real one"), None)
        .unwrap();
    let output = python_demo(server.base_url());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("prod"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        kv.value(Some("prod"), "db:host").unwrap(),
        Some(json!("the real one"))
    );
    assert_eq!(kv.namespaces().unwrap().namespaces, ["prod"]);
}

#[test]
fn rust_demo_passes_and_cleans_up() {
    let server = Server::start();
    let stdout = rust_demo(server.base_url()).unwrap();
    assert_narrates(&stdout);
    let kv = Client::new(server.base_url()).unwrap();
    assert!(kv.namespaces().unwrap().namespaces.is_empty());
    assert_narrates(&rust_demo(server.base_url()).unwrap());
}

#[test]
fn rust_demo_leaves_busy_namespaces_alone() {
    let server = Server::start();
    let kv = Client::new(server.base_url()).unwrap();
    kv.set(Some("auth"), "session:user1", &json!("keep me"), None)
        .unwrap();
    let error = rust_demo(server.base_url()).unwrap_err().to_string();
    assert!(error.contains("auth"), "{error}");
    assert_eq!(
        kv.value(Some("auth"), "session:user1").unwrap(),
        Some(json!("keep me"))
    );
}

/// Both demos are the same demo: on fresh servers they print the same
/// lines, but for the first, which names the server's URL.
#[test]
fn python_and_rust_demos_say_the_same() {
    if !python_with_requests() {
        return;
    }
    let (python_server, rust_server) = (Server::start(), Server::start());
    let python = python_demo(python_server.base_url());
    assert!(python.status.success(), "{}", text(&python.stderr));
    let python = text(&python.stdout);
    let rust = rust_demo(rust_server.base_url()).unwrap();
    let tail = |s: &str| s.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(tail(&python), tail(&rust));
}

#[test]
fn rust_demo_without_a_server_fails() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = rust_demo(&url).unwrap_err();
    assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
}
