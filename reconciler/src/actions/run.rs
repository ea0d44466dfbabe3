//! One job run ([`Run`]) and what every kind of job does with it: events, artifacts recorded,
//! progress while blocking work runs, cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mist_db::EpochMs;
use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::state::{Artifact, ArtifactKind};

use super::context::{Context, ProgressCell};
use super::error::{ActionError, retry};
use crate::store::Stored;

/// One job run: the shared context, the progress it reports, the flag that cancels it and
/// the clock.
pub(super) struct Run {
    pub(super) ctx: Arc<Context>,
    pub(super) progress: Arc<ProgressCell>,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) now: fn() -> EpochMs,
}

pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ActionError> + Send + 'static,
) -> Result<T, ActionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| retry(format!("the work panicked: {e}")))?
}

impl Run {
    pub(super) fn now(&self) -> EpochMs {
        (self.now)()
    }

    /// Adds a line to the job's log (see `docs/reconciler.md`, "Job logs").
    pub(super) fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.progress.log(self.now(), level, message.into());
    }

    /// Logs an artifact made: `<what> 1.2 MB (12.5% of <whole>) in 0.3 s: <address>`.
    pub(super) fn log_made(
        &self,
        what: &str,
        stored: &Stored,
        (whole, whole_bytes): (&str, u64),
        started: std::time::Instant,
    ) {
        self.log(
            LogLevel::Info,
            format!(
                "{what} {} ({:.1}% of {whole}) in {:.1} s: {}",
                mist_platform::units::human_size(stored.size),
                100.0 * stored.size as f64 / whole_bytes.max(1) as f64,
                started.elapsed().as_secs_f64(),
                stored.address
            ),
        );
    }

    pub(super) fn check_cancel(&self) -> Result<(), ActionError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(ActionError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(super) async fn event(
        &self,
        object: &ObjectRef,
        severity: Severity,
        reason: &str,
        message: &str,
    ) {
        let event = (severity, reason, message);
        if let Err(error) = self.ctx.record_event(object, event, self.now()).await {
            tracing::warn!(%error, "cannot record an event");
        }
    }

    /// Records an artifact that is in place.
    pub(super) async fn record(
        &self,
        stored: &Stored,
        kind: ArtifactKind,
        verified_at: Option<EpochMs>,
    ) -> Result<(), ActionError> {
        let artifact = Artifact {
            address: stored.address.clone(),
            kind,
            size: stored.size,
            path: stored.path.clone(),
            created_at: self.now(),
            verified_at,
        };
        let db = &self.ctx.db;
        let new = db.record_artifact(&artifact).await.map_err(retry)?;
        if !new && let Some(at) = verified_at {
            db.mark_artifact_verified(&artifact.address, at)
                .await
                .map_err(retry)?;
        }
        Ok(())
    }

    /// Reports bytes written by blocking work while it runs.
    pub(super) async fn with_progress<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ActionError>>,
        written: &AtomicU64,
        total: u64,
    ) -> Result<T, ActionError> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    // Compressed bytes are a lower bound of the tar bytes packed.
                    let done = written.load(Ordering::Relaxed).min(total.saturating_sub(1));
                    self.progress.set(done, total);
                }
            }
        }
    }

    /// Notes a build that changed under a job, so the next pass re-scans it.
    pub(super) fn on_changed(&self, game: &str, version: &str, error: &ActionError) {
        if let ActionError::Retry(cause) = error
            && cause.to_string().contains("changed")
        {
            self.ctx
                .verify
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .suspect(game, version);
        }
    }
}
