//! Showing Mist's status report to a person; start at [`render_table`], the table of
//! `mistd status` and `mistpipe status`. Next to it, [`progress_line`] is the one line
//! `mistd demo` shows while it converges.
//!
//! Everything reads the report through its JSON form (the documented contract of
//! `mistd status --json` and `GET /v1/status`: `commit`, `lastAppliedRevision`,
//! `lastAttemptedRevision`, `errors`, `games[].versions[].{name, ready, reason, message,
//! progress}`, `queue`), so what a person reads is exactly what a script reads, whether the
//! report came from the database or over HTTP. Unknown or missing fields are shown as `-`
//! rather than failing: the status is for diagnosing, and must show what it can.
//!
//! **Architecture Invariant:** this crate depends on `serde_json` alone, so the admin's CLI
//! can share it without depending on the server.

#![deny(missing_docs)]

use std::fmt::Write as _;

use serde_json::Value;

/// Versions Ready out of all versions of games that are not suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadyCount {
    /// Versions whose `ready` is true.
    pub ready: usize,
    /// All versions.
    pub total: usize,
}

/// Counts Ready versions in a status report.
pub fn ready_count(report: &Value) -> ReadyCount {
    let mut count = ReadyCount::default();
    for game in array(report, "games") {
        for version in array(game, "versions") {
            count.total += 1;
            if version.get("ready").and_then(Value::as_bool) == Some(true) {
                count.ready += 1;
            }
        }
    }
    count
}

/// Every Stalled version as `game version: Reason: message`, in the report's order; what
/// needs an admin's attention.
pub fn stalled_versions(report: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for game in array(report, "games") {
        let game_name = text(game, "name").unwrap_or("-");
        for version in array(game, "versions") {
            if text(version, "status") != Some("Stalled") {
                continue;
            }
            let mut line = format!("{game_name} {}", text(version, "name").unwrap_or("-"));
            for key in ["reason", "message"] {
                if let Some(value) = text(version, key).filter(|value| !value.is_empty()) {
                    let _ = write!(line, ": {value}");
                }
            }
            lines.push(line);
        }
    }
    lines
}

/// One line saying where a reconcile stands: Ready versions, then the work under way, e.g.
/// `7/11 versions ready · delta starfall 1.1.0: diffing 12.3 MB / 40.0 MB · 3 jobs queued`.
pub fn progress_line(report: &Value) -> String {
    let count = ready_count(report);
    if count.total == 0 && array(report, "queue").is_empty() {
        return "reading the specs and looking at the NAS …".to_string();
    }
    let mut line = format!("{}/{} versions ready", count.ready, count.total);
    let queue = array(report, "queue");
    let running: Vec<&Value> = queue
        .iter()
        .filter(|job| text(job, "state") == Some("running"))
        .collect();
    for job in running.iter().take(2) {
        let _ = write!(line, " · {}", describe_job(job));
    }
    if running.len() > 2 {
        let _ = write!(line, " · {} more running", running.len() - 2);
    }
    let n_waiting = queue
        .iter()
        .filter(|job| matches!(text(job, "state"), Some("queued" | "failed")))
        .count();
    if n_waiting > 0 {
        let _ = write!(line, " · {n_waiting} queued");
    }
    line
}

