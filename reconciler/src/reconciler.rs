//! The [`Reconciler`] and its [`ReconcilerConfig`]: passes (desired → observe → diff → act →
//! status), started by the triggers, and the workers that run the jobs they queue.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mist_db::Db;
use mist_db::queue::{Queue, QueueConfig};
use tokio::sync::Notify;

use crate::actions::context::{Context, MetadataClient};
use crate::clock::now_ms;
use crate::desired::{self, SpecsSource};
use crate::error::{Error, Result};
use crate::pass::{PassReport, Passes};
use crate::runner::Workers;
use crate::steam::MetadataConfig;
use crate::{observe, store, triggers};
use mist_platform::error::ErrorChain;

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
    /// The most of the Ready versions, in percent, one commit may retire without a
    /// confirmation ([`crate::diff::DiffConfig::max_retire_percent`]).
    pub max_retire_percent: u8,
    /// At most this many jobs run at once, across every process sharing the database.
    pub concurrency: usize,
    /// Re-scan an ingested build for drift at most this often (0: every pass).
    pub verify_interval: Duration,
    /// The lease owner name of this process's workers. Keep it stable across restarts (the
    /// default derives it from the data directory), so a restart takes back at once the jobs
    /// its previous incarnation held.
    pub owner: String,
    /// Where games' store metadata is fetched from, and how often.
    pub metadata: MetadataConfig,
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
            max_retire_percent: crate::diff::DiffConfig::default().max_retire_percent,
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            verify_interval: DEFAULT_VERIFY_INTERVAL,
            metadata: MetadataConfig::default(),
        }
    }
}

/// The reconciler: passes (desired → observe → diff → enqueue → status) and the workers that
/// run the queued jobs.
pub struct Reconciler {
    config: ReconcilerConfig,
    db: Db,
    ctx: Arc<Context>,
    queue: Queue,
    /// Runs the passes, one at a time, and holds what they remember.
    passes: Passes,
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
            metadata: MetadataClient::new(config.metadata.clone()).map_err(Error::Http)?,
        });
        let queue = db.queue(QueueConfig {
            max_running: u32::try_from(config.concurrency.max(1)).unwrap_or(u32::MAX),
            ..QueueConfig::default()
        });
        let (trigger, requests) = triggers::channel();
        let jobs_queued = Arc::new(Notify::new());
        let passes = Passes {
            db: db.clone(),
            ctx: ctx.clone(),
            queue: queue.clone(),
            reader: Arc::new(tokio::sync::Mutex::new(reader)),
            state: Default::default(),
            jobs_queued: jobs_queued.clone(),
            branch: config.branch.clone(),
            skip_deltas: config.skip_deltas,
            max_retire_percent: config.max_retire_percent,
            verify_interval: config.verify_interval,
            metadata_refresh: config.metadata.refresh,
        };
        Ok(Reconciler {
            config,
            db,
            ctx,
            queue,
            passes,
            trigger,
            requests: Mutex::new(Some(requests)),
            job_ended: Arc::new(Notify::new()),
            jobs_queued,
        })
    }

    /// Replaces the retry backoff (default: 5 s doubling up to 10 min, with jitter), for
    /// tests and demos that cannot wait minutes.
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Self {
        let mut queue_config = self.queue.config().clone();
        queue_config.backoff_base = base;
        queue_config.backoff_cap = cap;
        self.queue = self.db.queue(queue_config);
        self.passes.queue = self.queue.clone();
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
        let result = self.passes.run().await;
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
        let watch_git_dir = self.passes.reader.lock().await.watch_dir()?;
        let triggers_config = triggers::TriggersConfig {
            startup: true,
            watch_git_dir,
            watch_incoming: Some(self.config.nas.join("incoming")),
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
            n_ran += joined??;
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
