//! A deterministic mini-fuzz of the parsers that read bytes from outside:
//! log records and `POST /set` bodies, in process and over HTTP.

use serde_json::Value;

use crate::common::{Server, enc};
use crate::support::assert_alive;

/// Valid inputs to mutate: log lines as the server writes them and as PyKV
/// writes them, and `POST /set` bodies.
fn log_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        pykv::fuzzing::encode_set_record(Some("app1"), "user:1", "\"alice\"", Some(1_732_553_600_123), 1_732_550_000_123),
        pykv::fuzzing::encode_set_record(None, "ключ \"q\"\n/?#%", "{\"a\":[1,2.5,null,true]}", None, 0),
        br#"{"timestamp": 1234567890.123, "action": "SET", "key": "user:123", "value": "alice", "namespace": "app1", "ttl": 3600}"#.to_vec(),
        br#"{"timestamp":1.0,"action":"DEL","key":"k","value":null,"namespace":null,"ttl":null,"evicted":true}"#.to_vec(),
        br#"{"timestamp":1.0,"action":"CLEAR","key":null,"value":null,"namespace":"app1","ttl":null}"#.to_vec(),
        br#"{"action":"SET","key":"k","value":1e308,"ttl":1e308,"timestamp":-1e308}"#.to_vec(),
        br#"{"action":"SET","key":"k","value":[],"ttl":-5,"expires_at":18446744073709551615}"#.to_vec(),
    ];
    for s in &mut seeds {
        if s.last() == Some(&b'\n') {
            s.pop();
        }
    }
    seeds
}

fn set_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"key":"user:123","value":"alice","namespace":"app1","ttl":3600}"#,
        r#"{"key":"k","value":{"a":[1,2.5,null]},"ttl":null,"namespace":null}"#,
        "{\"key\":\"k\",\"value\":{\n \"a\": 1\n}}",
        r#"{"key":"\ud83d\ude00","value":"\u0000","ttl":3153600000}"#,
        r#"{"key":"k","value":1,"ttl":3153600001}"#,
        r#"[{"key":"k","value":1}]"#,
        r#"  {"key":"k","value":1,"key":"dup"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Every fourth input random bytes, the others a mutated seed.
fn fuzz_input(rng: &mut fastrand::Rng, i: usize, seeds: &[Vec<u8>]) -> Vec<u8> {
    if i.is_multiple_of(4) {
        let len = rng.usize(0..256);
        return std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
    }
    let pick = rng.usize(..seeds.len());
    mutate(rng, &seeds[pick], seeds)
}

