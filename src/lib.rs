//! PyKV: a multi-tenant key-value server spoken to over HTTP and JSON.
//!
//! Map of the modules:
//! - [`store`]: the engine. Namespaces of keys holding JSON values, TTLs
//!   with active expiry, per-namespace statistics, counters, conditional
//!   writes, batches and transactions, export pages. No HTTP and no files;
//!   it hands every change to a journal.
//! - [`wal`]: the write-ahead log. Group commit, records written by the
//!   request's own worker while the kernel is far from throttling, fsync
//!   policies, replay with torn-tail handling and repair, compaction while
//!   writes go on.
//! - [`embedded`]: the embedded backend, the engine and its log opened
//!   together from a data directory, which [`dir_lock`] keeps to one
//!   process at a time.
//! - [`backend`]: the asynchronous, fallible interface the HTTP layer
//!   speaks to, its contracts, and the enum of backends behind it;
//!   [`memory`]: a map without a log, for the conformance tests only;
//!   [`redis_backend`]: the store over one Redis server or a Redis Cluster
//!   (quotas, tokens and change feeds kept in Redis, `WAIT` for replicas).
//! - [`feed`]: the change feed's events, ids and retention ring
//!   (`GET /watch`), which the in-process backends publish into.
//! - [`auth`]: API tokens scoped to namespaces, and what each grants.
//! - [`api`]: the API's wire shapes, one type per request body and answer:
//!   the server encodes with them, the OpenAPI document is generated from
//!   them, the client decodes with them. No HTTP, only serde and utoipa.
//! - [`http`]: the one pipeline every request takes (site checks, CORS,
//!   route, token, body, parse, admit, execute, observe, encode), the
//!   operations of the API one file each under `http/ops/`, listed once,
//!   and the one place where errors become HTTP statuses; [`http::views`]:
//!   the server-wide figures, gathered off the request workers.
//! - [`rate_limit`]: per-namespace token buckets, checked by the HTTP layer.
//! - [`config`]: command-line flags and their environment variables;
//!   [`config_file`]: the same settings from a TOML file (`--config`);
//!   [`quotas`]: the memory bounds and the quota file.
//! - [`connections`]: the accept loop and its limits (connections,
//!   header size, slow clients); [`tls`]: native TLS (rustls), mutual TLS,
//!   certificates reloaded on `SIGHUP`.
//! - [`server`]: [`server::Server::start`] opens the backend and serves
//!   from a configuration value ([`config::ServeArgs`]), with its bound
//!   address and a clean shutdown; [`server::run`] adds the signals for
//!   `pykv serve`; [`reload`]: what `SIGHUP` re-reads, and systemd's
//!   readiness notification.
//! - [`client`]: a small blocking HTTP client for the API, for Rust
//!   programs, answering with [`api`]'s types; also the namespace demo
//!   ([`client::demo`]).
//! - [`cli`]: the command-line client (`pykv get|set|del|ns|stats|...`,
//!   `pykv batch|watch|export|import`, `pykv shell`), and `pykv migrate`
//!   between a data directory and Redis: commands, output formatting, exit
//!   codes.
//! - [`bench`]: `pykv bench`, the load generator (throughput, latency
//!   percentiles), and the do-nothing "ceiling" server it is compared to.
//! - [`fuzzing`]: the parsers of outside bytes behind byte-taking entry
//!   points, for `fuzz/` and the mini-fuzz of the tests (hidden);
//!   `json`: small serde helpers shared by the request parser and the log
//!   reader.

pub mod api;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod config_file;
pub mod connections;
pub mod dir_lock;
pub mod embedded;
pub mod feed;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod memory;
pub mod quotas;
pub mod rate_limit;
pub mod redis_backend;
pub mod reload;
pub mod server;
pub mod store;
pub mod tls;
pub mod wal;

mod json;
