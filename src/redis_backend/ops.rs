//! [`KvBackend`] over Redis: each operation is one script on the
//! namespace's slot (see the module's documentation for the design).

use std::collections::BTreeMap;

use tokio::task::JoinSet;

use super::connection::{Connection, Patience};
use super::layout::NamespaceKeys;
use super::scripts::{
    BATCH_SCRIPT, CLEAR_SCRIPT, DELETE_IF_SCRIPT, DELETE_SCRIPT, EXPIRE_SCRIPT, EXPORT_SCRIPT,
    GET_SCRIPT, IMPORT_SCRIPT, INCR_SCRIPT, LIST_SCRIPT, QUOTA_SCRIPT, SET_IF_SCRIPT,
    SET_QUOTA_SCRIPT, SET_SCRIPT, STATS_SCRIPT, TTL_SCRIPT,
};
use super::{RedisBackend, errors, invocation, layout, limit_arg, reclaim, within};
use crate::backend::{
    BackendError, BackendStats, ChangeStream, Commit, Health, Imported, KvBackend,
};
use crate::store::{
    BatchOp, Condition, KeyPage, Limit, MAX_PAGE, NamespaceStats, OpKind, Outcome, PAGE_BYTES,
    QuotaReport, Record, RecordPage, StoreError, StoreStats, counter_value, validate_namespace,
};

