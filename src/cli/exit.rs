//! Exit codes and error messages of the client, so that scripts can tell
//! "no such key" (1) from "wrong request" (2) from "server trouble" (3).

use std::process::ExitCode;

use crate::client::Error;

/// The key does not exist (404 `Key not found`).
pub const NOT_FOUND: u8 = 1;
/// A usage error: bad arguments (clap's own errors exit 2 too), or a
/// request the server refused as invalid (4xx, e.g. 422).
pub const USAGE: u8 = 2;
/// The server could not be reached, timed out, failed (5xx), or answered
/// something that is not PyKV's JSON.
pub const SERVER_ERROR: u8 = 3;

/// The exit code for an error.
pub fn code(e: &Error) -> u8 {
    match e {
        Error::NotFound { .. } => NOT_FOUND,
        Error::Usage(_) | Error::Rejected { .. } | Error::PreconditionFailed { .. } => USAGE,
        Error::Server { .. }
        | Error::Connect { .. }
        | Error::Transport { .. }
        | Error::Timeout { .. }
        | Error::BadAnswer { .. } => SERVER_ERROR,
    }
}

/// The error on one line, with a hint where there is an obvious next step.
pub fn message(e: &Error) -> String {
    let text = match e {
        Error::Connect { .. } => format!("{e}; is the server running? (set --url or PYKV_URL)"),
        Error::Timeout { .. } => format!("{e} (wait longer with --timeout)"),
        _ => e.to_string(),
    };
    text.replace(['\n', '\r'], " ")
}

/// Prints `error: ...` on stderr and returns the error's exit code.
pub fn report(e: &Error) -> ExitCode {
    eprintln!("error: {}", message(e));
    ExitCode::from(code(e))
}
