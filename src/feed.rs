//! The change feed (`GET /watch`): the events a namespace's changes make,
//! their ids, and the in-process retention ring the embedded and memory
//! backends publish into (Redis keeps a stream instead, see
//! `redis_backend::watch`).
//!
//! # Why a ring per namespace, and no queue per watcher
//!
//! Writers publish each change once, into the namespace's bounded ring
//! (the last [`Retention::events`] events, and at most
//! [`Retention::bytes`] of keys and values); every watcher keeps only a
//! cursor into it and copies events out at its own pace. A stalled
//! watcher therefore costs writers nothing and holds no memory of its
//! own: when its cursor falls off the ring's tail it gets a `reset`.
//! Writers to a namespace nobody watches pay one atomic load
//! ([`FeedSlot::get`]).
//!
//! # Ids
//!
//! An event's id is `EPOCH-SEQ`, two decimal integers compared as a pair.
//! `EPOCH` is the wall-clock millisecond the feed was created (forced to
//! grow within a process), `SEQ` counts the feed's events from 1. A feed
//! lives while it has watchers and for [`LINGER`] after the last leaves;
//! a feed created later (or after a restart) has a new epoch, so an id
//! never means two events, and an id of an older feed gets `reset`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::now_ms;

/// Events kept per namespace by default (`--watch-retention`).
pub const DEFAULT_RETAIN_EVENTS: usize = 10_000;
/// Bytes of keys and values an in-process ring keeps at most, whatever
/// the event count: big values shorten the window rather than grow memory.
pub const RETAIN_BYTES: usize = 16 * 1024 * 1024;
/// How long a feed outlives its last watcher, so a client that reconnects
/// within it resumes where it left off.
pub const LINGER: Duration = Duration::from_secs(60);

/// What a change did to a key (or to the whole namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A write: `POST /set`, an increment, a TTL change. Carries the value.
    Set,
    Delete,
    /// Removed because its TTL passed.
    Expire,
    /// Removed to keep a memory limit.
    Evict,
    /// Every key of the namespace removed.
    Clear,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Set => "set",
            ChangeKind::Delete => "delete",
            ChangeKind::Expire => "expire",
            ChangeKind::Evict => "evict",
            ChangeKind::Clear => "clear",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeKind> {
        Some(match text {
            "set" => ChangeKind::Set,
            "delete" => ChangeKind::Delete,
            "expire" => ChangeKind::Expire,
            "evict" => ChangeKind::Evict,
            "clear" => ChangeKind::Clear,
            _ => return None,
        })
    }
}

/// One change, as watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// `None` for a clear.
    pub key: Option<Box<str>>,
    /// The value's JSON text, for a set.
    pub value: Option<Box<str>>,
    /// A set's deadline, milliseconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl Change {
    pub fn set(key: &str, value: &str, expires_at: Option<u64>) -> Change {
        Change {
            kind: ChangeKind::Set,
            key: Some(key.into()),
            value: Some(value.into()),
            expires_at,
        }
    }

    /// A delete, an expiry or an eviction of `key`.
    pub fn removed(kind: ChangeKind, key: &str) -> Change {
        Change {
            kind,
            key: Some(key.into()),
            value: None,
            expires_at: None,
        }
    }

    pub fn clear() -> Change {
        Change {
            kind: ChangeKind::Clear,
            key: None,
            value: None,
            expires_at: None,
        }
    }

    /// Bytes it holds, for the ring's byte bound.
    fn size(&self) -> usize {
        size_of::<Change>()
            + self.key.as_deref().map_or(0, str::len)
            + self.value.as_deref().map_or(0, str::len)
    }

    /// Whether a watcher of keys starting with `prefix` sees it (a clear
    /// concerns every key).
    pub fn matches(&self, prefix: &str) -> bool {
        self.key.as_deref().is_none_or(|k| k.starts_with(prefix))
    }
}

/// An event's id: `EPOCH-SEQ` (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub epoch: u64,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