impl KvBackend for RedisBackend {
    async fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&SET_SCRIPT, &keys);
        call.arg(key).arg(value).arg(ttl_ms(ttl_secs));
        self.quota_args(&mut call, namespace);
        let (created, commit): (i64, _) = self.run_write(&call).await?;
        self.register(namespace, created).await?;
        Ok(commit)
    }

    async fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&GET_SCRIPT, &keys);
        call.arg(key);
        let (created, found, value): (i64, i64, Vec<u8>) = self.run(&call).await?;
        self.register(namespace, created).await?;
        if found == 1 {
            out.extend_from_slice(&value);
        }
        Ok(found == 1)
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&DELETE_SCRIPT, &keys);
        call.arg(key);
        let ((created, deleted), commit): ((i64, i64), _) = self.run_write(&call).await?;
        self.register(namespace, created).await?;
        Ok((deleted == 1).then_some(commit))
    }

    async fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        ttl_secs: Option<u64>,
    ) -> Result<(i64, Commit), BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&INCR_SCRIPT, &keys);
        call.arg(key).arg(by).arg(ttl_ms(ttl_secs));
        self.quota_args(&mut call, namespace);
        let ((created, status, text), commit): ((i64, i64, String), _) =
            self.run_write(&call).await?;
        self.register(namespace, created).await?;
        match status {
            1 => Ok((text.parse().unwrap_or_default(), commit)),
            // HINCRBY refused the value: name what it is, as the engine does.
            -1 => Err(StoreError::Overflow {
                value: counter_value(&text)?,
                by,
            }
            .into()),
            _ => Err(counter_value(&text)
                .err()
                .unwrap_or(StoreError::NotAnInteger {
                    found: "a number that is not a 64-bit integer",
                })
                .into()),
        }
    }

    async fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
        condition: Condition,
    ) -> Result<Commit, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&SET_IF_SCRIPT, &keys);
        (call.arg(key).arg(value).arg(ttl_ms(ttl_secs))).arg(condition_arg(condition));
        self.quota_args(&mut call, namespace);
        let ((created, ok, tag), commit): ((i64, i64, String), _) = self.run_write(&call).await?;
        self.register(namespace, created).await?;
        failed_condition(ok, &tag)?;
        Ok(commit)
    }

    async fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&DELETE_IF_SCRIPT, &keys);
        call.arg(key).arg(condition_arg(condition));
        let ((created, ok, tag, deleted), commit): ((i64, i64, String, i64), _) =
            self.run_write(&call).await?;
        self.register(namespace, created).await?;
        failed_condition(ok, &tag)?;
        Ok((deleted == 1).then_some(commit))
    }

    async fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Option<u64>>, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&TTL_SCRIPT, &keys);
        call.arg(key);
        let (found, left): (i64, i64) = self.run(&call).await?;
        Ok((found == 1).then(|| u64::try_from(left).ok()))
    }

    async fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Option<Commit>, BackendError> {
        self.check_key(key)?;
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&EXPIRE_SCRIPT, &keys);
        call.arg(key).arg(ttl_ms(ttl_secs));
        let (found, commit): (i64, _) = self.run_write(&call).await?;
        Ok((found == 1).then_some(commit))
    }

    async fn batch(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Result<Outcome, BackendError>>, BackendError> {
        let keys = self.namespace(namespace)?;
        // An op with a bad key fails alone, and is not sent.
        let checked: Vec<Result<(), StoreError>> =
            ops.iter().map(|op| self.check_key(&op.key)).collect();
        let sent: Vec<&BatchOp> = (ops.iter().zip(&checked))
            .filter(|(_, checked)| checked.is_ok())
            .map(|(op, _)| op)
            .collect();
        let (_, answers) = self.run_batch(namespace, &keys, &sent, false).await?;
        let mut answers = sent.iter().zip(answers);
        Ok((checked.into_iter())
            .map(|checked| match checked {
                Err(error) => Err(error.into()),
                Ok(()) => {
                    let (op, (code, text)) = answers.next().expect("one answer per op sent");
                    outcome_of(op, &code, text).map_err(Into::into)
                }
            })
            .collect())
    }

    async fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Outcome>, BackendError> {
        let keys = self.namespace(namespace)?;
        for (index, op) in ops.iter().enumerate() {
            self.check_key(&op.key)
                .map_err(|error| StoreError::aborted(index, &op.key, error))?;
        }
        let ops: Vec<&BatchOp> = ops.iter().collect();
        let (failed, answers) = self.run_batch(namespace, &keys, &ops, true).await?;
        if let Some(index) = failed {
            let op = ops[index];
            let (code, text) = answers.into_iter().next().unwrap_or_default();
            let error = outcome_of(op, &code, text)
                .err()
                .unwrap_or(StoreError::NotAnInteger {
                    found: "an answer Redis should not give",
                });
            return Err(StoreError::aborted(index, &op.key, error).into());
        }
        (ops.iter().zip(answers))
            .map(|(op, (code, text))| outcome_of(op, &code, text).map_err(Into::into))
            .collect()
    }

    async fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), BackendError> {
        let keys = self.namespace(Some(namespace))?;
        let mut call = invocation(&CLEAR_SCRIPT, &keys);
        call.arg(keys.base());
        let (live, commit): (i64, _) = self.run_write(&call).await?;
        reclaim::spawn(self.connection.get(), keys, self.patience);
        Ok((live.max(0) as usize, commit))
    }

    async fn namespace_stats(
        &self,
        namespace: Option<&str>,
    ) -> Result<NamespaceStats, BackendError> {
        let keys = self.namespace(namespace)?;
        self.noting_timeouts(stats_of(self.connection.get(), &keys, self.patience).await)
    }

    async fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, BackendError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let keys = self.namespace(namespace)?;
        let (min, max) = lex_range(prefix, cursor);
        let mut call = invocation(&LIST_SCRIPT, &keys);
        call.arg(min).arg(max).arg(limit + 1);
        let mut page: Vec<String> = self.run(&call).await?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next_cursor = if more { page.last().cloned() } else { None };
        Ok(KeyPage {
            keys: page,
            next_cursor,
        })
    }

    async fn export_page(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, BackendError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let keys = self.namespace(namespace)?;
        let (min, max) = lex_range("", cursor);
        let mut call = invocation(&EXPORT_SCRIPT, &keys);
        call.arg(min).arg(max).arg(limit + 1).arg(PAGE_BYTES);
        let flat: Vec<String> = self.run(&call).await?;
        let mut records: Vec<Record> = (flat.chunks_exact(3))
            .map(|triple| Record {
                key: triple[0].clone(),
                value: triple[1].clone(),
                // Scores come back as Redis formats doubles.
                expires_at: triple[2].parse::<f64>().ok().map(|ms| ms as u64),
            })
            .collect();
        // One more than the page was asked for, to know whether another
        // follows; a page ended by its size may be followed by an empty one.
        let bytes: usize = (records.iter()).map(|r| r.key.len() + r.value.len()).sum();
        let more = records.len() > limit || bytes >= PAGE_BYTES;
        records.truncate(limit);
        let next_cursor = more
            .then(|| records.last().map(|r| r.key.clone()))
            .flatten();
        Ok(RecordPage {
            records,
            next_cursor,
        })
    }

    /// One script for the whole run, on the namespace's slot: the records
    /// up to the first bad key, or the first the quota refuses, are stored
    /// atomically together.
    async fn import_records(&self, namespace: Option<&str>, records: &[Record]) -> Imported {
        let keys = match self.namespace(namespace) {
            Ok(keys) => keys,
            Err(error) => return Imported::refused(error.into()),
        };
        let (valid, bad_key) = match records.iter().position(|r| self.check_key(&r.key).is_err()) {
            Some(at) => (&records[..at], self.check_key(&records[at].key).err()),
            None => (records, None),
        };
        let run = match self.import_run(namespace, &keys, valid).await {
            Ok(run) => run,
            Err(error) => return Imported::refused(error),
        };
        let refused = match run.refusal {
            Some(refusal) => Some(BackendError::from(refusal)),
            None => bad_key.map(BackendError::from),
        };
        Imported {
            applied: run.done,
            stored: run.stored,
            commit: run.commit,
            refused,
        }
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        let names = self.registered_namespaces().await?;
        let mut store = self.figures_of(&names).await?;
        let default = self.namespace_stats(None).await?;
        store.total_keys += default.total_keys;
        store.cache_hits += default.cache_hits;
        store.cache_misses += default.cache_misses;
        store.used_bytes += default.used_bytes;
        store.expirations += default.expirations;
        store.default_namespace = default;
        Ok(self.backend_stats(store))
    }

    async fn scoped_stats(&self, names: &[String]) -> Result<BackendStats, BackendError> {
        let valid: Vec<String> = (names.iter())
            .filter(|name| validate_namespace(name).is_ok())
            .cloned()
            .collect();
        let store = self.figures_of(&valid).await?;
        Ok(self.backend_stats(store))
    }

    async fn quota(&self, namespace: Option<&str>) -> Result<QuotaReport, BackendError> {
        let keys = self.namespace(namespace)?;
        let call = invocation(&QUOTA_SCRIPT, &keys);
        let (kept, max_bytes, max_keys, used_bytes, used_keys): (i64, i64, i64, i64, i64) =
            self.run(&call).await?;
        let bound = |n: i64| u64::try_from(n).ok();
        let quota = match kept {
            1 => Limit {
                max_bytes: bound(max_bytes),
                max_keys: bound(max_keys),
            },
            _ => self.limits.quota_of(namespace),
        };
        Ok(QuotaReport {
            quota,
            used_bytes: used_bytes.max(0) as u64,
            used_keys: used_keys.max(0) as u64,
        })
    }

    /// Keeps the quota in Redis, where every node reads it and a restart
    /// finds it; under lru, evicts down to it in batches of
    /// [`EVICTIONS_PER_CALL`] (each one script, so that a namespace shrunk
    /// by millions of keys never blocks its shard long).
    async fn set_quota(
        &self,
        namespace: Option<&str>,
        quota: Limit,
    ) -> Result<QuotaReport, BackendError> {
        let keys = self.namespace(namespace)?;
        let mut call = invocation(&SET_QUOTA_SCRIPT, &keys);
        call.arg(limit_arg(quota.max_bytes))
            .arg(limit_arg(quota.max_keys))
            .arg(EVICTIONS_PER_CALL);
        self.quota_args(&mut call, namespace);
        loop {
            let ((used_bytes, used_keys, more), commit): ((i64, i64, i64), _) =
                self.run_write(&call).await?;
            commit.durable().await?;
            if more == 0 {
                return Ok(QuotaReport {
                    quota,
                    used_bytes: used_bytes.max(0) as u64,
                    used_keys: used_keys.max(0) as u64,
                });
            }
        }
    }

    async fn compact(&self) -> Result<bool, BackendError> {
        Err(Self::unsupported("compaction (Redis persists by itself)"))
    }

    async fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<ChangeStream, BackendError> {
        Ok(ChangeStream::Redis(
            self.open_watcher(namespace, from).await?,
        ))
    }

    async fn health(&self) -> Health {
        let mut connection = self.connection.get();
        let ping = redis::cmd("PING").to_owned();
        match self.call(ping.query_async::<String>(&mut connection)).await {
            Ok(_) => Health::Healthy,
            Err(error) => Health::WritesRefused {
                detail: format!("{error}; writes are refused until it answers"),
            },
        }
    }
}

