//! The client's commands: what each asks the server ([`Action`]), and the
//! text it prints. `pykv get ...` and the shell's `get ...` both end here.

use serde_json::Value;

use super::output;
use crate::client::{BatchOpBody, Client, Error, Precondition};
use crate::config::{ClientArgs, Command, NsCommand};

/// One request to the server, as the user asked for it. `ns: None` is the
/// default namespace (or, for `Stats` and `Health`, the whole server).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Set {
        ns: Option<String>,
        key: String,
        value: Value,
        ttl: Option<u64>,
        /// `Some(Some(tag))`: if it matches; `Some(None)`: if absent.
        only_if: Option<Option<String>>,
    },
    Incr {
        ns: Option<String>,
        key: String,
        by: i64,
        ttl: Option<u64>,
    },
    /// `POST /batch`: handled by [`super::batch::run`], whose exit code
    /// reflects its ops.
    Batch {
        ns: Option<String>,
        ops: Vec<BatchOpBody<'static>>,
        atomic: bool,
    },
    Get {
        ns: Option<String>,
        key: String,
    },
    Ttl {
        ns: Option<String>,
        key: String,
    },
    Expire {
        ns: Option<String>,
        key: String,
        ttl: Option<u64>,
    },
    Del {
        ns: Option<String>,
        key: String,
        if_match: Option<String>,
    },
    Etag {
        ns: Option<String>,
        key: String,
    },
    NsList,
    NsSize {
        ns: String,
    },
    NsClear {
        ns: String,
    },
    Stats {
        ns: Option<String>,
    },
    Health {
        ns: Option<String>,
    },
    Compact,
}

/// How answers are printed: readable, or the server's JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The action of a one-shot subcommand, and how to reach the server.
/// `Serve` and `Shell` are not one-shot: they never get here.
pub fn from_command(command: Command) -> Result<(Action, ClientArgs), Error> {
    Ok(match command {
        Command::Set(a) => {
            let value = parse_value(&a.value, a.json_value)?;
            let only_if = match (a.if_match, a.if_absent) {
                (Some(tag), _) => Some(Some(tag)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let action = Action::Set {
                ns: a.ns,
                key: a.key,
                value,
                ttl: a.ttl,
                only_if,
            };
            (action, a.client)
        }
        Command::Incr(a) => (
            Action::Incr {
                ns: a.ns,
                key: a.key,
                by: a.by,
                ttl: a.ttl,
            },
            a.client,
        ),
        Command::Batch(a) => {
            let ops = match a.ops.is_empty() {
                true => super::batch::ops_from_stdin()?,
                false => super::batch::ops_from_words(&a.ops, a.json_value)?,
            };
            let action = Action::Batch {
                ns: a.ns,
                ops,
                atomic: a.atomic,
            };
            (action, a.client)
        }
        Command::Ttl(a) => (
            Action::Ttl {
                ns: a.ns,
                key: a.key,
            },
            a.client,
        ),
        Command::Expire(a) => (
            Action::Expire {
                ns: a.ns,
                key: a.key,
                ttl: a.ttl.0,
            },
            a.client,
        ),
        Command::Get(a) => (
            Action::Get {
                ns: a.ns,
                key: a.key,
            },
            a.client,
        ),
        Command::Del(a) => (
            Action::Del {
                ns: a.key.ns,
                key: a.key.key,
                if_match: a.if_match,
            },
            a.key.client,
        ),
        Command::Etag(a) => (
            Action::Etag {
                ns: a.ns,
                key: a.key,
            },
            a.client,
        ),
        Command::Ns(a) => (ns_action(a.command), a.client),
        Command::Stats(a) => (Action::Stats { ns: a.ns }, a.client),
        Command::Health(a) => (Action::Health { ns: a.ns }, a.client),
        Command::Compact(client) => (Action::Compact, client),
        Command::Serve(_)
        | Command::Export(_)
        | Command::Import(_)
        | Command::Migrate(_)
        | Command::Shell(_)
        | Command::Watch(_)
        | Command::Token(_)
        | Command::Config(_)
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("not a one-shot client command")
        }
    })
}

fn ns_action(command: NsCommand) -> Action {
    match command {
        NsCommand::List => Action::NsList,
        NsCommand::Size { ns } => Action::NsSize { ns },
        NsCommand::Clear { ns } => Action::NsClear { ns },
    }
}

/// VALUE as sent: a JSON string by default, so that `pykv set k 42`
/// stores the text the user typed (as the seed, whose values are
/// strings); parsed as JSON only with `--json-value`.
pub fn parse_value(text: &str, as_json: bool) -> Result<Value, Error> {
    if !as_json {
        return Ok(Value::String(text.to_owned()));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::Usage(format!(
            "VALUE is not valid JSON ({e}); quote strings as '\"text\"', or drop --json-value"
        ))
    })
}

