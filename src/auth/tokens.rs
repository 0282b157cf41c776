//! API tokens scoped to namespaces, kept as SHA-256 hashes in a JSON file.
//!
//! Why SHA-256 and not a slow password hash: tokens are 256 random bits,
//! so a fast hash cannot be brute-forced; what matters is that the file
//! never holds a usable token. The file is replaced atomically (temporary
//! file, sync, rename) so a running server never reads half of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read its namespaces.
    Read,
    /// Read and change its namespaces (set, delete, clear).
    Write,
    /// Everything, in every namespace, and the server-wide endpoints
    /// (`pykv token create --admin`).
    #[value(skip)]
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFileContent {
    tokens: Vec<TokenRecord>,
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
}

/// The token file.
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TokenFile { path: path.into() }
    }

    /// The default place: `tokens.json` in the data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        TokenFile::new(dir.join("tokens.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token; none when the file does not exist.
    pub fn load(&self) -> Result<Vec<TokenRecord>, TokenFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(cause) => {
                return Err(TokenFileError::Read {
                    path: self.path.clone(),
                    cause,
                });
            }
        };
        let content: TokenFileContent =
            serde_json::from_str(&text).map_err(|cause| TokenFileError::Invalid {
                path: self.path.clone(),
                cause,
            })?;
        Ok(content.tokens)
    }

    /// Creates a token; returns it (the only time it is ever seen) and its
    /// record.
    pub fn create(
        &self,
        namespaces: Vec<String>,
        access: Access,
    ) -> Result<(String, TokenRecord), TokenFileError> {
        let mut tokens = self.load()?;
        let token = new_token();
        let sha256 = hash_token(&token);
        let record = TokenRecord {
            id: sha256[..12].to_owned(),
            sha256,
            namespaces,
            access,
            created: crate::store::now_ms() / 1000,
        };
        tokens.push(record.clone());
        self.save(tokens)?;
        Ok((token, record))
    }

    /// Removes the token with `id`.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord, TokenFileError> {
        let mut tokens = self.load()?;
        let at = tokens
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| TokenFileError::UnknownId(id.to_owned()))?;
        let record = tokens.remove(at);
        self.save(tokens)?;
        Ok(record)
    }

    fn save(&self, tokens: Vec<TokenRecord>) -> Result<(), TokenFileError> {
        let write_error = |cause| TokenFileError::Write {
            path: self.path.clone(),
            cause,
        };
        let text = serde_json::to_string_pretty(&TokenFileContent { tokens })
            .expect("token records serialize");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let file = std::fs::File::create(&tmp).map_err(write_error)?;
        std::io::Write::write_all(&mut &file, text.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        std::fs::rename(&tmp, &self.path).map_err(write_error)
    }
}

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
        assert!(file.load().unwrap().is_empty());
        let (token, record) = file.create(vec!["a".into()], Access::Read).unwrap();
        assert!(token.starts_with("pykv_") && token.len() == 5 + 64);
        assert_eq!(record.sha256, hash_token(&token));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        let (other, _) = file.create(vec![], Access::Admin).unwrap();
        assert_ne!(token, other);
        assert_eq!(file.load().unwrap().len(), 2);
        file.revoke(&record.id).unwrap();
        assert_eq!(file.load().unwrap().len(), 1);
        assert!(matches!(
            file.revoke(&record.id),
            Err(TokenFileError::UnknownId(_))
        ));
    }
}
