//! The pass itself, step by step: desired state, snapshot and the walk of the artifact store,
//! the spec rows, then (unless nothing it reads changed since a converged pass) observe, diff,
//! act and status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mist_db::EpochMs;
use mist_db::conditions::{ObjectRef, Severity};
use mist_db::queue::JobState;
use mist_db::snapshot::Snapshot;

use super::notify;
use super::specs::desired_of;
use super::{Converged, DesiredMemo, PassReport, PassState, Passes, VERIFY_BUDGET};
use crate::clock::now_ms;
use crate::desired;
use crate::diff::{self, DiffConfig};
use crate::error::{Error, Result};
use crate::observe::{self, FastMap, Observation, ObserveConfig};

/// The walk of the artifact store: every artifact on the NAS with its size, whether that is
/// exactly what the last converged pass found, and how long the walk took.
type Walk = (FastMap<String, u64>, bool, Duration);

/// Times the steps of a pass into its report.
struct StepClock {
    started: Instant,
}

impl StepClock {
    /// Records the time since the previous step as the step `name`.
    fn step(&mut self, report: &mut PassReport, name: &'static str) {
        report.timings.push((name, self.started.elapsed()));
        self.started = Instant::now();
    }
}

impl Passes {
    /// One pass: reads the desired state, observes, diffs, queues the work and writes
    /// conditions, events and revisions. A pass over a converged state writes nothing.
    pub(crate) async fn run(&self) -> Result<PassReport> {
        let mut state = self.state.lock().await;
        let pass_started = now_ms();
        let mut report = PassReport::default();
        let mut clock = StepClock {
            started: Instant::now(),
        };

        // Desired state.
        self.evaluate_desired(&mut state.machine, &mut report)
            .await?;
        clock.step(&mut report, "desired");

        // The database snapshot and the walk of the artifact store, at the same time. The
        // walk also tells whether it found exactly what the last converged pass found.
        let converged = state.converged.take();
        let walk = self.walk_artifacts(converged.as_ref().map(|c| c.on_disk.clone()));
        let snapshot = self.snapshot(&mut state.snapshot, &mut report).await?;
        clock.step(&mut report, "snapshot");
        let (on_disk, on_disk_unchanged, walk_took) = walk.await?;
        let on_disk = Arc::new(on_disk);
        clock.step(&mut report, "waiting for the NAS walk");
        report.timings.push(("NAS walk (alongside)", walk_took));
        let now = now_ms();
        self.record_specs(&mut state, &snapshot, &mut report, now)
            .await?;
        self.recover_and_clean(&mut report, now).await?;
        clock.step(&mut report, "leases and tmp");

        let Some(good) = state.machine.last_good().cloned() else {
            return Ok(report);
        };
        let desired = desired_in_force(&mut state, &good);
        clock.step(&mut report, "record specs");
        // The spec rows depend on the specs and the snapshot only; the last converged pass
        // wrote none from the same ones.
        let same_inputs = converged.as_ref().is_some_and(|c| {
            Arc::ptr_eq(&c.snapshot, &snapshot) && Arc::ptr_eq(&c.desired, &desired)
        });
        if !same_inputs {
            self.apply_specs(&good.loaded.specs, &snapshot, &mut report, now)
                .await?;
        }
        clock.step(&mut report, "apply specs");

        if let Some(converged) = converged
            && same_inputs
            && on_disk_unchanged
            && self.still_converged(&converged, now).await?
        {
            report.converged_reused = true;
            report.n_ready = converged.n_ready;
            report.n_not_ready = converged.n_not_ready;
            clock.step(&mut report, "observe (unchanged)");
            self.set_queue_depth(&snapshot, &report);
            if report.is_converged() {
                state.converged = Some(converged);
            }
            return Ok(report);
        }

        // Observe (blocking: stats and scans).
        let observation = self.observe(&snapshot, &desired, &on_disk, now).await?;
        clock.step(&mut report, "observe");
        self.record_observation(&observation, &mut report, now)
            .await?;

        let diff = self.diff(&desired, &observation.observed);
        report.actions = diff.actions.clone();
        clock.step(&mut report, "diff");

        self.act(
            &diff,
            (&snapshot, &good.loaded.specs),
            &mut report,
            pass_started,
            now,
        )
        .await?;
        clock.step(&mut report, "act");
        if !state.first_sync_done {
            state.first_sync_done = self.db.first_sync_done().await?;
        }
        self.write_status(&diff, &snapshot, &mut report, state.first_sync_done, now)
            .await?;
        if !state.first_sync_done && notify::first_sync_over(&diff, &report) {
            self.first_sync_digest(&diff, &snapshot, &mut report, now)
                .await?;
            state.first_sync_done = true;
        }
        clock.step(&mut report, "status");
        self.set_queue_depth(&snapshot, &report);
        if report.is_converged() && observation.verified.is_empty() {
            state.converged = Some(Converged {
                snapshot,
                desired,
                on_disk,
                sources_checked: observation.sources_checked,
                next_verify_at: observation.next_verify_at,
                next_metadata_at: diff.next_metadata_at,
                n_ready: report.n_ready,
                n_not_ready: report.n_not_ready,
            });
        }
        Ok(report)
    }

