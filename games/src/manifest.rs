//! Build manifests: what is in a game build, and one digest that names it.
//!
//! [`scan`] walks a build directory and returns a [`Manifest`]: every directory, file and
//! symlink under the root, sorted by path, with each file's size, executable bit and
//! BLAKE3 hash. [`Manifest::tree_digest`] condenses a manifest into a [`TreeDigest`]
//! (`blake3:<hex>`) over a canonical, versioned byte encoding; `docs/manifest.md` defines
//! that encoding byte by byte, and any change to it must bump the version in its header.
//!
//! A `Manifest` from [`scan`] or from deserialization is well formed: scanning only builds
//! valid ones and deserialization runs [`Manifest::validate`], so paths and symlink
//! targets from any input are relative, normalized and confined to the build root. Code
//! that builds a `Manifest` by hand should call `validate` before trusting it.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::SystemTime;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Every directory, file and symlink of a build, sorted by path.
///
/// The root directory itself is not an entry. Paths are compared bytewise (the order of
/// `str`), so `a` < `a.txt` < `a/b`. Deserializing runs [`Manifest::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawManifest")]
pub struct Manifest {
    /// The entries, sorted by [`Entry::path`] with no duplicates.
    pub entries: Vec<Entry>,
}

/// One directory, file or symlink of a build.
///
/// In JSON the kind is flattened next to the path and tagged by `type`:
/// `{"path":"bin/game","type":"file","size":12,"executable":true,"blake3":"<hex>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawEntry")]
pub struct Entry {
    /// The path relative to the build root: `/`-separated, UTF-8, no leading `./`, no `.`
    /// or `..` components.
    pub path: String,
    /// What the path is, with the data that the digest covers.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// What an [`Entry`] is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// The length in bytes.
        size: u64,
        /// Whether any of the Unix execute bits (`0o111`) is set; always `false` when
        /// scanned on other platforms.
        executable: bool,
        /// The BLAKE3 hash of the contents.
        blake3: FileHash,
    },
    /// A symbolic link, recorded as its target text and never followed.
    Symlink {
        /// The target exactly as stored in the link, e.g. `../lib/libfoo.so.1`.
        target: String,
    },
    /// A directory. Every directory is recorded so that empty ones survive a round trip.
    Dir,
}

/// The BLAKE3 hash of one file's contents.
///
/// Displays and parses as 64 lowercase hex digits, and serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHash(pub [u8; 32]);

/// The digest of a whole build, see [`Manifest::tree_digest`].
///
/// Displays and parses as `blake3:` followed by 64 lowercase hex digits, and serializes as
/// that string. Specs pin builds with it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeDigest(pub [u8; 32]);

/// Why a [`FileHash`] or [`TreeDigest`] string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDigestError {
    /// A tree digest did not start with `blake3:`.
    #[error("expected a digest of the form 'blake3:<64 hex digits>', got {input:?}")]
    MissingPrefix {
        /// The input, shortened to a readable length.
        input: String,
    },
    /// The hex part had the wrong number of characters.
    #[error("expected 64 hex digits, got {len} characters")]
    WrongLength {
        /// The number of characters found.
        len: usize,
    },
    /// The hex part contained something other than `0-9a-f`.
    #[error("invalid character {character:?} at position {position} of the hex digits{hint}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its zero-based position among the hex characters.
        position: usize,
        /// A hint for a likely mistake, possibly empty.
        hint: &'static str,
    },
}

/// Why a [`Manifest`] is not well formed; see [`Manifest::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A path is empty, absolute, or has an empty, `.` or `..` component.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The entries are not sorted bytewise by path, or a path appears twice.
    #[error("entry {path:?} must sort strictly after the entry before it, {previous:?}")]
    Unsorted {
        /// The path out of order.
        path: String,
        /// The path of the entry before it.
        previous: String,
    },
    /// An entry's parent directory is not an entry of type `dir`.
    #[error("entry {path:?} has no parent directory entry {parent:?}")]
    MissingParent {
        /// The path whose parent is missing.
        path: String,
        /// The missing parent.
        parent: String,
    },
    /// A symlink's target is not allowed.
    #[error("symlink {path:?} -> {target:?}: {problem}")]
    InvalidSymlink {
        /// The path of the link.
        path: String,
        /// The target text.
        target: String,
        /// What is wrong with the target.
        problem: SymlinkProblem,
    },
}