impl FromStr for EventId {
    type Err = ();

    fn from_str(text: &str) -> Result<EventId, ()> {
        let (epoch, seq) = text.trim().split_once('-').ok_or(())?;
        Ok(EventId {
            epoch: epoch.parse().map_err(drop)?,
            seq: seq.parse().map_err(drop)?,
        })
    }
}

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// The feed is open; `at` is the position it starts after.
    Ready {
        at: EventId,
    },
    /// Events were missed (a position past the retention window, from an
    /// older feed, or unknown): re-read the namespace, then follow from
    /// `at`.
    Reset {
        at: EventId,
    },
    Event {
        id: EventId,
        change: Arc<Change>,
    },
}

/// How much a feed keeps for watchers that fall behind or reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events: usize,
    pub bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events: DEFAULT_RETAIN_EVENTS,
            bytes: RETAIN_BYTES,
        }
    }
}

/// A new epoch: the clock's millisecond, but always past the last one
/// handed out in this process.
fn new_epoch() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let previous = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .expect("the update always succeeds");
    now.max(previous + 1)
}

/// The last events of one namespace.
struct Ring {
    events: VecDeque<Arc<Change>>,
    /// Sequence number of `events[0]` (of the next event, when empty).
    first: u64,
    bytes: usize,
    retention: Retention,
}

impl Ring {
    /// Sequence number of the newest event (`first - 1` when none).
    fn last(&self) -> u64 {
        self.first + self.events.len() as u64 - 1
    }

    fn push(&mut self, change: Arc<Change>) {
        self.bytes += change.size();
        self.events.push_back(change);
        while self.events.len() > self.retention.events
            || (self.bytes > self.retention.bytes && self.events.len() > 1)
        {
            let old = self.events.pop_front().expect("not empty");
            self.bytes -= old.size();
            self.first += 1;
        }
    }
}

/// One namespace's feed: its ring, and the wake-up of its watchers.
pub struct Feed {
    epoch: u64,
    ring: Mutex<Ring>,
    wakeup: Notify,
    watchers: AtomicUsize,
    /// When the last watcher left, in ms since the Unix epoch; 0 while
    /// watched.
    idle_since: AtomicU64,
}

impl Feed {
    fn new(retention: Retention) -> Feed {
        Feed {
            epoch: new_epoch(),
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                first: 1,
                bytes: 0,
                retention,
            }),
            wakeup: Notify::new(),
            watchers: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a change and wakes the watchers. Called by writers with
    /// the key's lock held, so a key's events are in the order of its
    /// changes; the ring's lock is held for a push.
    pub fn publish(&self, change: Change) {
        self.ring().push(Arc::new(change));
        self.wakeup.notify_waiters();
    }

    fn id(&self, seq: u64) -> EventId {
        EventId {
            epoch: self.epoch,
            seq,
        }
    }

    /// A watcher from `from` (a `Last-Event-ID`), or from now.
    fn watch(self: &Arc<Self>, from: Option<&str>) -> Watcher {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        self.idle_since.store(0, Ordering::SeqCst);
        let ring = self.ring();
        let resumable = |id: EventId| {
            id.epoch == self.epoch && id.seq <= ring.last() && id.seq + 1 >= ring.first
        };
        let (done, first) = match from.map(str::parse::<EventId>) {
            None => (
                ring.last(),
                FeedItem::Ready {
                    at: self.id(ring.last()),
                },
            ),
            Some(Ok(id)) if resumable(id) => (id.seq, FeedItem::Ready { at: id }),
            Some(_) => (
                ring.last(),
                FeedItem::Reset {
                    at: self.id(ring.last()),
                },
            ),
        };
        drop(ring);
        Watcher {
            feed: self.clone(),
            done,
            first: Some(first),
        }
    }

