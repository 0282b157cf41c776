//! Where a namespace's data lives in Redis: the names of its keys.
//!
//! Every key of one namespace carries the same hash tag, `{ns:NAME}` (the
//! default namespace: `{default}`, which no valid name can produce, since
//! names have no `:`), so Redis Cluster puts them all in one slot and a
//! Lua script may touch them together, atomically. The price: one
//! namespace lives on one shard and cannot outgrow it.
//!
//! The `--redis-prefix` comes first, outside the tag, so that several
//! deployments (or test servers) share a Redis without meeting.

/// The Redis keys of one namespace.
pub struct NamespaceKeys {
    /// `PREFIX:{TAG}:`, every other name is this plus a suffix.
    base: String,
}

/// The suffixes of a namespace's keys, as the scripts use them.
pub mod suffix {
    /// HASH: key -> the value's exact JSON text.
    pub const DATA: &str = "data";
    /// ZSET, every score 0: the keys, in byte order for listings.
    pub const INDEX: &str = "index";
    /// ZSET: key -> its deadline, milliseconds since the epoch (Redis's
    /// clock), for keys with a TTL only.
    pub const DEADLINES: &str = "deadlines";
    /// HASH: hits, misses, expirations, evictions, bytes.
    pub const STATS: &str = "stats";
    /// STRING `EPOCH:RETAIN`, with a TTL the watchers renew: present
    /// while the namespace's change feed is watched.
    pub const WATCHED: &str = "watched";
    /// STREAM: the change feed's last events.
    pub const FEED: &str = "feed";
    /// ZSET: key -> its last read or write, milliseconds since the epoch
    /// (Redis's clock): the LRU order a quota evicts in.
    pub const LRU: &str = "lru";
    /// HASH: the quota `PUT /quota` set (`set`, `max_bytes`, `max_keys`,
    /// "" for none). Kept across clears, as the engine keeps it.
    pub const QUOTA: &str = "quota";
    // The clear script names two more from the base: `clears`, a counter
    // numbering the sets it puts aside as `cleared:N:data` (`index`,
    // `deadlines`), and `reclaim`, the LIST of those still to delete.
}

impl NamespaceKeys {
    pub fn new(prefix: &str, namespace: Option<&str>) -> NamespaceKeys {
        let base = match namespace {
            Some(name) => format!("{prefix}:{{ns:{name}}}:"),
            None => format!("{prefix}:{{default}}:"),
        };
        NamespaceKeys { base }
    }

    /// The key the scripts are given first: it routes the script to the
    /// namespace's slot, and the scripts derive the other names from it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The key of one of the namespace's structures (see [`suffix`]).
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base)
    }
}

/// The SET of the named namespaces that hold or held data, for `/stats`
/// and `/namespaces`: a slot of its own, apart from every namespace.
pub fn registry_key(prefix: &str) -> String {
    format!("{prefix}:{{registry}}:namespaces")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_keys_share_one_hash_tag() {
        let keys = NamespaceKeys::new("p", Some("app1"));
        assert_eq!(keys.key(suffix::DATA), "p:{ns:app1}:data");
        assert_eq!(NamespaceKeys::new("p", None).base(), "p:{default}:");
    }
}
