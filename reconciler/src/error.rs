//! The reconciler's [`Error`]: failures to run at all. A failing spec commit is not one (it
//! is recorded and shown in the status), nor is a failing job (the queue retries it).

use std::path::PathBuf;

use crate::{desired, triggers};

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
    /// [`Reconciler::run`](crate::reconciler::Reconciler::run) was called while it was already
    /// running.
    #[error("the reconciler is already running")]
    AlreadyRunning,
    /// [`Reconciler::run_until_idle`](crate::reconciler::Reconciler::run_until_idle) kept
    /// finding work.
    #[error("reconciling did not settle after {0} rounds")]
    NotSettled(usize),
    /// The HTTP client of the metadata job could not be made.
    #[error("cannot make the HTTP client for the store's metadata")]
    Http(#[source] reqwest::Error),
    /// A background task panicked.
    #[error("a reconciler task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
