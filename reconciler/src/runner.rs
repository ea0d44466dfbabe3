//! Workers: claim a job under a lease, run it, report progress, and record how it ended.
//!
//! - **Leases.** A job is claimed for [`LEASE`]; while it runs its progress is written (which
//!   renews the lease) every [`PROGRESS_PERIOD`], so at least once a second. A worker that dies
//!   stops renewing; each pass puts jobs whose lease ran out back in the queue.
//! - **Progress** belongs to the running attempt and only ever moves forward (the queue
//!   ignores a report that would move it back).
//! - **Logs.** What the work logs (through its [`ProgressCell`]) is written to the job's log
//!   with each progress report, and the worker adds how the attempt began and ended (with the
//!   error and its causes), so the board can show what a job did (`mist_db::joblog`).
//! - **Failures.** A retryable error backs off per key, doubling up to a cap (the queue's
//!   [`mist_db::queue::QueueConfig`]); a terminal one (digest mismatch, invalid build) waits
//!   for a spec change, which makes a new key.
//! - **Concurrency.** At most `concurrency` jobs run at once, across every process sharing
//!   the database (the queue enforces it at claim time).
//! - **Graceful shutdown.** Once shutdown is signalled no job is claimed; a running job gets
//!   [`SHUTDOWN_GRACE`] to finish, then it is cancelled and released back to the queue (no
//!   attempt counted), all within 10 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mist_db::EpochMs;
use mist_db::joblog::{LogLevel, LogLimits};
use mist_db::queue::{Job, Queue};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinHandle};

use crate::actions;
use crate::actions::context::{Context, ProgressCell};
use crate::actions::error::ActionError;
use mist_platform::error::ErrorChain;

/// How long a claim lasts unless renewed.
pub const LEASE: Duration = Duration::from_secs(30);

/// How often a running job's progress is written (renewing its lease).
pub const PROGRESS_PERIOD: Duration = Duration::from_millis(500);

/// How long a running job may go on after shutdown is signalled before it is released.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How often an idle worker looks for due jobs when nobody wakes it (retries that came due,
/// jobs queued by another process).
pub const IDLE_POLL: Duration = Duration::from_secs(2);

/// How a job run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Done.
    Completed,
    /// Failed; will be retried after the backoff.
    Failed,
    /// Failed terminally.
    Terminal,
    /// Put back in the queue (shutdown, or the lease was lost).
    Released,
}

/// How the work of a job run ended, as its worker saw it.
enum Supervised {
    /// The work ended by itself, with this result.
    Finished(Result<Result<(), ActionError>, JoinError>),
    /// The work was stopped (the lease was lost, or the shutdown grace ran out) and the job
    /// left to the queue.
    Released,
}

/// What workers share.
#[derive(Debug)]
pub(crate) struct Workers {
    pub ctx: Arc<Context>,
    pub queue: Queue,
    /// The lease owner: every worker of this process.
    pub owner: String,
    /// Raised after every job, so the reconcile loop runs a pass.
    pub job_ended: Arc<Notify>,
    /// Raised when jobs are queued, so idle workers look at once.
    pub jobs_queued: Arc<Notify>,
    /// The clock.
    pub now: fn() -> EpochMs,
}

