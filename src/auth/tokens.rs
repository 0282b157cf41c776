//! API tokens scoped to namespaces, kept as SHA-256 hashes in a JSON file,
//! and whether the server requires a token at all.
//!
//! Why SHA-256 and not a slow password hash: tokens are 256 random bits,
//! so a fast hash cannot be brute-forced; what matters is that the file
//! never holds a usable token.
//!
//! Why the file says `"auth": "required"`: once a token has existed, the
//! server must not open itself to everyone because the last one was
//! revoked. Creating a token sets it; only `pykv token open` (an
//! operator's explicit act) sets `"open"`. A file without the field (older
//! ones, hand-written ones) requires a token when it holds one; holding
//! none, it says nothing, and a running server keeps the mode it has (see
//! [`TokenSet::stated_mode`]).
//!
//! Every change is a read-modify-write under an exclusive `flock` of a
//! sidecar file (`tokens.json.lock`), so two `pykv token` commands run at
//! once never lose each other's token; and the new text replaces the file
//! atomically (a temporary file in the same directory, synced, renamed,
//! the directory synced), so a running server never reads half of it and
//! a crash leaves the old file or the new one.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::redis_tokens::RedisTokens;
use crate::redis_backend::RedisTarget;

/// Whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every request needs a token, even when none exists.
    Required,
    /// No request needs a token: set only by `pykv token open`.
    Open,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read its namespaces.
    Read,
    /// Read and change its namespaces (set, delete, clear).
    Write,
    /// Everything, in every namespace, and the server-wide endpoints
    /// (`pykv token create --admin`).
    Admin,
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short public name of the token, for listing and revoking.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// Namespaces it may use; empty for admin tokens.
    #[serde(default)]
    pub namespaces: Vec<String>,
    pub access: Access,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// What the token file says: the mode, and every token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// `None` in a file written before the field existed: see
    /// [`TokenSet::mode`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<AuthMode>,
    pub tokens: Vec<TokenRecord>,
}

impl TokenSet {
    /// The mode the file states: required whenever it holds a token
    /// (whatever its `auth` field says: `pykv token open` never writes
    /// both), else its `auth` field. `None` for a file that says nothing,
    /// neither a token nor the field (`{"tokens": []}`: a hand edit, or a
    /// file written before the field existed).
    ///
    /// Why not open then: a file that says nothing is no operator's
    /// decision to open the server. A running server that requires tokens
    /// keeps requiring them ([`super::Authenticator::reload`]); only the
    /// explicit `"auth": "open"` that `pykv token open` writes opens it.
    pub fn stated_mode(&self) -> Option<AuthMode> {
        if self.tokens.is_empty() {
            self.auth
        } else {
            Some(AuthMode::Required)
        }
    }

    /// The mode a server starting on this file takes: as stated, and open
    /// for a file that says nothing, as for a server that never had a
    /// token (the Python PyKV's behaviour).
    pub fn mode_at_start(&self) -> AuthMode {
        self.stated_mode().unwrap_or(AuthMode::Open)
    }

    /// Parses the file's text.
    pub fn parse(text: &[u8]) -> Result<TokenSet, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the token file {path} is not valid: {cause}")]
    Invalid {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("cannot write the token file {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no token with id {0:?}; `pykv token list` shows them")]
    UnknownId(String),
    #[error(
        "{0} token(s) still exist: the server cannot be opened to every client while tokens \
         are in force. Revoke them first (`pykv token list`, `pykv token revoke ID`)"
    )]
    TokensRemain(usize),
}

/// The token file, or the same document kept in Redis
/// ([`RedisTokens`]) for nodes over a Redis backend.
pub struct TokenFile {
    /// The file; for tokens in Redis, where they are, for messages.
    path: PathBuf,
    redis: Option<RedisTokens>,
}

