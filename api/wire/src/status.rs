//! `GET /v1/status` and the `status` events of `GET /v1/events`: the reconciler's status
//! report, which `mistd status --json` prints too.
//!
//! Admins get the whole [`StatusReport`]; friends get a [`FriendStatus`] (the Ready
//! versions of the games they see), so the route answers a [`StatusView`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The name of the Server-Sent Event that carries a [`StatusView`] on `GET /v1/events`.
pub const STATUS_EVENT: &str = "status";

/// What `GET /v1/status` answers, and what each `status` event holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StatusView {
    /// An admin's view: everything.
    Admin(StatusReport),
    /// A friend's view: which versions of their games are Ready.
    Friend(FriendStatus),
}

/// The whole status, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// Every job that is not done, running ones first, then by when they may run.
    pub queue: Vec<QueueEntry>,
}

/// One error of a spec commit, or why the repository could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameStatus {
    /// The game's name.
    pub name: String,
    /// `suspend: true`: the reconciler leaves it as it is.
    pub suspended: bool,
    /// Why its store metadata is stale, while it cannot be fetched (the last good one is
    /// still served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_stale: Option<MetadataStale>,
    /// Its versions, in version order.
    pub versions: Vec<VersionStatus>,
}

/// A game's `MetadataStale` condition, while it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataStale {
    /// A stable reason: `NetworkError`, `RateLimited`, `UnknownApp`, `BadResponse` or
    /// `ImageFailed`.
    pub reason: String,
    /// A sentence for people, with when the next try is.
    pub message: String,
    /// Since when it holds, epoch milliseconds.
    pub since: i64,
}

/// One version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// The version's name.
    pub name: String,
    /// Served to friends.
    pub ready: bool,
    /// Where the version stands, from its conditions.
    pub status: Phase,
    /// A stable reason, e.g. `DigestMismatch`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// The progress of a job running for this version, if any.
    pub progress: Option<JobProgress>,
}

/// Where a version stands, summed up from its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Phase {
    /// Served to friends.
    Ready,
    /// Work is under way.
    Reconciling,
    /// Cannot progress until an admin acts.
    Stalled,
    /// Retired or pruned.
    Inactive,
    /// No condition yet.
    Unknown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Phase {
    /// The name on the wire, e.g. `Stalled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Ready => "Ready",
            Phase::Reconciling => "Reconciling",
            Phase::Stalled => "Stalled",
            Phase::Inactive => "Inactive",
            Phase::Unknown => "Unknown",
        }
    }
}

/// Progress of a job's current (or last) attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// The job kind.
    pub kind: JobKind,
    /// The stage, e.g. `scan`.
    pub stage: String,
    /// The stage's position among the kind's stages, 0 first.
    pub stage_index: u32,
    /// Units (bytes, mostly) done in this stage.
    pub done: u64,
    /// Units in this stage.
    pub total: u64,
}

/// The kinds of reconciler job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Scan a build on the NAS into a manifest.
    Ingest,
    /// Pack a version into one tar+zstd archive.
    Pack,
    /// Make a tree delta between two versions.
    Delta,
    /// Retire a version, or remove its artifacts and row.
    Prune,
    /// Fetch a game's store metadata and header image from Steam.
    Metadata,
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 5] = [
        JobKind::Ingest,
        JobKind::Pack,
        JobKind::Delta,
        JobKind::Prune,
        JobKind::Metadata,
    ];

    /// The name on the wire and in the job queue, e.g. `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Ingest => "ingest",
            JobKind::Pack => "pack",
            JobKind::Delta => "delta",
            JobKind::Prune => "prune",
            JobKind::Metadata => "metadata",
        }
    }

    /// The kind named `name` ([`JobKind::as_str`]), if there is one.
    pub fn parse(name: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Where a job is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to be claimed.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished.
    Done,
    /// The last attempt failed; it is retried at `nextAttemptAt`.
    Failed,
    /// Failed in a way retrying cannot fix; waits for a spec change.
    Terminal,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobState {
    /// The name on the wire, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Terminal => "terminal",
        }
    }
}

