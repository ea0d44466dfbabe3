//! What a package holds: the index of operations and the target manifest's difference from
//! the source manifest, and the checks that make an untrusted index safe to use.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::manifest::{Entry, EntryKind, FileHash, Manifest, files_by_path};
use crate::treedelta::format::{Header, TreeDeltaError, check_path_field, corrupt, symlink_reason};

/// What a package holds: the target manifest as a difference from the source manifest, and
/// one operation per target file that is not the same file at the same path in the source.
///
/// The target manifest is the source manifest without the entries at `removed`, with the
/// entries of `dirs`, `symlinks` and `ops` added or put in place of the source's entry at
/// their path; see [`Index::target_from`]. Every path appears in at most one of the four
/// lists, and each list is sorted strictly by path. [`Index::validate`] checks what can be
/// checked without the source manifest; the rest is checked when the target manifest is
/// rebuilt.
///
/// In JSON: `{"removed":[…],"dirs":[…],"symlinks":[{"path":…,"target":…}…],"ops":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Source paths (of any kind) that the target does not have.
    pub removed: Vec<String>,
    /// Target directories where the source has no directory.
    pub dirs: Vec<String>,
    /// Target symlinks where the source has no symlink, or one with another target.
    pub symlinks: Vec<Symlink>,
    /// One per target file that the source does not have at the same path with the same
    /// content and executable bit; payload operations name their file delta in the body.
    pub ops: Vec<Op>,
}

/// A new or changed symlink of the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Symlink {
    /// Where the link is.
    pub path: String,
    /// Its target text, as in the manifest.
    pub target: String,
}

