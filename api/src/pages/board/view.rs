//! What the board's template gets: the [`BoardData`] arranged by section, with reasons in
//! plain words and, for every Stalled version, what the admin should do.

use std::collections::HashMap;

use mist_db::conditions::{Event, ObjectKind};
use mist_db::joblog::JobLog;
use mist_db::queue::Job;
use mist_db::state::{Role, User};
use mist_wire::status::{JobProgress, JobState, Phase, QueueEntry, StatusError, VersionStatus};
use serde::Serialize;

use crate::pages::board::data::BoardData;

/// How many events each game, version and the spec repository show.
const EVENTS_PER_OBJECT: usize = 10;

/// How many of its newest log lines each job shows; the rest are a link away (`GET
/// /v1/jobs/{key}/log`, which the session cookie reads), so a board with many long logs stays
/// light to refresh live.
const LOG_LINES_SHOWN: usize = 50;

/// The whole board.
#[derive(Serialize)]
pub(crate) struct BoardPage<'a> {
    revision: RevisionView<'a>,
    errors: &'a [StatusError],
    summary: Summary,
    games: Vec<GameView<'a>>,
    running: Vec<JobView<'a>>,
    waiting: Vec<JobView<'a>>,
    failed: Vec<JobView<'a>>,
    history: Vec<JobView<'a>>,
    spec_events: Vec<EventView<'a>>,
    users: Vec<UserView<'a>>,
    server: ServerView,
}

/// The spec repository: the commit in force, and the newest one if it was refused.
#[derive(Serialize)]
struct RevisionView<'a> {
    /// The tip of the branch when last looked at.
    observed: Option<&'a str>,
    /// The commit in force.
    applied: Option<&'a str>,
    /// When the commit in force was first seen.
    applied_seen_at: Option<i64>,
    /// The last commit tried, when it is not the one in force: it was refused.
    refused: Option<&'a str>,
}

/// Versions by phase.
#[derive(Serialize, Default)]
struct Summary {
    ready: usize,
    reconciling: usize,
    stalled: usize,
}

#[derive(Serialize)]
struct GameView<'a> {
    name: &'a str,
    suspended: bool,
    versions: Vec<VersionView<'a>>,
    events: Vec<EventView<'a>>,
}

#[derive(Serialize)]
struct VersionView<'a> {
    name: &'a str,
    phase: &'static str,
    /// The stable reason, e.g. `DigestMismatch`.
    reason: &'a str,
    /// The reason in plain words.
    reason_words: &'static str,
    message: &'a str,
    /// For a Stalled version: what the admin should do.
    advice: Option<&'static str>,
    progress: Option<ProgressView<'a>>,
    events: Vec<EventView<'a>>,
}

#[derive(Serialize)]
struct ProgressView<'a> {
    kind: &'static str,
    stage: &'a str,
    stage_index: u32,
    done: u64,
    total: u64,
}

#[derive(Serialize)]
struct JobView<'a> {
    key: &'a str,
    kind: &'a str,
    game: Option<&'a str>,
    version: Option<&'a str>,
    state: &'static str,
    attempts: u32,
    last_error: Option<&'a str>,
    /// When a failed job is retried.
    next_attempt_at: Option<i64>,
    finished_at: Option<i64>,
    progress: Option<ProgressView<'a>>,
    log: Option<LogView<'a>>,
}

/// A job's log: its newest lines, how many lines it keeps, how many of those the board leaves
/// out and how many older ones were dropped.
#[derive(Serialize)]
struct LogView<'a> {
    n_kept: usize,
    n_hidden: usize,
    n_dropped: u64,
    lines: Vec<LineView<'a>>,
}

#[derive(Serialize)]
struct LineView<'a> {
    at: i64,
    level: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct EventView<'a> {
    at: i64,
    severity: &'static str,
    reason: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct UserView<'a> {
    name: &'a str,
    display_name: Option<&'a str>,
    admin: bool,
    disabled: bool,
}

/// The server in numbers.
#[derive(Serialize)]
pub(crate) struct ServerView {
    /// The running version of Mist.
    pub(crate) version: &'static str,
    /// `SQLite` or `Postgres`.
    pub(crate) database: &'static str,
    /// Bytes still free on the NAS, if known.
    pub(crate) nas_free_bytes: Option<u64>,
    /// Artifacts recorded.
    pub(crate) n_artifacts: u64,
    /// Their bytes.
    pub(crate) artifact_bytes: u64,
}

