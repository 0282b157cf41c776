//! The command-line client (`pykv get|set|del|ns|stats|health|compact|shell`)
//! run as a subprocess against a real server: output, `--json`, exit codes
//! 0/1/2/3, odd keys, and the shell driven through a pipe.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use common::Server;
use pykv::client::Client;
use serde_json::{Value, json};

/// What a `pykv` run printed, and its exit code.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts exit 0 and returns stdout without its final newline.
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        assert_eq!(self.stderr, "", "{self:?}");
        self.stdout.strip_suffix('\n').unwrap_or(&self.stdout)
    }

    /// Asserts `code`, nothing on stdout, and one `error: ` line on stderr.
    fn failed(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert!(self.stderr.starts_with("error: "), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        &self.stderr
    }
}

/// `pykv ARGS` with `--url URL` right after the subcommand (so `ns list`
/// becomes `ns --url URL list`), and without `PYKV_URL` from outside.
fn pykv(url: &str, args: &[&str]) -> Run {
    let mut full = vec![args[0], "--url", url];
    full.extend_from_slice(&args[1..]);
    run(&full, None, None)
}

fn run(args: &[&str], env_url: Option<&str>, stdin: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pykv"));
    command
        .args(args)
        .env_remove("PYKV_URL")
        .env_remove("HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = env_url {
        command.env("PYKV_URL", url);
    }
    let mut child = command.spawn().expect("spawn pykv");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    finish(child.wait_with_output().expect("wait for pykv"))
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// `pykv shell ARGS` (after `--url URL`) reading `input` from a pipe.
fn shell(url: &str, args: &[&str], input: &str) -> Run {
    let mut full = vec!["shell", "--url", url];
    full.extend_from_slice(args);
    run(&full, None, Some(input))
}

/// A URL where nothing listens: a port just bound and released.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn client(server: &Server) -> Client {
    Client::new(server.base_url()).expect("client")
}

#[test]
fn set_get_del_round_trip() {
    let server = Server::start();
    let url = server.base_url();
    assert_eq!(pykv(url, &["set", "user:1", "alice"]).ok(), "OK");
    assert_eq!(pykv(url, &["get", "user:1"]).ok(), "alice");
    let answer = pykv(url, &["get", "user:1", "--json"]);
    assert_eq!(
        answer.json(),
        json!({"key": "user:1", "value": "alice", "namespace": null})
    );
    assert_eq!(pykv(url, &["del", "user:1"]).ok(), "deleted");
    let missing = pykv(url, &["get", "user:1"]);
    assert!(missing.failed(1).contains("key not found"), "{missing:?}");
    pykv(url, &["del", "user:1"]).failed(1);
}

#[test]
fn namespaces_keep_keys_apart() {
    let server = Server::start();
    let url = server.base_url();
    pykv(url, &["set", "user:1", "default"]).ok();
    pykv(url, &["set", "user:1", "one", "--ns", "app1"]).ok();
    pykv(url, &["set", "--ns", "app2", "user:1", "two"]).ok();
    assert_eq!(pykv(url, &["get", "user:1"]).ok(), "default");
    assert_eq!(pykv(url, &["get", "user:1", "--ns", "app1"]).ok(), "one");
    let answer = pykv(url, &["get", "user:1", "--ns", "app2", "--json"]).json();
    assert_eq!(
        answer,
        json!({"key": "user:1", "value": "two", "namespace": "app2"})
    );
    pykv(url, &["del", "user:1", "--ns", "app1"]).ok();
    pykv(url, &["get", "user:1", "--ns", "app1"]).failed(1);
    assert_eq!(pykv(url, &["get", "user:1", "--ns", "app2"]).ok(), "two");
}

#[test]
fn set_answers_in_json_and_takes_a_ttl() {
    let server = Server::start();
    let url = server.base_url();
    let answer = pykv(
        url,
        &["set", "s", "v", "--ns", "web", "--ttl", "3600", "--json"],
    );
    assert_eq!(
        answer.json(),
        json!({"status": "success", "key": "s", "namespace": "web"})
    );
    assert_eq!(
        client(&server).value(Some("web"), "s").unwrap(),
        Some(json!("v"))
    );
    // The server refuses a TTL of 0: a usage error, with its detail.
    let refused = pykv(url, &["set", "s", "v", "--ttl", "0"]);
    assert!(refused.failed(2).contains("ttl"), "{refused:?}");
    assert_eq!(client(&server).value(None, "s").unwrap(), None);
}

