//! Compaction: `POST /compact` and automatic rewrites of the log, while
//! writes go on; the state after a restart equals the state before; a
//! `kill -9` during or right after a compaction loses no acknowledged
//! write.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Model, Server, Tracked, enc, ns_query, verify_acknowledged};
use serde_json::{Value, json};

// ---- writers and what they were told -------------------------------------

#[derive(Debug, Default)]
struct WriterReport {
    model: Model,
    ops: usize,
    /// Answers that contradict the writer's own history (a delete of a key
    /// it had set answering 404, a clear deleting the wrong count, ...).
    errors: Vec<String>,
    /// A transport error that ended the writer (expected after a kill).
    cut_off: Option<String>,
}

#[derive(Clone)]
struct WriterSpec {
    id: usize,
    ns: Option<String>,
    prefix: String,
    keys: usize,
    /// Every this many ops, clear the writer's (own) namespace.
    clear_every: Option<usize>,
    pad: usize,
}

fn spec(id: usize, keys: usize) -> WriterSpec {
    // Two writers share the default namespace, the others own one each;
    // keys are never shared between writers.
    let ns = (id >= 2).then(|| format!("c{id}"));
    WriterSpec {
        id,
        ns,
        prefix: format!("w{id}:"),
        keys,
        clear_every: None,
        pad: 60,
    }
}

struct Shared {
    stop: AtomicBool,
    ops: AtomicUsize,
}

/// Runs one writer: random sets (70%) and deletes (30%) over its own keys,
/// one at a time, plus optional namespace clears, until `stop` or
/// `max_ops`, checking each answer against its history.
async fn run_writer(
    client: reqwest::Client,
    base: String,
    spec: WriterSpec,
    shared: Arc<Shared>,
    max_ops: usize,
    mut model: Model,
) -> WriterReport {
    let mut report = WriterReport::default();
    let mut rng =
        0x9E37_79B9_7F4A_7C15u64 ^ (spec.id as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let ns = spec.ns.as_deref();
    for i in 0..max_ops {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if spec.clear_every.is_some_and(|n| i % n == n - 1) {
            let ns = ns.expect("clearing needs a namespace of its own");
            let present = model.values().filter(|t| t.acked.is_some()).count();
            for t in model.values_mut() {
                t.inflight = Some(None);
            }
            let result = client
                .delete(format!("{base}/namespaces/{}", enc(ns)))
                .send()
                .await;
            match result {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    if status != 200 || body["keys_deleted"] != json!(present) {
                        report.errors.push(format!(
                            "clear {ns}: {status} {body}, expected 200 with keys_deleted {present}"
                        ));
                    }
                    for t in model.values_mut() {
                        t.acked = None;
                        t.inflight = None;
                    }
                }
                Err(e) => {
                    report.cut_off = Some(format!("clear {ns}: {e}"));
                    break;
                }
            }
            report.ops += 1;
            shared.ops.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let r = next();
        let key = format!("{}k{}", spec.prefix, r % spec.keys as u64);
        let tracked = model.entry((spec.ns.clone(), key.clone())).or_default();
        let (request, new_state, expected_status) = if r % 10 < 7 {
            let value = json!({"w": spec.id, "op": i, "pad": "p".repeat(spec.pad + (r as usize >> 8) % 20)});
            let body = json!({"key": key, "value": value});
            (
                client
                    .post(format!("{base}/set{}", ns_query(ns)))
                    .json(&body),
                Some(value),
                200,
            )
        } else {
            let expected = if tracked.acked.is_some() { 200 } else { 404 };
            (
                client.delete(format!("{base}/delete/{}{}", enc(&key), ns_query(ns))),
                None,
                expected,
            )
        };
        tracked.inflight = Some(new_state.clone());
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                if status == expected_status {
                    tracked.acked = new_state;
                    tracked.inflight = None;
                } else {
                    report.errors.push(format!(
                        "{ns:?}/{key}: status {status}, expected {expected_status} (acknowledged before: {:?})",
                        tracked.acked
                    ));
                    break;
                }
            }
            Err(e) => {
                report.cut_off = Some(format!("{ns:?}/{key}: {e}"));
                break;
            }
        }
        report.ops += 1;
        shared.ops.fetch_add(1, Ordering::SeqCst);
    }
    report.model = model;
    report
}

