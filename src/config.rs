//! Command-line flags of `pykv`, each also readable from an environment
//! variable (`PYKV_*`); a flag given on the command line wins.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::wal::FsyncPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "pykv",
    version,
    about = "PyKV: a multi-tenant key-value server over HTTP and JSON"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PYKV_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, env = "PYKV_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Directory holding the write-ahead log.
    #[arg(long, env = "PYKV_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Longest key accepted, in bytes.
    #[arg(long, env = "PYKV_MAX_KEY_BYTES", default_value_t = 1024)]
    pub max_key_bytes: usize,

    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "PYKV_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// When the log is synced to disk: always (before each answer),
    /// everysec (once a second), no (left to the OS). See the README for
    /// what each promises.
    #[arg(long, env = "PYKV_FSYNC", value_enum, default_value = "everysec")]
    pub fsync: FsyncPolicy,

    /// If the log is corrupt before its last record, keep a copy of it and
    /// recover every record before the damage instead of refusing to start.
    #[arg(long, env = "PYKV_REPAIR_LOG")]
    pub repair_log: bool,

    /// Never compact the log automatically while it is smaller than this.
    #[arg(long, env = "PYKV_COMPACT_MIN_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub compact_min_bytes: u64,

    /// Compact the log automatically once it is this many times its size
    /// after the last compaction (or start).
    #[arg(long, env = "PYKV_COMPACT_RATIO", default_value_t = 2.0)]
    pub compact_ratio: f64,
}
