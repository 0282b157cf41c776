//! Batches (`POST /batch`): the ops a batch carries, what each one gives,
//! and the plan of a transaction, shared by every backend that runs a
//! transaction in its own memory (the engine, [`super::transaction`], and
//! the test-only backend; Redis does the same in one script).
//!
//! A batch is in one namespace. Run one by one ([`crate::backend::KvBackend::batch`]),
//! each op succeeds or fails by itself. Run as a transaction
//! ([`crate::backend::KvBackend::transact`]), every op is applied or none
//! is: the backend reads what the ops touch, works out every op's outcome
//! and the final state of every key it writes ([`plan`]) before writing
//! anything, and only then writes, with no other request in between.

use std::num::NonZeroU64;

use super::{Condition, StoreError, counter_value, deadline_in, etag_of};

/// The most ops one batch may carry. Why 1000: it is 10 times the batches
/// of 100 that bulk loading and multi-gets gain most from (one round trip
/// and one log wait instead of 100; beyond a few hundred the gain per op
/// is small), while a transaction of that size holds its namespace's locks
/// (or, on Redis, the shard's only thread) for about a millisecond at
/// most, which other requests can afford to wait.
pub const MAX_BATCH_OPS: usize = 1000;

/// One op of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOp {
    pub key: String,
    pub kind: OpKind,
    /// Must hold for the op to be applied (`if_match`, `if_absent`).
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Get,
    /// `value` is JSON text.
    Set {
        value: String,
        ttl_secs: Option<u64>,
    },
    Delete,
    /// Keeps the key's deadline, as `POST /incr` without `ttl` does.
    Incr {
        by: i64,
    },
}

impl OpKind {
    pub fn writes(&self) -> bool {
        !matches!(self, OpKind::Get)
    }

    /// The op's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Set { .. } => "set",
            OpKind::Delete => "delete",
            OpKind::Incr { .. } => "incr",
        }
    }
}

/// What one op gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A get that found the key: its value's JSON text.
    Value(String),
    /// A get or a delete that did not find the key.
    Missing,
    Stored,
    Deleted,
    /// An increment: the counter after it.
    Counted(i64),
}

/// The state a transaction leaves a key in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalState {
    /// JSON text, and the absolute deadline (milliseconds since the epoch).
    Present {
        value: String,
        expires_at: Option<u64>,
    },
    Absent,
}

/// What a transaction does, worked out before anything is written.
#[derive(Debug, Default)]
pub struct Plan {
    /// One per op, in order.
    pub outcomes: Vec<Outcome>,
    /// The final state of every key an op writes, in the order each key
    /// was first written; a key written twice appears once, as the last
    /// write left it.
    pub writes: Vec<(String, FinalState)>,
}

/// A key as a backend read it: its JSON text and deadline, or `None` when
/// absent or expired.
pub type Current = Option<(String, Option<u64>)>;

/// Works out a transaction: every op in order against `read` (the keys as
/// they are, which the caller keeps unchanged meanwhile) and the writes of
/// the ops before it. The first op that cannot be applied (a condition
/// that does not hold, an increment of something not an integer, a key
/// too long) aborts the whole transaction with [`StoreError::Aborted`].
///
/// The algorithm: an overlay maps each key written so far to the state the
/// ops left it in; an op reads the overlay first and `read` only for a
/// key no op wrote. Each key is read from the store at most once.
pub fn plan(
    ops: &[BatchOp],
    check_key: impl Fn(&str) -> Result<(), StoreError>,
    mut read: impl FnMut(&str) -> Current,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    let mut overlay: hashbrown::HashMap<&str, usize> = hashbrown::HashMap::new();
    let mut read_once: hashbrown::HashMap<&str, Current> = hashbrown::HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        let abort = |cause| StoreError::aborted(index, &op.key, cause);
        check_key(&op.key).map_err(abort)?;
        let current: Current = match overlay.get(op.key.as_str()) {
            Some(&at) => match &plan.writes[at].1 {
                FinalState::Present { value, expires_at } => Some((value.clone(), *expires_at)),
                FinalState::Absent => None,
            },
            None => read_once
                .entry(&op.key)
                .or_insert_with(|| read(&op.key))
                .clone(),
        };
        if let Some(condition) = op.condition {
            let tag = current.as_ref().map(|(value, _)| etag_of(value));
            condition.holds(tag).map_err(abort)?;
        }
        let (outcome, state) = apply_one(&op.kind, current).map_err(abort)?;
        plan.outcomes.push(outcome);
        if let Some(state) = state {
            match overlay.get(op.key.as_str()) {
                Some(&at) => plan.writes[at].1 = state,
                None => {
                    overlay.insert(&op.key, plan.writes.len());
                    plan.writes.push((op.key.clone(), state));
                }
            }
        }
    }
    Ok(plan)
}