impl Workers {
    /// Claims and runs jobs until shutdown is signalled.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Listen before looking: `notify_waiters` wakes only listeners that exist, so a
            // job queued between an empty claim and the wait would otherwise wait for the
            // next poll.
            let jobs_queued = self.jobs_queued.notified();
            tokio::pin!(jobs_queued);
            jobs_queued.as_mut().enable();
            match self.queue.claim(&self.owner, (self.now)(), LEASE).await {
                Ok(Some(job)) => {
                    self.run_job(job, Some(&mut shutdown)).await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = jobs_queued => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot claim a job");
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Claims and runs jobs until none is due; returns how many ran.
    pub async fn drain(&self) -> Result<usize, mist_db::Error> {
        let mut n_ran = 0;
        while let Some(job) = self.queue.claim(&self.owner, (self.now)(), LEASE).await? {
            self.run_job(job, None).await;
            n_ran += 1;
        }
        Ok(n_ran)
    }

    /// Runs one claimed job to its end, writing progress while it runs.
    #[tracing::instrument(skip_all, fields(key = %job.key, game = job.game.as_deref(), version = job.version.as_deref()))]
    pub async fn run_job(&self, job: Job, shutdown: Option<&mut watch::Receiver<bool>>) -> Ended {
        let key = job.key.clone();
        let kind = job.kind.clone();
        let started = Instant::now();
        let progress = Arc::new(ProgressCell::default());
        progress.log(
            (self.now)(),
            LogLevel::Info,
            format!(
                "attempt {} of this {kind} job, on worker {}",
                job.attempts.saturating_add(1),
                self.owner
            ),
        );
        let cancel = Arc::new(AtomicBool::new(false));
        let work = tokio::spawn(actions::execute(
            self.ctx.clone(),
            job,
            progress.clone(),
            cancel.clone(),
            self.now,
        ));
        let Supervised::Finished(result) = self
            .supervise(&key, work, &progress, &cancel, shutdown)
            .await
        else {
            self.job_ended.notify_one();
            return Ended::Released;
        };
        let now = (self.now)();
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!("mist_job_duration_seconds", "kind" => kind.clone()).record(elapsed);
        let ended = self
            .record_end(&key, &kind, result, &progress, now, elapsed)
            .await;
        self.job_ended.notify_one();
        ended
    }

    /// Waits for the work while writing its progress, and stops it when the lease is lost or
    /// the shutdown grace is over (releasing the job then).
    async fn supervise(
        &self,
        key: &str,
        mut work: JoinHandle<Result<(), ActionError>>,
        progress: &Arc<ProgressCell>,
        cancel: &AtomicBool,
        mut shutdown: Option<&mut watch::Receiver<bool>>,
    ) -> Supervised {
        // Progress (and with it the lease) is written every PROGRESS_PERIOD while the work
        // runs; losing the lease means someone else may run the job now, so this run stops.
        let lease_lost = Notify::new();
        let progress_cell = progress;
        let reporter = report_every(
            PROGRESS_PERIOD,
            progress,
            |progress| {
                let lease_lost = &lease_lost;
                async move {
                    match self
                        .queue
                        .progress(key, &self.owner, (self.now)(), &progress)
                        .await
                    {
                        Ok(_) => {}
                        Err(mist_db::Error::LeaseLost { .. }) => lease_lost.notify_one(),
                        Err(error) => tracing::warn!(%error, "cannot report progress"),
                    }
                    if let Err(mist_db::Error::LeaseLost { .. }) =
                        self.write_log(key, progress_cell).await
                    {
                        lease_lost.notify_one();
                    }
                }
            },
            std::future::pending(),
        );
        tokio::pin!(reporter);
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        loop {
            let shutdown_signalled = async {
                match shutdown.as_mut() {
                    Some(shutdown) if grace_deadline.is_none() => {
                        if *shutdown.borrow() {
                            return;
                        }
                        let _ = shutdown.changed().await;
                    }
                    _ => std::future::pending().await,
                }
            };
            let grace_over = async {
                match grace_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut work => return Supervised::Finished(result),
                _ = &mut reporter => {}
                _ = lease_lost.notified() => {
                    tracing::warn!("lost the lease; abandoning the job");
                    cancel.store(true, Ordering::Relaxed);
                    work.abort();
                    return Supervised::Released;
                }
                _ = shutdown_signalled => {
                    tracing::info!("shutting down; giving the running job {SHUTDOWN_GRACE:?} to finish");
                    grace_deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
                _ = grace_over => {
                    tracing::info!("releasing the unfinished job for a later run");
                    cancel.store(true, Ordering::Relaxed);
                    work.abort();
                    let line = "stopped: the server is shutting down; the job goes back to the queue";
                    self.end_log(key, progress, LogLevel::Warn, line.to_string()).await;
                    self.release(key).await;
                    return Supervised::Released;
                }
            }
        }
    }

    /// Records how the work ended: done, released, failed (to be retried) or failed
    /// terminally.
    async fn record_end(
        &self,
        key: &str,
        kind: &str,
        result: Result<Result<(), ActionError>, JoinError>,
        progress: &Arc<ProgressCell>,
        now: EpochMs,
        elapsed: f64,
    ) -> Ended {
        match result {
            Ok(Ok(())) => {
                self.end_log(
                    key,
                    progress,
                    LogLevel::Info,
                    format!("done in {elapsed:.1} s"),
                )
                .await;
                // A last report, so the finished job shows its whole progress.
                let _ = self
                    .queue
                    .progress(key, &self.owner, now, &progress.get())
                    .await;
                match self.queue.complete(key, &self.owner, now).await {
                    Ok(()) => {
                        tracing::info!(seconds = elapsed, "job done");
                        Ended::Completed
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot mark the job done");
                        Ended::Released
                    }
                }
            }
            Ok(Err(ActionError::Cancelled)) => {
                let line = "stopped before the end; the job goes back to the queue";
                self.end_log(key, progress, LogLevel::Warn, line.to_string())
                    .await;
                self.release(key).await;
                Ended::Released
            }
            Ok(Err(ActionError::Retry(cause))) => {
                metrics::counter!("mist_job_failures_total", "kind" => kind.to_string(), "terminal" => "false")
                    .increment(1);
                // The queue keeps the cause's own text; the logs show its sources too.
                let message = cause.to_string();
                let line = format!(
                    "failed after {elapsed:.1} s: {}; it will be retried after a pause",
                    ErrorChain(&*cause)
                );
                self.end_log(key, progress, LogLevel::Error, line).await;
                match self.queue.fail(key, &self.owner, now, &message).await {
                    Ok(next_attempt_at) => {
                        tracing::warn!(error = %ErrorChain(&*cause), retry_in_ms = next_attempt_at - now, "job failed; will retry");
                    }
                    Err(error) => tracing::warn!(%error, "cannot record the failure"),
                }
                Ended::Failed
            }
            Ok(Err(ActionError::Terminal(reason, message))) => {
                metrics::counter!("mist_job_failures_total", "kind" => kind.to_string(), "terminal" => "true")
                    .increment(1);
                tracing::warn!(%reason, error = %message, "job failed terminally; waiting for a spec change");
                let text = format!("{reason}: {message}");
                let line = format!(
                    "failed after {elapsed:.1} s and will not be retried until the spec changes: \
                     {text}"
                );
                self.end_log(key, progress, LogLevel::Error, line).await;
                if let Err(error) = self.queue.fail_terminal(key, &self.owner, now, &text).await {
                    tracing::warn!(%error, "cannot record the failure");
                }
                Ended::Terminal
            }
            Err(join_error) => {
                metrics::counter!("mist_job_failures_total", "kind" => kind.to_string(), "terminal" => "false")
                    .increment(1);
                let message = format!("the job panicked: {join_error}");
                tracing::error!(error = %message);
                self.end_log(key, progress, LogLevel::Error, message.clone())
                    .await;
                let _ = self.queue.fail(key, &self.owner, now, &message).await;
                Ended::Failed
            }
        }
    }

    /// Writes the lines the work logged since the last report to the job's log. Fails with
    /// [`mist_db::Error::LeaseLost`] when the job is no longer this worker's.
    ///
    /// The write runs in a task of its own: the reporter that asks for it is dropped when the
    /// work ends, and a transaction dropped half way would leave its connection to the pool
    /// mid-transaction. The task finishes on its own and forgets only what it wrote; writes
    /// take turns (`lock_writes`), so the last one waits for any still under way and no line
    /// is written twice or lost.
    async fn write_log(
        &self,
        key: &str,
        progress: &Arc<ProgressCell>,
    ) -> Result<(), mist_db::Error> {
        let (db, key, owner, progress) = (
            self.ctx.db.clone(),
            key.to_owned(),
            self.owner.clone(),
            progress.clone(),
        );
        let write = tokio::spawn(async move {
            let _writing = progress.lock_writes().await;
            let (last, lines) = progress.unwritten_lines();
            db.append_job_log(&key, &owner, &lines, &LogLimits::default())
                .await
                .map(|()| progress.written(last))
        });
        match write.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error @ mist_db::Error::LeaseLost { .. })) => Err(error),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot write the job's log");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "the job's log write panicked");
                Ok(())
            }
        }
    }

    /// Adds how the attempt ended to the job's log, and writes what is still unwritten.
    async fn end_log(
        &self,
        key: &str,
        progress: &Arc<ProgressCell>,
        level: LogLevel,
        line: String,
    ) {
        progress.log((self.now)(), level, line);
        if let Err(error) = self.write_log(key, progress).await {
            tracing::warn!(%error, "cannot write the end of the job's log");
        }
    }

    async fn release(&self, key: &str) {
        if let Err(error) = self.queue.release(key, &self.owner, (self.now)()).await {
            tracing::warn!(%error, "cannot release the job");
        }
    }
}

