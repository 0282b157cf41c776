//! The log's record format: the seed's JSON lines.
//!
//! ```json
//! {"timestamp":1732550000.123,"action":"SET","key":"user:123","value":"alice","namespace":"app1","ttl":3600,"expires_at":1732553600123}
//! ```
//!
//! `timestamp`, `action`, `key`, `value`, `namespace` and `ttl` are PyKV's
//! own fields, written in every record (`null` when empty) as PyKV writes
//! them, so a log written by PyKV loads unchanged (its TTLs count from each
//! record's `timestamp`), and one written here reads as PyKV's. `expires_at` (milliseconds since the
//! epoch) is ours: it keeps a deadline exact through compactions. A clear
//! is one record, `{"action":"CLEAR","namespace":...}`.
//!
//! A transaction (`POST /batch` with `"atomic": true`) is one record too,
//! `{"action":"TX","namespace":...,"ops":[<SET or DEL record>,...]}`,
//! holding a whole record for each key it wrote. One line, so that a
//! crash leaves all of it in the log or, torn, none: recovery drops a torn
//! last line whatever it holds. (PyKV's own server does not know `TX`.)

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::store::Mutation;

mod fast;

/// Appends `mutation` as one JSON line to `out`.
pub fn encode(mutation: &Mutation<'_>, now_ms: u64, out: &mut Vec<u8>) {
    encode_object(mutation, now_ms, out);
    out.push(b'\n');
}

