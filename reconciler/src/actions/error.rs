//! Why a job did not succeed: [`ActionError`].

use crate::diff::condition::Reason;

/// What made a retryable attempt fail: another crate's error, kept whole with its sources, or a
/// sentence when there is no error to carry.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a job did not succeed.
#[derive(Debug)]
pub(crate) enum ActionError {
    /// Retry later, with backoff. The cause's own text is what the queue records as the
    /// attempt's error; a log shows it with its sources.
    Retry(Cause),
    /// Retrying cannot help; wait for a spec change.
    Terminal(Reason, String),
    /// Stopped for a shutdown or a lost lease; release the job.
    Cancelled,
}

/// A retryable failure: `cause` is an error (its sources kept) or a sentence.
pub(super) fn retry(cause: impl Into<Cause>) -> ActionError {
    ActionError::Retry(cause.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mist_platform::error::ErrorChain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the pack")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_retry_keeps_its_cause_with_its_sources() {
        let ActionError::Retry(cause) = retry(Outer(std::io::Error::other("disk full"))) else {
            panic!("not a retry");
        };
        // The queue records the cause's own text, as before; a log shows the whole chain.
        assert_eq!(cause.to_string(), "cannot write the pack");
        assert_eq!(
            ErrorChain(&*cause).to_string(),
            "cannot write the pack: disk full"
        );
        let ActionError::Retry(sentence) = retry("version g/1 has no row yet".to_string()) else {
            panic!("not a retry");
        };
        assert_eq!(sentence.to_string(), "version g/1 has no row yet");
        assert!(sentence.source().is_none());
    }
}
