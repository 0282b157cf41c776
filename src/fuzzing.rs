//! Entry points for fuzzing (`fuzz/`, `cargo fuzz`) and for the
//! deterministic mini-fuzz of `tests/security/parser_fuzz.rs`: the parsers
//! that read bytes from outside, behind functions that take bytes and never
//! panic.
//!
//! Not part of the API: hidden from the documentation, may change at any
//! time.
//!
//! The fuzzers run exactly the code the server runs: the log's record
//! decoder and the `POST /set` body parser (`http::SetRequest`, visible to
//! the crate for this).

use std::borrow::Cow;

use crate::http::SetRequest;

/// A decoded log record, reduced to what a fuzzer can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    /// `SET`, `DEL`, `CLEAR` or `TX`.
    pub action: &'static str,
    pub namespace: Option<String>,
    pub key: String,
    /// JSON text of a SET's value.
    pub value: Option<String>,
    pub expires_at: Option<u64>,
}

/// Parses one line of the write-ahead log (without its newline), as
/// recovery does: `Err` with the reason for anything that is not a record.
pub fn decode_log_line(line: &[u8]) -> Result<DecodedRecord, String> {
    use crate::store::Mutation;
    let record = crate::wal::record::Record::decode(line)?;
    if record.transaction().is_some() {
        return Ok(DecodedRecord {
            action: "TX",
            namespace: record.namespace().map(str::to_owned),
            key: String::new(),
            value: None,
            expires_at: None,
        });
    }
    Ok(match record.mutation() {
        Mutation::Set {
            namespace,
            key,
            value,
            expires_at,
        } => DecodedRecord {
            action: "SET",
            namespace: namespace.map(str::to_owned),
            key: key.to_owned(),
            value: Some(value.to_owned()),
            expires_at,
        },
        Mutation::Delete { namespace, key } | Mutation::Evict { namespace, key } => DecodedRecord {
            action: "DEL",
            namespace: namespace.map(str::to_owned),
            key: key.to_owned(),
            value: None,
            expires_at: None,
        },
        Mutation::ClearNamespace { namespace } => DecodedRecord {
            action: "CLEAR",
            namespace: Some(namespace.to_owned()),
            key: String::new(),
            value: None,
            expires_at: None,
        },
        Mutation::Transaction { .. } => unreachable!("a TX record is read above"),
    })
}

/// Encodes a SET record as the log writes it (with its newline), for
/// seeding fuzzers with valid lines.
pub fn encode_set_record(
    namespace: Option<&str>,
    key: &str,
    value_json: &str,
    expires_at: Option<u64>,
    now_ms: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    crate::wal::record::encode(
        &crate::store::Mutation::Set {
            namespace,
            key,
            value: value_json,
            expires_at,
        },
        now_ms,
        &mut out,
    );
    out
}

/// A parsed `POST /set` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSet {
    pub key: String,
    /// JSON text of the value, as it will be stored.
    pub value: String,
    pub ttl: Option<u64>,
    pub namespace: Option<String>,
}

/// Parses a `POST /set` body as the server does: `Err` with the status it
/// would answer (400 or 422) and the detail.
pub fn parse_set_request(body: &[u8]) -> Result<ParsedSet, (u16, String)> {
    match SetRequest::parse(body) {
        Ok(r) => Ok(ParsedSet {
            key: r.key.into_owned(),
            value: r.value.into_owned(),
            ttl: r.ttl,
            namespace: r.namespace.map(Cow::into_owned),
        }),
        Err(e) => {
            let status = match &e {
                crate::http::ApiError::MalformedJson(_) => 400,
                crate::http::ApiError::Invalid(_) => 422,
                _ => 500,
            };
            Err((status, format!("{e:?}")))
        }
    }
}
