//! Durability: what an acknowledged write survives.
//!
//! - `kill -9` while many clients write, under each `--fsync` policy (and
//!   several kills in a row in one data dir under `always`);
//! - SIGTERM: a clean exit (status 0) that keeps every acknowledged write,
//!   also with writers still running;
//! - a restart gives back exactly the state before it (sets, overwrites,
//!   deletes, namespace clears, in several namespaces);
//! - TTL deadlines are absolute: a restart neither drops a live key nor
//!   restarts its clock;
//! - the log's lines are the seed's JSON records.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    Key, Model, Server, check_exact_state, enc, ns_query, run_to_exit, verify_acknowledged,
};
use serde_json::{Value, json};

// ---- a model of what concurrent writers were told -----------------------

#[derive(Debug, Default)]
struct WriterReport {
    model: Model,
    acked: usize,
    /// Why the writer stopped early (an error or a non-200 answer).
    stopped_by: Option<String>,
}

/// Outcome of one request: the status, or a transport error.
async fn try_set(
    client: &reqwest::Client,
    base: &str,
    ns: Option<&str>,
    key: &str,
    value: &Value,
) -> Result<u16, String> {
    let body = json!({ "key": key, "value": value });
    client
        .post(format!("{base}/set{}", ns_query(ns)))
        .json(&body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

async fn try_delete(
    client: &reqwest::Client,
    base: &str,
    ns: Option<&str>,
    key: &str,
) -> Result<u16, String> {
    client
        .delete(format!("{base}/delete/{}{}", enc(key), ns_query(ns)))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// One client writing its own keys, one request at a time, until `stop`,
/// `max_ops`, or the first failure. Mostly new keys; every 10 ops one
/// overwrite and one delete of its earlier keys.
async fn writer(
    client: reqwest::Client,
    base: String,
    round: usize,
    id: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
    max_ops: usize,
) -> WriterReport {
    let ns = match id % 3 {
        0 => None,
        1 => Some("tenant_a".to_string()),
        _ => Some(format!("tenant_{id}")),
    };
    let mut report = WriterReport::default();
    let key_of = |j: usize| format!("r{round}:w{id}:k{j}");
    for i in 0..max_ops {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (key, new_state) = match i % 10 {
            9 => (key_of(i - 6), None),
            4 => (
                key_of(i - 2),
                Some(json!({"round": round, "writer": id, "op": i, "overwrite": true})),
            ),
            _ => (
                key_of(i),
                Some(json!({"round": round, "writer": id, "op": i, "pad": "x".repeat(i % 40)})),
            ),
        };
        let entry = report.model.entry((ns.clone(), key.clone())).or_default();
        entry.inflight = Some(new_state.clone());
        let result = match &new_state {
            Some(value) => try_set(&client, &base, ns.as_deref(), &key, value).await,
            None => try_delete(&client, &base, ns.as_deref(), &key).await,
        };
        match result {
            Ok(200) => {
                entry.acked = new_state;
                entry.inflight = None;
                report.acked += 1;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(status) => {
                report.stopped_by = Some(format!("{ns:?}/{key}: status {status}"));
                break;
            }
            Err(e) => {
                report.stopped_by = Some(format!("{ns:?}/{key}: {e}"));
                break;
            }
        }
    }
    report
}

/// Runs `n` writers against `server` until `acks_wanted` writes are
/// acknowledged, then runs `interrupt` (a kill or a SIGTERM) while they are
/// still writing, and collects what they were told.
async fn write_then_interrupt(
    server: &mut Server,
    round: usize,
    n: usize,
    acks_wanted: usize,
    interrupt: impl FnOnce(&mut Server),
) -> Vec<WriterReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|id| {
            tokio::spawn(writer(
                server.client.clone(),
                server.base_url().to_string(),
                round,
                id,
                stop.clone(),
                acks.clone(),
                1_000_000,
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acks.load(Ordering::SeqCst) < acks_wanted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked = acks.load(Ordering::SeqCst);
    assert!(
        acked >= acks_wanted,
        "round {round}: only {acked} of {acks_wanted} writes acknowledged in 20 s"
    );
    tokio::task::block_in_place(|| interrupt(server));
    stop.store(true, Ordering::SeqCst);
    let mut reports = Vec::new();
    for handle in handles {
        let report = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("a writer did not stop within 30 s of the interruption")
            .expect("writer task panicked");
        reports.push(report);
    }
    reports
}

fn merge(model: &mut Model, reports: Vec<WriterReport>) {
    for report in reports {
        for (key, tracked) in report.model {
            let previous = model.insert(key.clone(), tracked);
            assert!(previous.is_none(), "two writers touched {key:?}");
        }
    }
}

fn args_for(policy: Option<&'static str>) -> Vec<&'static str> {
    match policy {
        Some(p) => vec!["--fsync", p],
        None => vec![],
    }
}

/// `rounds` times: `writers` clients write, the server is SIGKILLed while
/// they do, and restarted in the same data dir; every acknowledged write of
/// every round must be there after each restart.
async fn kill_nine_rounds(
    policy: Option<&'static str>,
    rounds: usize,
    writers: usize,
    acks: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let args = args_for(policy);
    let mut server = Server::start_in(dir.path(), &args);
    let mut model = Model::new();
    for round in 0..rounds {
        let reports = write_then_interrupt(&mut server, round, writers, acks, |s| {
            let status = s.kill();
            assert!(!status.success(), "SIGKILL should not give a clean exit");
        })
        .await;
        // Every writer was cut off by the kill, not by running out of work.
        for (id, report) in reports.iter().enumerate() {
            assert!(
                report.stopped_by.is_some() || report.acked == 0,
                "writer {id} was not interrupted"
            );
        }
        merge(&mut model, reports);
        let stderr = server.take_stderr();
        assert!(!stderr.contains("panicked"), "server panicked:\n{stderr}");
        server.restart();
        let present = verify_acknowledged(
            &server,
            &mut model,
            &format!("fsync {policy:?}, after kill -9 number {}", round + 1),
        )
        .await;
        let total = server.total_keys().await;
        assert_eq!(
            total,
            present as u64,
            "after kill {}: /stats total_keys disagrees with the keys written",
            round + 1
        );
    }
    let status = stop_cleanly(&mut server);
    assert!(status.success());
}

/// SIGTERM, then waits for the exit; the status must be 0.
fn stop_cleanly(server: &mut Server) -> std::process::ExitStatus {
    server.terminate();
    let status = server.wait_exit();
    let stderr = server.take_stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should end pykv with status 0, got {status:?}; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "server panicked:\n{stderr}");
    status
}

// ---- kill -9 ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsync_always_acknowledged_writes_survive_three_kill_nines_under_ten_writers() {
    kill_nine_rounds(Some("always"), 3, 10, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_everysec_acknowledged_writes_survive_kill_nine() {
    kill_nine_rounds(None, 1, 4, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explicit_everysec_and_no_acknowledged_writes_survive_kill_nine() {
    kill_nine_rounds(Some("everysec"), 1, 4, 100).await;
    kill_nine_rounds(Some("no"), 1, 4, 100).await;
}

#[test]
fn fsync_defaults_to_everysec_and_lists_its_policies() {
    let out = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(["serve", "--help"])
        .output()
        .expect("run pykv serve --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let start = help.find("--fsync").expect("no --fsync in --help");
    let end = help[start + 2..]
        .find("\n      --")
        .map_or(help.len(), |i| start + 2 + i);
    let section = &help[start..end];
    for word in ["always", "everysec", "no", "[default: everysec]"] {
        assert!(section.contains(word), "{word:?} missing from:\n{section}");
    }
}

#[test]
fn an_unknown_fsync_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &["--fsync", "sometimes"]);
    assert_ne!(code, Some(0), "`--fsync sometimes` was accepted");
    assert!(stderr.contains("sometimes"), "stderr:\n{stderr}");
    assert!(
        stderr.contains("always") && stderr.contains("everysec"),
        "the error should list the policies; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

// ---- SIGTERM ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_eight_writers_exits_zero_and_keeps_every_acknowledged_write() {
    for policy in [None, Some("no")] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(dir.path(), &args_for(policy));
        let mut status = None;
        let reports = write_then_interrupt(&mut server, 0, 8, 200, |s| {
            s.terminate();
            status = Some(s.wait_exit());
        })
        .await;
        let status = status.unwrap();
        let stderr = server.take_stderr();
        assert_eq!(
            status.code(),
            Some(0),
            "fsync {policy:?}: SIGTERM under load should exit 0, got {status:?}; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
        let mut model = Model::new();
        merge(&mut model, reports);
        server.restart();
        let present = verify_acknowledged(
            &server,
            &mut model,
            &format!("fsync {policy:?}: after SIGTERM"),
        )
        .await;
        assert_eq!(server.total_keys().await, present as u64);
        stop_cleanly(&mut server);
    }
}

// ---- restart round trip ------------------------------------------------

fn k(ns: Option<&str>, key: &str) -> Key {
    (ns.map(str::to_owned), key.to_owned())
}

#[tokio::test]
async fn sigterm_and_restart_give_back_exactly_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let mut expected: BTreeMap<Key, Value> = BTreeMap::new();
    let mut absent: Vec<Key> = Vec::new();

    // alpha: sets, an overwrite, a delete.
    for (key, value) in [
        ("a1", json!("one")),
        ("a2", json!(2)),
        ("a3", json!({"x": [1, 2]})),
    ] {
        server.set(Some("alpha"), key, value.clone()).await;
        expected.insert(k(Some("alpha"), key), value);
    }
    server
        .set(Some("alpha"), "a2", json!([true, null, 2.5]))
        .await;
    expected.insert(k(Some("alpha"), "a2"), json!([true, null, 2.5]));
    assert_eq!(server.delete("/delete/a3?ns=alpha").await.status, 200);
    expected.remove(&k(Some("alpha"), "a3"));
    absent.push(k(Some("alpha"), "a3"));

    // beta: cleared, then written again.
    server.set(Some("beta"), "b1", json!("gone")).await;
    server.set(Some("beta"), "b2", json!("gone too")).await;
    let r = server.delete("/namespaces/beta").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["keys_deleted"], 2);
    server
        .set(Some("beta"), "b3", json!("after the clear"))
        .await;
    expected.insert(k(Some("beta"), "b3"), json!("after the clear"));
    absent.extend([k(Some("beta"), "b1"), k(Some("beta"), "b2")]);

    // gamma: cleared and left empty, so it is no namespace any more.
    server.set(Some("gamma"), "g1", json!(1)).await;
    assert_eq!(server.delete("/namespaces/gamma").await.status, 200);
    absent.push(k(Some("gamma"), "g1"));

    // The default namespace, keys holding ':' and odd characters, and a
    // key with a distant TTL.
    for (key, value) in [
        ("d1", json!("first")),
        ("d2", json!("to delete")),
        ("app1:user:1", json!("default, not app1")),
        ("ключ / ? # % \"q\"", json!("ünïcödé ✓")),
        ("nul", Value::Null),
    ] {
        server.set(None, key, value.clone()).await;
        expected.insert(k(None, key), value);
    }
    server.set(None, "d1", json!("second")).await;
    expected.insert(k(None, "d1"), json!("second"));
    assert_eq!(server.delete("/delete/d2").await.status, 200);
    expected.remove(&k(None, "d2"));
    absent.extend([k(None, "d2"), k(Some("app1"), "user:1")]);
    let r = server
        .post_json(
            "/set?ns=alpha",
            &json!({"key": "ttl-hour", "value": "lives", "ttl": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    expected.insert(k(Some("alpha"), "ttl-hour"), json!("lives"));
    // Same key in two namespaces and the default one.
    server.set(Some("beta"), "d1", json!("beta's d1")).await;
    expected.insert(k(Some("beta"), "d1"), json!("beta's d1"));

    check_exact_state(&server, &expected, &absent, "before the restart").await;
    stop_cleanly(&mut server);
    server.restart();
    check_exact_state(&server, &expected, &absent, "after SIGTERM and restart").await;
    // And once more, now that the log was read back once.
    stop_cleanly(&mut server);
    server.restart();
    check_exact_state(&server, &expected, &absent, "after a second restart").await;
    stop_cleanly(&mut server);
}

// ---- TTL deadlines are absolute -----------------------------------------

#[tokio::test]
async fn a_ttl_deadline_is_absolute_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let sent = Instant::now();
    let r = server
        .post_json("/set?ns=t", &json!({"key": "four", "value": "v", "ttl": 4}))
        .await;
    let answered = Instant::now();
    assert_eq!(r.status, 200, "{r:?}");
    server.set(Some("t"), "forever", json!("stays")).await;

    // Restart about 1.5 s after the set.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(sent.elapsed())).await;
    stop_cleanly(&mut server);
    server.restart();
    let back = sent.elapsed();
    assert!(
        back < Duration::from_millis(3500),
        "the restart took too long ({back:?}) to check the key before its deadline"
    );
    assert_eq!(
        server.value(Some("t"), "four").await,
        Some(json!("v")),
        "a key with 4 s of TTL left was dropped by a restart {back:?} after its set"
    );

    // Poll until it is gone: about 4 s after the set, not 4 s after the
    // restart (which would be >= 5.5 s).
    let mut last_seen = back;
    let gone_at = loop {
        let now = sent.elapsed();
        if server.value(Some("t"), "four").await.is_none() {
            break now;
        }
        last_seen = now;
        assert!(
            now < Duration::from_millis(5000),
            "the key is still there {now:?} after a set with ttl 4 (restarted at {back:?}): \
             the deadline was not kept across the restart"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Never gone before the deadline (measured from the answer, the latest
    // moment the server can have read its clock).
    assert!(
        last_seen + (answered - sent) >= Duration::from_millis(3700),
        "the key vanished early: last seen at {last_seen:?}, gone at {gone_at:?}"
    );
    assert_eq!(
        server.value(Some("t"), "forever").await,
        Some(json!("stays"))
    );
    assert_eq!(server.total_keys().await, 1);

    // Recovery skips it now that it has expired.
    stop_cleanly(&mut server);
    server.restart();
    assert_eq!(server.value(Some("t"), "four").await, None);
    assert_eq!(server.total_keys().await, 1);
    stop_cleanly(&mut server);
}

// ---- the log's format ---------------------------------------------------

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn every_mutation_is_one_seed_json_line_in_wal_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let before = now_secs();
    server.set(Some("app1"), "user:123", json!("alice")).await;
    let r = server
        .post_json(
            "/set",
            &json!({"key": "app1:s", "value": {"n": [1, 2]}, "ttl": 60}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        server.delete("/delete/user%3A123?ns=app1").await.status,
        200
    );
    server.set(Some("app2"), "x", json!(7)).await;
    assert_eq!(server.delete("/namespaces/app2").await.status, 200);
    // Refused and no-op requests write nothing.
    assert_eq!(server.delete("/delete/missing").await.status, 404);
    let r = server
        .post_json("/set", &json!({"key": "", "value": 1}))
        .await;
    assert_ne!(r.status, 200);
    // Written before the answer, under every policy: readable at once.
    let text = std::fs::read_to_string(dir.path().join("wal.log")).unwrap();
    stop_cleanly(&mut server);
    let after = now_secs();
    assert!(text.ends_with('\n'), "{text:?}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 5, "one line per mutation:\n{text}");

    for line in &lines {
        let ts = line["timestamp"]
            .as_f64()
            .unwrap_or_else(|| panic!("timestamp is not a number: {line}"));
        assert!(
            ts >= before - 0.002 && ts <= after + 0.002,
            "timestamp {ts} not within [{before}, {after}]: {line}"
        );
        assert!(
            line.get("namespace").is_some(),
            "every record names its namespace (null for the default): {line}"
        );
    }
    let pick = |l: &Value, fields: &[&str]| -> Value {
        Value::Object(
            fields
                .iter()
                .map(|f| {
                    (
                        f.to_string(),
                        l.get(*f).cloned().unwrap_or(json!("<missing>")),
                    )
                })
                .collect(),
        )
    };
    let fields = ["action", "key", "value", "namespace"];
    assert_eq!(
        pick(&lines[0], &fields),
        json!({"action": "SET", "key": "user:123", "value": "alice", "namespace": "app1"})
    );
    assert!(
        lines[0].get("ttl").is_none_or(Value::is_null),
        "no ttl: {}",
        lines[0]
    );
    assert_eq!(
        pick(&lines[1], &fields),
        json!({"action": "SET", "key": "app1:s", "value": {"n": [1, 2]}, "namespace": null})
    );
    assert_eq!(lines[1]["ttl"], json!(60), "{}", lines[1]);
    let expires_at = lines[1]["expires_at"]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer expires_at (ms): {}", lines[1]));
    let lo = ((before - 0.002) * 1000.0) as u64 + 60_000;
    let hi = ((after + 0.002) * 1000.0) as u64 + 60_000;
    assert!(
        (lo..=hi).contains(&expires_at),
        "expires_at {expires_at} should be the set's time + 60 s in ms, within [{lo}, {hi}]"
    );
    assert_eq!(
        pick(&lines[2], &["action", "key", "namespace"]),
        json!({"action": "DEL", "key": "user:123", "namespace": "app1"})
    );
    assert!(
        lines[2].get("value").is_none_or(Value::is_null),
        "{}",
        lines[2]
    );
    assert_eq!(
        pick(&lines[3], &fields),
        json!({"action": "SET", "key": "x", "value": 7, "namespace": "app2"})
    );
    assert_eq!(
        pick(&lines[4], &["action", "namespace"]),
        json!({"action": "CLEAR", "namespace": "app2"})
    );
}
