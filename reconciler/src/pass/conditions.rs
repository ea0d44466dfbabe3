//! The conditions and events a pass writes, each only when it changed.

use mist_db::EpochMs;
use mist_db::conditions::{
    ConditionStatus, ConditionType, ConditionUpdate, ObjectKind, ObjectRef, Severity,
};
use mist_db::snapshot::Snapshot;
use mist_db::state::{VersionObserved, VersionState};

use super::notify::{self, Transition};
use super::{PassReport, Passes};
use crate::diff;
use crate::diff::condition::{Condition, Status};
use crate::error::Result;
use crate::observe::FastMap;

/// What a pass changes of the versions' status, compared with the snapshot.
#[derive(Default)]
struct StatusChanges<'a> {
    /// Condition rows to write.
    updates: Vec<ConditionUpdate>,
    /// Events to record: versions that became Ready or Stalled.
    events: Vec<(ObjectRef, Severity, &'static str, String)>,
    /// Version rows whose state changes: (game, version, state).
    states: Vec<(&'a str, &'a str, VersionState)>,
    /// Versions that became Ready or Stalled, for the notifications.
    transitions: Vec<Transition>,
}

impl Passes {
    /// Writes version conditions and states that changed, with an event for each version
    /// that became Ready or Stalled and, in the same transaction as the conditions, the
    /// notifications they cause (see [`notify`]).
    pub(super) async fn write_status(
        &self,
        diff: &diff::Diff,
        snapshot: &Snapshot,
        report: &mut PassReport,
        first_sync_done: bool,
        now: EpochMs,
    ) -> Result<()> {
        let changes = status_changes(diff, snapshot, report);
        if !changes.updates.is_empty() {
            let notifications =
                notify::notifications(&changes.transitions, snapshot, first_sync_done);
            report.n_writes += self
                .db
                .set_conditions_notifying(&changes.updates, &notifications, now)
                .await?;
            for transition in &changes.transitions {
                if let Transition::Ready { game, version, .. } = transition {
                    tracing::info!(game, version, "version ready");
                }
            }
        }
        for (game, version, state) in changes.states {
            self.set_version_state(game, version, state, report, now)
                .await?;
        }
        for (object, severity, reason, message) in changes.events {
            self.event(&object, severity, reason, &message, now, report)
                .await?;
        }
        let metadata_updates = metadata_conditions(diff, snapshot);
        if !metadata_updates.is_empty() {
            report.n_writes += self.db.set_conditions(&metadata_updates, now).await?;
        }
        Ok(())
    }

    /// Sets a version row's state, read again under the row lock.
    async fn set_version_state(
        &self,
        game: &str,
        version: &str,
        state: VersionState,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let changed = self
            .ctx
            .update_version_observed((game, version), now, |observed| {
                (observed.state != state).then_some(VersionObserved { state, ..observed })
            })
            .await?;
        if changed {
            report.n_writes += 1;
        }
        Ok(())
    }

    pub(super) async fn event(
        &self,
        object: &ObjectRef,
        severity: Severity,
        reason: &str,
        message: &str,
        now: EpochMs,
        report: &mut PassReport,
    ) -> Result<()> {
        self.ctx
            .record_event(object, (severity, reason, message), now)
            .await?;
        report.n_writes += 1;
        Ok(())
    }
}

/// The games' `MetadataStale` conditions that differ from the snapshot's: true for the games
/// the diff finds stale, false (once they have held) for the others.
fn metadata_conditions(diff: &diff::Diff, snapshot: &Snapshot) -> Vec<ConditionUpdate> {
    let existing: FastMap<&str, ConditionValue<'_>> = snapshot
        .conditions
        .iter()
        .filter(|c| {
            c.object.kind == ObjectKind::Game && c.condition_type == ConditionType::MetadataStale
        })
        .map(|c| {
            (
                c.object.name.as_str(),
                (c.status, c.reason.as_str(), c.message.as_str()),
            )
        })
        .collect();
    let mut updates = Vec::new();
    let mut push = |game: &str, status: ConditionStatus, reason: &str, message: &str| {
        if existing.get(game) != Some(&(status, reason, message)) {
            updates.push(ConditionUpdate {
                object: ObjectRef::game(game),
                condition_type: ConditionType::MetadataStale,
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
            });
        }
    };
    for (game, stale) in &diff.metadata_stale {
        push(game, ConditionStatus::True, &stale.reason, &stale.message);
    }
    for (game, (status, _, _)) in &existing {
        if *status == ConditionStatus::True && !diff.metadata_stale.contains_key(*game) {
            push(
                game,
                ConditionStatus::False,
                "Fresh",
                "the last fetch of the store metadata succeeded, or none is needed",
            );
        }
    }
    updates
}

/// A version's current condition: (status, reason, message).
type ConditionValue<'a> = (ConditionStatus, &'a str, &'a str);

