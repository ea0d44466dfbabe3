//! Applying an update to a friend's install: staged, verified, then committed through a
//! journal, so that a crash at any instant leaves the old version intact or the new one
//! complete.
//!
//! [`apply_delta`] applies a [tree delta](crate::treedelta) and [`apply_pack`] the full
//! content of a version (the hook for `pack.rs`: a closure that unpacks a pack into a
//! folder). Both run the same five phases:
//!
//! 1. **Recover** whatever an earlier run left (see [`recover`]).
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

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::confined::{self, Dir, Kind, WalkError};
use crate::copy::{copy_verified, read_at_most};
use crate::manifest::{
    EntryKind, FileHash, FileInfo, Manifest, TreeDigest, files_by_path, mode_for,
};
use crate::parallel::{Budget, run_parallel};
use crate::treedelta::format::{TreeDeltaError, check_untrusted_path};
use crate::treedelta::index::Op;
use crate::treedelta::package::Package;

/// The environment variable that makes the process abort after that many filesystem steps.
pub const FAULT_ENV: &str = "MIST_FAULT_AFTER_OPS";

/// Settings for [`apply_delta`] and [`apply_pack`].
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
    #[error("not enough free space in {}: {needed} bytes needed, {available} available", dir.display())]
    NoSpace {
        /// Where the staging folder goes.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
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
    #[error("the update of {} failed while committing and was rolled back: {cause}", install.display())]
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
    #[error("unpacking failed: {0}")]
    Unpack(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An I/O operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
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

/// Applies a tree delta to the install in `install_dir`, which must hold the delta's source
/// version, whose manifest is `source` (plus any files in neither manifest, which are left
/// alone).
///
/// Before anything else, `source` must hash to the package's source digest and the target
/// manifest rebuilt from it must hash to its target digest ([`Package::target_manifest`]).
/// Then runs [`recover`]. Returns [`Outcome::AlreadyCurrent`] without writing anything if the
/// install is already at the target version. On any error before the commit point the
/// install is untouched; verified staged files stay for the next run.
pub fn apply_delta(
    install_dir: &Path,
    source: &Manifest,
    package: &Package,
    options: &InstallOptions,
) -> Result<InstallReport, InstallError> {
    let target = package.target_manifest(source)?;
    let index = package.index();
    let writes: HashMap<&str, Change> = index
        .ops
        .iter()
        .map(|op| {
            let write = match op {
                Op::Mode { .. } => Change::Chmod,
                Op::Copy { .. } | Op::Patch { .. } | Op::Add { .. } => Change::Place,
            };
            (op.path(), write)
        })
        .collect();
    run(
        install_dir,
        Update {
            source,
            target: &target,
            writes,
        },
        Content::Delta(package, source),
        options,
    )
}

/// Updates the install in `install_dir` from version `source` to `target` using a pack:
/// `unpack` writes the whole target tree into a folder inside the staging area (only if
/// some file is not staged yet), and only the files that differ from `source` are taken
/// from it.
///
/// For a fresh install, pass an empty `source`; `install_dir` may then be missing.
pub fn apply_pack(
    install_dir: &Path,
    source: &Manifest,
    target: &Manifest,
    unpack: Unpack<'_>,
    options: &InstallOptions,
) -> Result<InstallReport, InstallError> {
    for entry in source.entries.iter().chain(&target.entries) {
        check_untrusted_path(&entry.path).map_err(|reason| TreeDeltaError::UnsafePath {
            path: entry.path.clone(),
            reason,
        })?;
    }
    let source_files = files_by_path(source);
    let writes: HashMap<&str, Change> = files_by_path(target)
        .into_iter()
        .filter_map(|(path, target)| match source_files.get(path) {
            Some(source) if source == &target => None,
            Some(source) if source.hash == target.hash => Some((path, Change::Chmod)),
            _ => Some((path, Change::Place)),
        })
        .collect();
    run(
        install_dir,
        Update {
            source,
            target,
            writes,
        },
        Content::Pack(unpack),
        options,
    )
}

/// Finishes or undoes an update that a crash interrupted, and cleans up what it left.
///
/// With a committed journal the update is rolled forward (the install ends at the new
/// version); with a rollback marker it is rolled back; otherwise nothing in the install had
/// changed, and only partial files, backups and unneeded state are removed. Verified staged
/// files are kept so that the next run resumes. Safe to call at any time and repeatedly;
/// [`apply_delta`] and [`apply_pack`] call it first.
pub fn recover(install_dir: &Path) -> Result<Recovery, InstallError> {
    let location = Location::find(install_dir)?;
    let parent =
        Dir::open(&location.parent_path).map_err(io_error(&location.parent_path, "open"))?;
    let _lock = location.lock(&parent)?;
    recover_locked(&parent, &location)
}

/// Removes the staging folder of `install_dir` entirely (after [`recover`]), dropping staged
/// files that would let a later run resume.
pub fn discard_staging(install_dir: &Path) -> Result<Recovery, InstallError> {
    let location = Location::find(install_dir)?;
    let parent =
        Dir::open(&location.parent_path).map_err(io_error(&location.parent_path, "open"))?;
    let _lock = location.lock(&parent)?;
    let recovery = recover_locked(&parent, &location)?;
    parent
        .remove_tree(location.staging_name(), &mut fault_point)
        .map_err(io_error(&location.staging_path(), "remove"))?;
    sync(&parent, &location.parent_path)?;
    Ok(recovery)
}

/// The staging folder of `install_dir`: `<parent>/.<name>.mist-staging`.
pub fn staging_path(install_dir: &Path) -> Result<PathBuf, InstallError> {
    Ok(Location::find(install_dir)?.staging_path())
}

/// What changes for a target file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// New content: a staged file is renamed into place.
    Place,
    /// Same content, the executable bit flips.
    Chmod,
}

struct Update<'a> {
    source: &'a Manifest,
    target: &'a Manifest,
    /// Target files that change, by path; the others are unchanged.
    writes: HashMap<&'a str, Change>,
}

enum Content<'a> {
    /// The package and the source manifest it was checked against.
    Delta(&'a Package, &'a Manifest),
    Pack(Unpack<'a>),
}

