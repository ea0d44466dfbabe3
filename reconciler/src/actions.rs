//! Executing one job: ingest, pack, delta, prune.
//!
//! A job reads everything it needs fresh from the database and the NAS when it runs (the
//! payload only names the work), so a job that waited in the queue acts on the present, not
//! on what was true when it was queued. Every output is a content-addressed artifact written
//! through [`ArtifactStore`] (temp file, fsync, rename), recorded in the database only after
//! it is in place; a job cut short at any point can simply run again.
//!
//! Errors are either retryable (the queue backs off and retries: I/O, a build being copied)
//! or terminal (waiting for a spec change: the build does not hash to the pinned digest, or
//! is not a valid build). A terminal error's text starts with its stable reason,
//! `"<Reason>: <message>"`, which the diff shows as the version's condition.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef, Severity};
use mist_db::queue::{Job, Progress};
use mist_db::state::{Artifact, ArtifactKind, Delta, VersionObserved, VersionState};
use mist_db::{Db, EpochMs};
use mist_games::manifest::{Manifest, ScanError};
use mist_games::pack::{self, PackError};
use mist_games::replay::{self, ReplayError};
use mist_games::treedelta::{self, Build, CreateOptions, Package, TreeDeltaError};

use crate::diff::action::Action;
use crate::diff::condition::Reason;
use crate::diff::input::{Input, InputFacts, input_for};
use crate::observe::VerifyState;
use crate::store::{ArtifactStore, STATE_DIR, Stored, TmpGuard};

/// The zstd level of packs: packs are made once and downloaded many times, but a level in
/// the high teens would take hours on a large build with two cores.
pub const PACK_ZSTD_LEVEL: i32 = 12;

/// How many events each object keeps.
pub const EVENTS_KEPT: u32 = 50;

/// What a job run needs.
#[derive(Debug)]
pub(crate) struct Context {
    pub db: Db,
    pub store: ArtifactStore,
    pub nas: PathBuf,
    /// Serialises read-modify-write of version rows between the pass and the workers of
    /// this process.
    pub rows: tokio::sync::Mutex<()>,
    /// Builds a job found changed are re-scanned on the next pass.
    pub verify: Mutex<VerifyState>,
}

/// Why a job did not succeed.
#[derive(Debug)]
pub(crate) enum ActionError {
    /// Retry later, with backoff.
    Retry(String),
    /// Retrying cannot help; wait for a spec change.
    Terminal(Reason, String),
    /// Stopped for a shutdown; release the job.
    Cancelled,
}

/// Progress of the running job, set by the work and read by the reporter.
#[derive(Debug, Default)]
pub(crate) struct ProgressCell {
    inner: Mutex<Progress>,
}

impl ProgressCell {
    /// Starts stage `stage_index` named `stage`, with `total` units.
    pub fn stage(&self, stage_index: u32, stage: &str, total: u64) {
        let mut progress = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if stage_index < progress.stage_index {
            return;
        }
        *progress = Progress {
            stage_index,
            stage: stage.to_string(),
            done: 0,
            total,
        };
    }

    /// Sets the units done (and total) of the current stage; never moves backwards.
    pub fn set(&self, done: u64, total: u64) {
        let mut progress = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        progress.total = progress.total.max(total);
        progress.done = progress.done.max(done.min(progress.total));
    }

