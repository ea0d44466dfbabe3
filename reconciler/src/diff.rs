//! The reconciler's diff: desired state and observed state in, actions and conditions out.
//!
//! [`diff()`] is a pure function with no I/O, so every rule of reconciliation is tested by
//! tables of (desired, observed) → diff (`tests` below, through one `check` helper). The shell
//! around it observes ([`crate::observe`]: database rows and what is really on the NAS), turns
//! actions into durable jobs ([`crate::jobs`]) and writes conditions.
//!
//! Rules, for each game that is not suspended and each of its versions in order:
//!
//! - A version whose build has not been ingested (or whose manifest artifact is gone, or
//!   whose recorded digest differs from a newly pinned one) is ingested if its source build
//!   is on the NAS; otherwise it is stalled (`SourceMissing`).
//! - A version whose build changed on the NAS after ingest (drift, found by the slow
//!   re-verification) is stalled (`DigestMismatch`) and never re-ingested; its source is not
//!   used as an input any more.
//! - An ingested version gets a pack, and (unless it is the oldest kept version) a delta from
//!   the previous version. Warm skip deltas go from each of the [`DiffConfig::skip_deltas`]
//!   versions before the previous one to the latest.
//! - Identical content is never built twice: a pack (or delta) that exists for the same tree
//!   digest(s) under another version is linked, not rebuilt.
//! - Inputs: a version's tree comes from its source build when that is present and not
//!   drifted, else from a replay of the delta chain from the nearest earlier version whose
//!   build is present, else from its pack ([`input_for`]). Work whose inputs cannot be had
//!   is not queued; the version is stalled.
//! - A version is `Ready` only when its manifest, its pack and the delta from the previous
//!   version all exist (present on the NAS with the right size) and it is not drifted.
//! - Pruning happens only when the desired state allows it ([`Desired::may_prune`]) and the
//!   game's retention says `prune: true`: versions beyond the newest `keepVersions` lose
//!   their artifacts (once every kept version is Ready), and versions no longer in the specs
//!   lose their artifacts and their row. Without that, a version removed from the specs is
//!   only marked retired.
//! - A commit that would retire more than [`DiffConfig::max_retire_percent`] of the Ready
//!   versions is held unless it confirms it: those versions stay Ready, with a
//!   `NeedsConfirmation` condition, and nothing of them is pruned.
//! - Users are published as the specs list them: new and changed ones upserted, removed ones
//!   deleted.
//!
//! - Catalog metadata (`metadata`): fetched from Steam when due; a failure makes it stale.
//!
//! A suspended game gets no actions and no conditions: it is left exactly as it is.

pub mod action;
pub mod condition;
mod hold;
pub mod input;
pub mod metadata;

use std::collections::{BTreeMap, BTreeSet};

use mist_db::EpochMs;
use mist_db::queue::JobState;
use mist_db::state::{User, VersionState};

use self::action::Action;
use self::condition::{Condition, Reason, Status, VersionStatus};
use self::input::{InputFacts, input_for};
use crate::jobs;

/// What the specs ask for, at the commit in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// Games by name.
    pub games: BTreeMap<String, DesiredGame>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Whether pruning is allowed at all: the latest commit loaded, validated, is the one in
    /// force and is not empty (see [`crate::desired::Desired::may_prune`]).
    pub may_prune: bool,
    /// Whether the commit in force confirms a mass retirement (its message has the trailer
    /// [`crate::desired::CONFIRM_RETIRE_TRAILER`]); see [`DiffConfig::max_retire_percent`].
    pub confirm_retire: bool,
}

/// One game as the specs describe it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredGame {
    /// The reconciler leaves the game alone.
    pub suspend: bool,
    /// Keep this many newest versions; 0 keeps all.
    pub keep_versions: u32,
    /// Whether versions beyond `keep_versions`, and versions removed from the specs, may be
    /// deleted.
    pub prune: bool,
    /// Versions, oldest first.
    pub versions: Vec<DesiredVersion>,
    /// The Steam app whose store metadata the catalog shows.
    pub steam_app_id: Option<u32>,
    /// The header image of the spec repository, as it is to be stored.
    pub header_image: Option<mist_db::metadata::StoredImage>,
}

/// One version as the specs describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredVersion {
    /// The version name.
    pub name: String,
    /// The build folder relative to the NAS root.
    pub source: String,
    /// The pinned tree digest, if any.
    pub pinned: Option<String>,
}

