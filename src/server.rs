//! Starting and stopping the server: build the store, bind the listener,
//! serve until SIGINT or SIGTERM, then drain the requests in flight.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::backend::Db;
use crate::config::ServeArgs;
use crate::http::{AppState, router};
use crate::store::{NoJournal, Store, StoreConfig, spawn_expiry_cycle};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let store = Arc::new(Store::new(
        StoreConfig {
            max_key_bytes: args.max_key_bytes,
        },
        Box::new(NoJournal),
    ));
    spawn_expiry_cycle(&store);
    let state = AppState {
        backend: Arc::new(Db::new(store)),
        max_body_bytes: args.max_body_bytes,
    };

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    // Printed on stdout, alone on its line, so scripts and tests can find the
    // port when started with --port 0.
    println!("PyKV listening on http://{addr}");
    tracing::info!(%addr, "listening");

    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
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
