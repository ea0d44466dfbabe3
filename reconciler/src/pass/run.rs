//! The pass itself, step by step: desired state, snapshot and the walk of the artifact store,
//! the spec rows, then (unless nothing it reads changed since a converged pass) observe, diff,
//! act and status.

use std::sync::Arc;
use std::time::Instant;

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::queue::JobState;
use mist_db::snapshot::Snapshot;

use super::specs::desired_of;
use super::{Converged, DesiredMemo, PassReport, Passes, VERIFY_BUDGET};
use crate::clock::now_ms;
use crate::desired;
use crate::diff::{self, DiffConfig};
use crate::error::{Error, Result};
use crate::observe::{self, ObserveConfig};

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
}