    /// The pure diff of the desired state against what was observed.
    fn diff(&self, desired: &diff::Desired, observed: &diff::Observed) -> diff::Diff {
        let config = DiffConfig {
            skip_deltas: self.skip_deltas,
            max_retire_percent: self.max_retire_percent,
            metadata_refresh: self.metadata_refresh,
        };
        diff::diff(desired, observed, config)
    }

    /// Reads the branch tip and feeds it to the state machine, and reports the commits in
    /// force and tried.
    async fn evaluate_desired(
        &self,
        machine: &mut desired::Desired,
        report: &mut PassReport,
    ) -> Result<()> {
        match self.read_desired().await? {
            Ok(snapshot) => {
                let outcome = machine.observe(snapshot);
                if !matches!(outcome, desired::Outcome::Unchanged { .. }) {
                    tracing::info!(?outcome, "spec commit evaluated");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the spec repository");
                machine.read_failed(&error);
            }
        }
        report.commit = machine.last_good().map(|s| s.commit.clone());
        report.attempted = machine.last_attempted().map(|a| a.commit.clone());
        report.n_errors = machine.last_attempted().map_or(0, |a| a.diagnostics.len());
        report.read_error = machine.read_error().map(str::to_string);
        Ok(())
    }

    /// Starts the walk of the artifact store on a blocking thread; `previous` is what the
    /// last converged pass found.
    fn walk_artifacts(
        &self,
        previous: Option<Arc<FastMap<String, u64>>>,
    ) -> tokio::task::JoinHandle<Walk> {
        let store = self.ctx.store.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let on_disk = observe::artifacts_on_disk(&store);
            let unchanged = previous.is_some_and(|previous| *previous == on_disk);
            (on_disk, unchanged, started.elapsed())
        })
    }

    /// The database snapshot: the last pass's (`last`) while the change counter has not
    /// moved since it was read, else a fresh one, remembered in `last`.
    async fn snapshot(
        &self,
        last: &mut Option<Arc<Snapshot>>,
        report: &mut PassReport,
    ) -> Result<Arc<Snapshot>> {
        match last.clone() {
            Some(previous) if self.db.change_seq().await? == previous.change_seq => {
                report.snapshot_reused = true;
                Ok(previous)
            }
            _ => {
                let fresh = Arc::new(self.db.load_snapshot().await?);
                *last = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Puts jobs whose lease ran out back in the queue, and removes what earlier runs left
    /// in the temporary folder.
    async fn recover_and_clean(&self, report: &mut PassReport, now: EpochMs) -> Result<()> {
        report.n_writes +=
            usize::try_from(self.queue.recover_expired_leases(now).await?).unwrap_or(usize::MAX);
        let store = self.ctx.store.clone();
        report.n_tmp_removed = tokio::task::spawn_blocking(move || store.clean_tmp())
            .await?
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot clean the temporary folder");
                0
            });
        Ok(())
    }

    /// Whether a pass whose snapshot, specs and artifacts on the NAS are those of the last
    /// converged pass is converged too: no job asked for a re-scan, no build is due for one,
    /// no game's metadata is due for a fetch, and every source folder looked for is as it was.
    async fn still_converged(&self, converged: &Converged, now: EpochMs) -> Result<bool> {
        let rescan_asked = self
            .ctx
            .verify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_suspects();
        Ok(!rescan_asked
            && converged.next_verify_at.is_none_or(|at| now < at)
            && converged.next_metadata_at.is_none_or(|at| now < at)
            && self.sources_unchanged(&converged.sources_checked).await?)
    }

    /// Observes on a blocking thread: the snapshot checked against the NAS, and the builds
    /// due re-scanned.
    async fn observe(
        &self,
        snapshot: &Arc<Snapshot>,
        desired: &Arc<diff::Desired>,
        on_disk: &Arc<FastMap<String, u64>>,
        now: EpochMs,
    ) -> Result<Observation> {
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
        .map_err(Error::Task)
    }

    /// Records what the re-scans found: matching builds as verified, drift found or cleared
    /// as events.
    async fn record_observation(
        &self,
        observation: &Observation,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
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
                report,
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
                report,
            )
            .await?;
        }
        Ok(())
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
        .map_err(Error::Task)
    }

    /// Reads the branch tip on a blocking thread.
    async fn read_desired(&self) -> Result<Result<desired::Snapshot, desired::DesiredError>> {
        let mut reader = self.reader.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || reader.read())
            .await
            .map_err(Error::Task)
    }
}

/// The diff's view of the specs in force (`good`), made again only when the loaded specs or
/// whether pruning is allowed changed.
fn desired_in_force(state: &mut PassState, good: &desired::Snapshot) -> Arc<diff::Desired> {
    let may_prune = state.machine.may_prune();
    match &state.desired {
        Some(memo)
            if Arc::ptr_eq(&memo.loaded, &good.loaded)
                && memo.may_prune == may_prune
                && memo.desired.confirm_retire == good.confirms_retire =>
        {
            memo.desired.clone()
        }
        _ => {
            let desired = Arc::new(desired_of(
                &good.loaded.specs,
                may_prune,
                good.confirms_retire,
            ));
            state.desired = Some(DesiredMemo {
                loaded: good.loaded.clone(),
                may_prune,
                desired: desired.clone(),
            });
            desired
        }
    }
}
