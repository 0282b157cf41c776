//! Security: tokens and what they allow, tenants kept apart, admin-only
//! routes, revocation without restart, rate limits, CORS, connection and
//! header limits, slow clients, secrets kept out of logs, and a
//! deterministic mini-fuzz of the parsers that read bytes from outside.
//!
//! Every test runs the real `pykv` binary; tokens are made with the real
//! `pykv token create` in the server's data directory. One file per topic,
//! all in one test binary: one link, and the topics' tests run in parallel.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod connections;
mod cors_and_sites;
mod parser_fuzz;
mod rate_limits;
mod secrets;
mod tokens;
