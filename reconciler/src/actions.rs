//! Executing one job: ingest, pack, delta, prune.
//!
//! A job reads everything it needs fresh from the database and the NAS when it runs (the
//! payload only names the work), so a job that waited in the queue acts on the present, not
//! on what was true when it was queued. Every output is a content-addressed artifact written
//! through [`ArtifactStore`](crate::store::ArtifactStore) (temp file, fsync, rename), recorded in the database only after
//! it is in place; a job cut short at any point can simply run again.
//!
//! Errors are either retryable (the queue backs off and retries: I/O, a build being copied)
//! or terminal (waiting for a spec change: the build does not hash to the pinned digest, or
//! is not a valid build). A terminal error's text starts with its stable reason,
//! `"<Reason>: <message>"`, which the diff shows as the version's condition.
//!
//! The rooms: `context` (what every job shares), `error` (why a job did not succeed), `run`
//! (one job run and its helpers), `facts` (what a job reads fresh), `input_tree` (a version's
//! tree as an input), and one module per kind of job: `ingest`, `pack`, `delta`, `prune`,
//! `metadata`.

pub(crate) mod context;
mod delta;
pub(crate) mod error;
mod facts;
mod ingest;
mod input_tree;
mod metadata;
mod pack;
mod prune;
mod run;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mist_db::EpochMs;
use mist_db::queue::Job;

use self::context::{Context, ProgressCell};
use self::error::ActionError;
use self::run::Run;
use crate::diff::action::Action;
use crate::diff::condition::Reason;

/// Runs one job to its end (or its first error).
pub(crate) async fn execute(
    ctx: Arc<Context>,
    job: Job,
    progress: Arc<ProgressCell>,
    cancel: Arc<AtomicBool>,
    now: fn() -> EpochMs,
) -> Result<(), ActionError> {
    let action = crate::jobs::parse_payload(&job.payload_json).map_err(|e| {
        ActionError::Terminal(Reason::Failed, format!("unreadable job payload: {e}"))
    })?;
    let run = Run {
        ctx,
        progress,
        cancel,
        now,
    };
    match action {
        Action::Ingest {
            game,
            version,
            source,
            pinned,
        } => {
            run.ingest(&game, &version, &source, pinned.as_deref())
                .await
        }
        Action::Pack {
            game,
            version,
            digest,
        } => run.pack(&game, &version, &digest).await,
        Action::Delta {
            game,
            from,
            to,
            from_digest,
            to_digest,
        } => run.delta(&game, &from, &to, &from_digest, &to_digest).await,
        Action::Prune {
            game,
            version,
            remove,
        } => run.prune(&game, &version, remove).await,
        Action::Metadata { game, app_id, .. } => run.metadata(&game, app_id).await,
        Action::LinkPack { .. } | Action::LinkDelta { .. } | Action::SpecImage { .. } => {
            Err(ActionError::Terminal(
                Reason::Failed,
                "the pass does this itself; it is not a job".to_string(),
            ))
        }
    }
}
