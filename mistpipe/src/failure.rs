//! [`Failure`]: an error the user can act on, and the exit code it maps to (0 success,
//! 1 invalid input, 2 could not run).

/// A failure the user can act on, with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The exit code: 1 for invalid input.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// The input is wrong (exit 1).
    pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            code: 1,
            message: message.into(),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
