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
use mist_db::metadata::StoredImage;
use mist_db::snapshot::Snapshot;
use mist_db::state::ArtifactKind;
use mist_games::scan::{self, ScanError};
use rayon::prelude::*;

/// A hash map with a fast, non-cryptographic hasher: its keys come from the database and
/// the NAS, and a pass over a large NAS builds maps of tens of thousands of them.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

use crate::diff::condition::Reason;
use crate::diff::metadata::ObservedMetadata;
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
    let present = Present::new(snapshot, on_disk);
    let verified_at: FastMap<&str, Option<EpochMs>> = snapshot
        .artifacts
        .iter()
        .filter(|artifact| artifact.kind == ArtifactKind::Manifest)
        .map(|artifact| (artifact.address.as_str(), artifact.verified_at))
        .collect();

    // Source folders, for games with work to do: a game whose every version has its
    // manifest, pack and delta from the previous version needs no build to be read (drift
    // re-scans look for their build themselves), and a large NAS has thousands of them.
    let sources = sources_to_look_for(snapshot, desired, &present);
    let (sources_checked, sources_present) = look_for_sources(&sources, nas);

    let mut observation = Observation {
        sources_checked,
        ..Observation::default()
    };
    let desired_source = desired_sources(desired);
    let mut reverify = Reverify {
        state: verify_state,
        verified_at,
        nas,
        interval_ms: i64::try_from(config.verify_interval.as_millis()).unwrap_or(i64::MAX),
        budget: config.verify_budget,
        started: Instant::now(),
        now,
    };
    let seen_before = SeenBefore {
        sources_present: &sources_present,
        drifted: &drifted_before(snapshot),
        desired_source: &desired_source,
    };
    let digests = observe_versions(
        snapshot,
        &present,
        &seen_before,
        &mut reverify,
        &mut observation,
    );
    let observed = &mut observation.observed;
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
    observe_deltas(snapshot, &present, &digests, observed);
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
    observed.metadata = observe_metadata(snapshot, on_disk);
    observed.now = now;
    observation
}

/// Every game's metadata row, with whether its images are in the store with their size.
fn observe_metadata(
    snapshot: &Snapshot,
    on_disk: &FastMap<String, u64>,
) -> BTreeMap<String, ObservedMetadata> {
    let present = |image: &Option<StoredImage>| {
        image
            .as_ref()
            .is_some_and(|image| on_disk.get(image.address.as_str()) == Some(&image.size))
    };
    snapshot
        .metadata
        .iter()
        .map(|row| {
            (
                row.game.clone(),
                ObservedMetadata {
                    steam_image_present: present(&row.steam_image),
                    spec_image_present: present(&row.spec_image),
                    row: row.clone(),
                },
            )
        })
        .collect()
}

/// The source of each version of the games that are not suspended, by (game, version).
fn desired_sources(desired: &Desired) -> FastMap<(&str, &str), &str> {
    desired
        .games
        .iter()
        .filter(|(_, game)| !game.suspend)
        .flat_map(|(game_name, game)| {
            game.versions
                .iter()
                .map(move |v| ((game_name.as_str(), v.name.as_str()), v.source.as_str()))
        })
        .collect()
}

/// The recorded artifacts whose file is on the NAS with the recorded size.
struct Present<'a>(FastSet<&'a str>);

impl<'a> Present<'a> {
    fn new(snapshot: &'a Snapshot, on_disk: &FastMap<String, u64>) -> Present<'a> {
        Present(
            snapshot
                .artifacts
                .iter()
                .filter(|artifact| on_disk.get(artifact.address.as_str()) == Some(&artifact.size))
                .map(|artifact| artifact.address.as_str())
                .collect(),
        )
    }

    fn contains(&self, address: &str) -> bool {
        self.0.contains(address)
    }

    /// Whether a recorded address (if any) is there.
    fn presence(&self, address: Option<&str>) -> Presence {
        match address {
            None => Presence::Absent,
            Some(address) if self.contains(address) => Presence::Present,
            Some(_) => Presence::Missing,
        }
    }
}

/// The source folders to look for, as (game, version, source): every version of each game
/// that is not suspended and has work to do.
fn sources_to_look_for<'a>(
    snapshot: &'a Snapshot,
    desired: &'a Desired,
    present: &Present<'_>,
) -> Vec<(&'a str, &'a str, &'a str)> {
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
                    .is_some_and(|address| present.contains(address));
            row.observed.tree_digest.is_some()
                && present.presence(row.observed.manifest_address.as_deref()) == Presence::Present
                && present.presence(row.observed.pack_address.as_deref()) == Presence::Present
                && delta_ok
        });
        if complete {
            continue;
        }
        for version in &game.versions {
            sources.push((game_name, &version.name, &version.source));
        }
    }
    sources
}