/// Appends `mutation` as one JSON object, without the line's end.
fn encode_object(mutation: &Mutation<'_>, now_ms: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":");
    push_int(out, now_ms / 1000);
    out.push(b'.');
    let millis = now_ms % 1000;
    out.extend_from_slice(&[
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
    ]);
    match *mutation {
        Mutation::Set {
            namespace,
            key,
            value,
            expires_at,
        } => {
            out.extend_from_slice(b",\"action\":\"SET\",\"key\":");
            push_str(out, key);
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(value.as_bytes());
            push_namespace(out, namespace);
            out.extend_from_slice(b",\"ttl\":");
            match expires_at {
                Some(at) => {
                    // Whole seconds left, rounded up, for readers that only
                    // know PyKV's `ttl`; ours read the exact `expires_at`.
                    push_int(out, at.saturating_sub(now_ms).div_ceil(1000).max(1));
                    out.extend_from_slice(b",\"expires_at\":");
                    push_int(out, at);
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        Mutation::Delete { namespace, key } => {
            out.extend_from_slice(b",\"action\":\"DEL\",\"key\":");
            push_str(out, key);
            out.extend_from_slice(b",\"value\":null");
            push_namespace(out, namespace);
            out.extend_from_slice(b",\"ttl\":null");
        }
        Mutation::Evict { namespace, key } => {
            // A DEL to every reader, PyKV's included; the mark is for people.
            out.extend_from_slice(b",\"action\":\"DEL\",\"key\":");
            push_str(out, key);
            out.extend_from_slice(b",\"value\":null");
            push_namespace(out, namespace);
            out.extend_from_slice(b",\"ttl\":null,\"evicted\":true");
        }
        Mutation::ClearNamespace { namespace } => {
            out.extend_from_slice(b",\"action\":\"CLEAR\",\"key\":null,\"value\":null");
            push_namespace(out, Some(namespace));
            out.extend_from_slice(b",\"ttl\":null");
        }
        Mutation::Transaction { namespace, writes } => {
            out.extend_from_slice(b",\"action\":\"TX\",\"key\":null,\"value\":null");
            push_namespace(out, namespace);
            out.extend_from_slice(b",\"ttl\":null,\"ops\":[");
            for (i, write) in writes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_object(write, now_ms, out);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
}

fn push_int(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` as a JSON string, exactly as serde_json writes it. A string with
/// nothing to escape (no `"`, `\\` or control character), the usual key or
/// namespace, is copied between quotes at once, without serde_json's
/// per-byte escape loop.
fn push_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        serde_json::to_writer(out, s).expect("writing a string to a Vec cannot fail");
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn push_namespace(out: &mut Vec<u8>, namespace: Option<&str>) {
    out.extend_from_slice(b",\"namespace\":");
    match namespace {
        Some(ns) => push_str(out, ns),
        None => out.extend_from_slice(b"null"),
    }
}

/// A record read back from the log, borrowing from the line it came from.
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "text")]
    key: Option<Cow<'a, str>>,
    /// The value's raw JSON text.
    #[serde(borrow, default, deserialize_with = "raw_text")]
    value: Option<&'a str>,
    #[serde(borrow, default, deserialize_with = "text")]
    namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    ttl: Option<f64>,
    #[serde(default)]
    expires_at: Option<u64>,
    /// A transaction's records.
    #[serde(borrow, default)]
    ops: Option<Vec<Record<'a>>>,
}

/// An optional string, borrowed from the line unless it holds an escape.
///
/// Why not serde's own `Option<Cow<str>>`: serde borrows a `Cow` only when
/// it is the field's whole type; inside an `Option` it always copies, an
/// allocation for every key and namespace replayed.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(d)?.map(|text| text.0))
}

/// A value's raw JSON text, `Some` even for an explicit `null`.
fn raw_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    crate::json::present(d).map(|raw| raw.map(RawValue::get))
}

impl<'a> Record<'a> {
    /// Parses one line (without its newline).
    pub fn decode(line: &'a [u8]) -> Result<Self, String> {
        let record = match fast::decode(line) {
            Some(record) => record,
            None => serde_json::from_slice(line).map_err(|e| e.to_string())?,
        };
        record.check()?;
        Ok(record)
    }

    fn check(&self) -> Result<(), String> {
        let needs = |field: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(format!("{} record without `{field}`", self.action))
            }
        };
        match &*self.action {
            "SET" => {
                needs("key", self.key.is_some())?;
                needs("value", self.value.is_some())
            }
            "DEL" | "DELETE" => needs("key", self.key.is_some()),
            "CLEAR" | "CLEAR_NAMESPACE" => needs("namespace", self.namespace.is_some()),
            "TX" => {
                let ops = self.ops.as_deref().ok_or("TX record without `ops`")?;
                for op in ops {
                    if !matches!(&*op.action, "SET" | "DEL" | "DELETE") {
                        return Err(format!("a TX record holds a {} record", op.action));
                    }
                    op.check()?;
                }
                Ok(())
            }
            other => Err(format!("unknown action {other:?}")),
        }
    }

    /// The record's namespace (`None`: the default one).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The mutation of a SET or a DEL whose key and namespace are
    /// borrowed from the line itself (written without escapes, as nearly
    /// all are), for as long as the line: replay gathers such writes by
    /// namespace. `None` for any other record.
    pub fn plain_write(&self) -> Option<Mutation<'a>> {
        let namespace = match &self.namespace {
            None => None,
            Some(Cow::Borrowed(name)) => Some(*name),
            Some(Cow::Owned(_)) => return None,
        };
        let Some(Cow::Borrowed(key)) = self.key else {
            return None;
        };
        self.write_of(namespace, key)
    }

    /// The SET or DEL of this record for `key` in `namespace`; `None` for
    /// any other action.
    fn write_of<'k>(&self, namespace: Option<&'k str>, key: &'k str) -> Option<Mutation<'k>>
    where
        'a: 'k,
    {
        match &*self.action {
            "SET" => Some(Mutation::Set {
                namespace,
                key,
                value: self.value.unwrap_or("null"),
                expires_at: self.expires_at(),
            }),
            "DEL" | "DELETE" => Some(Mutation::Delete { namespace, key }),
            _ => None,
        }
    }

    /// The records of a transaction, to be applied together; `None` for
    /// any other record.
    pub fn transaction(&self) -> Option<&[Record<'a>]> {
        match &*self.action {
            "TX" => self.ops.as_deref(),
            _ => None,
        }
    }

    /// The deadline of a SET: ours is exact; PyKV's counts `ttl` from the
    /// record's `timestamp`.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at.or_else(|| {
            let ttl = self.ttl.filter(|t| *t > 0.0)?;
            let since = self.timestamp.unwrap_or(0.0);
            Some(((since + ttl) * 1000.0).round() as u64)
        })
    }

    /// The mutation this record stands for (of a transaction: see
    /// [`Record::transaction`]).
    pub fn mutation(&self) -> Mutation<'_> {
        let namespace = self.namespace.as_deref();
        let key = self.key.as_deref().unwrap_or_default();
        self.write_of(namespace, key)
            .unwrap_or(Mutation::ClearNamespace {
                namespace: namespace.unwrap_or_default(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Mutation<'_>) {
        let mut line = Vec::new();
        encode(&m, 1_732_550_000_123, &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let record = Record::decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(record.mutation(), m);
    }

    #[test]
    fn every_mutation_round_trips() {
        round_trip(Mutation::Set {
            namespace: Some("app1"),
            key: "user:123",
            value: r#"{"a":[1,"x"]}"#,
            expires_at: Some(1_732_553_600_123),
        });
        round_trip(Mutation::Set {
            namespace: None,
            key: "ключ \"q\"\n/?#%",
            value: "null",
            expires_at: None,
        });
        round_trip(Mutation::Delete {
            namespace: None,
            key: "a:b",
        });
        round_trip(Mutation::ClearNamespace { namespace: "app1" });
        let mut line = Vec::new();
        encode(
            &Mutation::Evict {
                namespace: None,
                key: "k",
            },
            0,
            &mut line,
        );
        let record = Record::decode(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            record.mutation(),
            Mutation::Delete {
                namespace: None,
                key: "k"
            }
        );
    }

    /// The log's strings are byte for byte serde_json's, with or without
    /// the shortcut: every ASCII byte (each control character, the quote,
    /// the backslash, DEL) and some beyond ASCII.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("k{}:1", b as char)).collect();
        samples
            .extend(["", "user:123", "ключ", "😀 a\u{e9}", "\u{2028}\u{2029}"].map(String::from));
        for s in samples {
            let mut ours = Vec::new();
            push_str(&mut ours, &s);
            assert_eq!(ours, serde_json::to_vec(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn writes_the_seed_fields() {
        let mut line = Vec::new();
        let m = Mutation::Set {
            namespace: Some("app1"),
            key: "user:123",
            value: "\"alice\"",
            expires_at: Some(1_732_553_600_123),
        };
        encode(&m, 1_732_550_000_123, &mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["timestamp"], 1_732_550_000.123);
        assert_eq!(v["action"], "SET");
        assert_eq!(v["key"], "user:123");
        assert_eq!(v["value"], "alice");
        assert_eq!(v["namespace"], "app1");
        assert_eq!(v["ttl"], 3600);
        assert_eq!(v["expires_at"], 1_732_553_600_123u64);
        for m in [
            Mutation::Set {
                namespace: None,
                key: "k",
                value: "1",
                expires_at: None,
            },
            Mutation::Delete {
                namespace: None,
                key: "k",
            },
            Mutation::ClearNamespace { namespace: "n" },
        ] {
            line.clear();
            encode(&m, 0, &mut line);
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            for field in ["timestamp", "action", "key", "value", "namespace", "ttl"] {
                assert!(v.get(field).is_some(), "{field} missing in {v}");
            }
        }
    }

    #[test]
    fn reads_pykv_records() {
        let line = br#"{"timestamp": 1234567890.123, "action": "SET", "key": "user:123", "value": "alice", "namespace": "app1", "ttl": 3600}"#;
        let record = Record::decode(line).unwrap();
        assert_eq!(
            record.mutation(),
            Mutation::Set {
                namespace: Some("app1"),
                key: "user:123",
                value: "\"alice\"",
                expires_at: Some(1_234_571_490_123),
            }
        );
        let line = br#"{"timestamp": 1.0, "action": "DEL", "key": "app1:x", "value": null, "namespace": null}"#;
        assert_eq!(
            Record::decode(line).unwrap().mutation(),
            Mutation::Delete {
                namespace: None,
                key: "app1:x"
            }
        );
    }

    #[test]
    fn a_transaction_is_one_line_of_whole_records() {
        let writes = [
            Mutation::Set {
                namespace: Some("n"),
                key: "a",
                value: "{\"x\":[1]}",
                expires_at: Some(1_732_553_600_123),
            },
            Mutation::Delete {
                namespace: Some("n"),
                key: "b",
            },
        ];
        let mut line = Vec::new();
        let tx = Mutation::Transaction {
            namespace: Some("n"),
            writes: &writes,
        };
        encode(&tx, 1_732_550_000_123, &mut line);
        assert_eq!(memchr::memchr_iter(b'\n', &line).count(), 1);
        let record = Record::decode(&line[..line.len() - 1]).unwrap();
        let parts: Vec<_> = (record.transaction().unwrap().iter())
            .map(Record::mutation)
            .collect();
        assert_eq!(parts, writes);
        // Torn anywhere, it is not a record.
        for cut in [line.len() / 3, line.len() / 2, line.len() - 2] {
            assert!(Record::decode(&line[..cut]).is_err(), "cut at {cut}");
        }
        let nested = br#"{"action":"TX","ops":[{"action":"CLEAR","namespace":"n"}]}"#;
        assert!(Record::decode(nested).is_err());
        assert!(Record::decode(br#"{"action":"TX"}"#).is_err());
    }

    #[test]
    fn borrows_keys_and_namespaces_without_escapes() {
        let line = br#"{"timestamp":1.5,"action":"SET","key":"k:1","value":"v","namespace":"ns"}"#;
        let record = Record::decode(line).unwrap();
        assert_eq!(record.plain_write(), Some(record.mutation()));
        let line = br#"{"action":"DEL","key":"k","namespace":null}"#;
        let record = Record::decode(line).unwrap();
        let delete = Mutation::Delete {
            namespace: None,
            key: "k",
        };
        assert_eq!(record.plain_write(), Some(delete));
        // An escape needs a copy: such a write is applied on its own.
        let line = br#"{"action":"SET","key":"k\n","value":1,"namespace":"ns"}"#;
        let record = Record::decode(line).unwrap();
        assert_eq!(record.plain_write(), None);
        assert_eq!(
            record.mutation(),
            Mutation::Set {
                namespace: Some("ns"),
                key: "k\n",
                value: "1",
                expires_at: None
            }
        );
        let line = br#"{"action":"CLEAR","namespace":"ns"}"#;
        assert_eq!(Record::decode(line).unwrap().plain_write(), None);
    }

    #[test]
    fn refuses_incomplete_records() {
        assert!(Record::decode(br#"{"action":"SET","key":"k"}"#).is_err());
        assert!(Record::decode(br#"{"action":"DEL"}"#).is_err());
        assert!(Record::decode(br#"{"action":"NOPE","key":"k"}"#).is_err());
        assert!(Record::decode(br#"{"action":"SET","key":"k","val"#).is_err());
    }
}
