//! Observed state: the database snapshot checked against what is really on the NAS.
//!
//! Cheap facts are checked on every pass: each recorded artifact is stat-ed (present, a
//! regular file, the recorded size) and each version's source folder is looked for. Hashing
//! is not: builds are re-scanned on a slow schedule, at most once per
//! [`ObserveConfig::verify_interval`] per version (and at once when a job found the build
//! changed under it). A re-scan that no longer gives the recorded tree digest is drift: the
//! version is marked drifted until a later re-scan matches again. Drift is remembered in the
//! database as the version's `Stalled` condition with reason `DigestMismatch`, so a restart does
//! not forget it; a match is remembered as the manifest artifact's `verified_at`.
//!
//! Everything here blocks (stat, scans); the pass runs it on a blocking thread.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mist_db::EpochMs;
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectKind};
use mist_db::snapshot::Snapshot;
use mist_db::state::ArtifactKind;
use mist_games::manifest::{self, ScanError};
use rayon::prelude::*;

/// A hash map with a fast, non-cryptographic hasher: its keys come from the database and
/// the NAS, and a pass over a large NAS builds maps of tens of thousands of them.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

use crate::diff::condition::Reason;
use crate::diff::{Desired, Observed, ObservedJob, ObservedVersion, Presence};
use crate::store::ArtifactStore;

/// How observation verifies builds.
#[derive(Debug, Clone, Copy)]
pub struct ObserveConfig {
    /// Re-scan an ingested build at most this often (0: on every pass).
    pub verify_interval: Duration,
    /// Stop starting new re-scans in a pass after this long; the rest wait for the next pass.
    pub verify_budget: Duration,
}

/// What observation remembers between passes (in memory): when each build was last re-scanned
/// (matching or not), and which builds a job found changed.
#[derive(Debug, Default)]
pub struct VerifyState {
    last_scan: FastMap<(String, String), EpochMs>,
    suspects: FastSet<(String, String)>,
}

impl VerifyState {
    /// Asks for the build of a version to be re-scanned on the next pass, whatever the
    /// schedule (a job found a file that no longer matches its manifest).
    pub fn suspect(&mut self, game: &str, version: &str) {
        self.suspects
            .insert((game.to_string(), version.to_string()));
    }

    /// Whether a job asked for a build to be re-scanned on the next pass.
    pub fn has_suspects(&self) -> bool {
        !self.suspects.is_empty()
    }
}

/// The outcome of observing.
#[derive(Debug, Default)]
pub struct Observation {
    /// What the diff compares against.
    pub observed: Observed,
    /// Manifest artifacts whose build was re-scanned and matched: their `verified_at` moves.
    pub verified: Vec<String>,
    /// Versions whose re-scan found drift: (game, version, the digest found).
    pub drift_found: Vec<(String, String, String)>,
    /// Versions whose re-scan matched although they were marked drifted.
    pub drift_cleared: Vec<(String, String)>,
    /// Every source folder looked for (relative to the NAS root), and whether it was there.
    /// With the snapshot, the artifacts on the NAS and the specs, these are everything the
    /// observation read, as long as no build was due for a re-scan.
    pub sources_checked: Vec<(String, bool)>,
    /// When the next build is due for a re-scan (`None`: no build to re-scan).
    pub next_verify_at: Option<EpochMs>,
}

/// Every regular file in the artifact store with its size, by address: one stat per file,
/// the 256 folders walked in parallel. The pass runs it while the database snapshot loads.
pub fn artifacts_on_disk(store: &ArtifactStore) -> FastMap<String, u64> {
    let Ok(entries) = std::fs::read_dir(store.artifacts_dir()) else {
        return FastMap::default();
    };
    let dirs: Vec<std::path::PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect();
    dirs.par_iter()
        .flat_map_iter(|dir| {
            let mut found = Vec::new();
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    // `DirEntry::metadata` does not follow symlinks.
                    if let (Ok(metadata), Some(name)) =
                        (entry.metadata(), entry.file_name().to_str())
                        && metadata.is_file()
                    {
                        found.push((format!("blake3:{name}"), metadata.len()));
                    }
                }
            }
            found
        })
        .collect()
}