/// What is really there: database rows checked against the NAS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Versions with a row in the database, by (game, version).
    pub versions: BTreeMap<(String, String), ObservedVersion>,
    /// Delta rows by (game, from version, to version), and whether their artifact is there.
    pub deltas: BTreeMap<(String, String, String), Presence>,
    /// Packs present on the NAS, by tree digest: the content a pack holds is named by the
    /// digest, so any version with that digest can use it.
    pub packs: BTreeMap<String, String>,
    /// Delta artifacts present on the NAS, by (from digest, to digest).
    pub delta_artifacts: BTreeMap<(String, String), String>,
    /// Jobs that are not done, by key.
    pub jobs: BTreeMap<String, ObservedJob>,
    /// Users in the database, by name.
    pub users: BTreeMap<String, User>,
    /// Games' catalog metadata, by game.
    pub metadata: BTreeMap<String, metadata::ObservedMetadata>,
    /// When this was observed: what is due is due by this time.
    pub now: EpochMs,
}

/// Whether a recorded artifact is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Presence {
    /// Nothing is recorded.
    #[default]
    Absent,
    /// It is recorded, but the file is gone or has the wrong size.
    Missing,
    /// It is recorded and on the NAS with the recorded size.
    Present,
}

/// One version's observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVersion {
    /// The version row's state.
    pub state: VersionState,
    /// The source build folder exists on the NAS.
    pub source_present: bool,
    /// The tree digest recorded at ingest.
    pub digest: Option<String>,
    /// The manifest artifact.
    pub manifest: Presence,
    /// The pack artifact.
    pub pack: Presence,
    /// The build on the NAS no longer matches the recorded digest (found by the slow
    /// re-verification, and remembered until a later one finds it matching again).
    pub drifted: bool,
}

/// A job that is not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedJob {
    /// Queued, running, failed (waiting for a retry) or terminal.
    pub state: JobState,
    /// Attempts that failed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Settings that shape the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffConfig {
    /// How many versions before the previous one get a warm skip delta to the latest.
    pub skip_deltas: usize,
    /// The most of the Ready versions, in percent, one commit may retire without an admin's
    /// confirmation. A commit that would retire more (a push to the wrong branch, a bad merge)
    /// is held: every version stays served, with a `NeedsConfirmation` condition.
    pub max_retire_percent: u8,
    /// How long after a good fetch a game's store metadata is fetched again (±10 %).
    pub metadata_refresh: std::time::Duration,
}

impl Default for DiffConfig {
    fn default() -> Self {
        DiffConfig {
            skip_deltas: 2,
            max_retire_percent: 50,
            metadata_refresh: crate::steam::DEFAULT_REFRESH,
        }
    }
}

/// The outcome of a diff.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Work to do, sorted.
    pub actions: Vec<Action>,
    /// The condition of every version the diff speaks for (every version of every game that
    /// is not suspended, and every observed version of a game no longer in the specs), with
    /// the state its row should have.
    pub conditions: BTreeMap<(String, String), VersionStatus>,
    /// Users to insert or update.
    pub upsert_users: Vec<User>,
    /// Users to delete.
    pub delete_users: Vec<String>,
    /// Games whose store metadata is stale, with their `MetadataStale` condition.
    pub metadata_stale: BTreeMap<String, metadata::Stale>,
    /// When the next game's metadata is due to be fetched, if one is not due yet.
    pub next_metadata_at: Option<EpochMs>,
}

/// Diffs desired against observed state.
pub fn diff(desired: &Desired, observed: &Observed, config: DiffConfig) -> Diff {
    let mut out = Diff::default();
    for (game_name, game) in &desired.games {
        if game.suspend {
            continue;
        }
        diff_game(
            game_name,
            game,
            desired.may_prune,
            observed,
            config,
            &mut out,
        );
        let metadata = metadata::diff_metadata(
            game_name,
            (game.steam_app_id, game.header_image.as_ref()),
            (observed.metadata.get(game_name), observed.now),
            |key| observed.jobs.contains_key(key),
            config.metadata_refresh,
        );
        out.actions.extend(metadata.actions);
        out.metadata_stale
            .extend(metadata.stale.map(|s| (game_name.clone(), s)));
        out.next_metadata_at = metadata::earliest(out.next_metadata_at, metadata.next_at);
    }
    // Versions of games no longer in the specs at all: kept, marked retired.
    for (game_name, version_name) in observed.versions.keys() {
        if desired.games.contains_key(game_name) {
            continue;
        }
        out.conditions.insert(
            (game_name.clone(), version_name.clone()),
            retired("its game is no longer in the specs; its data is kept"),
        );
    }
    if !desired.confirm_retire {
        let ready: BTreeSet<(String, String)> = observed
            .versions
            .iter()
            .filter(|(_, version)| version.state == VersionState::Ready)
            .map(|(key, _)| key.clone())
            .collect();
        hold::hold_mass_retirement(
            &ready,
            config.max_retire_percent,
            &mut out.conditions,
            &mut out.actions,
        );
    }
    diff_users(desired, observed, &mut out);
    out.actions.sort();
    out.actions.dedup();
    out
}

