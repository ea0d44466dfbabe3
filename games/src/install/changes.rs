//! What an update changes, and the commit steps and staged files that make the change.

use std::collections::HashMap;

use crate::confined::{Kind, WalkError};
use crate::install::journal::Step;
use crate::install::tree::OpenTree;
use crate::install::{InstallError, io_error};
use crate::manifest::{EntryKind, FileHash, FileInfo, Manifest};

/// What changes for a target file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// New content: a staged file is renamed into place.
    Place,
    /// Same content, the executable bit flips.
    Chmod,
}

pub(crate) struct Update<'a> {
    pub(crate) source: &'a Manifest,
    pub(crate) target: &'a Manifest,
    /// Target files that change, by path; the others are unchanged.
    pub(crate) writes: HashMap<&'a str, Change>,
}

/// A target file's content to stage, named `<blake3 hex>` or, for further copies of the same
/// content, `<blake3 hex>.<n>`.
#[derive(Debug, Clone)]
pub(crate) struct Object<'a> {
    pub(crate) name: String,
    pub(crate) path: &'a str,
    pub(crate) info: FileInfo,
}

/// The commit steps, in order: backups, directory removals (deepest first), new
/// directories (outermost first), files, symlinks, mode changes.
pub(crate) fn plan_steps(
    tree: &OpenTree<'_>,
    update: &Update<'_>,
) -> Result<Vec<Step>, InstallError> {
    let source = kinds(update.source);
    let target = kinds(update.target);
    let (backups, remove_dirs) = steps_from_source(tree, update, &source, &target)?;
    let TargetSteps {
        make_dirs,
        places,
        symlinks,
        chmods,
    } = steps_to_target(tree, update, &source)?;
    let mut steps = backups;
    steps.extend(remove_dirs);
    steps.extend(make_dirs);
    steps.extend(places);
    steps.extend(symlinks);
    steps.extend(chmods);
    Ok(steps)
}

/// Every entry of `manifest`'s kind, by path.
fn kinds(manifest: &Manifest) -> HashMap<&str, &EntryKind> {
    manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect()
}

/// The steps that take away what the source has: backups of the files and symlinks that
/// are replaced or go, and removals of the folders that go (deepest first).
fn steps_from_source(
    tree: &OpenTree<'_>,
    update: &Update<'_>,
    source: &HashMap<&str, &EntryKind>,
    target: &HashMap<&str, &EntryKind>,
) -> Result<(Vec<Step>, Vec<Step>), InstallError> {
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
                    check_only_tracked(tree, path, source)?;
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
    Ok((backups, remove_dirs))
}

/// The steps that make what the target has: new folders (outermost first), placed files,
/// symlinks and mode changes.
fn steps_to_target(
    tree: &OpenTree<'_>,
    update: &Update<'_>,
    source: &HashMap<&str, &EntryKind>,
) -> Result<TargetSteps, InstallError> {
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
                    .stat_beside(path, source)?
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
    Ok(TargetSteps {
        make_dirs,
        places,
        symlinks,
        chmods,
    })
}

/// The steps that make what the target has, by kind, each in target path order.
struct TargetSteps {
    make_dirs: Vec<Step>,
    places: Vec<Step>,
    symlinks: Vec<Step>,
    chmods: Vec<Step>,
}

/// Refuses to replace the folder `path` by a file or symlink while it holds anything the
/// source manifest does not list.
pub(crate) fn check_only_tracked(
    tree: &OpenTree<'_>,
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
pub(crate) fn objects<'a>(update: &Update<'a>) -> Vec<Object<'a>> {
    let mut seen: HashMap<FileHash, u64> = HashMap::new();
    let mut objects = Vec::new();
    for (entry, info) in update.target.files() {
        if update.writes.get(entry.path.as_str()) != Some(&Change::Place) {
            continue;
        }
        let copies = seen.entry(info.hash).or_insert(0);
        let name = if *copies == 0 {
            info.hash.to_string()
        } else {
            format!("{}.{copies}", info.hash)
        };
        *copies += 1;
        objects.push(Object {
            name,
            path: &entry.path,
            info,
        });
    }
    objects
}