/// Observes: `snapshot` checked against the NAS (`on_disk` from [`artifacts_on_disk`]), for
/// the versions `desired` speaks of.
pub fn observe(
    snapshot: &Snapshot,
    on_disk: &FastMap<String, u64>,
    desired: &Desired,
    nas: &Path,
    verify_state: &mut VerifyState,
    config: ObserveConfig,
    now: EpochMs,
) -> Observation {
    // An artifact is present when its file is there with the recorded size.
    let present: FastSet<&str> = snapshot
        .artifacts
        .iter()
        .filter(|artifact| on_disk.get(artifact.address.as_str()) == Some(&artifact.size))
        .map(|artifact| artifact.address.as_str())
        .collect();
    let verified_at: FastMap<&str, Option<EpochMs>> = snapshot
        .artifacts
        .iter()
        .filter(|artifact| artifact.kind == ArtifactKind::Manifest)
        .map(|artifact| (artifact.address.as_str(), artifact.verified_at))
        .collect();
    let is_present = |address: &str| present.contains(address);
    let presence = |address: Option<&str>| match address {
        None => Presence::Absent,
        Some(address) if is_present(address) => Presence::Present,
        Some(_) => Presence::Missing,
    };

    // Source folders, for games with work to do: a game whose every version has its
    // manifest, pack and delta from the previous version needs no build to be read (drift
    // re-scans look for their build themselves), and a large NAS has thousands of them.
    let rows: FastMap<(&str, &str), &mist_db::state::Version> = snapshot
        .versions
        .iter()
        .map(|version| {
            (
                (version.spec.game.as_str(), version.spec.name.as_str()),
                version,
            )
        })
        .collect();
    let delta_rows: FastMap<(&str, &str, &str), &str> = snapshot
        .deltas
        .iter()
        .map(|delta| {
            (
                (
                    delta.game.as_str(),
                    delta.from_version.as_str(),
                    delta.to_version.as_str(),
                ),
                delta.address.as_str(),
            )
        })
        .collect();
    let mut sources: Vec<(&str, &str, &str)> = Vec::new();
    for (game_name, game) in &desired.games {
        if game.suspend {
            continue;
        }
        let complete = game.versions.iter().enumerate().all(|(idx, version)| {
            let Some(row) = rows.get(&(game_name.as_str(), version.name.as_str())) else {
                return false;
            };
            let delta_ok = idx == 0
                || delta_rows
                    .get(&(
                        game_name.as_str(),
                        game.versions[idx - 1].name.as_str(),
                        version.name.as_str(),
                    ))
                    .is_some_and(|address| is_present(address));
            row.observed.tree_digest.is_some()
                && presence(row.observed.manifest_address.as_deref()) == Presence::Present
                && presence(row.observed.pack_address.as_deref()) == Presence::Present
                && delta_ok
        });
        if complete {
            continue;
        }
        for version in &game.versions {
            sources.push((game_name, &version.name, &version.source));
        }
    }
    let sources_found: Vec<bool> = sources
        .par_iter()
        .map(|(_, _, source)| nas.join(source).is_dir())
        .collect();
    let sources_present: FastSet<(&str, &str)> = sources
        .iter()
        .zip(&sources_found)
        .filter(|(_, found)| **found)
        .map(|((game, version, _), _)| (*game, *version))
        .collect();

    // Drift remembered from earlier passes.
    let drifted_before: FastSet<(&str, &str)> = snapshot
        .conditions
        .iter()
        .filter(|condition| {
            condition.object.kind == ObjectKind::Version
                && condition.condition_type == ConditionType::Stalled
                && condition.status == ConditionStatus::True
                && condition.reason == Reason::DigestMismatch.as_str()
        })
        .filter_map(|condition| condition.object.name.split_once('/'))
        .collect();

    let mut observation = Observation {
        sources_checked: sources
            .iter()
            .zip(&sources_found)
            .map(|((_, _, source), found)| (source.to_string(), *found))
            .collect(),
        ..Observation::default()
    };
    let observed = &mut observation.observed;
    // Sources of the versions of games that are not suspended.
    let desired_source: FastMap<(&str, &str), &str> = desired
        .games
        .iter()
        .filter(|(_, game)| !game.suspend)
        .flat_map(|(game_name, game)| {
            game.versions
                .iter()
                .map(move |v| ((game_name.as_str(), v.name.as_str()), v.source.as_str()))
        })
        .collect();
    let verify_started = Instant::now();
    let interval_ms = i64::try_from(config.verify_interval.as_millis()).unwrap_or(i64::MAX);
    let mut digests: FastMap<(&str, &str), &str> = FastMap::default();
    for version in &snapshot.versions {
        let game = version.spec.game.as_str();
        let name = version.spec.name.as_str();
        let mut source_present = sources_present.contains(&(game, name));
        let mut drifted = drifted_before.contains(&(game, name));
        let digest = version.observed.tree_digest.clone();
        if let Some(digest) = version.observed.tree_digest.as_deref() {
            digests.insert((game, name), digest);
        }

        // The slow re-verification of an ingested build.
        if let (Some(digest), Some(manifest_address), Some(source)) = (
            &digest,
            &version.observed.manifest_address,
            desired_source.get(&(game, name)),
        ) {
            let id = (game.to_string(), name.to_string());
            let last_match = verified_at
                .get(manifest_address.as_str())
                .copied()
                .flatten()
                .unwrap_or(i64::MIN);
            let last_scan = verify_state
                .last_scan
                .get(&id)
                .copied()
                .unwrap_or(i64::MIN)
                .max(last_match);
            let due =
                verify_state.suspects.contains(&id) || now.saturating_sub(last_scan) >= interval_ms;
            let next_scan = if due {
                now
            } else {
                last_scan.saturating_add(interval_ms)
            };
            observation.next_verify_at = Some(
                observation
                    .next_verify_at
                    .map_or(next_scan, |at| at.min(next_scan)),
            );
            if due && !source_present && nas.join(source).is_dir() {
                source_present = true;
            }
            if due && source_present && verify_started.elapsed() < config.verify_budget {
                verify_state.suspects.remove(&id);
                verify_state.last_scan.insert(id, now);
                match scan_digest(&nas.join(source)) {
                    Ok(found) if &found == digest => {
                        observation.verified.push(manifest_address.clone());
                        if drifted {
                            observation
                                .drift_cleared
                                .push((game.to_string(), name.to_string()));
                        }
                        drifted = false;
                    }
                    Ok(found) => {
                        if !drifted {
                            observation.drift_found.push((
                                game.to_string(),
                                name.to_string(),
                                found,
                            ));
                        }
                        drifted = true;
                    }
                    Err(error) => {
                        tracing::warn!(game, version = name, %error, "cannot re-verify the build");
                    }
                }
            }
        }

        observed.versions.insert(
            (game.to_string(), name.to_string()),
            ObservedVersion {
                state: version.observed.state,
                source_present,
                digest,
                manifest: presence(version.observed.manifest_address.as_deref()),
                pack: presence(version.observed.pack_address.as_deref()),
                drifted,
            },
        );
        if let (Some(digest), Some(pack)) = (
            &version.observed.tree_digest,
            version.observed.pack_address.as_deref(),
        ) && is_present(pack)
        {
            observed.packs.insert(digest.clone(), pack.to_string());
        }
    }
    // A source present for a version without a row yet (new in the specs).
    for (game, version) in &sources_present {
        observed
            .versions
            .entry((game.to_string(), version.to_string()))
            .or_insert_with(|| ObservedVersion {
                state: mist_db::state::VersionState::Pending,
                source_present: true,
                digest: None,
                manifest: Presence::Absent,
                pack: Presence::Absent,
                drifted: false,
            });
    }

    for delta in &snapshot.deltas {
        let presence = presence(Some(&delta.address));
        observed.deltas.insert(
            (
                delta.game.clone(),
                delta.from_version.clone(),
                delta.to_version.clone(),
            ),
            presence,
        );
        if presence == Presence::Present
            && let (Some(from), Some(to)) = (
                digests.get(&(delta.game.as_str(), delta.from_version.as_str())),
                digests.get(&(delta.game.as_str(), delta.to_version.as_str())),
            )
        {
            observed
                .delta_artifacts
                .insert((from.to_string(), to.to_string()), delta.address.clone());
        }
    }

    observed.jobs = snapshot
        .jobs
        .iter()
        .map(|job| {
            (
                job.key.clone(),
                ObservedJob {
                    state: job.state,
                    attempts: job.attempts,
                    last_error: job.last_error.clone(),
                },
            )
        })
        .collect::<BTreeMap<_, _>>();
    observed.users = snapshot
        .users
        .iter()
        .map(|user| (user.name.clone(), user.clone()))
        .collect();
    observation
}

/// The tree digest of the build at `root`, as text.
fn scan_digest(root: &Path) -> Result<String, ScanError> {
    match manifest::scan(root) {
        Ok(manifest) => Ok(manifest.tree_digest().to_string()),
        // A build that now holds something a build may not is a changed build.
        Err(ScanError::UnsupportedFileType { .. })
        | Err(ScanError::InvalidSymlink { .. })
        | Err(ScanError::NonUtf8Name { .. }) => Ok("(not a valid build any more)".to_string()),
        Err(error) => Err(error),
    }
}
