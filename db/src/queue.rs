//! The durable job queue. Start at [`Queue`].
//!
//! A job is keyed by a deterministic, content-derived key — for example
//! `delta:celeste:<from manifest digest>:<to manifest digest>` — so the same work is never queued
//! twice, and work whose input changes gets a new key. A job moves through these states:
//!
//! ```text
//!             enqueue                claim                 complete
//!   (none) ───────────► queued ─────────────► running ─────────────► done
//!                         ▲  ▲                 │  │ │
//!          release, lease │  └── failed ◄──────┘  │ └──────────────► terminal
//!          expiry         │      (backoff)  fail  │    fail_terminal
//!                         └───────────────────────┘
//! ```
//!
//! - [`Queue::enqueue`] inserts a key that is not there and does nothing otherwise: a `done`
//!   key stays done, a `terminal` key stays terminal until the spec changes (which changes the
//!   key), a queued, running or failed key is already on its way.
//! - [`Queue::claim`] hands out the most urgent due job (lowest `priority`, then earliest
//!   `next_attempt_at`, then key) under a lease, unless [`QueueConfig::max_running`] jobs with
//!   unexpired leases are already running. Claimers are serialised (Postgres: a row lock on
//!   `queue_lock` plus `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`), so the cap holds
//!   across processes.
//! - Every later call names the lease owner and fails with [`Error::LeaseLost`] when the job is
//!   no longer running under that owner: a worker whose lease expired and whose job was handed
//!   to another cannot complete it twice.
//! - A retryable failure ([`Queue::fail`]) waits `min(base · 2^(attempts−1), cap)` — see
//!   [`backoff_delay`] — before the job can be claimed again. A terminal one
//!   ([`Queue::fail_terminal`]: digest mismatch, invalid build) is never retried.
//! - [`Queue::recover_expired_leases`] puts jobs of crashed workers back in the queue;
//!   [`Queue::release`] and [`Queue::release_owner`] do it at once, without counting an
//!   attempt, for a graceful shutdown.
//!
//! Progress belongs to the running attempt: [`Queue::claim`] resets it, and
//! [`Queue::progress`] only ever moves it forward. Stages are ordered by the caller's
//! [`Progress::stage_index`] (0 first, e.g. `0 scan`, `1 hash`, `2 write`); a report for an
//! earlier stage, or for the same stage with a lower `done`, is ignored. Workers report at least
//! once a second; each report also renews the lease.

use std::time::Duration;

use crate::{Backend, Db, EpochMs, Error, QueryContext, Record, get, text_enum, to_i64, to_u64};

/// The job queue: a [`Db`] and the [`QueueConfig`] its workers share.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Db,
    config: QueueConfig,
}

/// How the queue schedules work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// How many jobs may run at once across every worker using this database.
    pub max_running: u32,
    /// The delay after the first retryable failure; it doubles with each further one.
    pub backoff_base: Duration,
    /// The longest delay between attempts.
    pub backoff_cap: Duration,
    /// Shorten each delay by up to a tenth, by an amount derived from the key and the attempt
    /// (deterministic, so tests can predict it), so that jobs which failed together do not all
    /// retry together.
    pub jitter: bool,
}

text_enum! {
    /// Where a job is in its life.
    pub enum JobState ("jobs.state") {
        /// Waiting to be claimed.
        Queued => "queued",
        /// Claimed by a worker under a lease.
        Running => "running",
        /// Finished successfully.
        Done => "done",
        /// The last attempt failed; it will be retried at `next_attempt_at`.
        Failed => "failed",
        /// Failed in a way retrying cannot fix; waits for a spec change (a new key).
        Terminal => "terminal",
    }
}

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// The deterministic, content-derived key.
    pub key: String,
    /// What to do, e.g. `ingest`, `delta`, `pack`.
    pub kind: String,
    /// The game the job is for, if any (for status).
    pub game: Option<String>,
    /// The version the job is for, if any (for status).
    pub version: Option<String>,
    /// Everything the worker needs, as JSON.
    pub payload_json: String,
    /// Lower runs first; 0 is normal.
    pub priority: i32,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The content-derived key.
    pub key: String,
    /// What to do.
    pub kind: String,
    /// The game the job is for, if any.
    pub game: Option<String>,
    /// The version the job is for, if any.
    pub version: Option<String>,
    /// The worker's input, as JSON.
    pub payload_json: String,
    /// Lower runs first.
    pub priority: i32,
    /// Where the job is in its life.
    pub state: JobState,
    /// Attempts that ended without success (failures and expired leases).
    pub attempts: u32,
    /// The job is not claimed before this time.
    pub next_attempt_at: EpochMs,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The worker holding the lease while running.
    pub lease_owner: Option<String>,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: Option<EpochMs>,
    /// Progress of the current (or last) attempt.
    pub progress: Progress,
    /// When the job was enqueued.
    pub created_at: EpochMs,
    /// When the row last changed.
    pub updated_at: EpochMs,
    /// When the job became done or terminal.
    pub finished_at: Option<EpochMs>,
    /// The number of the last line of the job's log (0: none yet); see [`crate::joblog`].
    pub log_seq: u64,
}