/// One commit step. In the journal: `{"step":"place","path":…,"object":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase", deny_unknown_fields)]
enum Step {
    /// Move the old file or symlink at `path` to `backup/<slot>`.
    Backup { path: String, slot: u64 },
    /// Remove the old directory at `path` if it is empty (files in neither manifest keep it).
    RemoveDir { path: String },
    /// Make the directory `path`.
    MakeDir { path: String },
    /// Move `objects/<object>` to `path`.
    Place { path: String, object: String },
    /// Make the symlink `path` → `target`.
    Symlink { path: String, target: String },
    /// Change the permission bits of the file `path` from `from` to `to`.
    Chmod { path: String, from: u32, to: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Journal {
    source: TreeDigest,
    target: TreeDigest,
    steps: Vec<Step>,
}

/// A target file's content to stage, named `<blake3 hex>` or, for further copies of the same
/// content, `<blake3 hex>.<n>`.
#[derive(Debug, Clone)]
struct Object<'a> {
    name: String,
    path: &'a str,
    info: FileInfo,
}

const JOURNAL: &str = "journal";
const JOURNAL_TMP: &str = "journal.tmp";
const ROLLBACK: &str = "rollback";
const OBJECTS: &str = "objects";
const TMP: &str = "tmp";
const BACKUP: &str = "backup";
const UNPACK: &str = "unpack";
const JOURNAL_MAGIC: &str = "MISTJRNL1";

/// Where an install and its companions live.
struct Location {
    parent_path: PathBuf,
    name: String,
    install_path: PathBuf,
}

impl Location {
    /// Resolves the install folder (following symlinks in the path given, so the staging
    /// folder sits beside the real folder, on the same file system).
    fn find(install_dir: &Path) -> Result<Location, InstallError> {
        let resolved = match std::fs::canonicalize(install_dir) {
            Ok(path) => path,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let parent = match install_dir.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                let parent = std::fs::canonicalize(parent).map_err(io_error(parent, "resolve"))?;
                let name = install_dir
                    .file_name()
                    .ok_or_else(|| bad_name(install_dir))?;
                parent.join(name)
            }
            Err(error) => return Err(io_error(install_dir, "resolve")(error)),
        };
        let name = resolved
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| bad_name(install_dir))?
            .to_owned();
        let parent_path = resolved
            .parent()
            .ok_or_else(|| bad_name(install_dir))?
            .to_owned();
        Ok(Location {
            parent_path,
            name,
            install_path: resolved,
        })
    }

    fn staging_name(&self) -> String {
        format!(".{}.mist-staging", self.name)
    }

    fn staging_path(&self) -> PathBuf {
        self.parent_path.join(self.staging_name())
    }

    /// Takes the install's lock, a file beside it that is never removed (so two processes
    /// can never lock different files), held until the returned file is closed.
    ///
    /// A lock held elsewhere is retried for a moment before the install counts as busy: a
    /// process that another thread of this one is just starting holds a copy of every open
    /// file (the lock of an update that has already finished, too) until it executes its
    /// program, which closes them.
    fn lock(&self, parent: &Dir) -> Result<File, InstallError> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);
        let name = format!(".{}.mist-lock", self.name);
        let path = self.parent_path.join(&name);
        let start = std::time::Instant::now();
        loop {
            match parent.lock_file(&name) {
                Ok(file) => return Ok(file),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if start.elapsed() >= PATIENCE {
                        return Err(InstallError::Busy {
                            install: self.install_path.clone(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(error) => return Err(io_error(&path, "lock")(error)),
            }
        }
    }
}

fn bad_name(path: &Path) -> InstallError {
    InstallError::Io {
        path: path.to_owned(),
        action: "use as an install folder",
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 folder name"),
    }
}

/// The open staging folder and its subfolders.
struct Staging {
    path: PathBuf,
    dir: Dir,
    objects: Dir,
    tmp: Dir,
    backup: Dir,
}

impl Staging {
    /// Opens the staging folder, creating it if `create`; `None` if it does not exist and
    /// `create` is false. A symlink in its place is refused.
    fn open(
        parent: &Dir,
        location: &Location,
        create: bool,
    ) -> Result<Option<Staging>, InstallError> {
        let path = location.staging_path();
        let name = location.staging_name();
        let Some(dir) = open_or_make_dir(parent, &name, &path, create)? else {
            return Ok(None);
        };
        let sub = |sub: &str| -> Result<Dir, InstallError> {
            let sub_path = path.join(sub);
            open_or_make_dir(&dir, sub, &sub_path, true)
                .map(|dir| dir.expect("created when missing"))
        };
        let objects = sub(OBJECTS)?;
        let tmp = sub(TMP)?;
        let backup = sub(BACKUP)?;
        Ok(Some(Staging {
            path,
            dir,
            objects,
            tmp,
            backup,
        }))
    }
}

fn open_or_make_dir(
    parent: &Dir,
    name: &str,
    path: &Path,
    create: bool,
) -> Result<Option<Dir>, InstallError> {
    match parent.stat(name).map_err(io_error(path, "inspect"))? {
        None if !create => return Ok(None),
        None => {
            parent
                .mkdir(name, 0o700)
                .map_err(io_error(path, "create"))?;
            fault_point();
        }
        Some(stat) if stat.kind == Kind::Dir => {}
        Some(_) => {
            return Err(InstallError::Symlink {
                install: path.parent().unwrap_or(path).to_owned(),
                path: name.to_owned(),
            });
        }
    }
    parent
        .open_dir(name)
        .map(Some)
        .map_err(io_error(path, "open"))
}

fn run(
    install_dir: &Path,
    update: Update<'_>,
    content: Content<'_>,
    options: &InstallOptions,
) -> Result<InstallReport, InstallError> {
    let location = Location::find(install_dir)?;
    let parent =
        Dir::open(&location.parent_path).map_err(io_error(&location.parent_path, "open"))?;
    let _lock = location.lock(&parent)?;
    recover_locked(&parent, &location)?;

    let install = &location.install_path;
    match parent
        .stat(&location.name)
        .map_err(io_error(install, "inspect"))?
    {
        Some(stat) if stat.kind == Kind::Dir => {}
        None if update.source.entries.is_empty() => {
            // A fresh install: an empty folder is the empty source version.
            parent
                .mkdir(&location.name, 0o755)
                .map_err(io_error(install, "create"))?;
            fault_point();
            sync(&parent, &location.parent_path)?;
        }
        found => {
            return Err(InstallError::NotSource {
                install: install.clone(),
                expected: update.source.tree_digest(),
                detail: match found {
                    None => "the install folder does not exist".to_owned(),
                    Some(_) => "the install path is not a folder".to_owned(),
                },
            });
        }
    }
    let root = parent
        .open_dir(&location.name)
        .map_err(io_error(install, "open"))?;
    let tree = Tree {
        path: install,
        dir: &root,
    };

    if let Err(not_source) = check_state(&tree, &update, State::Source, options) {
        if matches!(
            not_source,
            InstallError::NotSource { .. } | InstallError::Conflict { .. }
        ) && check_state(&tree, &update, State::Target, options).is_ok()
        {
            return Ok(InstallReport {
                outcome: Outcome::AlreadyCurrent,
                files_staged: 0,
                files_resumed: 0,
                bytes_staged: 0,
                steps: 0,
            });
        }
        return Err(not_source);
    }
    let steps = plan_steps(&tree, &update)?;
    if steps.is_empty() {
        // Everything the update touches is already as the target says.
        return Ok(InstallReport {
            outcome: Outcome::AlreadyCurrent,
            files_staged: 0,
            files_resumed: 0,
            bytes_staged: 0,
            steps: 0,
        });
    }
    let objects = objects(&update);

    let staging = Staging::open(&parent, &location, true)?.expect("created when missing");
    let (missing, files_resumed) = resume(&staging, &objects, options)?;
    let needed: u64 = missing.iter().map(|object| object.info.size).sum::<u64>()
        + (steps.len() as u64) * 512
        + options.free_space_margin;
    let available = staging
        .dir
        .free_bytes()
        .map_err(io_error(&staging.path, "read the free space of"))?;
    if available < needed {
        return Err(InstallError::NoSpace {
            dir: location.parent_path.clone(),
            needed,
            available,
        });
    }
    let files_staged = missing.len() as u64;
    let bytes_staged = missing.iter().map(|object| object.info.size).sum();
    stage(&staging, &objects, &missing, content, &tree, options)?;
    sync(&staging.objects, &staging.path.join(OBJECTS))?;

    let journal = Journal {
        source: update.source.tree_digest(),
        target: update.target.tree_digest(),
        steps,
    };
    write_journal(&staging, &journal)?;
    commit(&parent, &location, &root, &staging, &journal)?;
    Ok(InstallReport {
        outcome: Outcome::Updated,
        files_staged,
        files_resumed,
        bytes_staged,
        steps: journal.steps.len() as u64,
    })
}

/// An open tree and its path, for messages.
struct Tree<'a> {
    path: &'a Path,
    dir: &'a Dir,
}

/// The directory holding a path, or why it cannot be reached.
enum Parent<'p> {
    Found(Dir, &'p str),
    /// A directory on the way does not exist.
    Missing,
}

impl Tree<'_> {
    fn parent<'p>(&self, rel: &'p str) -> Result<Parent<'p>, InstallError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        match self.dir.open_path(parent) {
            Ok(dir) => Ok(Parent::Found(dir, name)),
            Err(WalkError::Symlink { prefix }) => Err(InstallError::Symlink {
                install: self.path.to_owned(),
                path: prefix,
            }),
            // A file where a folder would be: nothing below it exists.
            Err(WalkError::NotDir { .. }) => Ok(Parent::Missing),
            Err(WalkError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(Parent::Missing)
            }
            Err(WalkError::Io { prefix, source }) => {
                Err(io_error(&self.path.join(prefix), "open")(source))
            }
        }
    }

    /// The directory holding `rel`, which must exist.
    fn existing_parent<'p>(&self, rel: &'p str) -> Result<(Dir, &'p str), InstallError> {
        match self.parent(rel)? {
            Parent::Found(dir, name) => Ok((dir, name)),
            Parent::Missing => Err(InstallError::Inconsistent {
                install: self.path.to_owned(),
                detail: format!("the folder holding {rel:?} is missing"),
            }),
        }
    }

    fn stat(&self, rel: &str) -> Result<Option<confined::Stat>, InstallError> {
        match self.parent(rel)? {
            Parent::Found(dir, name) => dir
                .stat(name)
                .map_err(io_error(&self.path.join(rel), "inspect")),
            Parent::Missing => Ok(None),
        }
    }

    /// Like [`Tree::stat`], for a path that `manifest` does not have: below one of the
    /// manifest's own symlinks it does not exist (and is never walked through), below any
    /// other symlink it is refused.
    fn stat_beside(
        &self,
        rel: &str,
        manifest: &HashMap<&str, &EntryKind>,
    ) -> Result<Option<confined::Stat>, InstallError> {
        match self.stat(rel) {
            Err(InstallError::Symlink { path, .. })
                if matches!(manifest.get(path.as_str()), Some(EntryKind::Symlink { .. })) =>
            {
                Ok(None)
            }
            other => other,
        }
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Source,
    Target,
}

