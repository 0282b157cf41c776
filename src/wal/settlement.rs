//! Which records are settled (written, and synced under `always`, or
//! failed), and the requests waiting for theirs, each woken when its own
//! record is settled and not before.
//!
//! Why not one broadcast (a `tokio::sync::watch` of the last settled LSN,
//! as before): under `always` every request waits, and a sync settles only
//! the records of its batch. A broadcast woke every waiter at each sync;
//! those whose records were still queued behind the batch were polled for
//! nothing and went back to sleep, a task wake-up, a poll of their
//! connection and often a context switch each time, several per request
//! (docs/BENCHMARKS.md, "Group commit: waking only the settled").
//!
//! The algorithm. Waiters sit in a min-heap by LSN, under a mutex.
//! Settling stores the new last settled LSN first, then, under the mutex,
//! pops every waiter at or below it, and wakes them once the mutex is
//! released. A waiter checks the settled LSN under the same mutex before
//! it enters the heap, so either it sees its record settled, or it is in
//! the heap before the settling that covers it looks there. A waiter polled
//! again before its record is settled (woken by something else) enters the
//! heap a second time; the extra entry only wakes it once more when its
//! record is settled.

use std::cmp::Ordering as Order;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use super::writer::lock;
use crate::store::Lsn;

#[derive(Default)]
pub(super) struct Settlement {
    /// Highest LSN whose fate is settled. Records are settled in LSN order.
    last: AtomicU64,
    waiting: Mutex<BinaryHeap<Waiting>>,
}

/// A request waiting for the record at `lsn`.
struct Waiting {
    lsn: Lsn,
    waker: Waker,
}

impl Settlement {
    /// Whether the record at `lsn` is settled.
    pub fn is_settled(&self, lsn: Lsn) -> bool {
        self.last.load(Ordering::Acquire) >= lsn
    }

    /// The last settled LSN.
    pub fn last(&self) -> Lsn {
        self.last.load(Ordering::Acquire)
    }

    /// Settles every record up to `last` without waking anyone: for a
    /// record written inline, whose own request never waits, and which
    /// follows only settled records, whose waiters were woken already.
    pub fn settle_unwaited(&self, last: Lsn) {
        self.last.store(last, Ordering::Release);
    }

    /// Settles every record up to `last` and wakes their waiters.
    pub fn settle(&self, last: Lsn) {
        self.last.store(last, Ordering::Release);
        let mut woken = Vec::new();
        {
            let mut waiting = lock(&self.waiting);
            while waiting.peek().is_some_and(|w| w.lsn <= last) {
                woken.extend(waiting.pop().map(|w| w.waker));
            }
        }
        woken.into_iter().for_each(Waker::wake);
    }

    /// Ready once the record at `lsn` is settled; until then, the task of
    /// `cx` is woken when it is.
    pub fn poll_settled(&self, lsn: Lsn, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_settled(lsn) {
            return Poll::Ready(());
        }
        let mut waiting = lock(&self.waiting);
        // Checked again under the lock: see the module's documentation.
        if self.is_settled(lsn) {
            return Poll::Ready(());
        }
        waiting.push(Waiting {
            lsn,
            waker: cx.waker().clone(),
        });
        Poll::Pending
    }
}

/// The heap's order: the lowest LSN first (a `BinaryHeap` pops its
/// greatest).
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Order {
        other.lsn.cmp(&self.lsn)
    }
}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Order> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.lsn == other.lsn
    }
}

impl Eq for Waiting {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiter() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter::default());
        (counter.clone(), Waker::from(counter))
    }

    fn wakes(counter: &Counter) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    #[test]
    fn wakes_only_the_waiters_whose_records_are_settled() {
        let settlement = Settlement::default();
        let (early, early_waker) = waiter();
        let (late, late_waker) = waiter();
        let mut early_cx = Context::from_waker(&early_waker);
        let mut late_cx = Context::from_waker(&late_waker);
        assert!(settlement.poll_settled(3, &mut early_cx).is_pending());
        assert!(settlement.poll_settled(9, &mut late_cx).is_pending());

        settlement.settle(5);
        assert_eq!((wakes(&early), wakes(&late)), (1, 0));
        assert!(settlement.poll_settled(3, &mut early_cx).is_ready());
        assert!(!settlement.is_settled(9));

        settlement.settle(9);
        assert_eq!((wakes(&early), wakes(&late)), (1, 1));
        assert!(settlement.poll_settled(9, &mut late_cx).is_ready());
    }

    #[test]
    fn an_inline_settlement_is_seen_without_a_wake() {
        let settlement = Settlement::default();
        settlement.settle_unwaited(4);
        let (counter, waker) = waiter();
        assert!((settlement.poll_settled(4, &mut Context::from_waker(&waker))).is_ready());
        assert_eq!((wakes(&counter), settlement.last()), (0, 4));
    }

    #[test]
    fn a_waiter_registering_while_others_settle_is_never_lost() {
        // Many threads wait for records settled one by one by another
        // thread: every waiter must end up woken or see its record
        // settled, never left waiting.
        let settlement = Arc::new(Settlement::default());
        let waiters: Vec<_> = (1..=200u64)
            .map(|lsn| {
                let settlement = settlement.clone();
                std::thread::spawn(move || {
                    let (counter, waker) = waiter();
                    let mut cx = Context::from_waker(&waker);
                    if settlement.poll_settled(lsn, &mut cx).is_ready() {
                        return;
                    }
                    while wakes(&counter) == 0 {
                        std::thread::yield_now();
                    }
                    assert!(settlement.poll_settled(lsn, &mut cx).is_ready());
                })
            })
            .collect();
        for lsn in 1..=200 {
            settlement.settle(lsn);
        }
        for waiter in waiters {
            waiter.join().unwrap();
        }
    }
}