/// Sends the action and returns the text to print.
pub fn execute(kv: &Client, action: &Action, format: Format) -> Result<String, Error> {
    let json = format == Format::Json;
    Ok(match action {
        Action::Set {
            ns,
            key,
            value,
            ttl,
            only_if,
        } => {
            let ns = ns.as_deref();
            let answer = match only_if {
                None => kv.set(ns, key, value, *ttl)?,
                Some(Some(tag)) => kv.set_if(ns, key, value, *ttl, Precondition::Matches(tag))?,
                Some(None) => kv.set_if(ns, key, value, *ttl, Precondition::Absent)?,
            };
            pick(json, answer.json(), || "OK".into())
        }
        Action::Incr { ns, key, by, ttl } => {
            let answer = kv.incr(ns.as_deref(), key, *by, *ttl)?;
            pick(json, answer.json(), || answer.value.to_string())
        }
        Action::Batch { ns, ops, atomic } => {
            super::batch::run(kv, ns.as_deref(), ops, *atomic, json)?.0
        }
        Action::Ttl { ns, key } => {
            let answer = kv.ttl(ns.as_deref(), key)?;
            pick(json, answer.json(), || ttl_text(answer.ttl))
        }
        Action::Expire { ns, key, ttl } => {
            let answer = kv.expire(ns.as_deref(), key, *ttl)?;
            pick(json, answer.json(), || ttl_text(answer.ttl))
        }
        Action::Get { ns, key } => {
            let answer = kv.get(ns.as_deref(), key)?;
            pick(json, answer.json(), || output::value_text(&answer.value))
        }
        Action::Del { ns, key, if_match } => {
            let answer = match if_match {
                None => kv.delete(ns.as_deref(), key)?,
                Some(tag) => kv.delete_if(ns.as_deref(), key, tag)?,
            };
            pick(json, answer.json(), || "deleted".into())
        }
        Action::Etag { ns, key } => {
            let answer = kv.get(ns.as_deref(), key)?;
            answer.etag().unwrap_or_default().to_owned()
        }
        Action::NsList => list_namespaces(kv, json)?,
        Action::NsSize { ns } => {
            let answer = kv.namespace_size(ns)?;
            pick(json, answer.json(), || answer.total_keys.to_string())
        }
        Action::NsClear { ns } => {
            let answer = kv.clear_namespace(ns)?;
            pick(json, answer.json(), || output::cleared(&answer))
        }
        Action::Stats { ns } => {
            let answer = kv.stats(ns.as_deref())?;
            pick(json, answer.json(), || output::stats(&answer))
        }
        Action::Health { ns } => {
            let answer = kv.health(ns.as_deref())?;
            pick(json, answer.json(), || output::health(&answer))
        }
        Action::Compact => {
            let answer = kv.compact()?;
            pick(json, answer.json(), || {
                answer.status.as_str().replace('_', " ")
            })
        }
    })
}

/// `GET /namespaces`; the readable form adds each one's counters from
/// `GET /stats`, which lists the same namespaces.
fn list_namespaces(kv: &Client, json: bool) -> Result<String, Error> {
    let list = kv.namespaces()?;
    if json {
        return Ok(list.json().to_owned());
    }
    let stats = kv.stats(None)?;
    Ok(output::namespaces(&list.namespaces, &stats))
}

fn pick(json: bool, raw: &str, text: impl FnOnce() -> String) -> String {
    if json { raw.to_owned() } else { text() }
}

/// A TTL as the CLI prints it: seconds, or `none`.
fn ttl_text(ttl: Option<u64>) -> String {
    ttl.map_or_else(|| "none".into(), |secs| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_strings_unless_json() {
        assert_eq!(parse_value("42", false).unwrap(), Value::from("42"));
        assert_eq!(parse_value("42", true).unwrap(), Value::from(42));
        assert_eq!(
            parse_value(r#"{"a":[1]}"#, true).unwrap(),
            serde_json::json!({"a": [1]})
        );
        assert!(matches!(
            parse_value("not json", true),
            Err(Error::Usage(_))
        ));
    }
}