/// Progress of a running attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The stage's position in the job kind's fixed order of stages, 0 first.
    pub stage_index: u32,
    /// The stage's name, e.g. `hashing`.
    pub stage: String,
    /// Units (usually bytes) done in this stage.
    pub done: u64,
    /// Units in this stage; `done ≤ total`.
    pub total: u64,
}

/// What [`Queue::enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// The key was new; the job is queued.
    Added,
    /// The key was already there, in this state; nothing changed.
    Exists(JobState),
}

/// What [`Queue::progress`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressWrite {
    /// The progress moved forward (or stayed) and was stored.
    Recorded,
    /// The report would have moved progress backwards; only the lease was renewed.
    Ignored,
}

/// How many jobs are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be claimed.
    pub queued: u64,
    /// Claimed (with live or expired leases).
    pub running: u64,
    /// Waiting for a retry.
    pub failed: u64,
    /// Finished.
    pub done: u64,
    /// Waiting for a spec change.
    pub terminal: u64,
}

impl Default for QueueConfig {
    /// One job per core, retries from 5 s doubling up to 10 min, with jitter.
    fn default() -> QueueConfig {
        QueueConfig {
            max_running: std::thread::available_parallelism().map_or(1, |n_cores| {
                u32::try_from(n_cores.get()).unwrap_or(u32::MAX)
            }),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(600),
            jitter: true,
        }
    }
}

/// The delay before the next attempt after `attempts` failed ones (`attempts ≥ 1`):
/// `min(base · 2^(attempts−1), cap)`, less the jitter when enabled.
pub fn backoff_delay(config: &QueueConfig, key: &str, attempts: u32) -> Duration {
    let base_ms = u64::try_from(config.backoff_base.as_millis()).unwrap_or(u64::MAX);
    let cap_ms = u64::try_from(config.backoff_cap.as_millis()).unwrap_or(u64::MAX);
    let exponent = attempts.saturating_sub(1).min(63);
    let delay_ms = base_ms.saturating_mul(1 << exponent).min(cap_ms);
    let jitter_ms = if config.jitter {
        fnv1a(key, attempts) % (delay_ms / 10 + 1)
    } else {
        0
    };
    Duration::from_millis(delay_ms - jitter_ms)
}

