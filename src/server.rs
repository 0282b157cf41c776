//! Starting and stopping a server from its configuration: open the storage
//! backend (for the embedded one, the data directory and its log), bind the
//! listener, serve; on [`Server::shutdown`], stop accepting, finish the
//! requests in flight, then flush and sync the log.
//!
//! The CLI ([`run`]) only adds what a process needs: the listening line on
//! stdout and the signals. Tests start servers in-process with
//! [`Server::start`] as well.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{Authenticator, TokenFile};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendKind, ServeArgs};
use crate::config_file;
use crate::connections::{self, ConnectionLimits};
use crate::embedded::{EmbeddedBackend, EmbeddedOptions};
use crate::http::origin::SiteCheck;
use crate::http::{HandlerContext, Observer, ServerViews, service};
use crate::memory::{Fault, MemoryBackend};
use crate::rate_limit::RateLimits;
use crate::redis_backend::{Patience, RedisBackend, RedisOptions, RedisTarget};
use crate::reload::{self, Running};
use crate::store::{Limit, StoreConfig};
use crate::tls::{Certificates, TlsFiles};
use crate::wal::{AutoCompaction, WalOptions};

/// The runtime that serves requests (`--workers`): `workers` threads, or
/// one per core.
pub fn runtime(workers: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        runtime.worker_threads(workers.into());
    }
    runtime.enable_all().build()
}

/// Runs `pykv serve`: serves until SIGINT or SIGTERM, then shuts down
/// cleanly; `SIGHUP` reloads what can change live ([`crate::reload`]).
/// Under systemd (`Type=notify`), says it is ready once it listens, its log
/// replayed.
pub async fn run(config: ServeArgs) -> anyhow::Result<()> {
    // Watched before anyone can know the server is up: a signal sent just
    // after the listening line must not find the default action (exit).
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let server = Server::start(&config).await?;
    // What a reload compares with: the files as they were at the start.
    let mut running = Running::new(config, config_file::arguments_after(&["serve"]));
    // Printed on stdout, alone on its line, so scripts and tests can find the
    // port when started with --port 0.
    println!(
        "PyKV listening on {}://{}",
        server.scheme(),
        server.local_addr()
    );
    reload::notify(&[NotifyState::Ready]);
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("SIGINT received, shutting down");
                break;
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM received, shutting down");
                break;
            }
            _ = hangup.recv() => running.reload(&server).await,
        }
    }
    reload::notify(&[NotifyState::Stopping]);
    server.shutdown().await
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    backend: Arc<Backend>,
    auth: Arc<Authenticator>,
    rate_limits: Arc<RateLimits>,
    tls: Option<Arc<Certificates>>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<()>,
}

impl Server {
    /// Opens the backend, binds the listener and starts serving on the
    /// current runtime, which must be multi-threaded (the embedded engine
    /// replays its log and syncs it at shutdown on a worker that blocks).
    pub async fn start(config: &ServeArgs) -> anyhow::Result<Server> {
        let backend = Arc::new(match &config.backend {
            BackendKind::Embedded => Backend::from(open_embedded(config)?),
            BackendKind::Memory => Backend::Memory(open_memory(config)?),
            BackendKind::Redis(target) => Backend::Redis(open_redis(config, target).await?),
        });
        backend.set_feed_retention(config.watch_retention);
        // Over Redis the tokens are shared by every node, in Redis;
        // an explicit --tokens-file keeps them in that file instead.
        let tokens = match (&config.tokens_file, &config.backend) {
            (Some(path), _) => TokenFile::new(path),
            (None, BackendKind::Redis(target)) => {
                TokenFile::in_redis(target.clone(), &config.redis_prefix, config.backend_timeout)
            }
            (None, _) => TokenFile::in_data_dir(&config.data_dir),
        };
        let auth = Authenticator::open(tokens)?;
        auth.spawn_reload();

        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;
        let sites = SiteCheck::new(addr.ip(), &config.allowed_hosts, &config.cors_origins);
        warn_of_open_doors(config, addr, auth.is_open(), &sites);
        let rate_limits = Arc::new(config.limits.rate_limits().map_err(anyhow::Error::msg)?);
        let context = HandlerContext {
            backend: backend.clone(),
            max_body_bytes: config.max_body_bytes,
            auth: auth.clone(),
            rate_limits: rate_limits.clone(),
            cors_origins: config.cors_origins.clone(),
            sites: Arc::new(sites),
            request_timeout: Duration::from_secs(config.request_timeout),
            views: ServerViews::new(backend.clone()),
            // At most 10,000 (checked by clap).
            metrics_namespace_limit: config.metrics_namespace_limit as usize,
            observer: Observer::new(),
        };
        let limits = ConnectionLimits {
            max_connections: config.max_connections,
            max_header_bytes: config.max_header_bytes,
            header_read_timeout: Duration::from_secs(config.header_read_timeout),
        };
        tracing::info!(%addr, "listening");
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Certificates::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.tls_client_ca.clone(),
            })?),
            _ => None,
        };
        let serving = tokio::spawn(connections::serve(
            listener,
            service(context),
            limits,
            tls.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Server {
            addr,
            backend,
            auth,
            rate_limits,
            tls,
            stop,
            serving,
        })
    }

    /// The address it listens on (with the port picked for `--port 0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn auth(&self) -> &Authenticator {
        &self.auth
    }

    pub fn rate_limits(&self) -> &RateLimits {
        &self.rate_limits
    }

    /// The TLS certificates, when the server speaks HTTPS.
    pub fn tls(&self) -> Option<&Certificates> {
        self.tls.as_deref()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Stops accepting connections, lets the requests in flight finish,
    /// then flushes and syncs the log: every acknowledged write is on disk
    /// when it returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.serving.await.context("the server's task failed")?;
        tokio::task::block_in_place(|| self.backend.shutdown());
        tracing::info!("log flushed and synced; shut down cleanly");
        Ok(())
    }
}

