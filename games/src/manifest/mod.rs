//! Build manifests: what is in a game build, and one digest that names it.
//!
//! [`scan`](crate::scan::scan) walks a build directory and returns a [`Manifest`]: every
//! directory, file and symlink under the root, sorted by path, with each file's size,
//! executable bit and BLAKE3 hash. [`Manifest::tree_digest`] condenses a manifest into a
//! [`TreeDigest`] (`blake3:<hex>`) over a canonical, versioned byte encoding;
//! `docs/manifest.md` defines that encoding byte by byte, and any change to it must bump the
//! version in its header.
//!
//! A `Manifest` from a scan or from deserialization is well formed: scanning only builds
//! valid ones and deserialization runs [`Manifest::validate`], so paths and symlink
//! targets from any input are relative, normalized and confined to the build root. Code
//! that builds a `Manifest` by hand should call `validate` before trusting it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

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
        self.files().map(|(_, file)| file.size).sum()
    }

    /// The number of regular files (directories and symlinks not counted).
    pub fn n_files(&self) -> usize {
        self.files().count()
    }

    /// Checks that the manifest is well formed: sorted strictly by path, every path
    /// normalized and relative, every parent recorded as a directory, every symlink target
    /// confined to the root. Deserialization calls this, and [`scan`] output passes it.
    ///
    /// [`scan`]: crate::scan::scan
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

    /// The regular files, in entry order, each with its size, executable bit and hash.
    pub(crate) fn files(&self) -> impl Iterator<Item = (&Entry, FileInfo)> {
        self.entries.iter().filter_map(|entry| match entry.kind {
            EntryKind::File {
                size,
                executable,
                blake3,
            } => Some((
                entry,
                FileInfo {
                    size,
                    executable,
                    hash: blake3,
                },
            )),
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
        .files()
        .map(|(entry, file)| (entry.path.as_str(), file))
        .collect()
}

/// The permission bits Mist gives a file: the manifest records only the executable bit.
pub(crate) fn mode_for(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
}

#[cfg(test)]
pub(crate) mod tests;