/// Why a symlink target is rejected.
///
/// A build must be self-contained: a link that points outside the build root would read
/// or, when installed, write somewhere else on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SymlinkProblem {
    /// The target is the empty string.
    #[error("the target is empty")]
    Empty,
    /// The target starts with `/`.
    #[error("the target is absolute; make it relative to the link")]
    Absolute,
    /// The target has more leading `..` components than the link has parent directories.
    #[error("the target points outside the build root")]
    Escapes,
    /// A `..` component follows a name. If that name is itself a symlink, `..` climbs from
    /// wherever it points, so the target could leave the root even though it looks
    /// contained.
    #[error(
        "the target has '..' after a name, which can escape through another symlink; drop the detour"
    )]
    DotDotAfterName,
    /// The target is not valid UTF-8, so it cannot be stored in a manifest.
    #[error("the target is not valid UTF-8")]
    NotUtf8,
    /// The target contains a NUL byte, which no file system accepts.
    #[error("the target contains a NUL byte")]
    ContainsNul,
}

/// Why [`scan`] failed. Every variant names the offending path on disk.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root to scan is not a directory.
    #[error("build root {} is not a directory", path.display())]
    RootNotDirectory {
        /// The root as given.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// What was being done, e.g. `read directory`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file name is not valid UTF-8; the path shown replaces the invalid bytes.
    #[error("file name {} is not valid UTF-8; rename it", path.display())]
    NonUtf8Name {
        /// The path, with invalid bytes shown as U+FFFD by `Display`.
        path: PathBuf,
    },
    /// The build contains something other than a directory, regular file or symlink.
    #[error("{} is a {kind}; a build may only hold regular files, directories and symlinks", path.display())]
    UnsupportedFileType {
        /// The path of the special file.
        path: PathBuf,
        /// `fifo`, `socket`, `block device`, `character device` or `special file`.
        kind: &'static str,
    },
    /// A symlink's target is not allowed.
    #[error("symlink {} -> {target}: {problem}", path.display())]
    InvalidSymlink {
        /// The path of the link.
        path: PathBuf,
        /// The target text (lossy if it is not UTF-8).
        target: String,
        /// What is wrong with it.
        problem: SymlinkProblem,
    },
    /// A file changed between listing and hashing, or while it was hashed.
    #[error("{} changed while being scanned ({detail}); is the build still being written?", path.display())]
    Changed {
        /// The path of the file.
        path: PathBuf,
        /// What changed.
        detail: String,
    },
}

/// Scans the build directory `root` into a [`Manifest`], hashing files in parallel.
///
/// Symlinks inside the root are recorded, never followed; `root` itself may be a symlink
/// to a directory. See [`scan_with_progress`] for what is rejected and which changes
/// during the scan are noticed.
pub fn scan(root: &Path) -> Result<Manifest, ScanError> {
    scan_with_progress(root, &|_, _| {})
}

