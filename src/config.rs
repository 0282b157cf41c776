//! Command-line flags of `pykv`, each also readable from an environment
//! variable (`PYKV_*`); a flag given on the command line wins.
//!
//! `pykv serve` runs the server; every other subcommand is the client
//! ([`crate::cli`]), which finds the server through `--url` / `PYKV_URL`.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};

use crate::auth::Access;
use crate::redis_backend::RedisTarget;
use crate::store::EvictionPolicy;
use crate::wal::FsyncPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "pykv",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PYKV_GIT_COMMIT"), ")"),
    about = "PyKV: a multi-tenant key-value server over HTTP and JSON"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Set a key (VALUE is sent as a JSON string unless --json-value).
    Set(SetArgs),
    /// Add to an integer counter (a missing key counts from 0) and print it.
    Incr(IncrArgs),
    /// Run several ops in one request: get:KEY set:KEY=VALUE del:KEY
    /// incr:KEY[=BY], or JSON ops on stdin (an array, or one per line);
    /// --atomic for a transaction, all or nothing.
    Batch(BatchArgs),
    /// Print a key's value (exit 1 if it does not exist).
    Get(KeyArgs),
    /// Print the seconds left before a key expires, or `none` (exit 1 if it
    /// does not exist).
    Ttl(KeyArgs),
    /// Set a key's TTL in seconds, or `none` to keep it forever (exit 1 if
    /// it does not exist).
    Expire(ExpireArgs),
    /// Delete a key (exit 1 if it does not exist).
    Del(DelArgs),
    /// Print a key's ETag, for `set --if-match` and `del --if-match`.
    Etag(KeyArgs),
    /// Print a namespace's changes as they happen, one line per event
    /// (`--json`: the event's JSON), until interrupted; reconnects by
    /// itself, resuming where it left off.
    Watch(WatchArgs),
    /// List, measure or clear namespaces.
    Ns(NsArgs),
    /// Print the server's statistics.
    Stats(NsOptionArgs),
    /// Check that the server answers.
    Health(NsOptionArgs),
    /// Rewrite the server's log down to the live data (in the background).
    Compact(ClientArgs),
    /// Write a namespace's keys to stdout as NDJSON, with their values and
    /// absolute TTL deadlines (`pykv export NS > file`).
    Export(TransferArgs),
    /// Read keys into a namespace from stdin, as `pykv export` writes them
    /// (`pykv import NS < file`).
    Import(TransferArgs),
    /// Copy every namespace's live data, TTL deadlines included, from an
    /// embedded data directory into Redis, or back (no server involved).
    Migrate(MigrateArgs),
    /// Interactive prompt (reads commands from stdin when it is not a terminal).
    Shell(ShellArgs),
    /// Check a configuration file, or print the configuration `serve`
    /// would run with.
    Config(ConfigArgs),
    /// Print a shell completion script (for example
    /// `pykv completions bash > /etc/bash_completion.d/pykv`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (for example `pykv man > pykv.1`).
    Man,
    /// Create, list and revoke API tokens, or open the server on purpose
    /// (works on the token file; the server picks up changes by itself).
    Token(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigAction {
    /// Check a configuration file without starting a server (exit 1 with
    /// the key at fault).
    Check { file: PathBuf },
    /// Print the configuration `pykv serve` would run with these flags
    /// (and --config, and the environment), where each setting came from.
    Print(Box<ServeArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it, alone on stdout, once: only its hash is
    /// kept.
    Create(TokenCreateArgs),
    /// List the tokens (never the tokens themselves).
    List(TokenFileArgs),
    /// Revoke a token by the id `list` shows. Revoking the last one does
    /// not open the server: it then refuses every request needing a token.
    Revoke(TokenRevokeArgs),
    /// Open the server to every client, on purpose: no request needs a
    /// token any more. Refused while a token exists.
    Open(TokenFileArgs),
}

/// Where the token file is.
#[derive(Debug, Clone, Args)]
pub struct TokenFileArgs {
    /// The server's data directory; the file is tokens.json in it.
    #[arg(long, env = "PYKV_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The token file, when the server runs with --tokens-file.
    #[arg(long, env = "PYKV_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// The servers' backend, when it is Redis (redis://HOST:PORT or
    /// redis-cluster://HOST:PORT[,HOST:PORT...]): the tokens are then kept
    /// in Redis, shared by every node, unless --tokens-file is given.
    #[arg(long, env = "PYKV_BACKEND", default_value = "embedded", value_parser = parse_backend)]
    pub backend: BackendKind,

    /// The servers' --redis-prefix.
    #[arg(long, env = "PYKV_REDIS_PREFIX", default_value = "pykv", value_parser = parse_redis_prefix)]
    pub redis_prefix: String,

    /// The servers' --backend-timeout: how long to wait for Redis.
    #[arg(long, env = "PYKV_BACKEND_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// Print JSON instead of readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub file: TokenFileArgs,

    /// A namespace the token may use (repeat for several).
    #[arg(long = "ns", value_name = "NS", required_unless_present = "admin")]
    pub namespaces: Vec<String>,

    /// What the token may do in its namespaces.
    #[arg(
        long,
        value_enum,
        required_unless_present = "admin",
        conflicts_with = "admin"
    )]
    pub access: Option<AccessFlag>,

    /// A token for everything: every namespace, statistics, compaction.
    #[arg(long, conflicts_with = "namespaces")]
    pub admin: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub file: TokenFileArgs,

    /// The token's id, as `pykv token list` shows it.
    pub id: String,
}