    /// The progress now.
    pub fn get(&self) -> Progress {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs one job to its end (or its first error).
pub(crate) async fn execute(
    ctx: Arc<Context>,
    job: Job,
    progress: Arc<ProgressCell>,
    cancel: Arc<AtomicBool>,
    now: fn() -> EpochMs,
) -> Result<(), ActionError> {
    let action = crate::jobs::parse_payload(&job.payload_json).map_err(|e| {
        ActionError::Terminal(Reason::Failed, format!("unreadable job payload: {e}"))
    })?;
    let run = Run {
        ctx,
        progress,
        cancel,
        now,
    };
    match action {
        Action::Ingest {
            game,
            version,
            source,
            pinned,
        } => {
            run.ingest(&game, &version, &source, pinned.as_deref())
                .await
        }
        Action::Pack {
            game,
            version,
            digest,
        } => run.pack(&game, &version, &digest).await,
        Action::Delta {
            game,
            from,
            to,
            from_digest,
            to_digest,
        } => run.delta(&game, &from, &to, &from_digest, &to_digest).await,
        Action::Prune {
            game,
            version,
            remove,
        } => run.prune(&game, &version, remove).await,
        Action::LinkPack { .. } | Action::LinkDelta { .. } => Err(ActionError::Terminal(
            Reason::Failed,
            "links are not jobs".to_string(),
        )),
    }
}

struct Run {
    ctx: Arc<Context>,
    progress: Arc<ProgressCell>,
    cancel: Arc<AtomicBool>,
    now: fn() -> EpochMs,
}

/// One version as a job sees it, fresh from the database and the NAS.
#[derive(Debug, Clone)]
struct VersionFact {
    name: String,
    source: String,
    digest: Option<String>,
    manifest_address: Option<String>,
    pack_address: Option<String>,
}

/// A game's versions (in order, without retired ones), their deltas and input facts.
struct GameFacts {
    versions: Vec<VersionFact>,
    inputs: Vec<InputFacts>,
    /// Delta artifact addresses by (from, to) version name.
    deltas: HashMap<(String, String), String>,
}

/// A build tree on disk, removed when dropped if it was made for the job.
struct Tree {
    root: PathBuf,
    _guard: Option<TmpGuard>,
}

fn retry(error: impl std::fmt::Display) -> ActionError {
    ActionError::Retry(error.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ActionError> + Send + 'static,
) -> Result<T, ActionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ActionError::Retry(format!("the work panicked: {e}")))?
}

impl Run {
    fn now(&self) -> EpochMs {
        (self.now)()
    }

    fn check_cancel(&self) -> Result<(), ActionError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(ActionError::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn event(&self, object: &ObjectRef, severity: Severity, reason: &str, message: &str) {
        if let Err(error) = self
            .ctx
            .db
            .record_event(object, severity, reason, message, self.now(), EVENTS_KEPT)
            .await
        {
            tracing::warn!(%error, "cannot record an event");
        }
    }

    /// Scans the source build, checks it and records its manifest.
    #[tracing::instrument(skip(self))]
    async fn ingest(
        &self,
        game: &str,
        version: &str,
        source: &str,
        pinned: Option<&str>,
    ) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        if source == STATE_DIR || source.starts_with(&format!("{STATE_DIR}/")) {
            return Err(ActionError::Terminal(
                Reason::InvalidBuild,
                format!("the source {source} is inside the reconciler's own folder {STATE_DIR}"),
            ));
        }
        let nas = self.ctx.nas.clone();
        let source_owned = source.to_string();
        let root = blocking(move || {
            mist_specs::load::check_source_on_nas(&nas, &source_owned)
                .map(|()| nas.join(&source_owned))
                .map_err(|message| {
                    if nas.join(&source_owned).exists() {
                        ActionError::Terminal(Reason::InvalidBuild, message)
                    } else {
                        ActionError::Retry(message)
                    }
                })
        })
        .await?;

        self.progress.stage(0, "scan", 0);
        let progress = self.progress.clone();
        let manifest = blocking(move || {
            mist_games::manifest::scan_with_progress(&root, &|done, total| {
                progress.set(done, total)
            })
            .map_err(|error| match error {
                ScanError::UnsupportedFileType { .. }
                | ScanError::InvalidSymlink { .. }
                | ScanError::NonUtf8Name { .. }
                | ScanError::RootNotDirectory { .. } => {
                    ActionError::Terminal(Reason::InvalidBuild, error.to_string())
                }
                ScanError::Io { .. } | ScanError::Changed { .. } => retry(error),
            })
        })
        .await?;
        self.check_cancel()?;

        let digest = manifest.tree_digest().to_string();
        if let Some(pinned) = pinned
            && pinned != digest
        {
            return Err(ActionError::Terminal(
                Reason::PinnedDigestMismatch,
                format!(
                    "the build in {source} hashes to {digest}, but the spec pins {pinned}; pin \
                     the digest `mistpipe manifest` prints for this build, or restore the build"
                ),
            ));
        }
        let row = db
            .version(game, version)
            .await
            .map_err(retry)?
            .ok_or_else(|| {
                ActionError::Retry(format!("version {game}/{version} has no row yet"))
            })?;
        if let Some(recorded) = &row.observed.tree_digest
            && recorded != &digest
            && pinned != Some(digest.as_str())
        {
            return Err(ActionError::Terminal(
                Reason::DigestMismatch,
                format!(
                    "the build in {source} hashes to {digest}, but it was ingested as \
                     {recorded}; a released version never changes silently: restore the build, \
                     pin the new digest, or publish it as a new version"
                ),
            ));
        }

        let json = serde_json::to_vec(&manifest).map_err(retry)?;
        self.progress.stage(1, "store", json.len() as u64);
        let store = self.ctx.store.clone();
        let stored = blocking(move || store.put(&json).map_err(retry)).await?;
        self.progress.set(stored.size, stored.size);
        self.check_cancel()?;
        let now = self.now();
        self.record(&stored, ArtifactKind::Manifest, Some(now))
            .await?;

        let n_files = manifest.n_files();
        let total_size = manifest.total_size();
        {
            let _rows = self.ctx.rows.lock().await;
            let row = db
                .version(game, version)
                .await
                .map_err(retry)?
                .ok_or_else(|| ActionError::Retry(format!("version {game}/{version} is gone")))?;
            let same_content = row.observed.tree_digest.as_deref() == Some(digest.as_str());
            let observed = VersionObserved {
                tree_digest: Some(digest.clone()),
                manifest_address: Some(stored.address.clone()),
                pack_address: if same_content {
                    row.observed.pack_address.clone()
                } else {
                    None
                },
                state: match row.observed.state {
                    VersionState::Pending => VersionState::Ingested,
                    state => state,
                },
            };
            db.set_version_observed(game, version, &observed, now)
                .await
                .map_err(retry)?;
        }
        self.event(
            &ObjectRef::version(game, version),
            Severity::Normal,
            "Ingested",
            &format!("ingested {source}: {n_files} files, {total_size} bytes, {digest}"),
        )
        .await;
        Ok(())
    }