/// Like [`scan`], and calls `progress(bytes_hashed, total_bytes)` as hashing advances.
///
/// `progress` is called with `(0, total)` before hashing, then every so often (at most a
/// few hundred times), and with `(total, total)` on success. Calls never overlap and
/// `bytes_hashed` never decreases. It may be called from any thread.
///
/// The scan fails, naming the path, on: special files (fifos, sockets, devices), names
/// that are not UTF-8, symlinks whose target is absolute or leaves the root, and files
/// whose size or modification time changes between listing and the end of hashing.
///
/// Files are read, never memory-mapped, so a file truncated during the scan is an error
/// rather than a crash. Changes that keep the size and the modification time (which
/// takes deliberate effort) go unnoticed, as do files added or removed after the listing.
pub fn scan_with_progress(
    root: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Manifest, ScanError> {
    let Listing { mut entries, files } = list(root)?;
    let total: u64 = files.iter().map(|file| file.size).sum();
    let reporter = Reporter::new(total, progress);
    reporter.start();
    let hashes: Vec<FileHash> = files
        .par_iter()
        .map(|file| hash_file(file, &reporter))
        .collect::<Result<_, _>>()?;
    for (file, hash) in files.iter().zip(hashes) {
        if let EntryKind::File { blake3, .. } = &mut entries[file.entry_idx].kind {
            *blake3 = hash;
        }
    }
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    reporter.finish();
    Ok(Manifest { entries })
}

impl Manifest {
    /// The digest that names this build: BLAKE3 over the canonical encoding of the
    /// entries sorted by path, defined in `docs/manifest.md` ("mist-tree-v1").
    ///
    /// Entries are sorted here too, so the order of `entries` does not matter. Any change
    /// to a path, type, size, executable bit, content hash or symlink target changes it.
    pub fn tree_digest(&self) -> TreeDigest {
        TreeDigest(*blake3::hash(&self.canonical_encoding()).as_bytes())
    }

    /// The sum of all file sizes in bytes.
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, size)| size).sum()
    }

    /// The number of regular files (directories and symlinks not counted).
    pub fn n_files(&self) -> usize {
        self.files().count()
    }

    /// Checks that the manifest is well formed: sorted strictly by path, every path
    /// normalized and relative, every parent recorded as a directory, every symlink target
    /// confined to the root. Deserialization calls this, and [`scan`] output passes it.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut previous: Option<&str> = None;
        for entry in &self.entries {
            let path = entry.path.as_str();
            check_path(path).map_err(|reason| ManifestError::InvalidPath {
                path: path.to_owned(),
                reason,
            })?;
            if let Some(previous) = previous
                && previous >= path
            {
                return Err(ManifestError::Unsorted {
                    path: path.to_owned(),
                    previous: previous.to_owned(),
                });
            }
            previous = Some(path);
            // Parents sort before their children (a prefix sorts first), so a parent that
            // exists has already been seen.
            if let Some((parent, _)) = path.rsplit_once('/')
                && !dirs.contains(parent)
            {
                return Err(ManifestError::MissingParent {
                    path: path.to_owned(),
                    parent: parent.to_owned(),
                });
            }
            match &entry.kind {
                EntryKind::Dir => {
                    dirs.insert(path);
                }
                EntryKind::Symlink { target } => {
                    check_symlink_target(path, target).map_err(|problem| {
                        ManifestError::InvalidSymlink {
                            path: path.to_owned(),
                            target: target.clone(),
                            problem,
                        }
                    })?;
                }
                EntryKind::File { .. } => {}
            }
        }
        Ok(())
    }

    fn files(&self) -> impl Iterator<Item = (&Entry, u64)> {
        self.entries.iter().filter_map(|entry| match entry.kind {
            EntryKind::File { size, .. } => Some((entry, size)),
            _ => None,
        })
    }

    /// The "mist-tree-v1" encoding; `docs/manifest.md` must change with this function.
    fn canonical_encoding(&self) -> Vec<u8> {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        // Stable, so that even a malformed manifest with duplicate paths encodes in a
        // deterministic order.
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out = Vec::with_capacity(TREE_HEADER.len() + 8 + entries.len() * 80);
        out.extend_from_slice(TREE_HEADER);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for entry in entries {
            let push_bytes = |out: &mut Vec<u8>, bytes: &[u8]| {
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(bytes);
            };
            match &entry.kind {
                EntryKind::File {
                    size,
                    executable,
                    blake3,
                } => {
                    out.push(b'f');
                    push_bytes(&mut out, entry.path.as_bytes());
                    out.extend_from_slice(&size.to_le_bytes());
                    out.push(u8::from(*executable));
                    out.extend_from_slice(&blake3.0);
                }
                EntryKind::Symlink { target } => {
                    out.push(b'l');
                    push_bytes(&mut out, entry.path.as_bytes());
                    push_bytes(&mut out, target.as_bytes());
                }
                EntryKind::Dir => {
                    out.push(b'd');
                    push_bytes(&mut out, entry.path.as_bytes());
                }
            }
        }
        out
    }
}

/// The first bytes of the tree encoding. The NUL ends the version so that no future
/// header (say `mist-tree-v10`) is a prefix of another.
const TREE_HEADER: &[u8] = b"mist-tree-v1\0";

/// Files at least this large are hashed with several threads (BLAKE3's tree splits across
/// the rayon pool); smaller ones on one thread each, in parallel with other files, because
/// splitting a small input costs more than it gains.
const PARALLEL_MIN_SIZE: u64 = 1024 * 1024;

/// Files are read and hashed this many bytes at a time: large enough for BLAKE3 to split
/// a piece across threads, small enough to stay in cache between the read and the hash.
const PIECE_SIZE: usize = 4 * 1024 * 1024;

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHash({self})")
    }
}

