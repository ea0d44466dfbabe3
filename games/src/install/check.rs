//! Checking that the install is the version an update starts from (or already the target).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::confined::{self, Kind};
use crate::install::changes::{Change, Update};
use crate::install::tree::OpenTree;
use crate::install::{InstallError, InstallOptions, io_error};
use crate::manifest::{Entry, EntryKind, FileHash};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Source,
    Target,
}

/// Checks that the install is at the source (or target) version wherever the update looks:
/// every entry of that manifest is there as recorded, and every path only the other
/// manifest has is free (a directory may stay: it may hold a friend's files).
pub(crate) fn check_state(
    tree: &OpenTree<'_>,
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
    for entry in &this.entries {
        check_entry(tree, update, state, options, entry)?;
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

/// Checks that `entry`, of the manifest the install should be at, is there as recorded.
fn check_entry(
    tree: &OpenTree<'_>,
    update: &Update<'_>,
    state: State,
    options: &InstallOptions,
    entry: &Entry,
) -> Result<(), InstallError> {
    let mismatch = |detail: String| InstallError::NotSource {
        install: tree.path.to_owned(),
        expected: update.source.tree_digest(),
        detail,
    };
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
            let written = state == State::Target && update.writes.get(path) == Some(&Change::Place);
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
    Ok(())
}

pub(crate) fn hash_matches(
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
