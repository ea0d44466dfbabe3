//! Applying an update to a friend's install: staged, verified, then committed through a
//! journal, so that a crash at any instant leaves the old version intact or the new one
//! complete.
//!
//! [`update::apply_delta`] applies a [tree delta](crate::treedelta) and
//! [`update::apply_pack`] the full content of a version (the hook for `pack`: a closure that
//! unpacks a pack into a folder). Both run the same five phases; newcomers start at
//! `update.rs`, which runs them in order:
//!
//! 1. **Recover** whatever an earlier run left (see [`recover::recover`]).
//! 2. **Check** the install against the source manifest: every path the update touches must
//!    be what the source says, every path it creates must be free, and no directory on the
//!    way may be a symlink. An install already at the target is left alone
//!    ([`Outcome::AlreadyCurrent`]). Nothing has been written yet.
//! 3. **Stage** every new or changed file into `<parent>/.<name>.mist-staging/objects/`,
//!    named by its BLAKE3, after checking the free disk space. Each file is written to
//!    `tmp/`, checked against the target manifest, fsynced and renamed into `objects/`, so a
//!    staged object is always complete and verified; a later run keeps it (resume).
//! 4. **Journal**: the list of every step of the commit is written to `journal.tmp`, fsynced
//!    and renamed to `journal`. That rename is the commit point.
//! 5. **Commit**: back up each replaced or deleted file or symlink into `backup/`, remove
//!    directories that go, make the new ones, rename staged files into place, make symlinks,
//!    change modes; fsync the directories; delete the journal; remove the staging folder.
//!
//! Every step checks the state before acting, so running the journal again after a crash
//! finishes the commit from wherever it stopped. If a step fails (an I/O error, or someone
//! changed the install meanwhile) the journal is renamed to `rollback` and the finished
//! steps are undone in reverse, restoring the old version.
//!
//! Files the update does not change are never rewritten, and files in the install that are
//! in neither manifest (a friend's saves and mods) are never touched: the update refuses to
//! start if one is in the way of a new file.
//!
//! Every path is opened relative to an open directory, component by component, with
//! `O_NOFOLLOW`: a symlink where a directory is expected is refused, never followed.
//!
//! ## Fault injection
//!
//! When the environment variable `MIST_FAULT_AFTER_OPS` is set to `N`, the process aborts
//! right after its `N`-th filesystem step (a file staged, a rename, an fsync, a removal…).
//! The crash tests use it to stop an update at every step; unset, it does nothing.
//!
//! ## Rooms
//!
//! This file holds the public types; each phase has a room of its own:
//!
//! - [`update`]: `apply_delta`, `apply_pack` and the run that calls the phases in order;
//! - [`recover`]: `recover` and `discard_staging`, built on the commit's roll forward and
//!   back;
//! - [`location`]: where the staging folder and the lock live (`staging_path`, `lock_path`);
//! - [`remove`]: uninstalling what a manifest lists and keeping the rest (`remove_listed`),
//!   or everything (`remove_all`);
//! - `tree`: an open folder walked without following symlinks;
//! - `check`: the install compared with the source (or target) manifest;
//! - `changes`: what changes, the commit steps and the files to stage;
//! - `stage`: the new files written into the staging folder and verified;
//! - `journal`: the steps written whole, the commit point;
//! - `commit`: the steps run forward, or undone in reverse;
//! - `fault`: the crash tests' fault injection.

use std::io;
use std::path::{Path, PathBuf};

use mist_platform::units::human_size;

use crate::manifest::TreeDigest;
use crate::treedelta::format::TreeDeltaError;

mod changes;
mod check;
mod commit;
mod fault;
mod journal;
pub mod location;
pub mod recover;
pub mod remove;
mod stage;
mod tree;
pub mod update;

/// The environment variable that makes the process abort after that many filesystem steps.
pub const FAULT_ENV: &str = "MIST_FAULT_AFTER_OPS";