impl FromStr for FileHash {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex(s).map(FileHash)
    }
}

impl fmt::Display for TreeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TREE_DIGEST_PREFIX)?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TreeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeDigest({self})")
    }
}

impl FromStr for TreeDigest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(hex) = s.strip_prefix(TREE_DIGEST_PREFIX) else {
            let mut input: String = s.chars().take(80).collect();
            if input.len() < s.len() {
                input.push('…');
            }
            return Err(ParseDigestError::MissingPrefix { input });
        };
        parse_hex(hex).map(TreeDigest)
    }
}

const TREE_DIGEST_PREFIX: &str = "blake3:";

impl Serialize for FileHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer)
    }
}

impl Serialize for TreeDigest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TreeDigest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer)
    }
}

fn deserialize_from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    // A `Cow` borrows when the format allows it and still accepts escaped strings.
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    for (byte, pair) in bytes.iter().zip(hex.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    // The digits are ASCII, so this cannot fail.
    f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
}

fn parse_hex(hex: &str) -> Result<[u8; 32], ParseDigestError> {
    let n_chars = hex.chars().count();
    if n_chars != 64 {
        return Err(ParseDigestError::WrongLength { len: n_chars });
    }
    let mut bytes = [0u8; 32];
    for (position, character) in hex.chars().enumerate() {
        let nibble = match character {
            '0'..='9' => character as u8 - b'0',
            'a'..='f' => character as u8 - b'a' + 10,
            _ => {
                let hint = if character.is_ascii_hexdigit() {
                    "; digests are written in lowercase"
                } else {
                    ""
                };
                return Err(ParseDigestError::InvalidCharacter {
                    character,
                    position,
                    hint,
                });
            }
        };
        bytes[position / 2] |= nibble << (4 * (1 - position % 2));
    }
    Ok(bytes)
}

/// The serde shape of a [`Manifest`], validated into one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawManifest {
    entries: Vec<Entry>,
}

impl TryFrom<RawManifest> for Manifest {
    type Error = ManifestError;

    fn try_from(raw: RawManifest) -> Result<Self, Self::Error> {
        let manifest = Manifest {
            entries: raw.entries,
        };
        manifest.validate()?;
        Ok(manifest)
    }
}

/// The serde shape of an [`Entry`]. Serde cannot combine `flatten` with
/// `deny_unknown_fields`, so deserialization goes through this internally tagged enum,
/// which rejects misspelt fields.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum RawEntry {
    File {
        path: String,
        size: u64,
        executable: bool,
        blake3: FileHash,
    },
    Symlink {
        path: String,
        target: String,
    },
    Dir {
        path: String,
    },
}

impl From<RawEntry> for Entry {
    fn from(raw: RawEntry) -> Self {
        match raw {
            RawEntry::File {
                path,
                size,
                executable,
                blake3,
            } => Entry {
                path,
                kind: EntryKind::File {
                    size,
                    executable,
                    blake3,
                },
            },
            RawEntry::Symlink { path, target } => Entry {
                path,
                kind: EntryKind::Symlink { target },
            },
            RawEntry::Dir { path } => Entry {
                path,
                kind: EntryKind::Dir,
            },
        }
    }
}

/// Checks that a path from a manifest or a package names something strictly inside a root
/// on every system: relative, `/`-separated, no empty, `.` or `..` component, no backslash
/// (a separator on Windows) and no NUL. The one check for every untrusted path.
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("the path is empty");
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte");
    }
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    // A separator on Windows: `a\..\..\x` would climb out of an install there.
    if path.contains('\\') {
        return Err("the path contains a backslash");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("the path has an empty component or a trailing '/'"),
            "." | ".." => return Err("the path has a '.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that the symlink at `link_path` with `target` stays inside the root whatever
/// the other links in the build point to: `..` may only lead the target, and no further
/// up than the link's own directory is deep. Directories on disk are real directories, so
/// leading `..` climbs real parents; after that the target only descends.
pub(crate) fn check_symlink_target(link_path: &str, target: &str) -> Result<(), SymlinkProblem> {
    if target.is_empty() {
        return Err(SymlinkProblem::Empty);
    }
    if target.contains('\0') {
        return Err(SymlinkProblem::ContainsNul);
    }
    if target.starts_with('/') {
        return Err(SymlinkProblem::Absolute);
    }
    let mut depth = link_path.matches('/').count();
    let mut seen_name = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if seen_name => return Err(SymlinkProblem::DotDotAfterName),
            ".." => depth = depth.checked_sub(1).ok_or(SymlinkProblem::Escapes)?,
            _ => seen_name = true,
        }
    }
    Ok(())
}

