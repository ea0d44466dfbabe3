//! Finishing or undoing what an interrupted update left, and cleaning up after it.

use std::path::Path;

use crate::confined::Dir;
use crate::install::commit::{Roll, finish, roll, roll_back_from};
use crate::install::fault::{fault_point, sync};
use crate::install::journal::{JOURNAL, JOURNAL_TMP, ROLLBACK, read_journal};
use crate::install::location::{BACKUP, Location, OBJECTS, Staging, TMP};
use crate::install::tree::OpenTree;
use crate::install::{InstallError, Recovery, io_error};

/// Finishes or undoes an update that a crash interrupted, and cleans up what it left.
///
/// With a committed journal the update is rolled forward (the install ends at the new
/// version); with a rollback marker it is rolled back; otherwise nothing in the install had
/// changed, and only partial files, backups and unneeded state are removed. Verified staged
/// files are kept so that the next run resumes. Safe to call at any time and repeatedly;
/// [`apply_delta`] and [`apply_pack`] call it first.
///
/// [`apply_delta`]: crate::install::update::apply_delta
/// [`apply_pack`]: crate::install::update::apply_pack
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

pub(crate) fn recover_locked(parent: &Dir, location: &Location) -> Result<Recovery, InstallError> {
    let Some(staging) = Staging::open(parent, location, false)? else {
        return Ok(Recovery::Clean);
    };
    let journal = read_journal(&staging, JOURNAL)?;
    let rollback = read_journal(&staging, ROLLBACK)?;
    if journal.is_some() || rollback.is_some() {
        let root = parent
            .open_dir(&location.name)
            .map_err(io_error(&location.install_path, "open"))?;
        let tree = OpenTree {
            path: &location.install_path,
            dir: &root,
        };
        if let Some(journal) = journal {
            return match roll(&tree, &staging, &journal, Roll::Forward) {
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
        roll(&tree, &staging, &journal, Roll::Back)?;
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
