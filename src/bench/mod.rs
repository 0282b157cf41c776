//! `pykv bench`: a load generator for the HTTP API, in the spirit of
//! `redis-benchmark`, and the "ceiling" server it is compared against.
//!
//! - [`workload`]: what is asked: the get/set mix, the keys and
//!   namespaces, the exact requests;
//! - [`load`]: who asks it: one task per keep-alive HTTP/1.1 connection,
//!   closed-loop or paced at a target rate (open-loop);
//! - [`pacer`]: the thread that hands out paced tickets as they fall due;
//! - [`report`]: what came back: an HDR latency histogram, counts by
//!   operation, status and error kind, printed as text or JSON;
//! - [`progress`]: the progress bar on stderr while it runs;
//! - [`ceiling`]: `pykv bench --ceiling`, a server that does no work, to
//!   measure what the HTTP stack alone can do on the same machine.
//!
//! Exit status: 0 when every request got an HTTP answer (whatever its
//! status: a 404 is an answer, and a GET workload without `--preload` is
//! expected to get them), 1 when any request failed to get one
//! (connection refused or reset, timeout), 2 on a usage error.

mod ceiling;
mod load;
mod pacer;
mod progress;
mod report;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use ceiling::ceiling_body;
pub use workload::Mix;

/// Default server address, the same as the client's.
const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Proportions of `--op mixed` without `--ratio`: a read-heavy cache.
const DEFAULT_RATIO: &str = "get=9,set=1";

/// Exit status when some requests got no HTTP answer.
const EXIT_ERRORS: u8 = 1;
/// Exit status for arguments that cannot work (a bad URL, ...).
const EXIT_USAGE: u8 = 2;

/// The HTTP API `pykv bench` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    Pykv,
    Webdis,
}

/// Load a server with GETs and SETs; print throughput and latency
/// percentiles (`--ceiling`: run the do-nothing server to compare with).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// URL of the PyKV server to load.
    #[arg(long, env = "PYKV_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Keep-alive connections, each driven by its own task.
    #[arg(short = 'c', long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,

    /// Total requests to send (default 100000 unless --duration is given).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// Run for this many seconds instead of a request count.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Operations: get, set, mixed (in the proportions of --ratio), or
    /// batch (POST /batch of --batch-size ops in those proportions)
    /// [default: mixed]
    #[arg(long, value_enum)]
    pub op: Option<OpChoice>,

    /// Proportions of a mixed run or of a batch's ops, e.g. `get=9,set=1`
    /// (implies --op mixed unless --op batch) [default: get=9,set=1]
    #[arg(long)]
    pub ratio: Option<String>,

    /// Ops in each batch of --op batch, 1 to 1000 [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: Option<u32>,

    /// Number of distinct keys (`key:00000000`, ...), chosen uniformly.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keyspace: u64,

    /// Spread the keys over this many namespaces (`bench0`, `bench1`,
    /// ...); 0 uses the default namespace.
    #[arg(long, default_value_t = 1)]
    pub namespaces: u32,

    /// Length of each value, a JSON string of this many bytes.
    #[arg(long, default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(..=MAX_VALUE_SIZE))]
    pub value_size: usize,

    /// Give every SET this TTL, in seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: Option<u64>,

    /// SET every key of the key space first (not measured), so GETs hit.
    #[arg(long)]
    pub preload: bool,

    /// The API to speak: pykv, or webdis (`GET /GET/KEY`, `GET
    /// /SET/KEY/VALUE`, Redis over HTTP), to compare with it on equal
    /// terms; with webdis a namespace is a key prefix (`bench0:key:...`).
    #[arg(long, value_enum, default_value = "pykv")]
    pub api: Api,

    /// Target requests per second, paced open-loop: requests fall due on
    /// a fixed schedule and are timed from when they were due. Without
    /// it, each connection sends its next request as soon as it has an
    /// answer (closed-loop: the peak throughput).
    #[arg(long, value_name = "RPS")]
    pub rate: Option<f64>,

    /// Seconds of the same load, not measured, before the measured run,
    /// so that connections, caches and the server's tables are warm (a
    /// fresh start was seen to be slow for a few hundred milliseconds).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub warmup: f64,

    /// Worker threads of the generator's runtime. On a small machine the
    /// generator competes with the server for the cores: keep it low.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: u32,

    /// Seconds to wait for an answer before counting a timeout.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS as u64))]
    pub timeout: u64,

    /// Print one JSON object with every figure instead of text.
    #[arg(long)]
    pub json: bool,

    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(short, long)]
    pub quiet: bool,

    /// Run the ceiling server instead of the generator: it answers every
    /// request with a fixed JSON body the size of a real GET answer
    /// (for --value-size and --namespaces) and does nothing else.
    #[arg(long, help_heading = "Ceiling server")]
    pub ceiling: bool,

    /// Address the ceiling listens on.
    #[arg(long, default_value = "127.0.0.1", help_heading = "Ceiling server")]
    pub host: String,

    /// Port the ceiling listens on; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 8001, help_heading = "Ceiling server")]
    pub port: u16,

    /// Threads that answer the ceiling's requests; one per core when
    /// unset, as `pykv serve --workers`.
    #[arg(long, help_heading = "Ceiling server",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpChoice {
    Get,
    Set,
    Mixed,
    Batch,
}