/// The directory walk's result: entries with placeholder hashes, and the files to hash.
struct Listing {
    entries: Vec<Entry>,
    files: Vec<FileToHash>,
}

struct FileToHash {
    entry_idx: usize,
    path: PathBuf,
    size: u64,
    modified: Option<SystemTime>,
}

/// Walks `root` with an explicit stack, so deep trees cannot overflow the call stack.
fn list(root: &Path) -> Result<Listing, ScanError> {
    let io_error = |path: &Path, action: &'static str| {
        let path = path.to_owned();
        move |source| ScanError::Io {
            path,
            action,
            source,
        }
    };
    let root_metadata = fs::metadata(root).map_err(io_error(root, "read metadata of"))?;
    if !root_metadata.is_dir() {
        return Err(ScanError::RootNotDirectory {
            path: root.to_owned(),
        });
    }
    let mut listing = Listing {
        entries: Vec::new(),
        files: Vec::new(),
    };
    // (path on disk, path in the manifest); the root's manifest path is empty.
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_owned(), String::new())];
    while let Some((dir, dir_rel)) = stack.pop() {
        let mut children = Vec::new();
        for child in fs::read_dir(&dir).map_err(io_error(&dir, "read directory"))? {
            children.push(child.map_err(io_error(&dir, "read directory"))?);
        }
        // Sorted so that which error a broken build reports first is deterministic.
        children.sort_by_key(|child| child.file_name());
        for child in children {
            let path = child.path();
            let Some(name) = child.file_name().to_str().map(str::to_owned) else {
                return Err(ScanError::NonUtf8Name { path });
            };
            let rel = if dir_rel.is_empty() {
                name
            } else {
                format!("{dir_rel}/{name}")
            };
            // `DirEntry::file_type` and `DirEntry::metadata` do not follow symlinks.
            let file_type = child
                .file_type()
                .map_err(io_error(&path, "read file type of"))?;
            if file_type.is_dir() {
                listing.entries.push(Entry {
                    path: rel.clone(),
                    kind: EntryKind::Dir,
                });
                stack.push((path, rel));
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(io_error(&path, "read symlink"))?;
                let Some(target) = target.to_str().map(str::to_owned) else {
                    return Err(ScanError::InvalidSymlink {
                        path,
                        target: target.to_string_lossy().into_owned(),
                        problem: SymlinkProblem::NotUtf8,
                    });
                };
                if let Err(problem) = check_symlink_target(&rel, &target) {
                    return Err(ScanError::InvalidSymlink {
                        path,
                        target,
                        problem,
                    });
                }
                listing.entries.push(Entry {
                    path: rel,
                    kind: EntryKind::Symlink { target },
                });
            } else if file_type.is_file() {
                let metadata = child
                    .metadata()
                    .map_err(io_error(&path, "read metadata of"))?;
                listing.files.push(FileToHash {
                    entry_idx: listing.entries.len(),
                    path,
                    size: metadata.len(),
                    modified: metadata.modified().ok(),
                });
                listing.entries.push(Entry {
                    path: rel,
                    kind: EntryKind::File {
                        size: metadata.len(),
                        executable: is_executable(&metadata),
                        blake3: FileHash([0; 32]),
                    },
                });
            } else {
                return Err(ScanError::UnsupportedFileType {
                    path,
                    kind: special_kind(&file_type),
                });
            }
        }
    }
    Ok(listing)
}

#[cfg(unix)]
fn is_executable(metadata: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &Metadata) -> bool {
    false
}

#[cfg(unix)]
fn special_kind(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_file_type: &fs::FileType) -> &'static str {
    "special file"
}

