//! Mist's reconciler: makes the NAS and the database match the specs in git.
//!
//! It is level-triggered and laid out like kube-runtime: whatever wakes it, it reads the
//! desired state, observes reality and runs the same full diff. This crate so far holds the
//! first part:
//!
//! - [`desired`]: the principal type is [`desired::DesiredState`], which reads the spec tree
//!   at the tip of a branch (a local repository in place, or a remote through a bare mirror),
//!   and [`desired::Desired`], the pure state machine that keeps the last good commit in
//!   force when a newer one fails to load or validate.
//! - [`triggers`]: the coalescing "reconcile requested" signal ([`triggers::Trigger`],
//!   [`triggers::Requests`]) and the tasks that raise it: start-up, a watcher on the local
//!   repository's refs, a jittered periodic resync and `SIGHUP`.
//! - [`webhook`]: an HMAC-verified GitHub/Gitea webhook that only requests a run.
//!
//! A reconcile loop ties them together:
//!
//! ```no_run
//! # async fn run(config: mist_reconciler::desired::DesiredConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use mist_reconciler::{desired, triggers};
//!
//! let mut reader = desired::DesiredState::open(config)?;
//! let triggers_config = triggers::TriggersConfig {
//!     watch_git_dir: reader.watch_dir()?,
//!     ..Default::default()
//! };
//! let (trigger, mut requests) = triggers::channel();
//! let _tasks = triggers::spawn(&triggers_config, &trigger)?;
//! let mut state = desired::Desired::new();
//! loop {
//!     let request = requests.wait().await;
//!     tracing::info!(%request, "reconcile requested");
//!     let (back, read) = tokio::task::spawn_blocking(move || {
//!         let read = reader.read();
//!         (reader, read)
//!     })
//!     .await?;
//!     reader = back;
//!     match read {
//!         Ok(snapshot) => tracing::info!(outcome = ?state.observe(snapshot)),
//!         Err(e) => state.read_failed(&e),
//!     }
//!     // Diff `state.last_good()` against reality; prune only if `state.may_prune()`.
//! }
//! # }
//! ```
#![deny(missing_docs)]

pub mod desired;
pub mod triggers;
pub mod webhook;