/// Calls `report` every `period` (the first time at once) until `until` resolves; each call
/// gets the progress now. [`Workers::run_job`] reports through it; it is kept apart so its
/// timing can be tested with tokio's paused clock.
pub(crate) async fn report_every<F, Fut>(
    period: Duration,
    cell: &ProgressCell,
    mut report: F,
    until: impl std::future::Future<Output = ()>,
) where
    F: FnMut(mist_db::queue::Progress) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return,
            _ = ticker.tick() => report(cell.get()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn progress_is_reported_at_least_every_second_and_only_forward() {
        let cell = Arc::new(ProgressCell::default());
        let reports = std::sync::Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let work = {
            let cell = cell.clone();
            async move {
                cell.stage(0, "scan", 100);
                for done in [10, 40, 30, 100] {
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    cell.set(done, 100);
                }
                cell.stage(1, "store", 10);
                tokio::time::sleep(Duration::from_millis(700)).await;
                // An earlier stage is ignored.
                cell.stage(0, "scan", 100);
                cell.set(10, 10);
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        };
        report_every(
            PROGRESS_PERIOD,
            &cell,
            |progress| {
                reports.lock().unwrap().push((start.elapsed(), progress));
                async {}
            },
            work,
        )
        .await;
        let reports = reports.into_inner().unwrap();
        assert!(reports.len() >= 8, "{reports:?}");
        for pair in reports.windows(2) {
            let (t0, p0) = &pair[0];
            let (t1, p1) = &pair[1];
            assert!(*t1 - *t0 <= Duration::from_secs(1), "{reports:?}");
            assert!(
                (p1.stage_index, p1.done) >= (p0.stage_index, p0.done),
                "progress moved back: {p0:?} -> {p1:?}"
            );
        }
        let last = &reports.last().unwrap().1;
        assert_eq!(
            (last.stage_index, last.stage.as_str(), last.done, last.total),
            (1, "store", 10, 10)
        );
    }
}