/// Checks that the install is at the source (or target) version wherever the update looks:
/// every entry of that manifest is there as recorded, and every path only the other
/// manifest has is free (a directory may stay: it may hold a friend's files).
fn check_state(
    tree: &Tree<'_>,
    update: &Update<'_>,
    state: State,
    options: &InstallOptions,
) -> Result<(), InstallError> {
    let (this, other) = match state {
        State::Source => (update.source, update.target),
        State::Target => (update.target, update.source),
    };
    let this_kinds: HashMap<&str, &EntryKind> = this
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mismatch = |detail: String| InstallError::NotSource {
        install: tree.path.to_owned(),
        expected: update.source.tree_digest(),
        detail,
    };
    for entry in &this.entries {
        let path = entry.path.as_str();
        let found = tree.stat(path)?;
        let describe = |found: &Option<confined::Stat>| match found {
            None => "missing".to_owned(),
            Some(stat) => format!("a {}", stat.kind.name()),
        };
        match (&entry.kind, &found) {
            (EntryKind::Dir, Some(stat)) if stat.kind == Kind::Dir => {}
            (EntryKind::Dir, _) => {
                return Err(mismatch(format!(
                    "{path:?} should be a folder but is {}",
                    describe(&found)
                )));
            }
            (EntryKind::Symlink { target }, Some(stat)) if stat.kind == Kind::Symlink => {
                let (dir, name) = tree.existing_parent(path)?;
                let found_target = dir
                    .read_link(name)
                    .map_err(io_error(&tree.join(path), "read"))?;
                if found_target != target.as_bytes() {
                    return Err(mismatch(format!(
                        "the symlink {path:?} points to {:?}, not {target:?}",
                        String::from_utf8_lossy(&found_target)
                    )));
                }
            }
            (EntryKind::Symlink { .. }, _) => {
                return Err(mismatch(format!(
                    "{path:?} should be a symlink but is {}",
                    describe(&found)
                )));
            }
            (
                EntryKind::File {
                    size,
                    executable,
                    blake3,
                },
                Some(stat),
            ) if stat.kind == Kind::File => {
                if stat.size != *size {
                    return Err(mismatch(format!(
                        "{path:?} is {} bytes, expected {size}",
                        stat.size
                    )));
                }
                if (stat.mode & 0o111 != 0) != *executable {
                    return Err(mismatch(format!(
                        "{path:?} is {}executable, expected the opposite",
                        if *executable { "not " } else { "" }
                    )));
                }
                let written =
                    state == State::Target && update.writes.get(path) == Some(&Change::Place);
                if options.verify_unchanged || written {
                    let (dir, name) = tree.existing_parent(path)?;
                    let file = dir
                        .open_file(name)
                        .map_err(io_error(&tree.join(path), "open"))?;
                    if !hash_matches(file, *size, blake3, &tree.join(path))? {
                        return Err(mismatch(format!("{path:?} has different content")));
                    }
                }
            }
            (EntryKind::File { .. }, _) => {
                return Err(mismatch(format!(
                    "{path:?} should be a file but is {}",
                    describe(&found)
                )));
            }
        }
    }
    for entry in &other.entries {
        let path = entry.path.as_str();
        if this_kinds.contains_key(path) {
            continue;
        }
        let found = tree.stat_beside(path, &this_kinds)?;
        match (&entry.kind, found) {
            (_, None) => {}
            (EntryKind::Dir, Some(stat)) if stat.kind == Kind::Dir => {}
            (_, Some(stat)) => {
                return Err(InstallError::Conflict {
                    install: tree.path.to_owned(),
                    path: path.to_owned(),
                    detail: format!("a {} that neither version has", stat.kind.name()),
                });
            }
        }
    }
    Ok(())
}