/// Settings for [`update::apply_delta`] and [`update::apply_pack`].
#[derive(Debug, Clone, Copy)]
pub struct InstallOptions {
    /// Hash every file the update leaves as it is, rather than only checking its size and
    /// executable bit. Files the update reads or replaces are always checked.
    pub verify_unchanged: bool,
    /// Free space to leave on the disk beyond what the staged files need, in bytes.
    pub free_space_margin: u64,
    /// The most memory the files being rebuilt at once may use, in bytes.
    pub memory_budget: u64,
    /// Threads for staging; 0 means one per CPU.
    pub threads: usize,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            verify_unchanged: false,
            free_space_margin: 64 << 20,
            memory_budget: 1 << 30,
            threads: 0,
        }
    }
}

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallReport {
    /// Whether anything changed.
    pub outcome: Outcome,
    /// Files written into the staging folder by this run.
    pub files_staged: u64,
    /// Verified files found staged by an earlier run and kept.
    pub files_resumed: u64,
    /// Bytes written into the staging folder by this run.
    pub bytes_staged: u64,
    /// Steps in the commit journal.
    pub steps: u64,
}

/// Whether an update changed the install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The install was at the source version and is now at the target.
    Updated,
    /// The install was already at the target version; nothing was written.
    AlreadyCurrent,
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No unfinished update; leftovers, if any, were cleaned (verified staged files are kept
    /// for the next run).
    Clean,
    /// A committed update was finished: the install is at the new version.
    RolledForward,
    /// An update that failed while committing was undone: the install is at the old version.
    RolledBack,
}

/// Why an update or a recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The tree delta is unusable or a file could not be rebuilt.
    #[error(transparent)]
    Delta(#[from] TreeDeltaError),
    /// The install is not the version the update starts from.
    #[error("{} is not at the version this update starts from ({expected}): {detail}", install.display())]
    NotSource {
        /// The install folder.
        install: PathBuf,
        /// The source version's digest.
        expected: TreeDigest,
        /// The first difference found.
        detail: String,
    },
    /// Something the manifests do not know sits where the update must write.
    #[error("{path:?} in {} is in the way of the update: {detail}; move it out of the install and retry", install.display())]
    Conflict {
        /// The install folder.
        install: PathBuf,
        /// The path inside it.
        path: String,
        /// What is there.
        detail: String,
    },
    /// A directory on the way to a path is a symlink (or not a directory).
    #[error("refusing to follow the symlink or non-directory at {path:?} in {}", install.display())]
    Symlink {
        /// The install folder (or the staging folder).
        install: PathBuf,
        /// The path inside it.
        path: String,
    },
    /// Not enough disk space to stage the update.
    #[error(
        "not enough free space in {}: the new files need {}, plus {} kept free so that the \
         disk never fills up, and {} is free",
        dir.display(),
        human_size(*needed),
        human_size(*margin),
        human_size(*available)
    )]
    NoSpace {
        /// Where the staging folder goes.
        dir: PathBuf,
        /// Bytes the staged files need.
        needed: u64,
        /// Bytes kept free beyond them ([`InstallOptions::free_space_margin`]).
        margin: u64,
        /// Bytes free.
        available: u64,
    },
    /// Another process holds the install's lock.
    #[error("another Mist process is updating {}", install.display())]
    Busy {
        /// The install folder.
        install: PathBuf,
    },
    /// The journal of an unfinished update cannot be read.
    #[error("the update journal {} is damaged ({detail}); the install was left as it is", path.display())]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A commit step failed; the finished steps were undone.
    #[error("the update of {} failed while committing and was rolled back", install.display())]
    RolledBack {
        /// The install folder.
        install: PathBuf,
        /// The failure.
        #[source]
        cause: Box<InstallError>,
    },
    /// The state on disk contradicts the journal.
    #[error("{} cannot be committed: {detail}", install.display())]
    Inconsistent {
        /// The install folder.
        install: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The pack hook failed.
    #[error("unpacking failed")]
    Unpack(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An I/O operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Unpacks the full content of a version into the empty folder it is given (the hook for
/// `pack::unpack`). Every file it writes is checked against the target manifest before use.
pub type Unpack<'a> =
    &'a mut dyn FnMut(&Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

crate::io_error::io_error_fn!(InstallError);

impl From<TreeDeltaError> for Box<InstallError> {
    fn from(error: TreeDeltaError) -> Self {
        Box::new(InstallError::Delta(error))
    }
}
