//! What every job shares: the [`Context`] it runs in, and the [`ProgressCell`] it reports
//! progress through.

use std::path::PathBuf;
use std::sync::Mutex;

use mist_db::Db;
use mist_db::queue::Progress;

use crate::observe::VerifyState;
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
}

/// Progress of the running job, set by the work and read by the reporter.
#[derive(Debug, Default)]
pub(crate) struct ProgressCell {
    inner: Mutex<Progress>,
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
}
