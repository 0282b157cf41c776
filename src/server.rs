//! Starting and stopping the server: open the data directory, bind the
//! listener, serve until SIGINT or SIGTERM, finish the requests in flight,
//! then flush and sync the log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{Authenticator, TokenFile};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendKind, ServeArgs};
use crate::connections::{self, ConnectionLimits};
use crate::embedded::{EmbeddedBackend, EmbeddedOptions};
use crate::http::origin::SiteCheck;
use crate::http::{AppState, HandlerContext, ServerViews, service};
use crate::memory::MemoryBackend;
use crate::store::{Limit, StoreConfig};
use crate::wal::{AutoCompaction, WalOptions};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let db = Arc::new(match args.backend {
        BackendKind::Embedded => Backend::from(open_embedded(&args)?),
        BackendKind::Memory => Backend::Memory(open_memory(&args)?),
    });
    let tokens = match &args.tokens_file {
        Some(path) => TokenFile::new(path),
        None => TokenFile::in_data_dir(&args.data_dir),
    };
    let auth = Authenticator::open(tokens)?;
    auth.spawn_reload();

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let sites = SiteCheck::new(addr.ip(), &args.allowed_hosts, &args.cors_origins);
    let state = AppState::new(HandlerContext {
        backend: db.clone(),
        max_body_bytes: args.max_body_bytes,
        auth: auth.clone(),
        rate_limits: Arc::new(args.limits.rate_limits().map_err(anyhow::Error::msg)?),
        cors_origins: args.cors_origins.clone(),
        sites: Arc::new(sites.clone()),
        request_timeout: Duration::from_secs(args.request_timeout),
        views: ServerViews::new(db.clone()),
        // At most 10,000 (checked by clap).
        metrics_namespace_limit: args.metrics_namespace_limit as usize,
    });
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        max_header_bytes: args.max_header_bytes,
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
    };

    // Printed on stdout, alone on its line, so scripts and tests can find the
    // port when started with --port 0.
    println!("PyKV listening on http://{addr}");
    tracing::info!(%addr, "listening");
    if auth.is_open() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "NO TOKEN IS CONFIGURED and the server listens beyond this machine: anyone who can \
             reach it can read, change and clear every namespace. Create tokens with \
             `pykv token create` (see SECURITY.md)"
        );
    }

    if !sites.checks_host() {
        tracing::info!(
            %addr,
            "the Host header is not checked (--allowed-host '*', or listening beyond \
             loopback without --allowed-host): name the hosts clients use with \
             --allowed-host to guard against DNS rebinding"
        );
    }

    connections::serve(listener, service(state), limits, shutdown_signal()).await;
    tokio::task::block_in_place(|| db.shutdown());
    tracing::info!("log flushed and synced; shut down cleanly");
    Ok(())
}

/// Opens the data directory and replays its log.
fn open_embedded(args: &ServeArgs) -> anyhow::Result<EmbeddedBackend> {
    let options = EmbeddedOptions {
        data_dir: args.data_dir.clone(),
        store: StoreConfig {
            max_key_bytes: args.max_key_bytes,
            limits: args.limits.limits().map_err(anyhow::Error::msg)?,
        },
        wal: WalOptions {
            fsync: args.fsync.into(),
        },
        repair: args.repair_log,
        auto_compaction: AutoCompaction {
            min_bytes: args.compact_min_bytes,
            ratio: args.compact_ratio,
        },
    };
    let (db, report) = tokio::task::block_in_place(|| EmbeddedBackend::open(&options))?;
    tracing::info!(
        data_dir = %args.data_dir.display(),
        records = report.applied,
        expired = report.expired,
        keys = db.store().len(),
        log_bytes = report.log_size,
        fsync = ?args.fsync,
        "recovered the log"
    );
    Ok(db)
}

/// The test-only backend: it keeps no log and bounds nothing, so it refuses
/// to start with a memory or key limit rather than ignore it.
fn open_memory(args: &ServeArgs) -> anyhow::Result<MemoryBackend> {
    let limits = args.limits.limits().map_err(anyhow::Error::msg)?;
    let bounded = |limit: &Limit| limit.max_bytes.is_some() || limit.max_keys.is_some();
    if bounded(&limits.global)
        || bounded(&limits.default_quota)
        || limits.quotas.values().any(bounded)
    {
        anyhow::bail!(
            "--backend memory does not support memory or key limits (--max-memory, --max-keys, \
             quotas in --quotas); use --backend embedded"
        );
    }
    tracing::warn!("--backend memory keeps everything in this process only: it is lost at exit");
    // A test-only hook, as PYKV_FAULT_WAL_WRITER: a store out of reach.
    let fault = match std::env::var("PYKV_FAULT_MEMORY_BACKEND").as_deref() {
        Ok("unavailable") => Some(BackendError::Unavailable {
            detail: "PYKV_FAULT_MEMORY_BACKEND".into(),
        }),
        Ok("timeout") => Some(BackendError::TimedOut {
            after: Duration::from_millis(250),
        }),
        _ => None,
    };
    Ok(match fault {
        None => MemoryBackend::new(args.max_key_bytes),
        Some(fault) => MemoryBackend::failing(args.max_key_bytes, fault),
    })
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c().await.ok();
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
