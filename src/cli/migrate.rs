//! `pykv migrate`: every namespace's live data copied from one backend to
//! another, TTL deadlines included, with the backends opened directly
//! through the storage interface ([`KvBackend`]), not over HTTP: an
//! embedded data directory (its lock taken, so a directory a running
//! server uses is refused) and Redis or a Redis Cluster (from its URL).
//!
//! Each namespace is read page by page ([`KvBackend::export_page`], the
//! listing's order and promise) and written page by page
//! ([`KvBackend::import_records`], one durability wait per page), so
//! memory holds one page whatever the data's size. Keys already in the
//! target are overwritten; others there stay. A key whose deadline passes
//! during the copy is skipped and counted apart.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::transfer::bar;
use crate::backend::{Backend, KvBackend};
use crate::config::MigrateArgs;
use crate::embedded::{EmbeddedBackend, EmbeddedOptions};
use crate::redis_backend::{Patience, RedisBackend, RedisOptions, RedisTarget};
use crate::store::{Limits, MAX_PAGE, StoreConfig, validate_namespace};
use crate::wal::{AutoCompaction, FsyncPolicy, WalOptions};

/// Runs `pykv migrate`: 0 once everything is copied, 3 on a failure (what
/// was copied before it stays copied).
pub fn run(args: &MigrateArgs) -> ExitCode {
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(migrate(args)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(super::SERVER_ERROR)
        }
    }
}

/// What was copied of one namespace.
#[derive(Debug, Default)]
struct Copied {
    stored: u64,
    /// Keys whose deadline passed between the read and the write.
    expired: u64,
}

async fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let source = open(args, args.from_data_dir.as_deref(), args.from.as_ref())
        .await
        .context("cannot open the source")?;
    let target = open(args, args.to_data_dir.as_deref(), args.to.as_ref())
        .await
        .context("cannot open the target")?;
    let outcome = copy_all(args, &source, &target).await;
    // The embedded log is written out and synced whatever happened.
    target.shutdown();
    source.shutdown();
    outcome
}

async fn copy_all(args: &MigrateArgs, source: &Backend, target: &Backend) -> anyhow::Result<()> {
    let namespaces = namespaces_of(source, &args.namespaces).await?;
    let mut total = Copied::default();
    for (namespace, size) in &namespaces {
        let name = namespace.as_deref();
        let copied = copy(source, target, name, *size, args.quiet)
            .await
            .with_context(|| format!("copying {}", describe(name)))?;
        println!(
            "{}: {} keys copied{}",
            describe(name),
            copied.stored,
            expired_note(copied.expired)
        );
        total.stored += copied.stored;
        total.expired += copied.expired;
    }
    println!(
        "migrated {} keys in {} namespaces{}",
        total.stored,
        namespaces.len(),
        expired_note(total.expired)
    );
    Ok(())
}

/// One namespace, page by page; `size` is its key count at the start,
/// for the progress bar.
async fn copy(
    source: &Backend,
    target: &Backend,
    namespace: Option<&str>,
    size: u64,
    quiet: bool,
) -> anyhow::Result<Copied> {
    let bar = bar(
        quiet,
        Some(size),
        "{prefix} [{bar:30}] {pos}/{len} keys  eta {eta}",
    );
    bar.set_prefix(describe(namespace));
    let mut copied = Copied::default();
    let mut cursor = None;
    loop {
        let page = source
            .export_page(namespace, cursor.as_deref(), MAX_PAGE)
            .await?;
        let done = target.import_records(namespace, &page.records).await;
        done.commit.durable().await?;
        copied.stored += done.stored as u64;
        copied.expired += (done.applied - done.stored) as u64;
        if let Some(error) = done.refused {
            let key = &page.records[done.applied].key;
            bail!("the target refused key {key:?}: {error}");
        }
        bar.inc(page.records.len() as u64);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    bar.finish_and_clear();
    Ok(copied)
}

/// The namespaces to copy with their sizes: those named, or every one
/// holding keys (the default namespace included).
async fn namespaces_of(
    source: &Backend,
    named: &[String],
) -> anyhow::Result<Vec<(Option<String>, u64)>> {
    if !named.is_empty() {
        let mut out = Vec::new();
        for name in named {
            validate_namespace(name).with_context(|| format!("--ns {name:?}"))?;
            let size = source.namespace_stats(Some(name)).await?.total_keys;
            out.push((Some(name.clone()), size as u64));
        }
        return Ok(out);
    }
    let stats = source.stats().await?.store;
    let default = stats.default_namespace.total_keys as u64;
    let default = (default > 0).then_some((None, default));
    let named = (stats.namespaces.into_iter()).map(|(name, s)| (Some(name), s.total_keys as u64));
    Ok(default.into_iter().chain(named).collect())
}

/// The backend of `--*-data-dir` or of the Redis URL (clap requires one).
async fn open(
    args: &MigrateArgs,
    data_dir: Option<&Path>,
    redis: Option<&RedisTarget>,
) -> anyhow::Result<Backend> {
    match (data_dir, redis) {
        (Some(dir), _) => Ok(Backend::Embedded(open_embedded(dir, args.max_key_bytes)?)),
        (None, Some(target)) => {
            let patience = Patience {
                timeout: args.backend_timeout,
                retries: 2,
            };
            // No quota file and no waiting for replicas: a migration
            // copies everything once (quotas `PUT /quota` kept in the
            // target still apply to what is written there).
            let options = RedisOptions {
                prefix: args.redis_prefix.clone(),
                patience,
                max_key_bytes: args.max_key_bytes,
                wait_replicas: 0,
                limits: Limits::default(),
            };
            let redis = RedisBackend::open(target, options).await?;
            Ok(Backend::Redis(redis))
        }
        (None, None) => bail!("name a data directory or a Redis URL"),
    }
}

/// A data directory opened as `pykv serve` opens it, without limits (a
/// migration copies everything) and without automatic compaction.
fn open_embedded(dir: &Path, max_key_bytes: usize) -> anyhow::Result<EmbeddedBackend> {
    let options = EmbeddedOptions {
        data_dir: dir.to_path_buf(),
        store: StoreConfig {
            max_key_bytes,
            ..StoreConfig::default()
        },
        wal: WalOptions {
            fsync: FsyncPolicy::Everysec,
        },
        repair: false,
        auto_compaction: AutoCompaction {
            min_bytes: u64::MAX,
            ratio: 2.0,
        },
    };
    Ok(EmbeddedBackend::open(&options)?.0)
}

fn describe(namespace: Option<&str>) -> String {
    match namespace {
        Some(name) => format!("namespace {name:?}"),
        None => "the default namespace".into(),
    }
}

fn expired_note(expired: u64) -> String {
    match expired {
        0 => String::new(),
        n => format!(" ({n} expired during the copy, skipped)"),
    }
}
