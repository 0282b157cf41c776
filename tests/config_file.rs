//! `pykv serve --config FILE`, `pykv config check` and `pykv config print`:
//! the settings of a TOML file under the flags' names, beneath the flags and
//! the environment, checked key by key.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn pykv(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        common::strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// The file's settings and quota sections reach the server; a flag and an
/// environment variable win over the file.
#[tokio::test]
async fn a_server_runs_with_the_file_beneath_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "pykv.toml",
        r#"
port = 1          # the harness's --port 0 wins
max-body-bytes = 200
max-key-bytes = 8  # PYKV_MAX_KEY_BYTES wins
fsync = "always"
eviction = "noeviction"
workers = 1

[quotas.namespace.acme]
max_keys = 1
"#,
    );
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let env = [("PYKV_MAX_KEY_BYTES", "64")];
    let server = Server::start_in_env(&data, &["--config", &config], &env);

    // max-body-bytes = 200, from the file.
    let big = json!({"key": "k", "value": "x".repeat(300)});
    assert_eq!(server.post_json("/set", &big).await.status, 413);
    // max-key-bytes = 64, from the environment over the file's 8.
    let key = "k".repeat(40);
    assert_eq!(server.set(None, &key, json!(1)).await.status, 200);
    // The [quotas] table: acme holds one key.
    assert_eq!(server.set(Some("acme"), "a", json!(1)).await.status, 200);
    let second = (server)
        .post_json("/set?ns=acme", &json!({"key": "b", "value": 1}))
        .await;
    assert_eq!(second.status, 507, "{second:?}");
    // workers = 1: one thread answers requests.
    assert_eq!(threads_named(server.pid(), "tokio-rt-worker"), 1);
}

/// How many threads of process `pid` are named `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn config_check_names_the_file_the_key_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        "port = 8001\ncors-origin = [\"https://a.example\"]\n[quotas.default]\nmax_keys = 10\n",
    );
    let (code, stdout, stderr) = pykv(&["config", "check", &good], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");

    let cases = [
        ("unknown.toml", "prot = 1\n", "key `prot`: unknown", "port"),
        (
            "value.toml",
            "fsync = \"sometimes\"\n",
            "key `fsync`",
            "always, everysec, no",
        ),
        (
            "range.toml",
            "max-connections = 0\n",
            "key `max-connections`",
            "1..=",
        ),
        ("workers.toml", "workers = 0\n", "key `workers`", "1..=1024"),
        (
            "type.toml",
            "repair-log = 1\n",
            "key `repair-log`",
            "true or false",
        ),
        ("list.toml", "port = [1, 2]\n", "key `port`", "not a list"),
        (
            "quota.toml",
            "[quotas.namespace.\"bad name\"]\nmax_keys = 1\n",
            "key `quotas`",
            "namespace",
        ),
        ("syntax.toml", "port = \n", "not valid TOML", "line 1"),
    ];
    for (name, text, what, allowed) in cases {
        let path = write(dir.path(), name, text);
        let (code, _, stderr) = pykv(&["config", "check", &path], &[]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        for part in [path.as_str(), what, allowed] {
            assert!(stderr.contains(part), "{name}: {part:?} not in {stderr}");
        }
    }
    // A bad file stops `serve` too, before anything starts.
    let bad = write(dir.path(), "bad.toml", "prot = 1\n");
    let (code, stderr) = common::run_to_exit(dir.path(), &["--config", &bad]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("key `prot`: unknown"), "{stderr}");
}

#[test]
fn config_print_shows_each_setting_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "pykv.toml",
        "port = 9000\nfsync = \"always\"\nmax-connections = 10\n[quotas.default]\nmax_keys = 10\n",
    );
    let env = [("PYKV_FSYNC", "no")];
    let args = [
        "config",
        "print",
        "--config",
        &config,
        "--max-connections",
        "20",
        "--backend",
        "memory",
    ];
    let (code, stdout, stderr) = pykv(&args, &env);
    assert_eq!(code, Some(0), "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("port"), "port = 9000 # file");
    assert_eq!(line("fsync"), "fsync = \"no\" # environment");
    assert_eq!(line("max-connections"), "max-connections = 20 # flag");
    assert_eq!(line("request-timeout"), "request-timeout = 30 # default");
    assert!(
        stdout.contains("[quotas.default]\nmax_keys = 10"),
        "{stdout}"
    );
    // What it prints is itself a valid configuration file.
    let printed = write(dir.path(), "printed.toml", &stdout);
    let (code, _, stderr) = pykv(&["config", "check", &printed], &[]);
    assert_eq!(code, Some(0), "{stderr}");
}