/// How the client reaches the server and prints answers; accepted after
/// any client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of the PyKV server.
    #[arg(
        long,
        env = "PYKV_URL",
        default_value = crate::client::DEFAULT_URL,
        global = true
    )]
    pub url: String,

    /// Print the server's JSON answer instead of readable output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for each answer.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = crate::client::DEFAULT_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS),
        global = true
    )]
    pub timeout: u64,

    /// API token, for a server that requires one (sent as
    /// `Authorization: Bearer`).
    #[arg(long, env = "PYKV_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,

    /// CA certificates (PEM) to trust for an https:// server, beyond the
    /// system's: a private CA.
    #[arg(long, env = "PYKV_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SetArgs {
    /// The key: any text (put `--` before one starting with `-`).
    pub key: String,

    /// The value: a string, or any JSON with --json-value.
    #[arg(allow_hyphen_values = true)]
    pub value: String,

    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    /// Expire the key after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,

    /// Parse VALUE as JSON (`42`, `true`, `[1,2]`, `{"a":1}`, `"text"`).
    #[arg(long)]
    pub json_value: bool,

    /// Set only if the key's current ETag is TAG (`pykv etag KEY` prints
    /// it): check-and-set. Exit 2 if it changed.
    #[arg(long, value_name = "TAG", conflicts_with = "if_absent")]
    pub if_match: Option<String>,

    /// Set only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The ops, each one word: get:KEY, set:KEY=VALUE, del:KEY, incr:KEY
    /// or incr:KEY=BY (the key ends at the first `=`). None: JSON ops on
    /// stdin, as POST /batch takes them (an array, or one per line).
    pub ops: Vec<String>,

    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    /// One transaction: every op applied or none (at most 1000 ops).
    /// Without it, more than 1000 ops go as several batches, in order.
    #[arg(long)]
    pub atomic: bool,

    /// Parse set's VALUEs as JSON (`42`, `[1,2]`, `{"a":1}`, `"text"`).
    #[arg(long)]
    pub json_value: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct IncrArgs {
    /// The counter's key.
    pub key: String,

    /// What to add; negative to subtract.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub by: i64,

    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    /// Expire the counter after this many seconds (default: keep its TTL).
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExpireArgs {
    /// The key.
    pub key: String,

    /// Seconds from now, or `none` for a key that never expires.
    #[arg(value_parser = parse_ttl_or_none)]
    pub ttl: TtlArg,

    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `pykv expire`'s TTL: seconds, or none.
#[derive(Debug, Clone, Copy)]
pub struct TtlArg(pub Option<u64>);

fn parse_ttl_or_none(text: &str) -> Result<TtlArg, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(TtlArg(None));
    }
    text.parse()
        .map(|secs| TtlArg(Some(secs)))
        .map_err(|_| format!("{text:?} is neither a whole number of seconds nor `none`"))
}

