//! What the specs in force are recorded as: the revision tried, the sync state, the spec
//! repository's condition, the game and version rows, and the diff's view of them.

use mist_db::EpochMs;
use mist_db::conditions::{ConditionStatus, ConditionType, ConditionUpdate, ObjectRef, Severity};
use mist_db::metadata::StoredImage;
use mist_db::snapshot::Snapshot;
use mist_db::state::{self, Outcome, Revision, SyncState, VersionSpec};
use mist_specs::load::Specs;

use super::{PassReport, PassState, Passes};
use crate::error::Result;
use crate::observe::FastMap;
use crate::{desired, diff};

impl Passes {
    /// Records the revision tried, the sync state and the spec repository's condition.
    pub(super) async fn record_specs(
        &self,
        state: &mut PassState,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let object = ObjectRef::specs(&self.branch);
        let in_force = state.machine.last_good().map(|s| s.commit.clone());
        self.record_attempt(state, &object, in_force.as_deref(), report, now)
            .await?;
        let read_error = state.machine.read_error().map(str::to_string);
        if read_error != state.recorded_read_error {
            if let Some(error) = &read_error {
                self.event(&object, Severity::Warning, "ReadFailed", error, now, report)
                    .await?;
            }
            state.recorded_read_error = read_error.clone();
        }
        self.record_sync_state(&state.machine, in_force.clone(), snapshot, report, now)
            .await?;

        let Some((status, reason, message)) =
            specs_condition(&state.machine, read_error.as_deref(), in_force.as_deref())
        else {
            return Ok(());
        };
        let update = ConditionUpdate {
            object,
            condition_type: ConditionType::Ready,
            status,
            reason: reason.to_string(),
            message,
        };
        let current = snapshot
            .conditions
            .iter()
            .find(|c| c.object == update.object && c.condition_type == update.condition_type);
        if current.is_none_or(|c| {
            (c.status, c.reason.as_str(), c.message.as_str())
                != (
                    update.status,
                    update.reason.as_str(),
                    update.message.as_str(),
                )
        }) {
            report.n_writes += self.db.set_conditions(&[update], now).await?;
        }
        Ok(())
    }

    /// Records the last commit tried as a revision, with an event when that wrote a row;
    /// once per attempt.
    async fn record_attempt(
        &self,
        state: &mut PassState,
        object: &ObjectRef,
        in_force: Option<&str>,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let Some(attempt) = state.machine.last_attempted().cloned() else {
            return Ok(());
        };
        if state.recorded_attempt.as_ref() == Some(&attempt) {
            return Ok(());
        }
        let outcome = if attempt.diagnostics.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        let revision = Revision {
            commit_id: attempt.commit.clone(),
            seen_at: now,
            outcome,
            errors_json: serde_json::to_string(&attempt.diagnostics)
                .unwrap_or_else(|_| "[]".to_string()),
        };
        if self.db.record_revision(&revision, now).await? {
            report.n_writes += 1;
            let (severity, reason, message) = if outcome == Outcome::Ok {
                (
                    Severity::Normal,
                    "CommitApplied",
                    format!("commit {} is applied", attempt.commit),
                )
            } else {
                (
                    Severity::Warning,
                    "CommitRejected",
                    format!(
                        "commit {} fails to load with {} errors; {} stays in force",
                        attempt.commit,
                        attempt.diagnostics.len(),
                        in_force.unwrap_or("nothing")
                    ),
                )
            };
            self.event(object, severity, reason, &message, now, report)
                .await?;
        }
        state.recorded_attempt = Some(attempt);
        Ok(())
    }

    /// Writes the sync state (the commits observed, attempted and applied) when it changed.
    async fn record_sync_state(
        &self,
        machine: &desired::Desired,
        in_force: Option<String>,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let attempted = machine.last_attempted().map(|a| a.commit.clone());
        let sync_state = SyncState {
            observed_commit: attempted
                .clone()
                .or(snapshot.sync_state.observed_commit.clone()),
            last_attempted_commit: attempted.or(snapshot.sync_state.last_attempted_commit.clone()),
            last_applied_commit: in_force.or(snapshot.sync_state.last_applied_commit.clone()),
        };
        if sync_state != snapshot.sync_state && self.db.set_sync_state(&sync_state, now).await? {
            report.n_writes += 1;
        }
        Ok(())
    }

