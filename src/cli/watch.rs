//! `pykv watch --ns NS [--prefix P]`: a namespace's change feed, one line
//! per event, until interrupted. A broken connection is opened again with
//! the last event's id, so nothing is missed or printed twice while the
//! server still holds what followed (else a `reset` line says so).

use std::time::Duration;

use super::commands::Format;
use super::output;
use crate::api::WatchEvent;
use crate::client::{Client, Error};
use crate::config::WatchArgs;

/// Pause before opening a broken feed again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

pub fn run(kv: &Client, args: &WatchArgs, format: Format) -> Result<u8, Error> {
    let (ns, prefix) = (args.ns.as_deref(), args.prefix.as_deref());
    let mut last: Option<String> = None;
    let mut opened_once = false;
    loop {
        let feed = match kv.watch(ns, prefix, last.as_deref()) {
            Ok(feed) => feed,
            // Refusals (a bad token, a bad name) and a server never reached
            // end the command; a server lost midway is waited for.
            Err(e) if !opened_once || !is_transient(&e) => return Err(e),
            Err(_) => {
                std::thread::sleep(RECONNECT_AFTER);
                continue;
            }
        };
        opened_once = true;
        let mut feed = feed;
        for event in feed.by_ref() {
            match event {
                Ok(event) => output::print(&line(&event, format)),
                Err(e) => {
                    eprintln!("pykv watch: {e}; reconnecting");
                    break;
                }
            }
        }
        last = feed.last_event_id().map(str::to_owned);
        std::thread::sleep(RECONNECT_AFTER);
    }
}

fn is_transient(error: &Error) -> bool {
    matches!(
        error,
        Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. }
    ) || matches!(error, Error::Server { status: 503, .. })
}

/// `ID OP KEY VALUE` (the value as compact JSON), or the event's JSON.
fn line(event: &WatchEvent, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string(event).expect("events always serialize");
    }
    let mut text = format!("{} {}", event.id, event.op);
    if let Some(key) = &event.key {
        text.push(' ');
        text.push_str(key);
    }
    if let Some(value) = &event.value {
        text.push(' ');
        text.push_str(value.get());
    }
    text
}