impl TokenFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TokenFile {
            path: path.into(),
            redis: None,
        }
    }

    /// The tokens of the deployment under `prefix` in a Redis backend.
    pub fn in_redis(target: RedisTarget, prefix: &str, timeout: Duration) -> Self {
        let redis = RedisTokens::new(target, prefix, timeout);
        TokenFile {
            path: PathBuf::from(redis.describe()),
            redis: Some(redis),
        }
    }

    /// The default place: `tokens.json` in the data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        TokenFile::new(dir.join("tokens.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes; `None` when it does not exist.
    pub fn read(&self) -> Result<Option<Vec<u8>>, TokenFileError> {
        if let Some(redis) = &self.redis {
            return redis.read().map_err(|e| self.read_error(e));
        }
        match std::fs::read(&self.path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(TokenFileError::Read {
                path: self.path.clone(),
                cause,
            }),
        }
    }

    /// The mode and every token; open and empty when the file does not
    /// exist.
    pub fn load(&self) -> Result<TokenSet, TokenFileError> {
        match self.read()? {
            Some(text) => self.parse(&text),
            None => Ok(TokenSet::default()),
        }
    }

    pub(crate) fn parse(&self, text: &[u8]) -> Result<TokenSet, TokenFileError> {
        TokenSet::parse(text).map_err(|cause| TokenFileError::Invalid {
            path: self.path.clone(),
            cause,
        })
    }

    /// Creates a token, which makes tokens required; returns the token
    /// (the only time it is ever seen) and its record.
    pub fn create(
        &self,
        namespaces: Vec<String>,
        access: Access,
    ) -> Result<(String, TokenRecord), TokenFileError> {
        self.edit(|set| {
            let token = new_token();
            let sha256 = hash_token(&token);
            let record = TokenRecord {
                id: sha256[..12].to_owned(),
                sha256,
                namespaces: namespaces.clone(),
                access,
                created: crate::store::now_ms() / 1000,
            };
            set.tokens.push(record.clone());
            set.auth = Some(AuthMode::Required);
            Ok((token, record))
        })
    }

    /// Removes the token with `id`. Tokens stay required, even when it was
    /// the last one; returns its record and how many tokens remain.
    pub fn revoke(&self, id: &str) -> Result<(TokenRecord, usize), TokenFileError> {
        self.edit(|set| {
            let at = set
                .tokens
                .iter()
                .position(|t| t.id == id)
                .ok_or_else(|| TokenFileError::UnknownId(id.to_owned()))?;
            // A token existed: required, even when it was the last one.
            set.auth = Some(AuthMode::Required);
            let record = set.tokens.remove(at);
            Ok((record, set.tokens.len()))
        })
    }

    /// Opens the server to every client, on purpose: refused while a token
    /// exists. Returns whether it was closed before.
    pub fn open_to_everyone(&self) -> Result<bool, TokenFileError> {
        self.edit(|set| {
            if !set.tokens.is_empty() {
                return Err(TokenFileError::TokensRemain(set.tokens.len()));
            }
            let was_closed = set.stated_mode() == Some(AuthMode::Required);
            set.auth = Some(AuthMode::Open);
            Ok(was_closed)
        })
    }

    /// Reads the file, applies `change`, and writes the result, under the
    /// edit lock; nothing is written when `change` fails.
    fn edit<T>(
        &self,
        mut change: impl FnMut(&mut TokenSet) -> Result<T, TokenFileError>,
    ) -> Result<T, TokenFileError> {
        if let Some(redis) = &self.redis {
            return self.edit_in_redis(redis, change);
        }
        let write_error = |cause| TokenFileError::Write {
            path: self.path.clone(),
            cause,
        };
        if let Some(dir) = self.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let _lock = self.lock_for_edit().map_err(write_error)?;
        let mut set = self.load()?;
        let result = change(&mut set)?;
        self.save(&set).map_err(write_error)?;
        Ok(result)
    }

    /// [`TokenFile::edit`] for tokens in Redis: read, change, and write
    /// back unless another edit came first, then again (see
    /// [`RedisTokens`]).
    fn edit_in_redis<T>(
        &self,
        redis: &RedisTokens,
        mut change: impl FnMut(&mut TokenSet) -> Result<T, TokenFileError>,
    ) -> Result<T, TokenFileError> {
        for _ in 0..EDIT_ATTEMPTS {
            let (version, text) = redis.fetch().map_err(|e| self.read_error(e))?;
            let mut set = match text {
                Some(text) => self.parse(&text)?,
                None => TokenSet::default(),
            };
            let result = change(&mut set)?;
            let text = serde_json::to_string_pretty(&set).expect("token records serialize");
            if redis
                .replace(version, &text)
                .map_err(|e| self.write_error(e))?
            {
                return Ok(result);
            }
        }
        Err(self.write_error("other edits kept coming first; try again"))
    }

    fn read_error(&self, cause: impl std::fmt::Display) -> TokenFileError {
        TokenFileError::Read {
            path: self.path.clone(),
            cause: std::io::Error::other(cause.to_string()),
        }
    }

    fn write_error(&self, cause: impl std::fmt::Display) -> TokenFileError {
        TokenFileError::Write {
            path: self.path.clone(),
            cause: std::io::Error::other(cause.to_string()),
        }
    }

    /// The directory holding the file (`.` for a bare file name).
    fn parent(&self) -> Option<&Path> {
        self.path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
    }

    /// An exclusive `flock` of `FILE.lock`, waited for: edits are short.
    fn lock_for_edit(&self) -> std::io::Result<File> {
        let mut name = self.path.clone().into_os_string();
        name.push(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(name))?;
        loop {
            // SAFETY: flock on a descriptor owned by `file`; no memory.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(file);
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Replaces the file atomically: a temporary file of this process in
    /// the same directory, synced, renamed over it, then the directory
    /// synced so that the rename itself survives a crash.
    fn save(&self, set: &TokenSet) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(set).expect("token records serialize");
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let written = (|| {
            let file = File::create(&tmp)?;
            std::io::Write::write_all(&mut &file, text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        match self.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

/// Edits of tokens in Redis tried before giving up, each after another
/// edit came first.
const EDIT_ATTEMPTS: usize = 50;

/// A new random token: `pykv_` and 64 hex digits (256 bits).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!("pykv_{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_data_dir(dir.path());
        assert!(file.load().unwrap().tokens.is_empty());
        assert_eq!(file.load().unwrap().stated_mode(), None);
        assert_eq!(file.load().unwrap().mode_at_start(), AuthMode::Open);
        let (token, record) = file.create(vec!["a".into()], Access::Read).unwrap();
        assert!(token.starts_with("pykv_") && token.len() == 5 + 64);
        assert_eq!(record.sha256, hash_token(&token));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let (other, _) = file.create(vec![], Access::Admin).unwrap();
        assert_ne!(token, other);
        assert_eq!(file.load().unwrap().tokens.len(), 2);
        assert_eq!(file.revoke(&record.id).unwrap().1, 1);
        assert_eq!(file.load().unwrap().tokens.len(), 1);
        assert!(matches!(
            file.revoke(&record.id),
            Err(TokenFileError::UnknownId(_))
        ));
    }

    #[test]
    fn the_last_revocation_keeps_tokens_required_until_opened_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_data_dir(dir.path());
        let (_, record) = file.create(vec!["a".into()], Access::Write).unwrap();
        assert!(matches!(
            file.open_to_everyone(),
            Err(TokenFileError::TokensRemain(1))
        ));
        assert_eq!(file.revoke(&record.id).unwrap().1, 0);
        let set = file.load().unwrap();
        assert!(set.tokens.is_empty());
        assert_eq!(set.stated_mode(), Some(AuthMode::Required));
        assert!(file.open_to_everyone().unwrap(), "it was closed");
        assert_eq!(file.load().unwrap().stated_mode(), Some(AuthMode::Open));
        assert!(!file.open_to_everyone().unwrap(), "already open");
        file.create(vec![], Access::Admin).unwrap();
        assert_eq!(file.load().unwrap().stated_mode(), Some(AuthMode::Required));
    }

    #[test]
    fn a_file_without_the_mode_requires_a_token_when_it_holds_one_and_else_says_nothing() {
        let empty = TokenSet::parse(br#"{"tokens": []}"#).unwrap();
        assert_eq!(empty.stated_mode(), None);
        assert_eq!(empty.mode_at_start(), AuthMode::Open);
        let record = r#"{"id":"x","sha256":"00","access":"read","created":0}"#;
        let one = TokenSet::parse(format!(r#"{{"tokens": [{record}]}}"#).as_bytes()).unwrap();
        assert_eq!(one.stated_mode(), Some(AuthMode::Required));
        // "open" beside a token (no command writes that) still requires one.
        let both = format!(r#"{{"auth": "open", "tokens": [{record}]}}"#);
        let both = TokenSet::parse(both.as_bytes()).unwrap();
        assert_eq!(both.stated_mode(), Some(AuthMode::Required));
    }
}
