//! How a command names the spec repository: `--repo DIR`, the same flag for every command
//! (`new`, `user`, `validate`, `plan`, `hook install`, `confirm-retire`). The commands that
//! used to take the folder as an argument (`validate DIR`, `plan DIR`, `hook install DIR`)
//! still accept it, unlisted, so hooks and scripts written for them keep working.

use std::path::PathBuf;

/// `--repo DIR`, or the folder as an argument, as older scripts give it.
#[derive(clap::Args)]
pub(crate) struct RepoArgs {
    /// The spec repository (default: the current folder).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// The same as --repo, as older scripts and hooks give it.
    #[arg(value_name = "DIR", hide = true, conflicts_with = "repo")]
    dir: Option<PathBuf>,
}

impl RepoArgs {
    /// The folder named, or `.`.
    pub(crate) fn dir(&self) -> PathBuf {
        self.repo
            .clone()
            .or_else(|| self.dir.clone())
            .unwrap_or_else(|| PathBuf::from("."))
    }
}