/// The readable form of a status report: the spec commit and its errors, a table of games
/// and versions, and the queue.
pub fn render_table(report: &Value) -> String {
    let mut out = String::new();
    let commit = |key: &str| text(report, key).map(short_commit).unwrap_or("-");
    let _ = writeln!(
        out,
        "Specs: commit {}, last applied {}, last attempted {}",
        commit("commit"),
        commit("lastAppliedRevision"),
        commit("lastAttemptedRevision"),
    );
    let errors = array(report, "errors");
    if !errors.is_empty() {
        let _ = writeln!(out, "Errors ({}):", errors.len());
        for error in errors {
            let _ = writeln!(out, "  {}", one_line(error));
        }
    }

    let _ = writeln!(out);
    let mut rows = vec![[
        "GAME".to_string(),
        "VERSION".to_string(),
        "READY".to_string(),
        "STATUS".to_string(),
        "REASON".to_string(),
        "PROGRESS".to_string(),
        "MESSAGE".to_string(),
    ]];
    let games = array(report, "games");
    for game in games {
        let name = text(game, "name").unwrap_or("-");
        let suspended = game.get("suspended").and_then(Value::as_bool) == Some(true);
        let versions = array(game, "versions");
        if versions.is_empty() {
            rows.push([
                if suspended {
                    format!("{name} (suspended)")
                } else {
                    name.to_string()
                },
                "-".to_string(),
                "-".to_string(),
                if suspended { "Suspended" } else { "-" }.to_string(),
                "-".to_string(),
                "-".to_string(),
                "no versions".to_string(),
            ]);
        }
        for (version_idx, version) in versions.iter().enumerate() {
            let game_cell = match (version_idx, suspended) {
                (0, true) => format!("{name} (suspended)"),
                (0, false) => name.to_string(),
                _ => String::new(),
            };
            let ready = match version.get("ready").and_then(Value::as_bool) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            rows.push([
                game_cell,
                text(version, "name").unwrap_or("-").to_string(),
                ready.to_string(),
                text(version, "status").unwrap_or("-").to_string(),
                text(version, "reason").unwrap_or("-").to_string(),
                version
                    .get("progress")
                    .and_then(describe_progress)
                    .unwrap_or_else(|| "-".to_string()),
                text(version, "message").unwrap_or("").to_string(),
            ]);
        }
    }
    if games.is_empty() {
        let _ = writeln!(out, "No games yet.");
    } else {
        write_table(&mut out, &rows);
        let count = ready_count(report);
        let _ = writeln!(out, "{}/{} versions ready", count.ready, count.total);
    }

    let queue = array(report, "queue");
    let _ = writeln!(out);
    if queue.is_empty() {
        let _ = writeln!(out, "Queue: empty");
    } else {
        let _ = writeln!(out, "Queue ({} jobs):", queue.len());
        let mut rows = vec![[
            "KIND".to_string(),
            "GAME".to_string(),
            "VERSION".to_string(),
            "STATE".to_string(),
            "ATTEMPTS".to_string(),
            "PROGRESS".to_string(),
            "LAST ERROR".to_string(),
        ]];
        for job in queue {
            rows.push([
                text(job, "kind").unwrap_or("-").to_string(),
                text(job, "game").unwrap_or("-").to_string(),
                text(job, "version").unwrap_or("-").to_string(),
                text(job, "state").unwrap_or("-").to_string(),
                job.get("attempts")
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                job.get("progress")
                    .and_then(describe_progress)
                    .unwrap_or_else(|| "-".to_string()),
                text(job, "lastError").unwrap_or("").to_string(),
            ]);
        }
        write_table(&mut out, &rows);
    }
    out
}

/// `kind game version: stage done / total`, for one queue entry.
pub fn describe_job(job: &Value) -> String {
    let mut description = text(job, "kind").unwrap_or("job").to_string();
    for key in ["game", "version"] {
        if let Some(value) = text(job, key) {
            description.push(' ');
            description.push_str(value);
        }
    }
    if let Some(progress) = job.get("progress").and_then(describe_progress) {
        let _ = write!(description, ": {progress}");
    }
    description
}