#[derive(Debug, Clone, Args)]
pub struct DelArgs {
    #[command(flatten)]
    pub key: KeyArgs,

    /// Delete only if the key's current ETag is TAG.
    #[arg(long, value_name = "TAG")]
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    /// Only keys starting with this.
    #[arg(long)]
    pub prefix: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// The key: any text (put `--` before one starting with `-`).
    pub key: String,

    /// Namespace (default: the default namespace).
    #[arg(long)]
    pub ns: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `export` and `import`: one namespace of a server.
#[derive(Debug, Clone, Args)]
pub struct TransferArgs {
    /// The namespace.
    pub ns: String,

    /// No progress bar (it is drawn on stderr, and only when stderr is a
    /// terminal).
    #[arg(long, short)]
    pub quiet: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

/// `migrate`: from one backend to another, opened directly.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from_data_dir", "from"])))]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_data_dir", "to"])))]
pub struct MigrateArgs {
    /// Copy from this embedded data directory (it must not be in use by a
    /// running server: its lock is taken).
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: Option<PathBuf>,

    /// Copy from this Redis: redis://HOST:PORT or
    /// redis-cluster://HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "URL", value_parser = RedisTarget::parse)]
    pub from: Option<RedisTarget>,

    /// Copy into this embedded data directory (created if missing; it
    /// must not be in use by a running server).
    #[arg(long, value_name = "DIR")]
    pub to_data_dir: Option<PathBuf>,

    /// Copy into this Redis: redis://HOST:PORT or
    /// redis-cluster://HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "URL", value_parser = RedisTarget::parse)]
    pub to: Option<RedisTarget>,

    /// Only these namespaces (repeat the flag; `default` is not a name:
    /// the default namespace is copied when no --ns is given).
    #[arg(long = "ns", value_name = "NS")]
    pub namespaces: Vec<String>,

    /// The Redis key prefix the servers use (`serve --redis-prefix`).
    #[arg(long, env = "PYKV_REDIS_PREFIX", default_value = "pykv", value_parser = parse_redis_prefix)]
    pub redis_prefix: String,

    /// Deadline of one call to Redis: `250ms`, `2s`, or milliseconds.
    #[arg(long, env = "PYKV_BACKEND_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// Longest key accepted, in bytes, as `serve --max-key-bytes`.
    #[arg(long, env = "PYKV_MAX_KEY_BYTES", default_value_t = 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_KEY_BYTES))]
    pub max_key_bytes: usize,

