//! The status report: what `mistd status --json` prints and the API serves to admins.
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
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectKind};
use mist_db::queue::{Job, JobState};
use mist_db::state::Outcome;
use serde::{Deserialize, Serialize};

/// The whole status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The commit at the tip of the branch when last looked at.
    pub commit: Option<String>,
    /// The commit in force: the last one that loaded and validated.
    pub last_applied_revision: Option<String>,
    /// The last commit tried, whatever the outcome.
    pub last_attempted_revision: Option<String>,
    /// Every error of the last commit tried (empty when it applied), and a read error when
    /// the repository could not be read at all.
    pub errors: Vec<StatusError>,
    /// Every game the database knows, by name.
    pub games: Vec<GameStatus>,
    /// Every job that is not done, most urgent first.
    pub queue: Vec<QueueEntry>,
}

/// One error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusError {
    /// The spec file, relative to the repository root; `None` for a read error.
    #[serde(default)]
    pub file: Option<String>,
    /// 1-based line, when known.
    #[serde(default)]
    pub line: Option<u32>,
    /// 1-based column, when known.
    #[serde(default)]
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// One game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameStatus {
    /// The game's name.
    pub name: String,
    /// `suspend: true`: the reconciler leaves it as it is.
    pub suspended: bool,
    /// Its versions, in version order.
    pub versions: Vec<VersionStatus>,
}

/// One version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// The version's name.
    pub name: String,
    /// Served to friends.
    pub ready: bool,
    /// `Ready`, `Reconciling`, `Stalled`, `Inactive` (retired or pruned) or `Unknown` (no
    /// condition yet).
    pub status: String,
    /// A stable reason, e.g. `DigestMismatch`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// The progress of a job running for this version, if any.
    pub progress: Option<JobProgress>,
}

/// Progress of a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// The job kind: `ingest`, `pack`, `delta` or `prune`.
    pub kind: String,
    /// The stage, e.g. `scan`.
    pub stage: String,
    /// The stage's position among the kind's stages, 0 first.
    pub stage_index: u32,
    /// Units (bytes, mostly) done in this stage.
    pub done: u64,
    /// Units in this stage.
    pub total: u64,
}

/// One job that is not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntry {
    /// The content-derived key.
    pub key: String,
    /// The job kind.
    pub kind: String,
    /// The game it is for.
    pub game: Option<String>,
    /// The version it is for.
    pub version: Option<String>,
    /// `queued`, `running`, `failed` (waiting for a retry) or `terminal`.
    pub state: String,
    /// Attempts that failed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the job may next be claimed (epoch milliseconds).
    pub next_attempt_at: i64,
    /// The progress of the current (or last) attempt.
    pub progress: JobProgress,
}

/// Reads the status from the database.
pub async fn report(db: &Db) -> Result<StatusReport, mist_db::Error> {
    let snapshot = db.load_snapshot().await?;
    let sync_state = &snapshot.sync_state;

    let mut errors = Vec::new();
    if let Some(attempted) = &sync_state.last_attempted_commit
        && let Some(revision) = db.revision(attempted).await?
        && revision.outcome == Outcome::Failed
    {
        match serde_json::from_str::<Vec<StatusError>>(&revision.errors_json) {
            Ok(list) => errors.extend(list),
            Err(_) => errors.push(StatusError {
                file: None,
                line: None,
                column: None,
                message: revision.errors_json.clone(),
                hint: None,
            }),
        }
    }
    for condition in &snapshot.conditions {
        if condition.object.kind == ObjectKind::Specs
            && condition.condition_type == ConditionType::Ready
            && condition.status == ConditionStatus::False
            && condition.reason == "ReadFailed"
        {
            errors.push(StatusError {
                file: None,
                line: None,
                column: None,
                message: condition.message.clone(),
                hint: None,
            });
        }
    }

    // Conditions by version object name, and running jobs by version.
    let mut conditions: HashMap<&str, [Option<&mist_db::conditions::Condition>; 3]> =
        HashMap::new();
    for condition in &snapshot.conditions {
        if condition.object.kind != ObjectKind::Version {
            continue;
        }
        let slot = match condition.condition_type {
            ConditionType::Ready => 0,
            ConditionType::Reconciling => 1,
            ConditionType::Stalled => 2,
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
        let [ready, reconciling, stalled] =
            conditions.get(name.as_str()).copied().unwrap_or_default();
        let is_true = |condition: Option<&mist_db::conditions::Condition>| {
            condition.is_some_and(|c| c.status == ConditionStatus::True)
        };
        let status = if is_true(ready) {
            "Ready"
        } else if is_true(stalled) {
            "Stalled"
        } else if is_true(reconciling) {
            "Reconciling"
        } else if ready.is_some() {
            "Inactive"
        } else {
            "Unknown"
        };
        let (reason, message) = ready
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_else(|| ("Unknown".to_string(), "not reconciled yet".to_string()));
        let progress = running
            .get(&(version.spec.game.as_str(), version.spec.name.as_str()))
            .map(|job| progress_of(job));
        games[idx].versions.push(VersionStatus {
            name: version.spec.name.clone(),
            ready: is_true(ready),
            status: status.to_string(),
            reason,
            message,
            progress,
        });
    }

    let mut queue: Vec<QueueEntry> = snapshot
        .jobs
        .iter()
        .map(|job| QueueEntry {
            key: job.key.clone(),
            kind: job.kind.clone(),
            game: job.game.clone(),
            version: job.version.clone(),
            state: job.state.to_string(),
            attempts: job.attempts,
            last_error: job.last_error.clone(),
            next_attempt_at: job.next_attempt_at,
            progress: progress_of(job),
        })
        .collect();
    queue.sort_by(|a, b| {
        (a.state != "running", a.next_attempt_at, &a.key).cmp(&(
            b.state != "running",
            b.next_attempt_at,
            &b.key,
        ))
    });

    Ok(StatusReport {
        commit: sync_state.observed_commit.clone(),
        last_applied_revision: sync_state.last_applied_commit.clone(),
        last_attempted_revision: sync_state.last_attempted_commit.clone(),
        errors,
        games,
        queue,
    })
}

fn progress_of(job: &Job) -> JobProgress {
    JobProgress {
        kind: job.kind.clone(),
        stage: job.progress.stage.clone(),
        stage_index: job.progress.stage_index,
        done: job.progress.done,
        total: job.progress.total,
    }
}
