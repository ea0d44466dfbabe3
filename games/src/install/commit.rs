//! Committing: the journal's steps run forward, or undone in reverse.

use std::collections::BTreeSet;
use std::io;

use mist_platform::fs::is_dir_not_empty;

use crate::confined::{Dir, Kind, WalkError};
use crate::install::fault::{fault_point, sync};
use crate::install::journal::{JOURNAL, Journal, ROLLBACK, Step};
use crate::install::location::{BACKUP, Location, OBJECTS, Staging};
use crate::install::tree::{OpenTree, Parent};
use crate::install::{InstallError, io_error};

/// Runs the journal forward; on failure rolls it back and reports both.
pub(crate) fn commit(
    parent: &Dir,
    location: &Location,
    root: &Dir,
    staging: &Staging,
    journal: &Journal,
) -> Result<(), InstallError> {
    let tree = OpenTree {
        path: &location.install_path,
        dir: root,
    };
    match roll(&tree, staging, journal, Roll::Forward) {
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

pub(crate) fn roll_back_from(
    parent: &Dir,
    location: &Location,
    tree: &OpenTree<'_>,
    staging: &Staging,
    journal: &Journal,
) -> Result<(), InstallError> {
    staging
        .dir
        .rename(JOURNAL, &staging.dir, ROLLBACK)
        .map_err(io_error(&staging.path.join(JOURNAL), "rename"))?;
    fault_point();
    sync(&staging.dir, &staging.path)?;
    roll(tree, staging, journal, Roll::Back)?;
    finish(parent, location, staging, ROLLBACK)
}

/// Which way [`roll`] runs a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Roll {
    /// Makes every step's effect true, skipping steps already done.
    Forward,
    /// Undoes the steps in reverse, skipping those not done, restoring the old version.
    Back,
}

/// Runs the journal's steps the way `direction` says, then fsyncs every folder touched.
pub(crate) fn roll(
    tree: &OpenTree<'_>,
    staging: &Staging,
    journal: &Journal,
    direction: Roll,
) -> Result<(), InstallError> {
    match direction {
        Roll::Forward => {
            for step in &journal.steps {
                forward(tree, staging, step)?;
            }
        }
        Roll::Back => {
            for step in journal.steps.iter().rev() {
                backward(tree, staging, step)?;
            }
        }
    }
    sync_touched(tree, staging, journal)
}

/// Makes one step's effect true, unless it already is.
fn forward(tree: &OpenTree<'_>, staging: &Staging, step: &Step) -> Result<(), InstallError> {
    match step {
        Step::Backup { path, slot } => back_up(tree, staging, path, *slot),
        Step::RemoveDir { path } => remove_dir(tree, path),
        Step::MakeDir { path } => make_dir(tree, path),
        Step::Place { path, object } => place(tree, staging, path, object),
        Step::Symlink { path, target } => make_symlink(tree, path, target),
        Step::Chmod { path, to, .. } => {
            let (dir, name) = tree.existing_parent(path)?;
            dir.set_mode(name, *to)
                .map_err(io_error(&tree.join(path), "set the mode of"))?;
            fault_point();
            Ok(())
        }
    }
}

/// The error of a step that finds the install in a state the journal cannot explain.
fn inconsistent(tree: &OpenTree<'_>, detail: String) -> InstallError {
    InstallError::Inconsistent {
        install: tree.path.to_owned(),
        detail,
    }
}

/// Moves the old file or symlink at `path` into `backup/<slot>`, unless it is there.
fn back_up(
    tree: &OpenTree<'_>,
    staging: &Staging,
    path: &str,
    slot: u64,
) -> Result<(), InstallError> {
    let slot = slot.to_string();
    if backup_exists(staging, &slot)? {
        return Ok(());
    }
    let (dir, name) = tree.existing_parent(path)?;
    match dir
        .stat(name)
        .map_err(io_error(&tree.join(path), "inspect"))?
    {
        Some(stat) if stat.kind == Kind::File || stat.kind == Kind::Symlink => {}
        _ => {
            return Err(inconsistent(
                tree,
                format!("{path:?} is neither where it was nor backed up"),
            ));
        }
    }
    dir.rename_noreplace(name, &staging.backup, &slot)
        .map_err(io_error(&tree.join(path), "back up"))?;
    fault_point();
    Ok(())
}

/// Removes the old folder at `path` if it is empty; files in neither manifest keep it.
fn remove_dir(tree: &OpenTree<'_>, path: &str) -> Result<(), InstallError> {
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
            Err(error) if is_dir_not_empty(&error) => {}
            Err(error) => return Err(io_error(&tree.join(path), "remove")(error)),
        },
        // Already removed, and a later step put the file or symlink that replaces it.
        Some(_) => {}
    }
    Ok(())
}

/// Makes the folder `path`, unless it is there.
fn make_dir(tree: &OpenTree<'_>, path: &str) -> Result<(), InstallError> {
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
        Some(_) => return Err(inconsistent(tree, format!("{path:?} is in the way"))),
    }
    Ok(())
}

/// Moves the staged `object` to `path`, unless it is already there.
fn place(
    tree: &OpenTree<'_>,
    staging: &Staging,
    path: &str,
    object: &str,
) -> Result<(), InstallError> {
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
        return Err(inconsistent(
            tree,
            format!("the staged file for {path:?} is gone but the file is not in place"),
        ));
    }
    Ok(())
}

/// Makes the symlink `path` → `target`, unless it is there.
fn make_symlink(tree: &OpenTree<'_>, path: &str, target: &str) -> Result<(), InstallError> {
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
        Some(_) => return Err(inconsistent(tree, format!("{path:?} is in the way"))),
    }
    Ok(())
}

fn backward(tree: &OpenTree<'_>, staging: &Staging, step: &Step) -> Result<(), InstallError> {
    match step {
        Step::Backup { path, slot } => {
            let slot = slot.to_string();
            if backup_exists(staging, &slot)? {
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
                    Err(error) if is_dir_not_empty(&error) => {}
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

/// Whether the backup slot `slot` holds anything.
fn backup_exists(staging: &Staging, slot: &str) -> Result<bool, InstallError> {
    let stat = staging
        .backup
        .stat(slot)
        .map_err(io_error(&staging.path.join(BACKUP), "inspect"))?;
    Ok(stat.is_some())
}

/// Fsyncs every folder a step changed, and the staging folders, so that removing the journal
/// afterwards cannot outlive the steps on a power loss.
pub(crate) fn sync_touched(
    tree: &OpenTree<'_>,
    staging: &Staging,
    journal: &Journal,
) -> Result<(), InstallError> {
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
pub(crate) fn finish(
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