/// A progress object (`stage`, `done`, `total`) as `stage 12.3 MB / 40.0 MB`; `None` for
/// null or an object with nothing to show.
pub fn describe_progress(progress: &Value) -> Option<String> {
    match progress {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Object(_) => {
            let stage = text(progress, "stage").filter(|s| !s.is_empty());
            let done = progress.get("done").and_then(Value::as_u64);
            let total = progress.get("total").and_then(Value::as_u64);
            let amounts = match (done, total) {
                (Some(done), Some(total)) if total > 0 => {
                    Some(format!("{} / {}", human_size(done), human_size(total)))
                }
                (Some(done), _) if done > 0 => Some(human_size(done)),
                _ => None,
            };
            match (stage, amounts) {
                (Some(stage), Some(amounts)) => Some(format!("{stage} {amounts}")),
                (Some(stage), None) => Some(stage.to_string()),
                (None, Some(amounts)) => Some(amounts),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

/// Bytes in decimal units with one decimal, e.g. `12.3 MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit_idx = 0;
    while value >= 1000.0 && unit_idx + 1 < UNITS.len() {
        value /= 1000.0;
        unit_idx += 1;
    }
    format!("{value:.1} {}", UNITS[unit_idx])
}

fn write_table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for row in rows {
        for (column_idx, cell) in row.iter().enumerate() {
            widths[column_idx] = widths[column_idx].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (column_idx, cell) in row.iter().enumerate() {
            if column_idx + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column_idx]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// An error entry on one line: `file:line:column: message (hint)` for the status's error
/// objects; a plain string as it is.
fn one_line(error: &Value) -> String {
    match error {
        Value::String(message) => message.clone(),
        Value::Object(_) => {
            let mut line = String::new();
            if let Some(file) = text(error, "file") {
                line.push_str(file);
                for key in ["line", "column"] {
                    if let Some(number) = error.get(key).and_then(Value::as_u64) {
                        let _ = write!(line, ":{number}");
                    }
                }
                line.push_str(": ");
            }
            line.push_str(text(error, "message").unwrap_or("(no message)"));
            if let Some(hint) = text(error, "hint") {
                let _ = write!(line, " ({hint})");
            }
            line
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "lastAppliedRevision": "0123456789abcdef0123456789abcdef01234567",
            "lastAttemptedRevision": "fedcba9876543210fedcba9876543210fedcba98",
            "errors": [{"file": "games/x/game.yaml", "line": 3, "column": 1,
                        "message": "unknown field `titel`", "hint": "did you mean `title`?"},
                       {"file": null, "message": "cannot fetch the remote"}],
            "games": [
                {"name": "starfall", "suspended": false, "versions": [
                    {"name": "1.0.0", "ready": true, "status": "Ready", "reason": "Ready", "message": "", "progress": null},
                    {"name": "1.0.1", "ready": false, "status": "Reconciling", "reason": "Progressing", "message": "making the delta from 1.0.0",
                     "progress": {"stage": "diffing", "done": 12_300_000, "total": 40_000_000}}
                ]},
                {"name": "lantern", "suspended": true, "versions": []}
            ],
            "queue": [
                {"kind": "delta", "game": "starfall", "version": "1.0.1", "state": "running", "attempts": 0,
                 "progress": {"stage": "diffing", "done": 12_300_000, "total": 40_000_000}},
                {"kind": "pack", "game": "starfall", "version": "1.0.1", "state": "queued", "attempts": 0}
            ]
        })
    }

    #[test]
    fn the_table_shows_every_version_and_job() {
        let table = render_table(&report());
        let expected = "\
Specs: commit 0123456789ab, last applied 0123456789ab, last attempted fedcba987654
Errors (2):
  games/x/game.yaml:3:1: unknown field `titel` (did you mean `title`?)
  cannot fetch the remote

GAME                 VERSION  READY  STATUS       REASON       PROGRESS                   MESSAGE
starfall             1.0.0    yes    Ready        Ready        -
                     1.0.1    no     Reconciling  Progressing  diffing 12.3 MB / 40.0 MB  making the delta from 1.0.0
lantern (suspended)  -        -      Suspended    -            -                          no versions
1/2 versions ready

Queue (2 jobs):
KIND   GAME      VERSION  STATE    ATTEMPTS  PROGRESS                   LAST ERROR
delta  starfall  1.0.1    running  0         diffing 12.3 MB / 40.0 MB
pack   starfall  1.0.1    queued   0         -
";
        assert_eq!(table, expected);
    }

    #[test]
    fn the_progress_line_counts_ready_versions_and_names_the_running_job() {
        assert_eq!(
            progress_line(&report()),
            "1/2 versions ready · delta starfall 1.0.1: diffing 12.3 MB / 40.0 MB · 1 queued"
        );
        assert_eq!(
            progress_line(&json!({})),
            "reading the specs and looking at the NAS …"
        );
    }

    #[test]
    fn an_empty_report_still_renders() {
        let table = render_table(&json!({}));
        assert!(table.contains("commit -"), "{table}");
        assert!(table.contains("No games yet."), "{table}");
        assert!(table.contains("Queue: empty"), "{table}");
    }
}
