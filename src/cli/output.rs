//! How answers read in a terminal: values plainly, counters as aligned
//! tables. (`--json` bypasses all of this and prints the server's answer.)

use std::borrow::Cow;
use std::io::Write;

use serde_json::Value;

use crate::api::{ClearAnswer, HealthAnswer, NamespaceStats, StatsAnswer};

/// Prints `text` and a newline on stdout. A closed pipe (`pykv ... | head`)
/// is not an error worth a message.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// A string value as it is (no quotes, as redis-cli would); any other JSON
/// value as compact JSON. `--json` tells `"42"` from `42`.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn cleared(answer: &ClearAnswer) -> String {
    format!(
        "cleared {} from {}",
        keys(answer.keys_deleted),
        answer.namespace
    )
}

pub fn health(answer: &HealthAnswer) -> String {
    let status = answer.status.as_str();
    match &answer.namespace {
        Some(ns) => format!("{status}: {} in {ns}", keys(answer.store_size)),
        None => format!("{status}: {}", keys(answer.store_size)),
    }
}

/// `1 key`, `2 keys`.
fn keys(n: usize) -> String {
    if n == 1 {
        "1 key".into()
    } else {
        format!("{n} keys")
    }
}

/// The readable `stats`: the server's counters, then one row per
/// namespace; or, with `--ns`, that namespace's counters.
pub fn stats(stats: &StatsAnswer) -> String {
    if let (Some(ns), Some(scoped)) = (&stats.namespace, &stats.namespace_stats) {
        return namespace_summary(ns, scoped);
    }
    let summary = key_values(&server_summary(stats));
    let mut rows = Vec::new();
    rows.push(counter_row("(default)", &stats.default_namespace));
    rows.extend(stats.namespaces.iter().map(|(ns, c)| counter_row(ns, c)));
    format!("{summary}\n\n{}", counters_table(rows))
}

/// The readable `ns list`: each namespace with its counters from `stats`
/// (`-` if it emptied between the two requests).
pub fn namespaces(names: &[Cow<str>], stats: &StatsAnswer) -> String {
    if names.is_empty() {
        return "(no namespaces)".into();
    }
    let rows = names
        .iter()
        .map(|ns| match stats.namespaces.get(ns.as_ref()) {
            Some(counters) => counter_row(ns, counters),
            None => vec![ns.to_string(), "-".into(), "-".into(), "-".into()],
        })
        .collect();
    counters_table(rows)
}

fn server_summary(stats: &StatsAnswer) -> Vec<(&'static str, String)> {
    vec![
        ("total_keys", stats.total_keys.to_string()),
        ("cache_hits", stats.cache_hits.to_string()),
        ("cache_misses", stats.cache_misses.to_string()),
        ("evictions", stats.evictions.to_string()),
        (
            "log_size",
            (stats.log_size).map_or("no log".into(), |bytes| format!("{bytes} bytes")),
        ),
        (
            "last_compaction",
            stats.last_compaction.map_or("never".into(), utc),
        ),
        ("uptime", format!("{:.1} s", stats.uptime_seconds)),
    ]
}

fn namespace_summary(ns: &str, counters: &NamespaceStats) -> String {
    key_values(&[
        ("namespace", ns.to_owned()),
        ("total_keys", counters.total_keys.to_string()),
        ("cache_hits", counters.cache_hits.to_string()),
        ("cache_misses", counters.cache_misses.to_string()),
    ])
}

fn counter_row(ns: &str, c: &NamespaceStats) -> Vec<String> {
    vec![
        ns.to_owned(),
        c.total_keys.to_string(),
        c.cache_hits.to_string(),
        c.cache_misses.to_string(),
    ]
}

fn counters_table(rows: Vec<Vec<String>>) -> String {
    table(
        &["NAMESPACE", "KEYS", "HITS", "MISSES"],
        &rows,
        &[false, true, true, true],
    )
}

/// `name  value` lines, the values aligned.
fn key_values(pairs: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
        .collect();
    render(&rows, &[false, false])
}

/// A table with a header row; `right[i]` right-aligns column `i` (numbers).
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut all = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    all.extend_from_slice(rows);
    render(&all, right)
}

/// Columns padded to their widest cell (in characters), two spaces apart,
/// no trailing spaces.
fn render(rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| pad(cell, widths[i], right.get(i).copied().unwrap_or(false)))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}

fn pad(cell: &str, width: usize, right: bool) -> String {
    if right {
        format!("{cell:>width$}")
    } else {
        format!("{cell:<width$}")
    }
}

/// A Unix time in seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix_seconds: f64) -> String {
    let secs = unix_seconds.floor() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02} UTC")
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.5), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_627_241.678), "2026-11-25 17:20:41 UTC");
    }

    #[test]
    fn aligns_columns() {
        let rows = vec![
            vec!["a".into(), "1".into()],
            vec!["long".into(), "100".into()],
        ];
        let text = table(&["NS", "KEYS"], &rows, &[false, true]);
        assert_eq!(text, "NS    KEYS\na        1\nlong   100");
    }

    #[test]
    fn strings_print_plainly() {
        assert_eq!(value_text(&Value::from("a b")), "a b");
        assert_eq!(value_text(&serde_json::json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(value_text(&Value::from(42)), "42");
    }
}
