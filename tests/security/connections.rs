//! Connections, headers and slow clients: header size limits, the header
//! and request timeouts, and the connection limit, with idle connections
//! closed oldest first to make room and busy ones waited for.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::Server;
use crate::support::{
    addr, assert_alive, call, call_with, raw_exchange, raw_status, read_until_closed,
};

#[tokio::test]
async fn oversized_headers_are_refused() {
    let server = Server::start_with(&["--max-header-bytes", "8192"]);
    let to = addr(&server);
    let big = "a".repeat(10 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n");
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        raw_exchange(to, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    match raw_status(&answer) {
        Some(431) => {}
        None => assert!(
            closed,
            "neither 431 nor closed: {:?}",
            String::from_utf8_lossy(&answer)
        ),
        Some(other) => panic!(
            "a 10 KB header answered {other}: {:?}",
            String::from_utf8_lossy(&answer)
        ),
    }
    // Many headers adding up past the limit, each small.
    let many: String = (0..400)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(30)))
        .collect();
    let request = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n");
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        raw_exchange(to, request.as_bytes(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(
        raw_status(&answer) == Some(431) || (raw_status(&answer).is_none() && closed),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_alive(&server, None).await;
    // A normal header is fine.
    let r = call_with(
        &server,
        Method::GET,
        "/health",
        None,
        None,
        &[("x-small", &"c".repeat(1000))],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_client_that_stops_mid_request_line_is_cut_off() {
    let server = Server::start_with(&["--header-read-timeout", "1"]);
    let to = addr(&server);
    let started = Instant::now();
    let (answer, closed) =
        tokio::task::spawn_blocking(move || raw_exchange(to, b"GET /hea", Duration::from_secs(6)))
            .await
            .unwrap();
    let took = started.elapsed();
    // Cut off: closed, or answered with a client error (408) and closed.
    let refused = raw_status(&answer).is_some_and(|s| (400..500).contains(&s));
    assert!(
        closed || refused,
        "the connection was still open after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "closed only after {took:?}");
    if let Some(status) = raw_status(&answer) {
        assert!(
            (400..500).contains(&status),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // Headers trickled byte by byte, slower than the limit allows in total.
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        for b in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1234567890\r\n\r\n" {
            if stream.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(150));
            if started.elapsed() > Duration::from_secs(6) {
                return false;
            }
        }
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(1));
        raw_status(&answer) != Some(200)
    })
    .await
    .unwrap();
    assert!(
        closed,
        "a slowloris client got its answer after {:?}",
        started.elapsed()
    );
    assert_alive(&server, None).await;
}

/// The header timeout bounds the wait for a request's head, not the
/// answering of it: a body sent within `--request-timeout` but over more
/// than the header timeout is still answered.
#[tokio::test]
async fn a_request_being_answered_outlives_the_header_timeout() {
    let server = Server::start_with(&["--header-read-timeout", "1", "--request-timeout", "10"]);
    let to = addr(&server);
    let body = br#"{"key":"slow","value":"body"}"#;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        let head = format!(
            "POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(body.len().div_ceil(5)) {
            std::thread::sleep(Duration::from_millis(600));
            stream.write_all(chunk).unwrap();
        }
        read_until_closed(&mut stream, Duration::from_secs(5)).0
    })
    .await
    .unwrap();
    assert_eq!(
        raw_status(&answer),
        Some(200),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(server.value(None, "slow").await, Some(json!("body")));
}

#[tokio::test]
async fn idle_connections_cannot_hold_every_slot() {
    // Connections that never send a byte are cut off by the header
    // timeout, so they cannot keep others out for long.
    let server = Server::start_with(&["--max-connections", "2", "--header-read-timeout", "1"]);
    let to = addr(&server);
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(to).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (answer, _) = tokio::task::spawn_blocking(move || {
        raw_exchange(
            to,
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        raw_status(&answer),
        Some(200),
        "two idle connections kept a third out for 5 s: {:?}",
        String::from_utf8_lossy(&answer)
    );
    drop(idle);
}

/// Connections in the middle of a request are not idle: at the limit, a
/// new connection waits for one of them to end.
#[tokio::test]
async fn connections_over_the_limit_wait_for_a_busy_one_to_end() {
    let server = Server::start_with(&["--max-connections", "4", "--header-read-timeout", "30"]);
    let to = addr(&server);
    // Four connections each in the middle of a request head.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(to).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let result = tokio::task::spawn_blocking(move || {
        let mut fifth = TcpStream::connect(to).unwrap();
        fifth
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (early, _) = read_until_closed(&mut fifth, Duration::from_secs(1));
        // One of the four goes away: the fifth is served.
        drop(held.pop());
        let (late, _) = read_until_closed(&mut fifth, Duration::from_secs(5));
        (early, late, held)
    })
    .await
    .unwrap();
    let (early, late, held) = result;
    assert!(
        early.is_empty(),
        "a 5th connection was served while 4 were busy: {:?}",
        String::from_utf8_lossy(&early)
    );
    assert_eq!(
        raw_status(&late),
        Some(200),
        "the 5th connection was not served once a slot was free: {:?}",
        String::from_utf8_lossy(&late)
    );
    drop(held);
    assert_alive(&server, None).await;
}

/// A keep-alive connection that has had its answer, left open.
fn idle_after_one_request(to: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(to).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert_eq!(raw_status(&buf[..n]), Some(200));
    stream
}

/// Whether the server has closed `stream`, waiting at most `wait`.
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected bytes on an idle connection: {:?}", &buf[..n]),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// One request on a new keep-alive connection: its status, how long it
/// took, and the connection, left open.
fn timed_request(to: SocketAddr) -> (Option<u16>, Duration, TcpStream) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(to).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(15));
    (raw_status(&answer), started.elapsed(), stream)
}

