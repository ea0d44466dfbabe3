//! Where an install's companions live beside it: the staging folder and the lock.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::confined::{Dir, Kind};
use crate::install::fault::fault_point;
use crate::install::{InstallError, io_error};

/// The staging folder of `install_dir`: `<parent>/.<name>.mist-staging`.
pub fn staging_path(install_dir: &Path) -> Result<PathBuf, InstallError> {
    Ok(Location::find(install_dir)?.staging_path())
}

/// The lock file of `install_dir`: `<parent>/.<name>.mist-lock`, beside the real folder
/// (a symlink in `install_dir` is followed, as for the staging folder).
///
/// Updates, [`recover`](crate::install::recover::recover) and
/// [`discard_staging`](crate::install::recover::discard_staging) hold an exclusive lock on it
/// while they run, and leave the file in place so that two processes never lock different
/// files. Remove it only when removing the install, after `discard_staging`.
pub fn lock_path(install_dir: &Path) -> Result<PathBuf, InstallError> {
    Ok(Location::find(install_dir)?.lock_path())
}

/// The staging folder's subfolders: verified new files, files being written, and the
/// files and symlinks a commit replaced.
pub(crate) const OBJECTS: &str = "objects";
pub(crate) const TMP: &str = "tmp";
pub(crate) const BACKUP: &str = "backup";
/// Where a pack is unpacked, inside `tmp/`.
pub(crate) const UNPACK: &str = "unpack";

/// Where an install and its companions live.
pub(crate) struct Location {
    pub(crate) parent_path: PathBuf,
    pub(crate) name: String,
    pub(crate) install_path: PathBuf,
}

impl Location {
    /// Resolves the install folder (following symlinks in the path given, so the staging
    /// folder sits beside the real folder, on the same file system).
    pub(crate) fn find(install_dir: &Path) -> Result<Location, InstallError> {
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

    pub(crate) fn staging_name(&self) -> String {
        format!(".{}.mist-staging", self.name)
    }

    pub(crate) fn staging_path(&self) -> PathBuf {
        self.parent_path.join(self.staging_name())
    }

    fn lock_name(&self) -> String {
        format!(".{}.mist-lock", self.name)
    }

    fn lock_path(&self) -> PathBuf {
        self.parent_path.join(self.lock_name())
    }

    /// Takes the install's lock, a file beside it that is never removed (so two processes
    /// can never lock different files), held until the returned file is closed.
    ///
    /// A lock held elsewhere is retried for a moment before the install counts as busy: a
    /// process that another thread of this one is just starting holds a copy of every open
    /// file (the lock of an update that has already finished, too) until it executes its
    /// program, which closes them.
    pub(crate) fn lock(&self, parent: &Dir) -> Result<File, InstallError> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_millis(250);
        let name = self.lock_name();
        let path = self.lock_path();
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

pub(crate) fn bad_name(path: &Path) -> InstallError {
    InstallError::Io {
        path: path.to_owned(),
        action: "use as an install folder",
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 folder name"),
    }
}

/// The open staging folder and its subfolders.
pub(crate) struct Staging {
    pub(crate) path: PathBuf,
    pub(crate) dir: Dir,
    pub(crate) objects: Dir,
    pub(crate) tmp: Dir,
    pub(crate) backup: Dir,
}

impl Staging {
    /// Opens the staging folder, creating it if `create`; `None` if it does not exist and
    /// `create` is false. A symlink in its place is refused.
    pub(crate) fn open(
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

pub(crate) fn open_or_make_dir(
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
