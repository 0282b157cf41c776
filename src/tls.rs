//! Native TLS (rustls): the server's certificate and key, and optionally
//! the CA that client certificates must chain to (mutual TLS).
//!
//! - TLS replaces plain HTTP on the server's one port: with `--tls-cert`
//!   and `--tls-key`, every connection must start with a TLS handshake,
//!   and one that does not (plain HTTP) is closed. One port, so that no
//!   token can travel in clear by mistake.
//! - Modern defaults: TLS 1.3 and 1.2 only, rustls's cipher suites (AEAD
//!   with forward secrecy; nothing weak is even implemented), on the
//!   `ring` provider; ALPN `http/1.1`.
//! - `SIGHUP` reads the files again ([`Certificates::reload`]); new
//!   connections get the new certificate, open ones keep theirs, so no
//!   connection is dropped. Files that do not load are refused and the
//!   running certificate kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate, its key and the client CA are read from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The server's TLS configuration, replaceable while it serves.
pub struct Certificates {
    files: TlsFiles,
    config: RwLock<Arc<ServerConfig>>,
}

impl Certificates {
    /// Reads the files; any problem stops the start with the file named.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Certificates>> {
        let config = server_config(&files)?;
        Ok(Arc::new(Certificates {
            files,
            config: RwLock::new(Arc::new(config)),
        }))
    }

    /// The acceptor of a new connection, with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(config.clone())
    }

    /// Reads the files again; on error the running certificate stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.files)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(())
    }
}

/// The crypto provider of every TLS connection, server and client.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for clients (reqwest) that
/// take the default; harmless when one is installed already.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let certs = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| {
        format!(
            "cannot read a private key (PEM) from {}",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS 1.2 and 1.3")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a CA certificate", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .with_context(|| format!("client CA {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "the key {} does not go with the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates (PEM) from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate (PEM) in {}",
        path.display()
    );
    Ok(certs)
}