    /// Packs a version.
    #[tracing::instrument(skip(self))]
    async fn pack(&self, game: &str, version: &str, digest: &str) -> Result<(), ActionError> {
        let Some((game, version)) = self.locate(game, version, &[digest]).await? else {
            tracing::info!("no version has this content any more; nothing to pack");
            return Ok(());
        };
        let (game, version) = (game.as_str(), version[0].as_str());
        let facts = self.game_facts(game).await?;
        let Some(idx) = facts.index_of(version, digest) else {
            return Err(ActionError::Retry(format!(
                "{game}/{version} changed meanwhile"
            )));
        };
        let manifest = self.manifest_of(&facts.versions[idx]).await?;
        self.progress.stage(0, "prepare", 1);
        let tree = self.tree(game, &facts, idx, &manifest, "pack").await?;
        self.progress.set(1, 1);
        self.check_cancel()?;

        let total = pack::tar_len(&manifest);
        self.progress.stage(1, "pack", total);
        let store = self.ctx.store.clone();
        let cancel = self.cancel.clone();
        let written = Arc::new(AtomicU64::new(0));
        let stored = {
            let written_by_work = written.clone();
            let manifest = manifest.clone();
            let work = blocking(move || {
                let mut writer = store
                    .writer()
                    .map_err(retry)?
                    .cancel_on(cancel)
                    .count_into(written_by_work);
                pack::write_pack(&tree.root, &manifest, &mut writer, PACK_ZSTD_LEVEL).map_err(
                    |error| match error {
                        PackError::Changed { .. } => ActionError::Retry(format!("{error}")),
                        PackError::Write(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                            ActionError::Cancelled
                        }
                        error => retry(error),
                    },
                )?;
                let stored = writer.finish().map_err(retry)?;
                drop(tree);
                Ok(stored)
            });
            self.with_progress(work, &written, total).await
        };
        let stored = stored.inspect_err(|error| self.on_changed(game, version, error))?;
        self.progress.set(total, total);
        self.check_cancel()?;
        self.record(&stored, ArtifactKind::Pack, None).await?;
        {
            let db = &self.ctx.db;
            let _rows = self.ctx.rows.lock().await;
            if let Some(row) = db.version(game, version).await.map_err(retry)?
                && row.observed.tree_digest.as_deref() == Some(digest)
            {
                let observed = VersionObserved {
                    pack_address: Some(stored.address.clone()),
                    ..row.observed
                };
                db.set_version_observed(game, version, &observed, self.now())
                    .await
                    .map_err(retry)?;
            }
        }
        self.event(
            &ObjectRef::version(game, version),
            Severity::Normal,
            "Packed",
            &format!("packed into {} ({} bytes)", stored.address, stored.size),
        )
        .await;
        Ok(())
    }