impl RedisBackend {
    /// Runs the import script over `records`; how many it stored.
    async fn import_run(
        &self,
        namespace: Option<&str>,
        keys: &NamespaceKeys,
        records: &[Record],
    ) -> Result<ImportRun, BackendError> {
        if records.is_empty() {
            let commit = Commit::done();
            return Ok(ImportRun {
                done: 0,
                stored: 0,
                commit,
                refusal: None,
            });
        }
        let mut call = invocation(&IMPORT_SCRIPT, keys);
        for record in records {
            let deadline = record.expires_at.map_or(String::new(), |at| at.to_string());
            call.arg(&record.key).arg(&record.value).arg(deadline);
        }
        self.quota_args(&mut call, namespace);
        let ((created, done, stored, refusal), commit): ((i64, i64, i64, String), _) =
            self.run_write(&call).await?;
        self.register(namespace, created).await?;
        let refusal =
            match refusal.as_str() {
                "" => None,
                text => Some(errors::returned_refusal(text).ok_or_else(|| {
                    BackendError::Unavailable {
                        detail: format!("Redis: the import script answered {text:?}"),
                    }
                })?),
            };
        Ok(ImportRun {
            done: done.max(0) as usize,
            stored: stored.max(0) as usize,
            commit,
            refusal,
        })
    }

