//! Batches and transactions, `POST /batch`: shapes, per-op statuses, the
//! limit and bad input, transactions all or nothing, token scopes, and
//! concurrency (a transaction is never seen half applied; of racing
//! conditional transactions exactly one wins). A conformance test run
//! against every backend.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Resp, Server};
use serde_json::{Value, json};

async fn batch(server: &Server, ns: &str, body: Value) -> Resp {
    server.post_json(&format!("/batch?ns={ns}"), &body).await
}

/// `results[i]` with its status asserted.
fn result(r: &Resp, i: usize, status: u64) -> &Value {
    let result = &r.body["results"][i];
    assert_eq!(result["status"], status, "result {i} of {r:?}");
    result
}

async fn etag(server: &Server, ns: &str, key: &str) -> String {
    let r = (server
        .client
        .get(server.url(&format!("/get/{key}?ns={ns}"))))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn answers_one_result_per_op_in_order() {
    let server = Server::start();
    server.set(Some("b"), "gone", json!(1)).await;
    let r = batch(
        &server,
        "b",
        json!({"ops": [
            {"op": "set", "key": "a", "value": {"x": [1, "y"]}},
            {"op": "incr", "key": "n", "by": 5},
            {"op": "get", "key": "a"},
            {"op": "get", "key": "missing"},
            {"op": "delete", "key": "gone"},
            {"op": "delete", "key": "gone"},
            {"op": "incr", "key": "n", "by": -7},
            {"op": "set", "key": "t", "value": "soon", "ttl": 100},
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["namespace"], "b");
    assert_eq!(r.body["results"].as_array().unwrap().len(), 8);
    let ops: Vec<&str> = (r.body["results"].as_array().unwrap().iter())
        .map(|result| result["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "set", "incr", "get", "get", "delete", "delete", "incr", "set"
        ]
    );
    assert_eq!(result(&r, 0, 200)["key"], "a");
    assert_eq!(result(&r, 1, 200)["value"], 5);
    let got = result(&r, 2, 200);
    assert_eq!(got["value"], json!({"x": [1, "y"]}));
    // The tag is the one GET /get answers, and the set's answer had it.
    assert_eq!(got["etag"], etag(&server, "b", "a").await);
    assert_eq!(result(&r, 0, 200)["etag"], got["etag"]);
    assert_eq!(result(&r, 3, 404)["detail"], "Key not found");
    assert!(result(&r, 3, 404).get("value").is_none());
    result(&r, 4, 200);
    assert_eq!(result(&r, 5, 404)["detail"], "Key not found");
    assert_eq!(result(&r, 6, 200)["value"], -2);
    result(&r, 7, 200);
    // Every write happened.
    assert_eq!(
        server.value(Some("b"), "a").await,
        Some(json!({"x": [1, "y"]}))
    );
    assert_eq!(server.value(Some("b"), "n").await, Some(json!(-2)));
    assert_eq!(server.value(Some("b"), "gone").await, None);
    let ttl = server.get("/ttl/t?ns=b").await;
    assert!(
        (1..=100).contains(&ttl.body["ttl"].as_u64().unwrap()),
        "{ttl:?}"
    );
    // An empty batch is an empty answer.
    let r = batch(&server, "b", json!({"ops": []})).await;
    assert_eq!((r.status, &r.body["results"]), (200, &json!([])));
}

#[tokio::test]
async fn not_atomic_each_op_succeeds_or_fails_alone() {
    let server = Server::start();
    server.set(Some("b"), "text", json!("not a number")).await;
    server.set(Some("b"), "guarded", json!(1)).await;
    let stale = "\"0000000000000000\"";
    let r = batch(
        &server,
        "b",
        json!({"atomic": false, "ops": [
            {"op": "set", "key": "first", "value": 1},
            {"op": "incr", "key": "text"},
            {"op": "set", "key": "guarded", "value": 2, "if_match": stale},
            {"op": "set", "key": "fresh", "value": 3, "if_absent": true},
            {"op": "set", "key": "fresh", "value": 4, "if_absent": true},
            {"op": "delete", "key": "guarded", "if_match": "*"},
            {"op": "get", "key": "first", "if_match": "*", "if_absent": true},
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Both conditions at once can never hold.
    result(&r, 6, 412);
    result(&r, 0, 200);
    let refused = result(&r, 1, 409);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("not an integer"),
        "{refused}"
    );
    result(&r, 2, 412);
    result(&r, 3, 200);
    result(&r, 4, 412);
    result(&r, 5, 200);
    assert_eq!(server.value(Some("b"), "first").await, Some(json!(1)));
    assert_eq!(
        server.value(Some("b"), "text").await,
        Some(json!("not a number"))
    );
    assert_eq!(server.value(Some("b"), "fresh").await, Some(json!(3)));
    assert_eq!(server.value(Some("b"), "guarded").await, None);
}

#[tokio::test]
async fn a_bad_op_is_refused_naming_it_and_nothing_is_applied() {
    let server = Server::start();
    let good = json!({"op": "set", "key": "never", "value": 1});
    let cases = [
        (json!({"op": "fly", "key": "k"}), "ops[1]: field `op`"),
        (json!({"key": "k"}), "ops[1]: field `op`: missing"),
        (json!({"op": "set", "key": "k"}), "ops[1]: field `value`"),
        (json!({"op": "get"}), "ops[1]: field `key`"),
        (json!({"op": "get", "key": ""}), "ops[1]: field `key`"),
        (json!({"op": "get", "key": 5}), "ops[1]: field `key`"),
        (
            json!({"op": "get", "key": "k", "value": 1}),
            "ops[1]: field `value`",
        ),
        (
            json!({"op": "set", "key": "k", "value": 1, "by": 1}),
            "ops[1]: field `by`",
        ),
        (
            json!({"op": "incr", "key": "k", "ttl": 5}),
            "ops[1]: field `ttl`",
        ),
        (
            json!({"op": "incr", "key": "k", "by": 1.5}),
            "ops[1]: field `by`",
        ),
        (
            json!({"op": "set", "key": "k", "value": 1, "ttl": 0}),
            "ops[1]: field `ttl`",
        ),
        (
            json!({"op": "get", "key": "k", "if_match": "nope"}),
            "ops[1]: field `if_match`",
        ),
        (
            json!({"op": "get", "key": "k", "if_absent": "yes"}),
            "ops[1]: field `if_absent`",
        ),
        (json!({"op": "get", "key": "k", "extra": 1}), "ops[1]: "),
        (json!("get k"), "ops[1]: "),
    ];
    for (bad, named) in cases {
        for atomic in [false, true] {
            let r = batch(&server, "b", json!({"atomic": atomic, "ops": [good, bad]})).await;
            assert_eq!(r.status, 422, "{bad}: {r:?}");
            assert!(r.detail().starts_with(named), "{bad}: {}", r.detail());
        }
    }
    for (body, status) in [
        (json!({}), 422),
        (json!({"ops": "get"}), 422),
        (json!({"ops": [good], "atomic": "yes"}), 422),
        (json!({"ops": [good], "namespace": 7}), 422),
        (json!([good]), 422),
    ] {
        let r = batch(&server, "b", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {r:?}");
    }
    let r = server.post_raw("/batch?ns=b", "{\"ops\": [").await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = server
        .post_json("/batch?ns=bad/name", &json!({"ops": [good]}))
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(server.value(Some("b"), "never").await, None);
}

#[tokio::test]
async fn a_batch_holds_at_most_1000_ops() {
    let server = Server::start();
    let ops = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"op": "set", "key": format!("k{i}"), "value": i}))
            .collect()
    };
    let r = batch(&server, "big", json!({"ops": ops(1001)})).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(
        r.detail().contains("at most 1000 ops, got 1001"),
        "{}",
        r.detail()
    );
    assert_eq!(server.value(Some("big"), "k0").await, None);
    for atomic in [false, true] {
        let r = batch(&server, "big", json!({"atomic": atomic, "ops": ops(1000)})).await;
        assert_eq!(r.status, 200, "{atomic}");
        assert_eq!(r.body["results"].as_array().unwrap().len(), 1000);
    }
    assert_eq!(server.value(Some("big"), "k999").await, Some(json!(999)));
}

#[tokio::test]
async fn a_transaction_whose_condition_fails_applies_nothing() {
    let server = Server::start();
    server.set(Some("tx"), "a", json!(1)).await;
    server.set(Some("tx"), "b", json!(2)).await;
    let tag_b = etag(&server, "tx", "b").await;
    let r = batch(
        &server,
        "tx",
        json!({"atomic": true, "ops": [
            {"op": "set", "key": "a", "value": 10},
            {"op": "delete", "key": "b"},
            {"op": "set", "key": "c", "value": 3},
            {"op": "set", "key": "b", "value": 20, "if_absent": true},
        ]}),
    )
    .await;
    // if_absent on `b` holds once op 1 deleted it: a transaction's ops
    // see the ones before them.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.value(Some("tx"), "b").await, Some(json!(20)));

    let request =
        server
            .client
            .post(server.url("/batch?ns=tx"))
            .json(&json!({"atomic": true, "ops": [
                {"op": "incr", "key": "counter"},
                {"op": "set", "key": "a", "value": 99},
                {"op": "set", "key": "b", "value": 99, "if_match": tag_b},
                {"op": "delete", "key": "c"},
            ]}));
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 412);
    let current = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(current, etag(&server, "tx", "b").await);
    let detail = response.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.starts_with("op 2 (key \"b\")"), "{detail}");
    assert!(
        detail.contains("nothing in the transaction was applied"),
        "{detail}"
    );
    assert_eq!(server.value(Some("tx"), "counter").await, None);
    assert_eq!(server.value(Some("tx"), "a").await, Some(json!(10)));
    assert_eq!(server.value(Some("tx"), "b").await, Some(json!(20)));
    assert_eq!(server.value(Some("tx"), "c").await, Some(json!(3)));

    // An increment that cannot be done aborts too: 409 naming the op.
    let r = batch(
        &server,
        "tx",
        json!({"atomic": true, "ops": [
            {"op": "set", "key": "a", "value": "x"},
            {"op": "incr", "key": "a"},
        ]}),
    )
    .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.detail().starts_with("op 1 (key \"a\")"), "{}", r.detail());
    assert_eq!(server.value(Some("tx"), "a").await, Some(json!(10)));
    // And a key too long, 422 naming it.
    let long = "k".repeat(5000);
    let r = batch(
        &server,
        "tx",
        json!({"atomic": true, "ops": [
            {"op": "set", "key": "a", "value": 11},
            {"op": "get", "key": long},
        ]}),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.detail().starts_with("op 1 "), "{}", r.detail());
    assert_eq!(server.value(Some("tx"), "a").await, Some(json!(10)));
}

#[tokio::test]
async fn a_transaction_applies_every_op_and_answers_each() {
    let server = Server::start();
    server.set(Some("tx"), "n", json!(40)).await;
    let tag = etag(&server, "tx", "n").await;
    let r = batch(
        &server,
        "tx",
        json!({"atomic": true, "ops": [
            {"op": "incr", "key": "n", "by": 2, "if_match": tag},
            {"op": "get", "key": "n"},
            {"op": "get", "key": "none"},
            {"op": "set", "key": "s", "value": [1, 2]},
            {"op": "delete", "key": "none"},
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(result(&r, 0, 200)["value"], 42);
    assert_eq!(result(&r, 1, 200)["value"], 42);
    result(&r, 2, 404);
    result(&r, 3, 200);
    result(&r, 4, 404);
    assert_eq!(server.value(Some("tx"), "n").await, Some(json!(42)));
    assert_eq!(server.value(Some("tx"), "s").await, Some(json!([1, 2])));
}

#[tokio::test]
async fn the_body_namespace_wins_and_batches_stay_in_their_namespace() {
    let server = Server::start();
    let body = json!({"namespace": "mine", "ops": [{"op": "set", "key": "k", "value": 1}]});
    let r = server.post_json("/batch?ns=other", &body).await;
    assert_eq!((r.status, &r.body["namespace"]), (200, &json!("mine")));
    assert_eq!(server.value(Some("mine"), "k").await, Some(json!(1)));
    assert_eq!(server.value(Some("other"), "k").await, None);
    assert_eq!(server.value(None, "k").await, None);
    let r = server
        .post_json(
            "/batch",
            &json!({"ops": [{"op": "set", "key": "k", "value": 2}]}),
        )
        .await;
    assert_eq!((r.status, &r.body["namespace"]), (200, &Value::Null));
    assert_eq!(server.value(None, "k").await, Some(json!(2)));
}

#[tokio::test]
async fn gets_need_read_access_and_writes_write_access() {
    let server = Server::start();
    let reader = common::create_token(server.data_dir(), &["--ns", "app1", "--access", "read"]);
    let writer = common::create_token(server.data_dir(), &["--ns", "app1", "--access", "write"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let send = |token: &str, ns: &str, ops: Value| {
        server
            .client
            .post(server.url(&format!("/batch?ns={ns}")))
            .bearer_auth(token)
            .json(&json!({"ops": ops}))
    };
    let gets = json!([{"op": "get", "key": "a"}, {"op": "get", "key": "b"}]);
    let mixed = json!([{"op": "get", "key": "a"}, {"op": "incr", "key": "b"}]);
    assert_eq!(
        server
            .send(send(&reader, "app1", gets.clone()))
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .send(send(&reader, "app1", mixed.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        server
            .send(send(&writer, "app1", mixed.clone()))
            .await
            .status,
        200
    );
    assert_eq!(server.send(send(&writer, "other", gets)).await.status, 403);
    assert_eq!(server.send(send(&writer, "other", mixed)).await.status, 403);
    let unauthenticated = server
        .client
        .post(server.url("/batch?ns=app1"))
        .json(&json!({"ops": []}));
    assert_eq!(server.send(unauthenticated).await.status, 401);
}

/// Movers shift amounts between two counters in transactions, while
/// readers read both in transactions of gets: every read sees the same
/// total, so no reader ever saw a transfer half done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_is_never_seen_half_applied() {
    let server = Arc::new(Server::start());
    let accounts = json!({"atomic": true, "ops": [
        {"op": "set", "key": "x", "value": 1000},
        {"op": "set", "key": "y", "value": 1000},
    ]});
    assert_eq!(batch(&server, "bank", accounts).await.status, 200);
    let movers: Vec<_> = (0..4)
        .map(|m| {
            let server = server.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    let by = (i % 7) as i64 - 3 + m;
                    let transfer = json!({"atomic": true, "ops": [
                        {"op": "incr", "key": "x", "by": by},
                        {"op": "incr", "key": "y", "by": -by},
                    ]});
                    let r = batch(&server, "bank", transfer).await;
                    assert_eq!(r.status, 200, "{r:?}");
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut totals = Vec::new();
                for _ in 0..80 {
                    let read = json!({"atomic": true, "ops": [
                        {"op": "get", "key": "x"}, {"op": "get", "key": "y"},
                    ]});
                    let r = batch(&server, "bank", read).await;
                    let x = result(&r, 0, 200)["value"].as_i64().unwrap();
                    let y = result(&r, 1, 200)["value"].as_i64().unwrap();
                    totals.push((x, y));
                }
                totals
            })
        })
        .collect();
    for mover in movers {
        mover.await.unwrap();
    }
    let mut moved = false;
    for reader in readers {
        for (x, y) in reader.await.unwrap() {
            assert_eq!(x + y, 2000, "a transfer seen half done: x={x} y={y}");
            moved |= x != 1000;
        }
    }
    assert!(moved, "the readers never saw a transfer at all");
    let x = server.value(Some("bank"), "x").await.unwrap();
    let y = server.value(Some("bank"), "y").await.unwrap();
    assert_eq!(x.as_i64().unwrap() + y.as_i64().unwrap(), 2000);
}

/// Transactions racing with the same `if_match`: exactly one is applied,
/// whole; every other is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_conditional_transactions_exactly_one_wins() {
    let server = Arc::new(Server::start());
    server.set(Some("race"), "version", json!(0)).await;
    let tag = etag(&server, "race", "version").await;
    let racers: Vec<_> = (1..=12)
        .map(|i| {
            let (server, tag) = (server.clone(), tag.clone());
            tokio::spawn(async move {
                let body = json!({"atomic": true, "ops": [
                    {"op": "set", "key": "version", "value": i, "if_match": tag},
                    {"op": "set", "key": "owner", "value": i},
                    {"op": "incr", "key": "commits"},
                ]});
                (i, batch(&server, "race", body).await.status)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (i, status) = racer.await.unwrap();
        match status {
            200 => winners.push(i),
            412 => {}
            other => panic!("racer {i}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let winner = json!(winners[0]);
    assert_eq!(
        server.value(Some("race"), "version").await,
        Some(winner.clone())
    );
    assert_eq!(server.value(Some("race"), "owner").await, Some(winner));
    assert_eq!(server.value(Some("race"), "commits").await, Some(json!(1)));
}

/// `pykv batch`: ops as words or as JSON on stdin, one line per op, the
/// exit code of the worst failure; more than a batch holds is sent as
/// several batches.
#[test]
fn the_cli_runs_batches() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let server = Server::start();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pykv"))
            .arg("batch")
            .args(args)
            .args(["--url", server.base_url()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, out) = run(
        &[
            "--ns",
            "cli",
            "set:user:1=alice",
            "incr:hits=3",
            "get:user:1",
            "del:user:1",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "set user:1: OK\nincr hits: 3\nget user:1: alice\ndelete user:1: deleted\n"
    );
    let (code, out) = run(&["--ns", "cli", "get:nope"], "");
    assert_eq!(
        (code, out.as_str()),
        (Some(1), "get nope: error 404: Key not found\n")
    );
    let lines: String = (0..1500)
        .map(|i| format!("{{\"op\":\"set\",\"key\":\"k{i}\",\"value\":{i}}}\n"))
        .collect();
    let (code, out) = run(&["--ns", "bulk"], &lines);
    assert_eq!((code, out.lines().count()), (Some(0), 1500));
    let (code, out) = run(
        &["--ns", "bulk", "--atomic", "--json", "get:k1499", "incr:k0"],
        "",
    );
    assert_eq!(code, Some(0));
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["results"][0]["value"], 1499);
    assert_eq!(answer["results"][1]["value"], 1);
    let (code, _) = run(&["--ns", "bulk", "--atomic", "set:k0=text", "incr:k0"], "");
    assert_eq!(code, Some(2));
    assert_eq!(
        run(&["--ns", "bulk", "get:k0"], "").1,
        "get k0: 1\n",
        "the failed transaction applied nothing"
    );
}

#[tokio::test]
async fn a_batch_keeps_the_namespace_quota() {
    if !common::backend_supports("quotas") {
        return;
    }
    let server = Server::start_with(&["--eviction", "noeviction"]);
    let put = (server.client.put(server.url("/quota?ns=q"))).json(&json!({"max_keys": 3}));
    assert_eq!(server.send(put).await.status, 200);

    // Each op on its own: the writes past the quota are refused alone.
    let ops: Vec<Value> = (1..=5)
        .map(|i| json!({"op": "set", "key": format!("k{i}"), "value": i}))
        .collect();
    let r = batch(&server, "q", json!({"ops": ops})).await;
    assert_eq!(r.status, 200, "{r:?}");
    for i in 0..3 {
        result(&r, i, 200);
    }
    for i in 3..5 {
        let refused = result(&r, i, 507);
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("namespace \"q\""),
            "{r:?}"
        );
    }
    assert_eq!(server.value(Some("q"), "k4").await, None);

    // A transaction that would end past the quota applies nothing, even
    // its writes that would fit: rewriting k1 and deleting k2 fit, adding
    // two keys after them does not.
    let r = batch(
        &server,
        "q",
        json!({"atomic": true, "ops": [
            {"op": "set", "key": "k1", "value": "new"},
            {"op": "delete", "key": "k2"},
            {"op": "set", "key": "n1", "value": 1},
            {"op": "set", "key": "n2", "value": 2},
        ]}),
    )
    .await;
    assert_eq!(r.status, 507, "{r:?}");
    assert!(
        r.detail()
            .contains("namespace \"q\" is at its limit of 3 keys"),
        "{r:?}"
    );
    assert_eq!(server.value(Some("q"), "k1").await, Some(json!(1)));
    assert_eq!(server.value(Some("q"), "k2").await, Some(json!(2)));
    assert_eq!(server.value(Some("q"), "n1").await, None);

    // The same transaction without the last write fits, and applies.
    let r = batch(
        &server,
        "q",
        json!({"atomic": true, "ops": [
            {"op": "set", "key": "k1", "value": "new"},
            {"op": "delete", "key": "k2"},
            {"op": "set", "key": "n1", "value": 1},
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.value(Some("q"), "k1").await, Some(json!("new")));
    assert_eq!(server.value(Some("q"), "n1").await, Some(json!(1)));
}
