//! Configuration of memory bounds: the `--max-memory`, `--max-keys` and
//! `--eviction` flags, and the quota file (`--quotas FILE`).
//!
//! The quota file is TOML:
//!
//! ```toml
//! # Every namespace without a section of its own, the default one included.
//! [default]
//! max_keys = 10000
//! max_bytes = "64mb"
//!
//! [namespace.tenant_acme]
//! max_keys = 1000000
//! max_bytes = "1gb"
//! requests_per_second = 500   # rate limit: requests a second, on average
//! burst = 1000                # and at once (default: requests_per_second)
//! ```
//!
//! Sizes are bytes, or a number with `kb`, `mb`, `gb` (powers of 1024, as in
//! Redis's configuration).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::config::EvictionFlag;
use crate::rate_limit::{Rate, RateLimits};
use crate::store::{Limit, Limits, MAX_LIMIT, validate_namespace};

#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Memory bound of the whole store, e.g. 512mb or 2gb (unlimited when
    /// unset; at most 2^63-1 bytes, as `PUT /quota`).
    #[arg(long, env = "PYKV_MAX_MEMORY", value_parser = parse_byte_limit)]
    pub max_memory: Option<u64>,

    /// Most keys the whole store holds (unlimited when unset; 0 to 2^63-1,
    /// as `PUT /quota`).
    #[arg(long, env = "PYKV_MAX_KEYS", value_parser = clap::value_parser!(u64).range(..=MAX_LIMIT))]
    pub max_keys: Option<u64>,

    /// What happens at a limit: lru evicts the least recently used keys,
    /// noeviction refuses the write with 507.
    #[arg(long, env = "PYKV_EVICTION", value_enum, default_value = "lru")]
    pub eviction: EvictionFlag,

    /// TOML file of per-namespace quotas (see the README).
    #[arg(long, env = "PYKV_QUOTAS")]
    pub quotas: Option<PathBuf>,

    /// The quota file's sections given in place, by the `[quotas]` table
    /// of a configuration file (`--config`).
    #[arg(skip)]
    pub inline_quotas: Option<toml::Table>,
}

impl LimitArgs {
    /// The per-namespace rate limits of the quota file.
    pub fn rate_limits(&self) -> Result<RateLimits, String> {
        let Some(file) = self.quota_file()? else {
            return Ok(RateLimits::default());
        };
        let overrides = file
            .namespace
            .iter()
            .filter_map(|(name, spec)| Some((name.clone(), spec.rate()?)))
            .collect();
        Ok(RateLimits::new(file.default.rate(), overrides))
    }

    /// The limits these flags and the quota file describe.
    pub fn limits(&self) -> Result<Limits, String> {
        let mut limits = Limits {
            global: Limit {
                max_bytes: self.max_memory,
                max_keys: self.max_keys,
            },
            policy: self.eviction.into(),
            ..Limits::default()
        };
        if let Some(file) = self.quota_file()? {
            limits.default_quota = file.default.into();
            limits.quotas = file
                .namespace
                .into_iter()
                .map(|(name, quota)| (name, quota.into()))
                .collect();
        }
        Ok(limits)
    }
}