#[test]
fn values_are_strings_unless_json_value() {
    let server = Server::start();
    let url = server.base_url();
    let kv = client(&server);
    pykv(url, &["set", "n", "42"]).ok();
    assert_eq!(kv.value(None, "n").unwrap(), Some(json!("42")));
    pykv(url, &["set", "n", "42", "--json-value"]).ok();
    assert_eq!(kv.value(None, "n").unwrap(), Some(json!(42)));
    pykv(url, &["set", "neg", "-1.5", "--json-value"]).ok();
    assert_eq!(kv.value(None, "neg").unwrap(), Some(json!(-1.5)));
    pykv(
        url,
        &[
            "set",
            "o",
            r#"{"role": "admin", "ids": [1, 2]}"#,
            "--json-value",
        ],
    )
    .ok();
    assert_eq!(
        pykv(url, &["get", "o"]).ok(),
        r#"{"ids":[1,2],"role":"admin"}"#
    );
    assert_eq!(
        pykv(url, &["get", "o", "--json"]).json()["value"]["ids"],
        json!([1, 2])
    );
    let bad = pykv(url, &["set", "o", "{oops", "--json-value"]);
    assert!(bad.failed(2).contains("not valid JSON"), "{bad:?}");
    assert_eq!(kv.value(None, "o").unwrap().unwrap()["role"], "admin");
}

#[test]
fn odd_keys_round_trip() {
    let server = Server::start();
    let url = server.base_url();
    let kv = client(&server);
    let keys = [
        "a/b/c",
        "/leading",
        "with space",
        "q?x=1&y=2",
        "hash#tag",
        "100%",
        "%2F",
        "plus+sign",
        "-dash",
        "...",
        "ünïcödé/日本語 🎉",
        r"back\slash",
    ];
    for (i, key) in keys.iter().enumerate() {
        let value = format!("value {i}");
        pykv(url, &["set", "--ns", "odd", "--", key, &value]).ok();
        assert_eq!(
            kv.value(Some("odd"), key).unwrap(),
            Some(json!(value)),
            "{key:?}"
        );
        assert_eq!(
            pykv(url, &["get", "--ns", "odd", "--", key]).ok(),
            value,
            "{key:?}"
        );
        let answer = pykv(url, &["get", "--ns", "odd", "--json", "--", key]).json();
        assert_eq!(answer["key"], json!(key));
    }
    let size = pykv(url, &["ns", "size", "odd"]);
    assert_eq!(size.ok(), keys.len().to_string());
    for key in keys {
        pykv(url, &["del", "--ns", "odd", "--", key]).ok();
        assert_eq!(kv.value(Some("odd"), key).unwrap(), None, "{key:?}");
    }
}

#[test]
fn keys_that_cannot_be_in_a_url_path_are_usage_errors() {
    let server = Server::start();
    for key in [".", ".."] {
        let r = pykv(server.base_url(), &["get", "--", key]);
        assert!(r.failed(2).contains("URL"), "{r:?}");
        pykv(server.base_url(), &["del", "--", key]).failed(2);
    }
}

#[test]
fn ns_list_is_a_table_or_the_servers_json() {
    let server = Server::start();
    let url = server.base_url();
    assert_eq!(pykv(url, &["ns", "list"]).ok(), "(no namespaces)");
    pykv(url, &["set", "k1", "v", "--ns", "alpha"]).ok();
    pykv(url, &["set", "k2", "v", "--ns", "alpha"]).ok();
    pykv(url, &["set", "k1", "v", "--ns", "b"]).ok();
    pykv(url, &["get", "k1", "--ns", "alpha"]).ok();
    pykv(url, &["get", "nope", "--ns", "alpha"]).failed(1);
    let table = pykv(url, &["ns", "list"]);
    let expected = "\
NAMESPACE  KEYS  HITS  MISSES
alpha         2     1       1
b             1     0       0";
    assert_eq!(table.ok(), expected);
    let answer = pykv(url, &["ns", "list", "--json"]).json();
    assert_eq!(answer, json!({"namespaces": ["alpha", "b"], "count": 2}));
}

#[test]
fn ns_size_and_clear() {
    let server = Server::start();
    let url = server.base_url();
    for key in ["a", "b", "c"] {
        pykv(url, &["set", key, "v", "--ns", "tenant_acme"]).ok();
    }
    pykv(url, &["set", "a", "v"]).ok();
    assert_eq!(pykv(url, &["ns", "size", "tenant_acme"]).ok(), "3");
    let answer = pykv(url, &["ns", "size", "tenant_acme", "--json"]).json();
    assert_eq!(answer, json!({"namespace": "tenant_acme", "total_keys": 3}));
    // A namespace without keys is not an error: it has 0 of them.
    assert_eq!(pykv(url, &["ns", "size", "never_used"]).ok(), "0");
    let bad = pykv(url, &["ns", "size", "no spaces!"]);
    assert!(bad.failed(2).contains("namespace"), "{bad:?}");

    assert_eq!(
        pykv(url, &["ns", "clear", "tenant_acme"]).ok(),
        "cleared 3 keys from tenant_acme"
    );
    assert_eq!(pykv(url, &["ns", "size", "tenant_acme"]).ok(), "0");
    assert_eq!(
        pykv(url, &["get", "a"]).ok(),
        "v",
        "the default namespace is untouched"
    );
    let again = pykv(url, &["ns", "clear", "tenant_acme", "--json"]).json();
    assert_eq!(
        again,
        json!({"status": "cleared", "namespace": "tenant_acme", "keys_deleted": 0})
    );
}

