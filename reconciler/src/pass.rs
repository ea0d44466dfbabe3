//! One reconcile pass: desired → observe → diff → act on the database → status.
//!
//! Everything the pass writes is compared with the snapshot first, so a pass over a converged
//! state makes no write at all: no upsert, no condition, no event.//!
//! The types are here: [`PassReport`], what a pass did, and `Passes`, which runs passes and
//! holds what they remember. The steps are `impl Passes` blocks in the submodules: `run` (the
//! pass itself, step by step), `specs` (recording the commit tried and the spec rows), `act`
//! (queueing jobs, making links, storing the specs' header images, publishing users),
//! `conditions` (conditions and events) and `notify` (the notifications written with them,
//! and the first sync's digest).

mod act;
mod conditions;
mod notify;
mod run;
mod specs;

use std::sync::Arc;
use std::time::Duration;

use mist_db::queue::Queue;
use mist_db::snapshot::Snapshot;
use mist_db::{Db, EpochMs};

use crate::actions::context::Context;
use crate::desired::{self, Attempt};
use crate::diff;
use crate::diff::action::Action;
use crate::observe::FastMap;

/// Re-scans started in one pass stop after this long; the rest wait for the next pass.
const VERIFY_BUDGET: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The commit in force (the last good one), if any.
    pub commit: Option<String>,
    /// The last commit tried.
    pub attempted: Option<String>,
    /// How many errors the last commit tried has (0 when it applied).
    pub n_errors: usize,
    /// Why the spec repository could not be read, if it could not.
    pub read_error: Option<String>,
    /// The work the diff asked for (jobs and links), sorted.
    pub actions: Vec<Action>,
    /// Jobs newly queued.
    pub n_enqueued: usize,
    /// Finished jobs queued again because their output vanished.
    pub n_requeued: usize,
    /// Links made (packs or deltas of identical content).
    pub n_links: usize,
    /// Database rows and events the pass itself wrote (0 when converged).
    pub n_writes: usize,
    /// Builds re-scanned for drift.
    pub n_verified: usize,
    /// Versions that are Ready.
    pub n_ready: usize,
    /// Versions that are not (reconciling, stalled; retired and pruned ones not counted).
    pub n_not_ready: usize,
    /// Leftover temporary files removed.
    pub n_tmp_removed: usize,
    /// Whether the database snapshot of the previous pass was used again, because nothing
    /// had been committed to the database since it was read.
    pub snapshot_reused: bool,
    /// Whether the previous pass was converged and everything this one read — the database
    /// snapshot, the specs, the artifacts on the NAS, the source folders looked for — was
    /// the same, with no build due for a re-scan: then this pass is converged too, and its
    /// observation, diff and status were not computed again.
    pub converged_reused: bool,
    /// How long each step of the pass took, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

impl PassReport {
    /// Whether the pass found nothing to do and wrote nothing.
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty()
            && self.n_writes == 0
            && self.n_enqueued == 0
            && self.n_requeued == 0
    }
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit {}, {} ready, {} not ready, {} queued, {} requeued, {} links, {} writes, {} verified",
            self.commit
                .as_deref()
                .map_or("none", |c| &c[..c.len().min(12)]),
            self.n_ready,
            self.n_not_ready,
            self.n_enqueued,
            self.n_requeued,
            self.n_links,
            self.n_writes,
            self.n_verified
        )?;
        if self.n_errors > 0 {
            write!(f, "; the last commit tried has {} errors", self.n_errors)?;
        }
        if let Some(error) = &self.read_error {
            write!(f, "; cannot read the specs: {error}")?;
        }
        Ok(())
    }
}

/// Runs reconcile passes, one at a time, and holds what they remember. The
/// [`Reconciler`](crate::reconciler::Reconciler) holds one and shares its database, queue
/// and job context with it.
pub(crate) struct Passes {
    pub db: Db,
    pub ctx: Arc<Context>,
    pub queue: Queue,
    /// The spec reader. A blocking read holds the lock until it ends, even when the pass
    /// that started it was cancelled.
    pub reader: Arc<tokio::sync::Mutex<desired::DesiredState>>,
    /// Serialises passes and holds what they remember.
    pub state: tokio::sync::Mutex<PassState>,
    /// Raised when a pass queues jobs, so idle workers look at once.
    pub jobs_queued: Arc<tokio::sync::Notify>,
    /// The branch whose tip is the desired state (names the spec repository's condition).
    pub branch: String,
    /// Warm skip deltas per game (see [`diff::DiffConfig::skip_deltas`]).
    pub skip_deltas: usize,
    /// See [`crate::diff::DiffConfig::max_retire_percent`].
    pub max_retire_percent: u8,
    /// Re-scan an ingested build for drift at most this often.
    pub verify_interval: Duration,
    /// See [`diff::DiffConfig::metadata_refresh`].
    pub metadata_refresh: Duration,
}

/// What passes remember between them.
#[derive(Debug, Default)]
pub(crate) struct PassState {
    machine: desired::Desired,
    /// The attempt whose revision was last recorded by this process.
    recorded_attempt: Option<Attempt>,
    /// The read error last recorded as an event.
    recorded_read_error: Option<String>,
    /// The database snapshot the last pass worked from. The next pass uses it again when the
    /// database's change counter has not moved since it was read: then it is exactly what a
    /// new read would return. Any write — this pass's own, a worker's, another process's —
    /// moves the counter, so the pass after it reads afresh.
    snapshot: Option<Arc<Snapshot>>,
    /// The diff's view of the specs in force, for the `Loaded` it was made from.
    desired: Option<DesiredMemo>,
    /// What the last pass read, when it was converged.
    converged: Option<Converged>,
    /// Whether the first sync's digest is written: known true once read so, never false
    /// again.
    first_sync_done: bool,
}

/// [`desired_of`](specs::desired_of) for one loaded spec tree.
#[derive(Debug)]
struct DesiredMemo {
    loaded: Arc<mist_specs::load::Loaded>,
    may_prune: bool,
    desired: Arc<diff::Desired>,
}

/// Everything a converged pass read, from the snapshot on. A pass computes the same thing
/// from the same inputs — `observe` and `diff` are functions of exactly these, as long as no
/// build is due for a re-scan and no game's metadata for a fetch — so a pass that finds them
/// all unchanged is converged too:
/// it writes nothing (its predecessor wrote nothing, or the snapshot would have changed),
/// and it need not observe, diff or compare the status again.
#[derive(Debug)]
struct Converged {
    snapshot: Arc<Snapshot>,
    desired: Arc<diff::Desired>,
    on_disk: Arc<FastMap<String, u64>>,
    sources_checked: Vec<(String, bool)>,
    next_verify_at: Option<EpochMs>,
    next_metadata_at: Option<EpochMs>,
    n_ready: usize,
    n_not_ready: usize,
}
