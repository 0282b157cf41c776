//! Tenant security: who may do what, in which namespaces.
//!
//! - [`tokens`]: the token file (hashes only), creation and revocation;
//! - this file: checking a presented token, and what it grants.
//!
//! A server whose token file never held a token is open, as PyKV is. Once
//! one exists, every request needs `Authorization: Bearer TOKEN`, and it
//! stays so when the last token is revoked or the file disappears: only
//! `pykv token open`, an operator's explicit act, opens the server again.

mod redis_tokens;
pub mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use subtle::ConstantTimeEq;

pub use tokens::{Access, AuthMode, TokenFile, TokenRecord, TokenSet, hash_token};

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this server requires a token: send `Authorization: Bearer TOKEN`")]
    Missing,
    #[error("the token is not valid (unknown, revoked, or mistyped)")]
    Unknown,
    #[error(
        "this server requires a token and none exists (the last one was revoked): an operator \
         can create one with `pykv token create`, or open the server to every client on \
         purpose with `pykv token open`"
    )]
    NoToken,
    #[error("this token may not {action} {scope}")]
    Forbidden { action: &'static str, scope: String },
}

/// What the presented token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grants {
    /// No token is configured: everything is open.
    Open,
    Token(TokenRecord),
    /// No valid token, on a server that requires one. The routes that need
    /// none (the console, the documentation, liveness) still answer; any
    /// check refuses with why the token was refused.
    Anonymous(AuthError),
}

impl Grants {
    pub fn is_admin(&self) -> bool {
        match self {
            Grants::Open => true,
            Grants::Token(t) => t.access == Access::Admin,
            Grants::Anonymous(_) => false,
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
            Grants::Anonymous(_) => false,
        }
    }

    /// The named namespaces this caller may read: `None` for every one
    /// (admins, and everyone on an open server). Lets a tenant's views look
    /// up its own namespaces instead of filtering all of them.
    pub fn readable_namespaces(&self) -> Option<&[String]> {
        match self {
            Grants::Token(t) if t.access != Access::Admin => Some(&t.namespaces),
            Grants::Anonymous(_) => Some(&[]),
            _ => None,
        }
    }

    /// A valid token (or an open server), of any scope.
    pub fn require_token(&self) -> Result<(), AuthError> {
        match self {
            Grants::Anonymous(refusal) => Err(refusal.clone()),
            _ => Ok(()),
        }
    }

    pub fn check(&self, namespace: Option<&str>, need: Access) -> Result<(), AuthError> {
        self.require_token()?;
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
        self.require_token()?;
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
    /// Whether tokens are required: the common case of an open server then
    /// costs one atomic load a request, no lock.
    closed: AtomicBool,
}

#[derive(Default)]
struct Snapshot {
    tokens: Arc<Vec<TokenRecord>>,
    /// The file's bytes when it was last read (`None`: it did not exist).
    /// Compared whole, not by modification time and size: a revocation
    /// and a creation within one tick of the file system's clock can
    /// leave both unchanged, and the revoked token must still be refused.
    text: Option<Vec<u8>>,
    loaded: bool,
}

/// How often the token file is re-read: a revoked token is refused
/// within this (SECURITY.md promises a second).
const RELOAD_EVERY: Duration = Duration::from_millis(250);

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
            return Err(AuthError::NoToken);
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

    /// Re-reads the file if its content changed since it was last read.
    ///
    /// A server never goes from closed to open by itself: only a file that
    /// states `"auth": "open"` (what `pykv token open` writes) opens it. A
    /// file that states nothing (no token and no `auth` field, as a hand
    /// edit to `{"tokens": []}` leaves it) and a missing file keep the mode
    /// the server has: closed with no token (every request refused) if it
    /// was closed, open if it never was. A file that cannot be read or
    /// parsed changes nothing (the tokens loaded before stay in force).
    pub fn reload(&self) -> Result<(), tokens::TokenFileError> {
        let text = self.file.read()?;
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if state.loaded && state.text == text {
                return Ok(());
            }
        }
        let was_closed = !self.is_open();
        let set = match &text {
            Some(bytes) => match self.file.parse(bytes) {
                Ok(set) => set,
                Err(e) => {
                    // The tokens loaded before stay in force; remembering
                    // the text says so once, not at every reload.
                    self.state.write().unwrap_or_else(|p| p.into_inner()).text = text;
                    return Err(e);
                }
            },
            None => TokenSet::default(),
        };
        let stated = text.as_ref().and(set.stated_mode());
        let closed = match stated {
            Some(mode) => mode == AuthMode::Required,
            None => was_closed,
        };
        if was_closed && stated.is_none() {
            self.warn_stays_closed(text.is_none());
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.tokens.len() != set.tokens.len() || !state.loaded {
            tracing::info!(tokens = set.tokens.len(), "token file loaded");
        }
        log_transition(self.file.path(), was_closed, closed, set.tokens.len());
        // Tokens first, then the flag: a request seeing the server closed
        // finds the tokens that closed it.
        *state = Snapshot {
            tokens: Arc::new(set.tokens),
            text,
            loaded: true,
        };
        self.closed.store(closed, Ordering::Release);
        Ok(())
    }

