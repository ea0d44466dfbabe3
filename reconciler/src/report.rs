//! The status report ([`StatusReport`], defined by the API contract `mist_wire`): what
//! `mistd status --json` prints and the API serves to admins.
//!
//! It is read from the database only (conditions, the sync state, revisions, jobs), so any
//! process with a read-only handle can produce it while the reconciler runs elsewhere.
//!
//! ```json
//! {
//!   "commit": "<full id of the tip seen>",
//!   "lastAppliedRevision": "<full id of the commit in force>",
//!   "lastAttemptedRevision": "<full id of the last commit tried>",
//!   "errors": [{"file": "games/x/game.yaml", "line": 3, "column": 1, "message": "…"}],
//!   "games": [{"name": "celeste", "suspended": false, "versions": [
//!     {"name": "1.0", "ready": true, "status": "Ready", "reason": "Ready", "message": "…",
//!      "progress": null}]}],
//!   "queue": [{"key": "pack:blake3:…", "kind": "pack", "game": "celeste", "version": "1.1",
//!              "state": "running", "attempts": 0, "lastError": null, "nextAttemptAt": 0,
//!              "progress": {"stage": "pack", "stageIndex": 1, "done": 1024, "total": 4096}}]
//! }
//! ```

use std::collections::HashMap;

use mist_db::Db;
use mist_db::conditions::{Condition, ConditionStatus, ConditionType, ObjectKind};
use mist_db::queue::{Job, JobState};
use mist_db::snapshot::Snapshot;
use mist_db::state::Outcome;
use mist_wire::status::JobState as WireJobState;
use mist_wire::status::{
    GameStatus, JobKind, JobProgress, MetadataStale, Phase, QueueEntry, StatusError, StatusReport,
    VersionStatus,
};

/// Reads the status from the database.
pub async fn report(db: &Db) -> Result<StatusReport, mist_db::Error> {
    let snapshot = db.load_snapshot().await?;
    let sync_state = &snapshot.sync_state;
    let mut errors = Vec::new();
    if let Some(attempted) = &sync_state.last_attempted_commit
        && let Some(revision) = db.revision(attempted).await?
        && revision.outcome == Outcome::Failed
    {
        errors.extend(revision_errors(&revision.errors_json));
    }
    errors.extend(read_errors(&snapshot));
    Ok(StatusReport {
        commit: sync_state.observed_commit.clone(),
        last_applied_revision: sync_state.last_applied_commit.clone(),
        last_attempted_revision: sync_state.last_attempted_commit.clone(),
        errors,
        games: games(&snapshot),
        queue: queue(&snapshot),
    })
}

/// The errors a failed revision recorded (as JSON; a text that does not parse is shown
/// as one message).
fn revision_errors(errors_json: &str) -> Vec<StatusError> {
    serde_json::from_str::<Vec<StatusError>>(errors_json).unwrap_or_else(|_| {
        vec![StatusError {
            file: None,
            line: None,
            column: None,
            message: errors_json.to_owned(),
            hint: None,
        }]
    })
}

/// Why the spec repository could not be read at all, if it could not.
fn read_errors(snapshot: &Snapshot) -> impl Iterator<Item = StatusError> + '_ {
    snapshot
        .conditions
        .iter()
        .filter(|condition| {
            condition.object.kind == ObjectKind::Specs
                && condition.condition_type == ConditionType::Ready
                && condition.status == ConditionStatus::False
                && condition.reason == "ReadFailed"
        })
        .map(|condition| StatusError {
            file: None,
            line: None,
            column: None,
            message: condition.message.clone(),
            hint: None,
        })
}

/// A version's Ready, Reconciling and Stalled conditions, any of which may be missing.
type VersionConditions<'a> = [Option<&'a Condition>; 3];