    /// Makes the tree delta from one version to another.
    #[tracing::instrument(skip(self, from_digest, to_digest), fields(version = to))]
    async fn delta(
        &self,
        game: &str,
        from: &str,
        to: &str,
        from_digest: &str,
        to_digest: &str,
    ) -> Result<(), ActionError> {
        let names = format!("{from}\n{to}");
        let located = self.locate(game, &names, &[from_digest, to_digest]).await?;
        let Some((game, versions)) = located else {
            tracing::info!("no game has this content any more; no delta to make");
            return Ok(());
        };
        let (game, from, to) = (game.as_str(), versions[0].as_str(), versions[1].as_str());
        let facts = self.game_facts(game).await?;
        let (Some(from_idx), Some(to_idx)) = (
            facts.index_of(from, from_digest),
            facts.index_of(to, to_digest),
        ) else {
            return Err(ActionError::Retry(format!(
                "{game}/{from} or {to} changed meanwhile"
            )));
        };
        let old_manifest = self.manifest_of(&facts.versions[from_idx]).await?;
        let new_manifest = self.manifest_of(&facts.versions[to_idx]).await?;
        self.progress.stage(0, "prepare", 2);
        let old_tree = self
            .tree(game, &facts, from_idx, &old_manifest, "delta")
            .await?;
        self.progress.set(1, 2);
        let new_tree = self
            .tree(game, &facts, to_idx, &new_manifest, "delta")
            .await?;
        self.progress.set(2, 2);
        self.check_cancel()?;

        let diff_total = new_manifest.total_size();
        self.progress.stage(1, "diff", diff_total);
        let store = self.ctx.store.clone();
        let cancel = self.cancel.clone();
        let progress = self.progress.clone();
        let stored = blocking(move || {
            let mut writer = store.writer().map_err(retry)?.cancel_on(cancel);
            let options = CreateOptions::default();
            treedelta::create_from_manifests(
                Build {
                    root: &old_tree.root,
                    manifest: &old_manifest,
                },
                Build {
                    root: &new_tree.root,
                    manifest: &new_manifest,
                },
                &mut writer,
                &options,
                &|done, total| progress.set(done, total),
            )
            .map_err(|error| match error {
                TreeDeltaError::UnsupportedPath { .. } => {
                    ActionError::Terminal(Reason::InvalidBuild, error.to_string())
                }
                TreeDeltaError::Io { ref source, .. }
                    if source.kind() == std::io::ErrorKind::Interrupted =>
                {
                    ActionError::Cancelled
                }
                error => retry(error),
            })?;
            let stored = writer.finish().map_err(retry)?;
            drop((old_tree, new_tree));
            Ok(stored)
        })
        .await
        .inspect_err(|error| {
            self.on_changed(game, from, error);
            self.on_changed(game, to, error);
        })?;
        self.progress.set(diff_total, diff_total);
        self.check_cancel()?;
        self.record(&stored, ArtifactKind::Delta, None).await?;
        let delta = Delta {
            game: game.to_string(),
            from_version: from.to_string(),
            to_version: to.to_string(),
            address: stored.address.clone(),
        };
        self.ctx
            .db
            .upsert_delta(&delta, self.now())
            .await
            .map_err(retry)?;
        self.event(
            &ObjectRef::version(game, to),
            Severity::Normal,
            "DeltaCreated",
            &format!(
                "made the delta from {from} to {to}: {} ({} bytes)",
                stored.address, stored.size
            ),
        )
        .await;
        Ok(())
    }

