//! An open folder tree, walked one component at a time without following symlinks.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::confined::{self, Dir, WalkError};
use crate::install::{InstallError, io_error};
use crate::manifest::EntryKind;

/// A folder tree open for an update (the install, or a pack unpacked beside it), and the
/// path it was opened from, for messages. Paths below it are walked one component at a
/// time, never through a symlink.
pub(crate) struct OpenTree<'a> {
    pub(crate) path: &'a Path,
    pub(crate) dir: &'a Dir,
}

/// The directory holding a path, or why it cannot be reached.
pub(crate) enum Parent<'p> {
    Found(Dir, &'p str),
    /// A directory on the way does not exist.
    Missing,
}

impl OpenTree<'_> {
    pub(crate) fn parent<'p>(&self, rel: &'p str) -> Result<Parent<'p>, InstallError> {
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
    pub(crate) fn existing_parent<'p>(&self, rel: &'p str) -> Result<(Dir, &'p str), InstallError> {
        match self.parent(rel)? {
            Parent::Found(dir, name) => Ok((dir, name)),
            Parent::Missing => Err(InstallError::Inconsistent {
                install: self.path.to_owned(),
                detail: format!("the folder holding {rel:?} is missing"),
            }),
        }
    }

    pub(crate) fn stat(&self, rel: &str) -> Result<Option<confined::Stat>, InstallError> {
        match self.parent(rel)? {
            Parent::Found(dir, name) => dir
                .stat(name)
                .map_err(io_error(&self.path.join(rel), "inspect")),
            Parent::Missing => Ok(None),
        }
    }

    /// Like [`OpenTree::stat`], for a path that `manifest` does not have: below one of the
    /// manifest's own symlinks it does not exist (and is never walked through), below any
    /// other symlink it is refused.
    pub(crate) fn stat_beside(
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

    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}
