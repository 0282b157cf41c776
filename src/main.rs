use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use pykv::config::{Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        client_command => pykv::cli::run(client_command),
    }
}

/// Runs the server; a start-up failure is printed as `Error: ...` (with
/// its causes) and exits 1, as `main` returning an error would.
fn serve(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(pykv::server::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}
