//! Acting on a diff: jobs queued, links made, the specs' header images stored, users
//! published.

use mist_db::EpochMs;
use mist_db::metadata::StoredImage;
use mist_db::queue::{Enqueued, JobState, NewJob};
use mist_db::snapshot::Snapshot;
use mist_db::state::{self, VersionObserved};
use mist_specs::load::Specs;

use super::{PassReport, Passes};
use crate::diff;
use crate::diff::action::Action;
use crate::error::{Error, Result};
use crate::jobs;
use crate::observe::FastSet;

impl Passes {
    /// Queues the diff's jobs, and makes its links, header images and user changes; `specs`
    /// are the specs in force, which hold the header images' bytes.
    pub(super) async fn act(
        &self,
        diff: &diff::Diff,
        (snapshot, specs): (&Snapshot, &Specs),
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
                Action::SpecImage { game, address } => {
                    self.spec_image(game, address.as_deref(), specs, report, now)
                        .await?;
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

    /// Puts the spec repository's header image of `game` in the artifact store and records
    /// it, when the specs in force have the image at `address`; unrecords it for `None`.
    async fn spec_image(
        &self,
        game: &str,
        address: Option<&str>,
        specs: &Specs,
        report: &mut PassReport,
        now: EpochMs,
    ) -> Result<()> {
        let image = match address {
            None => None,
            Some(address) => {
                let Some(header_image) = specs
                    .games
                    .get(game)
                    .and_then(|game_specs| game_specs.header_image.clone())
                else {
                    return Ok(());
                };
                let store = self.ctx.store.clone();
                let bytes = header_image.bytes.clone();
                let stored = tokio::task::spawn_blocking(move || store.put(&bytes))
                    .await?
                    .map_err(|source| Error::Store {
                        path: self.ctx.nas.clone(),
                        source,
                    })?;
                if stored.address != address {
                    return Ok(());
                }
                Some(StoredImage {
                    address: stored.address,
                    size: stored.size,
                    media_type: header_image.image_type.media_type().to_owned(),
                })
            }
        };
        if self.db.set_spec_image(game, image.as_ref(), now).await? {
            report.n_writes += 1;
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