    fn leave(&self) {
        if self.watchers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle_since.store(now_ms().max(1), Ordering::SeqCst);
        }
    }

    /// Whether it has had no watcher for `linger`.
    fn idle_for(&self, linger: Duration, now: u64) -> bool {
        let since = self.idle_since.load(Ordering::SeqCst);
        self.watchers.load(Ordering::SeqCst) == 0
            && since != 0
            && now.saturating_sub(since) >= linger.as_millis() as u64
    }
}

/// One watcher's cursor into a feed.
pub struct Watcher {
    feed: Arc<Feed>,
    /// Sequence number of the last event handed out.
    done: u64,
    /// What to hand out first: `Ready` or `Reset`.
    first: Option<FeedItem>,
}

/// Events handed out at a time.
const BATCH: usize = 256;

impl Watcher {
    /// What follows the cursor, at most [`BATCH`] events, or a `Reset`
    /// when the ring no longer holds what follows it.
    fn take(&mut self) -> Vec<FeedItem> {
        if let Some(first) = self.first.take() {
            return vec![first];
        }
        let ring = self.feed.ring();
        if self.done + 1 < ring.first {
            self.done = ring.last();
            return vec![FeedItem::Reset {
                at: self.feed.id(self.done),
            }];
        }
        let skip = (self.done + 1 - ring.first) as usize;
        let items: Vec<FeedItem> = (ring.events.iter().skip(skip).take(BATCH))
            .enumerate()
            .map(|(i, change)| FeedItem::Event {
                id: self.feed.id(self.done + 1 + i as u64),
                change: change.clone(),
            })
            .collect();
        self.done += items.len() as u64;
        items
    }

    /// The next items, waiting up to `wait` for some: none when nothing
    /// came meanwhile.
    pub async fn next(&mut self, wait: Duration) -> Vec<FeedItem> {
        let deadline = tokio::time::Instant::now() + wait;
        let feed = self.feed.clone();
        loop {
            // Registered before looking, so a publish in between still
            // wakes it.
            let mut notified = pin!(feed.wakeup.notified());
            notified.as_mut().enable();
            let items = self.take();
            if !items.is_empty() {
                return items;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.feed.leave();
    }
}

/// Where a namespace keeps its feed while it is watched: writers look at
/// one atomic flag, and at the feed only when it is set.
#[derive(Default)]
pub struct FeedSlot {
    watched: AtomicBool,
    feed: RwLock<Option<Arc<Feed>>>,
}

impl FeedSlot {
    /// The feed, when the namespace is watched.
    #[inline]
    pub fn get(&self) -> Option<Arc<Feed>> {
        if !self.is_watched() {
            return None;
        }
        self.feed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    #[inline]
    pub fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Acquire)
    }

    pub fn attach(&self, feed: Option<Arc<Feed>>) {
        let watched = feed.is_some();
        *self.feed.write().unwrap_or_else(|p| p.into_inner()) = feed;
        self.watched.store(watched, Ordering::Release);
    }
}

/// The feeds of a server's namespaces, created on the first watcher and
/// retired [`LINGER`] after the last.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<Option<Box<str>>, Arc<Feed>>>,
    retention: RwLock<Retention>,
}

impl Feeds {
    fn map(&self) -> MutexGuard<'_, HashMap<Option<Box<str>>, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How much new feeds keep.
    pub fn set_retention(&self, retention: Retention) {
        *self.retention.write().unwrap_or_else(|p| p.into_inner()) = retention;
    }

    /// A watcher of `namespace`'s feed from `from`, the feed created if
    /// it does not exist; also the feed, for the caller to attach.
    pub fn watch(&self, namespace: Option<&str>, from: Option<&str>) -> (Watcher, Arc<Feed>) {
        let retention = *self.retention.read().unwrap_or_else(|p| p.into_inner());
        let feed = (self.map().entry(namespace.map(Into::into)))
            .or_insert_with(|| Arc::new(Feed::new(retention)))
            .clone();
        (feed.watch(from), feed)
    }

