//! The notifications a pass writes: a version Ready for the first time (after the first sync),
//! Stalled, or no longer Stalled; and, once, the first sync's digest. Each is written
//! in the same transaction as the condition that causes it (`Db::set_conditions_notifying`).
//!
//! The payloads carry the facts the templates render (title, notes, sizes), read from the
//! pass's snapshot, so the sender needs nothing but the outbox.

use mist_db::EpochMs;
use mist_db::outbox::{Audience, NewNotification, NotificationKind};
use mist_db::snapshot::Snapshot;
use mist_wire::notification::{DigestFacts, VersionFacts};
use serde::Serialize;
use serde_json::Value;

use super::{PassReport, Passes};
use crate::diff::{self, condition::Status};
use crate::error::Result;

/// At most this many versions are listed in the digest's payload; its count is the whole.
const DIGEST_LISTED: usize = 50;

/// A change of a version's status that someone is told about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Transition {
    /// It became Ready.
    Ready {
        /// The game.
        game: String,
        /// The version.
        version: String,
    },
    /// Its Stalled condition stopped holding: it is reconciling again, or Ready.
    Recovered {
        /// The game.
        game: String,
        /// The version.
        version: String,
    },
    /// It went Stalled.
    Stalled {
        /// The game.
        game: String,
        /// The version.
        version: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
}

impl Passes {
    /// After the pass that ends the first sync ([`first_sync_over`]), once ever: announces every version
    /// the diff finds Ready in one digest and ends the first sync (unless another process did
    /// already).
    pub(super) async fn first_sync_digest(
        &self,
        diff: &diff::Diff,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let ready = ready_versions(diff);
        let payload = digest_payload(snapshot, &ready);
        if self
            .db
            .write_first_sync_digest(&ready, &to_json(&payload), now)
            .await?
        {
            report.n_writes += 1;
        }
        Ok(())
    }
}

/// Whether the first sync is over after this pass: it asks for no work and no version is
/// still being worked on, so every version is as Ready (or Stalled) as it will get.
pub(super) fn first_sync_over(diff: &diff::Diff, report: &PassReport) -> bool {
    report.actions.is_empty()
        && report.n_enqueued == 0
        && report.n_requeued == 0
        && diff
            .conditions
            .values()
            .all(|status| status.condition.status != Status::Reconciling)
}

/// The notifications for `transitions`; a version's first Ready is announced only once the
/// first sync is done (before, the digest announces it).
pub(super) fn notifications(
    transitions: &[Transition],
    snapshot: &Snapshot,
    first_sync_done: bool,
) -> Vec<NewNotification> {
    let mut out = Vec::new();
    for transition in transitions {
        match transition {
            Transition::Ready { game, version } => {
                if first_sync_done {
                    out.push(NewNotification {
                        kind: NotificationKind::Ready,
                        audience: Audience::Friends,
                        payload: to_json(&version_payload(snapshot, game, version)),
                        announces: Some((game.clone(), version.clone())),
                    });
                }
            }
            Transition::Recovered { game, version } => out.push(NewNotification {
                kind: NotificationKind::Recovered,
                audience: Audience::Admins,
                payload: to_json(&version_payload(snapshot, game, version)),
                announces: None,
            }),
            Transition::Stalled {
                game,
                version,
                reason,
                message,
            } => {
                let payload = VersionFacts {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                    ..version_payload(snapshot, game, version)
                };
                out.push(NewNotification {
                    kind: NotificationKind::Stalled,
                    audience: Audience::Admins,
                    payload: to_json(&payload),
                    announces: None,
                });
            }
        }
    }
    out
}

/// Every version the diff finds Ready, as (game, version), sorted.
fn ready_versions(diff: &diff::Diff) -> Vec<(String, String)> {
    let mut ready: Vec<(String, String)> = diff
        .conditions
        .iter()
        .filter(|(_, status)| status.condition.status == Status::Ready)
        .map(|((game, version), _)| (game.clone(), version.clone()))
        .collect();
    ready.sort();
    ready
}

/// The digest's facts: how many versions of how many games, and the first few.
fn digest_payload(snapshot: &Snapshot, ready: &[(String, String)]) -> DigestFacts {
    let mut games: Vec<&str> = ready.iter().map(|(game, _)| game.as_str()).collect();
    games.dedup();
    DigestFacts {
        count: ready.len() as u64,
        game_count: games.len() as u64,
        versions: ready
            .iter()
            .take(DIGEST_LISTED)
            .map(|(game, version)| version_payload(snapshot, game, version))
            .collect(),
    }
}

/// One version's facts: game, title, version, notes, full size (its pack) and update size
/// (the delta from the version before it), each when known.
fn version_payload(snapshot: &Snapshot, game: &str, version: &str) -> VersionFacts {
    let spec_field = |spec_json: &str, field: &str| -> Option<String> {
        let value: Value = serde_json::from_str(spec_json).ok()?;
        value.get(field)?.as_str().map(str::to_owned)
    };
    let title = snapshot
        .games
        .iter()
        .find(|g| g.name == game)
        .and_then(|g| spec_field(&g.spec_json, "title"))
        .unwrap_or_else(|| game.to_owned());
    let versions: Vec<_> = snapshot
        .versions
        .iter()
        .filter(|v| v.spec.game == game)
        .collect();
    let position = versions.iter().position(|v| v.spec.name == version);
    let this = position.map(|idx| versions[idx]);
    let previous = position
        .and_then(|idx| idx.checked_sub(1))
        .map(|idx| versions[idx]);
    let size_of = |address: &str| {
        snapshot
            .artifacts
            .iter()
            .find(|a| a.address == address)
            .map(|a| a.size)
    };
    let full_size = this
        .and_then(|v| v.observed.pack_address.as_deref())
        .and_then(size_of);
    let update = previous.and_then(|previous| {
        let delta = snapshot.deltas.iter().find(|d| {
            d.game == game && d.to_version == version && d.from_version == previous.spec.name
        })?;
        Some((previous.spec.name.clone(), size_of(&delta.address)?))
    });
    let (update_from, update_size) = update.unzip();
    VersionFacts {
        game: game.to_owned(),
        title,
        version: version.to_owned(),
        notes: this.and_then(|v| spec_field(&v.spec.spec_json, "notes")),
        full_size,
        update_from,
        update_size,
        reason: None,
        message: None,
    }
}

/// The outbox's JSON text of a notification's facts.
fn to_json(facts: &impl Serialize) -> String {
    serde_json::to_string(facts).expect("facts of strings and numbers always serialize")
}