impl BenchArgs {
    /// How long a run lasts: a request count or a duration.
    fn stop(&self) -> Result<load::Stop, String> {
        match (self.requests, self.duration) {
            (Some(n), _) => Ok(load::Stop::Count(n)),
            (None, Some(secs)) if secs > 0.0 && secs <= MAX_SECS => {
                Ok(load::Stop::Time(Duration::from_secs_f64(secs)))
            }
            (None, Some(secs)) => Err(format!(
                "--duration must be above 0 and at most {MAX_SECS} seconds, got {secs:?}"
            )),
            (None, None) => Ok(load::Stop::Count(100_000)),
        }
    }

    fn mix(&self) -> Result<Mix, String> {
        let ratio = self.ratio.as_deref();
        match (self.op.unwrap_or(OpChoice::Mixed), ratio) {
            (OpChoice::Mixed | OpChoice::Batch, ratio) => {
                Mix::parse(ratio.unwrap_or(DEFAULT_RATIO))
            }
            (op, Some(_)) => Err(format!(
                "--ratio needs --op mixed, not --op {}",
                format!("{op:?}").to_lowercase()
            )),
            (OpChoice::Get, None) => Ok(Mix::only(workload::Op::Get)),
            (OpChoice::Set, None) => Ok(Mix::only(workload::Op::Set)),
        }
    }

    /// Ops per request: `Some` for `--op batch`.
    fn batch_size(&self) -> Result<Option<usize>, String> {
        match (self.op, self.batch_size) {
            (Some(OpChoice::Batch), _) if self.api == Api::Webdis => {
                Err("--op batch speaks PyKV's POST /batch; webdis has no batches".into())
            }
            (Some(OpChoice::Batch), size) => Ok(Some(size.unwrap_or(100) as usize)),
            (_, Some(_)) => Err("--batch-size needs --op batch".into()),
            (_, None) => Ok(None),
        }
    }

    fn warmup(&self) -> Result<Option<Duration>, String> {
        match self.warmup {
            w if !(0.0..=MAX_SECS).contains(&w) => Err(format!(
                "--warmup must be from 0 to {MAX_SECS} seconds, got {w:?}"
            )),
            0.0 => Ok(None),
            w => Ok(Some(Duration::from_secs_f64(w))),
        }
    }

    fn rate(&self) -> Result<Option<f64>, String> {
        match self.rate {
            Some(r) if !(r.is_finite() && r > 0.0) => {
                Err(format!("--rate must be above 0, got {r}"))
            }
            rate => Ok(rate),
        }
    }
}

/// Longest `--duration`, `--warmup` and `--timeout`: one day. Longer is a
/// typing mistake, and past the range of a `Duration` it would panic.
const MAX_SECS: f64 = 24.0 * 3600.0;
/// Largest `--value-size`: the largest body a server accepts
/// (`--max-body-bytes`), 1 GiB.
const MAX_VALUE_SIZE: u64 = 1 << 30;

/// Adds the `bench` subcommand to the `pykv` command.
///
/// Why not a `Command::Bench` variant: the client's dispatch
/// (`cli::commands`) matches `Command` exhaustively, so a new variant
/// needs an arm there too; until it has one, `main` asks this module first.
pub fn with_bench(pykv: clap::Command) -> clap::Command {
    pykv.subcommand(<BenchArgs as Args>::augment_args(clap::Command::new(
        "bench",
    )))
}

/// The arguments of `pykv bench`, if that is the subcommand given.
pub fn requested(matches: &clap::ArgMatches) -> Option<BenchArgs> {
    let (_, bench) = matches.subcommand().filter(|(name, _)| *name == "bench")?;
    Some(<BenchArgs as clap::FromArgMatches>::from_arg_matches(bench).unwrap_or_else(|e| e.exit()))
}

/// Runs `pykv bench` (the generator, or the ceiling with `--ceiling`).
pub fn run(args: BenchArgs) -> ExitCode {
    if args.ceiling {
        return ceiling::run(&args);
    }
    match load::plan(&args) {
        Ok(plan) => report_outcome(&args, load::run(plan, &args)),
        Err(message) => fail(EXIT_USAGE, &message),
    }
}

/// Prints the results and picks the exit status.
fn report_outcome(args: &BenchArgs, outcome: Result<report::Summary, String>) -> ExitCode {
    let summary = match outcome {
        Ok(summary) => summary,
        Err(message) => return fail(EXIT_ERRORS, &message),
    };
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    match summary.failure_message() {
        Some(message) => fail(EXIT_ERRORS, &message),
        None => ExitCode::SUCCESS,
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("pykv bench: {message}");
    ExitCode::from(code)
}
