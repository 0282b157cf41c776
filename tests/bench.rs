//! `pykv bench` against a real server started by the harness: it counts
//! what it sends, honours the mix, reports errors by kind; and the ceiling
//! answers like a GET. No timing is asserted: only counts.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};

use common::Server;
use serde_json::Value;

/// Runs `pykv bench --quiet --json ARGS` and parses its JSON report.
fn bench(args: &[&str]) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .arg("bench")
        .args(["--quiet", "--json", "-c", "4"])
        .args(args)
        .env_remove("PYKV_URL")
        .output()
        .expect("run pykv bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "pykv bench {args:?} printed no JSON ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

fn count(report: &Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no count at {pointer} in {report:#}"))
}

#[tokio::test]
async fn counts_exactly_the_requests_asked() {
    let server = Server::start();
    let url = server.base_url();
    let (output, report) = bench(&[
        "--url",
        url,
        "-n",
        "200",
        "--op",
        "get",
        "--preload",
        "--keyspace",
        "50",
    ]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(count(&report, "/requests"), 200);
    assert_eq!(count(&report, "/answered"), 200);
    assert_eq!(count(&report, "/status/200"), 200);
    assert_eq!(count(&report, "/errors_total"), 0);
    assert_eq!(count(&report, "/non_2xx"), 0);
    assert_eq!(count(&report, "/preloaded"), 50);
    assert!(report["latency_us"]["p99"].as_u64().is_some(), "{report:#}");
    assert!(report["throughput_rps"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(server.total_keys().await, 50);
}

/// Paced: 300 tickets at 1000 a second cannot end before the last is
/// due (0.299 s), and the warm-up's requests reach the server but are not
/// counted in the report.
#[tokio::test]
async fn paces_and_leaves_the_warmup_out_of_the_counts() {
    let server = Server::start();
    let url = server.base_url();
    let (output, report) = bench(&[
        "--url",
        url,
        "-n",
        "300",
        "--rate",
        "1000",
        "--warmup",
        "0.2",
        "--op",
        "set",
        "--keyspace",
        "10",
    ]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(count(&report, "/requests"), 300);
    assert_eq!(count(&report, "/status/200"), 300);
    assert_eq!(report["warmup_s"], 0.2);
    let elapsed = report["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 0.299, "300 requests at 1000/s took {elapsed} s");
    let performance = server.get("/performance").await;
    let sets = performance.body["operation_breakdown"]["/set"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("no /set count in {:#}", performance.body));
    // The warm-up sent about 200 (1000/s for 0.2 s).
    assert!(sets > 300 + 100, "the server saw {sets} SETs");
}

#[tokio::test]
async fn honours_the_mix() {
    let server = Server::start();
    let url = server.base_url();
    let (output, report) = bench(&[
        "--url",
        url,
        "-n",
        "2000",
        "--ratio",
        "get=3,set=1",
        "--preload",
        "--keyspace",
        "100",
        "--namespaces",
        "4",
    ]);
    assert!(output.status.success(), "{report:#}");
    let (gets, sets) = (count(&report, "/ops/get"), count(&report, "/ops/set"));
    assert_eq!(gets + sets, 2000);
    // 3 to 1 drawn at random: 1500 expected, and 1300..1700 is over 10
    // standard deviations wide.
    assert!((1300..=1700).contains(&gets), "gets {gets}, sets {sets}");
    // Every GET hit a preloaded key: the server saw exactly `gets` hits.
    let stats = server.stats().await;
    assert_eq!(stats["cache_hits"].as_u64(), Some(gets), "{stats:#}");
    assert_eq!(stats["cache_misses"].as_u64(), Some(0), "{stats:#}");
    assert_eq!(stats["total_keys"].as_u64(), Some(100));
    assert_eq!(
        stats["namespaces"].as_object().map(|n| n.len()),
        Some(4),
        "{stats:#}"
    );

    let (_, report) = bench(&["--url", url, "-n", "100", "--op", "set"]);
    assert_eq!(
        (count(&report, "/ops/get"), count(&report, "/ops/set")),
        (0, 100)
    );
}

#[tokio::test]
async fn counts_non_2xx_answers_by_status() {
    let server = Server::start();
    // No --preload: every GET misses.
    let (output, report) = bench(&["--url", server.base_url(), "-n", "100", "--op", "get"]);
    assert!(output.status.success(), "a 404 is an answer: {report:#}");
    assert_eq!(count(&report, "/answered"), 100);
    assert_eq!(count(&report, "/status/404"), 100);
    assert_eq!(count(&report, "/non_2xx"), 100);
    assert_eq!(count(&report, "/errors_total"), 0);
}

#[test]
fn counts_connection_errors_and_fails() {
    // A port where nothing listens any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (output, report) = bench(&["--url", &url, "-n", "200"]);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(count(&report, "/requests"), 200);
    assert_eq!(count(&report, "/errors/connect"), 200);
    assert_eq!(count(&report, "/errors_total"), 200);
    assert_eq!(count(&report, "/answered"), 0);
    assert!(report["latency_us"].is_null());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("200 of 200 requests got no answer") && stderr.contains(&url),
        "{stderr}"
    );
}

#[test]
fn rejects_a_bad_url_with_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(["bench", "--url", "https://example.com", "-n", "1"])
        .output()
        .expect("run pykv bench");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only http://"));
}

/// Absurd numbers are refused before anything runs, naming the flag,
/// rather than panicking (a duration past what a `Duration` holds) or
/// allocating without bound (a 100 GB value).
#[test]
fn rejects_absurd_numbers_naming_the_flag() {
    for args in [
        ["--duration", "1e300"],
        ["--duration", "NaN"],
        ["--warmup", "1e300"],
        ["--timeout", "18446744073709551615"],
        ["--value-size", "100000000000"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(["bench", "--url", "http://127.0.0.1:9"])
            .args(args)
            .output()
            .expect("run pykv bench");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A running `pykv bench --ceiling --port 0`, killed on drop.
struct Ceiling(Child, String);

impl Ceiling {
    fn start() -> Ceiling {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(["bench", "--ceiling", "--port", "0", "--value-size", "10"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the ceiling");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("PyKV ceiling listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Ceiling(child, url)
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn ceiling_answers_like_a_get() {
    let ceiling = Ceiling::start();
    pykv::tls::install_default_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("{}/get/key:00000001?ns=bench0", ceiling.1))
        .send()
        .await
        .expect("GET the ceiling");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(
        body,
        serde_json::json!({"key": "key:00000001", "value": "vvvvvvvvvv", "namespace": "bench0"})
    );

    // The generator loads it like a server: every request answered 200.
    let (output, report) = bench(&["--url", &ceiling.1, "-n", "300"]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(count(&report, "/status/200"), 300);
}

/// `--op batch`: every request is a `POST /batch` of `--batch-size` ops,
/// which all land (a batch of sets writes that many keys), and the report
/// counts keys as well as requests.
#[tokio::test]
async fn batches_carry_batch_size_ops_each() {
    let server = Server::start();
    let url = server.base_url();
    let (output, report) = bench(&[
        "--url",
        url,
        "-n",
        "40",
        "--op",
        "batch",
        "--batch-size",
        "50",
        "--ratio",
        "set=1",
        "--keyspace",
        "100000",
        "--namespaces",
        "3",
    ]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(count(&report, "/ops/batch"), 40);
    assert_eq!(count(&report, "/status/200"), 40);
    assert_eq!(count(&report, "/batch_size"), 50);
    let keys = report["keys_per_s"].as_f64().unwrap();
    let requests = report["throughput_rps"].as_f64().unwrap();
    assert!((keys - 50.0 * requests).abs() < 1.0, "{report:#}");
    // 2000 sets over 100000 keys: a few land on the same key.
    let total = server.total_keys().await;
    assert!((1900..=2000).contains(&total), "{total} keys");
    let refused = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args([
            "bench",
            "--quiet",
            "--url",
            url,
            "--op",
            "get",
            "--batch-size",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "--batch-size without --op batch"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--batch-size needs --op batch"));
}