/// The whitespace-separated words of the line of `text` starting with
/// `first`.
fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&first))
        .unwrap_or_else(|| panic!("no line starting with {first:?} in:\n{text}"))
}

#[test]
fn stats_are_tables_or_the_servers_json() {
    let server = Server::start();
    let url = server.base_url();
    pykv(url, &["set", "k", "v"]).ok();
    pykv(url, &["set", "k", "v", "--ns", "app1"]).ok();
    pykv(url, &["set", "k2", "v", "--ns", "app1"]).ok();
    pykv(url, &["get", "k", "--ns", "app1"]).ok();
    pykv(url, &["get", "zz"]).failed(1);

    let text = pykv(url, &["stats"]);
    let text = text.ok();
    assert_eq!(row(text, "total_keys"), ["total_keys", "3"]);
    assert_eq!(row(text, "cache_hits"), ["cache_hits", "1"]);
    assert_eq!(row(text, "cache_misses"), ["cache_misses", "1"]);
    assert_eq!(row(text, "last_compaction")[1], "never");
    assert_eq!(
        row(text, "NAMESPACE"),
        ["NAMESPACE", "KEYS", "HITS", "MISSES"]
    );
    assert_eq!(row(text, "(default)"), ["(default)", "1", "0", "1"]);
    assert_eq!(row(text, "app1"), ["app1", "2", "1", "0"]);

    let scoped = pykv(url, &["stats", "--ns", "app1"]);
    let expected = "\
namespace     app1
total_keys    2
cache_hits    1
cache_misses  0";
    assert_eq!(scoped.ok(), expected);

    let answer = pykv(url, &["stats", "--json"]).json();
    assert_eq!(answer["total_keys"], 3);
    assert_eq!(answer["namespaces"]["app1"]["total_keys"], 2);
    let answer = pykv(url, &["stats", "--ns", "app1", "--json"]).json();
    assert_eq!(answer["namespace"], "app1");
    assert_eq!(answer["namespace_stats"]["cache_hits"], 1);
}

#[test]
fn health_and_compact() {
    let server = Server::start();
    let url = server.base_url();
    pykv(url, &["set", "k", "v", "--ns", "app1"]).ok();
    pykv(url, &["set", "k2", "v", "--ns", "app1"]).ok();
    pykv(url, &["set", "k", "v"]).ok();
    assert_eq!(pykv(url, &["health"]).ok(), "healthy: 3 keys");
    assert_eq!(
        pykv(url, &["health", "--ns", "app1"]).ok(),
        "healthy: 2 keys in app1"
    );
    let answer = pykv(url, &["health", "--json"]).json();
    assert_eq!(answer, json!({"status": "healthy", "store_size": 3}));

    let started = pykv(url, &["compact"]);
    let text = started.ok();
    assert!(
        ["compaction started", "compaction already running"].contains(&text),
        "{text}"
    );
    let answer = pykv(url, &["compact", "--json"]).json();
    let status = answer["status"].as_str().unwrap();
    assert!(
        ["compaction_started", "compaction_already_running"].contains(&status),
        "{answer}"
    );
    assert_eq!(
        client(&server).value(Some("app1"), "k2").unwrap(),
        Some(json!("v"))
    );
}

#[test]
fn the_url_comes_from_pykv_url() {
    let server = Server::start();
    let r = run(&["set", "k", "from env"], Some(server.base_url()), None);
    assert_eq!(r.ok(), "OK");
    let r = run(&["get", "k"], Some(server.base_url()), None);
    assert_eq!(r.ok(), "from env");
    // --url wins over PYKV_URL.
    let r = run(
        &["get", "k", "--url", server.base_url()],
        Some(&dead_url()),
        None,
    );
    assert_eq!(r.ok(), "from env");
}

#[test]
fn no_server_is_exit_3_with_a_hint() {
    let url = dead_url();
    for args in [
        &["get", "k"][..],
        &["set", "k", "v"],
        &["del", "k"],
        &["ns", "list"],
        &["ns", "size", "a"],
        &["ns", "clear", "a"],
        &["stats"],
        &["health"],
        &["compact"],
    ] {
        let r = pykv(&url, args);
        let message = r.failed(3);
        assert!(
            message.starts_with(&format!("error: cannot connect to {url}: ")),
            "{r:?}"
        );
        assert!(message.contains("connection refused"), "{r:?}");
        assert!(message.contains("PYKV_URL"), "{r:?}");
    }
    // The same through PYKV_URL.
    run(&["health"], Some(&url), None).failed(3);
}

