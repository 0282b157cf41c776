//! `pykv shell`: an interactive prompt in the manner of redis-cli.
//!
//! `use NS` picks the namespace that `set`, `get`, `del`, `size`, `stats`
//! and `health` work in (the prompt shows it); errors are printed and the
//! session goes on. A missing key prints `(nil)`: in a session that is an
//! answer, not a failure. The exit status is 0, or the code of the last
//! command that failed (2 usage, 3 server), for scripts fed through a pipe.

use super::commands::{self, Action, Format};
use super::input::{self, Input};
use super::{exit, output, words};
use crate::client::{Client, Error};

const HELP: &str = "\
Commands (values with spaces in \"double\" or 'single' quotes):
  set KEY VALUE [TTL]   set a key (VALUE is a string), expiring after TTL seconds
  incr KEY [BY]         add BY (default 1) to an integer counter and print it
  get KEY               print a key's value, (nil) if it does not exist
  batch OP...           several ops in one request: get:KEY set:KEY=VALUE del:KEY
                        incr:KEY[=BY]; one line of answer per op
  atomic OP...          the same as one transaction: every op applied or none
  del KEY               delete a key
  use [NS]              work in namespace NS; `use` alone: the default namespace
  ns                    list the namespaces with their counters
  size [NS]             how many keys NS (default: the current one) holds
  clear NS              delete every key of NS (asks for confirmation)
  stats                 the server's (or the current namespace's) statistics
  health                check that the server answers
  help                  this text
  quit, exit            leave (so does Ctrl-D)";

/// Whether the session goes on after a line.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

struct Session<'a> {
    kv: &'a Client,
    ns: Option<String>,
    format: Format,
    /// Exit code of the last command that failed, 0 if none did.
    status: u8,
}

/// Runs the shell on stdin until `quit` or the end of input; returns the
/// exit status.
pub fn run(kv: &Client, ns: Option<String>, format: Format) -> u8 {
    let mut input = input::stdin();
    let mut session = Session {
        kv,
        ns,
        format,
        status: 0,
    };
    while let Some(line) = input.read_line(&session.prompt()) {
        if session.handle(&line, input.as_mut()) == Flow::Quit {
            break;
        }
    }
    session.status
}

impl Session<'_> {
    fn prompt(&self) -> String {
        match &self.ns {
            Some(ns) => format!("pykv[{ns}]> "),
            None => "pykv> ".into(),
        }
    }

    fn handle(&mut self, line: &str, input: &mut dyn Input) -> Flow {
        if line.trim_start().starts_with('#') {
            return Flow::Continue;
        }
        let words = match words::split(line) {
            Ok(words) => words,
            Err(e) => return self.fail(&Error::Usage(e)),
        };
        let Some((name, args)) = words.split_first() else {
            return Flow::Continue;
        };
        match name.to_ascii_lowercase().as_str() {
            "quit" | "exit" => Flow::Quit,
            "help" | "?" => {
                output::print(HELP);
                Flow::Continue
            }
            "use" => self.use_namespace(args),
            "clear" => self.clear(args, input),
            command => match parse(command, args, self.ns.as_deref()) {
                Ok(action) => self.execute(&action),
                Err(e) => self.fail(&e),
            },
        }
    }

    /// `use NS` checks the name with the server first, so a bad one is
    /// refused at once rather than on every later command.
    fn use_namespace(&mut self, args: &[String]) -> Flow {
        match args {
            [] => self.ns = None,
            [ns] => match self.kv.namespace_size(ns) {
                Ok(_) => self.ns = Some(ns.clone()),
                Err(e) => return self.fail(&e),
            },
            _ => return self.fail(&usage("use [NS]")),
        }
        Flow::Continue
    }

    fn clear(&mut self, args: &[String], input: &mut dyn Input) -> Flow {
        let [ns] = args else {
            return self.fail(&usage("clear NS"));
        };
        let question = format!("Delete every key of namespace {ns}? [y/N] ");
        if input.confirm(&question) {
            self.execute(&Action::NsClear { ns: ns.clone() })
        } else {
            output::print("(not cleared)");
            Flow::Continue
        }
    }

    fn execute(&mut self, action: &Action) -> Flow {
        match commands::execute(self.kv, action, self.format) {
            Ok(text) => output::print(&text),
            Err(Error::NotFound { .. }) => output::print("(nil)"),
            Err(e) => return self.fail(&e),
        }
        Flow::Continue
    }

    fn fail(&mut self, e: &Error) -> Flow {
        eprintln!("error: {}", exit::message(e));
        self.status = exit::code(e);
        Flow::Continue
    }
}