    /// Deletes a version's artifacts (and its row when `remove`). Never touches its build.
    #[tracing::instrument(skip(self))]
    async fn prune(&self, game: &str, version: &str, remove: bool) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        let Some(row) = db.version(game, version).await.map_err(retry)? else {
            return Ok(());
        };
        let deltas: Vec<Delta> = db
            .deltas_of(game)
            .await
            .map_err(retry)?
            .into_iter()
            .filter(|delta| delta.from_version == version || delta.to_version == version)
            .collect();
        let mut addresses: Vec<String> = deltas.iter().map(|delta| delta.address.clone()).collect();
        addresses.extend(row.observed.manifest_address.clone());
        addresses.extend(row.observed.pack_address.clone());
        self.progress.stage(0, "prune", addresses.len() as u64);
        for delta in &deltas {
            db.delete_delta(game, &delta.from_version, &delta.to_version)
                .await
                .map_err(retry)?;
        }
        {
            let _rows = self.ctx.rows.lock().await;
            if remove {
                db.delete_version(game, version).await.map_err(retry)?;
                db.delete_conditions(&ObjectRef::version(game, version))
                    .await
                    .map_err(retry)?;
            } else if let Some(row) = db.version(game, version).await.map_err(retry)? {
                let observed = VersionObserved {
                    manifest_address: None,
                    pack_address: None,
                    state: VersionState::Retired,
                    ..row.observed
                };
                db.set_version_observed(game, version, &observed, self.now())
                    .await
                    .map_err(retry)?;
            }
        }
        let mut n_removed = 0;
        for (address_idx, address) in addresses.iter().enumerate() {
            // The row goes first: a crash in between leaves an orphan file, never a row
            // pointing at nothing. A row still referred to (identical content elsewhere)
            // stays, and so does its file.
            match db.delete_artifact(address).await {
                Ok(true) => {
                    let store = self.ctx.store.clone();
                    let address = address.clone();
                    n_removed +=
                        usize::from(blocking(move || store.remove(&address).map_err(retry)).await?);
                }
                Ok(false) => {}
                Err(error) if is_foreign_key_violation(&error) => {}
                Err(error) => return Err(retry(error)),
            }
            self.progress
                .set(address_idx as u64 + 1, addresses.len() as u64);
        }
        self.event(
            &ObjectRef::game(game),
            Severity::Normal,
            "Pruned",
            &format!(
                "pruned {version}: {n_removed} artifact files removed{}",
                if remove { ", and its record" } else { "" }
            ),
        )
        .await;
        Ok(())
    }

    /// Records an artifact that is in place.
    async fn record(
        &self,
        stored: &Stored,
        kind: ArtifactKind,
        verified_at: Option<EpochMs>,
    ) -> Result<(), ActionError> {
        let artifact = Artifact {
            address: stored.address.clone(),
            kind,
            size: stored.size,
            path: stored.path.clone(),
            created_at: self.now(),
            verified_at,
        };
        let db = &self.ctx.db;
        let new = db.record_artifact(&artifact).await.map_err(retry)?;
        if !new && let Some(at) = verified_at {
            db.mark_artifact_verified(&artifact.address, at)
                .await
                .map_err(retry)?;
        }
        Ok(())
    }