/// At the limit, the connection idle the longest is closed for a new one,
/// so idle connections cannot keep anyone out (they once made a request
/// wait for the header timeout).
#[tokio::test]
async fn idle_connections_make_room_oldest_first() {
    let server = Server::start_with(&["--max-connections", "16", "--header-read-timeout", "10"]);
    let to = addr(&server);
    tokio::task::spawn_blocking(move || {
        let mut idle: Vec<TcpStream> = (0..16).map(|_| idle_after_one_request(to)).collect();
        // Each new connection stays open, so that the server stays at its
        // limit.
        let mut new = Vec::new();
        for round in 0..2 {
            let (status, took, stream) = timed_request(to);
            new.push(stream);
            assert_eq!(status, Some(200), "round {round}");
            assert!(
                took < Duration::from_secs(2),
                "round {round}: waited {took:?}"
            );
            // The oldest idle connection left, and only it.
            assert!(
                closed_by_server(&mut idle[round], Duration::from_secs(2)),
                "round {round}: the oldest idle connection is still open"
            );
            for (i, stream) in idle.iter_mut().enumerate().skip(round + 1) {
                assert!(
                    !closed_by_server(stream, Duration::from_millis(20)),
                    "round {round}: connection {i} was closed instead"
                );
            }
        }
        // A connection used again is no longer the oldest idle one.
        let mut third = idle.remove(2);
        third
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        // The answer may take longer than the 20 ms read timeout that
        // `closed_by_server` left on the socket (a /health that asks a
        // networked backend, on a loaded machine).
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = third.read(&mut buf).unwrap();
        assert_eq!(raw_status(&buf[..n]), Some(200));
        let (status, _, _stream) = timed_request(to);
        assert_eq!(status, Some(200));
        assert!(!closed_by_server(&mut third, Duration::from_millis(100)));
        assert!(
            closed_by_server(&mut idle[2], Duration::from_secs(2)),
            "the 4th was oldest"
        );
    })
    .await
    .unwrap();
    assert_alive(&server, None).await;
}

/// Connections that never send a byte are idle too.
#[tokio::test]
async fn silent_connections_make_room() {
    let server = Server::start_with(&["--max-connections", "4", "--header-read-timeout", "10"]);
    let to = addr(&server);
    tokio::task::spawn_blocking(move || {
        let mut silent: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(to).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(200));
        let (status, took, _stream) = timed_request(to);
        assert_eq!(status, Some(200));
        assert!(took < Duration::from_secs(2), "waited {took:?}");
        assert!(closed_by_server(&mut silent[0], Duration::from_secs(2)));
        for stream in &mut silent[1..] {
            assert!(!closed_by_server(stream, Duration::from_millis(20)));
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408() {
    let server = Server::start_with(&["--request-timeout", "1"]);
    let to = addr(&server);
    let started = Instant::now();
    let (answer, _) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(to).unwrap();
        stream
            .write_all(b"POST /set?ns=a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":")
            .unwrap();
        read_until_closed(&mut stream, Duration::from_secs(5))
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(raw_status(&answer), Some(408), "{text:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("\"detail\""), "{text:?}");
    assert_alive(&server, None).await;
    let r = call(&server, Method::GET, "/get/k?ns=a", None, None).await;
    assert_eq!(r.status, 404, "a timed-out write was applied: {r:?}");
}
