//! One reconcile pass: desired → observe → diff → act on the database → status.
//!
//! Everything the pass writes is compared with the snapshot first, so a pass over a converged
//! state makes no write at all: no upsert, no condition, no event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mist_db::conditions::{
    ConditionStatus, ConditionType, ConditionUpdate, ObjectKind, ObjectRef, Severity,
};
use mist_db::queue::{Enqueued, JobState, Queue};
use mist_db::snapshot::Snapshot;
use mist_db::state::{
    self, Outcome, Revision, SyncState, VersionObserved, VersionSpec, VersionState,
};
use mist_db::{Db, EpochMs};
use mist_specs::load::Specs;

use crate::actions::{Context, EVENTS_KEPT};
use crate::clock::now_ms;
use crate::desired::{self, Attempt};
use crate::diff::action::Action;
use crate::diff::condition::Status;
use crate::diff::{self, DiffConfig};
use crate::error::{Error, Result};
use crate::jobs;
use crate::observe::{self, FastMap, FastSet, ObserveConfig};

/// Re-scans started in one pass stop after this long; the rest wait for the next pass.
const VERIFY_BUDGET: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The commit in force (the last good one), if any.
    pub commit: Option<String>,
    /// The last commit tried.
    pub attempted: Option<String>,
    /// How many errors the last commit tried has (0 when it applied).
    pub n_errors: usize,
    /// Why the spec repository could not be read, if it could not.
    pub read_error: Option<String>,
    /// The work the diff asked for (jobs and links), sorted.
    pub actions: Vec<Action>,
    /// Jobs newly queued.
    pub n_enqueued: usize,
    /// Finished jobs queued again because their output vanished.
    pub n_requeued: usize,
    /// Links made (packs or deltas of identical content).
    pub n_links: usize,
    /// Database rows and events the pass itself wrote (0 when converged).
    pub n_writes: usize,
    /// Builds re-scanned for drift.
    pub n_verified: usize,
    /// Versions that are Ready.
    pub n_ready: usize,
    /// Versions that are not (reconciling, stalled; retired and pruned ones not counted).
    pub n_not_ready: usize,
    /// Leftover temporary files removed.
    pub n_tmp_removed: usize,
    /// Whether the database snapshot of the previous pass was used again, because nothing
    /// had been committed to the database since it was read.
    pub snapshot_reused: bool,
    /// Whether the previous pass was converged and everything this one read — the database
    /// snapshot, the specs, the artifacts on the NAS, the source folders looked for — was
    /// the same, with no build due for a re-scan: then this pass is converged too, and its
    /// observation, diff and status were not computed again.
    pub converged_reused: bool,
    /// How long each step of the pass took, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

impl PassReport {
    /// Whether the pass found nothing to do and wrote nothing.
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty()
            && self.n_writes == 0
            && self.n_enqueued == 0
            && self.n_requeued == 0
    }
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit {}, {} ready, {} not ready, {} queued, {} requeued, {} links, {} writes, {} verified",
            self.commit
                .as_deref()
                .map_or("none", |c| &c[..c.len().min(12)]),
            self.n_ready,
            self.n_not_ready,
            self.n_enqueued,
            self.n_requeued,
            self.n_links,
            self.n_writes,
            self.n_verified
        )?;
        if self.n_errors > 0 {
            write!(f, "; the last commit tried has {} errors", self.n_errors)?;
        }
        if let Some(error) = &self.read_error {
            write!(f, "; cannot read the specs: {error}")?;
        }
        Ok(())
    }
}

