//! Command-line flags of `pykv`, each also readable from an environment
//! variable (`PYKV_*`); a flag given on the command line wins.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}
