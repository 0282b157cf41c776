//! A full disk while running: writes are answered 503 and not applied,
//! reads keep working, and writes resume once the disk has room.
//!
//! The data directory is a small tmpfs, filled up for real, so `write`
//! fails with ENOSPC exactly as on a full disk. Mounting needs root (CI runs
//! as root); elsewhere the test says so and returns.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::json;

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A set in namespace `t` whose answer may be an error.
async fn try_set(server: &Server, key: &str, value: &str) -> common::Resp {
    let body = json!({"key": key, "value": value});
    server.post_json("/set?ns=t", &body).await
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_and_recovers() {
    let Some(fs) = Tmpfs::mount("1m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data = fs.path().join("data");
    let server = Server::start_in(&data, &["--fsync", "always"]);
    assert_eq!(
        server.set(Some("t"), "kept", json!("before")).await.status,
        200
    );

    // Take nearly all the room with a file of our own, then write until the
    // log cannot grow.
    let filler = fs.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1024 * 1024]);
    let big = "x".repeat(16 * 1024);
    let mut refused = None;
    for i in 0..200 {
        let r = try_set(&server, &format!("big{i}"), &big).await;
        if r.status != 200 {
            refused = Some((i, r));
            break;
        }
    }
    let (i, r) = refused.expect("the disk never filled up");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.detail().contains("log"), "{}", r.detail());
    let keys_when_full = server.total_keys().await;

    // The refused write left no trace, and nothing else changed.
    let missing = server.get(&format!("/get/big{i}?ns=t")).await;
    assert_eq!(missing.status, 404, "a refused write must not be applied");
    assert_eq!(server.value(Some("t"), "kept").await, Some(json!("before")));
    let again = try_set(&server, "kept", "after").await;
    assert_eq!(again.status, 503, "{again:?}");
    assert_eq!(server.value(Some("t"), "kept").await, Some(json!("before")));
    let delete = server.delete("/delete/kept?ns=t").await;
    assert_eq!(delete.status, 503, "{delete:?}");
    assert_eq!(server.value(Some("t"), "kept").await, Some(json!("before")));
    assert_eq!(server.total_keys().await, keys_when_full);

    // Room again: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = false;
    for _ in 0..100 {
        if try_set(&server, "kept", "after").await.status == 200 {
            resumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(resumed, "writes did not resume once the disk had room");
    assert_eq!(server.value(Some("t"), "kept").await, Some(json!("after")));

    // And what was acknowledged is what a restart finds.
    let mut server = server;
    server.terminate();
    assert!(server.wait_exit().success());
    let server = Server::start_in(&data, &[]);
    assert_eq!(server.value(Some("t"), "kept").await, Some(json!("after")));
    assert_eq!(server.total_keys().await, keys_when_full);
    drop(server);
}