/// FNV-1a over the key and the attempt number: stable across runs and platforms.
fn fnv1a(key: &str, attempts: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes().chain(attempts.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

// `UPDATE jobs SET <set>` of the job `$1` while the worker `$2` runs it.
macro_rules! update_running {
    ($set:literal) => {
        concat!(
            "UPDATE jobs SET ",
            $set,
            " WHERE job_key = $1 AND lease_owner = $2 AND state = 'running'"
        )
    };
}

// The columns of a job row, in the order `job_from_record` reads them.
macro_rules! job_columns {
    () => {
        "job_key, kind, game, version, payload_json, priority, state, attempts, \
         next_attempt_at, last_error, lease_owner, lease_expires_at, stage_index, stage, \
         progress_done, progress_total, created_at, updated_at, finished_at, log_seq"
    };
}
pub(crate) use job_columns;

impl Db {
    /// The job queue on this database.
    pub fn queue(&self, config: QueueConfig) -> Queue {
        Queue {
            db: self.clone(),
            config,
        }
    }
}

impl Queue {
    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Queues a job unless its key is already there (in any state).
    pub async fn enqueue(&self, new_job: &NewJob, now: EpochMs) -> Result<Enqueued, Error> {
        let result = sqlx::query(
            "INSERT INTO jobs (job_key, kind, game, version, payload_json, priority, state, \
             attempts, next_attempt_at, stage_index, stage, progress_done, progress_total, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, 0, '', 0, 0, $7, $7) \
             ON CONFLICT (job_key) DO NOTHING",
        )
        .bind(&new_job.key)
        .bind(&new_job.kind)
        .bind(&new_job.game)
        .bind(&new_job.version)
        .bind(&new_job.payload_json)
        .bind(new_job.priority)
        .bind(now)
        .execute(&self.db.pool)
        .await
        .op("enqueue job")?;
        if result.rows_affected() > 0 {
            return Ok(Enqueued::Added);
        }
        let row = sqlx::query("SELECT state FROM jobs WHERE job_key = $1")
            .bind(&new_job.key)
            .fetch_one(&self.db.pool)
            .await
            .op("read job state")?;
        Ok(Enqueued::Exists(JobState::parse(&get::<String>(
            &row, "state",
        )?)?))
    }

    /// Claims the most urgent due job for `owner` with a lease of `lease`, or returns `None`
    /// when nothing is due or [`QueueConfig::max_running`] jobs hold unexpired leases.
    ///
    /// The claim resets the job's progress. When nothing can be claimed, nothing is written.
    pub async fn claim(
        &self,
        owner: &str,
        now: EpochMs,
        lease: Duration,
    ) -> Result<Option<Job>, Error> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let max_running = i64::from(self.config.max_running);

        // A cheap look without any lock, so that idle workers polling an empty or full queue
        // never take the write lock.
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running' \
             AND lease_expires_at > $1) AS n_running, \
             (SELECT COUNT(*) FROM (SELECT 1 AS one FROM jobs \
             WHERE state IN ('queued', 'failed') AND next_attempt_at <= $1 LIMIT 1) AS due) \
             AS n_due",
        )
        .bind(now)
        .fetch_one(&self.db.pool)
        .await
        .op("look for claimable jobs")?;
        let n_running: i64 = get(&row, "n_running")?;
        let n_due: i64 = get(&row, "n_due")?;
        if n_running >= max_running || n_due == 0 {
            return Ok(None);
        }

        let mut transaction = self.db.begin_write("claim job").await?;
        if self.db.backend == Backend::Postgres {
            // Serialises claimers: counting the running jobs and claiming one must be atomic,
            // or two claimers could both see room for one more.
            sqlx::query("SELECT id FROM queue_lock WHERE id = 1 FOR UPDATE")
                .execute(&mut *transaction)
                .await
                .op("lock queue")?;
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n_running FROM jobs \
             WHERE state = 'running' AND lease_expires_at > $1",
        )
        .bind(now)
        .fetch_one(&mut *transaction)
        .await
        .op("count running jobs")?;
        let n_running: i64 = get(&row, "n_running")?;
        if n_running >= max_running {
            transaction.rollback().await.op("claim job")?;
            return Ok(None);
        }
        let candidate_sql = match self.db.backend {
            Backend::Sqlite => {
                "SELECT job_key FROM jobs WHERE state IN ('queued', 'failed') \
                 AND next_attempt_at <= $1 ORDER BY priority, next_attempt_at, job_key LIMIT 1"
            }
            Backend::Postgres => {
                "SELECT job_key FROM jobs WHERE state IN ('queued', 'failed') \
                 AND next_attempt_at <= $1 ORDER BY priority, next_attempt_at, job_key LIMIT 1 \
                 FOR UPDATE SKIP LOCKED"
            }
        };
        let Some(row) = sqlx::query(candidate_sql)
            .bind(now)
            .fetch_optional(&mut *transaction)
            .await
            .op("pick job")?
        else {
            transaction.rollback().await.op("claim job")?;
            return Ok(None);
        };
        let key: String = get(&row, "job_key")?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'running', lease_owner = $2, lease_expires_at = $3 + $4, \
             lease_ms = $4, stage_index = 0, stage = '', progress_done = 0, progress_total = 0, \
             updated_at = $3 WHERE job_key = $1 RETURNING ",
            job_columns!()
        ))
        .bind(&key)
        .bind(owner)
        .bind(now)
        .bind(lease_ms)
        .fetch_one(&mut *transaction)
        .await
        .op("claim job")?;
        let job = job_from_record(&row)?;
        transaction.commit().await.op("claim job")?;
        Ok(Some(job))
    }

    /// Reports progress of a running job and renews its lease. Progress only moves forward:
    /// a report for an earlier stage, or for the same stage with less done, is ignored (the
    /// lease is still renewed). Call it at least once a second while working.
    pub async fn progress(
        &self,
        key: &str,
        owner: &str,
        now: EpochMs,
        progress: &Progress,
    ) -> Result<ProgressWrite, Error> {
        if progress.done > progress.total {
            return Err(Error::InvalidProgress {
                key: key.to_owned(),
                done: progress.done,
                total: progress.total,
            });
        }
        let result = sqlx::query(
            "UPDATE jobs SET stage_index = $4, stage = $5, progress_done = $6, \
             progress_total = $7, lease_expires_at = $3 + lease_ms, updated_at = $3 \
             WHERE job_key = $1 AND lease_owner = $2 AND state = 'running' \
             AND (stage_index < $4 OR (stage_index = $4 AND progress_done <= $6))",
        )
        .bind(key)
        .bind(owner)
        .bind(now)
        .bind(i32::try_from(progress.stage_index).unwrap_or(i32::MAX))
        .bind(&progress.stage)
        .bind(to_i64(progress.done, "progress done")?)
        .bind(to_i64(progress.total, "progress total")?)
        .execute(&self.db.pool)
        .await
        .op("report progress")?;
        if result.rows_affected() > 0 {
            return Ok(ProgressWrite::Recorded);
        }
        self.renew_lease(key, owner, now).await?;
        Ok(ProgressWrite::Ignored)
    }

    /// Renews a running job's lease by the length it was claimed with, without reporting
    /// progress.
    pub async fn renew_lease(&self, key: &str, owner: &str, now: EpochMs) -> Result<(), Error> {
        self.update_running(
            update_running!("lease_expires_at = $3 + lease_ms, updated_at = $3"),
            key,
            owner,
            now,
            None,
            "renew lease",
        )
        .await
    }

    /// Marks a running job done.
    pub async fn complete(&self, key: &str, owner: &str, now: EpochMs) -> Result<(), Error> {
        self.update_running(
            update_running!(
                "state = 'done', lease_owner = NULL, lease_expires_at = NULL, \
                 last_error = NULL, finished_at = $3, updated_at = $3"
            ),
            key,
            owner,
            now,
            None,
            "complete job",
        )
        .await
    }

    /// Records a retryable failure: the job becomes `failed` and may be claimed again after the
    /// backoff delay. Returns when that is.
    pub async fn fail(
        &self,
        key: &str,
        owner: &str,
        now: EpochMs,
        error: &str,
    ) -> Result<EpochMs, Error> {
        let row = sqlx::query(
            "SELECT attempts FROM jobs \
             WHERE job_key = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(key)
        .bind(owner)
        .fetch_optional(&self.db.pool)
        .await
        .op("read job attempts")?;
        let Some(row) = row else {
            return Err(self.lease_lost(key, owner));
        };
        let attempts_before: i64 = get(&row, "attempts")?;
        let attempts = u32::try_from(attempts_before + 1).unwrap_or(u32::MAX);
        let delay = backoff_delay(&self.config, key, attempts);
        let next_attempt_at =
            now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        // The attempts check makes the read and the write one step: if the job was recovered
        // and claimed again in between, this write matches nothing.
        let result = sqlx::query(
            "UPDATE jobs SET state = 'failed', attempts = attempts + 1, next_attempt_at = $4, \
             last_error = $5, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
             WHERE job_key = $1 AND lease_owner = $2 AND state = 'running' AND attempts = $6",
        )
        .bind(key)
        .bind(owner)
        .bind(now)
        .bind(next_attempt_at)
        .bind(error)
        .bind(attempts_before)
        .execute(&self.db.pool)
        .await
        .op("fail job")?;
        self.require_one(result.rows_affected(), key, owner)?;
        Ok(next_attempt_at)
    }

    /// Records a failure that retrying cannot fix (digest mismatch, invalid build): the job
    /// becomes `terminal` and stays so; only a spec change, which yields a new key, or an
    /// explicit [`Queue::requeue`] runs the work again.
    pub async fn fail_terminal(
        &self,
        key: &str,
        owner: &str,
        now: EpochMs,
        reason: &str,
    ) -> Result<(), Error> {
        self.update_running(
            update_running!(
                "state = 'terminal', attempts = attempts + 1, last_error = $4, \
                 lease_owner = NULL, lease_expires_at = NULL, finished_at = $3, updated_at = $3"
            ),
            key,
            owner,
            now,
            Some(reason),
            "fail job terminally",
        )
        .await
    }

    /// Puts a running job back in the queue, claimable at once, without counting an attempt:
    /// for a graceful shutdown that abandons the running step.
    pub async fn release(&self, key: &str, owner: &str, now: EpochMs) -> Result<(), Error> {
        self.update_running(
            update_running!(
                "state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
                 next_attempt_at = $3, updated_at = $3"
            ),
            key,
            owner,
            now,
            None,
            "release job",
        )
        .await
    }

    /// Releases every job `owner` is running, as [`Queue::release`] does; returns how many.
    /// With a stable owner name (host and data directory, say), a restarted process calls this
    /// first to take back what its previous incarnation held, without waiting for the leases
    /// to expire.
    pub async fn release_owner(&self, owner: &str, now: EpochMs) -> Result<u64, Error> {
        let result = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             next_attempt_at = $2, updated_at = $2 \
             WHERE lease_owner = $1 AND state = 'running'",
        )
        .bind(owner)
        .bind(now)
        .execute(&self.db.pool)
        .await
        .op("release jobs of owner")?;
        Ok(result.rows_affected())
    }

    /// Puts running jobs whose lease has expired (their worker crashed or hung) back in the
    /// queue, claimable at once, counting the lost attempt; returns how many.
    pub async fn recover_expired_leases(&self, now: EpochMs) -> Result<u64, Error> {
        let result = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts + 1, \
             last_error = 'the lease of worker ' || lease_owner || ' expired', \
             lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = $1, updated_at = $1 \
             WHERE state = 'running' AND lease_expires_at <= $1",
        )
        .bind(now)
        .execute(&self.db.pool)
        .await
        .op("recover expired leases")?;
        Ok(result.rows_affected())
    }

    /// Queues a finished, failed or terminal job again, from scratch (attempts reset): for
    /// when the work must be redone although its input did not change — its output vanished
    /// from the NAS, or an admin asked for a retry. Returns whether the job was requeued; a
    /// queued or running job is left alone.
    pub async fn requeue(&self, key: &str, now: EpochMs) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = $2, \
             last_error = NULL, finished_at = NULL, updated_at = $2 \
             WHERE job_key = $1 AND state IN ('done', 'failed', 'terminal')",
        )
        .bind(key)
        .bind(now)
        .execute(&self.db.pool)
        .await
        .op("requeue job")?;
        Ok(result.rows_affected() > 0)
    }

    /// One job by key.
    pub async fn job(&self, key: &str) -> Result<Option<Job>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.db.pool)
        .await
        .op("read job")?
        .map(|row| job_from_record(&row))
        .transpose()
    }

    /// Every job that is not done (queued, running, failed, terminal), most urgent first.
    pub async fn unfinished(&self) -> Result<Vec<Job>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state <> 'done' ORDER BY priority, next_attempt_at, job_key"
        ))
        .fetch_all(&self.db.pool)
        .await
        .op("list unfinished jobs")?;
        rows.iter().map(|row| job_from_record(row)).collect()
    }

    /// The `limit` jobs that finished last (done), newest first: the queue's recent history.
    pub async fn recently_done(&self, limit: u32) -> Result<Vec<Job>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state = 'done' ORDER BY finished_at DESC, job_key LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.db.pool)
        .await
        .op("list recently done jobs")?;
        rows.iter().map(|row| job_from_record(row)).collect()
    }

    /// How many jobs are in each state (for the queue-depth metric).
    pub async fn counts(&self) -> Result<QueueCounts, Error> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n_jobs FROM jobs GROUP BY state")
            .fetch_all(&self.db.pool)
            .await
            .op("count jobs")?;
        let mut counts = QueueCounts::default();
        for row in &rows {
            let n_jobs = to_u64(get(row, "n_jobs")?, "n_jobs")?;
            match JobState::parse(&get::<String>(row, "state")?)? {
                JobState::Queued => counts.queued = n_jobs,
                JobState::Running => counts.running = n_jobs,
                JobState::Done => counts.done = n_jobs,
                JobState::Failed => counts.failed = n_jobs,
                JobState::Terminal => counts.terminal = n_jobs,
            }
        }
        Ok(counts)
    }

    /// Deletes done jobs that finished before `before`; returns how many. Terminal jobs are
    /// kept: deleting one would let the same failing work be queued again.
    pub async fn delete_done_before(&self, before: EpochMs) -> Result<u64, Error> {
        let result = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
            .bind(before)
            .execute(&self.db.pool)
            .await
            .op("delete done jobs")?;
        Ok(result.rows_affected())
    }

    /// Runs `sql`, an `update_running!` of the job `key` while `owner` runs it, with `$3`
    /// now and `$4` the text given, if any. Fails with [`Error::LeaseLost`] when no job
    /// running under that owner matched.
    async fn update_running(
        &self,
        sql: &'static str,
        key: &str,
        owner: &str,
        now: EpochMs,
        text: Option<&str>,
        operation: &'static str,
    ) -> Result<(), Error> {
        let mut query = sqlx::query(sql).bind(key).bind(owner).bind(now);
        if let Some(text) = text {
            query = query.bind(text);
        }
        let result = query.execute(&self.db.pool).await.op(operation)?;
        self.require_one(result.rows_affected(), key, owner)
    }

    fn require_one(&self, rows_affected: u64, key: &str, owner: &str) -> Result<(), Error> {
        if rows_affected == 0 {
            Err(self.lease_lost(key, owner))
        } else {
            Ok(())
        }
    }

    fn lease_lost(&self, key: &str, owner: &str) -> Error {
        Error::LeaseLost {
            key: key.to_owned(),
            owner: owner.to_owned(),
        }
    }
}