impl LimitArgs {
    /// The quotas, from the quota file or a configuration file's table.
    fn quota_file(&self) -> Result<Option<QuotaFile>, String> {
        match (&self.quotas, &self.inline_quotas) {
            (Some(path), _) => QuotaFile::load(path).map(Some),
            (None, Some(table)) => QuotaFile::from_table(table, "the [quotas] table").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Checks a configuration file's `[quotas]` table as the quota file is
/// checked.
pub fn check_quota_table(table: &toml::Table) -> Result<(), String> {
    QuotaFile::from_table(table, "the [quotas] table").map(drop)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    #[serde(default)]
    default: QuotaSpec,
    #[serde(default)]
    namespace: HashMap<String, QuotaSpec>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSpec {
    max_keys: Option<u64>,
    max_bytes: Option<Size>,
    requests_per_second: Option<f64>,
    burst: Option<f64>,
}

impl QuotaSpec {
    fn rate(&self) -> Option<Rate> {
        let per_second = self.requests_per_second.filter(|r| *r > 0.0)?;
        Some(Rate {
            per_second,
            burst: self.burst.unwrap_or(per_second).max(1.0),
        })
    }
}

impl From<QuotaSpec> for Limit {
    fn from(spec: QuotaSpec) -> Limit {
        Limit {
            max_keys: spec.max_keys,
            max_bytes: spec.max_bytes.map(|s| s.0),
        }
    }
}

/// A size in the file: a number of bytes, or a string such as "64mb".
#[derive(Debug, Clone, Copy)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

impl QuotaFile {
    fn load(path: &Path) -> Result<QuotaFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the quota file {}: {e}", path.display()))?;
        let file: QuotaFile = toml::from_str(&text)
            .map_err(|e| format!("the quota file {} is not valid: {e}", path.display()))?;
        file.validate(&format!("the quota file {}", path.display()))
    }

    fn from_table(table: &toml::Table, what: &str) -> Result<QuotaFile, String> {
        let file = QuotaFile::deserialize(table.clone())
            .map_err(|e| format!("{what} is not valid: {e}"))?;
        file.validate(what)
    }

    /// Checks the names and bounds; `what` names the file in errors.
    fn validate(self, what: &str) -> Result<QuotaFile, String> {
        let file = self;
        let invalid = |e: String| format!("{what}: {e}");
        file.default
            .validate()
            .map_err(|e| invalid(format!("[default]: {e}")))?;
        for (name, spec) in &file.namespace {
            validate_namespace(name).map_err(|e| invalid(e.to_string()))?;
            spec.validate()
                .map_err(|e| invalid(format!("[namespace.{name}]: {e}")))?;
        }
        Ok(file)
    }
}

impl QuotaSpec {
    /// Refuses bounds past [`MAX_LIMIT`] (as the flags and `PUT /quota`
    /// do) and rates that are negative, infinite or not numbers.
    fn validate(&self) -> Result<(), String> {
        let sizes = [
            ("max_keys", self.max_keys),
            ("max_bytes", self.max_bytes.map(|s| s.0)),
        ];
        for (field, value) in sizes {
            if value.is_some_and(|v| v > MAX_LIMIT) {
                return Err(format!("`{field}` must be at most {MAX_LIMIT}"));
            }
        }
        let rates = [
            ("requests_per_second", self.requests_per_second),
            ("burst", self.burst),
        ];
        for (field, value) in rates {
            if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(format!("`{field}` must be a finite number, 0 or more"));
            }
        }
        Ok(())
    }
}

/// `--max-memory`: a size ([`parse_size`]) no larger than [`MAX_LIMIT`].
pub fn parse_byte_limit(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes > MAX_LIMIT {
        return Err(format!(
            "{bytes} bytes is over the largest limit, {MAX_LIMIT} bytes (8 EiB, as PUT /quota); \
             leave the flag out for no limit"
        ));
    }
    Ok(bytes)
}

/// Parses `512mb`, `2gb`, `64kb`, `100b` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use kb, mb or gb"
            ));
        }
    };
    let digits = digits.trim();
    let too_large = || format!("{text:?} is too large: at most {MAX_LIMIT} bytes");
    let n: u64 = digits.parse().map_err(|_| {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            too_large()
        } else {
            format!("{text:?} is not a size; write it like 512mb or 2gb")
        }
    })?;
    n.checked_mul(unit).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_redis_does() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64kb").unwrap(), 64 * 1024);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("mb").is_err());
    }

    #[test]
    fn quota_file_reads_default_and_namespaces() {
        let file: QuotaFile = toml::from_str(
            "[default]\nmax_keys = 10\n[namespace.a]\nmax_bytes = \"1kb\"\nmax_keys = 5\n",
        )
        .unwrap();
        assert_eq!(Limit::from(file.default).max_keys, Some(10));
        let a = Limit::from(file.namespace["a"]);
        assert_eq!((a.max_bytes, a.max_keys), (Some(1024), Some(5)));
        assert!(toml::from_str::<QuotaFile>("[default]\nmax_kees = 1\n").is_err());
    }
}
