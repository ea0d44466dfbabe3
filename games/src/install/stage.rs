//! Staging: every new or changed file written beside the install and verified.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;

use mist_platform::fs::set_mode;

use crate::confined::{Dir, Kind};
use crate::copy::{copy_verified, read_at_most};
use crate::install::changes::Object;
use crate::install::check::hash_matches;
use crate::install::fault::fault_point;
use crate::install::location::{OBJECTS, Staging, TMP, UNPACK};
use crate::install::tree::OpenTree;
use crate::install::{InstallError, InstallOptions, Unpack, io_error};
use crate::manifest::{EntryKind, FileHash, Manifest, mode_for};
use crate::parallel::{Budget, run_parallel};
use crate::treedelta::format::TreeDeltaError;
use crate::treedelta::index::Op;
use crate::treedelta::package::Package;

/// Where the new files' content comes from, as the caller gives it.
pub(crate) enum Content<'a> {
    /// The package and the source manifest it was checked against.
    Delta(&'a Package, &'a Manifest),
    /// The hook that unpacks the target's pack into a folder.
    Pack(Unpack<'a>),
}

/// Keeps the staged objects that are complete and correct, removes everything else from
/// `objects/` and `tmp/`, and returns the objects still to stage and the number kept.
pub(crate) fn resume<'o, 'a>(
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
pub(crate) fn stage(
    staging: &Staging,
    objects: &[Object<'_>],
    missing: &[&Object<'_>],
    content: Content<'_>,
    tree: &OpenTree<'_>,
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
            Source::Unpacked(OpenTree {
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

/// Where staging reads the first copy of each new content: rebuilt from the package, or
/// moved out of the unpacked pack.
pub(crate) enum Source<'a> {
    Delta(&'a Package, &'a Manifest),
    Unpacked(OpenTree<'a>),
}

/// Stages the first object of a content from the update.
pub(crate) fn stage_first(
    staging: &Staging,
    object: &Object<'_>,
    source: &Source<'_>,
    tree: &OpenTree<'_>,
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
            set_mode(&file, mode_for(object.info.executable))
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

pub(crate) fn open_install_file(tree: &OpenTree<'_>, rel: &str) -> Result<File, InstallError> {
    let (dir, name) = tree.existing_parent(rel)?;
    open_regular_in(&dir, name, &tree.join(rel))
}

pub(crate) fn open_regular_in(dir: &Dir, name: &str, shown: &Path) -> Result<File, InstallError> {
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
pub(crate) fn write_object(
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
    set_mode(&file, mode_for(object.info.executable))
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
