//! What every job shares: the [`Context`] it runs in, and the [`ProgressCell`] it reports
//! progress and log lines through.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::{LogLevel, LogLine};
use mist_db::queue::Progress;
use mist_db::state::VersionObserved;
use mist_db::{Db, EpochMs};

use crate::observe::VerifyState;
use crate::steam::MetadataConfig;
use crate::store::ArtifactStore;

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
    /// How the metadata job reaches the store.
    pub metadata: MetadataClient,
}

/// The HTTP client of the metadata job, and its settings.
#[derive(Debug)]
pub(crate) struct MetadataClient {
    pub client: reqwest::Client,
    pub config: MetadataConfig,
}

impl MetadataClient {
    /// A client whose requests time out after the configured time, with Mist's user agent.
    pub fn new(config: MetadataConfig) -> Result<MetadataClient, reqwest::Error> {
        // reqwest's builder panics without a TLS provider (STACK.md); one may be installed
        // already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("mist/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(MetadataClient { client, config })
    }
}

impl Context {
    /// Records an event on `object`, which keeps its last [`EVENTS_KEPT`]; returns the
    /// event's id.
    pub async fn record_event(
        &self,
        object: &ObjectRef,
        (severity, reason, message): (Severity, &str, &str),
        now: EpochMs,
    ) -> Result<i64, mist_db::Error> {
        self.db
            .record_event(object, severity, reason, message, now, EVENTS_KEPT)
            .await
    }

    /// Changes a version row's observed columns, read again under [`Context::rows`]:
    /// `change` gets what is stored and returns what to store instead, or `None` to leave the
    /// row alone. Returns whether the row changed.
    pub async fn update_version_observed(
        &self,
        (game, version): (&str, &str),
        now: EpochMs,
        change: impl FnOnce(VersionObserved) -> Option<VersionObserved>,
    ) -> Result<bool, mist_db::Error> {
        let _rows = self.rows.lock().await;
        let Some(row) = self.db.version(game, version).await? else {
            return Ok(false);
        };
        let Some(observed) = change(row.observed) else {
            return Ok(false);
        };
        let changed = self
            .db
            .set_version_observed(game, version, &observed, now)
            .await?;
        Ok(changed == Some(true))
    }
}

/// How many log lines wait in a [`ProgressCell`] for the reporter at most; beyond that the
/// oldest waiting line goes (the database keeps fewer per job anyway).
const MAX_PENDING_LINES: usize = 200;

/// Progress of the running job and the log lines it wrote since the last report, set by the
/// work and read by the reporter.
#[derive(Debug, Default)]
pub(crate) struct ProgressCell {
    inner: Mutex<Progress>,
    lines: Mutex<PendingLines>,
    /// Held while lines are written, so that two writes never send the same lines.
    writing: tokio::sync::Mutex<()>,
}

/// Log lines not yet written, each with its number in this run.
#[derive(Debug, Default)]
struct PendingLines {
    n_logged: u64,
    lines: VecDeque<(u64, LogLine)>,
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

    /// Adds a line to the job's log; the reporter writes it with the next progress report.
    pub fn log(&self, at: EpochMs, level: LogLevel, message: String) {
        let mut pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if pending.lines.len() >= MAX_PENDING_LINES {
            pending.lines.pop_front();
        }
        pending.n_logged += 1;
        let line_number = pending.n_logged;
        pending
            .lines
            .push_back((line_number, LogLine { at, level, message }));
    }

    /// The lines not yet written, oldest first, and the number of the last one (to pass to
    /// [`ProgressCell::written`] once they are). They stay until then: a write cut short
    /// (its future dropped when the work ended) loses nothing.
    pub fn unwritten_lines(&self) -> (u64, Vec<LogLine>) {
        let pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let last = pending
            .lines
            .back()
            .map_or(0, |(line_number, _)| *line_number);
        let lines = pending.lines.iter().map(|(_, line)| line.clone()).collect();
        (last, lines)
    }

    /// Waits until no other write of this job's lines is under way, and keeps others waiting
    /// while the guard lives.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writing.lock().await
    }

    /// Forgets the lines up to number `last`, now written.
    pub fn written(&self, last: u64) {
        let mut pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while pending
            .lines
            .front()
            .is_some_and(|(line_number, _)| *line_number <= last)
        {
            pending.lines.pop_front();
        }
    }
}
