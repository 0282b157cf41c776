//! `SIGHUP`: re-reading what can change without a restart, and telling
//! systemd where the server stands (`Type=notify`).
//!
//! A reload re-reads the token file (which the server also re-reads four
//! times a second by itself), the TLS certificate and key, and the quotas: the quota file (`--quotas`) or
//! the configuration file's `[quotas]` table. Rate limits and the quotas of
//! the namespaces the file names take effect at once, as `PUT /quota` would
//! set them. A file that does not load is refused with a log line, and the
//! running configuration is kept. Any other setting of a configuration file
//! that changed (the port, the data directory, ...) is named in a warning:
//! it takes effect at the next start.

use std::ffi::OsString;

use sd_notify::NotifyState;

use crate::backend::KvBackend;
use crate::config::ServeArgs;
use crate::config_file::{self, Setting};
use crate::server::Server;

/// What a reload compares against: the running configuration, and its
/// settings as the configuration file gave them.
pub struct Running {
    config: ServeArgs,
    /// `pykv serve`'s arguments, to read the configuration file again.
    argv: Vec<OsString>,
    settings: Vec<Setting>,
}

impl Running {
    pub fn new(config: ServeArgs, argv: Vec<OsString>) -> Self {
        let settings = match &config.config {
            Some(_) => config_file::serve_config(&argv)
                .map(|(_, settings)| settings)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Running {
            config,
            argv,
            settings,
        }
    }

    /// Reloads what can change live on `server`.
    pub async fn reload(&mut self, server: &Server) {
        notify(&[NotifyState::Reloading]);
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            notify(&[now]);
        }
        match server.auth().reload() {
            Ok(()) => tracing::info!("SIGHUP: token file reloaded"),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP: cannot reload the token file; keeping the tokens loaded before")
            }
        }
        if let Some(certificates) = server.tls() {
            match certificates.reload() {
                Ok(()) => {
                    tracing::info!("SIGHUP: TLS certificate reloaded; new connections use it")
                }
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "SIGHUP: the TLS files are refused; keeping the running certificate"
                ),
            }
        }
        if let Some(config) = self.reread() {
            apply_quotas(server, &config).await;
            self.config = config;
        }
        notify(&[NotifyState::Ready]);
    }

    /// The configuration with its files read again, or `None` (logged)
    /// when the configuration file does not load.
    fn reread(&mut self) -> Option<ServeArgs> {
        if self.config.config.is_none() {
            return Some(self.config.clone());
        }
        match config_file::serve_config(&self.argv) {
            Ok((config, settings)) => {
                let changed: Vec<&str> = (settings.iter())
                    .filter(|setting| !self.settings.contains(setting))
                    .map(|(key, _, _)| key.as_str())
                    .collect();
                if !changed.is_empty() {
                    tracing::warn!(
                        ?changed,
                        "SIGHUP: these settings changed in the configuration file; they take \
                         effect at the next start (only quotas and tokens reload live)"
                    );
                }
                self.settings = settings;
                Some(config)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: the configuration file is refused; keeping the running configuration");
                None
            }
        }
    }
}

/// Takes the rate limits and the named namespaces' quotas of `config`.
async fn apply_quotas(server: &Server, config: &ServeArgs) {
    let (rates, limits) = match (config.limits.rate_limits(), config.limits.limits()) {
        (Ok(rates), Ok(limits)) => (rates, limits),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "SIGHUP: the quotas are refused; keeping the running ones");
            return;
        }
    };
    server.rate_limits().replace(rates);
    let mut applied = 0;
    for (namespace, quota) in limits.quotas {
        match server.backend().set_quota(Some(&namespace), quota).await {
            Ok(_) => applied += 1,
            Err(e) => tracing::warn!(namespace, error = %e, "SIGHUP: cannot apply a quota"),
        }
    }
    tracing::info!(
        namespaces = applied,
        "SIGHUP: rate limits and per-namespace quotas reloaded (a changed [default] quota \
         applies from the next start)"
    );
}

/// Tells systemd (`NOTIFY_SOCKET`, set by `Type=notify`) where the server
/// stands; nothing without it.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
