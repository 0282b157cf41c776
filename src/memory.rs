//! A backend for tests only: a plain map behind one mutex, with no log and
//! no limits. It exists to show that the HTTP layer speaks to
//! [`KvBackend`] and nothing else: the API conformance tests run against
//! it too (`PYKV_TEST_BACKEND=memory`, see .ci/run). Everything is lost at
//! exit.
//!
//! It honours TTLs on every read and in every count (an expired key is
//! removed when met and counted as an expiration), and answers
//! [`BackendError::Unsupported`] for quotas and compaction.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::backend::{
    BackendError, BackendStats, ChangeStream, Commit, Health, Imported, KvBackend,
};
use crate::feed::{Change, ChangeKind, Feeds, LINGER, Retention};
use crate::store::batch::{FinalState, alone, lookups, plan};
use crate::store::{
    BatchOp, Condition, KeyPage, Limit, MAX_PAGE, NamespaceStats, Outcome, PAGE_BYTES, QuotaReport,
    Record, RecordPage, StoreError, StoreStats, deadline_in, etag_of, now_ms, validate_namespace,
};

const NAME: &str = "memory";

pub struct MemoryBackend {
    namespaces: Mutex<HashMap<Option<String>, Namespace>>,
    /// The change feeds of watched namespaces, published into under the
    /// map's lock.
    feeds: Feeds,
    max_key_bytes: usize,
    started: Instant,
    /// Every operation fails or hangs, when set: a store out of reach or
    /// stuck, for the tests of how the HTTP layer answers one.
    fault: Option<Fault>,
}

/// How a faulty backend behaves.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Every operation fails with this error.
    Fail(BackendError),
    /// No operation ever answers: a store that accepted the connection and
    /// went silent. Only `--request-timeout` ends such a request.
    Hang,
}

#[derive(Default)]
struct Namespace {
    /// Ordered, for listings.
    entries: BTreeMap<String, Entry>,
    cache_hits: u64,
    cache_misses: u64,
    expirations: u64,
}

struct Entry {
    value: String,
    /// Milliseconds since the Unix epoch.
    expires_at: Option<u64>,
}

impl Entry {
    fn is_live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

impl Namespace {
    /// Removes the expired entries, counting them; returns their keys.
    fn reap(&mut self, now: u64) -> Vec<String> {
        let expired: Vec<String> = (self.entries.iter())
            .filter(|(_, entry)| !entry.is_live(now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            self.entries.remove(key);
        }
        self.expirations += expired.len() as u64;
        expired
    }

    /// Plans `ops` ([`plan`]) on the entries (all live: `open` reaped
    /// them) and applies the plan; nothing when it fails.
    fn transact(
        &mut self,
        ops: &[BatchOp],
        check_key: impl Fn(&str) -> Result<(), StoreError>,
    ) -> Result<Vec<Outcome>, StoreError> {
        let entries = &self.entries;
        let plan = plan(ops, check_key, |key| {
            (entries.get(key)).map(|entry| (entry.value.clone(), entry.expires_at))
        })?;
        let (hits, misses) = lookups(ops, &plan.outcomes);
        self.cache_hits += hits;
        self.cache_misses += misses;
        for (key, state) in plan.writes {
            match state {
                FinalState::Present { value, expires_at } => {
                    self.entries.insert(key, Entry { value, expires_at });
                }
                FinalState::Absent => {
                    self.entries.remove(&key);
                }
            }
        }
        Ok(plan.outcomes)
    }

    fn stats(&self) -> NamespaceStats {
        NamespaceStats {
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
            total_keys: self.entries.len(),
            used_bytes: (self.entries.iter())
                .map(|(key, entry)| (key.len() + entry.value.len()) as u64)
                .sum(),
            evictions: 0,
            expirations: self.expirations,
        }
    }
}

impl MemoryBackend {
    pub fn new(max_key_bytes: usize) -> Self {
        MemoryBackend {
            namespaces: Mutex::default(),
            feeds: Feeds::default(),
            max_key_bytes,
            started: Instant::now(),
            fault: None,
        }
    }