fn diff_users(desired: &Desired, observed: &Observed, out: &mut Diff) {
    for (name, user) in &desired.users {
        if observed.users.get(name) != Some(user) {
            out.upsert_users.push(user.clone());
        }
    }
    for name in observed.users.keys() {
        if !desired.users.contains_key(name) {
            out.delete_users.push(name.clone());
        }
    }
}

fn retired(message: &str) -> VersionStatus {
    VersionStatus {
        condition: Condition {
            status: Status::Inactive,
            reason: Reason::Retired,
            message: message.to_string(),
        },
        state: VersionState::Retired,
    }
}

/// A piece of work a version needs, and how it stands.
enum Need {
    /// Queued, running or linked: the version is reconciling.
    Working(String),
    /// Cannot progress: the version is stalled.
    Stuck(Reason, String),
}

/// What a version without a row has been observed to have: nothing.
static NO_ROW: ObservedVersion = ObservedVersion {
    state: VersionState::Pending,
    source_present: false,
    digest: None,
    manifest: Presence::Absent,
    pack: Presence::Absent,
    drifted: false,
};

fn diff_game(
    game_name: &str,
    game: &DesiredGame,
    may_prune: bool,
    observed: &Observed,
    config: DiffConfig,
    out: &mut Diff,
) {
    let view = GameView::new(game_name, game, observed);
    let kept: Vec<VersionStatus> = (view.keep_from..game.versions.len())
        .map(|idx| view.kept_version_status(idx, out))
        .collect();

    // Warm skip deltas from a few older versions to the latest; they never hold up Ready.
    view.warm_skip_deltas(config.skip_deltas, out);

    // Retention: versions beyond keepVersions.
    let all_kept_ready = kept
        .iter()
        .all(|status| status.condition.status == Status::Ready);
    let prune_allowed = may_prune && game.prune;
    let beyond_kept: Vec<VersionStatus> = (0..view.keep_from)
        .map(|idx| view.beyond_kept_status(idx, may_prune, prune_allowed && all_kept_ready, out))
        .collect();
    for (version, status) in game
        .versions
        .iter()
        .zip(beyond_kept.into_iter().chain(kept))
    {
        out.conditions.insert(view.key(&version.name), status);
    }

    // Versions observed but no longer in the specs.
    view.removed_versions(prune_allowed, all_kept_ready, out);
}

/// One game of the specs with what was observed of its versions: what every rule for the
/// game reads, worked out once.
struct GameView<'a> {
    name: &'a str,
    game: &'a DesiredGame,
    observed: &'a Observed,
    /// Each version's observed state, in the specs' order.
    obs_all: Vec<&'a ObservedVersion>,
    /// The index of the oldest version kept by the retention policy (0 when all are kept).
    keep_from: usize,
    /// Versions whose recorded manifest can serve as the description of their tree.
    ingested: Vec<bool>,
    /// What [`input_for`] needs to know about each version.
    facts: Vec<InputFacts>,
}