    /// Writes the spec-derived rows that differ: games (all, with their `suspended` flag)
    /// and the versions of games that are not suspended.
    pub(super) async fn apply_specs(
        &self,
        specs: &Specs,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let games_now: FastMap<&str, &state::Game> = snapshot
            .games
            .iter()
            .map(|g| (g.name.as_str(), g))
            .collect();
        let games: Vec<state::Game> = specs
            .games
            .iter()
            .map(|(name, game_specs)| game_row(name, game_specs))
            .filter(|row| games_now.get(row.name.as_str()) != Some(&row))
            .collect();
        if !games.is_empty() {
            report.n_writes += self.db.upsert_games(&games, now).await?;
        }
        let versions_now: FastMap<(&str, &str), &VersionSpec> = snapshot
            .versions
            .iter()
            .map(|v| ((v.spec.game.as_str(), v.spec.name.as_str()), &v.spec))
            .collect();
        let mut version_specs = Vec::new();
        for (game_name, game_specs) in &specs.games {
            if game_specs.game.spec.suspend {
                continue;
            }
            for (order_idx, version) in game_specs.versions.iter().enumerate() {
                let row = VersionSpec {
                    game: game_name.clone(),
                    name: version.metadata.name.clone(),
                    order_index: i64::try_from(order_idx).unwrap_or(i64::MAX),
                    source: version.spec.source.clone(),
                    pinned_digest: version.spec.digest.clone(),
                    spec_json: serde_json::to_string(&version.spec).unwrap_or_default(),
                };
                if versions_now.get(&(row.game.as_str(), row.name.as_str())) != Some(&&row) {
                    version_specs.push(row);
                }
            }
        }
        if !version_specs.is_empty() {
            report.n_writes += self.db.upsert_version_specs(&version_specs, now).await?;
        }
        Ok(())
    }
}

/// The diff's view of the specs.
pub(super) fn desired_of(specs: &Specs, may_prune: bool, confirm_retire: bool) -> diff::Desired {
    diff::Desired {
        games: specs
            .games
            .iter()
            .map(|(name, game_specs)| {
                let spec = &game_specs.game.spec;
                (
                    name.clone(),
                    diff::DesiredGame {
                        suspend: spec.suspend,
                        keep_versions: spec.retention.keep_versions,
                        prune: spec.retention.prune,
                        versions: game_specs
                            .versions
                            .iter()
                            .map(|version| diff::DesiredVersion {
                                name: version.metadata.name.clone(),
                                source: version.spec.source.clone(),
                                pinned: version.spec.digest.clone(),
                            })
                            .collect(),
                        steam_app_id: spec.steam_app_id,
                        header_image: game_specs.header_image.as_ref().map(|image| StoredImage {
                            address: format!("blake3:{}", blake3::hash(&image.bytes).to_hex()),
                            size: image.bytes.len() as u64,
                            media_type: image.image_type.media_type().to_owned(),
                        }),
                    },
                )
            })
            .collect(),
        users: specs
            .users
            .iter()
            .map(|(name, user)| {
                (
                    name.clone(),
                    state::User {
                        name: name.clone(),
                        display_name: user.spec.display_name.clone(),
                        role: match user.spec.role {
                            mist_specs::model::Role::User => state::Role::User,
                            mist_specs::model::Role::Admin => state::Role::Admin,
                        },
                        password_hash: user.spec.password_hash.clone(),
                        disabled: user.spec.disabled,
                    },
                )
            })
            .collect(),
        may_prune,
        confirm_retire,
    }
}

fn game_row(name: &str, game_specs: &mist_specs::load::GameSpecs) -> state::Game {
    let spec = &game_specs.game.spec;
    state::Game {
        name: name.to_string(),
        spec_json: serde_json::to_string(spec).unwrap_or_default(),
        suspended: spec.suspend,
        private: spec.private,
        grants: spec.grants.clone(),
    }
}

/// The spec repository's `Ready` condition: false when it cannot be read or the latest commit
/// fails, true when a commit is in force; `None` before any commit was tried.
fn specs_condition(
    machine: &desired::Desired,
    read_error: Option<&str>,
    in_force: Option<&str>,
) -> Option<(ConditionStatus, &'static str, String)> {
    if let Some(error) = read_error {
        Some((
            ConditionStatus::False,
            "ReadFailed",
            format!("cannot read the spec repository: {error}"),
        ))
    } else if machine.is_failing() {
        let attempt = machine.last_attempted().expect("failing means attempted");
        Some((
            ConditionStatus::False,
            "InvalidCommit",
            format!(
                "commit {} fails to load with {} errors; {} stays in force",
                attempt.commit,
                attempt.diagnostics.len(),
                in_force.unwrap_or("nothing")
            ),
        ))
    } else {
        in_force.map(|commit| {
            (
                ConditionStatus::True,
                "Applied",
                format!("commit {commit} is applied"),
            )
        })
    }
}
