//! Mist's reconciler: makes the NAS and the database match the specs in git.
//!
//! Newcomers should start with the [`Reconciler`]: `mistd` builds one from a
//! [`ReconcilerConfig`] and a database, then calls [`Reconciler::run`] until shutdown.
//!
//! [`Reconciler`]: reconciler::Reconciler
//! [`ReconcilerConfig`]: reconciler::ReconcilerConfig
//! [`Reconciler::run`]: reconciler::Reconciler::run
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
//! - [`reconciler`]: the [`Reconciler`] and its configuration; it ties the rest together.
//! - [`pass`]: one reconcile pass, from the desired state to the status it writes, and the
//!   [`pass::PassReport`] saying what it did.
//! - [`desired`]: reads the spec tree at the tip of a branch ([`desired::DesiredState`]) and
//!   keeps the last good commit in force ([`desired::Desired`]).
//! - [`triggers`] and [`webhook`]: what requests a pass.
//! - [`observe`]: the database snapshot checked against the NAS (artifacts present with the
//!   right size, source builds present, builds re-scanned on a slow schedule for drift).
//! - [`diff`]: the pure diff, `diff(&Desired, &Observed, DiffConfig) -> Diff`.
//! - [`jobs`]: actions as durable jobs with deterministic, content-derived keys.
//! - `actions` and `runner`: the workers that execute jobs under leases.
//! - [`store`]: the content-addressed artifact store on the NAS.
//! - [`steam`]: Steam's store as the source of games' catalog metadata (the `metadata` job).
//! - [`report`]: the status report, read by [`status()`].
//! - [`error`]: the [`error::Error`] of a reconciler that cannot run at all.
//!
//! Metrics go through the `metrics` facade (the binary installs a recorder):
//! `mist_queue_depth` (gauge), `mist_job_duration_seconds` (histogram, by kind),
//! `mist_job_failures_total` (counter, by kind and terminal), `mist_pass_duration_seconds`
//! (histogram) and `mist_last_successful_reconcile_timestamp_seconds` (gauge).
#![deny(missing_docs)]

mod actions;
mod clock;
pub mod desired;
pub mod diff;
pub mod error;
pub mod jobs;
pub mod observe;
pub mod pass;
pub mod reconciler;
pub mod report;
mod runner;
pub mod steam;
pub mod store;
pub mod triggers;
pub mod webhook;

use mist_db::Db;

use crate::error::Result;
use mist_wire::status::StatusReport;

/// Reads the status from the database: the commit in force and tried, every error, each
/// game's versions with their condition and progress, and the queue.
pub async fn status(db: &Db) -> Result<StatusReport> {
    Ok(report::report(db).await?)
}
