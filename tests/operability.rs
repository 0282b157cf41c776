//! Operability endpoints against the real server: `/performance`,
//! `/performance/recent-errors`, `/metrics`, `/openapi.json`, `/docs`, and
//! `--log-format json`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{Server, enc};
use serde_json::{Value, json};

// ---- /performance ---------------------------------------------------------

#[tokio::test]
async fn performance_counts_grow_and_error_rate_reflects_errors() {
    let server = Server::start();
    server.pin_to_one_node(); // a node counts the requests it answers
    let before = server.get("/performance").await;
    assert_eq!(before.status, 200, "{before:?}");
    for field in [
        "total_operations",
        "operations_per_second",
        "error_rate",
        "avg_latency_ms",
        "p95_latency_ms",
        "p99_latency_ms",
        "operation_breakdown",
        "uptime_seconds",
    ] {
        assert!(before.body.get(field).is_some(), "no {field}: {before:?}");
    }
    // Nothing had failed yet.
    assert_eq!(before.body["error_rate"], json!(0.0), "{before:?}");

    for i in 0..5 {
        server.set(Some("app1"), &format!("k{i}"), json!(i)).await;
    }
    assert_eq!(server.value(Some("app1"), "k1").await, Some(json!(1)));
    assert_eq!(server.value(Some("app1"), "absent").await, None); // 404
    let bad = server
        .post_json("/set", &json!({"key": "k", "value": 1, "ttl": -1}))
        .await;
    assert_eq!(bad.status, 422, "{bad:?}");
    let r = server.get("/stats").await;
    assert_eq!(r.status, 200);

    let after = server.get("/performance").await.body;
    let total_before = before.body["total_operations"].as_u64().unwrap();
    let total_after = after["total_operations"].as_u64().unwrap();
    // 5 sets, 2 gets, 1 bad set, 1 stats, and the first /performance.
    assert!(
        total_after >= total_before + 10,
        "{total_before} -> {total_after}"
    );
    let set = &after["operation_breakdown"]["/set"];
    assert_eq!(set["count"], json!(6), "{after}");
    assert_eq!(set["errors"], json!(1), "{after}");
    let get = &after["operation_breakdown"]["/get/{key}"];
    assert_eq!(get["count"], json!(2), "{after}");
    assert_eq!(get["errors"], json!(1), "{after}");
    for op in after["operation_breakdown"].as_object().unwrap().values() {
        let avg = op["avg_latency_ms"].as_f64().unwrap();
        let p95 = op["p95_latency_ms"].as_f64().unwrap();
        assert!(avg > 0.0 && p95 > 0.0, "{op}");
    }
    // 2 errors (the 404 and the 422) out of everything answered.
    let error_rate = after["error_rate"].as_f64().unwrap();
    let expected = 2.0 / total_after as f64;
    assert!(
        (error_rate - expected).abs() < 1e-9,
        "error_rate {error_rate}, expected {expected}: {after}"
    );
    let p95 = after["p95_latency_ms"].as_f64().unwrap();
    let p99 = after["p99_latency_ms"].as_f64().unwrap();
    assert!(p95 > 0.0 && p99 >= p95, "{after}");
    assert!(after["operations_per_second"].as_f64().unwrap() > 0.0);
    assert!(after["uptime_seconds"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn recent_errors_list_the_error_with_its_route_and_detail_but_no_key_or_value() {
    let server = Server::start();
    server.pin_to_one_node(); // a node keeps the errors it answered
    let empty = server.get("/performance/recent-errors").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, json!({"errors": [], "count": 0}));

    let r = server
        .post_json(
            "/set",
            &json!({"key": "k", "value": 1, "ttl": "secret-token-1"}),
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    let r = server.get("/get/secret-key-2?ns=app1").await;
    assert_eq!(r.status, 404);
    let r = server.post_raw("/get/secret-key-3", "{}").await;
    assert_eq!(r.status, 405);
    let r = server.get("/no/such/secret-path-4").await;
    assert_eq!(r.status, 404);

    let r = server.get("/performance/recent-errors").await;
    assert_eq!(r.status, 200);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(r.body["count"], json!(4), "{r:?}");
    assert!(
        !r.text.contains("secret"),
        "a key, value or path leaked: {}",
        r.text
    );
    let first = &errors[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["route"], "/set");
    assert_eq!(first["status"], 422);
    let detail = first["detail"].as_str().unwrap();
    assert!(detail.starts_with("field `ttl`"), "{detail}");
    assert!(first["time"].as_f64().unwrap() > 1.7e9);
    assert_eq!(
        (
            &errors[1]["route"],
            &errors[1]["status"],
            &errors[1]["detail"]
        ),
        (&json!("/get/{key}"), &json!(404), &json!("Key not found"))
    );
    assert_eq!(
        (&errors[2]["route"], &errors[2]["status"]),
        (&json!("/get/{key}"), &json!(405))
    );
    assert_eq!(
        (&errors[3]["route"], &errors[3]["status"]),
        (&json!("unmatched"), &json!(404))
    );
}

#[tokio::test]
async fn recent_errors_keep_only_the_last_hundred() {
    let server = Server::start();
    server.pin_to_one_node(); // a node keeps the errors it answered
    for _ in 0..120 {
        let r = server.post_raw("/set", "[]").await;
        assert_eq!(r.status, 422);
    }
    let r = server.get("/performance/recent-errors").await;
    assert_eq!(r.body["count"], json!(100));
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 100);
}

// ---- /metrics --------------------------------------------------------------

async fn scrape(server: &Server) -> (String, Metrics) {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let metrics = parse_prometheus(&text);
    (text, metrics)
}

/// One sample: labels (sorted) and value.
type Sample = (BTreeMap<String, String>, f64);

struct Metrics {
    /// Family name -> TYPE.
    types: BTreeMap<String, String>,
    /// Sample name (with `_bucket`, `_sum`, `_count`) -> samples in order.
    samples: BTreeMap<String, Vec<Sample>>,
}

impl Metrics {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.get(name)?.iter().find_map(|(l, v)| {
            labels
                .iter()
                .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want))
                .then_some(*v)
        })
    }
}