fn hash_matches(
    mut file: File,
    size: u64,
    expected: &FileHash,
    shown: &Path,
) -> Result<bool, InstallError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; (1 << 20).min(size as usize + 1)];
    let mut n_read = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(shown, "read")(error)),
        };
        n_read += n as u64;
        if n_read > size {
            return Ok(false);
        }
        hasher.update(&buf[..n]);
    }
    Ok(n_read == size && hasher.finalize().as_bytes() == &expected.0)
}

/// The commit steps, in order: backups, directory removals (deepest first), new
/// directories (outermost first), files, symlinks, mode changes.
fn plan_steps(tree: &Tree<'_>, update: &Update<'_>) -> Result<Vec<Step>, InstallError> {
    let source: HashMap<&str, &EntryKind> = update
        .source
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let target: HashMap<&str, &EntryKind> = update
        .target
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let mut backups = Vec::new();
    let mut remove_dirs = Vec::new();
    for entry in &update.source.entries {
        let path = entry.path.as_str();
        let after = target.get(path).copied();
        let replaced = match (&entry.kind, after) {
            (EntryKind::File { .. }, Some(EntryKind::File { .. })) => {
                update.writes.get(path) == Some(&Change::Place)
            }
            (EntryKind::Symlink { target: old }, Some(EntryKind::Symlink { target: new })) => {
                old != new
            }
            (EntryKind::Dir, Some(EntryKind::Dir)) => false,
            (EntryKind::Dir, after) => {
                if after.is_some() {
                    check_only_tracked(tree, path, &source)?;
                }
                remove_dirs.push(Step::RemoveDir {
                    path: path.to_owned(),
                });
                false
            }
            _ => true,
        };
        if replaced {
            backups.push(Step::Backup {
                path: path.to_owned(),
                slot: backups.len() as u64,
            });
        }
    }
    remove_dirs.reverse();
    let mut make_dirs = Vec::new();
    let mut places = Vec::new();
    let mut symlinks = Vec::new();
    let mut chmods = Vec::new();
    let object_names: HashMap<&str, String> = objects(update)
        .into_iter()
        .map(|object| (object.path, object.name))
        .collect();
    for entry in &update.target.entries {
        let path = entry.path.as_str();
        let before = source.get(path).copied();
        match (&entry.kind, before) {
            (EntryKind::Dir, Some(EntryKind::Dir)) => {}
            (EntryKind::Dir, None) => {
                // A folder a friend already made (for mods, say) is kept as it is.
                if tree
                    .stat_beside(path, &source)?
                    .is_none_or(|stat| stat.kind != Kind::Dir)
                {
                    make_dirs.push(Step::MakeDir {
                        path: path.to_owned(),
                    });
                }
            }
            (EntryKind::Dir, Some(_)) => make_dirs.push(Step::MakeDir {
                path: path.to_owned(),
            }),
            (EntryKind::File { executable, .. }, _) => match update.writes.get(path) {
                Some(Change::Place) => places.push(Step::Place {
                    path: path.to_owned(),
                    object: object_names[path].clone(),
                }),
                Some(Change::Chmod) => {
                    let from = tree
                        .stat(path)?
                        .map(|stat| stat.mode & 0o7777)
                        .unwrap_or(0o644);
                    let to = if *executable {
                        from | 0o111
                    } else {
                        from & !0o111
                    };
                    chmods.push(Step::Chmod {
                        path: path.to_owned(),
                        from,
                        to,
                    });
                }
                None => {}
            },
            (EntryKind::Symlink { target: new }, before) => {
                if !matches!(before, Some(EntryKind::Symlink { target: old }) if old == new) {
                    symlinks.push(Step::Symlink {
                        path: path.to_owned(),
                        target: new.clone(),
                    });
                }
            }
        }
    }
    let mut steps = backups;
    steps.extend(remove_dirs);
    steps.extend(make_dirs);
    steps.extend(places);
    steps.extend(symlinks);
    steps.extend(chmods);
    Ok(steps)
}

