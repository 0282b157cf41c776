//! `pykv batch` and the shell's `batch` and `atomic`: several ops in one
//! request (`POST /batch`).
//!
//! Ops come as words on the command line, `get:KEY`, `set:KEY=VALUE`,
//! `del:KEY`, `incr:KEY` or `incr:KEY=BY` (the key ends at the first `=`),
//! or, with no words, as JSON on stdin: an array of the API's op objects,
//! or one object per line (JSON Lines), e.g. from `jq -c`. Without
//! `--atomic`, more ops than a batch holds are sent as several batches in
//! order (a bulk load of any size); a transaction is one request.

use std::borrow::Cow;
use std::io::Read;

use super::commands::parse_value;
use super::exit;
use super::output;
use crate::client::{BatchAnswer, BatchOpBody, BatchResult, Client, Error, Reply};
use crate::store::MAX_BATCH_OPS;

/// The ops a line of words names; VALUEs are strings unless `json_value`.
pub fn ops_from_words(
    words: &[String],
    json_value: bool,
) -> Result<Vec<BatchOpBody<'static>>, Error> {
    words
        .iter()
        .map(|word| op_from_word(word, json_value))
        .collect()
}

fn op_from_word(word: &str, json_value: bool) -> Result<BatchOpBody<'static>, Error> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "batch op {word:?}: {why}; write get:KEY, set:KEY=VALUE, del:KEY, incr:KEY or \
             incr:KEY=BY (or pass JSON ops on stdin)"
        ))
    };
    let (op, rest) = word
        .split_once(':')
        .ok_or_else(|| bad("no `:` after the op"))?;
    let (key, arg) = match rest.split_once('=') {
        Some((key, arg)) => (key, Some(arg)),
        None => (rest, None),
    };
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    let key = Cow::Owned(key.to_owned());
    let (if_match, if_absent) = (None, None);
    Ok(match (op, arg) {
        ("get", None) => BatchOpBody::Get {
            key,
            if_match,
            if_absent,
        },
        ("del" | "delete", None) => BatchOpBody::Delete {
            key,
            if_match,
            if_absent,
        },
        ("set", Some(value)) => BatchOpBody::Set {
            key,
            value: Cow::Owned(parse_value(value, json_value)?),
            ttl: None,
            if_match,
            if_absent,
        },
        ("incr", by) => BatchOpBody::Incr {
            key,
            by: match by {
                None => None,
                Some(by) => Some(by.parse().map_err(|_| bad("BY is not an integer"))?),
            },
            if_match,
            if_absent,
        },
        ("set", None) => return Err(bad("a set needs =VALUE")),
        ("get" | "del" | "delete", Some(_)) => return Err(bad("only set and incr take =")),
        _ => return Err(bad("the op is not get, set, del or incr")),
    })
}

/// The ops of JSON text: an array of op objects, or one per line.
pub fn ops_from_json(text: &str) -> Result<Vec<BatchOpBody<'static>>, Error> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text)
            .map_err(|e| Error::Usage(format!("stdin: not a JSON array of batch ops: {e}")));
    }
    (text.lines().enumerate())
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| Error::Usage(format!("stdin line {}: not a batch op: {e}", i + 1)))
        })
        .collect()
}

/// The ops of stdin (`pykv batch` without words).
pub fn ops_from_stdin() -> Result<Vec<BatchOpBody<'static>>, Error> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Error::Usage(format!("cannot read ops from stdin: {e}")))?;
    ops_from_json(&text)
}

/// Sends the ops (in batches of at most [`MAX_BATCH_OPS`] unless
/// `atomic`), and returns the text to print and the exit code: 0 when
/// every op succeeded, else the code of the worst failure (1 when only
/// keys were missing).
pub fn run(
    kv: &Client,
    ns: Option<&str>,
    ops: &[BatchOpBody<'static>],
    atomic: bool,
    json: bool,
) -> Result<(String, u8), Error> {
    if ops.is_empty() {
        return Err(Error::Usage(
            "batch: no ops; name them (get:KEY set:KEY=VALUE ...) or pipe JSON ops on stdin".into(),
        ));
    }
    let chunk = if atomic { ops.len() } else { MAX_BATCH_OPS };
    let answers: Vec<Reply<BatchAnswer>> = (ops.chunks(chunk))
        .map(|ops| kv.batch(ns, ops, atomic))
        .collect::<Result<_, _>>()?;
    let results = answers.iter().flat_map(|answer| &answer.results);
    let code = results.clone().map(code_of).max().unwrap_or(0);
    let text = match json {
        true => (answers.iter().map(|answer| answer.json()))
            .collect::<Vec<_>>()
            .join("\n"),
        false => results.map(line_of).collect::<Vec<_>>().join("\n"),
    };
    Ok((text, code))
}

/// `OP KEY: what it gave`.
fn line_of(result: &BatchResult) -> String {
    let outcome = match (result.status, result.json_value()) {
        (200, Some(value)) => output::value_text(&value),
        (200, None) if result.op == "delete" => "deleted".into(),
        (200, None) => "OK".into(),
        (status, _) => format!(
            "error {status}: {}",
            result.detail.as_deref().unwrap_or_default()
        ),
    };
    format!("{} {}: {outcome}", result.op, result.key)
}

/// The exit code an op's result stands for, as [`exit`] numbers them.
fn code_of(result: &BatchResult) -> u8 {
    match result.status {
        200..=299 => 0,
        404 => exit::NOT_FOUND,
        400..=499 => exit::USAGE,
        _ => exit::SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_name_ops_and_keys_end_at_the_first_equals() {
        let ops = ops_from_words(
            &words(&["get:user:1", "set:a:b=x=y", "del:k", "incr:n", "incr:n=-3"]),
            false,
        )
        .unwrap();
        let wire = serde_json::to_value(&ops).unwrap();
        assert_eq!(
            wire,
            serde_json::json!([
                {"op": "get", "key": "user:1"},
                {"op": "set", "key": "a:b", "value": "x=y"},
                {"op": "delete", "key": "k"},
                {"op": "incr", "key": "n"},
                {"op": "incr", "key": "n", "by": -3},
            ])
        );
        let json = ops_from_words(&words(&["set:k={\"a\":1}"]), true).unwrap();
        assert_eq!(
            serde_json::to_value(&json).unwrap()[0]["value"],
            serde_json::json!({"a": 1})
        );
        for bad in ["get", "get:", "set:k", "get:k=1", "fly:k", "incr:n=x"] {
            assert!(ops_from_words(&words(&[bad]), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn stdin_takes_an_array_or_json_lines() {
        let array = r#"[{"op":"get","key":"a"},{"op":"set","key":"b","value":1}]"#;
        assert_eq!(ops_from_json(array).unwrap().len(), 2);
        let lines = "{\"op\":\"get\",\"key\":\"a\"}\n\n{\"op\":\"incr\",\"key\":\"n\",\"by\":2}\n";
        assert_eq!(ops_from_json(lines).unwrap().len(), 2);
        let bad = "{\"op\":\"get\",\"key\":\"a\"}\n{\"op\":\"get\",\"kye\":\"a\"}";
        let error = ops_from_json(bad).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
    }
}
