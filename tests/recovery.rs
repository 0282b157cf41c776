//! Recovery at start: reading a log written by PyKV itself, torn tails,
//! corruption (refused, or repaired on request), unusable data dirs, and
//! the leftover of a compaction cut short by a crash.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Key, Server, check_exact_state, run_to_exit, strip_ansi};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pykv_wal.log");

fn k(ns: Option<&str>, key: &str) -> Key {
    (ns.map(str::to_owned), key.to_owned())
}

/// SIGTERM; the exit status must be 0. Returns stderr without colours.
fn stop_cleanly(server: &mut Server) -> String {
    server.terminate();
    let status = server.wait_exit();
    let stderr = strip_ansi(&server.take_stderr());
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should end pykv with status 0; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    stderr
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every line of the file is a JSON object, and it ends with a newline.
fn assert_whole_json_lines(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} does not end with a newline: {text:?}",
        path.display()
    );
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{} line {}: {e}: {line:?}", path.display(), i + 1));
        assert!(v.is_object(), "line {}: {line}", i + 1);
    }
}

// ---- a log written by PyKV ---------------------------------------------

/// What tests/fixtures/pykv_wal.log holds once replayed.
fn fixture_state() -> (BTreeMap<Key, Value>, Vec<Key>) {
    let expected: BTreeMap<Key, Value> = [
        (k(Some("app1"), "user:1"), json!("alice")),
        (k(Some("app1"), "a:b:c"), json!("colons")),
        (k(None, "app1:user:1"), json!("default-alice")),
        (k(None, "counter"), json!(42)),
        (k(None, "overwritten"), json!("v2")),
        (
            k(Some("app2"), "config"),
            json!({"theme": "dark", "size": 12, "tags": ["a", "b"], "ratio": 0.75, "nested": {"on": false}}),
        ),
        (k(Some("app2"), "user:1"), json!("bob")),
        (k(Some("app2"), "tmp"), json!("kept")),
        (k(Some("auth"), "session:new"), json!("still here")),
        (k(Some("intl"), "café:menü"), json!("😀 ok")),
        (k(Some("app3"), "after-clear"), Value::Null),
    ]
    .into_iter()
    .collect();
    let absent = vec![
        // Deleted.
        k(Some("app1"), "temp"),
        k(None, "app2:tmp"),
        // ttl counted from a timestamp long past.
        k(Some("auth"), "session:old"),
        // An expired SET erases the older value under it.
        k(Some("app2"), "shadowed"),
        // Cleared.
        k(Some("app3"), "flag"),
        k(Some("app3"), "list"),
        // A key holding ':' is not split into namespace and key.
        k(None, "user:1"),
        k(Some("app1"), "app1:user:1"),
        k(Some("app2"), "tmp:x"),
    ];
    (expected, absent)
}