struct Writers {
    shared: Arc<Shared>,
    handles: Vec<tokio::task::JoinHandle<WriterReport>>,
}

impl Writers {
    fn start(server: &Server, specs: &[WriterSpec], max_ops: usize, model: &mut Model) -> Writers {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ops: AtomicUsize::new(0),
        });
        let handles = specs
            .iter()
            .map(|spec| {
                // Each writer takes back the keys it owns.
                let own: Model = model
                    .iter()
                    .filter(|((ns, key), _)| *ns == spec.ns && key.starts_with(&spec.prefix))
                    .map(|(k, t)| (k.clone(), t.clone()))
                    .collect();
                model.retain(|(ns, key), _| !(*ns == spec.ns && key.starts_with(&spec.prefix)));
                tokio::spawn(run_writer(
                    server.client.clone(),
                    server.base_url().to_string(),
                    spec.clone(),
                    shared.clone(),
                    max_ops,
                    own,
                ))
            })
            .collect();
        Writers { shared, handles }
    }

    fn ops(&self) -> usize {
        self.shared.ops.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `n` more operations have been answered.
    async fn wait_for_ops(&self, n: usize, context: &str) {
        let target = self.ops() + n;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ops() < target {
            assert!(
                Instant::now() < deadline,
                "{context}: writers answered {} of {target} operations in 20 s",
                self.ops()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops them and merges what they were told into `model`. Returns the
    /// writers' reports (their models moved out).
    async fn finish(self, model: &mut Model) -> Vec<WriterReport> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.join(model).await
    }

    /// Waits for them to run out of operations; merges as `finish`.
    async fn join(self, model: &mut Model) -> Vec<WriterReport> {
        let mut reports = Vec::new();
        for handle in self.handles {
            let mut report = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("a writer did not stop within 30 s")
                .expect("writer task panicked");
            for (key, t) in report.model.drain() {
                assert!(model.insert(key.clone(), t).is_none(), "{key:?} shared");
            }
            reports.push(report);
        }
        reports
    }
}

fn assert_no_errors(reports: &[WriterReport], context: &str) {
    let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
    assert!(errors.is_empty(), "{context}: wrong answers:\n{errors:#?}");
    let cut: Vec<&String> = reports.iter().filter_map(|r| r.cut_off.as_ref()).collect();
    assert!(cut.is_empty(), "{context}: requests failed:\n{cut:#?}");
}

/// [`verify_acknowledged`], and /stats total_keys must count exactly the
/// present keys plus `extra`.
async fn verify(server: &Server, model: &mut Model, extra: u64, context: &str) {
    let present = verify_acknowledged(server, model, context).await;
    assert_eq!(
        server.total_keys().await,
        present + extra,
        "{context}: /stats total_keys"
    );
}

async fn log_size(server: &Server) -> u64 {
    server.stats().await["log_size"]
        .as_u64()
        .expect("log_size is an integer")
}

/// Polls /stats until `last_compaction` differs from `previous` (bounded).
async fn wait_for_compaction(server: &Server, previous: &Value, context: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = server.stats().await;
        let last = &stats["last_compaction"];
        if !last.is_null() && last != previous {
            assert!(last.is_number(), "last_compaction: {last}");
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: no compaction finished within 15 s; stats: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop_cleanly(server: &mut Server) {
    server.terminate();
    let status = server.wait_exit();
    let stderr = server.take_stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should end pykv with status 0; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

/// The SET records of `key` in the log at `path`.
fn log_records_of(path: &Path, ns: &str, key: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|r| r["key"] == json!(key) && r["namespace"] == json!(ns))
        .collect()
}

// ---- POST /compact under load -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_under_eight_writers_shrinks_the_log_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let mut server = Server::start_in(dir.path(), &[]);
    assert!(server.stats().await["last_compaction"].is_null());

    // A key whose deadline the rewrite must keep exactly.
    let r = server
        .post_json(
            "/set?ns=deadline",
            &json!({"key": "ttl", "value": "kept", "ttl": 3600}),
        )
        .await;
    assert_eq!(r.status, 200);
    let original = log_records_of(&log, "deadline", "ttl");
    assert_eq!(original.len(), 1);
    let expires_at = original[0]["expires_at"].clone();
    assert!(expires_at.is_u64(), "{}", original[0]);

    // Many overwrites of few keys: a log mostly of dead records.
    let mut specs: Vec<WriterSpec> = (0..8).map(|id| spec(id, 12)).collect();
    specs[7].clear_every = Some(25);
    let mut model = Model::new();
    let writers = Writers::start(&server, &specs, 250, &mut model);
    let reports = writers.join(&mut model).await;
    assert_no_errors(&reports, "filling the log");
    let filled: usize = reports.iter().map(|r| r.ops).sum();
    assert!(filled >= 2000);
    verify(&server, &mut model, 1, "before compaction").await;
    let before = log_size(&server).await;
    assert_eq!(before, std::fs::metadata(&log).unwrap().len());

    // Compact while the writers keep going.
    let writers = Writers::start(&server, &specs, usize::MAX, &mut model);
    writers.wait_for_ops(100, "before /compact").await;
    let r = server.post_json("/compact", &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"status": "compaction_started"}));
    let stats = wait_for_compaction(&server, &Value::Null, "POST /compact").await;
    let after = stats["log_size"].as_u64().unwrap();
    writers.wait_for_ops(300, "after the compaction").await;
    let reports = writers.finish(&mut model).await;
    assert_no_errors(&reports, "during and after the compaction");
    eprintln!("POST /compact: log {before} bytes before, {after} right after");
    assert!(
        after < before / 2,
        "the log did not shrink: {before} bytes before, {after} after the compaction \
         (most records were overwritten)"
    );

    verify(&server, &mut model, 1, "after the compaction").await;
    assert_eq!(
        server.value(Some("deadline"), "ttl").await,
        Some(json!("kept"))
    );
    stop_cleanly(&mut server);
    let rewritten = log_records_of(&log, "deadline", "ttl");
    assert_eq!(rewritten.len(), 1, "{rewritten:?}");
    assert_eq!(
        rewritten[0]["expires_at"], expires_at,
        "the rewrite changed the key's deadline"
    );
    assert!(
        !dir.path().join("wal.log.rewrite").exists(),
        "a finished compaction left wal.log.rewrite behind"
    );

    server.restart();
    verify(&server, &mut model, 1, "after the compaction and a restart").await;
    assert_eq!(
        server.value(Some("deadline"), "ttl").await,
        Some(json!("kept"))
    );
    stop_cleanly(&mut server);
}

// ---- automatic compaction -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_compaction_keeps_the_log_small_and_the_latest_values() {
    const MIN_BYTES: u64 = 10_000;
    const WRITING: Duration = Duration::from_millis(4000);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let args = ["--compact-min-bytes", "10000", "--compact-ratio", "2"];
    let mut server = Server::start_in(dir.path(), &args);
    assert!(server.stats().await["last_compaction"].is_null());

    // Four writers overwrite two keys each, as fast as they can, for
    // 4 s: the automatic check (once a second) must compact several times
    // meanwhile.
    let keys = 2;
    let mut model = Model::new();
    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for id in 0..4 {
        let client = server.client.clone();
        let base = server.base_url().to_string();
        let written = written.clone();
        handles.push(tokio::spawn(async move {
            let mut last = HashMap::new();
            let mut i = 0;
            while started.elapsed() < WRITING {
                let key = format!("w{id}:k{}", i % keys);
                let value = json!({"w": id, "i": i, "pad": "a".repeat(100)});
                let body = json!({"key": key, "value": value});
                let r = client
                    .post(format!("{base}/set?ns=auto"))
                    .json(&body)
                    .send()
                    .await
                    .expect("set");
                assert_eq!(r.status(), 200);
                written.fetch_add(body.to_string().len(), Ordering::SeqCst);
                last.insert(key, value);
                i += 1;
            }
            last
        }));
    }
    // Watch /stats while they write.
    let mut compactions_seen = Vec::<Value>::new();
    let mut samples = Vec::<(Instant, u64)>::new();
    while handles.iter().any(|h| !h.is_finished()) {
        samples.push((Instant::now(), written.load(Ordering::SeqCst) as u64));
        let stats = server.stats().await;
        let last = &stats["last_compaction"];
        if !last.is_null() && compactions_seen.last() != Some(last) {
            compactions_seen.push(last.clone());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let size_at_end = log_size(&server).await;
    let end = Instant::now();
    for handle in handles {
        for (key, value) in handle.await.expect("writer panicked") {
            model.insert(
                (Some("auto".to_string()), key),
                Tracked {
                    acked: Some(value),
                    inflight: None,
                },
            );
        }
    }
    assert_eq!(model.len(), 8);
    let total_written = written.load(Ordering::SeqCst) as u64;
    // Bodies written in the last 1.5 s: a log compacted once a second
    // holds little more than that (a record is under twice its body).
    let recent = total_written
        - samples
            .iter()
            .rev()
            .find(|(at, _)| end.duration_since(*at) >= Duration::from_millis(1500))
            .map_or(0, |(_, n)| *n);
    eprintln!(
        "auto compaction: {total_written} bytes of bodies written ({recent} in the last 1.5 s), \
         {} compactions seen, log {size_at_end} bytes when the writes stopped",
        compactions_seen.len()
    );
    assert!(
        total_written > 10 * MIN_BYTES,
        "the test should write far more than --compact-min-bytes ({total_written})"
    );
    assert!(
        compactions_seen.len() >= 2,
        "expected repeated automatic compactions during 4 s of overwrites \
         ({total_written} bytes), saw {compactions_seen:?}"
    );
    assert!(
        size_at_end < 2 * recent + MIN_BYTES,
        "the log was {size_at_end} bytes at the end of {total_written} bytes of overwrites \
         of 8 keys ({recent} in the last 1.5 s): automatic compaction did not keep it small"
    );

    // Once the writes stop, the next check brings it under the threshold.
    let deadline = Instant::now() + Duration::from_secs(10);
    let settled = loop {
        let size = log_size(&server).await;
        if size < MIN_BYTES {
            break size;
        }
        assert!(
            Instant::now() < deadline,
            "the log is still {size} bytes 10 s after the writes stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(std::fs::metadata(&log).unwrap().len(), settled);
    verify(&server, &mut model, 0, "after automatic compactions").await;

    stop_cleanly(&mut server);
    server.restart();
    verify(
        &server,
        &mut model,
        0,
        "after automatic compactions and a restart",
    )
    .await;
    stop_cleanly(&mut server);
}

// ---- kill -9 around a compaction -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_during_or_after_a_compaction_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--fsync", "always"];
    let mut server = Server::start_in(dir.path(), &args);
    let specs: Vec<WriterSpec> = (0..8)
        .map(|id| WriterSpec {
            pad: 200,
            ..spec(id, 40)
        })
        .collect();
    let mut model = Model::new();

    // Kill right after /compact answers, a little later, and once it has
    // finished.
    for (round, wait) in [Some(0u64), Some(15), None].into_iter().enumerate() {
        let context = format!("kill -9 number {} (wait {wait:?})", round + 1);
        let writers = Writers::start(&server, &specs, usize::MAX, &mut model);
        writers.wait_for_ops(600, &context).await;
        let previous = server.stats().await["last_compaction"].clone();
        let r = server.post_json("/compact", &json!({})).await;
        assert_eq!(r.body, json!({"status": "compaction_started"}), "{context}");
        match wait {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => {
                wait_for_compaction(&server, &previous, &context).await;
                writers.wait_for_ops(50, &context).await;
            }
        }
        tokio::task::block_in_place(|| server.kill());
        let reports = writers.finish(&mut model).await;
        let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
        assert!(errors.is_empty(), "{context}: wrong answers:\n{errors:#?}");
        let stderr = server.take_stderr();
        assert!(!stderr.contains("panicked"), "{context}: {stderr}");

        server.restart();
        assert!(
            !dir.path().join("wal.log.rewrite").exists(),
            "{context}: wal.log.rewrite survived the start"
        );
        verify(&server, &mut model, 0, &context).await;
    }
    stop_cleanly(&mut server);
}
