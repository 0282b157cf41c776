//! One data directory, one server: a second `pykv serve` (or a repair run)
//! on a directory in use stops before it reads or writes anything there,
//! naming the directory and the PID holding it; a server killed with
//! SIGKILL leaves nothing that blocks its restart; and `pykv token`
//! commands, which edit a file in the same directory, are safe while the
//! server runs, even several at once.
//!
//! Every test runs real processes on one directory.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, pykv_token, run_to_exit};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pykv");
const LOCK_FILE: &str = "pykv.lock";

/// Sets `count` keys `prefix0..` in namespace `t`, each acknowledged.
async fn set_keys(server: &Server, prefix: &str, count: usize) {
    for i in 0..count {
        server
            .set(
                Some("t"),
                &format!("{prefix}{i}"),
                json!(format!("value {i}")),
            )
            .await;
    }
}

/// Checks that every key `prefix0..prefix{count}` holds its value.
async fn assert_keys(server: &Server, prefix: &str, count: usize, context: &str) {
    for i in 0..count {
        let key = format!("{prefix}{i}");
        assert_eq!(
            server.value(Some("t"), &key).await,
            Some(json!(format!("value {i}"))),
            "{context}: t/{key}"
        );
    }
}

/// A second start on the directory must exit non-zero, name the directory
/// and the holder's PID, and leave the log byte for byte as it was.
fn assert_second_start_refused(dir: &Path, holder: u32, args: &[&str]) {
    let log = dir.join("wal.log");
    let before = std::fs::read(&log).unwrap();
    let (code, stderr) = run_to_exit(dir, args);
    assert!(
        code.is_some_and(|c| c != 0),
        "{args:?}: a second server on a directory in use must exit non-zero, got {code:?}; \
         stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: stderr:\n{stderr}");
    assert!(
        stderr.contains(&dir.display().to_string()),
        "{args:?}: the error should name the directory {}:\n{stderr}",
        dir.display()
    );
    assert!(
        stderr.contains(&format!("PID {holder}")),
        "{args:?}: the error should name the holder, PID {holder}:\n{stderr}"
    );
    assert!(
        std::fs::read(&log).unwrap() == before,
        "{args:?}: the refused start changed wal.log"
    );
}

#[tokio::test]
async fn a_second_server_on_a_directory_in_use_stops_before_touching_the_log() {
    let dir = tempfile::tempdir().unwrap();
    // `always` keeps a zero-filled tail past the last record, which a
    // second server's replay used to cut while the first wrote into it.
    let mut first = Server::start_in(dir.path(), &["--fsync", "always"]);
    set_keys(&first, "before", 100).await;

    let holder = first.pid();
    assert_second_start_refused(dir.path(), holder, &["--fsync", "always"]);
    assert_second_start_refused(dir.path(), holder, &[]);
    assert_second_start_refused(dir.path(), holder, &["--repair-log"]);
    assert!(first.is_running(), "the first server must keep running");

    // The first server goes on writing into its tail, then dies without a
    // clean shutdown: every acknowledged write is back after a restart.
    set_keys(&first, "after", 100).await;
    first.kill();
    let restarted = Server::start_in(dir.path(), &["--fsync", "always"]);
    assert_keys(&restarted, "before", 100, "restarted").await;
    assert_keys(&restarted, "after", 100, "restarted").await;
    assert_eq!(restarted.total_keys().await, 200);
}

#[tokio::test]
async fn a_server_killed_with_sigkill_restarts_whatever_its_lock_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join(LOCK_FILE);
    // A lock file naming a live process (this test) is not a lock: only a
    // process holding the file is.
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        format!("{}\n", server.pid())
    );
    set_keys(&server, "k", 10).await;

    server.kill();
    let dead = server.pid();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        format!("{dead}\n"),
        "the dead server's lock file stays behind"
    );
    server.restart();
    assert_keys(&server, "k", 10, "after SIGKILL").await;
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        format!("{}\n", server.pid())
    );
}

// ---- token commands beside a running server ------------------------------

/// Runs `pykv token ARGS` once for each argument list, all at once; every
/// run must succeed. Returns their standard outputs, in order.
fn all_at_once(dir: &Path, runs: &[Vec<String>]) -> Vec<String> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            Command::new(BIN)
                .arg("token")
                .args(args)
                .arg("--data-dir")
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pykv token")
        })
        .collect();
    children
        .into_iter()
        .zip(runs)
        .map(|(child, args)| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "pykv token {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .collect()
}

/// `pykv token list --json`.
fn listing(dir: &Path) -> Value {
    let out = pykv_token(dir, &["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `POST /set?ns=NS` with `token`, retried every 50 ms for up to 1.5 s
/// until it is answered `want`; returns the last status.
async fn set_status_with(server: &Server, ns: &str, token: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_millis(1500);
    loop {
        let request = server
            .client
            .post(server.url(&format!("/set?ns={ns}")))
            .bearer_auth(token)
            .json(&json!({"key": "k", "value": ns}));
        let status = server.send(request).await.status;
        if status == want || Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn token_commands_run_at_once_beside_a_server_lose_nothing() {
    const TENANTS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);

    let creations: Vec<Vec<String>> = (0..TENANTS)
        .map(|i| {
            ["create", "--ns", &format!("t{i}"), "--access", "write"]
                .map(String::from)
                .to_vec()
        })
        .collect();
    let tokens = all_at_once(dir.path(), &creations);
    let list = listing(dir.path());
    assert_eq!(
        list["tokens"].as_array().unwrap().len(),
        TENANTS,
        "every token created at once is kept: {list}"
    );
    for (i, token) in tokens.iter().enumerate() {
        let ns = format!("t{i}");
        assert_eq!(
            set_status_with(&server, &ns, token, 200).await,
            200,
            "token {i} was not accepted within 1.5 s"
        );
    }

    // Revoke all but the first, at once: only the first still works.
    let ids: Vec<String> = list["tokens"].as_array().unwrap()[1..]
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let revocations: Vec<Vec<String>> = ids
        .iter()
        .map(|id| vec!["revoke".to_owned(), id.clone()])
        .collect();
    all_at_once(dir.path(), &revocations);
    assert_eq!(listing(dir.path())["tokens"].as_array().unwrap().len(), 1);
    let kept = listing(dir.path())["tokens"][0]["namespaces"][0]
        .as_str()
        .unwrap()
        .to_owned();
    for (i, token) in tokens.iter().enumerate() {
        let ns = format!("t{i}");
        let want = if ns == kept { 200 } else { 401 };
        assert_eq!(
            set_status_with(&server, &ns, token, want).await,
            want,
            "token {i} after the revocations"
        );
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left behind: {names:?}");

    server.terminate();
    server.wait_exit();
    let stderr = server.take_stderr();
    assert!(
        !stderr.contains("cannot reload the token file"),
        "the server read a torn token file:\n{stderr}"
    );
}
