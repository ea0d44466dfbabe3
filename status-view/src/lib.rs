//! Showing Mist's status report to a person; start at [`render_table`], the table of
//! `mistd status` and `mistpipe status`. Next to it, [`progress_line`] is the one line
//! `mistd demo` shows while it converges.
//!
//! Everything reads the typed report of the API contract ([`StatusReport`], what
//! `mistd status --json` prints and `GET /v1/status` serves to admins), so what a person
//! reads is exactly what a script reads, whether the report came from the database or over
//! HTTP. Missing values (no commit yet, a job without a game) are shown as `-`.
//!
//! **Architecture Invariant:** this crate depends on `mist-wire` alone, so the admin's CLI
//! can share it without depending on the server.

#![deny(missing_docs)]

use std::fmt::Write as _;

use mist_wire::status::{JobProgress, JobState, Phase, QueueEntry, StatusError, StatusReport};

/// Versions Ready out of all versions of games that are not suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadyCount {
    /// Versions whose `ready` is true.
    pub ready: usize,
    /// All versions.
    pub total: usize,
}

/// Counts Ready versions in a status report.
pub fn ready_count(report: &StatusReport) -> ReadyCount {
    let mut count = ReadyCount::default();
    for game in &report.games {
        for version in &game.versions {
            count.total += 1;
            if version.ready {
                count.ready += 1;
            }
        }
    }
    count
}

