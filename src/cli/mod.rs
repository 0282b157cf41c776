//! The command-line client: every `pykv` subcommand but `serve`.
//!
//! - [`batch`]: `pykv batch`, several ops in one request;
//! - [`commands`]: what each command asks the server (an [`Action`]) and
//!   the text it prints;
//! - [`output`]: how answers read: plain values, aligned tables;
//! - [`exit`]: exit codes, and the one-line message of each error;
//! - [`shell`]: `pykv shell`, the interactive prompt, with [`input`] (the
//!   terminal or a pipe) and [`words`] (splitting a line, with quotes);
//! - [`token`]: `pykv token create|list|revoke`, on the token file;
//! - [`transfer`]: `pykv export` and `pykv import`, a namespace streamed
//!   out of or into a server; [`migrate`]: `pykv migrate`, every
//!   namespace copied between backends opened directly.
//!
//! The HTTP side is [`crate::client`]; this module only turns arguments
//! into requests and answers into text.

mod batch;
mod commands;
mod exit;
mod input;
mod migrate;
mod output;
mod shell;
pub mod token;
mod transfer;
mod watch;
mod words;

use std::process::ExitCode;
use std::time::Duration;

pub use commands::{Action, Format};
pub use exit::{NOT_FOUND, SERVER_ERROR, USAGE};

use crate::client::{Client, Error};
use crate::config::{ClientArgs, Command};

/// Runs one client subcommand (anything but `serve`) and returns its exit
/// status: 0 success, 1 key not found, 2 usage error, 3 server or
/// connection error.
pub fn run(command: Command) -> ExitCode {
    let status = match command {
        Command::Shell(args) => {
            connect(&args.client).map(|kv| shell::run(&kv, args.ns, format(&args.client)))
        }
        Command::Watch(args) => {
            connect(&args.client).and_then(|kv| watch::run(&kv, &args, format(&args.client)))
        }
        Command::Export(args) => connect(&args.client).and_then(|kv| transfer::export(&kv, &args)),
        Command::Import(args) => {
            connect(&args.client).and_then(|kv| transfer::import(&kv, &args, format(&args.client)))
        }
        Command::Migrate(args) => return migrate::run(&args),
        other => run_once(other),
    };
    match status {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report(&e),
    }
}

/// A one-shot command: one action, its text on stdout.
fn run_once(command: Command) -> Result<u8, Error> {
    let (action, args) = commands::from_command(command)?;
    let kv = connect(&args)?;
    if let Action::Batch { ns, ops, atomic } = &action {
        let json = format(&args) == Format::Json;
        let (text, code) = batch::run(&kv, ns.as_deref(), ops, *atomic, json)?;
        output::print(&text);
        return Ok(code);
    }
    let text = commands::execute(&kv, &action, format(&args))?;
    output::print(&text);
    Ok(0)
}

fn connect(args: &ClientArgs) -> Result<Client, Error> {
    let ca =
        match &args.cacert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::Usage(format!("--cacert: cannot read {}: {e}", path.display()))
            })?),
            None => None,
        };
    Client::with_ca(&args.url, Duration::from_secs(args.timeout), ca.as_deref())
        .map(|kv| kv.with_token(args.token.clone()))
}

fn format(args: &ClientArgs) -> Format {
    if args.json {
        Format::Json
    } else {
        Format::Text
    }
}