/// Runs reconcile passes, one at a time, and holds what they remember. The
/// [`Reconciler`](crate::reconciler::Reconciler) holds one and shares its database, queue
/// and job context with it.
pub(crate) struct Passes {
    pub db: Db,
    pub ctx: Arc<Context>,
    pub queue: Queue,
    /// The spec reader. A blocking read holds the lock until it ends, even when the pass
    /// that started it was cancelled.
    pub reader: Arc<tokio::sync::Mutex<desired::DesiredState>>,
    /// Serialises passes and holds what they remember.
    pub state: tokio::sync::Mutex<PassState>,
    /// Raised when a pass queues jobs, so idle workers look at once.
    pub jobs_queued: Arc<tokio::sync::Notify>,
    /// The branch whose tip is the desired state (names the spec repository's condition).
    pub branch: String,
    /// Warm skip deltas per game (see [`DiffConfig::skip_deltas`]).
    pub skip_deltas: usize,
    /// Re-scan an ingested build for drift at most this often.
    pub verify_interval: Duration,
}

/// What passes remember between them.
#[derive(Debug, Default)]
pub(crate) struct PassState {
    machine: desired::Desired,
    /// The attempt whose revision was last recorded by this process.
    recorded_attempt: Option<Attempt>,
    /// The read error last recorded as an event.
    recorded_read_error: Option<String>,
    /// The database snapshot the last pass worked from. The next pass uses it again when the
    /// database's change counter has not moved since it was read: then it is exactly what a
    /// new read would return. Any write — this pass's own, a worker's, another process's —
    /// moves the counter, so the pass after it reads afresh.
    snapshot: Option<Arc<Snapshot>>,
    /// The diff's view of the specs in force, for the `Loaded` it was made from.
    desired: Option<DesiredMemo>,
    /// What the last pass read, when it was converged.
    converged: Option<Converged>,
}

/// [`desired_of`] for one loaded spec tree.
#[derive(Debug)]
struct DesiredMemo {
    loaded: Arc<mist_specs::load::Loaded>,
    may_prune: bool,
    desired: Arc<diff::Desired>,
}

/// Everything a converged pass read, from the snapshot on. A pass computes the same thing
/// from the same inputs — `observe` and `diff` are functions of exactly these, as long as no
/// build is due for a re-scan — so a pass that finds them all unchanged is converged too:
/// it writes nothing (its predecessor wrote nothing, or the snapshot would have changed),
/// and it need not observe, diff or compare the status again.
#[derive(Debug)]
struct Converged {
    snapshot: Arc<Snapshot>,
    desired: Arc<diff::Desired>,
    on_disk: Arc<FastMap<String, u64>>,
    sources_checked: Vec<(String, bool)>,
    next_verify_at: Option<EpochMs>,
    n_ready: usize,
    n_not_ready: usize,
}

impl Passes {
    /// One pass: reads the desired state, observes, diffs, queues the work and writes
    /// conditions, events and revisions. A pass over a converged state writes nothing.
    pub(crate) async fn run(&self) -> Result<PassReport> {
        let mut state = self.state.lock().await;
        let pass_started = now_ms();
        let mut report = PassReport::default();
        let mut step_started = Instant::now();
        let mut step = |report: &mut PassReport, name: &'static str| {
            report.timings.push((name, step_started.elapsed()));
            step_started = Instant::now();
        };