#[tokio::test]
async fn a_wal_log_written_by_pykv_loads_unchanged() {
    let fixture = std::fs::read(FIXTURE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    std::fs::write(&log, &fixture).unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let (mut expected, absent) = fixture_state();
    check_exact_state(&server, &expected, &absent, "PyKV's log").await;
    assert_eq!(
        std::fs::read(&log).unwrap(),
        fixture,
        "loading PyKV's log changed it"
    );

    // Our records after PyKV's: both read back together.
    server.set(Some("app1"), "new", json!("ours")).await;
    assert_eq!(server.delete("/delete/counter").await.status, 200);
    expected.insert(k(Some("app1"), "new"), json!("ours"));
    expected.remove(&k(None, "counter"));
    let mut absent = absent;
    absent.push(k(None, "counter"));
    stop_cleanly(&mut server);
    assert!(std::fs::read(&log).unwrap().starts_with(&fixture));
    server.restart();
    check_exact_state(&server, &expected, &absent, "PyKV's log plus ours").await;
    stop_cleanly(&mut server);
}

// ---- torn tail ----------------------------------------------------------

/// Fills a fresh data dir with a log written by the server: returns the
/// expected state.
async fn seed_log(dir: &Path) -> BTreeMap<Key, Value> {
    let mut server = Server::start_in(dir, &[]);
    let mut expected = BTreeMap::new();
    for i in 0..5 {
        let value = json!({"i": i, "s": format!("value {i}")});
        server.set(Some("a"), &format!("k{i}"), value.clone()).await;
        expected.insert(k(Some("a"), &format!("k{i}")), value);
    }
    server.set(None, "d:1", json!("default")).await;
    expected.insert(k(None, "d:1"), json!("default"));
    stop_cleanly(&mut server);
    expected
}

#[tokio::test]
async fn a_torn_last_record_is_cut_off_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let mut expected = seed_log(dir.path()).await;
    let valid = std::fs::read(&log).unwrap();
    let lines = valid.iter().filter(|&&b| b == b'\n').count();
    let mut torn = valid.clone();
    torn.extend_from_slice(br#"{"timestamp": 1.0, "action": "SET", "ke"#);
    std::fs::write(&log, &torn).unwrap();

    let mut server = Server::start_in(dir.path(), &[]);
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        valid.len() as u64,
        "the log was not cut back to its last whole record"
    );
    check_exact_state(&server, &expected, &[], "after a torn tail").await;

    // The next write lands on a clean line and survives a restart.
    server.set(Some("a"), "after", json!("torn")).await;
    expected.insert(k(Some("a"), "after"), json!("torn"));
    let stderr = stop_cleanly(&mut server);
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning about the torn record; stderr:\n{stderr}"));
    assert!(
        warning.contains("wal.log"),
        "the warning should name the log: {warning}"
    );
    assert!(
        warning.contains(&valid.len().to_string()),
        "the warning should say where the torn record began (byte {}, line {}): {warning}",
        valid.len(),
        lines + 1
    );
    assert_whole_json_lines(&log);
    assert!(std::fs::read(&log).unwrap().starts_with(&valid));

    server.restart();
    check_exact_state(&server, &expected, &[], "after the torn tail and a restart").await;
    let stderr = stop_cleanly(&mut server);
    assert!(
        !stderr.contains("WARN"),
        "a clean log should start without warnings:\n{stderr}"
    );
}

/// Under `--fsync always` the writer zero-fills the file ahead of its
/// records; a crash leaves those zeros, after whole records or after a
/// torn one. They are free space, not corruption, and are cut off.
#[tokio::test]
async fn zeros_after_the_records_are_cut_off_as_free_space() {
    for torn in [&b""[..], &br#"{"timestamp": 1.0, "action": "SET", "ke"#[..]] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("wal.log");
        let mut expected = seed_log(dir.path()).await;
        let valid = std::fs::read(&log).unwrap();
        let mut crashed = valid.clone();
        crashed.extend_from_slice(torn);
        crashed.resize(crashed.len() + (1 << 20), 0);
        std::fs::write(&log, &crashed).unwrap();

        let mut server = Server::start_in(dir.path(), &["--fsync", "always"]);
        let context = format!("after zeros behind {:?}", String::from_utf8_lossy(torn));
        assert_eq!(
            std::fs::metadata(&log).unwrap().len(),
            valid.len() as u64,
            "{context}: the log was not cut back to its last whole record"
        );
        check_exact_state(&server, &expected, &[], &context).await;
        server.set(Some("a"), "after", json!("zeros")).await;
        expected.insert(k(Some("a"), "after"), json!("zeros"));
        stop_cleanly(&mut server);
        // A clean stop leaves no zeros behind: plain JSON lines.
        assert_whole_json_lines(&log);
        assert!(!std::fs::read(&log).unwrap().contains(&0), "{context}");

        server.restart();
        check_exact_state(&server, &expected, &[], &context).await;
        stop_cleanly(&mut server);
    }
}

