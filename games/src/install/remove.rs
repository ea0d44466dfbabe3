//! Uninstalling: what a version's manifest lists is removed, and nothing else.
//!
//! A friend's saves, configs and mods live in the install folder beside the game's files.
//! [`remove_listed`] removes the files and symlinks the manifest lists, then the listed
//! folders that are left empty, then the install folder itself if nothing remains; it
//! reports what it kept. [`remove_all`] removes the folder and everything in it, for an
//! explicit purge. Both walk the tree one component at a time and never follow a symlink, so
//! a link a friend put where a folder was cannot lead a removal outside the install.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use crate::confined::{Dir, Kind};
use crate::install::tree::{OpenTree, Parent};
use crate::install::{InstallError, io_error};
use crate::manifest::{EntryKind, Manifest};

/// What [`remove_listed`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Files and symlinks removed.
    pub removed: u64,
    /// What is left in the install folder, relative to it, sorted: files the manifest does
    /// not list and the folders holding them. Empty when the folder itself is gone.
    pub kept: Vec<String>,
}

/// Removes from `install` every file and symlink `manifest` lists, then every listed folder
/// left empty, then `install` itself if it is empty. A listed path that is now something
/// else (a folder where a file was, say) is kept. Nothing if `install` does not exist.
pub fn remove_listed(install: &Path, manifest: &Manifest) -> Result<Removal, InstallError> {
    let dir = match Dir::open(install) {
        Ok(dir) => dir,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Removal::default()),
        Err(error) => return Err(io_error(install, "open")(error)),
    };
    let tree = OpenTree {
        path: install,
        dir: &dir,
    };
    let mut removal = Removal::default();
    // Deepest first, so that a folder's listed contents are gone before the folder is tried.
    for entry in manifest.entries.iter().rev() {
        let (parent, name) = match tree.parent(&entry.path) {
            Ok(Parent::Found(parent, name)) => (parent, name),
            // Gone already, or behind a symlink a friend made: left as it is.
            Ok(Parent::Missing) | Err(InstallError::Symlink { .. }) => continue,
            Err(error) => return Err(error),
        };
        let Some(stat) = parent
            .stat(name)
            .map_err(io_error(&install.join(&entry.path), "inspect"))?
        else {
            continue;
        };
        let at = install.join(&entry.path);
        match (&entry.kind, stat.kind) {
            (EntryKind::File { .. }, Kind::File) | (EntryKind::Symlink { .. }, Kind::Symlink) => {
                parent.remove_file(name).map_err(io_error(&at, "remove"))?;
                removal.removed += 1;
            }
            (EntryKind::Dir, Kind::Dir) => remove_if_empty(&parent, name, &at)?,
            _ => {}
        }
    }
    removal.kept = list(&dir, "").map_err(io_error(install, "list"))?;
    if removal.kept.is_empty() {
        drop(dir);
        remove_dir_if_empty(install)?;
    }
    Ok(removal)
}

/// What [`remove_listed`] would keep: the paths in `install` that `manifest` does not list
/// (folders before their contents), found without reading any file. Empty if `install`
/// does not exist.
pub fn unlisted(install: &Path, manifest: &Manifest) -> Result<Vec<String>, InstallError> {
    let dir = match Dir::open(install) {
        Ok(dir) => dir,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(install, "open")(error)),
    };
    let listed: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    let mut paths = list(&dir, "").map_err(io_error(install, "list"))?;
    paths.retain(|path| !listed.contains(path.as_str()));
    Ok(paths)
}

/// Removes `install` and everything in it, never following a symlink. Nothing if it does
/// not exist.
pub fn remove_all(install: &Path) -> Result<(), InstallError> {
    let (parent, name) = parent_of(install)?;
    parent
        .remove_tree(name.as_encoded_bytes(), &mut || {})
        .map_err(io_error(install, "remove"))
}

fn parent_of(install: &Path) -> Result<(Dir, &std::ffi::OsStr), InstallError> {
    let (Some(parent), Some(name)) = (install.parent(), install.file_name()) else {
        return Err(io_error(install, "remove")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a folder that can be removed",
        )));
    };
    let parent = Dir::open(parent).map_err(io_error(parent, "open"))?;
    Ok((parent, name))
}