/// Every game with its versions' phases, reasons and running work.
fn games(snapshot: &Snapshot) -> Vec<GameStatus> {
    let mut conditions: HashMap<&str, VersionConditions<'_>> = HashMap::new();
    let mut metadata_stale: HashMap<&str, MetadataStale> = HashMap::new();
    for condition in &snapshot.conditions {
        if condition.object.kind == ObjectKind::Game
            && condition.condition_type == ConditionType::MetadataStale
            && condition.status == ConditionStatus::True
        {
            metadata_stale.insert(
                condition.object.name.as_str(),
                MetadataStale {
                    reason: condition.reason.clone(),
                    message: condition.message.clone(),
                    since: condition.since,
                },
            );
        }
        if condition.object.kind != ObjectKind::Version {
            continue;
        }
        let slot = match condition.condition_type {
            ConditionType::Ready => 0,
            ConditionType::Reconciling => 1,
            ConditionType::Stalled => 2,
            ConditionType::MetadataStale => continue,
        };
        conditions
            .entry(condition.object.name.as_str())
            .or_default()[slot] = Some(condition);
    }
    let mut running: HashMap<(&str, &str), &Job> = HashMap::new();
    for job in &snapshot.jobs {
        if job.state == JobState::Running
            && let (Some(game), Some(version)) = (&job.game, &job.version)
        {
            running
                .entry((game.as_str(), version.as_str()))
                .or_insert(job);
        }
    }

    let mut games: Vec<GameStatus> = snapshot
        .games
        .iter()
        .map(|game| GameStatus {
            name: game.name.clone(),
            suspended: game.suspended,
            metadata_stale: metadata_stale.remove(game.name.as_str()),
            versions: Vec::new(),
        })
        .collect();
    let game_idx: HashMap<String, usize> = games
        .iter()
        .enumerate()
        .map(|(idx, game)| (game.name.clone(), idx))
        .collect();
    for version in &snapshot.versions {
        let Some(&idx) = game_idx.get(&version.spec.game) else {
            continue;
        };
        let name = format!("{}/{}", version.spec.game, version.spec.name);
        let mut status = version_status(conditions.get(name.as_str()).copied().unwrap_or_default());
        status.name = version.spec.name.clone();
        status.progress = running
            .get(&(version.spec.game.as_str(), version.spec.name.as_str()))
            .and_then(|job| progress_of(job));
        games[idx].versions.push(status);
    }
    games
}

/// A version's phase, reason and message from its conditions (name and progress empty).
fn version_status([ready, reconciling, stalled]: VersionConditions<'_>) -> VersionStatus {
    let is_true = |condition: Option<&Condition>| {
        condition.is_some_and(|c| c.status == ConditionStatus::True)
    };
    let status = if is_true(ready) {
        Phase::Ready
    } else if is_true(stalled) {
        Phase::Stalled
    } else if is_true(reconciling) {
        Phase::Reconciling
    } else if ready.is_some() {
        Phase::Inactive
    } else {
        Phase::Unknown
    };
    let (reason, message) = ready
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_else(|| ("Unknown".to_string(), "not reconciled yet".to_string()));
    VersionStatus {
        name: String::new(),
        ready: is_true(ready),
        status,
        reason,
        message,
        progress: None,
    }
}

/// Every job that is not done, running ones first, then by when they may run.
fn queue(snapshot: &Snapshot) -> Vec<QueueEntry> {
    let mut queue: Vec<QueueEntry> = snapshot
        .jobs
        .iter()
        .filter_map(|job| {
            Some(QueueEntry {
                key: job.key.clone(),
                kind: job_kind(job)?,
                game: job.game.clone(),
                version: job.version.clone(),
                state: job_state(job.state),
                attempts: job.attempts,
                last_error: job.last_error.clone(),
                next_attempt_at: job.next_attempt_at,
                progress: progress_of(job)?,
                log_lines: job.log_seq,
            })
        })
        .collect();
    queue.sort_by(|a, b| {
        (a.state != WireJobState::Running, a.next_attempt_at, &a.key).cmp(&(
            b.state != WireJobState::Running,
            b.next_attempt_at,
            &b.key,
        ))
    });
    queue
}

fn progress_of(job: &Job) -> Option<JobProgress> {
    Some(JobProgress {
        kind: job_kind(job)?,
        stage: job.progress.stage.clone(),
        stage_index: job.progress.stage_index,
        done: job.progress.done,
        total: job.progress.total,
    })
}

/// The kind of a queued job. Only the reconciler writes jobs, with the kinds of
/// [`JobKind`]; a kind this version does not know (written by a newer Mist sharing the
/// database) is logged and the job left out of the report, which cannot describe it.
fn job_kind(job: &Job) -> Option<JobKind> {
    let kind = JobKind::parse(&job.kind);
    if kind.is_none() {
        tracing::warn!(key = %job.key, kind = %job.kind, "a job of an unknown kind");
    }
    kind
}

fn job_state(state: JobState) -> WireJobState {
    match state {
        JobState::Queued => WireJobState::Queued,
        JobState::Running => WireJobState::Running,
        JobState::Done => WireJobState::Done,
        JobState::Failed => WireJobState::Failed,
        JobState::Terminal => WireJobState::Terminal,
    }
}