    /// No progress bar (drawn on stderr when it is a terminal); the counts
    /// are still printed.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `stats` and `health`: the whole server, or one namespace.
#[derive(Debug, Clone, Args)]
pub struct NsOptionArgs {
    /// Only this namespace's figures (default: the whole server).
    #[arg(long)]
    pub ns: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ShellArgs {
    /// Namespace to start in, as after `use NS`.
    #[arg(long)]
    pub ns: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct NsArgs {
    #[command(subcommand)]
    pub command: NsCommand,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NsCommand {
    /// List the namespaces that hold keys, with their counters.
    List,
    /// Print how many keys a namespace holds.
    Size { ns: String },
    /// Delete every key of a namespace (no confirmation).
    Clear { ns: String },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A TOML file of these settings, under the flags' names without their
    /// dashes, and the quota file's sections under [quotas]. Flags and
    /// environment variables win over it (see the README).
    #[arg(long, env = "PYKV_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "PYKV_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, env = "PYKV_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Threads that answer requests (1 to 1024); one per core when unset.
    /// Fewer leave cores to the other processes of the machine.
    #[arg(long, env = "PYKV_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Directory holding the write-ahead log.
    #[arg(long, env = "PYKV_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Where the data is kept: embedded, the engine in this process with
    /// its write-ahead log in --data-dir; redis://HOST:PORT, one Redis
    /// server; redis-cluster://HOST:PORT[,HOST:PORT...], a Redis Cluster
    /// given by seed nodes (see README, "Running on Redis").
    #[arg(long, env = "PYKV_BACKEND", default_value = "embedded", value_parser = parse_backend)]
    pub backend: BackendKind,

    /// Deadline of one call to a networked backend (Redis), retries
    /// included: `250ms`, `2s`, or a number of milliseconds. A call past
    /// it is answered 503 with Retry-After.
    #[arg(long, env = "PYKV_BACKEND_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub backend_timeout: Duration,

    /// How many times a call to a networked backend is retried after a
    /// connection error or a cluster redirection, within --backend-timeout
    /// (0 to 10).
    #[arg(long, env = "PYKV_BACKEND_RETRIES", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub backend_retries: u32,

    /// Prefix of every Redis key this server writes, so that several
    /// PyKV deployments (or tests) can share one Redis without seeing each
    /// other's data: 1 to 64 of A-Z a-z 0-9 _ . : -
    #[arg(long, env = "PYKV_REDIS_PREFIX", default_value = "pykv", value_parser = parse_redis_prefix)]
    pub redis_prefix: String,

    /// Events each namespace's change feed (`GET /watch`) keeps for
    /// watchers that fall behind or reconnect with Last-Event-ID (1 to
    /// 10000000; in-process feeds also keep at most 16 MiB of keys and
    /// values; Redis keeps at least this many).
    #[arg(long, env = "PYKV_WATCH_RETENTION", default_value_t = crate::feed::DEFAULT_RETAIN_EVENTS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000_000))]
    pub watch_retention: usize,

    /// Replicas that must confirm each write to Redis before it is
    /// acknowledged (0 to 16; 0: none, the write is acknowledged once its
    /// master applied it). `WAIT N` is sent with the write, in one round
    /// trip; a write that fewer replicas confirm within --backend-timeout
    /// is answered 503 with Retry-After: applied on the master, not
    /// confirmed (see README, "Running on Redis").
    #[arg(long, env = "PYKV_REDIS_WAIT_REPLICAS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=16))]
    pub redis_wait_replicas: u32,

    /// Longest key accepted, in bytes (1 to 16 MiB).
    #[arg(long, env = "PYKV_MAX_KEY_BYTES", default_value_t = 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_KEY_BYTES))]
    pub max_key_bytes: usize,

    /// Largest request body accepted, in bytes (larger ones get 413; 64 to
    /// 1 GiB).
    #[arg(long, env = "PYKV_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(MIN_BODY_BYTES..=MAX_BODY_BYTES))]
    pub max_body_bytes: usize,

    /// When the log is synced to disk: always (before each answer),
    /// everysec (once a second), no (left to the OS). See the README for
    /// what each promises.
    #[arg(long, env = "PYKV_FSYNC", value_enum, default_value = "everysec")]
    pub fsync: FsyncFlag,

    /// If the log is corrupt before its last record, keep a copy of it and
    /// recover every record before the damage instead of refusing to start.
    #[arg(long, env = "PYKV_REPAIR_LOG")]
    pub repair_log: bool,

    /// Never compact the log automatically while it is smaller than this.
    #[arg(long, env = "PYKV_COMPACT_MIN_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub compact_min_bytes: u64,

    /// Compact the log automatically once it is this many times its size
    /// after the last compaction (or start); over 1, at most 1000.
    #[arg(long, env = "PYKV_COMPACT_RATIO", default_value_t = 2.0, value_parser = parse_compact_ratio)]
    pub compact_ratio: f64,

    /// How log lines on stderr are written: text (for people) or json (one
    /// object per line, for log collectors). Levels come from RUST_LOG.
    #[arg(long, env = "PYKV_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Namespaces given their own series in /metrics, the largest first
    /// (by keys, then bytes); the others are summed into one series,
    /// namespace="(other)". 0 to 10000.
    #[arg(long, env = "PYKV_METRICS_NAMESPACE_LIMIT", default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub metrics_namespace_limit: u64,

    #[command(flatten)]
    pub limits: crate::quotas::LimitArgs,

    /// The token file (default: tokens.json in the data directory). Once it
    /// holds a token, every request needs one.
    #[arg(long, env = "PYKV_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// An origin allowed to call the API from a browser (repeat for
    /// several; `*` for any). CORS is closed by default.
    #[arg(long = "cors-origin", env = "PYKV_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// A host name clients reach the server by (repeat for several; `*`
    /// for any). A server on loopback answers only to localhost, IP
    /// addresses and these names (against DNS rebinding); with this flag,
    /// a server on any address checks `Host` too. Pages of these names
    /// count as the server's own origin.
    #[arg(
        long = "allowed-host",
        env = "PYKV_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_hosts: Vec<String>,

    /// Serve HTTPS on the port, with this certificate chain (PEM); needs
    /// --tls-key. Plain HTTP is then refused. Re-read on SIGHUP.
    #[arg(long, env = "PYKV_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PYKV_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "PYKV_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Most connections served at once (1 to 1,000,000). At the limit, the
    /// connection idle the longest is closed to make room; when none is
    /// idle, new ones wait to be accepted.
    #[arg(long, env = "PYKV_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONNECTIONS))]
    pub max_connections: usize,

    /// Largest request head (request line and headers), in bytes; 8192
    /// to 1 MiB. Larger ones are answered 431.
    #[arg(long, env = "PYKV_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(MIN_HEADER_BYTES..=MAX_HEADER_BYTES))]
    pub max_header_bytes: usize,

    /// Seconds a connection may go without sending a whole request head
    /// while none of its requests is being answered: a slowloris guard,
    /// which also closes idle keep-alive connections (1 to 86400).
    #[arg(long, env = "PYKV_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub header_read_timeout: u64,

    /// Seconds the handling of a request may take, from its head to its
    /// answer: a body still arriving past it is answered 408 (nothing
    /// applied); a storage backend that has not answered by then, 503 with
    /// Retry-After (the request may or may not have taken effect). 1 to
    /// 86400.
    #[arg(long, env = "PYKV_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub request_timeout: u64,
}

impl ServeArgs {
    /// The configuration `pykv serve FLAGS...` would run with (the
    /// environment's `PYKV_*` variables included): how code that starts a
    /// server in-process ([`crate::server::Server::start`]) builds one.
    pub fn from_flags<I, T>(flags: I) -> Result<ServeArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let command = std::iter::once(std::ffi::OsString::from("pykv-serve"));
        let flags = command.chain(flags.into_iter().map(Into::into));
        Ok(Serve::try_parse_from(flags)?.args)
    }
}

// The ranges of the numeric flags. A value outside is refused at start,
// with the flag and its range named, rather than accepted and turned into
// a server that refuses everything (a zero timeout or body size), panics
// (a connection count past tokio's semaphore) or wraps around (a limit past
// 64 bits; the memory and key limits share `store::MAX_LIMIT` with the
// quota file and `PUT /quota`).

/// Longest `--max-key-bytes`: far past any sensible key, and still a
/// fraction of the largest body.
const MAX_KEY_BYTES: u64 = 16 << 20;
/// Shortest `--max-body-bytes`: room for a small `POST /set` body.
const MIN_BODY_BYTES: u64 = 64;
/// Longest `--max-body-bytes`: one value is held whole in memory and
/// written as one line of the log.
const MAX_BODY_BYTES: u64 = 1 << 30;
/// Most `--max-connections`: each is a file descriptor and a task.
const MAX_CONNECTIONS: u64 = 1_000_000;
/// `--max-header-bytes`: hyper refuses a read buffer under 8 KiB, and a
/// head of more than 1 MiB is an attack, not a request.
const MIN_HEADER_BYTES: u64 = 8192;
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Longest of the timeouts (`--header-read-timeout`, `--request-timeout`,
/// the client's `--timeout`): one day.
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;
/// Largest `--compact-ratio`.
const MAX_COMPACT_RATIO: f64 = 1000.0;

/// `--compact-ratio`: over 1 (a ratio of 1 or less would rewrite the log
/// again and again) and at most [`MAX_COMPACT_RATIO`].
fn parse_compact_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if ratio > 1.0 && ratio <= MAX_COMPACT_RATIO {
        Ok(ratio)
    } else {
        Err(format!(
            "must be a number over 1 and at most {MAX_COMPACT_RATIO} (the log is rewritten once it \
             is this many times its size after the last rewrite)"
        ))
    }
}

/// `pykv serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// The engine's enums know nothing of clap: the flags' values, and their help
// text, are these enums, each mapped onto the engine's.

/// `pykv serve --fsync`: [`FsyncPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncFlag {
    /// Synced (fdatasync) before the answer: survives a machine crash.
    Always,
    /// Written to the OS before the answer, synced every second: survives
    /// `kill -9`; a machine crash loses at most about a second.
    Everysec,
    /// Written to the OS before the answer; syncing is left to the OS.
    No,
}

impl From<FsyncFlag> for FsyncPolicy {
    fn from(flag: FsyncFlag) -> FsyncPolicy {
        match flag {
            FsyncFlag::Always => FsyncPolicy::Always,
            FsyncFlag::Everysec => FsyncPolicy::Everysec,
            FsyncFlag::No => FsyncPolicy::No,
        }
    }
}

/// `pykv serve --eviction`: [`EvictionPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvictionFlag {
    /// Evict the least recently used keys (sampled) to make room.
    Lru,
    /// Refuse a write that would pass a limit (HTTP 507); evict nothing.
    Noeviction,
}

impl From<EvictionFlag> for EvictionPolicy {
    fn from(flag: EvictionFlag) -> EvictionPolicy {
        match flag {
            EvictionFlag::Lru => EvictionPolicy::Lru,
            EvictionFlag::Noeviction => EvictionPolicy::Noeviction,
        }
    }
}

/// `pykv token create --access`: the [`Access`] a tenant's token may have
/// (an admin token is made with `--admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessFlag {
    /// Read its namespaces.
    Read,
    /// Read and change its namespaces (set, delete, clear).
    Write,
}

impl From<AccessFlag> for Access {
    fn from(flag: AccessFlag) -> Access {
        match flag {
            AccessFlag::Read => Access::Read,
            AccessFlag::Write => Access::Write,
        }
    }
}

/// The storage backend named by `--backend`.
///
/// Why a string and not a list of values: the networked backends are URLs
/// (`redis://`, `redis-cluster://`), and `memory` stays out of the help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    Embedded,
    /// A map in this process without a log, for tests only: everything is
    /// lost at exit (src/memory.rs).
    Memory,
    /// One Redis server or a Redis Cluster (src/redis).
    Redis(RedisTarget),
}

fn parse_backend(name: &str) -> Result<BackendKind, String> {
    match name {
        "embedded" => Ok(BackendKind::Embedded),
        "memory" => Ok(BackendKind::Memory),
        _ if name.contains("://") => RedisTarget::parse(name).map(BackendKind::Redis),
        _ => Err(format!(
            "unknown backend {name:?}; use embedded, redis://HOST:PORT or \
             redis-cluster://HOST:PORT[,HOST:PORT...]"
        )),
    }
}

/// `--backend-timeout`: `250ms`, `2s`, or plain milliseconds; 1 ms to 1 h.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000)
    } else {
        (text, 1)
    };
    let number: u64 = (number.trim().parse())
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 250ms or 2s"))?;
    let ms = number.saturating_mul(unit_ms);
    if (1..=3_600_000).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(format!("{text:?} is out of range: 1ms to 3600s"))
    }
}

/// `--redis-prefix`: no braces, which would change the keys' hash tags.
fn parse_redis_prefix(text: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&text.len())
        && (text.bytes())
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?}: use 1 to 64 of A-Z a-z 0-9 _ . : -"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_timeouts_take_ms_s_or_plain_milliseconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1500"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "0s", "-1s", "1h", "s", "", "3601s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn redis_prefixes_keep_out_of_the_hash_tag() {
        assert_eq!(parse_redis_prefix("pykv:prod-1"), Ok("pykv:prod-1".into()));
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            assert!(parse_redis_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn backends_are_embedded_memory_or_redis_urls() {
        assert_eq!(parse_backend("embedded"), Ok(BackendKind::Embedded));
        assert!(matches!(
            parse_backend("redis-cluster://a:1,b:2"),
            Ok(BackendKind::Redis(RedisTarget::Cluster { .. }))
        ));
        assert!(parse_backend("redis://").is_err());
        assert!(parse_backend("postgres").is_err());
    }
}