pub(crate) fn job_from_record(record: &dyn Record) -> Result<Job, Error> {
    let priority = record.int(5, "jobs.priority")?;
    let attempts = record.int(7, "jobs.attempts")?;
    let stage_index = record.int(12, "jobs.stage_index")?;
    let invalid = |column, value: i64| Error::InvalidValue {
        column,
        value: value.to_string(),
    };
    Ok(Job {
        key: record.text(0, "jobs.job_key")?,
        kind: record.text(1, "jobs.kind")?,
        game: record.opt_text(2, "jobs.game")?,
        version: record.opt_text(3, "jobs.version")?,
        payload_json: record.text(4, "jobs.payload_json")?,
        priority: i32::try_from(priority).map_err(|_| invalid("jobs.priority", priority))?,
        state: JobState::parse(&record.text(6, "jobs.state")?)?,
        attempts: u32::try_from(attempts).map_err(|_| invalid("jobs.attempts", attempts))?,
        next_attempt_at: record.int(8, "jobs.next_attempt_at")?,
        last_error: record.opt_text(9, "jobs.last_error")?,
        lease_owner: record.opt_text(10, "jobs.lease_owner")?,
        lease_expires_at: record.opt_int(11, "jobs.lease_expires_at")?,
        progress: Progress {
            stage_index: u32::try_from(stage_index)
                .map_err(|_| invalid("jobs.stage_index", stage_index))?,
            stage: record.text(13, "jobs.stage")?,
            done: to_u64(record.int(14, "jobs.progress_done")?, "jobs.progress_done")?,
            total: to_u64(
                record.int(15, "jobs.progress_total")?,
                "jobs.progress_total",
            )?,
        },
        created_at: record.int(16, "jobs.created_at")?,
        updated_at: record.int(17, "jobs.updated_at")?,
        finished_at: record.opt_int(18, "jobs.finished_at")?,
        log_seq: to_u64(record.int(19, "jobs.log_seq")?, "jobs.log_seq")?,
    })
}