/// The index of a condition type in [`version_conditions`]' arrays; `None` for a type a
/// version never has.
fn condition_slot(condition_type: ConditionType) -> Option<usize> {
    match condition_type {
        ConditionType::Ready => Some(0),
        ConditionType::Reconciling => Some(1),
        ConditionType::Stalled => Some(2),
        ConditionType::MetadataStale => None,
    }
}

/// Every version's conditions in the snapshot, by (game, version), without allocating.
fn version_conditions(
    snapshot: &Snapshot,
) -> FastMap<(&str, &str), [Option<ConditionValue<'_>>; 3]> {
    let mut out: FastMap<(&str, &str), [Option<ConditionValue<'_>>; 3]> = FastMap::default();
    for condition in &snapshot.conditions {
        if condition.object.kind != ObjectKind::Version {
            continue;
        }
        let Some((game, version)) = condition.object.name.split_once('/') else {
            continue;
        };
        let Some(slot) = condition_slot(condition.condition_type) else {
            continue;
        };
        out.entry((game, version)).or_default()[slot] = Some((
            condition.status,
            condition.reason.as_str(),
            condition.message.as_str(),
        ));
    }
    out
}

/// The status changes the diff asks for, compared with the snapshot; counts the versions
/// that are Ready and not in `report`.
fn status_changes<'a>(
    diff: &'a diff::Diff,
    snapshot: &Snapshot,
    report: &mut PassReport,
) -> StatusChanges<'a> {
    let existing = version_conditions(snapshot);
    let states: FastMap<(&str, &str), VersionState> = snapshot
        .versions
        .iter()
        .map(|v| {
            (
                (v.spec.game.as_str(), v.spec.name.as_str()),
                v.observed.state,
            )
        })
        .collect();
    let mut changes = StatusChanges::default();
    for ((game, version), status) in &diff.conditions {
        match status.condition.status {
            Status::Ready => report.n_ready += 1,
            Status::Reconciling | Status::Stalled => report.n_not_ready += 1,
            Status::Inactive => {}
        }
        let current_conditions = existing.get(&(game.as_str(), version.as_str()));
        condition_changes(
            (game, version),
            &status.condition,
            current_conditions,
            &mut changes,
        );
        let current_state = states
            .get(&(game.as_str(), version.as_str()))
            .copied()
            .unwrap_or(VersionState::Pending);
        if current_state != status.state {
            changes.states.push((game, version, status.state));
        }
    }
    changes
}

/// The condition rows of one version that differ from its `current` ones, with an event
/// when it became Ready or Stalled.
fn condition_changes(
    (game, version): (&str, &str),
    condition: &Condition,
    current_conditions: Option<&[Option<ConditionValue<'_>>; 3]>,
    changes: &mut StatusChanges<'_>,
) {
    let wanted = [
        (ConditionType::Ready, condition.status == Status::Ready),
        (
            ConditionType::Reconciling,
            condition.status == Status::Reconciling,
        ),
        (ConditionType::Stalled, condition.status == Status::Stalled),
    ];
    for (condition_type, holds) in wanted {
        let current = current_conditions
            .zip(condition_slot(condition_type))
            .and_then(|(c, slot)| c[slot].as_ref());
        // Reconciling and Stalled rows exist only once they have held.
        if !holds && condition_type != ConditionType::Ready && current.is_none() {
            continue;
        }
        let status_value = if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        let value = (
            status_value,
            condition.reason.as_str(),
            condition.message.as_str(),
        );
        if current.is_some_and(|c| *c == value) {
            continue;
        }
        let was_true = current.is_some_and(|c| c.0 == ConditionStatus::True);
        let object = ObjectRef::version(game, version);
        if holds && !was_true {
            match condition_type {
                ConditionType::Ready => {
                    changes.events.push((
                        object.clone(),
                        Severity::Normal,
                        "Ready",
                        condition.message.clone(),
                    ));
                    changes.transitions.push(Transition::Ready {
                        game: game.to_owned(),
                        version: version.to_owned(),
                    });
                }
                ConditionType::Stalled => {
                    changes.events.push((
                        object.clone(),
                        Severity::Warning,
                        condition.reason.as_str(),
                        condition.message.clone(),
                    ));
                    changes.transitions.push(Transition::Stalled {
                        game: game.to_owned(),
                        version: version.to_owned(),
                        reason: condition.reason.as_str().to_owned(),
                        message: condition.message.clone(),
                    });
                }
                ConditionType::Reconciling | ConditionType::MetadataStale => {}
            }
        }
        if condition_type == ConditionType::Stalled && !holds && was_true {
            changes.transitions.push(Transition::Recovered {
                game: game.to_owned(),
                version: version.to_owned(),
            });
        }
        changes.updates.push(ConditionUpdate {
            object,
            condition_type,
            status: status_value,
            reason: condition.reason.as_str().to_string(),
            message: condition.message.clone(),
        });
    }
}