/// The real thing: an `always` server killed with SIGKILL leaves its
/// zero-filled tail, and every acknowledged record comes back.
#[tokio::test]
async fn an_always_server_killed_leaves_zeros_that_replay_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let mut server = Server::start_in(dir.path(), &["--fsync", "always"]);
    let mut expected = BTreeMap::new();
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(server.set(Some("z"), &key, json!(i)).await.status, 200);
        expected.insert(k(Some("z"), &key), json!(i));
    }
    server.kill();
    let bytes = std::fs::read(&log).unwrap();
    let records_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert!(
        bytes.len() > records_end,
        "the log was not zero-filled ahead of its records ({} bytes)",
        bytes.len()
    );
    server.restart();
    check_exact_state(&server, &expected, &[], "after SIGKILL under always").await;
    assert_eq!(std::fs::metadata(&log).unwrap().len(), records_end as u64);
    stop_cleanly(&mut server);
}

#[tokio::test]
async fn a_whole_last_record_without_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let mut lines = std::fs::read_to_string(FIXTURE).unwrap();
    lines.pop(); // the last newline
    std::fs::write(&log, &lines).unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let (mut expected, absent) = fixture_state();
    check_exact_state(&server, &expected, &absent, "no final newline").await;
    server.set(None, "next", json!(1)).await;
    expected.insert(k(None, "next"), json!(1));
    stop_cleanly(&mut server);
    // The next record was not glued to the last one.
    assert_whole_json_lines(&log);
    server.restart();
    check_exact_state(&server, &expected, &absent, "no final newline, restarted").await;
    stop_cleanly(&mut server);
}

// ---- corruption before the tail ----------------------------------------

/// PyKV-style lines: three good ones, `bad`, two good ones. Returns the
/// text and the byte offset of `bad`.
fn damaged_log(bad: &str) -> (String, usize) {
    let good = |i: usize| {
        format!(
            r#"{{"timestamp": 1732550000.{i}, "action": "SET", "key": "k{i}", "value": "v{i}", "namespace": "ns", "ttl": null}}"#
        ) + "\n"
    };
    let mut text = String::new();
    for i in 1..=3 {
        text += &good(i);
    }
    let offset = text.len();
    text += bad;
    text += "\n";
    for i in 5..=6 {
        text += &good(i);
    }
    (text, offset)
}

#[test]
fn corruption_before_the_tail_stops_the_start_naming_file_line_and_offset() {
    for bad in [
        "this is not JSON at all",
        r#"{"timestamp": 1.0, "action": "SET", "ke"#,
        r#"{"timestamp": 1.0, "action": "EXPLODE", "key": "k4", "value": 1, "namespace": null}"#,
        "\u{0}\u{0}\u{0}\u{0}",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("wal.log");
        let (text, offset) = damaged_log(bad);
        std::fs::write(&log, &text).unwrap();
        let (code, stderr) = run_to_exit(dir.path(), &[]);
        assert!(
            code.is_some_and(|c| c != 0),
            "{bad:?}: expected a non-zero exit, got {code:?}; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{bad:?}: stderr:\n{stderr}");
        assert!(
            stderr.contains(&log.display().to_string()),
            "{bad:?}: stderr should name {}:\n{stderr}",
            log.display()
        );
        assert!(
            stderr.contains("line 4"),
            "{bad:?}: stderr should name line 4:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("offset {offset}")),
            "{bad:?}: stderr should name byte offset {offset}:\n{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            text,
            "{bad:?}: a refused start must leave the log alone"
        );
        // The lock file is taken before the log is read (src/dir_lock.rs).
        assert_eq!(files_in(dir.path()), ["pykv.lock", "wal.log"], "{bad:?}");
    }
}