/// Hashes one listed file, checking that it is still the file that was listed.
///
/// Files are read rather than memory-mapped, although a map is what `b3sum` uses: when a
/// mapped file is truncated by another process the reader dies of `SIGBUS`, and a server
/// that re-verifies builds must not die because an admin copies over one. Reading costs
/// about 6% on large cached files (see `docs/manifest.md`).
fn hash_file(file: &FileToHash, reporter: &Reporter<'_>) -> Result<FileHash, ScanError> {
    let io_error = |action: &'static str| {
        move |source| ScanError::Io {
            path: file.path.clone(),
            action,
            source,
        }
    };
    let changed = |detail: String| ScanError::Changed {
        path: file.path.clone(),
        detail,
    };
    let handle = match open_no_follow(&file.path) {
        Ok(handle) => handle,
        Err(error) if is_symlink_loop(&error) => {
            return Err(changed("it was replaced by a symlink".to_owned()));
        }
        Err(error) => return Err(io_error("open")(error)),
    };
    let before = handle.metadata().map_err(io_error("read metadata of"))?;
    if !before.is_file() {
        return Err(changed("it is no longer a regular file".to_owned()));
    }
    make_blocking(&handle).map_err(io_error("configure"))?;
    if before.len() != file.size {
        return Err(changed(format!(
            "{} bytes when listed, {} bytes when opened",
            file.size,
            before.len()
        )));
    }
    // The buffer is taken out of the thread-local rather than borrowed in place because
    // `update_rayon` may run another file's hashing on this thread while it waits.
    let mut buf = PIECE_BUFFER.take();
    buf.resize(PIECE_SIZE, 0);
    let mut hasher = blake3::Hasher::new();
    let mut n_read = 0u64;
    // Only the listed size is read; growth shows in the `fstat` after hashing, which saves
    // a read call per file to find the end.
    while n_read < file.size {
        let want = (file.size - n_read).min(PIECE_SIZE as u64) as usize;
        let filled = read_up_to(&handle, &mut buf[..want]).map_err(io_error("read"))?;
        if filled == 0 {
            break;
        }
        if file.size >= PARALLEL_MIN_SIZE {
            hasher.update_rayon(&buf[..filled]);
        } else {
            hasher.update(&buf[..filled]);
        }
        n_read += filled as u64;
        reporter.add(filled as u64);
    }
    PIECE_BUFFER.set(buf);
    if n_read != file.size {
        return Err(changed(format!(
            "{} bytes when listed, {n_read} bytes read",
            file.size
        )));
    }
    let after = handle.metadata().map_err(io_error("read metadata of"))?;
    if after.len() != file.size {
        return Err(changed(format!(
            "{} bytes when listed, {} bytes after hashing",
            file.size,
            after.len()
        )));
    }
    if after.modified().ok() != file.modified {
        return Err(changed("its modification time changed".to_owned()));
    }
    Ok(FileHash(*hasher.finalize().as_bytes()))
}

