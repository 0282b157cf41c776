use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use pykv::config::{Cli, Command, ConfigAction, LogFormat, ServeArgs};
use pykv::config_file::{self, ConfigFile};

/// mimalloc's small size classes (48, 56, 64 bytes, ...) fit the store's
/// one-allocation entries more tightly than glibc's 16-byte steps with an
/// 8-byte header, and its thread-local free lists are cheaper on the
/// request path: both measured in docs/BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = pykv::bench::with_bench(Cli::command()).get_matches();
    if let Some(args) = pykv::bench::requested(&matches) {
        return pykv::bench::run(args);
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Config(args) => config(args.action),
        Command::Completions { shell } => {
            let mut command = pykv::bench::with_bench(Cli::command());
            // Into a buffer: clap_complete panics on a closed stdout.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "pykv", &mut script);
            print_all(&script)
        }
        Command::Man => {
            let command = pykv::bench::with_bench(Cli::command());
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .expect("writing to a Vec cannot fail");
            print_all(&page)
        }
        Command::Token(args) => pykv::cli::token::run(args),
        client_command => pykv::cli::run(client_command),
    }
}

/// Runs the server; a start-up failure is printed as `Error: ...` with its
/// causes on one line, and exits 1. (Not `{e:?}`, which would add a stack
/// backtrace whenever `RUST_BACKTRACE` is set: noise for an operator.)
fn serve(args: ServeArgs) -> ExitCode {
    // With --config, the file goes beneath the flags and the environment.
    let args = match &args.config {
        None => args,
        Some(_) => match config_file::serve_config(&config_file::arguments_after(&["serve"])) {
            Ok((args, _)) => args,
            Err(e) => {
                eprintln!("Error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = pykv::server::runtime(args.workers)
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(pykv::server::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `pykv config check FILE` and `pykv config print [FLAGS...]`.
fn config(action: ConfigAction) -> ExitCode {
    let outcome = match action {
        ConfigAction::Check { file } => ConfigFile::load(&file).map(|_| {
            println!("{}: valid", file.display());
        }),
        ConfigAction::Print(_) => {
            let argv = config_file::arguments_after(&["config", "print"]);
            config_file::serve_config(&argv).map(|(args, settings)| {
                print!("{}", config_file::render(&settings));
                if let Some(quotas) = args.limits.inline_quotas {
                    let section = toml::Table::from_iter([("quotas".into(), quotas.into())]);
                    print!("\n{section}");
                }
            })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `bytes` to stdout; a reader that closed it early (`| head`) is not
/// an error.
fn print_all(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("Error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