#[tokio::test]
async fn repair_log_keeps_a_copy_and_recovers_every_record_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("wal.log");
    let (text, offset) = damaged_log("garbage {{{");
    std::fs::write(&log, &text).unwrap();

    let mut server = Server::start_in(dir.path(), &["--repair-log"]);
    let mut expected: BTreeMap<Key, Value> = (1..=3)
        .map(|i| (k(Some("ns"), &format!("k{i}")), json!(format!("v{i}"))))
        .collect();
    let absent: Vec<Key> = [4, 5, 6]
        .iter()
        .map(|i| k(Some("ns"), &format!("k{i}")))
        .collect();
    check_exact_state(&server, &expected, &absent, "after repair").await;

    let copies: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("wal.log.damaged-"))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "one copy of the damaged log: {:?}",
        files_in(dir.path())
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&copies[0])).unwrap(),
        text,
        "the copy should be the damaged file as it was"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        offset as u64,
        "the repaired log should end before the damage"
    );

    server.set(Some("ns"), "k7", json!("after repair")).await;
    expected.insert(k(Some("ns"), "k7"), json!("after repair"));
    let stderr = stop_cleanly(&mut server);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("wal.log")),
        "the repair should be logged as a warning:\n{stderr}"
    );

    // The repaired log now starts without --repair-log.
    let mut server = Server::start_in(dir.path(), &[]);
    check_exact_state(&server, &expected, &absent, "repaired, restarted").await;
    stop_cleanly(&mut server);
    assert_eq!(
        files_in(dir.path())
            .iter()
            .filter(|n| n.starts_with("wal.log.damaged-"))
            .count(),
        1
    );
}

// ---- unusable data directories ------------------------------------------

fn assert_refused(data_dir: &Path, context: &str) {
    let (code, stderr) = run_to_exit(data_dir, &[]);
    assert!(
        code.is_some_and(|c| c != 0),
        "{context}: expected a non-zero exit, got {code:?}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{context}: must not panic:\n{stderr}"
    );
    assert!(
        stderr.contains(&data_dir.display().to_string()),
        "{context}: the error should name {}:\n{stderr}",
        data_dir.display()
    );
}

#[test]
fn an_unusable_data_dir_stops_the_start_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "not a directory").unwrap();

    // Its parent is a regular file: it cannot be created.
    assert_refused(&file.join("data"), "a data dir under a regular file");
    // It is itself a regular file.
    assert_refused(&file, "a data dir that is a regular file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");

    // Its wal.log is a directory.
    let dir: PathBuf = tmp.path().join("d");
    std::fs::create_dir_all(dir.join("wal.log")).unwrap();
    assert_refused(&dir, "a wal.log that is a directory");
}

// ---- a compaction cut short --------------------------------------------

#[tokio::test]
async fn a_leftover_rewrite_is_removed_and_the_real_log_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let expected = seed_log(dir.path()).await;
    let log = dir.path().join("wal.log");
    let rewrite = dir.path().join("wal.log.rewrite");
    let before = std::fs::read(&log).unwrap();
    // A half-written snapshot: plausible records, cut in the middle.
    std::fs::write(
        &rewrite,
        concat!(
            r#"{"timestamp":1.000,"action":"SET","key":"from-rewrite","value":1,"namespace":null}"#,
            "\n",
            r#"{"timestamp":1.000,"action":"SET","key":"k0","value":"stale","namespace":"a"}"#,
            "\n",
            r#"{"timestamp":1.000,"action":"SE"#,
        ),
    )
    .unwrap();

    let mut server = Server::start_in(dir.path(), &[]);
    assert!(
        !rewrite.exists(),
        "the leftover wal.log.rewrite is still there: {:?}",
        files_in(dir.path())
    );
    assert_eq!(std::fs::read(&log).unwrap(), before);
    check_exact_state(
        &server,
        &expected,
        &[k(None, "from-rewrite")],
        "leftover rewrite",
    )
    .await;

    // A compaction works afterwards, and its result loads.
    let r = server.post_json("/compact", &json!({})).await;
    assert_eq!(r.body, json!({"status": "compaction_started"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stats().await["last_compaction"].is_null() {
        assert!(
            Instant::now() < deadline,
            "compaction did not finish in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_cleanly(&mut server);
    assert_eq!(files_in(dir.path()), ["pykv.lock", "wal.log"]);
    server.restart();
    check_exact_state(
        &server,
        &expected,
        &[k(None, "from-rewrite")],
        "compacted after a leftover rewrite",
    )
    .await;
    stop_cleanly(&mut server);
}
