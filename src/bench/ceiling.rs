//! The ceiling: `pykv bench --ceiling [--port N]`, a server that does no
//! work. It reads each request's body whole and answers a fixed JSON body
//! of the same size as a real GET answer, with the same headers the real
//! server sends (`content-type: application/json`, `content-length`,
//! `date`).
//!
//! Loaded by the same generator with the same connections, it shows what
//! the HTTP stack, the kernel's loopback and the generator alone allow on
//! this machine; the real server's throughput divided by the ceiling's is
//! the share left after the server's own work (routing, parsing, the
//! store, the log).
//!
//! For a fair comparison it runs like `pykv serve`: the default
//! multi-threaded tokio runtime (one worker per core, or `--workers`, as
//! `pykv serve --workers`), hyper's HTTP/1.1
//! server (which axum uses underneath), `TCP_NODELAY` on accepted sockets
//! (as `src/connections.rs` sets it).

use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::BenchArgs;
use super::workload::{key_name, namespace_name};

/// What `GET /get/key:00000001` answers once the generator has set it:
/// `{"key":...,"value":"vvv...","namespace":...}`, compact, in the real
/// server's field order.
pub fn ceiling_body(value_size: usize, namespaces: u32) -> String {
    let value = "v".repeat(value_size);
    let namespace = serde_json::to_string(&namespace_name(1, namespaces))
        .expect("an optional string serializes");
    format!(
        "{{\"key\":\"{}\",\"value\":\"{value}\",\"namespace\":{namespace}}}",
        key_name(1)
    )
}

/// Runs the ceiling until the process is killed; prints `PyKV ceiling
/// listening on http://ADDR` on stdout once it accepts connections.
pub fn run(args: &BenchArgs) -> ExitCode {
    let body = Bytes::from(ceiling_body(args.value_size, args.namespaces));
    // The runtime `pykv serve` uses: multi-threaded, one worker per core
    // unless told otherwise.
    let result = crate::server::runtime(args.workers)
        .and_then(|runtime| runtime.block_on(serve(&args.host, args.port, body)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "pykv bench --ceiling: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            ExitCode::FAILURE
        }
    }
}

async fn serve(host: &str, port: u16, body: Bytes) -> std::io::Result<()> {
    let listener = TcpListener::bind((host, port)).await?;
    println!(
        "PyKV ceiling listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: wait a little, as axum does.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // As `pykv serve` does (src/connections.rs): the comparison stays fair.
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, body.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the request's body whole (a SET's JSON, as the real server
/// must), then answers the fixed body.
async fn answer(request: Request<Incoming>, body: Bytes) -> hyper::Result<Response<Full<Bytes>>> {
    request.into_body().collect().await?;
    let response = Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a static header is valid");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_a_get_answer() {
        let body: serde_json::Value = serde_json::from_str(&ceiling_body(4, 1)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"key": "key:00000001", "value": "vvvv", "namespace": "bench0"})
        );
        let body: serde_json::Value = serde_json::from_str(&ceiling_body(0, 0)).unwrap();
        assert_eq!(body["namespace"], serde_json::Value::Null);
    }
}