/// One job that is not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueEntry {
    /// The content-derived key.
    pub key: String,
    /// The job kind.
    pub kind: JobKind,
    /// The game it is for.
    pub game: Option<String>,
    /// The version it is for.
    pub version: Option<String>,
    /// Where it is in the queue.
    pub state: JobState,
    /// Attempts that failed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the job may next be claimed (epoch milliseconds).
    pub next_attempt_at: i64,
    /// The progress of the current (or last) attempt.
    pub progress: JobProgress,
    /// How many lines the job has written to its log (`GET /v1/jobs/{key}/log`); it grows
    /// while the job works, so the event stream sends a new status when a line is written.
    #[serde(default)]
    pub log_lines: u64,
}

/// A friend's view of the status: for each game they see, its Ready versions.
///
/// It holds only `games`, and says so (`additionalProperties: false`), so that an admin's
/// [`StatusReport`] never also reads as a friend's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FriendStatus {
    /// The games the friend sees, by name.
    pub games: Vec<FriendGameStatus>,
}

/// A game in a [`FriendStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FriendGameStatus {
    /// The game's name.
    pub name: String,
    /// Its Ready versions, in version order.
    pub versions: Vec<FriendVersionStatus>,
}

/// A Ready version in a [`FriendStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FriendVersionStatus {
    /// The version's name.
    pub name: String,
    /// Always true: friends see only Ready versions.
    pub ready: bool,
}

impl StatusReport {
    /// What a friend who sees the games for which `sees_game` holds may see of the report.
    pub fn friend_view(&self, sees_game: impl Fn(&str) -> bool) -> FriendStatus {
        FriendStatus {
            games: self
                .games
                .iter()
                .filter(|game| sees_game(&game.name))
                .map(|game| FriendGameStatus {
                    name: game.name.clone(),
                    versions: game
                        .versions
                        .iter()
                        .filter(|version| version.ready)
                        .map(|version| FriendVersionStatus {
                            name: version.name.clone(),
                            ready: true,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn version(name: &str, ready: bool, status: Phase, message: &str) -> VersionStatus {
        VersionStatus {
            name: name.to_owned(),
            ready,
            status,
            reason: status.as_str().to_owned(),
            message: message.to_owned(),
            progress: None,
        }
    }

    #[test]
    fn friends_see_only_ready_versions_of_their_games() {
        let progress = JobProgress {
            kind: JobKind::Pack,
            stage: String::new(),
            stage_index: 0,
            done: 0,
            total: 0,
        };
        let report = StatusReport {
            commit: Some("abc".to_owned()),
            last_applied_revision: None,
            last_attempted_revision: None,
            errors: vec![StatusError {
                file: None,
                line: None,
                column: None,
                message: "secret path".to_owned(),
                hint: None,
            }],
            games: vec![
                GameStatus {
                    name: "open".to_owned(),
                    suspended: false,
                    metadata_stale: None,
                    versions: vec![
                        version("1", true, Phase::Ready, "m"),
                        version("2", false, Phase::Stalled, "/nas/path"),
                    ],
                },
                GameStatus {
                    name: "hidden".to_owned(),
                    suspended: false,
                    metadata_stale: None,
                    versions: vec![version("1", true, Phase::Ready, "")],
                },
            ],
            queue: vec![QueueEntry {
                key: "k".to_owned(),
                kind: JobKind::Pack,
                game: None,
                version: None,
                state: JobState::Queued,
                attempts: 0,
                last_error: None,
                next_attempt_at: 0,
                progress,
                log_lines: 0,
            }],
        };
        let view = StatusView::Friend(report.friend_view(|game| game == "open"));
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({"games": [{"name": "open", "versions": [{"name": "1", "ready": true}]}]})
        );
    }

    #[test]
    fn an_admin_report_and_a_friend_view_are_told_apart() {
        let friend =
            json!({"games": [{"name": "open", "versions": [{"name": "1", "ready": true}]}]});
        assert!(matches!(
            serde_json::from_value::<StatusView>(friend).unwrap(),
            StatusView::Friend(_)
        ));
        let admin = json!({"commit": null, "lastAppliedRevision": null,
            "lastAttemptedRevision": null, "errors": [], "games": [], "queue": []});
        assert!(matches!(
            serde_json::from_value::<StatusView>(admin).unwrap(),
            StatusView::Admin(_)
        ));
    }
}
