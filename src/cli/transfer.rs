//! `pykv export NS > file` and `pykv import NS < file`: one namespace
//! streamed out of a server or into one, NDJSON on stdout or stdin, with a
//! progress bar on stderr. Exporting from one server and importing into
//! another moves a tenant between instances, and between backends.
//!
//! The bar is drawn only when stderr is a terminal (indicatif hides it
//! otherwise, and `--quiet` always), so a script's stderr holds just the
//! final count.

use std::io::{BufWriter, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Format;
use super::output;
use crate::client::{Client, Error};
use crate::config::TransferArgs;

/// `pykv export NS`: the keys on stdout; the count on stderr.
pub fn export(kv: &Client, args: &TransferArgs) -> Result<u8, Error> {
    // The bar's length is the namespace's size when the export starts; a
    // namespace written meanwhile may end a little off it.
    let total = kv
        .namespace_size(&args.ns)
        .ok()
        .map(|a| a.total_keys as u64);
    let bar = bar(
        args.quiet,
        total,
        "{prefix} [{bar:30}] {pos}/{len} keys  {elapsed}",
    );
    bar.set_prefix(format!("export {}", args.ns));
    let mut out = BufWriter::new(std::io::stdout().lock());
    let keys = kv.export(&args.ns, &mut out, &mut |keys| bar.set_position(keys));
    bar.finish_and_clear();
    let keys = keys?;
    out.flush()
        .map_err(|e| Error::Usage(format!("cannot write the export: {e}")))?;
    eprintln!("exported {keys} keys from namespace {:?}", args.ns);
    Ok(0)
}

/// `pykv import NS`: the keys from stdin; the server's count on stdout.
pub fn import(kv: &Client, args: &TransferArgs, format: Format) -> Result<u8, Error> {
    // Known when stdin is a file (`< file`), not when it is a pipe.
    let size = std::fs::metadata("/dev/stdin")
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let template = match size {
        Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}",
        None => "{prefix} {spinner} {bytes}  {bytes_per_sec}  {elapsed}",
    };
    let bar = bar(args.quiet, size, template);
    bar.set_prefix(format!("import {}", args.ns));
    let answer = kv.import(&args.ns, bar.wrap_read(std::io::stdin()));
    bar.finish_and_clear();
    let answer = answer?;
    output::print(&match format {
        Format::Json => answer.json().to_owned(),
        Format::Text => format!(
            "imported {} keys into namespace {:?}",
            answer.imported, answer.namespace
        ),
    });
    Ok(0)
}

/// A bar on stderr, of `length` if known, hidden with `--quiet` (and by
/// indicatif when stderr is no terminal).
pub fn bar(quiet: bool, length: Option<u64>, template: &str) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(length, target);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("the templates are valid")
            .progress_chars("=> "),
    );
    bar
}
