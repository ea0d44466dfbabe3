//! Applying a package into a fresh folder: the new version built beside the output, every
//! file checked, then renamed into place.

// Everything but the options is Unix only, as `crate::confined` is.
#[cfg(unix)]
use std::fs::File;
#[cfg(unix)]
use std::io::{self, Write};
#[cfg(unix)]
use std::path::{Path, PathBuf};

#[cfg(unix)]
use crate::confined::{Dir, Kind, WalkError};
#[cfg(unix)]
use crate::copy::{copy_verified, read_at_most};
#[cfg(unix)]
use crate::manifest::{EntryKind, FileInfo, Manifest, files_by_path, mode_for};
#[cfg(unix)]
use crate::parallel::{Budget, run_parallel};
#[cfg(unix)]
use crate::treedelta::format::{TreeDeltaError, io_error};
#[cfg(unix)]
use crate::treedelta::index::Op;
#[cfg(unix)]
use crate::treedelta::package::Package;

/// Settings for [`apply_to_dir`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// The most memory the files being rebuilt at once may use, in bytes.
    pub memory_budget: u64,
    /// Threads; 0 means one per CPU.
    pub threads: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            memory_budget: 2 << 30,
            threads: 0,
        }
    }
}

/// Rebuilds the new version into `out`, a path that must not exist, from the old version in
/// `old_root`, whose manifest is `source`, and `package`.
///
/// Before anything is written, `source` must hash to the package's source digest and the
/// target manifest rebuilt from it must hash to the target digest
/// ([`Package::target_manifest`]). Every file is checked: files taken from the old tree are
/// hashed against `source` as they are copied, file deltas check their base and their
/// output. The tree is built in a hidden folder beside `out` and renamed into place at the
/// end, so `out` appears complete or not at all. Old files are opened without following
/// symlinks, and only through real directories.
#[cfg(unix)]
pub fn apply_to_dir(
    old_root: &Path,
    source: &Manifest,
    package: &Package,
    out: &Path,
    options: &ApplyOptions,
) -> Result<(), TreeDeltaError> {
    let target = package.target_manifest(source)?;
    let (parent_path, name) = split_output(out)?;
    let parent = Dir::open(&parent_path).map_err(io_error(&parent_path, "open"))?;
    if parent
        .stat(&name)
        .map_err(io_error(out, "inspect"))?
        .is_some()
    {
        return Err(TreeDeltaError::OutputExists {
            path: out.to_owned(),
        });
    }
    let needed = target.total_size() + (1 << 20);
    let available = parent
        .free_bytes()
        .map_err(io_error(&parent_path, "read the free space of"))?;
    if available < needed {
        return Err(TreeDeltaError::NoSpace {
            dir: parent_path,
            needed,
            available,
        });
    }
    let tmp_name = format!(".{name}.mist-tmp-{}", std::process::id());
    let tmp_path = parent_path.join(&tmp_name);
    parent
        .remove_tree(&tmp_name, &mut || {})
        .map_err(io_error(&tmp_path, "remove"))?;
    parent
        .mkdir(&tmp_name, 0o755)
        .map_err(io_error(&tmp_path, "create"))?;
    let built = (|| {
        let dest = parent
            .open_dir(&tmp_name)
            .map_err(io_error(&tmp_path, "open"))?;
        let old = Dir::open(old_root).map_err(io_error(old_root, "open"))?;
        build_tree(
            OpenBuild {
                root_path: old_root,
                dir: &old,
            },
            package,
            Manifests {
                source,
                target: &target,
            },
            OpenBuild {
                root_path: &tmp_path,
                dir: &dest,
            },
            options,
        )?;
        parent
            .rename_noreplace(&tmp_name, &parent, &name)
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    TreeDeltaError::OutputExists {
                        path: out.to_owned(),
                    }
                } else {
                    io_error(out, "rename into")(error)
                }
            })?;
        parent.sync().map_err(io_error(&parent_path, "sync"))
    })();
    if built.is_err() {
        let _ = parent.remove_tree(&tmp_name, &mut || {});
    }
    built
}

/// A build folder open for applying a package (the old version, or the new one being
/// built) and the path it was opened from, for messages.
#[cfg(unix)]
#[derive(Clone, Copy)]
pub(crate) struct OpenBuild<'a> {
    pub(crate) root_path: &'a Path,
    pub(crate) dir: &'a Dir,
}

#[cfg(unix)]
impl OpenBuild<'_> {
    /// Opens the directory holding `rel` (which must be checked) and returns it with the
    /// last component, refusing any parent that is a symlink or not a directory.
    pub(crate) fn parent_of<'p>(&self, rel: &'p str) -> Result<(Dir, &'p str), TreeDeltaError> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.dir.open_path(parent).map_err(|error| match error {
            WalkError::Symlink { prefix } | WalkError::NotDir { prefix } => {
                TreeDeltaError::Symlink {
                    root: self.root_path.to_owned(),
                    path: prefix,
                }
            }
            WalkError::Io { prefix, source } => {
                io_error(&self.root_path.join(prefix), "open")(source)
            }
        })?;
        Ok((dir, name))
    }

    fn display(&self, rel: &str) -> PathBuf {
        self.root_path.join(rel)
    }
}