/// A version by (game, version) names.
type VersionKey<'a> = (&'a str, &'a str);

/// Looks for each source folder: every folder looked for with whether it was there, and the
/// versions whose folder was found.
fn look_for_sources<'a>(
    sources: &[(&'a str, &'a str, &'a str)],
    nas: &Path,
) -> (Vec<(String, bool)>, FastSet<VersionKey<'a>>) {
    let sources_found: Vec<bool> = sources
        .par_iter()
        .map(|(_, _, source)| source_is_there(nas, source))
        .collect();
    let sources_present: FastSet<(&str, &str)> = sources
        .iter()
        .zip(&sources_found)
        .filter(|(_, found)| **found)
        .map(|((game, version, _), _)| (*game, *version))
        .collect();
    let sources_checked = sources
        .iter()
        .zip(&sources_found)
        .map(|((_, _, source), found)| (source.to_string(), *found))
        .collect();
    (sources_checked, sources_present)
}

/// Whether something is at a version's source, for the ingest to judge
/// (`mist_specs::nas::check_source_on_nas`, the check `mistpipe validate --nas` makes):
/// anything but a source that is not there (yet).
fn source_is_there(nas: &Path, source: &str) -> bool {
    !matches!(
        mist_specs::nas::resolve_source_on_nas(nas, source),
        Err(problem) if problem.may_still_arrive()
    )
}

/// Versions whose drift an earlier pass found: their `Stalled` condition with reason
/// `DigestMismatch`.
fn drifted_before(snapshot: &Snapshot) -> FastSet<(&str, &str)> {
    snapshot
        .conditions
        .iter()
        .filter(|condition| {
            condition.object.kind == ObjectKind::Version
                && condition.condition_type == ConditionType::Stalled
                && condition.status == ConditionStatus::True
                && condition.reason == Reason::DigestMismatch.as_str()
        })
        .filter_map(|condition| condition.object.name.split_once('/'))
        .collect()
}

/// What is known of the versions before their rows are observed, by (game, version).
struct SeenBefore<'s, 'a> {
    /// Source folders found.
    sources_present: &'s FastSet<(&'a str, &'a str)>,
    /// Versions an earlier pass found drifted.
    drifted: &'s FastSet<(&'a str, &'a str)>,
    /// The source of each version of a game that is not suspended.
    desired_source: &'s FastMap<(&'a str, &'a str), &'a str>,
}

/// Observes every version row: its artifacts, its source, and its build re-scanned when
/// due. Returns the recorded tree digests by (game, version).
fn observe_versions<'a>(
    snapshot: &'a Snapshot,
    present: &Present<'_>,
    seen_before: &SeenBefore<'_, '_>,
    reverify: &mut Reverify<'_>,
    observation: &mut Observation,
) -> FastMap<(&'a str, &'a str), &'a str> {
    let mut digests: FastMap<(&str, &str), &str> = FastMap::default();
    for version in &snapshot.versions {
        let game = version.spec.game.as_str();
        let name = version.spec.name.as_str();
        let mut seen = Seen {
            source_present: seen_before.sources_present.contains(&(game, name)),
            drifted: seen_before.drifted.contains(&(game, name)),
        };
        let digest = version.observed.tree_digest.clone();
        if let Some(digest) = version.observed.tree_digest.as_deref() {
            digests.insert((game, name), digest);
        }

        // The slow re-verification of an ingested build.
        if let (Some(digest), Some(manifest_address), Some(source)) = (
            &digest,
            &version.observed.manifest_address,
            seen_before.desired_source.get(&(game, name)),
        ) {
            reverify.version(
                (game, name),
                (digest, manifest_address),
                source,
                &mut seen,
                observation,
            );
        }

        observation.observed.versions.insert(
            (game.to_string(), name.to_string()),
            ObservedVersion {
                state: version.observed.state,
                source_present: seen.source_present,
                digest,
                manifest: present.presence(version.observed.manifest_address.as_deref()),
                pack: present.presence(version.observed.pack_address.as_deref()),
                drifted: seen.drifted,
            },
        );
        if let (Some(digest), Some(pack)) = (
            &version.observed.tree_digest,
            version.observed.pack_address.as_deref(),
        ) && present.contains(pack)
        {
            observation
                .observed
                .packs
                .insert(digest.clone(), pack.to_string());
        }
    }
    digests
}