/// How one target file is made, and (where the source manifest does not give it) the
/// file's target entry. In JSON, e.g.
/// `{"op":"patch","path":…,"size":…,"blake3":…,"len":…}`; see `docs/delta.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The content is the old file `from` (a rename, move or copy); nothing is stored. The
    /// target file has the size and hash of `from` in the source.
    Copy {
        /// The target path.
        path: String,
        /// The source path with the same content.
        from: String,
        /// The target file's executable bit.
        executable: bool,
    },
    /// A file delta against the old file `base`, stored at `offset..offset + len` of the body.
    Patch {
        /// The target path.
        path: String,
        /// The source file the delta applies to.
        base: String,
        /// The target file's size.
        size: u64,
        /// The target file's executable bit.
        executable: bool,
        /// The target file's hash.
        blake3: FileHash,
        /// Where the file delta starts, counted from the start of the body. Not stored:
        /// the file deltas lie end to end in index order.
        offset: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// The file compressed alone (a file delta from the empty file).
    Add {
        /// The target path.
        path: String,
        /// The target file's size.
        size: u64,
        /// The target file's executable bit.
        executable: bool,
        /// The target file's hash.
        blake3: FileHash,
        /// Where the file delta starts, counted from the start of the body (not stored).
        offset: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// Same path and content; only the executable bit changes (it is flipped).
    Mode {
        /// The path.
        path: String,
    },
}

impl Op {
    /// The target path this operation makes.
    pub fn path(&self) -> &str {
        match self {
            Op::Copy { path, .. }
            | Op::Patch { path, .. }
            | Op::Add { path, .. }
            | Op::Mode { path } => path,
        }
    }

    /// Where the operation's file delta lies in the body, if it has one.
    pub fn blob_range(&self) -> Option<Range<u64>> {
        match self {
            Op::Patch { offset, len, .. } | Op::Add { offset, len, .. } => {
                Some(*offset..offset.saturating_add(*len))
            }
            Op::Copy { .. } | Op::Mode { .. } => None,
        }
    }
}

impl Index {
    /// Decompresses and parses a stored index, checks it against `header` and validates it.
    pub fn from_stored(header: &Header, stored: &[u8]) -> Result<Index, TreeDeltaError> {
        if stored.len() as u64 != header.index_len {
            return Err(corrupt("the index is truncated"));
        }
        if blake3::hash(stored).as_bytes() != &header.index_hash {
            return Err(corrupt("index checksum mismatch"));
        }
        let mut raw = Vec::with_capacity(header.index_raw_len.min(1 << 24) as usize);
        zstd::stream::read::Decoder::new(stored)
            .and_then(|decoder| decoder.take(header.index_raw_len + 1).read_to_end(&mut raw))
            .map_err(|e| TreeDeltaError::Corrupt(format!("the index does not decompress: {e}")))?;
        if raw.len() as u64 != header.index_raw_len {
            return Err(corrupt("the index's length differs from the header"));
        }
        let index: Index = serde_json::from_slice(&raw)
            .map_err(|e| TreeDeltaError::Corrupt(format!("the index does not parse: {e}")))?;
        index.validate(header)?;
        Ok(index)
    }

    /// Checks everything a reader can check without the source manifest: every path safe,
    /// every symlink target confined to the root, each list sorted strictly, no path in two
    /// lists, and the file deltas laid end to end filling exactly the body.
    ///
    /// The rest — that removed paths, `copy` origins, `patch` bases and `mode` files exist
    /// in the source, and that the result is a well-formed manifest with the header's target
    /// digest — is checked by [`Package::target_manifest`].
    ///
    /// [`Package::target_manifest`]: crate::treedelta::package::Package::target_manifest
    pub fn validate(&self, header: &Header) -> Result<(), TreeDeltaError> {
        fn sorted<'a>(
            what: &str,
            paths: impl Iterator<Item = &'a str>,
        ) -> Result<(), TreeDeltaError> {
            let mut previous: Option<&str> = None;
            for path in paths {
                check_path_field(path)?;
                if previous.is_some_and(|previous| previous >= path) {
                    return Err(TreeDeltaError::Corrupt(format!(
                        "{what} {path:?} is out of order or repeated"
                    )));
                }
                previous = Some(path);
            }
            Ok(())
        }
        sorted("removed path", self.removed.iter().map(String::as_str))?;
        sorted("directory", self.dirs.iter().map(String::as_str))?;
        sorted(
            "symlink",
            self.symlinks.iter().map(|link| link.path.as_str()),
        )?;
        sorted("operation for", self.ops.iter().map(Op::path))?;
        for link in &self.symlinks {
            crate::manifest::check_symlink_target(&link.path, &link.target).map_err(|problem| {
                TreeDeltaError::UnsafePath {
                    path: format!("{} -> {}", link.path, link.target),
                    reason: symlink_reason(problem),
                }
            })?;
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(
            self.removed.len() + self.dirs.len() + self.symlinks.len() + self.ops.len(),
        );
        let all = (self.removed.iter().chain(&self.dirs))
            .map(String::as_str)
            .chain(self.symlinks.iter().map(|link| link.path.as_str()))
            .chain(self.ops.iter().map(Op::path));
        for path in all {
            if !seen.insert(path) {
                return Err(TreeDeltaError::Corrupt(format!(
                    "{path:?} is listed twice in the index"
                )));
            }
        }
        let mut next_offset = 0u64;
        let mut blobs: HashMap<u64, u64> = HashMap::new();
        for op in &self.ops {
            let path = op.path();
            match op {
                Op::Copy { from, .. } => check_path_field(from)?,
                Op::Patch { base, .. } => check_path_field(base)?,
                Op::Add { .. } | Op::Mode { .. } => {}
            }
            if let Op::Patch { offset, len, .. } | Op::Add { offset, len, .. } = op {
                // A file sharing the blob of an earlier file (see `Package::rebuild`).
                if *offset < next_offset && blobs.get(offset) == Some(len) {
                    continue;
                }
                blobs.insert(*offset, *len);
                if *offset != next_offset || *len == 0 {
                    return Err(TreeDeltaError::Corrupt(format!(
                        "the file delta of {path:?} is not where the one before it ends"
                    )));
                }
                next_offset = offset
                    .checked_add(*len)
                    .filter(|end| *end <= header.body_len)
                    .ok_or_else(|| {
                        TreeDeltaError::Corrupt(format!(
                            "the file delta of {path:?} runs past the end of the body"
                        ))
                    })?;
            }
        }
        if next_offset != header.body_len {
            return Err(corrupt("the file deltas do not fill the body"));
        }
        Ok(())
    }

    /// The target manifest this index makes from `source`: the source's entries without
    /// `removed`, with the entries of `dirs`, `symlinks` and `ops` added or in place of the
    /// source's entry at the same path, checked to be a well-formed manifest.
    ///
    /// This does not compare digests; [`Package::target_manifest`] does.
    ///
    /// [`Package::target_manifest`]: crate::treedelta::package::Package::target_manifest
    pub fn target_from(&self, source: &Manifest) -> Result<Manifest, TreeDeltaError> {
        let mut changed = self.changed_entries(source)?;
        let removed: HashSet<&str> = self.removed.iter().map(String::as_str).collect();
        let mut n_removed = 0;
        let mut entries = Vec::with_capacity(source.entries.len() + changed.len());
        for entry in &source.entries {
            if removed.contains(entry.path.as_str()) {
                n_removed += 1;
            } else if let Some(kind) = changed.remove(entry.path.as_str()) {
                entries.push(Entry {
                    path: entry.path.clone(),
                    kind,
                });
            } else {
                entries.push(entry.clone());
            }
        }
        if n_removed != removed.len() {
            let source_paths: HashSet<&str> =
                source.entries.iter().map(|e| e.path.as_str()).collect();
            let missing = self
                .removed
                .iter()
                .find(|path| !source_paths.contains(path.as_str()))
                .map_or("", String::as_str);
            return Err(TreeDeltaError::Corrupt(format!(
                "the index removes {missing:?}, which the source does not have"
            )));
        }
        entries.extend(changed.into_iter().map(|(path, kind)| Entry {
            path: path.to_owned(),
            kind,
        }));
        entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let target = Manifest { entries };
        target.validate().map_err(|error| {
            TreeDeltaError::Corrupt(format!(
                "the target manifest the index gives is not well formed: {error}"
            ))
        })?;
        Ok(target)
    }

    /// The target entries the index gives, by path: its directories and symlinks, and the
    /// files its operations make, each checked to read only files the source has.
    fn changed_entries<'a>(
        &'a self,
        source: &Manifest,
    ) -> Result<HashMap<&'a str, EntryKind>, TreeDeltaError> {
        let source_files = files_by_path(source);
        let source_file = |path: &str, what: &str| {
            source_files.get(path).copied().ok_or_else(|| {
                TreeDeltaError::Corrupt(format!(
                    "{what} {path:?}, which is not a file of the source"
                ))
            })
        };
        let mut changed: HashMap<&str, EntryKind> =
            HashMap::with_capacity(self.dirs.len() + self.symlinks.len() + self.ops.len());
        for dir in &self.dirs {
            changed.insert(dir, EntryKind::Dir);
        }
        for link in &self.symlinks {
            changed.insert(
                &link.path,
                EntryKind::Symlink {
                    target: link.target.clone(),
                },
            );
        }
        for op in &self.ops {
            let kind = match op {
                Op::Copy {
                    path,
                    from,
                    executable,
                } => {
                    let from_file = source_file(from, &format!("{path:?} is copied from"))?;
                    EntryKind::File {
                        size: from_file.size,
                        executable: *executable,
                        blake3: from_file.hash,
                    }
                }
                Op::Patch {
                    path,
                    base,
                    size,
                    executable,
                    blake3,
                    ..
                } => {
                    source_file(base, &format!("{path:?} is patched from"))?;
                    EntryKind::File {
                        size: *size,
                        executable: *executable,
                        blake3: *blake3,
                    }
                }
                Op::Add {
                    size,
                    executable,
                    blake3,
                    ..
                } => EntryKind::File {
                    size: *size,
                    executable: *executable,
                    blake3: *blake3,
                },
                Op::Mode { path } => {
                    let file = source_file(path, "a mode change for")?;
                    EntryKind::File {
                        size: file.size,
                        executable: !file.executable,
                        blake3: file.hash,
                    }
                }
            };
            changed.insert(op.path(), kind);
        }
        Ok(changed)
    }

    /// The operation for `path`, if the file is not unchanged.
    pub fn op(&self, path: &str) -> Option<&Op> {
        self.ops
            .binary_search_by(|op| op.path().cmp(path))
            .ok()
            .map(|idx| &self.ops[idx])
    }
}
