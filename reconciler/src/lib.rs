//! Mist's reconciler: makes the NAS and the database match the specs in git.
//!
//! Newcomers should start with the [`Reconciler`]: `mistd` builds one from a
//! [`ReconcilerConfig`] and a database, then calls [`Reconciler::run`] until shutdown.
//!
//! It is level-triggered and laid out like kube-runtime: whatever wakes it, a pass reads the
//! desired state, observes reality and runs the same full diff, then queues the work:
//!
//! ```text
//!  triggers ──► pass: desired ──► observe ──► diff (pure) ──► jobs ──► queue (database)
//!                                   ▲                                     │
//!                                   └────── runner: workers run actions ◄─┘
//! ```
//!
//! - [`desired`]: reads the spec tree at the tip of a branch ([`desired::DesiredState`]) and
//!   keeps the last good commit in force ([`desired::Desired`]).
//! - [`triggers`] and [`webhook`]: what requests a pass.
//! - [`observe`]: the database snapshot checked against the NAS (artifacts present with the
//!   right size, source builds present, builds re-scanned on a slow schedule for drift).
//! - [`diff`]: the pure diff, `diff(&Desired, &Observed, DiffConfig) -> Diff`.
//! - [`jobs`]: actions as durable jobs with deterministic, content-derived keys.
//! - `actions` and `runner`: the workers that execute jobs under leases.
//! - [`store`]: the content-addressed artifact store on the NAS.
//! - [`mod@status`]: the status report, read by [`status()`].
//!
//! Metrics go through the `metrics` facade (the binary installs a recorder):
//! `mist_queue_depth` (gauge), `mist_job_duration_seconds` (histogram, by kind),
//! `mist_job_failures_total` (counter, by kind and terminal), `mist_pass_duration_seconds`
//! (histogram) and `mist_last_successful_reconcile_timestamp_seconds` (gauge).
#![deny(missing_docs)]

mod actions;
pub mod desired;
pub mod diff;
pub mod jobs;
pub mod observe;
mod pass;
mod runner;
pub mod status;
pub mod store;
pub mod triggers;
pub mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mist_db::queue::{Queue, QueueConfig};
use mist_db::{Db, EpochMs};
use tokio::sync::Notify;

pub use crate::desired::SpecsSource;
pub use crate::pass::PassReport;
pub use crate::status::StatusReport;

use crate::actions::Context;
use crate::runner::Workers;

/// The default time between re-scans of one ingested build.
pub const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// The default number of warm skip deltas per game.
pub const DEFAULT_SKIP_DELTAS: usize = 2;

/// How the reconciler is set up. `mistd` fills it from its flags, config file and
/// environment.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// The spec repository (`--specs`): a local repository or a URL.
    pub specs: SpecsSource,
    /// The branch whose tip is the desired state.
    pub branch: String,
    /// The NAS root (`--nas`). Builds are read from it; the reconciler writes only below
    /// `<nas>/.mist/`.
    pub nas: PathBuf,
    /// The data directory (`--data`): the mirror of a remote spec repository.
    pub data: PathBuf,
    /// The periodic resync interval (before ±10 % jitter); for a remote, the fetch interval.
    pub resync: Duration,
    /// Warm skip deltas per game: from each of this many versions before the previous one
    /// to the latest.
    pub skip_deltas: usize,
    /// At most this many jobs run at once, across every process sharing the database.
    pub concurrency: usize,
    /// Re-scan an ingested build for drift at most this often (0: every pass).
    pub verify_interval: Duration,
    /// The lease owner name of this process's workers. Keep it stable across restarts (the
    /// default derives it from the data directory), so a restart takes back at once the jobs
    /// its previous incarnation held.
    pub owner: String,
}

impl ReconcilerConfig {
    /// A configuration with the defaults: branch `main`, a 60 s resync, 2 skip deltas, one
    /// job per core, re-verification every 6 h and an owner named after `data`.
    pub fn new(specs: SpecsSource, nas: impl Into<PathBuf>, data: impl Into<PathBuf>) -> Self {
        let data = data.into();
        ReconcilerConfig {
            specs,
            branch: desired::DEFAULT_BRANCH.to_string(),
            nas: nas.into(),
            owner: format!("mist-reconciler:{}", data.display()),
            data,
            resync: triggers::DEFAULT_RESYNC,
            skip_deltas: DEFAULT_SKIP_DELTAS,
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            verify_interval: DEFAULT_VERIFY_INTERVAL,
        }
    }
}