    /// Runs the batch script on `ops`: the index of the op that failed a
    /// transaction, if one did, and the code and text of each op (of that
    /// op alone, if one failed).
    async fn run_batch(
        &self,
        namespace: Option<&str>,
        keys: &NamespaceKeys,
        ops: &[&BatchOp],
        atomic: bool,
    ) -> Result<(Option<usize>, Vec<(String, Vec<u8>)>), BackendError> {
        if ops.is_empty() {
            return Ok((None, Vec::new()));
        }
        let mut call = invocation(&BATCH_SCRIPT, keys);
        call.arg(if atomic { "1" } else { "0" });
        for op in ops {
            call.arg(op.kind.name()).arg(&op.key);
            match &op.kind {
                OpKind::Set { value, ttl_secs } => call.arg(value).arg(ttl_ms(*ttl_secs)),
                OpKind::Incr { by } => call.arg(by).arg(""),
                OpKind::Get | OpKind::Delete => call.arg("").arg(""),
            };
            call.arg(op.condition.map(condition_arg).unwrap_or_default());
        }
        self.quota_args(&mut call, namespace);
        let (answer, commit): (Vec<Vec<u8>>, Commit) = self.run_write(&call).await?;
        commit.durable().await?;
        let text = |i: usize| {
            String::from_utf8_lossy(answer.get(i).map_or(&[][..], Vec::as_slice)).into_owned()
        };
        let created = text(0).parse().unwrap_or(0);
        self.register(namespace, created).await?;
        let failed = text(1).parse::<usize>().unwrap_or(0).checked_sub(1);
        let pairs = (answer.into_iter().skip(2).collect::<Vec<_>>())
            .chunks_exact(2)
            .map(|pair| {
                (
                    String::from_utf8_lossy(&pair[0]).into_owned(),
                    pair[1].clone(),
                )
            })
            .collect();
        Ok((failed, pairs))
    }

    /// The named namespaces that hold or held data.
    async fn registered_namespaces(&self) -> Result<Vec<String>, BackendError> {
        let mut connection = self.connection.get();
        let command = redis::cmd("SMEMBERS")
            .arg(layout::registry_key(&self.prefix))
            .to_owned();
        self.call(command.query_async(&mut connection)).await
    }

    /// Totals over the named namespaces `names`, listing those with keys:
    /// one script per namespace, O(log n) each, [`STATS_IN_FLIGHT`] at a
    /// time, so that a cluster answers them in parallel.
    async fn figures_of(&self, names: &[String]) -> Result<StoreStats, BackendError> {
        let mut total = NamespaceStats::default();
        let mut shown = BTreeMap::new();
        let mut calls = JoinSet::new();
        let mut names = names.iter();
        loop {
            while calls.len() < STATS_IN_FLIGHT {
                let Some(name) = names.next() else { break };
                let keys = NamespaceKeys::new(&self.prefix, Some(name));
                let (connection, patience, name) =
                    (self.connection.get(), self.patience, name.clone());
                calls.spawn(async move { (name, stats_of(connection, &keys, patience).await) });
            }
            let Some(done) = calls.join_next().await else {
                break;
            };
            let (name, stats) = done.map_err(|error| BackendError::Unavailable {
                detail: format!("a statistics task failed: {error}"),
            })?;
            let stats = self.noting_timeouts(stats)?;
            total.add(&stats);
            if stats.total_keys > 0 {
                shown.insert(name, stats);
            }
        }
        Ok(StoreStats::with_totals(&total, shown))
    }

    fn backend_stats(&self, store: StoreStats) -> BackendStats {
        BackendStats {
            store,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ..BackendStats::default()
        }
    }
}

/// Keys one `PUT /quota` script may evict (see `set_quota`).
const EVICTIONS_PER_CALL: usize = 512;