impl<'a> GameView<'a> {
    fn new(name: &'a str, game: &'a DesiredGame, observed: &'a Observed) -> GameView<'a> {
        let n_versions = game.versions.len();
        let keep_from = if game.prune && game.keep_versions > 0 {
            n_versions.saturating_sub(game.keep_versions as usize)
        } else {
            0
        };
        let obs_all: Vec<&ObservedVersion> = game
            .versions
            .iter()
            .map(|version| {
                observed
                    .versions
                    .get(&(name.to_string(), version.name.clone()))
                    .unwrap_or(&NO_ROW)
            })
            .collect();
        let ingested: Vec<bool> = game
            .versions
            .iter()
            .zip(&obs_all)
            .map(|(version, obs)| {
                obs.digest.is_some()
                    && obs.manifest == Presence::Present
                    && !pin_mismatch(version, obs)
            })
            .collect();
        let mut view = GameView {
            name,
            game,
            observed,
            obs_all,
            keep_from,
            ingested,
            facts: Vec::new(),
        };
        view.facts = (0..n_versions)
            .map(|idx| InputFacts {
                source_ok: view.obs_all[idx].source_present
                    && !view.obs_all[idx].drifted
                    && view.ingested[idx],
                manifest: view.ingested[idx],
                pack: view.obs_all[idx].pack == Presence::Present,
                delta_from_previous: idx > 0
                    && view.delta_presence(idx - 1, idx) == Presence::Present,
            })
            .collect();
        view
    }

    /// The key of one of this game's versions in [`Diff::conditions`].
    fn key(&self, version: &str) -> (String, String) {
        (self.name.to_string(), version.to_string())
    }

    /// Whether the delta row from version `from` to version `to` (by index) is there.
    fn delta_presence(&self, from: usize, to: usize) -> Presence {
        self.observed
            .deltas
            .get(&(
                self.name.to_string(),
                self.game.versions[from].name.clone(),
                self.game.versions[to].name.clone(),
            ))
            .copied()
            .unwrap_or_default()
    }

    /// Whether version `idx`'s tree can be had, for a job that needs it.
    fn can_build(&self, idx: usize) -> bool {
        input_for(&self.facts, idx).is_some()
    }

    /// The recorded tree digest of version `idx` (empty when none is recorded).
    fn digest(&self, idx: usize) -> &str {
        self.obs_all[idx].digest.as_deref().unwrap_or_default()
    }

    /// A kept version: what it needs (its ingest, its pack, the delta from the previous
    /// version), with the work queued in `out`, and the status that follows.
    fn kept_version_status(&self, idx: usize, out: &mut Diff) -> VersionStatus {
        let mut needs: Vec<Need> = Vec::new();
        needs.extend(self.ingest_need(idx, out));
        if self.ingested[idx] {
            needs.extend(self.pack_need(idx, out));
            needs.extend(self.previous_delta_need(idx, out));
        }
        status_of(needs, self.obs_all[idx])
    }

    /// The ingest: stuck on drift, done when ingested, else a job or the reason there is
    /// none.
    fn ingest_need(&self, idx: usize, out: &mut Diff) -> Option<Need> {
        let version = &self.game.versions[idx];
        let obs = self.obs_all[idx];
        if obs.drifted {
            let digest = obs.digest.as_deref().unwrap_or("its recorded digest");
            return Some(Need::Stuck(
                Reason::DigestMismatch,
                format!(
                    "the build in {} changed on the NAS after it was ingested as {digest}; it is \
                     not served and not re-ingested: restore the build, or publish the new one \
                     as a new version",
                    version.source
                ),
            ));
        }
        if self.ingested[idx] {
            return None;
        }
        let ingest = Action::Ingest {
            game: self.name.to_string(),
            version: version.name.clone(),
            source: version.source.clone(),
            pinned: version.pinned.clone(),
        };
        let need = if let Some(job) = job_of(self.observed, &ingest) {
            job_need(job, format!("ingesting the build in {}", version.source))
        } else if obs.source_present {
            out.actions.push(ingest);
            Need::Working(format!("ingesting the build in {}", version.source))
        } else if pin_mismatch(version, obs) {
            Need::Stuck(
                Reason::PinnedDigestMismatch,
                format!(
                    "the spec pins {} but the version was ingested as {}, and the build {} is \
                     not on the NAS",
                    version.pinned.as_deref().unwrap_or_default(),
                    obs.digest.as_deref().unwrap_or_default(),
                    version.source
                ),
            )
        } else if obs.digest.is_some() {
            Need::Stuck(
                Reason::SourceMissing,
                format!(
                    "the manifest of this version is missing from the NAS and its build {} is \
                     gone, so it cannot be made again",
                    version.source
                ),
            )
        } else {
            Need::Stuck(
                Reason::SourceMissing,
                format!(
                    "the build {} is not on the NAS; Mist looks again as soon as something \
                     changes under incoming/, and at every periodic resync (--resync)",
                    version.source
                ),
            )
        };
        Some(need)
    }

    /// The pack of an ingested version: linked when a pack of the same content exists, else
    /// a job if its tree can be had.
    fn pack_need(&self, idx: usize, out: &mut Diff) -> Option<Need> {
        let version = &self.game.versions[idx];
        if self.obs_all[idx].pack == Presence::Present {
            return None;
        }
        let digest = self.digest(idx);
        if let Some(address) = self.observed.packs.get(digest) {
            out.actions.push(Action::LinkPack {
                game: self.name.to_string(),
                version: version.name.clone(),
                address: address.clone(),
            });
            return Some(Need::Working(
                "linking the pack of identical content".to_string(),
            ));
        }
        let pack = Action::Pack {
            game: self.name.to_string(),
            version: version.name.clone(),
            digest: digest.to_string(),
        };
        let need = if let Some(job) = job_of(self.observed, &pack) {
            job_need(job, "packing".to_string())
        } else if self.can_build(idx) {
            out.actions.push(pack);
            Need::Working("packing".to_string())
        } else {
            Need::Stuck(Reason::SourceMissing, gone(version))
        };
        Some(need)
    }

    /// The delta from the previous version to an ingested one (none for the oldest kept
    /// version).
    fn previous_delta_need(&self, idx: usize, out: &mut Diff) -> Option<Need> {
        if idx <= self.keep_from || self.delta_presence(idx - 1, idx) == Presence::Present {
            return None;
        }
        let previous = &self.game.versions[idx - 1];
        if !self.ingested[idx - 1] {
            return Some(Need::Stuck(
                Reason::Blocked,
                format!(
                    "waiting for the previous version {} to be ingested, to make the delta from \
                     it",
                    previous.name
                ),
            ));
        }
        let what = format!("making the delta from {}", previous.name);
        Some(self.delta_need(idx - 1, idx, what, out))
    }

    /// What a delta between two ingested versions needs: nothing if linked or present, a
    /// job if both trees can be had, else it is stuck.
    fn delta_need(&self, from_idx: usize, to_idx: usize, what: String, out: &mut Diff) -> Need {
        let from_version = &self.game.versions[from_idx];
        let to_version = &self.game.versions[to_idx];
        let (from_digest, to_digest) = (self.digest(from_idx), self.digest(to_idx));
        if let Some(address) = self
            .observed
            .delta_artifacts
            .get(&(from_digest.to_string(), to_digest.to_string()))
        {
            out.actions.push(Action::LinkDelta {
                game: self.name.to_string(),
                from: from_version.name.clone(),
                to: to_version.name.clone(),
                address: address.clone(),
            });
            return Need::Working("linking the delta of identical content".to_string());
        }
        let delta = Action::Delta {
            game: self.name.to_string(),
            from: from_version.name.clone(),
            to: to_version.name.clone(),
            from_digest: from_digest.to_string(),
            to_digest: to_digest.to_string(),
        };
        if let Some(job) = job_of(self.observed, &delta) {
            return job_need(job, what);
        }
        if !self.can_build(from_idx) {
            return Need::Stuck(Reason::Blocked, gone(from_version));
        }
        if !self.can_build(to_idx) {
            return Need::Stuck(Reason::SourceMissing, gone(to_version));
        }
        out.actions.push(delta);
        Need::Working(what)
    }

    /// Deltas from each of `skip_deltas` versions before the previous one to the latest, when
    /// the latest is ingested.
    fn warm_skip_deltas(&self, skip_deltas: usize, out: &mut Diff) {
        let n_versions = self.game.versions.len();
        if n_versions < 3 || !self.ingested[n_versions - 1] {
            return;
        }
        let latest_idx = n_versions - 1;
        for idx in (self.keep_from..latest_idx - 1).rev().take(skip_deltas) {
            if !self.ingested[idx] || self.delta_presence(idx, latest_idx) == Presence::Present {
                continue;
            }
            let _ = self.delta_need(idx, latest_idx, String::new(), out);
        }
    }

    /// A version beyond `keepVersions`: inactive, and its artifacts pruned when `prune_now`.
    fn beyond_kept_status(
        &self,
        idx: usize,
        may_prune: bool,
        prune_now: bool,
        out: &mut Diff,
    ) -> VersionStatus {
        let version = &self.game.versions[idx];
        let keep_versions = self.game.keep_versions;
        let message = if !has_data(self.name, &version.name, self.obs_all[idx], self.observed) {
            format!(
                "beyond the newest {keep_versions} versions kept; its artifacts were removed (its \
                 build in {} is left alone)",
                version.source
            )
        } else if prune_now {
            out.actions.push(Action::Prune {
                game: self.name.to_string(),
                version: version.name.clone(),
                remove: false,
            });
            format!("beyond the newest {keep_versions} versions kept; removing its artifacts")
        } else if !may_prune {
            format!(
                "beyond the newest {keep_versions} versions kept; nothing is pruned while the \
                 latest spec commit fails, the specs cannot be read, or no game is declared"
            )
        } else {
            format!(
                "beyond the newest {keep_versions} versions kept; its artifacts are removed once \
                 the newer versions are ready"
            )
        };
        VersionStatus {
            condition: Condition {
                status: Status::Inactive,
                reason: Reason::Pruned,
                message,
            },
            state: VersionState::Retired,
        }
    }

    /// Versions observed but no longer in the specs: retired, and pruned with their row when
    /// the retention policy allows and every kept version is Ready.
    fn removed_versions(&self, prune_allowed: bool, all_kept_ready: bool, out: &mut Diff) {
        let desired_names: BTreeSet<&str> =
            self.game.versions.iter().map(|v| v.name.as_str()).collect();
        let range = (self.name.to_string(), String::new())..;
        for ((observed_game, version_name), _) in self.observed.versions.range(range) {
            if observed_game != self.name {
                break;
            }
            if desired_names.contains(version_name.as_str()) {
                continue;
            }
            let status = if prune_allowed && all_kept_ready {
                out.actions.push(Action::Prune {
                    game: self.name.to_string(),
                    version: version_name.clone(),
                    remove: true,
                });
                retired("removed from the specs; removing its artifacts")
            } else if prune_allowed {
                retired(
                    "removed from the specs; its artifacts are removed once the versions kept \
                     are ready",
                )
            } else {
                retired("removed from the specs; its data is kept (no retention policy prunes it)")
            };
            out.conditions.insert(self.key(version_name), status);
        }
    }
}

fn gone(version: &DesiredVersion) -> String {
    format!(
        "the build of {} is not on the NAS ({}) and cannot be rebuilt from the delta chain or its \
         pack",
        version.name, version.source
    )
}

fn pin_mismatch(version: &DesiredVersion, obs: &ObservedVersion) -> bool {
    matches!((&version.pinned, &obs.digest), (Some(pinned), Some(digest)) if pinned != digest)
}

fn job_of<'a>(observed: &'a Observed, action: &Action) -> Option<&'a ObservedJob> {
    jobs::key(action).and_then(|key| observed.jobs.get(&key))
}