    /// Says why a closed server whose file no longer says it is closed
    /// stays closed.
    fn warn_stays_closed(&self, missing: bool) {
        let what = if missing {
            "the token file disappeared"
        } else {
            "the token file holds no token and does not say `\"auth\": \"open\"`"
        };
        tracing::warn!(
            file = %self.file.path().display(),
            "{what}; the server stays closed and refuses every request that needs a token. \
             Create a token with `pykv token create`, or open the server on purpose with \
             `pykv token open`"
        );
    }

    /// Re-reads the file every [`RELOAD_EVERY`], for as long as the server
    /// runs.
    pub fn spawn_reload(self: &Arc<Self>) {
        let auth = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("pykv-tokens".into())
            .spawn(move || {
                // A failure is logged once, not at every attempt: tokens
                // kept in Redis fail four times a second while it is away.
                let mut failing: Option<String> = None;
                while let Some(auth) = auth.upgrade() {
                    match auth.reload() {
                        Err(e) if failing.as_deref() != Some(&e.to_string()) => {
                            tracing::warn!(
                                error = %e,
                                "cannot reload the token file; keeping the tokens loaded before \
                                 (a server that requires tokens keeps requiring them)"
                            );
                            failing = Some(e.to_string());
                        }
                        Err(_) => {}
                        Ok(()) => {
                            if failing.take().is_some() {
                                tracing::info!("the tokens can be read again");
                            }
                        }
                    }
                    drop(auth);
                    std::thread::sleep(RELOAD_EVERY);
                }
            })
            .expect("spawning the token reload thread");
    }
}

/// Says loudly when the server opens (always on purpose, by the file's
/// `"auth": "open"`), and when it is closed with no token left.
fn log_transition(file: &std::path::Path, was_closed: bool, closed: bool, tokens: usize) {
    if was_closed && !closed {
        tracing::warn!(
            file = %file.display(),
            "TOKENS ARE NO LONGER REQUIRED: the token file was opened on purpose (`pykv token \
             open`). Every client that reaches this server can now read, change and clear every \
             namespace"
        );
    } else if closed && tokens == 0 {
        tracing::warn!(
            file = %file.display(),
            "tokens are required and none exists: every request that needs a token is refused \
             (401), admins included. Create one with `pykv token create`, or open the server on \
             purpose with `pykv token open`"
        );
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

    #[test]
    fn the_last_revocation_or_a_lost_file_never_opens_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, file) = auth_with(dir.path());
        let (token, record) = file.create(vec!["a".into()], Access::Write).unwrap();
        auth.reload().unwrap();
        file.revoke(&record.id).unwrap();
        auth.reload().unwrap();
        let header = format!("Bearer {token}");
        assert_eq!(
            auth.authenticate(Some(header.as_bytes())),
            Err(AuthError::NoToken)
        );
        assert_eq!(auth.authenticate(None), Err(AuthError::NoToken));
        assert!(!auth.is_open());

        std::fs::remove_file(file.path()).unwrap();
        auth.reload().unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::NoToken));

        // A hand edit that says nothing: still closed.
        std::fs::write(file.path(), r#"{"tokens": []}"#).unwrap();
        auth.reload().unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::NoToken));
        assert!(!auth.is_open());

        file.open_to_everyone().unwrap();
        auth.reload().unwrap();
        assert_eq!(auth.authenticate(None), Ok(Grants::Open));
    }

    #[test]
    fn a_file_that_says_nothing_leaves_a_server_that_never_closed_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tokens.json"), r#"{"tokens": []}"#).unwrap();
        let (auth, _) = auth_with(dir.path());
        assert_eq!(auth.authenticate(None), Ok(Grants::Open));
    }

    #[test]
    fn a_revocation_is_seen_even_when_size_and_time_look_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, file) = auth_with(dir.path());
        let (old, record) = file.create(vec!["a".into()], Access::Write).unwrap();
        auth.reload().unwrap();
        let before = std::fs::metadata(file.path()).unwrap();
        // Same shape of record: the file keeps its length.
        file.revoke(&record.id).unwrap();
        file.create(vec!["a".into()], Access::Write).unwrap();
        let after = std::fs::File::options()
            .write(true)
            .open(file.path())
            .unwrap();
        after.set_modified(before.modified().unwrap()).unwrap();
        assert_eq!(std::fs::metadata(file.path()).unwrap().len(), before.len());
        auth.reload().unwrap();
        assert_eq!(
            auth.authenticate(Some(format!("Bearer {old}").as_bytes())),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn an_invalid_file_keeps_the_tokens_before_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, file) = auth_with(dir.path());
        let (token, _) = file.create(vec!["a".into()], Access::Write).unwrap();
        auth.reload().unwrap();
        std::fs::write(file.path(), "{ not json").unwrap();
        assert!(auth.reload().is_err());
        assert!(
            auth.reload().is_ok(),
            "the same invalid text is reported once"
        );
        assert!(
            auth.authenticate(Some(format!("Bearer {token}").as_bytes()))
                .is_ok()
        );
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
    }
}
