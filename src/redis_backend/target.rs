//! `--backend redis://...` and `redis-cluster://...`: which Redis to use.
//!
//! Why parsed at flag time rather than at connection time: a typo in the
//! URL then stops `pykv serve` with clap's usage error (exit 2) before
//! anything is opened, and the parsed form is what gets logged.

use std::fmt;

/// One Redis server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://HOST:PORT[/DB]`, as the `redis` crate reads it.
    Single { url: String },
    /// `redis-cluster://HOST:PORT[,HOST:PORT...]`: any reachable seed
    /// reveals the whole cluster.
    Cluster { seeds: Vec<String> },
}

impl RedisTarget {
    pub fn parse(text: &str) -> Result<RedisTarget, String> {
        if let Some(nodes) = text.strip_prefix("redis-cluster://") {
            let seeds = nodes
                .split(',')
                .map(|node| host_port(node.trim()).map(|node| format!("redis://{node}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RedisTarget::Cluster { seeds })
        } else if text.starts_with("redis://") {
            redis::parse_redis_url(text)
                .filter(|url| url.host_str().is_some_and(|host| !host.is_empty()))
                .ok_or_else(|| format!("{text:?} is not a valid redis://HOST:PORT URL"))?;
            Ok(RedisTarget::Single {
                url: text.to_owned(),
            })
        } else {
            Err(format!(
                "{text:?}: a Redis backend is redis://HOST:PORT or \
                 redis-cluster://HOST:PORT[,HOST:PORT...]"
            ))
        }
    }

    /// The seeds or the server, for logs: without any password.
    pub fn nodes(&self) -> Vec<String> {
        let without_secret = |url: &str| match redis::parse_redis_url(url) {
            Some(url) => format!(
                "{}:{}",
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(6379)
            ),
            None => "?".to_owned(),
        };
        match self {
            RedisTarget::Single { url } => vec![without_secret(url)],
            RedisTarget::Cluster { seeds } => seeds.iter().map(|s| without_secret(s)).collect(),
        }
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Single { .. } => write!(f, "redis://{}", self.nodes().join(",")),
            RedisTarget::Cluster { .. } => write!(f, "redis-cluster://{}", self.nodes().join(",")),
        }
    }
}

/// Checks one `HOST:PORT` of a cluster's seed list.
fn host_port(node: &str) -> Result<&str, String> {
    let valid = node.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid {
        Ok(node)
    } else {
        Err(format!(
            "{node:?} is not HOST:PORT; write redis-cluster://HOST:PORT[,HOST:PORT...]"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_server_and_a_cluster() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379"),
            Ok(RedisTarget::Single {
                url: "redis://127.0.0.1:6379".into()
            })
        );
        let cluster = RedisTarget::parse("redis-cluster://a:1,b:2").unwrap();
        assert_eq!(cluster.nodes(), ["a:1", "b:2"]);
        assert_eq!(cluster.to_string(), "redis-cluster://a:1,b:2");
    }

    #[test]
    fn refuses_malformed_urls() {
        for bad in [
            "redis://",
            "redis-cluster://",
            "redis-cluster://a",
            "redis-cluster://a:0",
            "redis-cluster://a:1,",
            "redis-cluster://:1",
            "http://a:1",
        ] {
            assert!(RedisTarget::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn never_shows_a_password() {
        let target = RedisTarget::parse("redis://:secret@h:7000").unwrap();
        assert_eq!(target.to_string(), "redis://h:7000");
    }
}
