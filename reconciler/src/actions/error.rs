//! Why a job did not succeed: [`ActionError`].

use crate::diff::condition::Reason;

/// Why a job did not succeed.
#[derive(Debug)]
pub(crate) enum ActionError {
    /// Retry later, with backoff.
    Retry(String),
    /// Retrying cannot help; wait for a spec change.
    Terminal(Reason, String),
    /// Stopped for a shutdown; release the job.
    Cancelled,
}

pub(super) fn retry(error: impl std::fmt::Display) -> ActionError {
    ActionError::Retry(error.to_string())
}