/// `input` with a few random byte-level changes: flips, insertions of
/// interesting bytes, deletions, splices of another seed, truncations.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud800",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"null",
        b"-",
        b"1e999",
        b"-0",
        b"18446744073709551616",
        b"\xff",
        b"\xc3",
        b"\xe2\x80",
        b"\0",
        b"\n",
        b"\"action\":\"SET\"",
        b"\"ttl\":",
        b"\"namespace\":",
    ];
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(0..6) {
            0 if !out.is_empty() => {
                let at = rng.usize(..out.len());
                out[at] ^= 1 << rng.u8(0..8);
            }
            1 => {
                let at = rng.usize(..=out.len());
                let piece = INTERESTING[rng.usize(..INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let from = rng.usize(..out.len());
                let to = (from + rng.usize(1..=8)).min(out.len());
                out.drain(from..to);
            }
            3 => {
                let other = &seeds[rng.usize(..seeds.len())];
                let cut = rng.usize(..=out.len());
                let from = rng.usize(..=other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            4 if !out.is_empty() => out.truncate(rng.usize(..out.len())),
            _ => {
                let at = rng.usize(..=out.len());
                out.insert(at, rng.u8(..));
            }
        }
    }
    out
}

/// 20,000 inputs per parser (random bytes, and mutated valid inputs),
/// from a fixed seed: none may panic, and what is accepted is sane.
#[test]
fn mini_fuzz_of_the_parsers() {
    const CASES: usize = 20_000;
    let mut rng = fastrand::Rng::with_seed(0x5eed_0f9b);
    let log = log_seeds();
    let set = set_seeds();
    for seed in &log {
        assert!(
            pykv::fuzzing::decode_log_line(seed).is_ok(),
            "{}",
            String::from_utf8_lossy(seed)
        );
    }
    assert!(pykv::fuzzing::parse_set_request(&set[0]).is_ok());
    let mut accepted = [0usize; 2];
    for i in 0..CASES {
        let input = fuzz_input(&mut rng, i, &log);
        let outcome = std::panic::catch_unwind(|| pykv::fuzzing::decode_log_line(&input));
        match outcome {
            Err(_) => panic!(
                "the log parser panicked on {:?}",
                String::from_utf8_lossy(&input)
            ),
            Ok(Ok(record)) => {
                accepted[0] += 1;
                if let Some(value) = &record.value {
                    // JSON text as the grammar has it (serde_json's tree
                    // parser also refuses numbers past f64, like 1e400).
                    serde_json::from_str::<&serde_json::value::RawValue>(value).unwrap_or_else(
                        |e| panic!("a SET value that is not JSON ({e}) from {input:?}"),
                    );
                }
            }
            Ok(Err(_)) => {}
        }

        let input = fuzz_input(&mut rng, i, &set);
        let outcome = std::panic::catch_unwind(|| pykv::fuzzing::parse_set_request(&input));
        match outcome {
            Err(_) => panic!(
                "the /set parser panicked on {:?}",
                String::from_utf8_lossy(&input)
            ),
            Ok(Ok(parsed)) => {
                accepted[1] += 1;
                assert!(!parsed.key.is_empty());
                assert!(!parsed.value.contains(['\n', '\r']), "{parsed:?}");
                // JSON text the server can embed as it is in answers and
                // log lines. (serde_json's tree parser refuses lone UTF-16
                // surrogates such as "\ud800", which the JSON grammar
                // allows: see `lone_surrogates_in_a_set_body`.)
                serde_json::from_str::<&serde_json::value::RawValue>(&parsed.value)
                    .unwrap_or_else(|e| panic!("a value that is not JSON ({e}): {parsed:?}"));
                if let Some(ttl) = parsed.ttl {
                    assert!((1..=pykv::http::MAX_TTL_SECS).contains(&ttl));
                }
            }
            Ok(Err((status, detail))) => {
                assert!(
                    status == 400 || status == 422,
                    "{status} {detail} for {input:?}"
                )
            }
        }
    }
    // The mutations keep enough inputs valid to reach past the first check.
    assert!(
        accepted[0] > 100 && accepted[1] > 100,
        "accepted {accepted:?}"
    );
}

/// The same bytes through the real server's `POST /set`: never a 5xx, and
/// the server keeps answering.
#[tokio::test]
async fn mini_fuzz_of_set_over_http() {
    let server = Server::start();
    let mut rng = fastrand::Rng::with_seed(7);
    let seeds = set_seeds();
    let encoded = enc("ä");
    for i in 0..1500 {
        let body = mutate(&mut rng, &seeds[i % seeds.len()], &seeds);
        let ns = ["a", "b", "%ZZ", "a%00", &encoded, ""][i % 6];
        let r = server
            .client
            .post(server.url(&format!("/set?ns={ns}")))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            [200, 400, 413, 422].contains(&status),
            "POST /set?ns={ns} {:?}: {status} {text}",
            String::from_utf8_lossy(&body)
        );
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
    }
    assert_alive(&server, None).await;
}

/// Lone UTF-16 surrogates (`"\ud800"`) are valid JSON grammar that
/// serde_json's tree parser refuses. In a pretty-printed value (with a
/// newline), the `/set` parser re-parses the value to compact it: that must
/// be a 200 or a 422, never a panic and a dropped connection.
#[tokio::test]
async fn lone_surrogates_in_a_set_body() {
    let bodies: [&[u8]; 4] = [
        b"{\"key\":\"k\",\"value\":[\n\"\\ud800\"]}",
        b"{\"key\":\"k\",\"value\":{\"a\":\n\"x\\udfffy\"}}",
        b"{\"key\":\"k\",\"value\":\"a\\ud800b\"}",
        b"{\"key\":\"k\\ud800\",\"value\":1}",
    ];
    for body in bodies {
        let parsed = std::panic::catch_unwind(|| pykv::fuzzing::parse_set_request(body));
        assert!(
            parsed.is_ok(),
            "the /set parser panicked on {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let server = Server::start();
    for body in bodies {
        let r = server
            .client
            .post(server.url("/set"))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let r = r.unwrap_or_else(|e| {
            panic!(
                "POST /set {:?}: no answer ({e})",
                String::from_utf8_lossy(body)
            )
        });
        let status = r.status().as_u16();
        assert!(status == 200 || status == 422, "{status}");
    }
    assert_alive(&server, None).await;
}