/// What one op gives on a key in state `current`, and the state it leaves
/// the key in (`None`: unchanged).
fn apply_one(kind: &OpKind, current: Current) -> Result<(Outcome, Option<FinalState>), StoreError> {
    Ok(match kind {
        OpKind::Get => match current {
            Some((value, _)) => (Outcome::Value(value), None),
            None => (Outcome::Missing, None),
        },
        OpKind::Set { value, ttl_secs } => {
            let state = FinalState::Present {
                value: value.clone(),
                expires_at: deadline_in(*ttl_secs),
            };
            (Outcome::Stored, Some(state))
        }
        OpKind::Delete => match current {
            Some(_) => (Outcome::Deleted, Some(FinalState::Absent)),
            None => (Outcome::Missing, None),
        },
        OpKind::Incr { by } => {
            let (count, expires_at) = match &current {
                Some((value, expires_at)) => (counter_value(value)?, *expires_at),
                None => (0, None),
            };
            let sum = count.checked_add(*by).ok_or(StoreError::Overflow {
                value: count,
                by: *by,
            })?;
            let state = FinalState::Present {
                value: sum.to_string(),
                expires_at,
            };
            (Outcome::Counted(sum), Some(state))
        }
    })
}

/// The gets among `ops` that found their key, and those that did not, for
/// the hit and miss counters.
pub fn lookups(ops: &[BatchOp], outcomes: &[Outcome]) -> (u64, u64) {
    let (mut hits, mut misses) = (0, 0);
    for (op, outcome) in ops.iter().zip(outcomes) {
        match (&op.kind, outcome) {
            (OpKind::Get, Outcome::Value(_)) => hits += 1,
            (OpKind::Get, _) => misses += 1,
            _ => {}
        }
    }
    (hits, misses)
}

/// The error of one op run alone as a transaction of one (how a batch
/// that is not atomic runs an op with a condition): the op's own error,
/// without the transaction around it.
pub fn alone(error: StoreError) -> StoreError {
    match error {
        StoreError::Aborted { cause, .. } => *cause,
        other => other,
    }
}

/// A deadline as the engine's entries keep it (0 is none).
pub(super) fn nonzero(expires_at: Option<u64>) -> Option<NonZeroU64> {
    expires_at.and_then(NonZeroU64::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, kind: OpKind) -> BatchOp {
        BatchOp {
            key: key.into(),
            kind,
            condition: None,
        }
    }

    fn set(key: &str, value: &str) -> BatchOp {
        op(
            key,
            OpKind::Set {
                value: value.into(),
                ttl_secs: None,
            },
        )
    }

    #[test]
    fn later_ops_see_earlier_writes_and_each_key_is_written_once() {
        let ops = [
            set("a", "1"),
            op("a", OpKind::Incr { by: 2 }),
            op("a", OpKind::Get),
            op("b", OpKind::Delete),
            op("c", OpKind::Delete),
        ];
        let stored = |key: &str| (key == "b").then(|| ("true".to_string(), Some(99)));
        let plan = plan(&ops, |_| Ok(()), stored).unwrap();
        assert_eq!(
            plan.outcomes,
            [
                Outcome::Stored,
                Outcome::Counted(3),
                Outcome::Value("3".into()),
                Outcome::Deleted,
                Outcome::Missing,
            ]
        );
        assert_eq!(
            plan.writes,
            [
                (
                    "a".into(),
                    FinalState::Present {
                        value: "3".into(),
                        expires_at: None
                    }
                ),
                ("b".into(), FinalState::Absent),
            ]
        );
    }

    #[test]
    fn the_first_op_that_cannot_apply_aborts_naming_itself() {
        let mut guarded = set("b", "2");
        guarded.condition = Some(Condition::Absent);
        let ops = [set("a", "1"), guarded];
        let present = |_: &str| Some(("0".to_string(), None));
        let error = plan(&ops, |_| Ok(()), present).unwrap_err();
        assert_eq!(
            error,
            StoreError::aborted(
                1,
                "b",
                StoreError::ConditionFailed {
                    current: Some(etag_of("0"))
                }
            )
        );
        let ops = [set("a", "\"x\""), op("a", OpKind::Incr { by: 1 })];
        let error = plan(&ops, |_| Ok(()), |_| None).unwrap_err();
        assert!(
            matches!(error, StoreError::Aborted { index: 1, .. }),
            "{error:?}"
        );
    }
}