/// The action of a shell command, in namespace `ns`.
fn parse(command: &str, args: &[String], ns: Option<&str>) -> Result<Action, Error> {
    let ns_owned = ns.map(str::to_owned);
    Ok(match (command, args) {
        ("set", [key, value]) => set(key, value, None, ns_owned),
        ("set", [key, value, ttl]) => set(key, value, Some(parse_ttl(ttl)?), ns_owned),
        ("set", _) => return Err(usage("set KEY VALUE [TTL]")),
        ("incr", [key]) => incr(key, "1", ns_owned)?,
        ("incr", [key, by]) => incr(key, by, ns_owned)?,
        ("incr", _) => return Err(usage("incr KEY [BY]")),
        ("get", [key]) => Action::Get {
            ns: ns_owned,
            key: key.clone(),
        },
        ("get", _) => return Err(usage("get KEY")),
        ("del", [key]) => Action::Del {
            ns: ns_owned,
            key: key.clone(),
            if_match: None,
        },
        ("del", _) => return Err(usage("del KEY")),
        ("batch" | "atomic", []) => return Err(usage(&format!("{command} OP..."))),
        ("batch" | "atomic", ops) => Action::Batch {
            ns: ns_owned,
            ops: super::batch::ops_from_words(ops, false)?,
            atomic: command == "atomic",
        },
        ("ns", []) => Action::NsList,
        ("ns", _) => return Err(usage("ns")),
        ("size", [other]) => Action::NsSize { ns: other.clone() },
        ("size", []) => Action::NsSize {
            ns: ns_owned
                .ok_or_else(|| Error::Usage("size: name a namespace, or `use NS` first".into()))?,
        },
        ("size", _) => return Err(usage("size [NS]")),
        ("stats", []) => Action::Stats { ns: ns_owned },
        ("health", []) => Action::Health { ns: ns_owned },
        ("stats" | "health", _) => return Err(usage(command)),
        _ => {
            return Err(Error::Usage(format!(
                "unknown command `{command}`; type `help`"
            )));
        }
    })
}

fn incr(key: &str, by: &str, ns: Option<String>) -> Result<Action, Error> {
    let by = by
        .parse()
        .map_err(|_| Error::Usage(format!("incr: BY must be an integer, got {by:?}")))?;
    Ok(Action::Incr {
        ns,
        key: key.to_owned(),
        by,
        ttl: None,
    })
}

fn set(key: &str, value: &str, ttl: Option<u64>, ns: Option<String>) -> Action {
    Action::Set {
        ns,
        key: key.to_owned(),
        value: value.into(),
        ttl,
        only_if: None,
    }
}

fn parse_ttl(ttl: &str) -> Result<u64, Error> {
    ttl.parse().map_err(|_| {
        Error::Usage(format!(
            "TTL must be a whole number of seconds, got {ttl:?}"
        ))
    })
}

fn usage(synopsis: &str) -> Error {
    Error::Usage(format!("usage: {synopsis}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn commands_work_in_the_current_namespace() {
        let action = parse("set", &args(&["k", "v w", "60"]), Some("app1")).unwrap();
        let expected = Action::Set {
            ns: Some("app1".into()),
            key: "k".into(),
            value: "v w".into(),
            ttl: Some(60),
            only_if: None,
        };
        assert_eq!(action, expected);
        let action = parse("get", &args(&["k"]), None).unwrap();
        assert_eq!(
            action,
            Action::Get {
                ns: None,
                key: "k".into()
            }
        );
        let action = parse("size", &args(&[]), Some("app1")).unwrap();
        assert_eq!(action, Action::NsSize { ns: "app1".into() });
    }

    #[test]
    fn wrong_arguments_are_usage_errors() {
        for (command, words) in [
            ("set", &["k"][..]),
            ("set", &["k", "v", "soon"][..]),
            ("get", &[][..]),
            ("size", &[][..]),
            ("frobnicate", &[][..]),
        ] {
            let result = parse(command, &args(words), None);
            assert!(
                matches!(result, Err(Error::Usage(_))),
                "{command} {words:?}"
            );
        }
    }
}