        // Desired state.
        match self.read_desired().await? {
            Ok(snapshot) => {
                let outcome = state.machine.observe(snapshot);
                if !matches!(outcome, desired::Outcome::Unchanged { .. }) {
                    tracing::info!(?outcome, "spec commit evaluated");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the spec repository");
                state.machine.read_failed(&error);
            }
        }
        report.commit = state.machine.last_good().map(|s| s.commit.clone());
        report.attempted = state.machine.last_attempted().map(|a| a.commit.clone());
        report.n_errors = state
            .machine
            .last_attempted()
            .map_or(0, |a| a.diagnostics.len());
        report.read_error = state.machine.read_error().map(str::to_string);
        step(&mut report, "desired");

        // The database snapshot and the walk of the artifact store, at the same time. The
        // walk also tells whether it found exactly what the last converged pass found.
        let converged = state.converged.take();
        let walk = {
            let store = self.ctx.store.clone();
            let previous = converged.as_ref().map(|c| c.on_disk.clone());
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let on_disk = observe::artifacts_on_disk(&store);
                let unchanged = previous.is_some_and(|previous| *previous == on_disk);
                (on_disk, unchanged, started.elapsed())
            })
        };
        let snapshot = match state.snapshot.clone() {
            Some(previous) if self.db.change_seq().await? == previous.change_seq => {
                report.snapshot_reused = true;
                previous
            }
            _ => {
                let fresh = Arc::new(self.db.load_snapshot().await?);
                state.snapshot = Some(fresh.clone());
                fresh
            }
        };
        step(&mut report, "snapshot");
        let (on_disk, on_disk_unchanged, walk_took) =
            walk.await.map_err(|e| Error::Task(e.to_string()))?;
        let on_disk = Arc::new(on_disk);
        step(&mut report, "waiting for the NAS walk");
        report.timings.push(("NAS walk (alongside)", walk_took));
        let now = now_ms();
        self.record_specs(&mut state, &snapshot, &mut report, now)
            .await?;

        report.n_writes +=
            usize::try_from(self.queue.recover_expired_leases(now).await?).unwrap_or(usize::MAX);
        {
            let store = self.ctx.store.clone();
            report.n_tmp_removed = tokio::task::spawn_blocking(move || store.clean_tmp())
                .await
                .map_err(|e| Error::Task(e.to_string()))?
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "cannot clean the temporary folder");
                    0
                });
        }
        step(&mut report, "leases and tmp");

        let Some(good) = state.machine.last_good().cloned() else {
            return Ok(report);
        };
        let specs = &good.loaded.specs;
        let may_prune = state.machine.may_prune();
        let desired = match &state.desired {
            Some(memo)
                if Arc::ptr_eq(&memo.loaded, &good.loaded) && memo.may_prune == may_prune =>
            {
                memo.desired.clone()
            }
            _ => {
                let desired = Arc::new(desired_of(specs, may_prune));
                state.desired = Some(DesiredMemo {
                    loaded: good.loaded.clone(),
                    may_prune,
                    desired: desired.clone(),
                });
                desired
            }
        };
        step(&mut report, "record specs");
        // The spec rows depend on the specs and the snapshot only; the last converged pass
        // wrote none from the same ones.
        let same_inputs = converged.as_ref().is_some_and(|c| {
            Arc::ptr_eq(&c.snapshot, &snapshot) && Arc::ptr_eq(&c.desired, &desired)
        });
        if !same_inputs {
            self.apply_specs(specs, &snapshot, &mut report, now).await?;
        }
        step(&mut report, "apply specs");

        let rescan_asked = self
            .ctx
            .verify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_suspects();
        if let Some(converged) = converged
            && same_inputs
            && on_disk_unchanged
            && !rescan_asked
            && converged.next_verify_at.is_none_or(|at| now < at)
            && self.sources_unchanged(&converged.sources_checked).await?
        {
            report.converged_reused = true;
            report.n_ready = converged.n_ready;
            report.n_not_ready = converged.n_not_ready;
            step(&mut report, "observe (unchanged)");
            self.set_queue_depth(&snapshot, &report);
            if report.is_converged() {
                state.converged = Some(converged);
            }
            return Ok(report);
        }

        // Observe (blocking: stats and scans).
        let observation = {
            let snapshot = snapshot.clone();
            let desired = desired.clone();
            let on_disk = on_disk.clone();
            let nas = self.ctx.nas.clone();
            let ctx = self.ctx.clone();
            let config = ObserveConfig {
                verify_interval: self.verify_interval,
                verify_budget: VERIFY_BUDGET,
            };
            tokio::task::spawn_blocking(move || {
                let mut verify =
                    std::mem::take(&mut *ctx.verify.lock().unwrap_or_else(|e| e.into_inner()));
                let observation = observe::observe(
                    &snapshot,
                    &on_disk,
                    &desired,
                    &nas,
                    &mut verify,
                    config,
                    now,
                );
                *ctx.verify.lock().unwrap_or_else(|e| e.into_inner()) = verify;
                observation
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?
        };
        step(&mut report, "observe");
        report.n_verified = observation.verified.len() + observation.drift_found.len();
        for address in &observation.verified {
            self.db.mark_artifact_verified(address, now).await?;
            report.n_writes += 1;
        }
        for (game, version, found) in &observation.drift_found {
            tracing::warn!(
                game,
                version,
                found,
                "build changed on the NAS after ingest"
            );
            self.event(
                &ObjectRef::version(game, version),
                Severity::Warning,
                "DriftDetected",
                &format!(
                    "the build no longer matches its recorded digest (it now hashes to {found})"
                ),
                now,
                &mut report,
            )
            .await?;
        }
        for (game, version) in &observation.drift_cleared {
            self.event(
                &ObjectRef::version(game, version),
                Severity::Normal,
                "DriftCleared",
                "the build matches its recorded digest again",
                now,
                &mut report,
            )
            .await?;
        }

        let diff = diff::diff(
            &desired,
            &observation.observed,
            DiffConfig {
                skip_deltas: self.skip_deltas,
            },
        );
        report.actions = diff.actions.clone();
        step(&mut report, "diff");

        self.act(&diff, &snapshot, &mut report, pass_started, now)
            .await?;
        step(&mut report, "act");
        self.write_status(&diff, &snapshot, &mut report, now)
            .await?;
        step(&mut report, "status");
        self.set_queue_depth(&snapshot, &report);
        if report.is_converged() && observation.verified.is_empty() {
            state.converged = Some(Converged {
                snapshot,
                desired,
                on_disk,
                sources_checked: observation.sources_checked,
                next_verify_at: observation.next_verify_at,
                n_ready: report.n_ready,
                n_not_ready: report.n_not_ready,
            });
        }
        Ok(report)
    }

    fn set_queue_depth(&self, snapshot: &Snapshot, report: &PassReport) {
        let n_waiting = snapshot
            .jobs
            .iter()
            .filter(|job| job.state != JobState::Terminal)
            .count()
            + report.n_enqueued
            + report.n_requeued;
        metrics::gauge!("mist_queue_depth").set(n_waiting as f64);
    }

    /// Whether every source folder looked for is still there, or still not there.
    async fn sources_unchanged(&self, sources_checked: &[(String, bool)]) -> Result<bool> {
        if sources_checked.is_empty() {
            return Ok(true);
        }
        let nas = self.ctx.nas.clone();
        let sources_checked = sources_checked.to_vec();
        tokio::task::spawn_blocking(move || {
            sources_checked
                .iter()
                .all(|(source, found)| nas.join(source).is_dir() == *found)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))
    }

    /// Reads the branch tip on a blocking thread.
    async fn read_desired(&self) -> Result<Result<desired::Snapshot, desired::DesiredError>> {
        let mut reader = self.reader.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || reader.read())
            .await
            .map_err(|e| Error::Task(e.to_string()))
    }

    /// Records the revision tried, the sync state and the spec repository's condition.
    async fn record_specs(
        &self,
        state: &mut PassState,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let object = ObjectRef::specs(&self.branch);
        let in_force = state.machine.last_good().map(|s| s.commit.clone());
        if let Some(attempt) = state.machine.last_attempted().cloned()
            && state.recorded_attempt.as_ref() != Some(&attempt)
        {
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
                            in_force.as_deref().unwrap_or("nothing")
                        ),
                    )
                };
                self.event(&object, severity, reason, &message, now, report)
                    .await?;
            }
            state.recorded_attempt = Some(attempt);
        }
        let read_error = state.machine.read_error().map(str::to_string);
        if read_error != state.recorded_read_error {
            if let Some(error) = &read_error {
                self.event(&object, Severity::Warning, "ReadFailed", error, now, report)
                    .await?;
            }
            state.recorded_read_error = read_error.clone();
        }

        let attempted = state.machine.last_attempted().map(|a| a.commit.clone());
        let sync_state = SyncState {
            observed_commit: attempted
                .clone()
                .or(snapshot.sync_state.observed_commit.clone()),
            last_attempted_commit: attempted.or(snapshot.sync_state.last_attempted_commit.clone()),
            last_applied_commit: in_force
                .clone()
                .or(snapshot.sync_state.last_applied_commit.clone()),
        };
        if sync_state != snapshot.sync_state && self.db.set_sync_state(&sync_state, now).await? {
            report.n_writes += 1;
        }

        let (status, reason, message) = if let Some(error) = &read_error {
            (
                ConditionStatus::False,
                "ReadFailed",
                format!("cannot read the spec repository: {error}"),
            )
        } else if state.machine.is_failing() {
            let attempt = state
                .machine
                .last_attempted()
                .expect("failing means attempted");
            (
                ConditionStatus::False,
                "InvalidCommit",
                format!(
                    "commit {} fails to load with {} errors; {} stays in force",
                    attempt.commit,
                    attempt.diagnostics.len(),
                    in_force.as_deref().unwrap_or("nothing")
                ),
            )
        } else if let Some(commit) = &in_force {
            (
                ConditionStatus::True,
                "Applied",
                format!("commit {commit} is applied"),
            )
        } else {
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

    /// Writes the spec-derived rows that differ: games (all, with their `suspended` flag)
    /// and the versions of games that are not suspended.
    async fn apply_specs(
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

    /// Queues the diff's jobs, and makes its links and user changes.
    async fn act(
        &self,
        diff: &diff::Diff,
        snapshot: &Snapshot,
        report: &mut PassReport,
        pass_started: EpochMs,
        now: EpochMs,
    ) -> Result<()> {
        let unfinished: FastSet<&str> = snapshot.jobs.iter().map(|job| job.key.as_str()).collect();
        for action in &diff.actions {
            match action {
                Action::LinkPack {
                    game,
                    version,
                    address,
                } => {
                    let _rows = self.ctx.rows.lock().await;
                    if let Some(row) = self.db.version(game, version).await? {
                        let observed = VersionObserved {
                            pack_address: Some(address.clone()),
                            ..row.observed
                        };
                        if self
                            .db
                            .set_version_observed(game, version, &observed, now)
                            .await?
                            == Some(true)
                        {
                            report.n_writes += 1;
                            report.n_links += 1;
                        }
                    }
                }
                Action::LinkDelta {
                    game,
                    from,
                    to,
                    address,
                } => {
                    let delta = state::Delta {
                        game: game.clone(),
                        from_version: from.clone(),
                        to_version: to.clone(),
                        address: address.clone(),
                    };
                    if self.db.upsert_delta(&delta, now).await? {
                        report.n_writes += 1;
                        report.n_links += 1;
                    }
                }
                job_action => {
                    let Some(new_job) = jobs::new_job(job_action) else {
                        continue;
                    };
                    if unfinished.contains(new_job.key.as_str()) {
                        continue;
                    }
                    match self.queue.enqueue(&new_job, now).await? {
                        Enqueued::Added => {
                            tracing::info!(key = %new_job.key, "job queued");
                            report.n_enqueued += 1;
                        }
                        Enqueued::Exists(JobState::Done) => {
                            // Done, yet its output is not there. If it finished after this
                            // pass looked, the output is simply newer than the snapshot.
                            let finished_before = self
                                .queue
                                .job(&new_job.key)
                                .await?
                                .and_then(|job| job.finished_at)
                                .is_some_and(|finished_at| finished_at < pass_started);
                            if finished_before && self.queue.requeue(&new_job.key, now).await? {
                                tracing::info!(key = %new_job.key, "output gone; job queued again");
                                report.n_requeued += 1;
                            }
                        }
                        Enqueued::Exists(_) => {}
                    }
                }
            }
        }
        if report.n_enqueued + report.n_requeued > 0 {
            self.jobs_queued.notify_waiters();
        }

        if !diff.upsert_users.is_empty() {
            report.n_writes += self.db.upsert_users(&diff.upsert_users, now).await?;
        }
        for name in &diff.delete_users {
            if self.db.delete_user(name).await? {
                report.n_writes += 1;
                tracing::info!(user = %name, "user removed from the specs; deleted");
            }
        }
        Ok(())
    }

    /// Writes version conditions and states that changed, with an event for each version
    /// that became Ready or Stalled.
    async fn write_status(
        &self,
        diff: &diff::Diff,
        snapshot: &Snapshot,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
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
        let mut updates = Vec::new();
        let mut events = Vec::new();
        let mut state_changes = Vec::new();
        for ((game, version), status) in &diff.conditions {
            match status.condition.status {
                Status::Ready => report.n_ready += 1,
                Status::Reconciling | Status::Stalled => report.n_not_ready += 1,
                Status::Inactive => {}
            }
            let current_conditions = existing.get(&(game.as_str(), version.as_str()));
            let condition = &status.condition;
            let wanted = [
                (ConditionType::Ready, condition.status == Status::Ready),
                (
                    ConditionType::Reconciling,
                    condition.status == Status::Reconciling,
                ),
                (ConditionType::Stalled, condition.status == Status::Stalled),
            ];
            for (condition_type, holds) in wanted {
                let current =
                    current_conditions.and_then(|c| c[condition_slot(condition_type)].as_ref());
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
                        ConditionType::Ready => events.push((
                            object.clone(),
                            Severity::Normal,
                            "Ready",
                            condition.message.clone(),
                        )),
                        ConditionType::Stalled => events.push((
                            object.clone(),
                            Severity::Warning,
                            condition.reason.as_str(),
                            condition.message.clone(),
                        )),
                        ConditionType::Reconciling => {}
                    }
                }
                updates.push(ConditionUpdate {
                    object,
                    condition_type,
                    status: status_value,
                    reason: condition.reason.as_str().to_string(),
                    message: condition.message.clone(),
                });
            }
            let current_state = states
                .get(&(game.as_str(), version.as_str()))
                .copied()
                .unwrap_or(VersionState::Pending);
            if current_state != status.state {
                state_changes.push((game, version, status.state));
            }
        }
        if !updates.is_empty() {
            report.n_writes += self.db.set_conditions(&updates, now).await?;
        }
        for (game, version, state) in state_changes {
            let _rows = self.ctx.rows.lock().await;
            if let Some(row) = self.db.version(game, version).await?
                && row.observed.state != state
            {
                let observed = VersionObserved {
                    state,
                    ..row.observed
                };
                if self
                    .db
                    .set_version_observed(game, version, &observed, now)
                    .await?
                    == Some(true)
                {
                    report.n_writes += 1;
                }
            }
        }
        for (object, severity, reason, message) in events {
            self.event(&object, severity, reason, &message, now, report)
                .await?;
        }
        Ok(())
    }

    async fn event(
        &self,
        object: &ObjectRef,
        severity: Severity,
        reason: &str,
        message: &str,
        now: EpochMs,
        report: &mut PassReport,
    ) -> Result<()> {
        self.db
            .record_event(object, severity, reason, message, now, EVENTS_KEPT)
            .await?;
        report.n_writes += 1;
        Ok(())
    }
}

/// A version's current condition: (status, reason, message).
type ConditionValue<'a> = (ConditionStatus, &'a str, &'a str);

/// The index of a condition type in [`version_conditions`]' arrays.
fn condition_slot(condition_type: ConditionType) -> usize {
    match condition_type {
        ConditionType::Ready => 0,
        ConditionType::Reconciling => 1,
        ConditionType::Stalled => 2,
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
        out.entry((game, version)).or_default()[condition_slot(condition.condition_type)] = Some((
            condition.status,
            condition.reason.as_str(),
            condition.message.as_str(),
        ));
    }
    out
}

/// The diff's view of the specs.
pub(crate) fn desired_of(specs: &Specs, may_prune: bool) -> diff::Desired {
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