fn remove_dir_if_empty(install: &Path) -> Result<(), InstallError> {
    let (parent, name) = parent_of(install)?;
    remove_if_empty(&parent, name.as_encoded_bytes(), install)
}

/// Removes the folder `name` of `parent` if it is empty; keeps it otherwise.
fn remove_if_empty(parent: &Dir, name: impl AsRef<[u8]>, at: &Path) -> Result<(), InstallError> {
    match parent.remove_dir(name) {
        Ok(()) => Ok(()),
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::ENOTEMPTY) | Some(libc::EEXIST) | Some(libc::ENOENT)
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(io_error(at, "remove")(error)),
    }
}

/// Every path below `dir` (whose path is `prefix`), folders before their contents, never
/// following a symlink.
fn list(dir: &Dir, prefix: &str) -> io::Result<Vec<String>> {
    let mut paths = Vec::new();
    for name in dir.list()? {
        let path = format!("{prefix}{}", String::from_utf8_lossy(&name));
        let is_dir = dir.stat(&name)?.is_some_and(|stat| stat.kind == Kind::Dir);
        if is_dir {
            let below = list(&dir.open_dir(&name)?, &format!("{path}/"))?;
            paths.push(path);
            paths.extend(below);
        } else {
            paths.push(path);
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan;

    fn build(root: &Path) -> Manifest {
        std::fs::create_dir_all(root.join("data/levels")).unwrap();
        std::fs::write(root.join("game.bin"), b"game").unwrap();
        std::fs::write(root.join("data/levels/one.lvl"), b"level").unwrap();
        std::os::unix::fs::symlink("game.bin", root.join("run")).unwrap();
        scan::scan(root).unwrap()
    }

    #[test]
    fn removes_only_what_the_manifest_lists_and_keeps_the_rest() {
        let temp = tempfile::tempdir().unwrap();
        let install = temp.path().join("game");
        let manifest = build(&install);
        std::fs::write(install.join("data/save.dat"), b"a save").unwrap();
        std::fs::create_dir(install.join("mods")).unwrap();
        std::fs::write(install.join("mods/m.txt"), b"a mod").unwrap();

        assert_eq!(
            unlisted(&install, &manifest).unwrap(),
            ["data/save.dat", "mods", "mods/m.txt"]
        );
        let removal = remove_listed(&install, &manifest).unwrap();

        assert_eq!(removal.removed, 3);
        assert_eq!(
            removal.kept,
            ["data", "data/save.dat", "mods", "mods/m.txt"]
        );
        assert_eq!(
            std::fs::read(install.join("data/save.dat")).unwrap(),
            b"a save"
        );
        assert!(!install.join("data/levels").exists());
        assert!(!install.join("game.bin").exists());
    }

    #[test]
    fn an_install_holding_only_the_game_is_removed_whole() {
        let temp = tempfile::tempdir().unwrap();
        let install = temp.path().join("game");
        let manifest = build(&install);
        let removal = remove_listed(&install, &manifest).unwrap();
        assert_eq!(removal.kept, Vec::<String>::new());
        assert!(!install.exists());
        assert_eq!(
            remove_listed(&install, &manifest).unwrap(),
            Removal::default()
        );
    }

    #[test]
    fn a_symlink_where_a_listed_folder_was_is_not_followed() {
        let temp = tempfile::tempdir().unwrap();
        let install = temp.path().join("game");
        let manifest = build(&install);
        let outside = temp.path().join("outside");
        std::fs::create_dir_all(outside.join("levels")).unwrap();
        std::fs::write(outside.join("levels/one.lvl"), b"not the game's").unwrap();
        std::fs::remove_dir_all(install.join("data")).unwrap();
        std::os::unix::fs::symlink(&outside, install.join("data")).unwrap();

        let removal = remove_listed(&install, &manifest).unwrap();

        assert_eq!(removal.kept, ["data"]);
        assert_eq!(
            std::fs::read(outside.join("levels/one.lvl")).unwrap(),
            b"not the game's"
        );
        remove_all(&install).unwrap();
        assert!(!install.exists());
        assert!(outside.join("levels/one.lvl").exists());
    }
}