    /// The feed of `namespace`, if one exists.
    pub fn get(&self, namespace: Option<&str>) -> Option<Arc<Feed>> {
        let map = self.map();
        if map.is_empty() {
            return None;
        }
        map.get(&namespace.map(Into::into)).cloned()
    }

    /// Removes the feeds unwatched for [`LINGER`]; returns their
    /// namespaces, for the caller to detach.
    pub fn retire_idle(&self, linger: Duration) -> Vec<Option<Box<str>>> {
        let mut map = self.map();
        if map.is_empty() {
            return Vec::new();
        }
        let now = now_ms();
        let idle: Vec<_> = (map.iter())
            .filter(|(_, feed)| feed.idle_for(linger, now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &idle {
            map.remove(name);
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(events: usize) -> Arc<Feed> {
        Arc::new(Feed::new(Retention {
            events,
            bytes: RETAIN_BYTES,
        }))
    }

    fn keys(items: &[FeedItem]) -> Vec<String> {
        (items.iter())
            .map(|item| match item {
                FeedItem::Event { change, .. } => change.key.as_deref().unwrap_or("").into(),
                FeedItem::Ready { .. } => "ready".into(),
                FeedItem::Reset { .. } => "reset".into(),
            })
            .collect()
    }

    #[test]
    fn ids_parse_as_they_print() {
        let id = EventId { epoch: 7, seq: 42 };
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        for bad in ["", "7", "7-", "-1", "a-b", "7-1-2", "7--1"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_watcher_resumes_within_the_ring_and_is_reset_past_it() {
        let feed = feed(3);
        let mut first = feed.watch(None);
        assert_eq!(keys(&first.take()), ["ready"]);
        for key in ["a", "b"] {
            feed.publish(Change::removed(ChangeKind::Delete, key));
        }
        let items = first.take();
        assert_eq!(keys(&items), ["a", "b"]);
        let FeedItem::Event { id: after_a, .. } = items[0] else {
            panic!()
        };
        let mut resumed = feed.watch(Some(&after_a.to_string()));
        assert_eq!(keys(&resumed.take()), ["ready"]);
        assert_eq!(keys(&resumed.take()), ["b"]);
        for key in ["c", "d", "e", "f"] {
            feed.publish(Change::removed(ChangeKind::Delete, key));
        }
        // The ring holds d, e, f: `first` (after b) missed c.
        assert_eq!(keys(&first.take()), ["reset"]);
        assert_eq!(keys(&first.take()), Vec::<String>::new());
        let mut late = feed.watch(Some(&after_a.to_string()));
        assert_eq!(keys(&late.take()), ["reset"]);
        let other_epoch = EventId {
            epoch: feed.epoch - 1,
            seq: 1,
        };
        assert_eq!(
            keys(&feed.watch(Some(&other_epoch.to_string())).take()),
            ["reset"]
        );
    }

    #[test]
    fn the_byte_bound_shortens_the_window() {
        let feed = Arc::new(Feed::new(Retention {
            events: 1000,
            bytes: 3000,
        }));
        let big = "x".repeat(1000);
        for i in 0..10 {
            feed.publish(Change::set(&i.to_string(), &big, None));
        }
        let ring = feed.ring();
        assert!(
            ring.bytes <= 3000 && ring.events.len() < 3,
            "{}",
            ring.bytes
        );
    }

    #[test]
    fn feeds_retire_once_unwatched_for_the_linger() {
        let feeds = Feeds::default();
        let (watcher, _) = feeds.watch(Some("a"), None);
        assert!(feeds.retire_idle(Duration::ZERO).is_empty());
        drop(watcher);
        assert!(feeds.retire_idle(Duration::from_secs(60)).is_empty());
        assert_eq!(feeds.retire_idle(Duration::ZERO), [Some("a".into())]);
        assert!(feeds.get(Some("a")).is_none());
    }

    #[test]
    fn epochs_grow() {
        let a = new_epoch();
        assert!(new_epoch() > a);
    }
}