/// Every Stalled version as `game version: Reason: message`, in the report's order; what
/// needs an admin's attention.
pub fn stalled_versions(report: &StatusReport) -> Vec<String> {
    let mut lines = Vec::new();
    for game in &report.games {
        for version in &game.versions {
            if version.status != Phase::Stalled {
                continue;
            }
            let mut line = format!("{} {}", game.name, version.name);
            for value in [&version.reason, &version.message] {
                if !value.is_empty() {
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
pub fn progress_line(report: &StatusReport) -> String {
    let count = ready_count(report);
    if count.total == 0 && report.queue.is_empty() {
        return "reading the specs and looking at the NAS …".to_string();
    }
    let mut line = format!("{}/{} versions ready", count.ready, count.total);
    let running: Vec<&QueueEntry> = report
        .queue
        .iter()
        .filter(|job| job.state == JobState::Running)
        .collect();
    for job in running.iter().take(2) {
        let _ = write!(line, " · {}", describe_job(job));
    }
    if running.len() > 2 {
        let _ = write!(line, " · {} more running", running.len() - 2);
    }
    let n_waiting = report
        .queue
        .iter()
        .filter(|job| matches!(job.state, JobState::Queued | JobState::Failed))
        .count();
    if n_waiting > 0 {
        let _ = write!(line, " · {n_waiting} queued");
    }
    line
}

/// The readable form of a status report: the spec commit and its errors, a table of games
/// and versions, and the queue.
pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Specs: commit {}, last applied {}, last attempted {}",
        short_commit(report.commit.as_deref()),
        short_commit(report.last_applied_revision.as_deref()),
        short_commit(report.last_attempted_revision.as_deref()),
    );
    if !report.errors.is_empty() {
        let _ = writeln!(out, "Errors ({}):", report.errors.len());
        for error in &report.errors {
            let _ = writeln!(out, "  {}", one_line(error));
        }
    }

    let _ = writeln!(out);
    if report.games.is_empty() {
        let _ = writeln!(out, "No games yet.");
    } else {
        write_table(&mut out, &version_rows(report));
        let count = ready_count(report);
        let _ = writeln!(out, "{}/{} versions ready", count.ready, count.total);
    }

    let _ = writeln!(out);
    if report.queue.is_empty() {
        let _ = writeln!(out, "Queue: empty");
    } else {
        let _ = writeln!(out, "Queue ({} jobs):", report.queue.len());
        write_table(&mut out, &queue_rows(&report.queue));
    }
    out
}

/// The games table: a header, then a row per version (or per game without versions).
fn version_rows(report: &StatusReport) -> Vec<[String; 7]> {
    let mut rows = vec![
        [
            "GAME", "VERSION", "READY", "STATUS", "REASON", "PROGRESS", "MESSAGE",
        ]
        .map(str::to_string),
    ];
    for game in &report.games {
        let game_cell = if game.suspended {
            format!("{} (suspended)", game.name)
        } else {
            game.name.clone()
        };
        if game.versions.is_empty() {
            rows.push([
                game_cell.clone(),
                "-".to_string(),
                "-".to_string(),
                if game.suspended { "Suspended" } else { "-" }.to_string(),
                "-".to_string(),
                "-".to_string(),
                "no versions".to_string(),
            ]);
        }
        for (version_idx, version) in game.versions.iter().enumerate() {
            rows.push([
                if version_idx == 0 {
                    game_cell.clone()
                } else {
                    String::new()
                },
                version.name.clone(),
                if version.ready { "yes" } else { "no" }.to_string(),
                version.status.to_string(),
                version.reason.clone(),
                version
                    .progress
                    .as_ref()
                    .and_then(describe_progress)
                    .unwrap_or_else(|| "-".to_string()),
                version.message.clone(),
            ]);
        }
    }
    rows
}

/// The queue table: a header, then a row per job.
fn queue_rows(queue: &[QueueEntry]) -> Vec<[String; 7]> {
    let mut rows = vec![
        [
            "KIND",
            "GAME",
            "VERSION",
            "STATE",
            "ATTEMPTS",
            "PROGRESS",
            "LAST ERROR",
        ]
        .map(str::to_string),
    ];
    for job in queue {
        rows.push([
            job.kind.to_string(),
            job.game.clone().unwrap_or_else(|| "-".to_string()),
            job.version.clone().unwrap_or_else(|| "-".to_string()),
            job.state.to_string(),
            job.attempts.to_string(),
            describe_progress(&job.progress).unwrap_or_else(|| "-".to_string()),
            job.last_error.clone().unwrap_or_default(),
        ]);
    }
    rows
}

/// `kind game version: stage done / total`, for one queue entry.
pub fn describe_job(job: &QueueEntry) -> String {
    let mut description = job.kind.to_string();
    for value in [&job.game, &job.version].into_iter().flatten() {
        description.push(' ');
        description.push_str(value);
    }
    if let Some(progress) = describe_progress(&job.progress) {
        let _ = write!(description, ": {progress}");
    }
    description
}

/// A job's progress as `stage 12.3 MB / 40.0 MB`; `None` when there is nothing to show.
pub fn describe_progress(progress: &JobProgress) -> Option<String> {
    let stage = Some(progress.stage.as_str()).filter(|stage| !stage.is_empty());
    let amounts = if progress.total > 0 {
        Some(format!(
            "{} / {}",
            human_size(progress.done),
            human_size(progress.total)
        ))
    } else if progress.done > 0 {
        Some(human_size(progress.done))
    } else {
        None
    };
    match (stage, amounts) {
        (Some(stage), Some(amounts)) => Some(format!("{stage} {amounts}")),
        (Some(stage), None) => Some(stage.to_string()),
        (None, Some(amounts)) => Some(amounts),
        (None, None) => None,
    }
}

pub use mist_platform::units::human_size;

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

/// A commit id's first 12 characters, `-` for none.
fn short_commit(commit: Option<&str>) -> &str {
    commit.map_or("-", |commit| &commit[..commit.len().min(12)])
}

/// An error entry on one line: `file:line:column: message (hint)`.
fn one_line(error: &StatusError) -> String {
    let mut line = String::new();
    if let Some(file) = &error.file {
        line.push_str(file);
        for number in [error.line, error.column].into_iter().flatten() {
            let _ = write!(line, ":{number}");
        }
        line.push_str(": ");
    }
    line.push_str(&error.message);
    if let Some(hint) = &error.hint {
        let _ = write!(line, " ({hint})");
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report() -> StatusReport {
        serde_json::from_value(json!({
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
                     "progress": {"kind": "delta", "stage": "diffing", "stageIndex": 1, "done": 12_300_000, "total": 40_000_000}}
                ]},
                {"name": "lantern", "suspended": true, "versions": []}
            ],
            "queue": [
                {"key": "delta:a:b", "kind": "delta", "game": "starfall", "version": "1.0.1", "state": "running", "attempts": 0,
                 "lastError": null, "nextAttemptAt": 0,
                 "progress": {"kind": "delta", "stage": "diffing", "stageIndex": 1, "done": 12_300_000, "total": 40_000_000}},
                {"key": "pack:c", "kind": "pack", "game": "starfall", "version": "1.0.1", "state": "queued", "attempts": 0,
                 "lastError": null, "nextAttemptAt": 0,
                 "progress": {"kind": "pack", "stage": "", "stageIndex": 0, "done": 0, "total": 0}}
            ]
        }))
        .unwrap()
    }

    fn empty_report() -> StatusReport {
        StatusReport {
            commit: None,
            last_applied_revision: None,
            last_attempted_revision: None,
            errors: Vec::new(),
            games: Vec::new(),
            queue: Vec::new(),
        }
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
            progress_line(&empty_report()),
            "reading the specs and looking at the NAS …"
        );
    }

    #[test]
    fn an_empty_report_still_renders() {
        let table = render_table(&empty_report());
        assert!(table.contains("commit -"), "{table}");
        assert!(table.contains("No games yet."), "{table}");
        assert!(table.contains("Queue: empty"), "{table}");
    }
}