thread_local! {
    /// One read buffer per thread, kept across files so small files cost no allocation.
    static PIECE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Reads until `buf` is full or the file ends; returns the number of bytes read.
fn read_up_to(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Opens a file for reading without following a symlink that replaced it since the
/// listing, and without blocking if a fifo did.
fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Clears the `O_NONBLOCK` that `open_no_follow` set, now that the file is known to be
/// regular: some file systems (FUSE, old mandatory locks) can answer `EAGAIN` to a
/// non-blocking read even of a regular file.
#[cfg(unix)]
fn make_blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fcntl(F_SETFL)` on a descriptor we own. The only status flag that
    // `open_no_follow` set is `O_NONBLOCK`, so setting none clears exactly that.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_blocking(_file: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn is_symlink_loop(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_loop(_error: &io::Error) -> bool {
    false
}

/// Forwards hashing progress to the caller's callback, throttled, in order, one call at
/// a time.
struct Reporter<'a> {
    callback: &'a (dyn Fn(u64, u64) + Sync),
    total: u64,
    /// Report again once this many more bytes are done.
    step: u64,
    /// (bytes done, bytes done at the last report). The lock is held while the callback
    /// runs, which is what keeps reports monotonic and never concurrent.
    state: Mutex<(u64, u64)>,
}

impl<'a> Reporter<'a> {
    fn new(total: u64, callback: &'a (dyn Fn(u64, u64) + Sync)) -> Self {
        Reporter {
            callback,
            total,
            step: (total / 256).max(1024 * 1024),
            state: Mutex::new((0, 0)),
        }
    }

    fn start(&self) {
        (self.callback)(0, self.total);
    }

    fn add(&self, n_bytes: u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.0 += n_bytes;
        if state.0 - state.1 >= self.step && state.0 < self.total {
            state.1 = state.0;
            (self.callback)(state.0, self.total);
        }
    }

    fn finish(&self) {
        let _state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        (self.callback)(self.total, self.total);
    }
}

/// A file's size, executable bit and hash, as a manifest records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub(crate) size: u64,
    pub(crate) executable: bool,
    pub(crate) hash: FileHash,
}

/// The files of a manifest by path.
pub(crate) fn files_by_path(manifest: &Manifest) -> HashMap<&str, FileInfo> {
    manifest
        .entries
        .iter()
        .filter_map(|entry| match entry.kind {
            EntryKind::File {
                size,
                executable,
                blake3,
            } => Some((
                entry.path.as_str(),
                FileInfo {
                    size,
                    executable,
                    hash: blake3,
                },
            )),
            _ => None,
        })
        .collect()
}

/// The permission bits Mist gives a file: the manifest records only the executable bit.
pub(crate) fn mode_for(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn file(path: &str, size: u64, executable: bool, byte: u8) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::File {
                size,
                executable,
                blake3: FileHash([byte; 32]),
            },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Dir,
        }
    }

    fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            path: path.to_owned(),
            kind: EntryKind::Symlink {
                target: target.to_owned(),
            },
        }
    }

    /// Reads a "mist-tree-v1" encoding back into entries. That such a decoder exists, and
    /// inverts the encoding, is what makes the encoding injective.
    fn decode(mut bytes: &[u8]) -> Vec<Entry> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> &'a [u8] {
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            head
        }
        fn take_u64(bytes: &mut &[u8]) -> u64 {
            u64::from_le_bytes(take(bytes, 8).try_into().unwrap())
        }
        fn take_string(bytes: &mut &[u8]) -> String {
            let len = take_u64(bytes) as usize;
            String::from_utf8(take(bytes, len).to_vec()).unwrap()
        }
        assert_eq!(take(&mut bytes, TREE_HEADER.len()), TREE_HEADER);
        let n_entries = take_u64(&mut bytes);
        let mut entries = Vec::new();
        for _ in 0..n_entries {
            let tag = take(&mut bytes, 1)[0];
            let path = take_string(&mut bytes);
            let kind = match tag {
                b'f' => EntryKind::File {
                    size: take_u64(&mut bytes),
                    executable: match take(&mut bytes, 1)[0] {
                        0 => false,
                        1 => true,
                        other => panic!("bad executable flag {other}"),
                    },
                    blake3: FileHash(take(&mut bytes, 32).try_into().unwrap()),
                },
                b'l' => EntryKind::Symlink {
                    target: take_string(&mut bytes),
                },
                b'd' => EntryKind::Dir,
                other => panic!("bad tag {other}"),
            };
            entries.push(Entry { path, kind });
        }
        assert!(bytes.is_empty(), "trailing bytes");
        entries
    }

    fn arbitrary_entry() -> impl Strategy<Value = Entry> {
        // Short strings over a small alphabet, so that prefixes and near-collisions (a
        // path that ends where another begins) are common.
        let text = r"[ab/.\\é0]{0,6}";
        let kind = prop_oneof![
            (any::<u64>(), any::<bool>(), any::<[u8; 32]>()).prop_map(
                |(size, executable, hash)| EntryKind::File {
                    size,
                    executable,
                    blake3: FileHash(hash),
                }
            ),
            text.prop_map(|target| EntryKind::Symlink { target }),
            Just(EntryKind::Dir),
        ];
        (text, kind).prop_map(|(path, kind)| Entry { path, kind })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any list of entries, well formed or not, encodes to bytes that decode back to
        /// the same entries in path order: the encoding loses nothing.
        #[test]
        fn encoding_is_injective(entries in prop::collection::vec(arbitrary_entry(), 0..8)) {
            let manifest = Manifest { entries };
            let mut sorted = manifest.entries.clone();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            prop_assert_eq!(decode(&manifest.canonical_encoding()), sorted);
        }

        /// Parsing what `Display` prints gives back the same value, for both hash types.
        #[test]
        fn hash_text_round_trips(bytes in any::<[u8; 32]>()) {
            let hash = FileHash(bytes);
            prop_assert_eq!(hash.to_string().parse::<FileHash>(), Ok(hash));
            let digest = TreeDigest(bytes);
            prop_assert_eq!(digest.to_string().parse::<TreeDigest>(), Ok(digest));
        }
    }

    /// Pins the documented example in `docs/manifest.md` byte for byte.
    #[test]
    fn canonical_encoding_matches_the_documented_example() {
        let manifest = Manifest {
            entries: vec![
                dir("bin"),
                file("bin/game", 5, true, 0xab),
                symlink("lib", "bin"),
            ],
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"mist-tree-v1\0");
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.push(b'd');
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"bin");
        expected.push(b'f');
        expected.extend_from_slice(&8u64.to_le_bytes());
        expected.extend_from_slice(b"bin/game");
        expected.extend_from_slice(&5u64.to_le_bytes());
        expected.push(1);
        expected.extend_from_slice(&[0xab; 32]);
        expected.push(b'l');
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"lib");
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"bin");
        assert_eq!(manifest.canonical_encoding(), expected);
        assert_eq!(
            manifest.tree_digest().to_string(),
            "blake3:4d287f31e44909f359e8b6acd10ef4eadf79cada0108760d99970a0825be4a06"
        );
    }

    #[test]
    fn empty_manifest_encoding() {
        let manifest = Manifest {
            entries: Vec::new(),
        };
        assert_eq!(
            manifest.canonical_encoding(),
            b"mist-tree-v1\0\0\0\0\0\0\0\0\0"
        );
    }

    #[test]
    fn tree_digest_ignores_entry_order() {
        let sorted = Manifest {
            entries: vec![dir("a"), file("a/x", 1, false, 1), file("b", 2, true, 2)],
        };
        let mut shuffled = sorted.clone();
        shuffled.entries.reverse();
        assert_eq!(sorted.tree_digest(), shuffled.tree_digest());
    }

    /// Moving a byte between the path and the symlink target must not collide, which is
    /// what the length prefixes are for.
    #[test]
    fn length_prefixes_separate_path_and_target() {
        let one = Manifest {
            entries: vec![symlink("ab", "c")],
        };
        let two = Manifest {
            entries: vec![symlink("a", "bc")],
        };
        assert_ne!(one.tree_digest(), two.tree_digest());
    }

    #[test]
    fn symlink_targets() {
        let cases: &[(&str, &str, Result<(), SymlinkProblem>)] = &[
            ("l", "x", Ok(())),
            ("l", ".", Ok(())),
            ("l", "./a//b/", Ok(())),
            ("a/l", "..", Ok(())),
            ("a/b/l", "../../x/y", Ok(())),
            ("a/l", "../x", Ok(())),
            ("l", "..", Err(SymlinkProblem::Escapes)),
            ("a/l", "../../etc", Err(SymlinkProblem::Escapes)),
            ("a/l", "./../..", Err(SymlinkProblem::Escapes)),
            ("l", "/etc/passwd", Err(SymlinkProblem::Absolute)),
            ("l", "", Err(SymlinkProblem::Empty)),
            ("a/l", "x/..", Err(SymlinkProblem::DotDotAfterName)),
            ("a/l", "s/../..", Err(SymlinkProblem::DotDotAfterName)),
            ("l", "a\0b", Err(SymlinkProblem::ContainsNul)),
        ];
        for (link, target, expected) in cases {
            assert_eq!(
                check_symlink_target(link, target),
                *expected,
                "{link} -> {target}"
            );
        }
    }

    #[test]
    fn paths() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("a/b.txt", true),
            ("a b/ü", true),
            ("...", true),
            ("", false),
            ("/a", false),
            ("a/", false),
            ("a//b", false),
            ("./a", false),
            ("a/./b", false),
            ("a/..", false),
            ("a\0b", false),
            ("a\\..\\..\\x", false),
        ];
        for (path, ok) in cases {
            assert_eq!(check_path(path).is_ok(), *ok, "{path:?}");
        }
    }

    #[test]
    fn reporter_is_monotonic_and_ends_at_total() {
        let calls = Mutex::new(Vec::new());
        let callback = |done, total| calls.lock().unwrap().push((done, total));
        let total = 10 * 1024 * 1024;
        let reporter = Reporter::new(total, &callback);
        reporter.start();
        for _ in 0..(total / 4096) {
            reporter.add(4096);
        }
        reporter.finish();
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.first(), Some(&(0, total)));
        assert_eq!(calls.last(), Some(&(total, total)));
        assert!(calls.len() > 2 && calls.len() < 20, "{calls:?}");
        assert!(calls.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    }
}
