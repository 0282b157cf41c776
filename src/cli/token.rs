//! `pykv token create|list|revoke|open`: the token file, edited where the
//! server keeps it. No server is needed; a running one picks changes up
//! within a second. Each change replaces the file atomically, so it is
//! safe while a server runs (src/auth/tokens.rs).

use std::process::ExitCode;

use super::exit::{NOT_FOUND, USAGE};
use super::output::table;
use crate::auth::tokens::TokenFileError;
use crate::auth::{Access, AuthMode, TokenFile, TokenRecord};
use crate::config::{BackendKind, TokenAction, TokenArgs, TokenFileArgs};
use crate::store::validate_namespace;

pub fn run(args: TokenArgs) -> ExitCode {
    let result = match args.action {
        TokenAction::Create(create) => {
            let access = if create.admin {
                Access::Admin
            } else {
                create.access.map_or(Access::Read, Access::from)
            };
            create_token(&create.file, create.namespaces, access)
        }
        TokenAction::List(file) => list(&file),
        TokenAction::Revoke(revoke) => revoke_token(&revoke.file, &revoke.id),
        TokenAction::Open(file) => open_server(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

type Outcome = Result<(), (u8, String)>;

/// Where the servers keep their tokens: as `pykv serve` chooses it.
fn token_file(args: &TokenFileArgs) -> TokenFile {
    match (&args.tokens_file, &args.backend) {
        (Some(path), _) => TokenFile::new(path),
        (None, BackendKind::Redis(target)) => {
            TokenFile::in_redis(target.clone(), &args.redis_prefix, args.backend_timeout)
        }
        (None, _) => TokenFile::in_data_dir(&args.data_dir),
    }
}

fn failed(e: TokenFileError) -> (u8, String) {
    let code = match e {
        TokenFileError::UnknownId(_) => NOT_FOUND,
        TokenFileError::TokensRemain(_) => USAGE,
        _ => super::SERVER_ERROR,
    };
    (code, e.to_string())
}

fn create_token(args: &TokenFileArgs, namespaces: Vec<String>, access: Access) -> Outcome {
    for ns in &namespaces {
        validate_namespace(ns).map_err(|e| (USAGE, format!("--ns: {e}")))?;
    }
    let file = token_file(args);
    let (token, record) = file.create(namespaces, access).map_err(failed)?;
    // The token alone on stdout, for `TOKEN=$(pykv token create ...)`.
    println!("{token}");
    eprintln!(
        "created token {} ({}); it is shown this once, store it now",
        record.id,
        describe(&record)
    );
    Ok(())
}

fn list(args: &TokenFileArgs) -> Outcome {
    let set = token_file(args).load().map_err(failed)?;
    if args.json {
        let listing = serde_json::json!({ "auth": set.stated_mode(), "tokens": set.tokens });
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).expect("records serialize")
        );
        return Ok(());
    }
    let mode = set.stated_mode();
    let tokens = set.tokens;
    if tokens.is_empty() {
        match mode {
            Some(AuthMode::Open) => println!("no tokens: the server is open to every client"),
            Some(AuthMode::Required) => println!("no tokens: {CLOSED_WITHOUT_TOKENS}"),
            None => println!("no tokens: {UNSTATED_WITHOUT_TOKENS}"),
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                format!("{:?}", t.access).to_lowercase(),
                if t.namespaces.is_empty() {
                    "*".into()
                } else {
                    t.namespaces.join(",")
                },
                t.created.to_string(),
            ]
        })
        .collect();
    let header = ["ID", "ACCESS", "NAMESPACES", "CREATED"];
    println!(
        "{}",
        table(&header, &rows, &[false, false, false, true]).trim_end()
    );
    Ok(())
}

/// What a server with tokens required and none left does.
const CLOSED_WITHOUT_TOKENS: &str = "the server stays closed and refuses every request that \
    needs a token, admins included. Create one with `pykv token create`, or open the server to \
    every client on purpose with `pykv token open`";

/// A file with no token and no `auth` field (hand-written, or older).
const UNSTATED_WITHOUT_TOKENS: &str = "the file does not say whether tokens are required: a \
    server started on it is open to every client, and a running server that required tokens \
    keeps requiring them. `pykv token open` opens it on purpose; `pykv token create` closes it";

fn revoke_token(args: &TokenFileArgs, id: &str) -> Outcome {
    let (record, remaining) = token_file(args).revoke(id).map_err(failed)?;
    println!("revoked token {} ({})", record.id, describe(&record));
    if remaining == 0 {
        eprintln!("warning: that was the last token: {CLOSED_WITHOUT_TOKENS}");
    }
    Ok(())
}

/// `pykv token open`: the one way to stop requiring tokens.
fn open_server(args: &TokenFileArgs) -> Outcome {
    let file = token_file(args);
    let was_closed = file.open_to_everyone().map_err(failed)?;
    if was_closed {
        eprintln!(
            "warning: the server no longer requires a token: every client that reaches it can \
             read, change and clear every namespace (a running server logs it within a second). \
             `pykv token create` closes it again"
        );
    } else {
        eprintln!("the server was already open to every client; nothing changed");
    }
    Ok(())
}

fn describe(record: &TokenRecord) -> String {
    match record.access {
        Access::Admin => "admin".into(),
        access => format!(
            "{} access to {}",
            format!("{access:?}").to_lowercase(),
            record.namespaces.join(", ")
        ),
    }
}