/// Says loudly what a server reachable beyond this machine leaves open.
fn warn_of_open_doors(config: &ServeArgs, addr: SocketAddr, open: bool, sites: &SiteCheck) {
    if open && !addr.ip().is_loopback() {
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
            allowed_hosts = ?config.allowed_hosts,
            "the Host header is not checked (--allowed-host '*', or listening beyond \
             loopback without --allowed-host): name the hosts clients use with \
             --allowed-host to guard against DNS rebinding"
        );
    }
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

/// Connects to Redis and checks it (reachable, an eviction policy that
/// spares PyKV's keys). Per-namespace quotas are kept in Redis; a bound
/// on the whole store is Redis's own (its `maxmemory`), so
/// `--max-memory` and `--max-keys` are refused rather than ignored.
async fn open_redis(args: &ServeArgs, target: &RedisTarget) -> anyhow::Result<RedisBackend> {
    let limits = args.limits.limits().map_err(anyhow::Error::msg)?;
    if !limits.global.is_unlimited() {
        anyhow::bail!(
            "a Redis backend does not support --max-memory or --max-keys, bounds on the \
             whole store: set maxmemory in Redis for that. Per-namespace quotas (--quotas, \
             PUT /quota) are kept"
        );
    }
    let options = RedisOptions {
        prefix: args.redis_prefix.clone(),
        patience: Patience {
            timeout: args.backend_timeout,
            retries: args.backend_retries,
        },
        max_key_bytes: args.max_key_bytes,
        wait_replicas: args.redis_wait_replicas,
        limits,
    };
    RedisBackend::open(target, options).await
}

/// Refuses memory or key limits, for a backend that cannot keep them.
fn refuse_limits(args: &ServeArgs, backend: &str) -> anyhow::Result<()> {
    let limits = args.limits.limits().map_err(anyhow::Error::msg)?;
    let bounded = |limit: &Limit| limit.max_bytes.is_some() || limit.max_keys.is_some();
    if bounded(&limits.global)
        || bounded(&limits.default_quota)
        || limits.quotas.values().any(bounded)
    {
        anyhow::bail!(
            "{backend} does not support memory or key limits (--max-memory, --max-keys, \
             quotas in --quotas); use --backend embedded"
        );
    }
    Ok(())
}

/// The test-only backend: it keeps no log and bounds nothing, so it refuses
/// to start with a memory or key limit rather than ignore it.
fn open_memory(args: &ServeArgs) -> anyhow::Result<MemoryBackend> {
    refuse_limits(args, "--backend memory")?;
    tracing::warn!("--backend memory keeps everything in this process only: it is lost at exit");
    // A test-only hook, as PYKV_FAULT_WAL_WRITER: a store out of reach.
    let fault = match std::env::var("PYKV_FAULT_MEMORY_BACKEND").as_deref() {
        Ok("unavailable") => Some(Fault::Fail(BackendError::Unavailable {
            detail: "PYKV_FAULT_MEMORY_BACKEND".into(),
        })),
        Ok("timeout") => Some(Fault::Fail(BackendError::TimedOut {
            after: Duration::from_millis(250),
        })),
        Ok("hang") => Some(Fault::Hang),
        _ => None,
    };
    Ok(match fault {
        None => MemoryBackend::new(args.max_key_bytes),
        Some(fault) => MemoryBackend::failing(args.max_key_bytes, fault),
    })
}