    /// A backend whose every operation fails or hangs.
    pub fn failing(max_key_bytes: usize, fault: Fault) -> Self {
        MemoryBackend {
            fault: Some(fault),
            ..MemoryBackend::new(max_key_bytes)
        }
    }

    async fn check_fault(&self) -> Result<(), BackendError> {
        match &self.fault {
            None => Ok(()),
            Some(Fault::Fail(error)) => Err(error.clone()),
            Some(Fault::Hang) => std::future::pending().await,
        }
    }

    /// The map after checking `namespace`'s name, with every expired entry
    /// of `namespace` removed.
    fn open(
        &self,
        namespace: Option<&str>,
    ) -> Result<MutexGuard<'_, HashMap<Option<String>, Namespace>>, StoreError> {
        namespace.map_or(Ok(()), validate_namespace)?;
        let mut namespaces = self.lock();
        if let Some(space) = namespaces.get_mut(&namespace.map(str::to_owned)) {
            let expired = space.reap(now_ms());
            self.publish_expired(namespace, expired);
        }
        Ok(namespaces)
    }

    /// How many events each namespace's feed keeps.
    pub fn set_feed_retention(&self, retention: Retention) {
        self.feeds.set_retention(retention);
    }

    /// Hands a change to the namespace's feed, if it is watched; called
    /// with the map locked, so events follow the order of the changes.
    fn publish(&self, namespace: Option<&str>, change: impl FnOnce() -> Change) {
        if let Some(feed) = self.feeds.get(namespace) {
            feed.publish(change());
        }
    }

    fn publish_expired(&self, namespace: Option<&str>, keys: Vec<String>) {
        for key in keys {
            self.publish(namespace, || Change::removed(ChangeKind::Expire, &key));
        }
    }

    /// No operation leaves the map half changed.
    fn lock(&self) -> MutexGuard<'_, HashMap<Option<String>, Namespace>> {
        self.namespaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(StoreError::KeyTooLong {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Figures of the named namespaces holding keys, and of the default one.
    /// The totals count every namespace `named` picks, those emptied or
    /// never filled included (a miss on a namespace without keys counts).
    fn figures(&self, named: impl Fn(&str) -> bool) -> (NamespaceStats, StoreStats) {
        let now = now_ms();
        let mut namespaces = self.lock();
        let mut default = NamespaceStats::default();
        let mut total = NamespaceStats::default();
        let mut shown = BTreeMap::new();
        for (name, space) in namespaces.iter_mut() {
            let expired = space.reap(now);
            self.publish_expired(name.as_deref(), expired);
            match name {
                None => default = space.stats(),
                Some(name) if named(name) => {
                    total.add(&space.stats());
                    if !space.entries.is_empty() {
                        shown.insert(name.clone(), space.stats());
                    }
                }
                Some(_) => {}
            }
        }
        let store = StoreStats::with_totals(&total, shown);
        (default, store)
    }

    fn unsupported(capability: &'static str) -> BackendError {
        BackendError::Unsupported {
            backend: NAME,
            capability,
        }
    }
}

impl KvBackend for MemoryBackend {
    async fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, BackendError> {
        self.check_fault().await?;
        self.check_key(key)?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        let entry = Entry {
            value: value.to_owned(),
            expires_at: deadline_in(ttl_secs),
        };
        self.publish(namespace, || Change::set(key, value, entry.expires_at));
        space.entries.insert(key.to_owned(), entry);
        Ok(Commit::done())
    }

    async fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        ttl_secs: Option<u64>,
    ) -> Result<(i64, Commit), BackendError> {
        self.check_fault().await?;
        self.check_key(key)?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        let now = now_ms();
        let (current, deadline) = match space.entries.get(key).filter(|e| e.is_live(now)) {
            Some(entry) => (crate::store::counter_value(&entry.value)?, entry.expires_at),
            None => (0, None),
        };
        let sum = current
            .checked_add(by)
            .ok_or(StoreError::Overflow { value: current, by })?;
        let entry = Entry {
            value: sum.to_string(),
            expires_at: ttl_secs.map(|ttl| now + ttl * 1000).or(deadline),
        };
        self.publish(namespace, || {
            Change::set(key, &entry.value, entry.expires_at)
        });
        space.entries.insert(key.to_owned(), entry);
        Ok((sum, Commit::done()))
    }

    async fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
        condition: Condition,
    ) -> Result<Commit, BackendError> {
        self.check_fault().await?;
        self.check_key(key)?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        condition.holds(space.entries.get(key).map(|e| etag_of(&e.value)))?;
        let entry = Entry {
            value: value.to_owned(),
            expires_at: deadline_in(ttl_secs),
        };
        self.publish(namespace, || Change::set(key, value, entry.expires_at));
        space.entries.insert(key.to_owned(), entry);
        Ok(Commit::done())
    }

