//! Tenant security: who may do what, in which namespaces.
//!
//! - [`tokens`]: the token file (hashes only), creation and revocation;
//! - this file: checking a presented token, and what it grants.
//!
//! With no token configured the server is open, as PyKV is. Once one
//! exists, every request needs `Authorization: Bearer TOKEN`.

pub mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq;

pub use tokens::{Access, TokenFile, TokenRecord, hash_token};

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this server requires a token: send `Authorization: Bearer TOKEN`")]
    Missing,
    #[error("the token is not valid (unknown, revoked, or mistyped)")]
    Unknown,
    #[error("this token may not {action} {scope}")]
    Forbidden { action: &'static str, scope: String },
}

/// What the presented token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// No token is configured: everything is open.
    Open,
    Token(TokenRecord),
}

impl Grants {
    pub fn is_admin(&self) -> bool {
        match self {
            Grants::Open => true,
            Grants::Token(t) => t.access == Access::Admin,
        }
    }

    /// Whether `namespace` may be used with `need`. The default namespace
    /// (`None`) belongs to no tenant: only admin tokens reach it.
    pub fn allows(&self, namespace: Option<&str>, need: Access) -> bool {
        match self {
            Grants::Open => true,
            Grants::Token(t) if t.access == Access::Admin => true,
            Grants::Token(t) => {
                t.access >= need && namespace.is_some_and(|ns| t.namespaces.iter().any(|n| n == ns))
            }
        }
    }

    /// The named namespaces this caller may read: `None` for every one
    /// (admins, and everyone on an open server). Lets a tenant's views look
    /// up its own namespaces instead of filtering all of them.
    pub fn readable_namespaces(&self) -> Option<&[String]> {
        match self {
            Grants::Token(t) if t.access != Access::Admin => Some(&t.namespaces),
            _ => None,
        }
    }

    pub fn check(&self, namespace: Option<&str>, need: Access) -> Result<(), AuthError> {
        if self.allows(namespace, need) {
            return Ok(());
        }
        Err(AuthError::Forbidden {
            action: if need == Access::Read {
                "read"
            } else {
                "write to"
            },
            scope: match namespace {
                Some(ns) => format!("namespace {ns:?}"),
                None => "the default namespace (admin tokens only)".into(),
            },
        })
    }

    pub fn require_admin(&self, what: &'static str) -> Result<(), AuthError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(AuthError::Forbidden {
            action: "use",
            scope: format!("{what} (admin tokens only)"),
        })
    }
}

/// Checks presented tokens against the token file, re-reading the file
/// when it changes so that created and revoked tokens take effect without
/// a restart.
pub struct Authenticator {
    file: TokenFile,
    state: RwLock<Snapshot>,
    /// Whether any token exists: the common case of an open server then
    /// costs one atomic load a request, no lock.
    closed: AtomicBool,
}

#[derive(Default)]
struct Snapshot {
    tokens: Arc<Vec<TokenRecord>>,
    /// Modification time and length of the file when it was read.
    stamp: Option<(SystemTime, u64)>,
}

impl Authenticator {
    pub fn open(file: TokenFile) -> Result<Arc<Self>, tokens::TokenFileError> {
        let auth = Arc::new(Authenticator {
            file,
            state: RwLock::default(),
            closed: AtomicBool::new(false),
        });
        auth.reload()?;
        Ok(auth)
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn tokens(&self) -> Arc<Vec<TokenRecord>> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .clone()
    }

    /// What the `Authorization` header's token grants.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Grants, AuthError> {
        if self.is_open() {
            return Ok(Grants::Open);
        }
        let tokens = self.tokens();
        if tokens.is_empty() {
            return Ok(Grants::Open);
        }
        let token = authorization
            .and_then(|h| h.strip_prefix(b"Bearer "))
            .map(<[u8]>::trim_ascii)
            .ok_or(AuthError::Missing)?;
        let presented = hash_token(&String::from_utf8_lossy(token));
        // Every stored hash is compared, in constant time, whatever matches.
        let mut found = None;
        for record in tokens.iter() {
            if bool::from(record.sha256.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(record.clone());
            }
        }
        found.map(Grants::Token).ok_or(AuthError::Unknown)
    }

    /// Re-reads the file if it changed since it was last read.
    pub fn reload(&self) -> Result<(), tokens::TokenFileError> {
        let stamp = std::fs::metadata(self.file.path())
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if self.state.read().unwrap_or_else(|p| p.into_inner()).stamp == stamp && stamp.is_some() {
            return Ok(());
        }
        let tokens = self.file.load()?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.tokens.len() != tokens.len() {
            tracing::info!(tokens = tokens.len(), "token file loaded");
        }
        self.closed.store(!tokens.is_empty(), Ordering::Release);
        *state = Snapshot {
            tokens: Arc::new(tokens),
            stamp,
        };
        Ok(())
    }

    /// Re-reads the file every half second, for as long as the server runs.
    pub fn spawn_reload(self: &Arc<Self>) {
        let auth = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("pykv-tokens".into())
            .spawn(move || {
                while let Some(auth) = auth.upgrade() {
                    if let Err(e) = auth.reload() {
                        tracing::warn!(error = %e, "cannot reload the token file; keeping the tokens loaded before");
                    }
                    drop(auth);
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
            .expect("spawning the token reload thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with(dir: &std::path::Path) -> (Arc<Authenticator>, TokenFile) {
        (
            Authenticator::open(TokenFile::in_data_dir(dir)).unwrap(),
            TokenFile::in_data_dir(dir),
        )
    }

    #[test]
    fn open_without_tokens_then_closed_once_one_exists() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, file) = auth_with(dir.path());
        assert_eq!(auth.authenticate(None), Ok(Grants::Open));
        let (token, _) = file.create(vec!["a".into()], Access::Write).unwrap();
        auth.reload().unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some(b"Bearer nope")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            auth.authenticate(Some(token.as_bytes())),
            Err(AuthError::Missing)
        );
        let grants = auth
            .authenticate(Some(format!("Bearer {token}").as_bytes()))
            .unwrap();
        assert!(grants.allows(Some("a"), Access::Write));
        assert!(!grants.allows(Some("b"), Access::Read));
        assert!(!grants.allows(None, Access::Read));
        assert!(!grants.is_admin());
    }

    #[test]
    fn read_tokens_cannot_write_and_revocation_takes_effect() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, file) = auth_with(dir.path());
        let (token, record) = file.create(vec!["a".into()], Access::Read).unwrap();
        let (_admin, _) = file.create(vec![], Access::Admin).unwrap();
        auth.reload().unwrap();
        let header = format!("Bearer {token}");
        let grants = auth.authenticate(Some(header.as_bytes())).unwrap();
        assert!(grants.allows(Some("a"), Access::Read));
        assert!(grants.check(Some("a"), Access::Write).is_err());
        file.revoke(&record.id).unwrap();
        auth.reload().unwrap();
        assert_eq!(
            auth.authenticate(Some(header.as_bytes())),
            Err(AuthError::Unknown)
        );
    }
}
