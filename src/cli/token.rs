//! `pykv token create|list|revoke`: the token file, edited where the server
//! keeps it. No server is needed; a running one picks changes up within a
//! second.

use std::process::ExitCode;

use super::exit::{NOT_FOUND, USAGE};
use super::output::table;
use crate::auth::tokens::TokenFileError;
use crate::auth::{Access, TokenFile, TokenRecord};
use crate::config::{TokenAction, TokenArgs, TokenFileArgs};
use crate::store::validate_namespace;

pub fn run(args: TokenArgs) -> ExitCode {
    let result = match args.action {
        TokenAction::Create(create) => {
            let access = if create.admin {
                Access::Admin
            } else {
                create.access.unwrap_or(Access::Read)
            };
            create_token(&create.file, create.namespaces, access)
        }
        TokenAction::List(file) => list(&file),
        TokenAction::Revoke(revoke) => revoke_token(&revoke.file, &revoke.id),
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

fn token_file(args: &TokenFileArgs) -> TokenFile {
    match &args.tokens_file {
        Some(path) => TokenFile::new(path),
        None => TokenFile::in_data_dir(&args.data_dir),
    }
}

fn failed(e: TokenFileError) -> (u8, String) {
    let code = match e {
        TokenFileError::UnknownId(_) => NOT_FOUND,
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
    let tokens = token_file(args).load().map_err(failed)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tokens": tokens }))
                .expect("records serialize")
        );
        return Ok(());
    }
    if tokens.is_empty() {
        println!("no tokens: the server is open to every client");
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

fn revoke_token(args: &TokenFileArgs, id: &str) -> Outcome {
    let record = token_file(args).revoke(id).map_err(failed)?;
    println!("revoked token {} ({})", record.id, describe(&record));
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
