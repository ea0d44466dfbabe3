//! [`Failure`]: an error in what the admin gave (a name, a flag's value, a file that already
//! exists). Like clap's usage errors and every other error, it exits with 2; exit code 1 is
//! only for a check that ran and found problems (docs/cli.md).

/// An error in the admin's input, with a message that says what to change.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
}

impl Failure {
    /// The input is wrong.
    pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
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
