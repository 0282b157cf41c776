//! The seed's namespace demo, from Rust through `pykv::client`:
//!
//! ```sh
//! cargo run -- serve &                       # a server on 127.0.0.1:8000
//! cargo run --example namespace_demo         # or PYKV_URL=http://host:port ...
//! ```
//!
//! The scenarios live in `pykv::client::demo`, so the tests run them too;
//! `examples/namespace_demo.py` is the same demo in Python.

use std::process::ExitCode;

use pykv::client::{DEFAULT_URL, demo};

fn main() -> ExitCode {
    let url = std::env::var("PYKV_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match demo::run(&url, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