/// Why the reconciler failed. A failing spec commit is not an error (it is recorded and
/// shown in the status); these are failures to run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec repository could not be opened.
    #[error("cannot open the spec repository")]
    Desired(#[from] desired::DesiredError),
    /// A database operation failed.
    #[error("database error")]
    Db(#[from] mist_db::Error),
    /// The triggers could not be started.
    #[error("cannot start the triggers")]
    Triggers(#[from] triggers::TriggerError),
    /// The artifact store could not be opened.
    #[error("cannot open the artifact store below {}", path.display())]
    Store {
        /// The NAS root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// [`Reconciler::run`] was called while it was already running.
    #[error("the reconciler is already running")]
    AlreadyRunning,
    /// [`Reconciler::run_until_idle`] kept finding work.
    #[error("reconciling did not settle after {0} rounds")]
    NotSettled(usize),
    /// A background task panicked.
    #[error("a reconciler task failed: {0}")]
    Task(String),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The reconciler: passes (desired → observe → diff → enqueue → status) and the workers that
/// run the queued jobs.
pub struct Reconciler {
    config: ReconcilerConfig,
    db: Db,
    ctx: Arc<Context>,
    queue: Queue,
    /// The spec reader. A blocking read holds the lock until it ends, even when the pass
    /// that started it was cancelled.
    reader: Arc<tokio::sync::Mutex<desired::DesiredState>>,
    /// Serialises passes and holds what they remember.
    pass_state: tokio::sync::Mutex<pass::PassState>,
    trigger: triggers::Trigger,
    requests: Mutex<Option<triggers::Requests>>,
    job_ended: Arc<Notify>,
    jobs_queued: Arc<Notify>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Reconciler {
    /// Opens the spec repository (or prepares the mirror of a remote) and the artifact store
    /// below `<nas>/.mist/`. Nothing is read or reconciled yet.
    pub fn new(config: ReconcilerConfig, db: Db) -> Result<Self> {
        let mut desired_config = desired::DesiredConfig::new(config.specs.clone(), &config.data);
        desired_config.branch = config.branch.clone();
        let reader = desired::DesiredState::open(desired_config)?;
        let store = store::ArtifactStore::open(&config.nas).map_err(|source| Error::Store {
            path: config.nas.clone(),
            source,
        })?;
        let ctx = Arc::new(Context {
            db: db.clone(),
            store,
            nas: config.nas.clone(),
            rows: tokio::sync::Mutex::new(()),
            verify: Mutex::new(observe::VerifyState::default()),
        });
        let queue = db.queue(QueueConfig {
            max_running: u32::try_from(config.concurrency.max(1)).unwrap_or(u32::MAX),
            ..QueueConfig::default()
        });
        let (trigger, requests) = triggers::channel();
        Ok(Reconciler {
            config,
            db,
            ctx,
            queue,
            reader: Arc::new(tokio::sync::Mutex::new(reader)),
            pass_state: tokio::sync::Mutex::new(pass::PassState::default()),
            trigger,
            requests: Mutex::new(Some(requests)),
            job_ended: Arc::new(Notify::new()),
            jobs_queued: Arc::new(Notify::new()),
        })
    }

    /// Replaces the retry backoff (default: 5 s doubling up to 10 min, with jitter), for
    /// tests and demos that cannot wait minutes.
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Self {
        let mut queue_config = self.queue.config().clone();
        queue_config.backoff_base = base;
        queue_config.backoff_cap = cap;
        self.queue = self.db.queue(queue_config);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ReconcilerConfig {
        &self.config
    }

    /// A handle that requests a pass (for the webhook, say).
    pub fn trigger(&self) -> triggers::Trigger {
        self.trigger.clone()
    }

    /// One pass: reads the desired state, observes, diffs, queues the work and writes
    /// conditions, events and revisions. A pass over a converged state writes nothing.
    pub async fn reconcile_once(&self) -> Result<PassReport> {
        let started = std::time::Instant::now();
        let result = self.pass().await;
        metrics::histogram!("mist_pass_duration_seconds").record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            metrics::gauge!("mist_last_successful_reconcile_timestamp_seconds")
                .set(now_ms() as f64 / 1000.0);
        }
        result
    }

    /// Runs passes and the jobs they queue until there is nothing left to do: a pass queues
    /// nothing and no job is due. Jobs waiting for a retry after a failure do not hold it up.
    /// For tests and the demo; a server calls [`Reconciler::run`].
    pub async fn run_until_idle(&self) -> Result<()> {
        const MAX_ROUNDS: usize = 200;
        self.queue
            .release_owner(&self.config.owner, now_ms())
            .await?;
        for _ in 0..MAX_ROUNDS {
            let report = self.reconcile_once().await?;
            let n_ran = self.drain().await?;
            if n_ran == 0 && report.n_enqueued == 0 && report.n_requeued == 0 && report.n_links == 0
            {
                return Ok(());
            }
        }
        Err(Error::NotSettled(MAX_ROUNDS))
    }

    /// Runs until `shutdown` resolves: triggers (start-up, the spec repository's refs, the
    /// jittered resync, `SIGHUP`) start passes, and `concurrency` workers run the jobs. On
    /// shutdown no new job is claimed; running ones finish or are released within 10 s.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or(Error::AlreadyRunning)?;
        let result = self.run_with(&mut requests, shutdown).await;
        *self.requests.lock().unwrap_or_else(|e| e.into_inner()) = Some(requests);
        result
    }

    async fn run_with(
        &self,
        requests: &mut triggers::Requests,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        self.queue
            .release_owner(&self.config.owner, now_ms())
            .await?;
        let watch_git_dir = self.reader.lock().await.watch_dir()?;
        let triggers_config = triggers::TriggersConfig {
            startup: true,
            watch_git_dir,
            resync: Some(self.config.resync),
            ..Default::default()
        };
        let _triggers = triggers::spawn(&triggers_config, &self.trigger)?;

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = Arc::new(self.workers());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency.max(1) {
            let workers = workers.clone();
            let stopped = stopped.clone();
            tasks.spawn(async move { workers.run(stopped).await });
        }

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                request = requests.wait() => {
                    tracing::info!(%request, "reconcile requested");
                }
                _ = self.job_ended.notified() => {}
            }
            tokio::select! {
                _ = &mut shutdown => break,
                result = self.reconcile_once() => match result {
                    Ok(report) => tracing::info!(%report, "pass done"),
                    Err(error) => tracing::error!(error = %ErrorChain(&error), "pass failed"),
                },
            }
        }

        tracing::info!("shutting down");
        let _ = stop.send(true);
        let all_stopped = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), all_stopped)
            .await
            .is_err()
        {
            tasks.abort_all();
            self.queue
                .release_owner(&self.config.owner, now_ms())
                .await?;
        }
        Ok(())
    }

    /// Runs due jobs with `concurrency` workers until none is due; returns how many ran.
    async fn drain(&self) -> Result<usize> {
        let workers = Arc::new(self.workers());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency.max(1) {
            let workers = workers.clone();
            tasks.spawn(async move { workers.drain().await });
        }
        let mut n_ran = 0;
        while let Some(joined) = tasks.join_next().await {
            n_ran += joined.map_err(|e| Error::Task(e.to_string()))??;
        }
        Ok(n_ran)
    }

    fn workers(&self) -> Workers {
        Workers {
            ctx: self.ctx.clone(),
            queue: self.queue.clone(),
            owner: self.config.owner.clone(),
            job_ended: self.job_ended.clone(),
            jobs_queued: self.jobs_queued.clone(),
            now: now_ms,
        }
    }
}

/// Reads the status from the database: the commit in force and tried, every error, each
/// game's versions with their condition and progress, and the queue.
pub async fn status(db: &Db) -> Result<StatusReport> {
    Ok(status::report(db).await?)
}

/// Shows an error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