/// How a piece of work stands given its job.
fn job_need(job: &ObservedJob, what: String) -> Need {
    match job.state {
        JobState::Terminal => {
            let error = job.last_error.as_deref().unwrap_or("failed");
            let (reason, message) = Reason::of_terminal_error(error);
            Need::Stuck(reason, message.to_string())
        }
        JobState::Failed => Need::Working(format!(
            "{what} (attempt {} failed: {}; retrying)",
            job.attempts,
            job.last_error.as_deref().unwrap_or("unknown error")
        )),
        JobState::Queued | JobState::Running | JobState::Done => Need::Working(what),
    }
}

/// Whether anything recorded remains to prune for a version.
fn has_data(
    game_name: &str,
    version_name: &str,
    obs: &ObservedVersion,
    observed: &Observed,
) -> bool {
    obs.manifest != Presence::Absent
        || obs.pack != Presence::Absent
        || observed.deltas.keys().any(|(game, from, to)| {
            game == game_name && (from == version_name || to == version_name)
        })
}

fn status_of(needs: Vec<Need>, obs: &ObservedVersion) -> VersionStatus {
    let mut working = Vec::new();
    for need in needs {
        match need {
            Need::Working(what) if what.is_empty() => {}
            Need::Working(what) => working.push(what),
            Need::Stuck(reason, message) => {
                let state = VersionState::Stalled;
                return VersionStatus {
                    condition: Condition {
                        status: Status::Stalled,
                        reason,
                        message,
                    },
                    state,
                };
            }
        }
    }
    if working.is_empty() {
        return VersionStatus {
            condition: Condition {
                status: Status::Ready,
                reason: Reason::Ready,
                message: "manifest, pack and delta from the previous version are ready".to_string(),
            },
            state: VersionState::Ready,
        };
    }
    let reason = if obs.digest.is_none() || working.iter().any(|w| w.starts_with("ingesting")) {
        Reason::Ingesting
    } else {
        Reason::Building
    };
    let state = if obs.digest.is_some() {
        VersionState::Ingested
    } else {
        VersionState::Pending
    };
    let message = working.join("; ");
    VersionStatus {
        condition: Condition {
            status: Status::Reconciling,
            reason,
            message,
        },
        state,
    }
}

#[cfg(test)]
mod tests;
