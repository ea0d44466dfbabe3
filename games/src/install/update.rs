//! Running an update: the phases in order, from the lock to the commit. Start here.

use std::collections::HashMap;
use std::path::Path;

use crate::confined::{Dir, Kind};
use crate::install::changes::{Change, Update, objects, plan_steps};
use crate::install::check::{State, check_state};
use crate::install::commit::commit;
use crate::install::fault::{fault_point, sync};
use crate::install::journal::{Journal, write_journal};
use crate::install::location::{Location, OBJECTS, Staging};
use crate::install::recover::recover_locked;
use crate::install::stage::{Content, resume, stage};
use crate::install::tree::OpenTree;
use crate::install::{InstallError, InstallOptions, InstallReport, Outcome, Unpack, io_error};
use crate::manifest::{Manifest, files_by_path};
use crate::treedelta::format::{TreeDeltaError, check_untrusted_path};
use crate::treedelta::index::Op;
use crate::treedelta::package::Package;

/// Applies a tree delta to the install in `install_dir`, which must hold the delta's source
/// version, whose manifest is `source` (plus any files in neither manifest, which are left
/// alone).
///
/// Before anything else, `source` must hash to the package's source digest and the target
/// manifest rebuilt from it must hash to its target digest ([`Package::target_manifest`]).
/// Then runs [`recover`]. Returns [`Outcome::AlreadyCurrent`] without writing anything if the
/// install is already at the target version. On any error before the commit point the
/// install is untouched; verified staged files stay for the next run.
///
/// [`recover`]: crate::install::recover::recover
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

/// Runs the phases of an update in order: recover, check, stage, journal, commit.
pub(crate) fn run(
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

    let root = open_root(&parent, &location, &update)?;
    let tree = OpenTree {
        path: &location.install_path,
        dir: &root,
    };
    if is_current(&tree, &update, options)? {
        return Ok(already_current());
    }
    let steps = plan_steps(&tree, &update)?;
    if steps.is_empty() {
        // Everything the update touches is already as the target says.
        return Ok(already_current());
    }
    let objects = objects(&update);

    let staging = Staging::open(&parent, &location, true)?.expect("created when missing");
    let (missing, files_resumed) = resume(&staging, &objects, options)?;
    let needed: u64 =
        missing.iter().map(|object| object.info.size).sum::<u64>() + (steps.len() as u64) * 512;
    let available = staging
        .dir
        .free_bytes()
        .map_err(io_error(&staging.path, "read the free space of"))?;
    if available < needed.saturating_add(options.free_space_margin) {
        return Err(InstallError::NoSpace {
            dir: location.parent_path.clone(),
            needed,
            margin: options.free_space_margin,
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

/// Opens the install folder; for a fresh install (an empty source) a missing folder is made
/// first, since an empty folder is the empty source version.
fn open_root(parent: &Dir, location: &Location, update: &Update<'_>) -> Result<Dir, InstallError> {
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
            sync(parent, &location.parent_path)?;
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
    parent
        .open_dir(&location.name)
        .map_err(io_error(install, "open"))
}

/// Whether the install is already at the target version; `false` if it is at the source,
/// and the reason it is at neither otherwise.
fn is_current(
    tree: &OpenTree<'_>,
    update: &Update<'_>,
    options: &InstallOptions,
) -> Result<bool, InstallError> {
    if let Err(not_source) = check_state(tree, update, State::Source, options) {
        if matches!(
            not_source,
            InstallError::NotSource { .. } | InstallError::Conflict { .. }
        ) && check_state(tree, update, State::Target, options).is_ok()
        {
            return Ok(true);
        }
        return Err(not_source);
    }
    Ok(false)
}

/// The report of an update that found nothing to do.
fn already_current() -> InstallReport {
    InstallReport {
        outcome: Outcome::AlreadyCurrent,
        files_staged: 0,
        files_resumed: 0,
        bytes_staged: 0,
        steps: 0,
    }
}