impl<'a> BoardPage<'a> {
    /// The board from `data`, `users` and `server`.
    pub(crate) fn new(
        data: &'a BoardData,
        users: &[&'a User],
        server: ServerView,
    ) -> BoardPage<'a> {
        let report = &data.report;
        let mut events = EventsByObject::new(&data.events);
        let mut summary = Summary::default();
        let games = report
            .games
            .iter()
            .map(|game| GameView {
                name: &game.name,
                suspended: game.suspended,
                versions: game
                    .versions
                    .iter()
                    .map(|version| {
                        summary.count(version.status);
                        let object = format!("{}/{}", game.name, version.name);
                        VersionView::of(version, events.take(ObjectKind::Version, &object))
                    })
                    .collect(),
                events: events.take(ObjectKind::Game, &game.name),
            })
            .collect();
        let queue = |states: &[JobState]| {
            report
                .queue
                .iter()
                .filter(|job| states.contains(&job.state))
                .map(|job| JobView::of_entry(job, data.logs.get(&job.key)))
                .collect::<Vec<_>>()
        };
        BoardPage {
            revision: RevisionView {
                observed: report.commit.as_deref(),
                applied: report.last_applied_revision.as_deref(),
                applied_seen_at: data.applied_seen_at,
                refused: report
                    .last_attempted_revision
                    .as_deref()
                    .filter(|attempted| {
                        Some(*attempted) != report.last_applied_revision.as_deref()
                    }),
            },
            errors: &report.errors,
            summary,
            games,
            running: queue(&[JobState::Running]),
            waiting: queue(&[JobState::Queued]),
            failed: queue(&[JobState::Failed, JobState::Terminal]),
            history: data
                .history
                .iter()
                .map(|job| JobView::of_job(job, data.logs.get(&job.key)))
                .collect(),
            spec_events: events.take_kind(ObjectKind::Specs),
            users: users
                .iter()
                .map(|user| UserView {
                    name: &user.name,
                    display_name: user.display_name.as_deref(),
                    admin: user.role == Role::Admin,
                    disabled: user.disabled,
                })
                .collect(),
            server,
        }
    }
}

impl Summary {
    fn count(&mut self, phase: Phase) {
        match phase {
            Phase::Ready => self.ready += 1,
            Phase::Reconciling => self.reconciling += 1,
            Phase::Stalled => self.stalled += 1,
            Phase::Inactive | Phase::Unknown => {}
        }
    }
}

impl<'a> VersionView<'a> {
    fn of(version: &'a VersionStatus, events: Vec<EventView<'a>>) -> VersionView<'a> {
        VersionView {
            name: &version.name,
            phase: version.status.as_str(),
            reason: &version.reason,
            reason_words: reason_words(&version.reason),
            message: &version.message,
            advice: (version.status == Phase::Stalled).then(|| advice(&version.reason)),
            progress: version.progress.as_ref().map(ProgressView::of),
            events,
        }
    }
}

impl<'a> ProgressView<'a> {
    fn of(progress: &'a JobProgress) -> ProgressView<'a> {
        ProgressView {
            kind: progress.kind.as_str(),
            stage: &progress.stage,
            stage_index: progress.stage_index,
            done: progress.done.min(progress.total),
            total: progress.total,
        }
    }
}

impl<'a> JobView<'a> {
    fn of_entry(job: &'a QueueEntry, log: Option<&'a JobLog>) -> JobView<'a> {
        let retried = matches!(job.state, JobState::Failed);
        JobView {
            key: &job.key,
            kind: job.kind.as_str(),
            game: job.game.as_deref(),
            version: job.version.as_deref(),
            state: job.state.as_str(),
            attempts: job.attempts,
            last_error: job.last_error.as_deref(),
            next_attempt_at: retried.then_some(job.next_attempt_at),
            finished_at: None,
            progress: (job.state == JobState::Running).then(|| ProgressView::of(&job.progress)),
            log: log.map(LogView::of),
        }
    }

    fn of_job(job: &'a Job, log: Option<&'a JobLog>) -> JobView<'a> {
        JobView {
            key: &job.key,
            kind: &job.kind,
            game: job.game.as_deref(),
            version: job.version.as_deref(),
            state: "done",
            attempts: job.attempts,
            last_error: None,
            next_attempt_at: None,
            finished_at: job.finished_at,
            progress: None,
            log: log.map(LogView::of),
        }
    }
}

