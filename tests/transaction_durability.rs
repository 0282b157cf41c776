//! Transactions in the write-ahead log: the real server is killed with
//! SIGKILL while clients run transactions, and after each restart every
//! transaction is found whole or not at all, and every acknowledged one is
//! there; a compaction in the middle changes nothing of that; and a
//! transaction's record torn by a crash is dropped whole. Embedded backend
//! only (the log is its).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

/// Keys each transaction sets together.
const GROUP: usize = 30;
const NS: &str = "bank";

/// The ops of transaction `seq` (1, 2, ...) of writer `id`: every key of
/// its group set to `seq`, its counter incremented (so it equals `seq`),
/// and its flag present when `seq` is even, absent when odd.
fn transaction(id: usize, seq: u64) -> Value {
    let mut ops: Vec<Value> = (0..GROUP)
        .map(|j| {
            json!({"op": "set", "key": format!("w{id}:k{j}"),
                   "value": {"seq": seq, "pad": "p".repeat(100 + j)}})
        })
        .collect();
    ops.push(json!({"op": "incr", "key": format!("w{id}:count")}));
    ops.push(match seq % 2 {
        0 => json!({"op": "set", "key": format!("w{id}:flag"), "value": seq}),
        _ => json!({"op": "delete", "key": format!("w{id}:flag")}),
    });
    json!({"atomic": true, "ops": ops})
}

/// The transaction writer `id`'s keys show, checking that they show one
/// whole transaction: every key of the group at the same `seq`, the
/// counter at `seq`, the flag as `seq` leaves it. 0 when none was applied.
async fn applied_seq(server: &Server, id: usize) -> u64 {
    let mut ops: Vec<Value> = (0..GROUP)
        .map(|j| json!({"op": "get", "key": format!("w{id}:k{j}")}))
        .collect();
    ops.push(json!({"op": "get", "key": format!("w{id}:count")}));
    ops.push(json!({"op": "get", "key": format!("w{id}:flag")}));
    let r = server
        .post_json(
            &format!("/batch?ns={NS}"),
            &json!({"atomic": true, "ops": ops}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let results = r.body["results"].as_array().unwrap();
    let seqs: Vec<u64> = results[..GROUP]
        .iter()
        .map(|result| result["value"]["seq"].as_u64().unwrap_or(0))
        .collect();
    let seq = seqs[0];
    assert!(
        seqs.iter().all(|s| *s == seq),
        "writer {id}: a transaction half applied, its keys at {seqs:?}"
    );
    let count = results[GROUP]["value"].as_u64().unwrap_or(0);
    assert_eq!(count, seq, "writer {id}: counter {count}, keys at {seq}");
    let flag = &results[GROUP + 1];
    match seq % 2 {
        0 if seq > 0 => assert_eq!(flag["value"], seq, "writer {id} at {seq}: {flag}"),
        _ => assert_eq!(flag["status"], 404, "writer {id} at {seq}: {flag}"),
    }
    seq
}

/// What a writer was told: its last acknowledged transaction, and the one
/// it sent last (acknowledged or not).
#[derive(Default, Clone, Copy, Debug)]
struct Told {
    acked: u64,
    sent: u64,
}

/// One client running its transactions back to back, from `from` on,
/// until `stop` or the first failure (the kill).
async fn writer(
    client: reqwest::Client,
    base: String,
    id: usize,
    from: u64,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Told {
    let mut told = Told {
        acked: from - 1,
        sent: from - 1,
    };
    for seq in from.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        told.sent = seq;
        let sent = client
            .post(format!("{base}/batch?ns={NS}"))
            .json(&transaction(id, seq))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => {
                told.acked = seq;
                acks.fetch_add(1, Ordering::SeqCst);
            }
            _ => break,
        }
    }
    told
}

/// `writers` clients run transactions; once `acks_wanted` are
/// acknowledged (and, with `compact`, a compaction is asked for and runs
/// meanwhile), the server is SIGKILLed.
async fn run_then_kill(
    server: &mut Server,
    from: &[u64],
    acks_wanted: usize,
    compact: bool,
) -> Vec<Told> {
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (from.iter().enumerate())
        .map(|(id, from)| {
            let base = server.base_url().to_owned();
            tokio::spawn(writer(
                server.client.clone(),
                base,
                id,
                *from,
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_for = |n: usize| {
        let acks = acks.clone();
        async move {
            while acks.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(
                acks.load(Ordering::SeqCst) >= n,
                "only {acks:?} of {n} in 30 s"
            );
        }
    };
    if compact {
        wait_for(acks_wanted / 2).await;
        let r = server.post_json("/compact", &json!({})).await;
        assert!(r.status < 300, "{r:?}");
    }
    wait_for(acks_wanted).await;
    tokio::task::block_in_place(|| {
        let status = server.kill();
        assert!(!status.success(), "SIGKILL should not give a clean exit");
    });
    stop.store(true, Ordering::SeqCst);
    let mut told = Vec::new();
    for handle in handles {
        told.push(handle.await.unwrap());
    }
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_under_transactions_leaves_each_whole_or_absent() {
    if !common::backend_supports("persistence") {
        return;
    }
    let writers = 6;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let mut from = vec![1u64; writers];
    let mut cut_in_flight = 0;
    for round in 0..3 {
        let told = run_then_kill(&mut server, &from, 60, round == 1).await;
        let stderr = server.take_stderr();
        assert!(!stderr.contains("panicked"), "server panicked:\n{stderr}");
        if round == 0 {
            let log = std::fs::read_to_string(dir.path().join("wal.log")).unwrap();
            assert!(log.lines().any(|line| line.contains("\"action\":\"TX\"")));
        }
        server.restart();
        cut_in_flight += told.iter().filter(|t| t.sent > t.acked).count();
        for (id, told) in told.iter().enumerate() {
            let seq = applied_seq(&server, id).await;
            assert!(
                (told.acked..=told.sent).contains(&seq),
                "round {round}, writer {id}: found transaction {seq}, told {told:?}"
            );
            // The next round goes on from what the log holds.
            from[id] = seq + 1;
        }
    }
    assert!(cut_in_flight > 0, "no kill met a transaction in flight");
}

/// A transaction whose record a crash cut in the middle is dropped whole
/// at the restart: the keys are as the transaction before it left them.
#[tokio::test]
async fn a_torn_transaction_record_is_dropped_whole() {
    if !common::backend_supports("persistence") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    for seq in 1..=4 {
        let r = server
            .post_json(&format!("/batch?ns={NS}"), &transaction(0, seq))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    server.terminate();
    assert!(server.wait_exit().success());
    let path = dir.path().join("wal.log");
    let log = std::fs::read(&path).unwrap();
    let last_start = log[..log.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    assert!(log[last_start..].starts_with(b"{\"timestamp\""));
    assert!(String::from_utf8_lossy(&log[last_start..]).contains("\"action\":\"TX\""));
    // Cut the last record (transaction 4) in the middle of its ops.
    let cut = last_start + (log.len() - last_start) / 2;
    std::fs::write(&path, &log[..cut]).unwrap();
    server.restart();
    assert_eq!(applied_seq(&server, 0).await, 3);
    // The log goes on after the cut: a new transaction survives a kill.
    let r = server
        .post_json(&format!("/batch?ns={NS}"), &transaction(0, 4))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    server.kill();
    let stderr = server.take_stderr();
    assert!(stderr.contains("dropping a torn last record"), "{stderr}");
    server.restart();
    assert_eq!(applied_seq(&server, 0).await, 4);
}