/// A strict parser of the text format: every sample must belong to a family
/// declared by `# HELP` and `# TYPE` lines before it; label values are
/// quoted; values are floats.
fn parse_prometheus(text: &str) -> Metrics {
    let mut helps = BTreeSet::new();
    let mut types = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "empty HELP for {name}");
            assert!(helps.insert(name.to_owned()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helps.contains(name), "TYPE before HELP: {line}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, value) = line.rsplit_once(' ').expect("sample and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                (name, parse_labels(labels, line))
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample without a TYPE line before it: {line}"
        );
        samples
            .entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    Metrics { types, samples }
}

fn parse_labels(mut s: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("{line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        labels.insert(name.to_owned(), value);
        s = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    labels
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_requests_latencies_and_namespaces() {
    let server = Server::start();
    server.pin_to_one_node(); // a node counts the requests it answers
    server.set(Some("tenant_a"), "k1", json!("v")).await;
    server.set(None, "k2", json!("v")).await;
    assert_eq!(server.value(Some("tenant_a"), "k1").await, Some(json!("v")));
    assert_eq!(server.value(Some("tenant_a"), "nope").await, None);

    let (text, m) = scrape(&server).await;
    let set_ok = [("route", "/set"), ("method", "POST"), ("status", "200")];
    assert_eq!(
        m.value("pykv_http_requests_total", &set_ok),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        m.value(
            "pykv_http_requests_total",
            &[("route", "/get/{key}"), ("status", "404")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(m.types["pykv_http_requests_total"], "counter");
    assert_eq!(m.types["pykv_http_request_duration_seconds"], "histogram");

    // Per namespace, the default one as namespace="".
    assert_eq!(
        m.value("pykv_keys", &[("namespace", "tenant_a")]),
        Some(1.0)
    );
    assert_eq!(m.value("pykv_keys", &[("namespace", "")]), Some(1.0));
    assert_eq!(
        m.value("pykv_cache_hits_total", &[("namespace", "tenant_a")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("pykv_cache_misses_total", &[("namespace", "tenant_a")]),
        Some(1.0)
    );
    assert!(
        m.value("pykv_used_bytes", &[("namespace", "tenant_a")])
            .unwrap()
            > 0.0
    );
    assert_eq!(
        m.value("pykv_evictions_total", &[("namespace", "")]),
        Some(0.0)
    );
    if common::backend_supports("persistence") {
        assert!(m.value("pykv_log_size_bytes", &[]).unwrap() > 0.0);
        assert!(
            m.types
                .contains_key("pykv_last_compaction_timestamp_seconds")
        );
    }

    // Histograms: per route, buckets cumulative, ending with +Inf == count.
    let buckets = &m.samples["pykv_http_request_duration_seconds_bucket"];
    let routes: BTreeSet<&String> = buckets.iter().map(|(l, _)| &l["route"]).collect();
    assert!(routes.contains(&"/set".to_owned()), "{routes:?}");
    for route in routes {
        let series: Vec<(f64, f64)> = buckets
            .iter()
            .filter(|(l, _)| &l["route"] == route)
            .map(|(l, v)| {
                let le = match l["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    le => le.parse().unwrap(),
                };
                (le, *v)
            })
            .collect();
        assert!(series.len() > 5, "{route}: {series:?}");
        assert!(
            series
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{route}: buckets not cumulative: {series:?}"
        );
        let (last_le, last) = *series.last().unwrap();
        assert_eq!(last_le, f64::INFINITY, "{route}");
        let count = m
            .value(
                "pykv_http_request_duration_seconds_count",
                &[("route", route)],
            )
            .unwrap();
        assert_eq!(last, count, "{route}");
        let sum = m
            .value(
                "pykv_http_request_duration_seconds_sum",
                &[("route", route)],
            )
            .unwrap();
        assert!(sum > 0.0, "{route}");
    }

    // The /set counter grows.
    server.set(Some("tenant_a"), "k3", json!("v")).await;
    let (_, m2) = scrape(&server).await;
    assert_eq!(m2.value("pykv_http_requests_total", &set_ok), Some(3.0));
    assert_eq!(
        m2.value("pykv_keys", &[("namespace", "tenant_a")]),
        Some(2.0)
    );
    // The first scrape was counted too, under its template.
    assert_eq!(
        m2.value("pykv_http_requests_total", &[("route", "/metrics")]),
        Some(1.0)
    );
}

/// The `namespace` labels of a per-namespace family, with their values.
fn per_namespace(m: &Metrics, family: &str) -> BTreeMap<String, f64> {
    m.samples[family]
        .iter()
        .map(|(labels, value)| (labels["namespace"].clone(), *value))
        .collect()
}

#[tokio::test]
async fn metrics_give_series_to_the_largest_namespaces_and_sum_the_rest() {
    let server = Server::start_with(&["--metrics-namespace-limit", "3"]);
    // Namespace `n{i}` holds i keys: n8, n7 and n6 are the three largest.
    for i in 1..=8 {
        for k in 0..i {
            server
                .set(Some(&format!("n{i}")), &format!("k{k}"), json!(k))
                .await;
        }
    }
    server.set(None, "d", json!(1)).await;
    assert_eq!(server.value(Some("n2"), "k0").await, Some(json!(0)));

    let (text, m) = scrape(&server).await;
    let keys = per_namespace(&m, "pykv_keys");
    let kept: Vec<&str> = keys.keys().map(String::as_str).collect();
    // The default namespace, the three largest, and one series for the rest.
    assert_eq!(kept, ["", "(other)", "n6", "n7", "n8"], "{text}");
    assert_eq!(keys["n8"], 8.0, "{text}");
    assert_eq!(keys["(other)"], (1..=5).sum::<u32>() as f64, "{text}");
    // Each family still adds up to the server's totals.
    let stats = server.stats().await;
    assert_eq!(keys.values().sum::<f64>(), 37.0, "{text}");
    assert_eq!(stats["total_keys"], 37);
    // Bytes add up to the namespaces' own `used_bytes`; the total also
    // counts each namespace's structures (README, "Bounded memory").
    let bytes = per_namespace(&m, "pykv_used_bytes");
    let entry_bytes: u64 = stats["namespaces"]
        .as_object()
        .unwrap()
        .values()
        .chain([&stats["default_namespace"]])
        .map(|ns| ns["used_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(bytes.values().sum::<f64>(), entry_bytes as f64, "{text}");
    // Only a backend that bounds memory counts its structures.
    if common::backend_supports("limits") {
        assert!(
            stats["used_bytes"].as_u64().unwrap() > entry_bytes,
            "{stats}"
        );
    }
    let hits = per_namespace(&m, "pykv_cache_hits_total");
    assert_eq!(hits["(other)"], 1.0, "the GET in n2: {text}");
    assert_eq!(m.value("pykv_namespaces", &[]), Some(8.0), "{text}");

    // With the limit at 0, every named namespace is summed.
    let server = Server::start_with(&["--metrics-namespace-limit", "0"]);
    server.set(Some("a"), "k", json!(1)).await;
    server.set(Some("b"), "k", json!(1)).await;
    let (text, m) = scrape(&server).await;
    let keys = per_namespace(&m, "pykv_keys");
    assert_eq!(
        keys,
        BTreeMap::from([(String::new(), 0.0), ("(other)".into(), 2.0)]),
        "{text}"
    );

    // Under the limit, no `(other)` series.
    let server = Server::start();
    server.set(Some("a"), "k", json!(1)).await;
    let (text, m) = scrape(&server).await;
    assert!(!text.contains("namespace=\"(other)\""), "{text}");
    assert_eq!(per_namespace(&m, "pykv_keys").len(), 2, "{text}");
}

#[test]
fn metrics_namespace_limit_out_of_range_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["10001", "-1", "many"] {
        let flag = format!("--metrics-namespace-limit={bad}");
        let (code, stderr) = common::run_to_exit(dir.path(), &[&flag]);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("--metrics-namespace-limit"),
            "{bad}: {stderr}"
        );
    }
}

// ---- /openapi.json -----------------------------------------------------------

/// `(method, path)` of every route of the API, from the server's own
/// table (the console's routes are outside the API).
fn router_routes() -> BTreeSet<(String, String)> {
    pykv::http::routes()
        .into_iter()
        .filter(|(_, path)| path != "/" && !path.starts_with("/ui"))
        .map(|(method, path)| (method.to_lowercase(), path))
        .collect()
}

#[tokio::test]
async fn openapi_document_is_openapi_3_and_has_every_route() {
    let server = Server::start();
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = &r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "PyKV");
    assert!(doc["info"]["version"].is_string());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routes = router_routes();
    assert!(routes.len() >= 17, "{routes:?}");
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");

    // Every documented operation is really served (no "no route" 404, no 405).
    for (method, path) in &documented {
        let url = server.url(
            &path
                .replace("{key}", "some-key")
                .replace("{ns}", "some_ns")
                .replace("{file}", "swagger-ui.css"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = server
            .client
            .request(method.clone(), url)
            .json(&json!({"key": "k", "value": 1}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        // A change feed never ends: its head says it was routed.
        let streamed = response.headers().get("content-type")
            == Some(&reqwest::header::HeaderValue::from_static(
                "text/event-stream",
            ));
        let text = match streamed {
            true => String::new(),
            false => response.text().await.unwrap(),
        };
        assert!(
            status != 405 && !text.contains("no route for"),
            "{method} {path}: {status} {text}"
        );
    }

    // Every error status names the shared error schema.
    let error_ref = json!("#/components/schemas/ErrorBody");
    let set_responses = &doc["paths"]["/set"]["post"]["responses"];
    for status in ["400", "413", "422", "503", "507"] {
        assert_eq!(
            set_responses[status]["content"]["application/json"]["schema"]["$ref"], error_ref,
            "{status}"
        );
    }
    assert_eq!(
        doc["paths"]["/get/{key}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
            ["$ref"],
        error_ref
    );
}

/// The schema of an answer in the document, `$ref`s resolved.
fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"];
    resolve(doc, schema)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A light check of an answer against its object schema: every required
/// property is there, and no property is undeclared.
fn check_against(doc: &Value, schema: &Value, answer: &Value, what: &str) {
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object schema: {schema}"));
    let answer = answer.as_object().unwrap();
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap();
        assert!(
            answer.contains_key(required),
            "{what}: `{required}` missing"
        );
    }
    for (key, value) in answer {
        let property = properties
            .get(key)
            .unwrap_or_else(|| panic!("{what}: `{key}` is not in the schema"));
        let property = resolve(doc, property);
        check_value(property, value, &format!("{what}.{key}"));
        if value.is_object() && property["properties"].is_object() {
            check_against(doc, property, value, &format!("{what}.{key}"));
        }
    }
}

/// A value against its property's schema: its JSON type is one the
/// schema allows, and a status word is one of the schema's `enum`.
fn check_value(property: &Value, value: &Value, what: &str) {
    if let Some(words) = property["enum"].as_array() {
        assert!(
            words.contains(value),
            "{what}: {value} is not one of {words:?}"
        );
    }
    let types: Vec<&str> = match &property["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let allowed = types.contains(&found) || (found == "integer" && types.contains(&"number"));
    assert!(allowed, "{what}: {value} is not of type {types:?}");
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let server = Server::start();
    let doc = server.get("/openapi.json").await.body;
    let set = server.set(Some("app1"), "k", json!({"a": 1})).await;
    let mut cases = vec![
        ("post", "/set", set.body),
        ("get", "/get/{key}", server.get("/get/k?ns=app1").await.body),
        ("get", "/namespaces", server.get("/namespaces").await.body),
        (
            "get",
            "/namespaces/{ns}/keys",
            server.get("/namespaces/app1/keys").await.body,
        ),
        ("get", "/stats", server.get("/stats").await.body),
        ("get", "/stats", server.get("/stats?ns=app1").await.body),
        ("get", "/health", server.get("/health?ns=app1").await.body),
        ("get", "/health", server.get("/health").await.body),
        ("get", "/keys", server.get("/keys?ns=app1").await.body),
        ("get", "/performance", server.get("/performance").await.body),
        (
            "get",
            "/performance/recent-errors",
            server.get("/performance/recent-errors").await.body,
        ),
        (
            "delete",
            "/delete/{key}",
            server.delete("/delete/k?ns=app1").await.body,
        ),
    ];
    if common::backend_supports("quotas") {
        cases.push(("get", "/quota", server.get("/quota?ns=app1").await.body));
        let put = server.client.put(server.url("/quota?ns=app1"));
        let put = server.send(put.body(r#"{"max_keys": 10}"#)).await.body;
        cases.push(("put", "/quota", put));
    }
    let clear = server.delete("/namespaces/app1").await.body;
    cases.push(("delete", "/namespaces/{ns}", clear));
    if common::backend_supports("compaction") {
        let compact = server.post_raw("/compact", "").await.body;
        cases.push(("post", "/compact", compact));
    }
    for (method, path, answer) in cases {
        let schema = answer_schema(&doc, method, path);
        check_against(&doc, schema, &answer, &format!("{method} {path}"));
    }
}

// ---- /docs -------------------------------------------------------------------

/// Values of `attr="..."` in the HTML.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn docs_page_works_offline_every_asset_is_served_here() {
    let server = Server::start();
    let response = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page names another host: {html}"
    );

    let assets: Vec<&str> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .collect();
    assert!(assets.len() >= 2, "{assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for asset in &assets {
        assert!(asset.starts_with('/'), "not served by this server: {asset}");
        let response = server.client.get(server.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let body = response.bytes().await.unwrap();
        assert!(body.len() > 100, "{asset}: {} bytes", body.len());
    }
    // The initializer points at this server's own document.
    let init = server.text("/docs/swagger-initializer.js").await;
    assert!(init.contains("\"/openapi.json\""), "{init}");
    let missing = server.get("/docs/nope.js").await;
    assert_eq!(missing.status, 404);
}

// ---- --log-format json -------------------------------------------------------

#[tokio::test]
async fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pykv"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info,pykv=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("PyKV listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let collector = std::thread::spawn(move || {
        let mut text = String::new();
        BufReader::new(stderr).read_to_string(&mut text).unwrap();
        text
    });

    pykv::tls::install_default_provider();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let secret = "secret-key-in-path";
    let r = client
        .get(format!("{base}/get/{}", enc(secret)))
        .header("authorization", "Bearer secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client
        .post(format!("{base}/set"))
        .json(&json!({"key": "k", "value": "secret-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(child.wait().unwrap().success());
    let text = collector.join().unwrap();

    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"),
        "no info line: {text}"
    );
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request" && l["fields"]["route"] == "/get/{key}")
        .unwrap_or_else(|| panic!("no request line for /get/{{key}}: {text}"));
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["fields"]["method"], "GET");
    assert_eq!(request["fields"]["status"], 404);
    assert!(request["fields"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        !text.contains("secret"),
        "a key, value or token leaked: {text}"
    );
}

#[tokio::test]
async fn metrics_count_expirations_compactions_and_log_syncs() {
    if !common::backend_supports("compaction") {
        return;
    }
    let server = Server::start_with(&["--fsync", "always"]);
    let r = server
        .post_json("/set?ns=t", &json!({"key": "short", "value": 1, "ttl": 1}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    server.set(Some("t"), "stays", json!(1)).await;
    let r = server.post_json("/compact", &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");

    // The active expiry cycle frees the key by itself, without a GET.
    let mut expired = 0.0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, m) = scrape(&server).await;
        expired = m
            .value("pykv_expirations_total", &[("namespace", "t")])
            .unwrap_or(0.0);
        if expired >= 1.0 && m.value("pykv_compactions_total", &[]) == Some(1.0) {
            break;
        }
    }
    assert_eq!(expired, 1.0);
    let (text, m) = scrape(&server).await;
    assert_eq!(m.types["pykv_expirations_total"], "counter");
    assert_eq!(m.value("pykv_compactions_total", &[]), Some(1.0), "{text}");
    assert_eq!(m.types["pykv_wal_sync_duration_seconds"], "histogram");
    let syncs = m
        .value("pykv_wal_sync_duration_seconds_count", &[])
        .unwrap();
    assert!(
        syncs >= 2.0,
        "every acknowledged write under always is synced: {text}"
    );
    assert_eq!(
        m.value("pykv_wal_sync_duration_seconds_bucket", &[("le", "+Inf")]),
        Some(syncs)
    );
    // Under always every record goes through the writer thread, which
    // syncs it before the answer: none is written by a worker.
    assert_eq!(m.types["pykv_log_records_total"], "counter");
    assert_eq!(
        m.value("pykv_log_records_total", &[("by", "worker")]),
        Some(0.0),
        "{text}"
    );
    assert!(
        m.value("pykv_log_records_total", &[("by", "writer")])
            .unwrap()
            >= 2.0
    );
}

#[tokio::test]
async fn every_log_record_is_counted_once_whoever_wrote_it() {
    if !common::backend_supports("compaction") {
        return;
    }
    // Under everysec a record is written by its request's worker when the
    // writer is idle and the kernel far from throttling, by the writer
    // thread otherwise; which one depends on the machine's dirty memory,
    // but every record is written, and counted, exactly once.
    let server = Server::start_with(&["--fsync", "everysec"]);
    for i in 0..20 {
        server.set(Some("t"), &format!("k{i}"), json!(i)).await;
    }
    let (text, m) = scrape(&server).await;
    let by = |who| m.value("pykv_log_records_total", &[("by", who)]).unwrap();
    assert_eq!(by("worker") + by("writer"), 20.0, "{text}");
}