impl<'a> LogView<'a> {
    fn of(log: &'a JobLog) -> LogView<'a> {
        let n_hidden = log.lines.len().saturating_sub(LOG_LINES_SHOWN);
        LogView {
            n_kept: log.lines.len(),
            n_hidden,
            n_dropped: log.n_dropped(),
            lines: log.lines[n_hidden..]
                .iter()
                .map(|stored| LineView {
                    at: stored.line.at,
                    level: stored.line.level.as_str(),
                    message: &stored.line.message,
                })
                .collect(),
        }
    }
}

/// The events read, by object, handed out once each.
struct EventsByObject<'a> {
    by_object: HashMap<(ObjectKind, String), Vec<EventView<'a>>>,
}

impl<'a> EventsByObject<'a> {
    fn new(events: &'a [Event]) -> EventsByObject<'a> {
        let mut by_object: HashMap<(ObjectKind, String), Vec<EventView<'a>>> = HashMap::new();
        for event in events {
            let list = by_object
                .entry((event.object.kind, event.object.name.clone()))
                .or_default();
            if list.len() < EVENTS_PER_OBJECT {
                list.push(EventView {
                    at: event.at,
                    severity: event.severity.as_str(),
                    reason: &event.reason,
                    message: &event.message,
                });
            }
        }
        EventsByObject { by_object }
    }

    /// The events of one object, newest first.
    fn take(&mut self, kind: ObjectKind, name: &str) -> Vec<EventView<'a>> {
        self.by_object
            .remove(&(kind, name.to_owned()))
            .unwrap_or_default()
    }

    /// The events of every object of a kind, newest first.
    fn take_kind(&mut self, kind: ObjectKind) -> Vec<EventView<'a>> {
        let keys: Vec<(ObjectKind, String)> = self
            .by_object
            .keys()
            .filter(|(object_kind, _)| *object_kind == kind)
            .cloned()
            .collect();
        let mut events: Vec<EventView<'a>> = keys
            .into_iter()
            .flat_map(|key| self.by_object.remove(&key).unwrap_or_default())
            .collect();
        events.sort_by_key(|event| std::cmp::Reverse(event.at));
        events.truncate(EVENTS_PER_OBJECT);
        events
    }
}

/// A version's reason (the reconciler's stable names) in plain words.
fn reason_words(reason: &str) -> &'static str {
    match reason {
        "Ready" => "Ready: friends can install it",
        "Ingesting" => "Reading the build on the NAS",
        "Building" => "Making its download and update packages",
        "SourceMissing" => "The build is not on the NAS",
        "DigestMismatch" => "The build changed on the NAS after it was read",
        "PinnedDigestMismatch" => "The build is not the one the spec pins",
        "InvalidBuild" => "The build has files Mist cannot serve",
        "Blocked" => "Waiting on the version before it",
        "Failed" => "A job failed and will not be retried",
        "Pruned" => "Removed by the game's retention policy",
        "Retired" => "No longer in the specs",
        _ => "See the message",
    }
}

/// What an admin should do about a version Stalled for `reason`.
fn advice(reason: &str) -> &'static str {
    match reason {
        "SourceMissing" => {
            "Copy the build back to the version's source folder on the NAS, or remove the \
             version's spec and commit."
        }
        "DigestMismatch" => {
            "Someone changed the build's files after Mist read them. Put the original files \
             back, or publish the changed build as a new version and remove this one."
        }
        "PinnedDigestMismatch" => {
            "Fix the build so it matches the spec's digest, or, if this build is the right \
             one, pin its digest again (mistpipe manifest) and commit."
        }
        "InvalidBuild" => {
            "Remove special files and symlinks that point outside the build folder, then \
             commit again."
        }
        "Blocked" => "Fix the version before this one first; this one follows.",
        "Failed" => {
            "Read the message and fix its cause; a commit that changes the version's spec \
             retries it."
        }
        _ => "Read the message, fix its cause and commit again.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stall_reason_of_the_reconciler_has_words_and_advice() {
        for reason in [
            "SourceMissing",
            "DigestMismatch",
            "PinnedDigestMismatch",
            "InvalidBuild",
            "Blocked",
            "Failed",
        ] {
            assert_ne!(reason_words(reason), "See the message", "{reason}");
            assert!(
                !advice(reason).starts_with("Read the message, fix"),
                "{reason}"
            );
        }
    }
}