#[test]
fn usage_errors_are_exit_2() {
    let server = Server::start();
    let url = server.base_url();
    for args in [
        &["get"][..],
        &["set", "k"],
        &["set", "k", "v", "--ttl", "soon"],
        &["ns"],
        &["ns", "size"],
        &["frobnicate"],
    ] {
        let r = pykv(url, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("error"), "{args:?}: {r:?}");
    }
    for bad_url in ["not a url", "ftp://x", "file:///tmp"] {
        let r = pykv(bad_url, &["health"]);
        assert!(r.failed(2).contains("invalid server URL"), "{r:?}");
    }
    let r = pykv(url, &["set", "k", "v", "--ns", "bad/name"]);
    assert!(r.failed(2).contains("namespace"), "{r:?}");
    assert_eq!(client(&server).stats(None).unwrap().total_keys, 0);
}

#[test]
fn shell_through_a_pipe() {
    let server = Server::start();
    let input = r#"set greeting "hello world"
get greeting
use app1
set user:1 "alice smith" 3600
set "a b/c?d#e" 'it''s'
get user:1
get "a b/c?d#e"
get missing
size
ns
# a comment, then a blank line

use
get user:1
get greeting
use app1
clear app1
n
size
clear app1
y
size
quit
set after quit
"#;
    let r = shell(server.base_url(), &[], input);
    let expected = "\
OK
hello world
OK
OK
alice smith
its
(nil)
2
NAMESPACE  KEYS  HITS  MISSES
app1          2     2       1
(nil)
hello world
(not cleared)
2
cleared 2 keys from app1
0
";
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, expected, "")
    );
    let kv = client(&server);
    assert_eq!(
        kv.value(None, "greeting").unwrap(),
        Some(json!("hello world"))
    );
    assert_eq!(
        kv.value(None, "after").unwrap(),
        None,
        "nothing runs after quit"
    );
}

#[test]
fn shell_reports_errors_and_goes_on() {
    let server = Server::start();
    let input = "bogus\nset onlykey\nset k \"unterminated\nuse no/slash\nset k v\nget k\n";
    let r = shell(server.base_url(), &[], input);
    assert_eq!(r.stdout, "OK\nv\n", "{r:?}");
    let errors: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(errors.len(), 4, "{r:?}");
    assert!(errors.iter().all(|e| e.starts_with("error: ")), "{r:?}");
    assert!(errors[0].contains("unknown command `bogus`"), "{r:?}");
    assert!(errors[1].contains("usage: set KEY VALUE [TTL]"), "{r:?}");
    assert!(errors[2].contains("unterminated"), "{r:?}");
    assert!(errors[3].contains("namespace"), "{r:?}");
    assert_eq!(r.code, 2, "the last failure was a usage error");

    let down = shell(&dead_url(), &[], "get k\n");
    assert_eq!(down.code, 3, "{down:?}");
    assert!(down.stderr.contains("cannot connect"), "{down:?}");
}

#[test]
fn shell_starts_in_a_namespace_and_speaks_json() {
    let server = Server::start();
    let r = shell(
        server.base_url(),
        &["--ns", "web", "--json"],
        "set k v 60\nget k\n",
    );
    let lines: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"status": "success", "key": "k", "namespace": "web"}),
            json!({"key": "k", "value": "v", "namespace": "web"}),
        ],
        "{r:?}"
    );
    assert_eq!(r.code, 0, "{r:?}");
}

/// `--version` names the commit; completions and the manual page cover
/// every subcommand, and a reader closing the pipe early is no error.
#[test]
fn version_completions_and_manual_page() {
    let version = run(&["--version"], None, None);
    let version = version.ok();
    assert!(version.starts_with("pykv 0."), "{version}");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if let Some(commit) = commit {
        // The binary is rebuilt when HEAD moves, so they agree.
        assert!(
            version.ends_with(&format!("({commit})")),
            "{version} vs {commit}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell], None, None);
        let script = script.ok();
        for word in ["serve", "token", "config", "max-body-bytes"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let bad = run(&["completions", "tcsh"], None, None);
    assert_eq!(bad.code, 2, "{bad:?}");
    let page = run(&["man"], None, None);
    let page = page.ok();
    assert!(page.starts_with(".ie"), "not roff");
    assert!(
        page.contains(".TH pykv 1") && page.contains("serve"),
        "{page}"
    );

    // `pykv man | head -1`: stdout closed early.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .arg("man")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
