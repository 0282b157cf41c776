//! The types against the bytes: what the server encodes, the client
//! decodes; the seed's Python server's answers decode too; the schemas name
//! the same status words as the wire.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::PartialSchema;

use super::*;

/// Encodes `answer`, checks the bytes, decodes them, checks the value.
fn round_trip<T>(answer: &T, wire: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_string(answer).unwrap(), wire);
    let decoded: T = serde_json::from_str(wire).unwrap();
    assert_eq!(&decoded, answer);
}

#[test]
fn borrowed_answers_encode_as_the_seed_and_decode_owned() {
    let key = String::from("user:1");
    round_trip(
        &SetAnswer {
            key: Cow::Borrowed(&key),
            namespace: Some(Cow::Borrowed("app1")),
            status: SetStatus::Success,
        },
        r#"{"key":"user:1","namespace":"app1","status":"success"}"#,
    );
    round_trip(
        &NamespacesAnswer {
            count: 2,
            namespaces: vec![Cow::Borrowed("a"), Cow::Borrowed("b")],
        },
        r#"{"count":2,"namespaces":["a","b"]}"#,
    );
    round_trip(
        &ErrorBody {
            detail: Cow::Borrowed("Key not found"),
        },
        r#"{"detail":"Key not found"}"#,
    );
}

#[test]
fn answers_keep_the_servers_field_order() {
    round_trip(
        &DeleteAnswer {
            key: "k".into(),
            namespace: None,
            status: DeleteStatus::Deleted,
        },
        r#"{"key":"k","namespace":null,"status":"deleted"}"#,
    );
    round_trip(
        &ClearAnswer {
            keys_deleted: 3,
            namespace: "app1".into(),
            status: ClearStatus::Cleared,
        },
        r#"{"keys_deleted":3,"namespace":"app1","status":"cleared"}"#,
    );
    round_trip(
        &HealthAnswer {
            namespace: None,
            status: HealthStatus::Healthy,
            store_size: 3,
        },
        r#"{"status":"healthy","store_size":3}"#,
    );
    round_trip(
        &UnhealthyAnswer {
            detail: "the disk is full".into(),
            status: UnhealthyStatus::Unhealthy,
        },
        r#"{"detail":"the disk is full","status":"unhealthy"}"#,
    );
    round_trip(
        &KeysAnswer {
            namespace: Some("n".into()),
            keys: vec!["a".into()],
            cursor: Some("a".into()),
        },
        r#"{"namespace":"n","keys":["a"],"cursor":"a"}"#,
    );
    let figures = NamespaceStats {
        cache_hits: 1,
        cache_misses: 2,
        evictions: 3,
        expirations: 4,
        total_keys: 5,
        used_bytes: 6,
    };
    let counters = r#"{"cache_hits":1,"cache_misses":2,"evictions":3,"expirations":4,"total_keys":5,"used_bytes":6}"#;
    round_trip(
        &StatsAnswer {
            cache_hits: 1,
            cache_misses: 2,
            default_namespace: NamespaceStats::default(),
            evictions: 3,
            expirations: 4,
            last_compaction: None,
            log_size: Some(7),
            max_bytes: Some(8),
            max_keys: None,
            namespace: Some(Cow::Borrowed("app1")),
            namespace_stats: Some(figures),
            namespaces: BTreeMap::from([(Cow::Borrowed("app1"), figures)]),
            total_keys: 5,
            uptime_seconds: 1.5,
            used_bytes: 6,
        },
        &format!(
            r#"{{"cache_hits":1,"cache_misses":2,"default_namespace":{zero},"evictions":3,"expirations":4,"last_compaction":null,"log_size":7,"max_bytes":8,"max_keys":null,"namespace":"app1","namespace_stats":{counters},"namespaces":{{"app1":{counters}}},"total_keys":5,"uptime_seconds":1.5,"used_bytes":6}}"#,
            zero = serde_json::to_string(&NamespaceStats::default()).unwrap(),
        ),
    );
}

#[test]
fn get_answers_are_written_as_serde_would_write_them() {
    let values = [r#"{"a":[1,2.5],"b":null}"#, r#""v""#, "0", "true", "[]"];
    let keys = ["k", "a/b", "k\"é\\x", "\u{1}\u{7f}", "日本"];
    for value in values {
        for key in keys {
            for namespace in [None, Some("app1")] {
                let mut out = Vec::new();
                let found = GetAnswer::write(&mut out, key, namespace, |out| {
                    out.extend_from_slice(value.as_bytes());
                    Ok::<_, ()>(true)
                });
                assert_eq!(found, Ok(true));
                let answer = GetAnswer {
                    key: key.into(),
                    value: serde_json::from_str(value).unwrap(),
                    namespace: namespace.map(Into::into),
                };
                let wire = String::from_utf8(out).unwrap();
                round_trip(&answer, &wire);
            }
        }
    }
    let mut out = Vec::new();
    assert_eq!(
        GetAnswer::write(&mut out, "k", None, |_| Ok::<_, ()>(false)),
        Ok(false)
    );
    assert_eq!(
        GetAnswer::write(&mut out, "k", None, |_| Err::<bool, _>(7)),
        Err(7)
    );
}

#[test]
fn the_seed_servers_answers_decode() {
    // NAMESPACES.md's `/stats`: the Python server sends no more than this.
    let stats: StatsAnswer = serde_json::from_value(json!({
        "total_keys": 250, "cache_hits": 1500, "cache_misses": 50,
        "namespaces": {"app1": {"cache_hits": 800, "cache_misses": 20, "total_keys": 100}},
    }))
    .unwrap();
    assert_eq!(stats.total_keys, 250);
    assert_eq!(stats.namespaces["app1"].cache_hits, 800);
    assert_eq!(stats.namespaces["app1"].used_bytes, 0);
    assert_eq!((stats.log_size, stats.namespace), (None, None));
}

#[test]
fn status_words_are_the_same_on_the_wire_in_text_and_in_the_schema() {
    fn check<T: Serialize + PartialSchema + std::fmt::Display>(variants: &[T]) {
        let schema = serde_json::to_value(T::schema()).unwrap();
        let mut words = Vec::new();
        for variant in variants {
            let wire = serde_json::to_value(variant).unwrap();
            assert_eq!(wire, Value::from(variant.to_string()));
            words.push(wire);
        }
        assert_eq!(schema["enum"], Value::from(words));
    }
    check(&[SetStatus::Success]);
    check(&[DeleteStatus::Deleted]);
    check(&[ClearStatus::Cleared]);
    check(&[HealthStatus::Healthy]);
    check(&[UnhealthyStatus::Unhealthy]);
    check(&[
        CompactStatus::CompactionStarted,
        CompactStatus::CompactionAlreadyRunning,
    ]);
}

/// A time decodes to the very `f64` the server encoded, so a client that
/// re-encodes an answer writes the same digits. serde_json's default float
/// parser is off by one unit in the last place for some 17-digit values
/// (the `float_roundtrip` feature makes it exact); CI once met this one.
#[test]
fn times_decode_to_the_exact_float() {
    let wire = r#"{"errors":[{"time":1796023550.7708945,"method":"GET","route":"/get/{key}","status":404,"detail":"Key not found"}],"count":1}"#;
    let decoded: RecentErrors = serde_json::from_str(wire).unwrap();
    assert_eq!(serde_json::to_string(&decoded).unwrap(), wire);
}
