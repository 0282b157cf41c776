//! Servers started in-process, from a configuration value, with
//! `pykv::server::Server::start`: the bound address, requests over real
//! HTTP, and a clean shutdown that leaves every acknowledged write on disk.
//! (The tests where the process itself matters, kill -9, signals and exit
//! codes, spawn the binary: see `tests/durability.rs`.)

use std::time::Duration;

use pykv::config::ServeArgs;
use pykv::server::Server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &std::path::Path, extra: &[&str]) -> ServeArgs {
    let mut flags = vec!["--port", "0", "--data-dir", dir.to_str().unwrap()];
    flags.extend_from_slice(extra);
    ServeArgs::from_flags(flags).unwrap()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    pykv::tls::install_default_provider();
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

/// Reads `stream` until the server closes it, within `bound`: what it
/// answered, and whether it closed it in time.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (String, bool) {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(bound, stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        closed.is_ok(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_finishes_the_request_in_flight_and_closes_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&config(dir.path(), &[])).await.unwrap();
    let addr = server.local_addr();

    // An idle keep-alive connection, after one request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // A SET whose body is half sent when the shutdown begins.
    let body = br#"{"key": "late", "value": "kept", "namespace": "app1"}"#;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /set HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    busy.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let shutdown = tokio::spawn(server.shutdown());
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(2)).await;
    assert!(closed, "the idle connection was not closed at shutdown");
    assert!(
        !shutdown.is_finished(),
        "shut down with a request in flight"
    );
    busy.write_all(&body[10..]).await.unwrap();
    let (answer, closed) = read_until_closed(&mut busy, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"success""#), "{answer}");
    assert!(
        closed,
        "the drained connection was not closed after its answer"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("the shutdown did not finish once the request was answered")
        .unwrap()
        .unwrap();

    let server = Server::start(&config(dir.path(), &[])).await.unwrap();
    let url = format!("http://{}/get/late?ns=app1", server.local_addr());
    let (status, answer) = call(reqwest::Method::GET, url, None).await;
    assert_eq!(
        (status, &answer["value"]),
        (200, &json!("kept")),
        "{answer}"
    );
    server.shutdown().await.unwrap();
}
