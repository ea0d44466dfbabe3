//! Acting on a diff: jobs queued, links made, users published.

use mist_db::EpochMs;
use mist_db::queue::{Enqueued, JobState, NewJob};
use mist_db::snapshot::Snapshot;
use mist_db::state::{self, VersionObserved};

use super::{PassReport, Passes};
use crate::diff;
use crate::diff::action::Action;
use crate::error::Result;
use crate::jobs;
use crate::observe::FastSet;

impl Passes {
    /// Queues the diff's jobs, and makes its links and user changes.
    pub(super) async fn act(
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
                } => self.link_pack(game, version, address, report, now).await?,
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
                    self.queue_job(&new_job, report, pass_started, now).await?;
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

    /// Points a version at the pack that exists for its content.
    async fn link_pack(
        &self,
        game: &str,
        version: &str,
        address: &str,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let changed = self
            .ctx
            .update_version_observed((game, version), now, |observed| {
                Some(VersionObserved {
                    pack_address: Some(address.to_string()),
                    ..observed
                })
            })
            .await?;
        if changed {
            report.n_writes += 1;
            report.n_links += 1;
        }
        Ok(())
    }

    /// Queues a job that no unfinished job of the snapshot has the key of; a job done
    /// before this pass started, whose output is gone, is queued again.
    async fn queue_job(
        &self,
        new_job: &NewJob,
        report: &mut PassReport,
        pass_started: EpochMs,
        now: EpochMs,
    ) -> Result<()> {
        match self.queue.enqueue(new_job, now).await? {
            Enqueued::Added => {
                tracing::info!(key = %new_job.key, "job queued");
                report.n_enqueued += 1;
            }
            Enqueued::Exists(JobState::Done) => {
                // Done, yet its output is not there. If it finished after this pass looked,
                // the output is simply newer than the snapshot.
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
        Ok(())
    }
}
