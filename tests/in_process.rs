//! Servers started in-process, from a configuration value, with
//! `pykv::server::Server::start`: the bound address, requests over real
//! HTTP, and a clean shutdown that leaves every acknowledged write on disk.
//! (The tests where the process itself matters, kill -9, signals and exit
//! codes, spawn the binary: see `tests/durability.rs`.)

use pykv::config::ServeArgs;
use pykv::server::Server;
use serde_json::{Value, json};

fn config(dir: &std::path::Path, extra: &[&str]) -> ServeArgs {
    let mut flags = vec!["--port", "0", "--data-dir", dir.to_str().unwrap()];
    flags.extend_from_slice(extra);
    ServeArgs::from_flags(flags).unwrap()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_in_one_process_keep_their_own_data_across_a_clean_restart() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // --fsync no: only the shutdown's flush and sync put the writes on disk.
    let a = Server::start(&config(dir_a.path(), &["--fsync", "no"]))
        .await
        .unwrap();
    let b = Server::start(&config(dir_b.path(), &[])).await.unwrap();
    assert_ne!(a.local_addr(), b.local_addr());
    let url = |server: &Server, path: &str| format!("http://{}{path}", server.local_addr());

    let post = reqwest::Method::POST;
    let set = json!({"key": "k", "value": {"from": "a"}, "namespace": "app1"});
    let (status, _) = call(post.clone(), url(&a, "/set"), Some(set)).await;
    assert_eq!(status, 200);
    let (status, answer) = call(reqwest::Method::GET, url(&b, "/get/k?ns=app1"), None).await;
    assert_eq!((status, answer), (404, json!({"detail": "Key not found"})));

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let a = Server::start(&config(dir_a.path(), &[])).await.unwrap();
    let (status, answer) = call(reqwest::Method::GET, url(&a, "/get/k?ns=app1"), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"], json!({"from": "a"}));
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_refused_before_anything_starts() {
    assert!(ServeArgs::from_flags(["--request-timeout", "0"]).is_err());
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(&config(dir.path(), &[])).await.unwrap();
    // The data directory is held by the first server.
    let error = Server::start(&config(dir.path(), &[])).await.err().unwrap();
    assert!(
        format!("{error:#}").contains(&dir.path().display().to_string()),
        "{error:#}"
    );
    first.shutdown().await.unwrap();
}