/// The manifests of both versions, the target one rebuilt and checked by
/// [`Package::target_manifest`].
#[cfg(unix)]
#[derive(Clone, Copy)]
pub(crate) struct Manifests<'a> {
    pub(crate) source: &'a Manifest,
    pub(crate) target: &'a Manifest,
}

/// Builds the target tree into the empty `dest` from `old`, checking every file.
#[cfg(unix)]
pub(crate) fn build_tree(
    old: OpenBuild<'_>,
    package: &Package,
    manifests: Manifests<'_>,
    dest: OpenBuild<'_>,
    options: &ApplyOptions,
) -> Result<(), TreeDeltaError> {
    let index = package.index();
    let mut files = Vec::new();
    for entry in &manifests.target.entries {
        match &entry.kind {
            EntryKind::Dir => {
                let (dir, name) = dest.parent_of(&entry.path)?;
                dir.mkdir(name, 0o755)
                    .map_err(io_error(&dest.display(&entry.path), "create"))?;
            }
            EntryKind::Symlink { target } => {
                let (dir, name) = dest.parent_of(&entry.path)?;
                dir.symlink(target, name)
                    .map_err(io_error(&dest.display(&entry.path), "create"))?;
            }
            EntryKind::File {
                size,
                executable,
                blake3,
            } => files.push((
                entry.path.as_str(),
                FileInfo {
                    size: *size,
                    executable: *executable,
                    hash: *blake3,
                },
            )),
        }
    }
    let source_files = files_by_path(manifests.source);
    let budget = Budget::new(options.memory_budget);
    // The largest files first, so the long ones start early.
    files.sort_by(|a, b| b.1.size.cmp(&a.1.size).then_with(|| a.0.cmp(b.0)));
    run_parallel(&files, options.threads, |&(path, info)| {
        let op = index.op(path);
        let from = match op {
            None | Some(Op::Mode { .. }) => Some(path),
            Some(Op::Copy { from, .. }) => Some(from.as_str()),
            Some(Op::Patch { .. } | Op::Add { .. }) => None,
        };
        let (dest_dir, dest_name) = dest.parent_of(path)?;
        let mut out = dest_dir
            .create_file(dest_name, mode_for(info.executable))
            .map_err(io_error(&dest.display(path), "create"))?;
        if let Some(from) = from {
            let (src_dir, src_name) = old.parent_of(from)?;
            let src = open_old_file(&src_dir, src_name, &old.display(from))?;
            copy_verified(src, &mut out, info, &old.display(from))?;
        } else {
            let op = op.expect("payload operations exist");
            let base_size = match op {
                Op::Patch { base, .. } => source_files[base.as_str()].size,
                _ => 0,
            };
            let _memory = budget.acquire(2 * base_size + 2 * info.size);
            let bytes = package.rebuild(manifests.source, op, &|base, size| {
                let (src_dir, src_name) = old.parent_of(base)?;
                let src = open_old_file(&src_dir, src_name, &old.display(base))?;
                read_at_most(src, size, &old.display(base))
            })?;
            out.write_all(&bytes)
                .map_err(io_error(&dest.display(path), "write"))?;
        }
        out.sync_all()
            .map_err(io_error(&dest.display(path), "sync"))?;
        Ok::<_, TreeDeltaError>(())
    })?;
    for entry in &manifests.target.entries {
        if matches!(entry.kind, EntryKind::Dir) {
            dest.dir
                .open_path(&entry.path)
                .map_err(|_| TreeDeltaError::Symlink {
                    root: dest.root_path.to_owned(),
                    path: entry.path.clone(),
                })?
                .sync()
                .map_err(io_error(&dest.display(&entry.path), "sync"))?;
        }
    }
    dest.dir.sync().map_err(io_error(dest.root_path, "sync"))
}

#[cfg(unix)]
fn open_old_file(dir: &Dir, name: &str, shown: &Path) -> Result<File, TreeDeltaError> {
    match dir.stat(name).map_err(io_error(shown, "inspect"))? {
        Some(stat) if stat.kind == Kind::File => {}
        Some(_) => {
            return Err(TreeDeltaError::SourceMismatch(format!(
                "{} is not a regular file",
                shown.display()
            )));
        }
        None => {
            return Err(TreeDeltaError::SourceMismatch(format!(
                "{} is missing",
                shown.display()
            )));
        }
    }
    dir.open_file(name).map_err(io_error(shown, "open"))
}

#[cfg(unix)]
fn split_output(out: &Path) -> Result<(PathBuf, String), TreeDeltaError> {
    let name = out
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| *name != "." && *name != "..")
        .ok_or_else(|| TreeDeltaError::Io {
            path: out.to_owned(),
            action: "use as output",
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
        })?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_owned()))
}