/// Namespaces whose figures `/stats` asks for at once.
const STATS_IN_FLIGHT: usize = 32;

/// A namespace's figures, from one script.
async fn stats_of(
    mut connection: Connection,
    keys: &NamespaceKeys,
    patience: Patience,
) -> Result<NamespaceStats, BackendError> {
    let call = invocation(&STATS_SCRIPT, keys);
    let figures: Vec<i64> = within(patience, call.invoke_async(&mut connection)).await?;
    let figure = |i: usize| figures.get(i).copied().unwrap_or(0).max(0) as u64;
    Ok(NamespaceStats {
        cache_hits: figure(0),
        cache_misses: figure(1),
        total_keys: figure(2) as usize,
        used_bytes: figure(3),
        evictions: figure(5),
        expirations: figure(4),
    })
}

/// The `ZRANGEBYLEX` bounds of the keys starting with `prefix` after
/// `cursor`. No UTF-8 text holds the byte 0xFF, so every key starting with
/// `prefix` sorts before `prefix` + 0xFF.
fn lex_range(prefix: &str, cursor: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min = match cursor {
        Some(cursor) if cursor >= prefix => [b"(", cursor.as_bytes()].concat(),
        _ => [b"[", prefix.as_bytes()].concat(),
    };
    let max = if prefix.is_empty() {
        b"+".to_vec()
    } else {
        [b"(", prefix.as_bytes(), b"\xff"].concat()
    };
    (min, max)
}

/// The outcome of `op` from the batch script's code and text for it.
fn outcome_of(op: &BatchOp, code: &str, text: Vec<u8>) -> Result<Outcome, StoreError> {
    let text = || String::from_utf8(text).unwrap_or_default();
    match code {
        "value" => Ok(Outcome::Value(text())),
        "missing" => Ok(Outcome::Missing),
        "stored" => Ok(Outcome::Stored),
        "deleted" => Ok(Outcome::Deleted),
        "counted" => Ok(Outcome::Counted(text().parse().unwrap_or_default())),
        "refused" => Err(
            errors::returned_refusal(&text()).unwrap_or(StoreError::LimitReached {
                scope: "the namespace".into(),
                limit: "its quota".into(),
            }),
        ),
        "condition" => Err(StoreError::ConditionFailed {
            current: u64::from_str_radix(&text(), 16).ok(),
        }),
        "overflow" => {
            let by = match op.kind {
                OpKind::Incr { by } => by,
                _ => 0,
            };
            Err(StoreError::Overflow {
                value: counter_value(&text())?,
                by,
            })
        }
        // HINCRBY refused the value: name what it is, as the engine does.
        _ => Err(counter_value(&text())
            .err()
            .unwrap_or(StoreError::NotAnInteger {
                found: "a number that is not a 64-bit integer",
            })),
    }
}

/// A TTL as the scripts take it: milliseconds, or "" for none.
fn ttl_ms(ttl_secs: Option<u64>) -> String {
    ttl_secs.map_or(String::new(), |ttl| ttl.saturating_mul(1000).to_string())
}

/// A condition as the scripts take it.
fn condition_arg(condition: Condition) -> String {
    match condition {
        Condition::Matches(tag) => format!("match:{tag:016x}"),
        Condition::Present => "present".into(),
        Condition::Absent => "absent".into(),
        Condition::Never => "never".into(),
        Condition::Differs(tag) => format!("differs:{tag:016x}"),
    }
}

/// The refusal of a script whose condition did not hold (`ok` 0), with the
/// key's current tag ("" when absent).
fn failed_condition(ok: i64, tag: &str) -> Result<(), StoreError> {
    if ok == 1 {
        return Ok(());
    }
    let current = u64::from_str_radix(tag, 16).ok();
    Err(StoreError::ConditionFailed { current })
}

/// What one import script did: records dealt with (stored or past their
/// deadline), records stored, and the quota's refusal of the next one.
struct ImportRun {
    done: usize,
    stored: usize,
    commit: Commit,
    refusal: Option<StoreError>,
}

#[cfg(test)]
mod tests {
    use super::lex_range;

    #[test]
    fn lex_bounds_start_after_the_cursor_within_the_prefix() {
        assert_eq!(lex_range("", None), (b"[".to_vec(), b"+".to_vec()));
        assert_eq!(
            lex_range("ab", Some("abc")),
            (b"(abc".to_vec(), b"(ab\xff".to_vec())
        );
        assert_eq!(lex_range("b", Some("a")).0, b"[b".to_vec());
    }
}