/// Refuses to replace the folder `path` by a file or symlink while it holds anything the
/// source manifest does not list.
fn check_only_tracked(
    tree: &Tree<'_>,
    path: &str,
    source: &HashMap<&str, &EntryKind>,
) -> Result<(), InstallError> {
    let mut stack = vec![path.to_owned()];
    while let Some(dir_path) = stack.pop() {
        let dir = match tree.dir.open_path(&dir_path) {
            Ok(dir) => dir,
            Err(WalkError::Symlink { prefix } | WalkError::NotDir { prefix }) => {
                return Err(InstallError::Symlink {
                    install: tree.path.to_owned(),
                    path: prefix,
                });
            }
            Err(WalkError::Io { prefix, source }) => {
                return Err(io_error(&tree.join(&prefix), "open")(source));
            }
        };
        for name in dir
            .list()
            .map_err(io_error(&tree.join(&dir_path), "list"))?
        {
            let child = std::str::from_utf8(&name)
                .ok()
                .map(|name| format!("{dir_path}/{name}"));
            match child.as_deref().and_then(|child| source.get(child)) {
                Some(EntryKind::Dir) => stack.push(child.expect("known path")),
                Some(_) => {}
                None => {
                    return Err(InstallError::Conflict {
                        install: tree.path.to_owned(),
                        path: child.unwrap_or_else(|| {
                            format!("{dir_path}/{}", String::from_utf8_lossy(&name))
                        }),
                        detail: format!(
                            "the update replaces the folder {path:?} by a file, and this is in neither version"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The files to stage, in target path order.
fn objects<'a>(update: &Update<'a>) -> Vec<Object<'a>> {
    let mut seen: HashMap<FileHash, u64> = HashMap::new();
    let mut objects = Vec::new();
    for entry in &update.target.entries {
        let EntryKind::File {
            size,
            executable,
            blake3,
        } = entry.kind
        else {
            continue;
        };
        if update.writes.get(entry.path.as_str()) != Some(&Change::Place) {
            continue;
        }
        let copies = seen.entry(blake3).or_insert(0);
        let name = if *copies == 0 {
            blake3.to_string()
        } else {
            format!("{blake3}.{copies}")
        };
        *copies += 1;
        objects.push(Object {
            name,
            path: &entry.path,
            info: FileInfo {
                size,
                executable,
                hash: blake3,
            },
        });
    }
    objects
}

/// Keeps the staged objects that are complete and correct, removes everything else from
/// `objects/` and `tmp/`, and returns the objects still to stage and the number kept.
fn resume<'o, 'a>(
    staging: &Staging,
    objects: &'o [Object<'a>],
    options: &InstallOptions,
) -> Result<(Vec<&'o Object<'a>>, u64), InstallError> {
    let objects_path = staging.path.join(OBJECTS);
    let wanted: HashMap<&str, &Object<'_>> = objects.iter().map(|o| (o.name.as_str(), o)).collect();
    let present = staging
        .objects
        .list()
        .map_err(io_error(&objects_path, "list"))?;
    let verdicts = run_parallel(&present, options.threads, |name| {
        let Some(object) = std::str::from_utf8(name)
            .ok()
            .and_then(|name| wanted.get(name))
        else {
            return Ok(false);
        };
        let shown = objects_path.join(&object.name);
        let Some(stat) = staging
            .objects
            .stat(&object.name)
            .map_err(io_error(&shown, "inspect"))?
        else {
            return Ok(false);
        };
        if stat.kind != Kind::File
            || stat.size != object.info.size
            || stat.mode & 0o777 != mode_for(object.info.executable)
        {
            return Ok(false);
        }
        let file = staging
            .objects
            .open_file(&object.name)
            .map_err(io_error(&shown, "open"))?;
        hash_matches(file, object.info.size, &object.info.hash, &shown)
    })?;
    let mut kept = BTreeSet::new();
    for (name, good) in present.iter().zip(verdicts) {
        if good {
            kept.insert(String::from_utf8_lossy(name).into_owned());
        } else {
            staging
                .objects
                .remove_tree(name, &mut fault_point)
                .map_err(io_error(&objects_path, "clean"))?;
        }
    }
    for name in staging
        .tmp
        .list()
        .map_err(io_error(&staging.path.join(TMP), "list"))?
    {
        staging
            .tmp
            .remove_tree(&name, &mut fault_point)
            .map_err(io_error(&staging.path.join(TMP), "clean"))?;
    }
    let missing = objects
        .iter()
        .filter(|object| !kept.contains(&object.name))
        .collect();
    Ok((missing, kept.len() as u64))
}

/// Writes every missing object, in parallel by content: the first object of each content
/// from the update, further copies from the first.
fn stage(
    staging: &Staging,
    objects: &[Object<'_>],
    missing: &[&Object<'_>],
    content: Content<'_>,
    tree: &Tree<'_>,
    options: &InstallOptions,
) -> Result<(), InstallError> {
    if missing.is_empty() {
        return Ok(());
    }
    // Groups of objects with the same content; the first of each is the one made from the
    // update.
    let mut groups: Vec<(&Object<'_>, Vec<&Object<'_>>)> = Vec::new();
    let mut group_of: HashMap<FileHash, usize> = HashMap::new();
    for object in objects {
        match group_of.get(&object.info.hash) {
            Some(&group_idx) => groups[group_idx].1.push(object),
            None => {
                group_of.insert(object.info.hash, groups.len());
                groups.push((object, Vec::new()));
            }
        }
    }
    let missing_names: BTreeSet<&str> = missing.iter().map(|o| o.name.as_str()).collect();
    groups.retain(|(first, rest)| {
        missing_names.contains(first.name.as_str())
            || rest.iter().any(|o| missing_names.contains(o.name.as_str()))
    });
    groups.sort_by_key(|group| std::cmp::Reverse(group.0.info.size));

    let unpacked_path = staging.path.join(TMP).join(UNPACK);
    let unpacked_dir;
    let source = match content {
        Content::Delta(package, manifest) => Source::Delta(package, manifest),
        Content::Pack(unpack) => {
            staging
                .tmp
                .mkdir(UNPACK, 0o700)
                .map_err(io_error(&unpacked_path, "create"))?;
            unpack(&unpacked_path).map_err(InstallError::Unpack)?;
            unpacked_dir = staging
                .tmp
                .open_dir(UNPACK)
                .map_err(io_error(&unpacked_path, "open"))?;
            Source::Unpacked(Tree {
                path: &unpacked_path,
                dir: &unpacked_dir,
            })
        }
    };
    let budget = Budget::new(options.memory_budget);
    run_parallel(&groups, options.threads, |(first, rest)| {
        if missing_names.contains(first.name.as_str()) {
            stage_first(staging, first, &source, tree, &budget)?;
        }
        for copy in rest {
            if missing_names.contains(copy.name.as_str()) {
                let shown = staging.path.join(OBJECTS).join(&first.name);
                let src = staging
                    .objects
                    .open_file(&first.name)
                    .map_err(io_error(&shown, "open"))?;
                write_object(staging, copy, |file| {
                    copy_verified(src, file, first.info, &shown).map_err(InstallError::from)
                })?;
            }
        }
        Ok::<_, InstallError>(())
    })?;
    if matches!(source, Source::Unpacked(_)) {
        staging
            .tmp
            .remove_tree(UNPACK, &mut fault_point)
            .map_err(io_error(&unpacked_path, "remove"))?;
    }
    Ok(())
}

enum Source<'a> {
    Delta(&'a Package, &'a Manifest),
    Unpacked(Tree<'a>),
}

/// Stages the first object of a content from the update.
fn stage_first(
    staging: &Staging,
    object: &Object<'_>,
    source: &Source<'_>,
    tree: &Tree<'_>,
    budget: &Budget,
) -> Result<(), InstallError> {
    match source {
        Source::Delta(package, source_manifest) => {
            let index = package.index();
            let op = index.op(object.path).ok_or_else(|| {
                TreeDeltaError::Corrupt(format!("no operation for {:?}", object.path))
            })?;
            match op {
                Op::Copy { from, .. } => {
                    let src = open_install_file(tree, from)?;
                    write_object(staging, object, |file| {
                        copy_verified(src, file, object.info, &tree.join(from))
                            .map_err(InstallError::from)
                    })
                }
                Op::Patch { .. } | Op::Add { .. } => {
                    let base_size = match op {
                        Op::Patch { base, .. } => source_manifest
                            .entries
                            .binary_search_by(|e| e.path.as_str().cmp(base))
                            .ok()
                            .and_then(|idx| match source_manifest.entries[idx].kind {
                                EntryKind::File { size, .. } => Some(size),
                                _ => None,
                            })
                            .unwrap_or(0),
                        _ => 0,
                    };
                    let _memory = budget.acquire(2 * base_size + 2 * object.info.size);
                    let bytes = package.rebuild(source_manifest, op, &|base, size| {
                        let src = open_install_file(tree, base)?;
                        read_at_most(src, size, &tree.join(base)).map_err(InstallError::from)
                    })?;
                    write_object(staging, object, |file| {
                        file.write_all(&bytes).map_err(io_error(
                            &staging.path.join(TMP).join(&object.name),
                            "write",
                        ))
                    })
                }
                Op::Mode { .. } => Err(TreeDeltaError::Corrupt(format!(
                    "{:?} has only a mode change but must be staged",
                    object.path
                ))
                .into()),
            }
        }
        Source::Unpacked(unpacked) => {
            // Check the unpacked file in place, then move it (same file system: no copy).
            let shown = unpacked.join(object.path);
            let (dir, name) = unpacked.existing_parent(object.path)?;
            let file = open_regular_in(&dir, name, &shown)?;
            if !hash_matches(file, object.info.size, &object.info.hash, &shown)? {
                return Err(InstallError::Delta(TreeDeltaError::Corrupt(format!(
                    "the unpacked file {:?} does not match the target manifest",
                    object.path
                ))));
            }
            let file = dir.open_file(name).map_err(io_error(&shown, "open"))?;
            file.set_permissions(std::fs::Permissions::from_mode(mode_for(
                object.info.executable,
            )))
            .map_err(io_error(&shown, "set the mode of"))?;
            file.sync_all().map_err(io_error(&shown, "sync"))?;
            fault_point();
            dir.rename(name, &staging.objects, &object.name)
                .map_err(io_error(&shown, "move"))?;
            fault_point();
            Ok(())
        }
    }
}

fn open_install_file(tree: &Tree<'_>, rel: &str) -> Result<File, InstallError> {
    let (dir, name) = tree.existing_parent(rel)?;
    open_regular_in(&dir, name, &tree.join(rel))
}

fn open_regular_in(dir: &Dir, name: &str, shown: &Path) -> Result<File, InstallError> {
    match dir.stat(name).map_err(io_error(shown, "inspect"))? {
        Some(stat) if stat.kind == Kind::File => {}
        _ => {
            return Err(InstallError::Inconsistent {
                install: shown.to_owned(),
                detail: "expected a regular file".to_owned(),
            });
        }
    }
    dir.open_file(name).map_err(io_error(shown, "open"))
}

/// Writes one object through `tmp/`: fill, set the mode, fsync, rename into `objects/`.
fn write_object(
    staging: &Staging,
    object: &Object<'_>,
    fill: impl FnOnce(&mut File) -> Result<(), InstallError>,
) -> Result<(), InstallError> {
    let shown = staging.path.join(TMP).join(&object.name);
    let mut file = staging
        .tmp
        .create_file(&object.name, 0o600)
        .map_err(io_error(&shown, "create"))?;
    fill(&mut file)?;
    fault_point();
    file.set_permissions(std::fs::Permissions::from_mode(mode_for(
        object.info.executable,
    )))
    .map_err(io_error(&shown, "set the mode of"))?;
    file.sync_all().map_err(io_error(&shown, "sync"))?;
    fault_point();
    drop(file);
    staging
        .tmp
        .rename(&object.name, &staging.objects, &object.name)
        .map_err(io_error(&shown, "move"))?;
    fault_point();
    Ok(())
}

/// Writes the journal: `MISTJRNL1`, newline, the BLAKE3 hex of the JSON, newline, the JSON.
/// Written to `journal.tmp`, fsynced and renamed, so `journal` is complete or absent.
fn write_journal(staging: &Staging, journal: &Journal) -> Result<(), InstallError> {
    let json = serde_json::to_vec(journal).expect("a journal always serializes");
    let mut bytes = format!("{JOURNAL_MAGIC}\n{}\n", blake3::hash(&json).to_hex()).into_bytes();
    bytes.extend_from_slice(&json);
    let tmp_path = staging.path.join(JOURNAL_TMP);
    staging
        .dir
        .remove_tree(JOURNAL_TMP, &mut || {})
        .map_err(io_error(&tmp_path, "remove"))?;
    let mut file = staging
        .dir
        .create_file(JOURNAL_TMP, 0o600)
        .map_err(io_error(&tmp_path, "create"))?;
    file.write_all(&bytes)
        .map_err(io_error(&tmp_path, "write"))?;
    fault_point();
    file.sync_all().map_err(io_error(&tmp_path, "sync"))?;
    fault_point();
    drop(file);
    staging
        .dir
        .rename(JOURNAL_TMP, &staging.dir, JOURNAL)
        .map_err(io_error(&tmp_path, "rename"))?;
    fault_point();
    sync(&staging.dir, &staging.path)
}

fn read_journal(staging: &Staging, name: &str) -> Result<Option<Journal>, InstallError> {
    let path = staging.path.join(name);
    if staging
        .dir
        .stat(name)
        .map_err(io_error(&path, "inspect"))?
        .is_none()
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    staging
        .dir
        .open_file(name)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io_error(&path, "read"))?;
    let damaged = |detail: &str| InstallError::Journal {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    let mut parts = bytes.splitn(3, |b| *b == b'\n');
    let (Some(magic), Some(hash), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(damaged("truncated"));
    };
    if magic != JOURNAL_MAGIC.as_bytes() {
        return Err(damaged("unknown format"));
    }
    if hash != blake3::hash(json).to_hex().as_bytes() {
        return Err(damaged("checksum mismatch"));
    }
    let journal: Journal =
        serde_json::from_slice(json).map_err(|e| damaged(&format!("does not parse: {e}")))?;
    for step in &journal.steps {
        let path = step.path();
        check_untrusted_path(path).map_err(|reason| damaged(&format!("{path:?}: {reason}")))?;
        if let Step::Place { object, .. } = step
            && !is_object_name(object)
        {
            return Err(damaged(&format!("bad object name {object:?}")));
        }
    }
    Ok(Some(journal))
}

fn is_object_name(name: &str) -> bool {
    let (hash, copy) = name.split_once('.').unwrap_or((name, "1"));
    hash.parse::<FileHash>().is_ok() && !copy.is_empty() && copy.bytes().all(|b| b.is_ascii_digit())
}

impl Step {
    fn path(&self) -> &str {
        match self {
            Step::Backup { path, .. }
            | Step::RemoveDir { path }
            | Step::MakeDir { path }
            | Step::Place { path, .. }
            | Step::Symlink { path, .. }
            | Step::Chmod { path, .. } => path,
        }
    }
}

/// Runs the journal forward; on failure rolls it back and reports both.
fn commit(
    parent: &Dir,
    location: &Location,
    root: &Dir,
    staging: &Staging,
    journal: &Journal,
) -> Result<(), InstallError> {
    let tree = Tree {
        path: &location.install_path,
        dir: root,
    };
    match roll_forward(&tree, staging, journal) {
        Ok(()) => finish(parent, location, staging, JOURNAL),
        Err(cause) => {
            roll_back_from(parent, location, &tree, staging, journal)?;
            Err(InstallError::RolledBack {
                install: location.install_path.clone(),
                cause: Box::new(cause),
            })
        }
    }
}

fn roll_back_from(
    parent: &Dir,
    location: &Location,
    tree: &Tree<'_>,
    staging: &Staging,
    journal: &Journal,
) -> Result<(), InstallError> {
    staging
        .dir
        .rename(JOURNAL, &staging.dir, ROLLBACK)
        .map_err(io_error(&staging.path.join(JOURNAL), "rename"))?;
    fault_point();
    sync(&staging.dir, &staging.path)?;
    roll_back(tree, staging, journal)?;
    finish(parent, location, staging, ROLLBACK)
}

fn recover_locked(parent: &Dir, location: &Location) -> Result<Recovery, InstallError> {
    let Some(staging) = Staging::open(parent, location, false)? else {
        return Ok(Recovery::Clean);
    };
    let journal = read_journal(&staging, JOURNAL)?;
    let rollback = read_journal(&staging, ROLLBACK)?;
    if journal.is_some() || rollback.is_some() {
        let root = parent
            .open_dir(&location.name)
            .map_err(io_error(&location.install_path, "open"))?;
        let tree = Tree {
            path: &location.install_path,
            dir: &root,
        };
        if let Some(journal) = journal {
            return match roll_forward(&tree, &staging, &journal) {
                Ok(()) => {
                    finish(parent, location, &staging, JOURNAL)?;
                    Ok(Recovery::RolledForward)
                }
                Err(_) => {
                    roll_back_from(parent, location, &tree, &staging, &journal)?;
                    Ok(Recovery::RolledBack)
                }
            };
        }
        let journal = rollback.expect("one of the two");
        roll_back(&tree, &staging, &journal)?;
        finish(parent, location, &staging, ROLLBACK)?;
        return Ok(Recovery::RolledBack);
    }
    // No update was committed, so the install is untouched: drop partial files and
    // backups, keep verified objects.
    for (dir, sub) in [(&staging.tmp, TMP), (&staging.backup, BACKUP)] {
        for name in dir
            .list()
            .map_err(io_error(&staging.path.join(sub), "list"))?
        {
            dir.remove_tree(&name, &mut fault_point)
                .map_err(io_error(&staging.path.join(sub), "clean"))?;
        }
    }
    staging
        .dir
        .remove_tree(JOURNAL_TMP, &mut fault_point)
        .map_err(io_error(&staging.path.join(JOURNAL_TMP), "remove"))?;
    let objects_left = staging
        .objects
        .list()
        .map_err(io_error(&staging.path.join(OBJECTS), "list"))?;
    if objects_left.is_empty() {
        drop(staging);
        parent
            .remove_tree(location.staging_name(), &mut fault_point)
            .map_err(io_error(&location.staging_path(), "remove"))?;
        sync(parent, &location.parent_path)?;
    }
    Ok(Recovery::Clean)
}

/// Makes every step's effect true, skipping steps already done, then fsyncs every folder
/// touched.
fn roll_forward(tree: &Tree<'_>, staging: &Staging, journal: &Journal) -> Result<(), InstallError> {
    for step in &journal.steps {
        forward(tree, staging, step)?;
    }
    sync_touched(tree, staging, journal)
}

fn forward(tree: &Tree<'_>, staging: &Staging, step: &Step) -> Result<(), InstallError> {
    let inconsistent = |detail: String| InstallError::Inconsistent {
        install: tree.path.to_owned(),
        detail,
    };
    match step {
        Step::Backup { path, slot } => {
            let slot = slot.to_string();
            if staging
                .backup
                .stat(&slot)
                .map_err(io_error(&staging.path.join(BACKUP), "inspect"))?
                .is_some()
            {
                return Ok(());
            }
            let (dir, name) = tree.existing_parent(path)?;
            match dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
            {
                Some(stat) if stat.kind == Kind::File || stat.kind == Kind::Symlink => {}
                _ => {
                    return Err(inconsistent(format!(
                        "{path:?} is neither where it was nor backed up"
                    )));
                }
            }
            dir.rename_noreplace(name, &staging.backup, &slot)
                .map_err(io_error(&tree.join(path), "back up"))?;
            fault_point();
        }
        Step::RemoveDir { path } => {
            let Parent::Found(dir, name) = tree.parent(path)? else {
                return Ok(());
            };
            match dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
            {
                None => {}
                Some(stat) if stat.kind == Kind::Dir => match dir.remove_dir(name) {
                    Ok(()) => fault_point(),
                    // Files in neither manifest keep the folder.
                    Err(error) if is_not_empty(&error) => {}
                    Err(error) => return Err(io_error(&tree.join(path), "remove")(error)),
                },
                // Already removed, and a later step put the file or symlink that replaces it.
                Some(_) => {}
            }
        }
        Step::MakeDir { path } => {
            let (dir, name) = tree.existing_parent(path)?;
            match dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
            {
                Some(stat) if stat.kind == Kind::Dir => {}
                None => {
                    dir.mkdir(name, 0o755)
                        .map_err(io_error(&tree.join(path), "create"))?;
                    fault_point();
                }
                Some(_) => return Err(inconsistent(format!("{path:?} is in the way"))),
            }
        }
        Step::Place { path, object } => {
            let (dir, name) = tree.existing_parent(path)?;
            if staging
                .objects
                .stat(object)
                .map_err(io_error(&staging.path.join(OBJECTS), "inspect"))?
                .is_some()
            {
                staging
                    .objects
                    .rename_noreplace(object, &dir, name)
                    .map_err(io_error(&tree.join(path), "move the new file to"))?;
                fault_point();
            } else if dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
                .is_none_or(|stat| stat.kind != Kind::File)
            {
                return Err(inconsistent(format!(
                    "the staged file for {path:?} is gone but the file is not in place"
                )));
            }
        }
        Step::Symlink { path, target } => {
            let (dir, name) = tree.existing_parent(path)?;
            match dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
            {
                None => {
                    dir.symlink(target, name)
                        .map_err(io_error(&tree.join(path), "create"))?;
                    fault_point();
                }
                Some(stat)
                    if stat.kind == Kind::Symlink
                        && dir.read_link(name).ok().as_deref() == Some(target.as_bytes()) => {}
                Some(_) => return Err(inconsistent(format!("{path:?} is in the way"))),
            }
        }
        Step::Chmod { path, to, .. } => {
            let (dir, name) = tree.existing_parent(path)?;
            dir.set_mode(name, *to)
                .map_err(io_error(&tree.join(path), "set the mode of"))?;
            fault_point();
        }
    }
    Ok(())
}

/// Undoes the steps in reverse, skipping those not done, restoring the old version.
fn roll_back(tree: &Tree<'_>, staging: &Staging, journal: &Journal) -> Result<(), InstallError> {
    for step in journal.steps.iter().rev() {
        backward(tree, staging, step)?;
    }
    sync_touched(tree, staging, journal)
}

fn backward(tree: &Tree<'_>, staging: &Staging, step: &Step) -> Result<(), InstallError> {
    match step {
        Step::Backup { path, slot } => {
            let slot = slot.to_string();
            if staging
                .backup
                .stat(&slot)
                .map_err(io_error(&staging.path.join(BACKUP), "inspect"))?
                .is_some()
            {
                let (dir, name) = tree.existing_parent(path)?;
                staging
                    .backup
                    .rename_noreplace(&slot, &dir, name)
                    .map_err(io_error(&tree.join(path), "restore"))?;
                fault_point();
            }
        }
        Step::RemoveDir { path } => {
            let (dir, name) = tree.existing_parent(path)?;
            if dir
                .stat(name)
                .map_err(io_error(&tree.join(path), "inspect"))?
                .is_none()
            {
                dir.mkdir(name, 0o755)
                    .map_err(io_error(&tree.join(path), "restore"))?;
                fault_point();
            }
        }
        Step::MakeDir { path } => {
            if let Parent::Found(dir, name) = tree.parent(path)?
                && dir
                    .stat(name)
                    .map_err(io_error(&tree.join(path), "inspect"))?
                    .is_some_and(|stat| stat.kind == Kind::Dir)
            {
                match dir.remove_dir(name) {
                    Ok(()) => fault_point(),
                    Err(error) if is_not_empty(&error) => {}
                    Err(error) => return Err(io_error(&tree.join(path), "remove")(error)),
                }
            }
        }
        Step::Place { path, object } => {
            let objects_path = staging.path.join(OBJECTS);
            if staging
                .objects
                .stat(object)
                .map_err(io_error(&objects_path, "inspect"))?
                .is_none()
                && let Parent::Found(dir, name) = tree.parent(path)?
                && dir
                    .stat(name)
                    .map_err(io_error(&tree.join(path), "inspect"))?
                    .is_some_and(|stat| stat.kind == Kind::File)
            {
                dir.rename_noreplace(name, &staging.objects, object)
                    .map_err(io_error(&tree.join(path), "take back"))?;
                fault_point();
            }
        }
        Step::Symlink { path, target } => {
            if let Parent::Found(dir, name) = tree.parent(path)?
                && dir
                    .stat(name)
                    .map_err(io_error(&tree.join(path), "inspect"))?
                    .is_some_and(|stat| stat.kind == Kind::Symlink)
                && dir.read_link(name).ok().as_deref() == Some(target.as_bytes())
            {
                dir.remove_file(name)
                    .map_err(io_error(&tree.join(path), "remove"))?;
                fault_point();
            }
        }
        Step::Chmod { path, from, .. } => {
            if let Parent::Found(dir, name) = tree.parent(path)?
                && dir
                    .stat(name)
                    .map_err(io_error(&tree.join(path), "inspect"))?
                    .is_some_and(|stat| stat.kind == Kind::File)
            {
                dir.set_mode(name, *from)
                    .map_err(io_error(&tree.join(path), "set the mode of"))?;
                fault_point();
            }
        }
    }
    Ok(())
}

/// Fsyncs every folder a step changed, and the staging folders, so that removing the journal
/// afterwards cannot outlive the steps on a power loss.
fn sync_touched(tree: &Tree<'_>, staging: &Staging, journal: &Journal) -> Result<(), InstallError> {
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    dirs.insert("");
    for step in &journal.steps {
        let path = step.path();
        dirs.insert(path.rsplit_once('/').map_or("", |(parent, _)| parent));
        if let Step::MakeDir { path } | Step::RemoveDir { path } = step {
            dirs.insert(path);
        }
    }
    for dir_path in dirs {
        match tree.dir.open_path(dir_path) {
            Ok(dir) => sync(&dir, &tree.join(dir_path))?,
            // A folder removed by a step, or one a rollback has not restored: nothing to sync.
            Err(WalkError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            // A folder that a step (or a rollback) replaced by a file or a symlink: it is
            // gone, and its parent, which recorded the change, is synced. The symlink is not
            // followed; only fsyncs are skipped.
            Err(WalkError::NotDir { .. } | WalkError::Symlink { .. }) => {}
            Err(WalkError::Io { prefix, source }) => {
                return Err(io_error(&tree.join(&prefix), "open")(source));
            }
        }
    }
    sync(&staging.objects, &staging.path.join(OBJECTS))?;
    sync(&staging.backup, &staging.path.join(BACKUP))
}

/// Ends an update: deletes the journal (or rollback marker), then the staging folder.
fn finish(
    parent: &Dir,
    location: &Location,
    staging: &Staging,
    journal_name: &str,
) -> Result<(), InstallError> {
    staging
        .dir
        .remove_file(journal_name)
        .map_err(io_error(&staging.path.join(journal_name), "remove"))?;
    fault_point();
    sync(&staging.dir, &staging.path)?;
    parent
        .remove_tree(location.staging_name(), &mut fault_point)
        .map_err(io_error(&staging.path, "remove"))?;
    sync(parent, &location.parent_path)
}

fn sync(dir: &Dir, shown: &Path) -> Result<(), InstallError> {
    dir.sync().map_err(io_error(shown, "sync"))?;
    fault_point();
    Ok(())
}

fn is_not_empty(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
    )
}

/// Counts a filesystem step and aborts the process at the `N`-th when
/// `MIST_FAULT_AFTER_OPS=N` is set (see the module docs).
fn fault_point() {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var(FAULT_ENV)
            .ok()
            .and_then(|value| value.parse().ok())
    });
    if let Some(limit) = *limit
        && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == limit
    {
        std::process::abort();
    }
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_owned();
    move |source| InstallError::Io {
        path,
        action,
        source,
    }
}

impl From<TreeDeltaError> for Box<InstallError> {
    fn from(error: TreeDeltaError) -> Self {
        Box::new(InstallError::Delta(error))
    }
}
