//! The prune safety: a commit that would retire most of what is Ready is held until an admin
//! confirms it ([`super::DiffConfig::max_retire_percent`]).

use std::collections::{BTreeMap, BTreeSet};

use mist_db::state::VersionState;

use super::action::Action;
use super::condition::{Condition, Reason, Status, VersionStatus};

/// A version, by (game, version).
type Key = (String, String);

/// Holds a retirement of more than `max_retire_percent` of the versions in `ready`: the
/// versions of `ready` that `conditions` would retire stay Ready and served, with a condition
/// that says what the admin should do, and `actions` loses their prunes. The caller skips
/// this when the commit in force confirms the retirement.
pub(super) fn hold_mass_retirement(
    ready: &BTreeSet<Key>,
    max_retire_percent: u8,
    conditions: &mut BTreeMap<Key, VersionStatus>,
    actions: &mut Vec<Action>,
) {
    let n_ready = ready.len();
    let retiring: BTreeSet<Key> = conditions
        .iter()
        .filter(|(key, status)| status.state == VersionState::Retired && ready.contains(*key))
        .map(|(key, _)| key.clone())
        .collect();
    if retiring.len() * 100 <= n_ready * usize::from(max_retire_percent) {
        return;
    }
    let message = format!(
        "removed from the specs, but this commit would retire {} of the {n_ready} Ready versions \
         (more than {}%), so it is held and the version is still served; if that is intended, \
         run `mistpipe confirm-retire` in the spec repository and push, otherwise revert the commit",
        retiring.len(),
        max_retire_percent
    );
    for key in &retiring {
        conditions.insert(
            key.clone(),
            VersionStatus {
                condition: Condition {
                    status: Status::Stalled,
                    reason: Reason::NeedsConfirmation,
                    message: message.clone(),
                },
                state: VersionState::Ready,
            },
        );
    }
    actions.retain(|action| match action {
        Action::Prune { game, version, .. } => !retiring.contains(&(game.clone(), version.clone())),
        _ => true,
    });
}