/// Every delta row with whether its artifact is there, and the present ones by the pair of
/// tree digests they join.
fn observe_deltas(
    snapshot: &Snapshot,
    present: &Present<'_>,
    digests: &FastMap<(&str, &str), &str>,
    observed: &mut Observed,
) {
    for delta in &snapshot.deltas {
        let presence = present.presence(Some(&delta.address));
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
}

/// What observing found of one version so far.
struct Seen {
    source_present: bool,
    drifted: bool,
}

/// The slow re-verification of ingested builds, for one pass.
struct Reverify<'a> {
    state: &'a mut VerifyState,
    /// When each manifest's build last matched, by manifest address.
    verified_at: FastMap<&'a str, Option<EpochMs>>,
    nas: &'a Path,
    interval_ms: i64,
    budget: Duration,
    /// When the pass started re-scanning: none starts after `budget`.
    started: Instant,
    now: EpochMs,
}

impl Reverify<'_> {
    /// Re-scans the build of one ingested version (`source`, recorded as `digest` with its
    /// manifest at `manifest_address`) when it is due and the budget allows; a match, drift
    /// found or drift cleared goes into `observation`.
    fn version(
        &mut self,
        (game, name): (&str, &str),
        (digest, manifest_address): (&str, &str),
        source: &str,
        seen: &mut Seen,
        observation: &mut Observation,
    ) {
        let id = (game.to_string(), name.to_string());
        let last_match = self
            .verified_at
            .get(manifest_address)
            .copied()
            .flatten()
            .unwrap_or(i64::MIN);
        let last_scan = self
            .state
            .last_scan
            .get(&id)
            .copied()
            .unwrap_or(i64::MIN)
            .max(last_match);
        let due = self.state.suspects.contains(&id)
            || self.now.saturating_sub(last_scan) >= self.interval_ms;
        let next_scan = if due {
            self.now
        } else {
            last_scan.saturating_add(self.interval_ms)
        };
        observation.next_verify_at = Some(
            observation
                .next_verify_at
                .map_or(next_scan, |at| at.min(next_scan)),
        );
        if due && !seen.source_present && source_is_there(self.nas, source) {
            seen.source_present = true;
        }
        if !(due && seen.source_present && self.started.elapsed() < self.budget) {
            return;
        }
        self.state.suspects.remove(&id);
        self.state.last_scan.insert(id, self.now);
        match scan_digest(&self.nas.join(source)) {
            Ok(found) if found == digest => {
                observation.verified.push(manifest_address.to_string());
                if seen.drifted {
                    observation
                        .drift_cleared
                        .push((game.to_string(), name.to_string()));
                }
                seen.drifted = false;
            }
            Ok(found) => {
                if !seen.drifted {
                    observation
                        .drift_found
                        .push((game.to_string(), name.to_string(), found));
                }
                seen.drifted = true;
            }
            Err(error) => {
                tracing::warn!(game, version = name, %error, "cannot re-verify the build");
            }
        }
    }
}

/// The tree digest of the build at `root`, as text.
fn scan_digest(root: &Path) -> Result<String, ScanError> {
    match scan::scan(root) {
        Ok(manifest) => Ok(manifest.tree_digest().to_string()),
        // A build that now holds something a build may not is a changed build.
        Err(ScanError::UnsupportedFileType { .. })
        | Err(ScanError::InvalidSymlink { .. })
        | Err(ScanError::NonUtf8Name { .. }) => Ok("(not a valid build any more)".to_string()),
        Err(error) => Err(error),
    }
}