    async fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(namespace)?;
        let Some(space) = namespaces.get_mut(&namespace.map(str::to_owned)) else {
            condition.holds(None)?;
            return Ok(None);
        };
        condition.holds(space.entries.get(key).map(|e| etag_of(&e.value)))?;
        let removed = space.entries.remove(key);
        if removed.is_some() {
            self.publish(namespace, || Change::removed(ChangeKind::Delete, key));
        }
        Ok(removed.map(|_| Commit::done()))
    }

    async fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Option<u64>>, BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(namespace)?;
        let now = now_ms();
        let entry = (namespaces.get_mut(&namespace.map(str::to_owned)))
            .and_then(|space| space.entries.get(key));
        Ok(entry.map(|entry| entry.expires_at.map(|at| at.saturating_sub(now))))
    }

    async fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(namespace)?;
        let entry = (namespaces.get_mut(&namespace.map(str::to_owned)))
            .and_then(|space| space.entries.get_mut(key));
        Ok(entry.map(|entry| {
            entry.expires_at = deadline_in(ttl_secs);
            self.publish(namespace, || {
                Change::set(key, &entry.value, entry.expires_at)
            });
            Commit::done()
        }))
    }

    async fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, BackendError> {
        self.check_fault().await?;
        self.check_key(key)?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        match space.entries.get(key) {
            Some(entry) => {
                space.cache_hits += 1;
                out.extend_from_slice(entry.value.as_bytes());
                Ok(true)
            }
            None => {
                space.cache_misses += 1;
                Ok(false)
            }
        }
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_fault().await?;
        self.check_key(key)?;
        let mut namespaces = self.open(namespace)?;
        let removed = (namespaces.get_mut(&namespace.map(str::to_owned)))
            .and_then(|space| space.entries.remove(key));
        if removed.is_some() {
            self.publish(namespace, || Change::removed(ChangeKind::Delete, key));
        }
        Ok(removed.map(|_| Commit::done()))
    }

    /// Under the one mutex, each op as a transaction of one.
    async fn batch(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Result<Outcome, BackendError>>, BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        let check_key = |key: &str| self.check_key(key);
        Ok((ops.iter())
            .map(|op| {
                let mut outcomes = space.transact(std::slice::from_ref(op), check_key)?;
                Ok(outcomes.pop().expect("one op, one outcome"))
            })
            .map(|outcome| outcome.map_err(|e| alone(e).into()))
            .collect())
    }

    /// Under the one mutex: nothing else runs meanwhile.
    async fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Outcome>, BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(namespace)?;
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        Ok(space.transact(ops, |key| self.check_key(key))?)
    }

    async fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), BackendError> {
        self.check_fault().await?;
        let mut namespaces = self.open(Some(namespace))?;
        let deleted =
            (namespaces.remove(&Some(namespace.to_owned()))).map_or(0, |space| space.entries.len());
        if deleted > 0 {
            self.publish(Some(namespace), Change::clear);
        }
        Ok((deleted, Commit::done()))
    }

    async fn namespace_stats(
        &self,
        namespace: Option<&str>,
    ) -> Result<NamespaceStats, BackendError> {
        self.check_fault().await?;
        let namespaces = self.open(namespace)?;
        Ok((namespaces.get(&namespace.map(str::to_owned)))
            .map(Namespace::stats)
            .unwrap_or_default())
    }

    async fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, BackendError> {
        self.check_fault().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let namespaces = self.open(namespace)?;
        let Some(space) = namespaces.get(&namespace.map(str::to_owned)) else {
            return Ok(KeyPage {
                keys: Vec::new(),
                next_cursor: None,
            });
        };
        let mut keys: Vec<String> = (space.entries.keys())
            .filter(|key| key.starts_with(prefix) && cursor.is_none_or(|c| key.as_str() > c))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_cursor = if more { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next_cursor })
    }

    async fn export_page(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, BackendError> {
        self.check_fault().await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let namespaces = self.open(namespace)?;
        let Some(space) = namespaces.get(&namespace.map(str::to_owned)) else {
            return Ok(RecordPage::default());
        };
        let after = cursor.map_or(Bound::Unbounded, |c| Bound::Excluded(c.to_owned()));
        let mut entries = space.entries.range((after, Bound::Unbounded)).peekable();
        let (mut page, mut bytes) = (RecordPage::default(), 0);
        while let Some((key, entry)) = entries.next() {
            bytes += key.len() + entry.value.len();
            page.records.push(Record {
                key: key.clone(),
                value: entry.value.clone(),
                expires_at: entry.expires_at,
            });
            let full = page.records.len() == limit || bytes >= PAGE_BYTES;
            if full {
                page.next_cursor = entries.peek().map(|_| key.clone());
                break;
            }
        }
        Ok(page)
    }

    async fn import_records(&self, namespace: Option<&str>, records: &[Record]) -> Imported {
        if let Err(error) = self.check_fault().await {
            return Imported::refused(error);
        }
        let mut namespaces = match self.open(namespace) {
            Ok(namespaces) => namespaces,
            Err(error) => return Imported::refused(error.into()),
        };
        let space = namespaces.entry(namespace.map(str::to_owned)).or_default();
        let now = now_ms();
        let (mut applied, mut stored) = (0, 0);
        for record in records {
            if !record.is_expired(now) {
                if let Err(error) = self.check_key(&record.key) {
                    return Imported {
                        applied,
                        stored,
                        commit: Commit::done(),
                        refused: Some(error.into()),
                    };
                }
                let entry = Entry {
                    value: record.value.clone(),
                    expires_at: record.expires_at,
                };
                space.entries.insert(record.key.clone(), entry);
                stored += 1;
            }
            applied += 1;
        }
        Imported {
            applied,
            stored,
            commit: Commit::done(),
            refused: None,
        }
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        self.check_fault().await?;
        let (default, mut store) = self.figures(|_| true);
        store.total_keys += default.total_keys;
        store.cache_hits += default.cache_hits;
        store.cache_misses += default.cache_misses;
        store.used_bytes += default.used_bytes;
        store.expirations += default.expirations;
        store.default_namespace = default;
        Ok(BackendStats {
            store,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ..BackendStats::default()
        })
    }

    async fn scoped_stats(&self, names: &[String]) -> Result<BackendStats, BackendError> {
        self.check_fault().await?;
        let (_, store) = self.figures(|name| names.iter().any(|n| n == name));
        Ok(BackendStats {
            store,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ..BackendStats::default()
        })
    }

    async fn quota(&self, _namespace: Option<&str>) -> Result<QuotaReport, BackendError> {
        self.check_fault().await?;
        Err(Self::unsupported("quotas"))
    }

    async fn set_quota(
        &self,
        _namespace: Option<&str>,
        _quota: Limit,
    ) -> Result<QuotaReport, BackendError> {
        self.check_fault().await?;
        Err(Self::unsupported("quotas"))
    }

    async fn compact(&self) -> Result<bool, BackendError> {
        self.check_fault().await?;
        Err(Self::unsupported("compaction (it keeps no log)"))
    }

    async fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<ChangeStream, BackendError> {
        self.check_fault().await?;
        // Under the map's lock: no change is half published meanwhile.
        let namespaces = self.open(namespace)?;
        self.feeds.retire_idle(LINGER);
        let (watcher, _) = self.feeds.watch(namespace, from);
        drop(namespaces);
        Ok(ChangeStream::Local(watcher))
    }

    async fn health(&self) -> Health {
        match &self.fault {
            None | Some(Fault::Hang) => Health::Healthy,
            Some(Fault::Fail(fault)) => Health::WritesRefused {
                detail: format!("{fault}; writes are refused until it answers"),
            },
        }
    }
}