    /// Reports bytes written by blocking work while it runs.
    async fn with_progress<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ActionError>>,
        written: &AtomicU64,
        total: u64,
    ) -> Result<T, ActionError> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    // Compressed bytes are a lower bound of the tar bytes packed.
                    let done = written.load(Ordering::Relaxed).min(total.saturating_sub(1));
                    self.progress.set(done, total);
                }
            }
        }
    }

    /// Notes a build that changed under a job, so the next pass re-scans it.
    fn on_changed(&self, game: &str, version: &str, error: &ActionError) {
        if let ActionError::Retry(message) = error
            && message.contains("changed")
        {
            self.ctx
                .verify
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .suspect(game, version);
        }
    }

    /// Finds versions holding the given tree digests, in that order: the ones the payload
    /// names (`names`, newline-separated) when they still hold them, else any versions of the
    /// payload's game, else of any game (a job queued again keeps its first payload, whose
    /// versions may have changed or been pruned since). Retired versions do not count.
    async fn locate(
        &self,
        game: &str,
        names: &str,
        digests: &[&str],
    ) -> Result<Option<(String, Vec<String>)>, ActionError> {
        let db = &self.ctx.db;
        let names: Vec<&str> = names.split('\n').collect();
        let mut games = vec![game.to_string()];
        games.extend(
            db.games()
                .await
                .map_err(retry)?
                .into_iter()
                .map(|g| g.name)
                .filter(|name| name != game),
        );
        for (game_idx, candidate) in games.iter().enumerate() {
            let rows = db.versions_of(candidate).await.map_err(retry)?;
            let holds = |name: &str, digest: &str| {
                rows.iter().any(|row| {
                    row.spec.name == name
                        && row.observed.state != VersionState::Retired
                        && row.observed.tree_digest.as_deref() == Some(digest)
                })
            };
            if game_idx == 0
                && names
                    .iter()
                    .zip(digests)
                    .all(|(name, digest)| holds(name, digest))
            {
                return Ok(Some((
                    candidate.clone(),
                    names.iter().map(|name| name.to_string()).collect(),
                )));
            }
            let found: Option<Vec<String>> = digests
                .iter()
                .map(|digest| {
                    rows.iter()
                        .find(|row| {
                            row.observed.state != VersionState::Retired
                                && row.observed.tree_digest.as_deref() == Some(digest)
                        })
                        .map(|row| row.spec.name.clone())
                })
                .collect();
            if let Some(found) = found {
                return Ok(Some((candidate.clone(), found)));
            }
        }
        Ok(None)
    }

    /// Reads a game's versions, deltas and what of them is on the NAS.
    async fn game_facts(&self, game: &str) -> Result<GameFacts, ActionError> {
        let db = &self.ctx.db;
        let rows = db.versions_of(game).await.map_err(retry)?;
        let delta_rows = db.deltas_of(game).await.map_err(retry)?;
        let mut versions = Vec::new();
        let mut drifted = Vec::new();
        for row in rows {
            if row.observed.state == VersionState::Retired {
                continue;
            }
            let conditions = db
                .conditions_of(&ObjectRef::version(game, &row.spec.name))
                .await
                .map_err(retry)?;
            drifted.push(conditions.iter().any(|condition| {
                condition.condition_type == ConditionType::Stalled
                    && condition.status == ConditionStatus::True
                    && condition.reason == Reason::DigestMismatch.as_str()
            }));
            versions.push(VersionFact {
                name: row.spec.name,
                source: row.spec.source,
                digest: row.observed.tree_digest,
                manifest_address: row.observed.manifest_address,
                pack_address: row.observed.pack_address,
            });
        }
        let deltas: HashMap<(String, String), String> = delta_rows
            .into_iter()
            .map(|delta| ((delta.from_version, delta.to_version), delta.address))
            .collect();
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let mut addresses: Vec<&String> = Vec::new();
        for version in &versions {
            addresses.extend(version.manifest_address.iter());
            addresses.extend(version.pack_address.iter());
        }
        addresses.extend(deltas.values());
        for address in addresses {
            if let Some(artifact) = db.artifact(address).await.map_err(retry)? {
                sizes.insert(address.clone(), artifact.size);
            }
        }
        let store = self.ctx.store.clone();
        let nas = self.ctx.nas.clone();
        let versions_for_stat = versions.clone();
        let deltas_for_stat = deltas.clone();
        let inputs = blocking(move || {
            let present = |address: &Option<String>| {
                address.as_ref().is_some_and(|address| {
                    sizes
                        .get(address)
                        .is_some_and(|size| store.is_present(address, *size))
                })
            };
            Ok(versions_for_stat
                .iter()
                .enumerate()
                .map(|(idx, version)| {
                    let manifest = version.digest.is_some() && present(&version.manifest_address);
                    InputFacts {
                        source_ok: manifest && !drifted[idx] && nas.join(&version.source).is_dir(),
                        manifest,
                        pack: present(&version.pack_address),
                        delta_from_previous: idx > 0
                            && present(
                                &deltas_for_stat
                                    .get(&(
                                        versions_for_stat[idx - 1].name.clone(),
                                        version.name.clone(),
                                    ))
                                    .cloned(),
                            ),
                    }
                })
                .collect())
        })
        .await?;
        Ok(GameFacts {
            versions,
            inputs,
            deltas,
        })
    }

    /// Reads and checks a version's manifest artifact.
    async fn manifest_of(&self, version: &VersionFact) -> Result<Manifest, ActionError> {
        let (Some(address), Some(digest)) = (&version.manifest_address, &version.digest) else {
            return Err(ActionError::Retry(format!(
                "version {} has no manifest yet",
                version.name
            )));
        };
        let store = self.ctx.store.clone();
        let address = address.clone();
        let digest = digest.clone();
        blocking(move || {
            let bytes = store.read(&address).map_err(retry)?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| retry(format!("the manifest artifact {address} is damaged: {e}")))?;
            if manifest.tree_digest().to_string() != digest {
                return Err(retry(format!(
                    "the manifest artifact {address} does not describe {digest}"
                )));
            }
            Ok(manifest)
        })
        .await
    }

    /// A version's tree: its source build, or a replay of the delta chain, or its unpacked
    /// pack (see [`input_for`]).
    async fn tree(
        &self,
        game: &str,
        facts: &GameFacts,
        idx: usize,
        manifest: &Manifest,
        purpose: &str,
    ) -> Result<Tree, ActionError> {
        let version = &facts.versions[idx];
        match input_for(&facts.inputs, idx) {
            None => Err(ActionError::Retry(format!(
                "the build of {} is not on the NAS and cannot be rebuilt",
                version.name
            ))),
            Some(Input::Source) => {
                let nas = self.ctx.nas.clone();
                let source = version.source.clone();
                blocking(move || {
                    mist_specs::load::check_source_on_nas(&nas, &source)
                        .map_err(ActionError::Retry)?;
                    Ok(Tree {
                        root: nas.join(&source),
                        _guard: None,
                    })
                })
                .await
            }
            Some(Input::Replay { base }) => {
                let base_version = facts.versions[base].clone();
                let base_manifest = self.manifest_of(&base_version).await?;
                let mut chain_paths = Vec::new();
                for step in base + 1..=idx {
                    let key = (
                        facts.versions[step - 1].name.clone(),
                        facts.versions[step].name.clone(),
                    );
                    let address = facts.deltas.get(&key).ok_or_else(|| {
                        retry(format!("the delta from {} to {} is gone", key.0, key.1))
                    })?;
                    chain_paths.push(
                        self.ctx
                            .store
                            .path_of(address)
                            .ok_or_else(|| retry(format!("invalid address {address}")))?,
                    );
                }
                let out = self.ctx.store.new_tmp_path();
                let base_root = self.ctx.nas.join(&base_version.source);
                let expected = manifest.clone();
                let n_steps = chain_paths.len();
                let tree = blocking(move || {
                    let chain = chain_paths
                        .iter()
                        .map(|path| Package::open(path))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(retry)?;
                    let guard = TmpGuard(out.clone());
                    replay::replay(
                        &base_root,
                        &base_manifest,
                        &chain,
                        &out,
                        &expected,
                        &treedelta::ApplyOptions::default(),
                    )
                    .map_err(|error: ReplayError| retry(error))?;
                    Ok(Tree {
                        root: out,
                        _guard: Some(guard),
                    })
                })
                .await?;
                self.event(
                    &ObjectRef::version(game, &version.name),
                    Severity::Normal,
                    "Replayed",
                    &format!(
                        "rebuilt {} from {} and {n_steps} deltas for a {purpose}, because its \
                         build is not on the NAS",
                        version.name, base_version.name
                    ),
                )
                .await;
                Ok(tree)
            }
            Some(Input::Pack) => {
                let address = version.pack_address.clone().unwrap_or_default();
                let path = self
                    .ctx
                    .store
                    .path_of(&address)
                    .ok_or_else(|| retry(format!("invalid address {address}")))?;
                let out = self.ctx.store.new_tmp_path();
                let manifest = manifest.clone();
                let tree = blocking(move || {
                    let guard = TmpGuard(out.clone());
                    let file = File::open(&path).map_err(retry)?;
                    pack::unpack(std::io::BufReader::new(file), &manifest, &out).map_err(retry)?;
                    Ok(Tree {
                        root: out,
                        _guard: Some(guard),
                    })
                })
                .await?;
                self.event(
                    &ObjectRef::version(game, &version.name),
                    Severity::Normal,
                    "Unpacked",
                    &format!(
                        "unpacked {} from its pack for a {purpose}, because its build is not on \
                         the NAS",
                        version.name
                    ),
                )
                .await;
                Ok(tree)
            }
        }
    }
}

impl GameFacts {
    /// The index of a version that still has the given content.
    fn index_of(&self, name: &str, digest: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|version| version.name == name && version.digest.as_deref() == Some(digest))
    }
}

/// Whether a database error is a foreign-key violation (the row is still referred to).
pub(crate) fn is_foreign_key_violation(error: &mist_db::Error) -> bool {
    let mist_db::Error::Query { source, .. } = error else {
        return false;
    };
    match source {
        sqlx::Error::Database(database_error) => {
            database_error.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
                || database_error.message().contains("FOREIGN KEY")
                || database_error.code().as_deref() == Some("23503")
        }
        _ => false,
    }
}
