//! What a deployment relies on: systemd's readiness protocol
//! (`NOTIFY_SOCKET`), `SIGHUP` reloading tokens and quotas without a
//! restart, and the unit file in `deploy/` passing `systemd-analyze verify`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

/// The messages on `socket` until `last` arrives (or 10 s pass).
fn messages_until(socket: &UnixDatagram, last: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buffer = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let done = message.lines().any(|line| line == last);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no {last} within 10 s; got {seen:?}");
}

fn hangup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn systemd_hears_ready_once_the_server_listens_then_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let env = [("NOTIFY_SOCKET", socket_path.to_str().unwrap())];
    let mut server = Server::start_in_env(&data, &[], &env);
    // The harness has seen the listening line: READY=1 came with it, and
    // the server answers.
    let ready = messages_until(&socket, "READY=1");
    assert_eq!(ready, vec!["READY=1\n"]);
    assert_eq!(server.get("/health").await.status, 200);

    hangup(&server);
    let reload = messages_until(&socket, "READY=1").concat();
    assert!(reload.starts_with("RELOADING=1\n"), "{reload}");
    assert!(reload.contains("MONOTONIC_USEC="), "{reload}");
    assert_eq!(server.get("/health").await.status, 200);

    server.terminate();
    assert!(server.wait_exit().success());
    assert_eq!(messages_until(&socket, "STOPPING=1"), vec!["STOPPING=1\n"]);
}

#[tokio::test]
async fn sighup_reloads_quotas_and_refuses_a_bad_file_keeping_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = dir.path().join("quotas.toml");
    let quotas = write(&quotas, "[namespace.acme]\nmax_keys = 100\n");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let args = ["--quotas", &quotas, "--eviction", "noeviction"];
    let mut server = Server::start_in(&data, &args);
    let set = |key: &str| json!({"key": key, "value": 1});
    for key in ["a", "b"] {
        assert_eq!(
            server.post_json("/set?ns=acme", &set(key)).await.status,
            200
        );
    }

    // Down to 2 keys, at once, with no restart.
    write(Path::new(&quotas), "[namespace.acme]\nmax_keys = 2\n");
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = server.post_json("/set?ns=acme", &set("c")).await;
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        // Not reloaded yet: undo the write and ask again.
        server.delete("/delete/c?ns=acme").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.status, 507, "{refused:?}");
    let quota = server.get("/quota?ns=acme").await;
    assert_eq!(quota.body["max_keys"], 2, "{quota:?}");

    // A bad file is refused; the running quota stays.
    write(
        Path::new(&quotas),
        "[namespace.acme]\nmax_keys = \"many\"\n",
    );
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quota = server.get("/quota?ns=acme").await;
    assert_eq!(quota.body["max_keys"], 2, "{quota:?}");

    // A rate limit: one request a second, at once.
    let limited = "[namespace.acme]\nmax_keys = 2\nrequests_per_second = 1\nburst = 1\n";
    write(Path::new(&quotas), limited);
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.get("/keys?ns=acme").await;
        if r.status == 429 {
            assert!(r.detail().contains("rate limit"), "{r:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rate limit after SIGHUP: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.terminate();
    assert!(server.wait_exit().success());
    let stderr = server.take_stderr();
    assert!(
        stderr.contains("the quotas are refused; keeping the running ones"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sighup_names_the_settings_that_wait_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pykv.toml");
    let config = write(&config, "max-connections = 100\n");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut server = Server::start_in(&data, &["--config", &config]);
    write(Path::new(&config), "max-connections = 200\n");
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.get("/health").await.status, 200);
    server.terminate();
    assert!(server.wait_exit().success());
    let stderr = server.take_stderr();
    assert!(
        stderr.contains("max-connections") && stderr.contains("next start"),
        "{stderr}"
    );
}

/// `deploy/pykv.service`, as shipped but for the binary's path, passes
/// `systemd-analyze verify` (`.ci/run` installs systemd).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string("deploy/pykv.service").unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let dir = tempfile::tempdir().unwrap();
    let local = unit.replace("/usr/local/bin/pykv", env!("CARGO_BIN_EXE_pykv"));
    let path = dir.path().join("pykv.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("pykv.service"), "{stderr}");
}

/// `deploy/Dockerfile`'s image holds the static binary alone and runs it as
/// a user, with a data volume; its health check is a command that works
/// against a real server. (The image itself cannot be built here: no
/// registry. `deploy/smoke-static.sh`, run by `.ci/run`, runs the static
/// binary as the image would.)
#[tokio::test]
async fn the_dockerfile_runs_the_static_binary_alone_with_a_working_health_check() {
    let dockerfile = std::fs::read_to_string("deploy/Dockerfile").unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(last_stage.starts_with("scratch"), "{last_stage}");
    for line in [
        "USER 65532:65532",
        "VOLUME [\"/data\"]",
        "ENTRYPOINT [\"/pykv\", \"serve\"]",
    ] {
        assert!(last_stage.contains(line), "no {line}");
    }
    assert!(dockerfile.contains("+crt-static") && dockerfile.contains("--profile dist"));

    let health = last_stage
        .split("CMD [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap();
    let argv: Vec<String> = serde_json::from_str(&format!("[{health}]")).unwrap();
    assert_eq!(argv[0], "/pykv");
    let server = Server::start();
    let args: Vec<String> = (argv[1..].iter())
        .map(|arg| arg.replace("http://127.0.0.1:8000", server.base_url()))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    drop(server);
    let out = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "healthy without a server: {out:?}");
}
