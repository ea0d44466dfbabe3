//! Tree deltas: one package that turns a whole build into its next version.
//!
//! [`create`] compares two build folders and writes a package; [`Package`] reads one back,
//! checking everything it holds before any of it is used; [`apply_to_dir`] rebuilds the new
//! version into a fresh folder (what `mistpipe delta apply` and [`crate::replay`] do), and
//! [`crate::install::apply_delta`] applies it in place to a friend's install.
//!
//! Per target file the package says one of: unchanged (nothing stored), `mode` (same
//! content, executable bit flipped), `copy` (the content exists in the old version under
//! some path: renames, moves and duplicates cost nothing), `patch` (a
//! [file delta](mist_delta) against the best old file: the same path, else a file of
//! the same name elsewhere, else one with the same extension and the closest size) or `add`
//! (the file compressed alone).
//!
//! The index does not hold the manifests: it holds the target manifest as a difference from
//! the source manifest, so its size follows the change, not the tree. Besides the operations
//! (which carry the new files' entries) it lists the removed paths and the new directories
//! and new or changed symlinks. Applying therefore needs the source manifest from the caller
//! (a client has the manifest of the version it runs; `mistpipe` scans the old folder):
//! [`Package::target_manifest`] checks it against the header's source digest, rebuilds the
//! target manifest as source − removed + changed, validates it and checks it against the
//! header's target digest before anything is written.
//!
//! The package is a fixed header, a zstd-compressed JSON index, then the file deltas
//! concatenated in index order; `docs/delta.md` ("Tree delta") specifies it byte by byte.
//! Every piece verifies on its own: the header has a checksum and the BLAKE3 of the index,
//! the index gives the `len` of each file delta (they lie end to end) and the target size
//! and hash of each file, and each file delta carries its own checksum and the hashes of its
//! input and output, which must match the source manifest's entry for its base and the
//! target entry. A client that fetched only the index and some of the file deltas can check
//! each of them.
//!
//! The same inputs and options give the same bytes: operations are chosen and written in
//! path order, whatever order the parallel diffs finish in.
//!
//! Every path in an index is untrusted: [`check_untrusted_path`] refuses absolute paths,
//! `..`, `.` and empty components and backslashes, and writing never follows a symlink.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::manifest::{Entry, EntryKind, FileHash, Manifest, ScanError, TreeDigest};
use crate::parallel::{Budget, run_parallel};
use mist_delta::decode;
use mist_delta::encode::{self, DiffOptions};
use mist_delta::format::{self as file_format, DeltaError, Method};

/// The first eight bytes of every tree delta.
pub const MAGIC: &[u8; 8] = b"MISTTDLT";
/// The package format version this code writes. Version 1 held both manifests in full;
/// version 2 holds the target manifest as a difference from the source manifest; version 3
/// lets small files share one file delta (the index's `blob` field).
pub const FORMAT_VERSION: u8 = 3;
/// The oldest format version this code reads: a version 2 package is a version 3 package
/// that shares no file delta.
pub const MIN_FORMAT_VERSION: u8 = 2;
/// The length of the fixed header in bytes.
pub const HEADER_LEN: usize = 164;
/// The largest index (compressed or not) a reader accepts: an index changing a million
/// files is about 200 MB of JSON.
pub const MAX_INDEX_LEN: u64 = 1 << 30;

/// Bytes of the header covered by its checksum.
const HEADER_CHECKED_LEN: usize = HEADER_LEN - 32;
/// The zstd level of the index; the index is small, so the strongest common level is cheap.
const INDEX_ZSTD_LEVEL: i32 = 19;

/// The fixed-size start of a package: how long its parts are and what it turns into what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes of the stored (compressed) index.
    pub index_len: u64,
    /// Bytes of the index JSON once decompressed.
    pub index_raw_len: u64,
    /// Bytes of the body: every file delta, concatenated.
    pub body_len: u64,
    /// The tree digest of the version the delta applies to.
    pub source: TreeDigest,
    /// The tree digest of the version the delta produces.
    pub target: TreeDigest,
    /// BLAKE3 of the stored index bytes.
    pub index_hash: [u8; 32],
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Index", from = "wire::Index")]
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

/// The JSON shapes of the index: what is derivable is left out (file delta offsets, a
/// `patch` base equal to its path, a false executable bit).
mod wire {
    use serde::{Deserialize, Serialize};

    use crate::manifest::FileHash;

    #[derive(Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(super) struct Index {
        removed: Vec<String>,
        dirs: Vec<String>,
        symlinks: Vec<super::Symlink>,
        ops: Vec<Op>,
    }

    #[derive(Clone, Serialize, Deserialize)]
    #[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
    enum Op {
        Copy {
            path: String,
            from: String,
            #[serde(default, skip_serializing_if = "is_false")]
            executable: bool,
        },
        Patch {
            path: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            base: Option<String>,
            size: u64,
            #[serde(default, skip_serializing_if = "is_false")]
            executable: bool,
            blake3: FileHash,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            len: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            blob: Option<u64>,
        },
        Add {
            path: String,
            size: u64,
            #[serde(default, skip_serializing_if = "is_false")]
            executable: bool,
            blake3: FileHash,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            len: Option<u64>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            blob: Option<u64>,
        },
        Mode {
            path: String,
        },
    }

    /// Where a payload operation's file delta is: `len` starts the next blob of the body;
    /// `blob` names an earlier one (counting blobs from 0 in body order) that this file
    /// shares with the files before it. Exactly one of the two is given.
    struct Blob {
        len: Option<u64>,
        blob: Option<u64>,
    }

    fn is_false(value: &bool) -> bool {
        !*value
    }

    /// Numbers the blobs of an index in body order, for writing.
    #[derive(Default)]
    struct Numbering {
        starts: std::collections::HashMap<u64, u64>,
    }

    impl Numbering {
        fn blob(&mut self, offset: u64, len: u64) -> Blob {
            let next = self.starts.len() as u64;
            match self.starts.entry(offset) {
                std::collections::hash_map::Entry::Occupied(number) => Blob {
                    len: None,
                    blob: Some(*number.get()),
                },
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(next);
                    Blob {
                        len: Some(len),
                        blob: None,
                    }
                }
            }
        }
    }

    /// Places the blobs of an index while reading it: each `len` starts a blob where the
    /// one before ends. A reference to a blob that does not exist, or both or neither of
    /// `len` and `blob`, gives an impossible range that validation refuses.
    #[derive(Default)]
    struct Layout {
        blobs: Vec<(u64, u64)>,
        end: u64,
    }

    impl Layout {
        fn place(&mut self, blob: Blob) -> (u64, u64) {
            match (blob.len, blob.blob) {
                (Some(len), None) => {
                    let at = self.end;
                    self.end = self.end.saturating_add(len);
                    self.blobs.push((at, len));
                    (at, len)
                }
                (None, Some(number)) => usize::try_from(number)
                    .ok()
                    .and_then(|number| self.blobs.get(number).copied())
                    .unwrap_or((u64::MAX, 0)),
                _ => (u64::MAX, 0),
            }
        }
    }

    impl From<super::Index> for Index {
        fn from(index: super::Index) -> Index {
            let mut numbering = Numbering::default();
            let ops = index
                .ops
                .into_iter()
                .map(|op| match op {
                    super::Op::Copy {
                        path,
                        from,
                        executable,
                    } => Op::Copy {
                        path,
                        from,
                        executable,
                    },
                    super::Op::Patch {
                        path,
                        base,
                        size,
                        executable,
                        blake3,
                        offset,
                        len,
                    } => {
                        let Blob { len, blob } = numbering.blob(offset, len);
                        Op::Patch {
                            base: (base != path).then_some(base),
                            path,
                            size,
                            executable,
                            blake3,
                            len,
                            blob,
                        }
                    }
                    super::Op::Add {
                        path,
                        size,
                        executable,
                        blake3,
                        offset,
                        len,
                    } => {
                        let Blob { len, blob } = numbering.blob(offset, len);
                        Op::Add {
                            path,
                            size,
                            executable,
                            blake3,
                            len,
                            blob,
                        }
                    }
                    super::Op::Mode { path } => Op::Mode { path },
                })
                .collect();
            Index {
                removed: index.removed,
                dirs: index.dirs,
                symlinks: index.symlinks,
                ops,
            }
        }
    }

    /// Fills in what the JSON leaves out; offsets that overflow saturate, and validation
    /// refuses them.
    impl From<Index> for super::Index {
        fn from(index: Index) -> super::Index {
            let mut layout = Layout::default();
            let ops = index
                .ops
                .into_iter()
                .map(|op| match op {
                    Op::Copy {
                        path,
                        from,
                        executable,
                    } => super::Op::Copy {
                        path,
                        from,
                        executable,
                    },
                    Op::Patch {
                        path,
                        base,
                        size,
                        executable,
                        blake3,
                        len,
                        blob,
                    } => {
                        let (offset, len) = layout.place(Blob { len, blob });
                        super::Op::Patch {
                            base: base.unwrap_or_else(|| path.clone()),
                            path,
                            size,
                            executable,
                            blake3,
                            offset,
                            len,
                        }
                    }
                    Op::Add {
                        path,
                        size,
                        executable,
                        blake3,
                        len,
                        blob,
                    } => {
                        let (offset, len) = layout.place(Blob { len, blob });
                        super::Op::Add {
                            path,
                            size,
                            executable,
                            blake3,
                            offset,
                            len,
                        }
                    }
                    Op::Mode { path } => super::Op::Mode { path },
                })
                .collect();
            super::Index {
                removed: index.removed,
                dirs: index.dirs,
                symlinks: index.symlinks,
                ops,
            }
        }
    }
}

/// Sizes per kind of operation, for `--stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Target files taken as they are.
    pub unchanged: KindStats,
    /// Target files whose content is another old file (renamed, moved, copied).
    pub copied: KindStats,
    /// Target files made by a file delta against an old file.
    pub patched: KindStats,
    /// Target files stored compressed on their own.
    pub added: KindStats,
    /// Source files whose path holds no file in the target; `bytes` counts source bytes.
    pub deleted: KindStats,
    /// Target files whose executable bit changed and nothing else.
    pub mode: KindStats,
    /// Bytes of the stored (compressed) index.
    pub index_bytes: u64,
    /// Bytes of the index JSON once decompressed.
    pub index_raw_bytes: u64,
    /// Bytes of the whole package.
    pub package_bytes: u64,
}

/// One line of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// How many files.
    pub files: u64,
    /// Their size in the target (in the source, for deleted files).
    pub bytes: u64,
    /// Bytes the package stores for them.
    pub stored: u64,
}

/// Settings for [`create`].
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// How each file delta is made. Its LZMA preset is lowered per file to the smallest one
    /// whose dictionary covers the file (presets 6–9 differ only in dictionary size), which
    /// gives the same compression with far less memory.
    pub file: DiffOptions,
    /// The most memory all diffs running at once may use, in bytes; large files wait for
    /// each other rather than run together.
    pub memory_budget: u64,
    /// Diff threads; 0 means one per CPU.
    pub threads: usize,
    /// The most bytes (bases plus targets) of small files diffed together as one shared
    /// file delta, where that is smaller than their own; 0 gives every file its own. A
    /// client rebuilding any of them holds the whole group in memory. At most [`GROUP_MAX`].
    pub group_max: u64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            file: DiffOptions::default(),
            memory_budget: 4 << 30,
            threads: 0,
            group_max: GROUP_MAX,
        }
    }
}

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

/// Why a tree delta could not be made, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum TreeDeltaError {
    /// Not a Mist tree delta at all.
    #[error("not a Mist tree delta (bad magic)")]
    BadMagic,
    /// Made by a newer Mist.
    #[error(
        "tree delta format version {0} is not supported (this Mist reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    /// Damaged: truncated, bit-flipped or inconsistent.
    #[error("corrupt tree delta: {0}")]
    Corrupt(String),
    /// A path in the index could escape the root or means different things on different
    /// systems.
    #[error("unsafe path {path:?} in the tree delta: {reason}")]
    UnsafePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A build holds a path that a tree delta cannot carry safely.
    #[error("cannot make a tree delta of {path:?}: {reason}")]
    UnsupportedPath {
        /// The path in the build.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// One file's delta failed.
    #[error("file delta for {path:?}: {source}")]
    FileDelta {
        /// The target path.
        path: String,
        /// What went wrong.
        #[source]
        source: DeltaError,
    },
    /// The old tree is not the version the delta was made from.
    #[error("the old tree does not match the delta: {0}")]
    SourceMismatch(String),
    /// The source manifest given to apply the delta is not the one it was made from.
    #[error(
        "the delta applies to version {expected}, but the source manifest given is version {found}"
    )]
    WrongSource {
        /// The source digest in the package's header.
        expected: TreeDigest,
        /// The digest of the manifest given.
        found: TreeDigest,
    },
    /// A build changed while the delta was made from it.
    #[error("{} changed while the delta was made; is the build still being written?", path.display())]
    Changed {
        /// The file on disk.
        path: PathBuf,
    },
    /// Walking into the old or new tree would follow a symlink.
    #[error("refusing to follow the symlink or non-directory at {path:?} in {}", root.display())]
    Symlink {
        /// The tree's root.
        root: PathBuf,
        /// The path inside it that is not a real directory.
        path: String,
    },
    /// The output path is taken.
    #[error("{} already exists; choose a new output path", path.display())]
    OutputExists {
        /// The output.
        path: PathBuf,
    },
    /// Not enough disk space for the output.
    #[error("not enough free space in {}: {needed} bytes needed, {available} available", dir.display())]
    NoSpace {
        /// Where the output goes.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// Scanning a build failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// An I/O operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Random access to the bytes of a package: a file, or bytes in memory.
pub trait ReadAt: Send + Sync {
    /// Fills `buf` from `offset`, failing if the data ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The total length in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    self,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                done += n;
            }
            Ok(())
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= self.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// An opened package whose header and index have been checked; file deltas are read on
/// demand and checked when used.
pub struct Package {
    header: Header,
    index: Index,
    data: Box<dyn ReadAt>,
    /// What the package was read from, for error messages.
    origin: PathBuf,
    /// The operations of each shared file delta, by its offset, in index order.
    groups: HashMap<u64, Vec<usize>>,
    /// Decoded shared file deltas that members still need.
    slots: Mutex<HashMap<u64, std::sync::Arc<GroupSlot>>>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("header", &self.header)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Checks that a path from untrusted input names something strictly inside a root on every
/// system: relative, `/`-separated, no empty, `.` or `..` component, no backslash (a
/// separator on Windows) and no NUL.
pub fn check_untrusted_path(path: &str) -> Result<(), &'static str> {
    crate::manifest::check_path(path)
}

impl Header {
    /// Parses and checks the first [`HEADER_LEN`] bytes of a package (`bytes` may be longer
    /// or, for a clear error, shorter).
    pub fn parse(bytes: &[u8]) -> Result<Header, TreeDeltaError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(TreeDeltaError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(corrupt("truncated header"));
        }
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&bytes[8]) {
            return Err(TreeDeltaError::UnsupportedVersion(bytes[8]));
        }
        if blake3::hash(&bytes[..HEADER_CHECKED_LEN]).as_bytes()
            != &bytes[HEADER_CHECKED_LEN..HEADER_LEN]
        {
            return Err(corrupt("header checksum mismatch"));
        }
        if bytes[9..12] != [0, 0, 0] {
            return Err(corrupt("reserved header bytes are set"));
        }
        let header = Header {
            index_len: le_u64(&bytes[12..20]),
            index_raw_len: le_u64(&bytes[20..28]),
            body_len: le_u64(&bytes[28..36]),
            source: TreeDigest(bytes[36..68].try_into().expect("32 bytes")),
            target: TreeDigest(bytes[68..100].try_into().expect("32 bytes")),
            index_hash: bytes[100..132].try_into().expect("32 bytes"),
        };
        if header.index_len > MAX_INDEX_LEN || header.index_raw_len > MAX_INDEX_LEN {
            return Err(corrupt("the index is larger than any index Mist writes"));
        }
        (HEADER_LEN as u64 + header.index_len)
            .checked_add(header.body_len)
            .ok_or_else(|| corrupt("the body length overflows"))?;
        Ok(header)
    }

    /// The length of the whole package.
    pub fn package_len(&self) -> u64 {
        HEADER_LEN as u64 + self.index_len + self.body_len
    }

    /// Where the stored index lies in the package.
    pub fn index_range(&self) -> Range<u64> {
        HEADER_LEN as u64..HEADER_LEN as u64 + self.index_len
    }

    /// Where the body starts in the package; op offsets count from here.
    pub fn body_start(&self) -> u64 {
        HEADER_LEN as u64 + self.index_len
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8] = FORMAT_VERSION;
        out[12..20].copy_from_slice(&self.index_len.to_le_bytes());
        out[20..28].copy_from_slice(&self.index_raw_len.to_le_bytes());
        out[28..36].copy_from_slice(&self.body_len.to_le_bytes());
        out[36..68].copy_from_slice(&self.source.0);
        out[68..100].copy_from_slice(&self.target.0);
        out[100..132].copy_from_slice(&self.index_hash);
        let checksum = blake3::hash(&out[..HEADER_CHECKED_LEN]);
        out[HEADER_CHECKED_LEN..].copy_from_slice(checksum.as_bytes());
        out
    }
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
    pub fn target_from(&self, source: &Manifest) -> Result<Manifest, TreeDeltaError> {
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

    /// What the package holds, per kind of operation, given both manifests.
    fn stats(&self, header: &Header, source: &Manifest, target: &Manifest) -> Stats {
        let source_files = files_by_path(source);
        let target_files = files_by_path(target);
        let ops: HashMap<&str, &Op> = self.ops.iter().map(|op| (op.path(), op)).collect();
        // A shared file delta's bytes are split among its files by their target sizes.
        let mut shared: HashMap<u64, (u64, u64)> = HashMap::new();
        for op in &self.ops {
            if let Op::Patch { offset, size, .. } | Op::Add { offset, size, .. } = op {
                shared.entry(*offset).or_default().0 += size;
            }
        }
        let mut stored_of = |offset: u64, len: u64, size: u64| {
            let (total, given) = shared.get_mut(&offset).expect("every blob was counted");
            let part = if *total == 0 {
                0
            } else {
                (u128::from(len - *given) * u128::from(size) / u128::from(*total)) as u64
            };
            *total -= size;
            // The last member takes the rounding remainder.
            let part = if *total == 0 { len - *given } else { part };
            *given += part;
            part
        };
        let mut stats = Stats {
            index_bytes: header.index_len,
            index_raw_bytes: header.index_raw_len,
            package_bytes: header.package_len(),
            ..Stats::default()
        };
        for entry in &target.entries {
            let Some(file) = target_files.get(entry.path.as_str()) else {
                continue;
            };
            let (kind, stored) = match ops.get(entry.path.as_str()) {
                None => (&mut stats.unchanged, 0),
                Some(Op::Copy { .. }) => (&mut stats.copied, 0),
                Some(Op::Patch {
                    offset, len, size, ..
                }) => (&mut stats.patched, stored_of(*offset, *len, *size)),
                Some(Op::Add {
                    offset, len, size, ..
                }) => (&mut stats.added, stored_of(*offset, *len, *size)),
                Some(Op::Mode { .. }) => (&mut stats.mode, 0),
            };
            kind.files += 1;
            kind.bytes += file.size;
            kind.stored += stored;
        }
        for entry in &source.entries {
            if let Some(file) = source_files.get(entry.path.as_str())
                && !target_files.contains_key(entry.path.as_str())
            {
                stats.deleted.files += 1;
                stats.deleted.bytes += file.size;
            }
        }
        stats
    }

    /// The operation for `path`, if the file is not unchanged.
    pub fn op(&self, path: &str) -> Option<&Op> {
        self.ops
            .binary_search_by(|op| op.path().cmp(path))
            .ok()
            .map(|idx| &self.ops[idx])
    }
}

fn symlink_reason(problem: crate::manifest::SymlinkProblem) -> &'static str {
    use crate::manifest::SymlinkProblem;
    match problem {
        SymlinkProblem::Empty => "the symlink target is empty",
        SymlinkProblem::Absolute => "the symlink target is absolute",
        SymlinkProblem::Escapes => "the symlink target points outside the build root",
        SymlinkProblem::DotDotAfterName => "the symlink target has '..' after a name",
        SymlinkProblem::NotUtf8 => "the symlink target is not valid UTF-8",
        SymlinkProblem::ContainsNul => "the symlink target contains a NUL byte",
    }
}

fn check_path_field(path: &str) -> Result<(), TreeDeltaError> {
    check_untrusted_path(path).map_err(|reason| TreeDeltaError::UnsafePath {
        path: path.to_owned(),
        reason,
    })
}

impl Package {
    /// Opens a package file and checks its header and index.
    pub fn open(path: &Path) -> Result<Package, TreeDeltaError> {
        let file = File::open(path).map_err(io_error(path, "open"))?;
        Package::read(Box::new(file), path)
    }

    /// Reads a package held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Package, TreeDeltaError> {
        Package::read(Box::new(bytes), Path::new("<memory>"))
    }

    /// Reads and checks the header and index of the package in `data`; `origin` names it in
    /// errors.
    pub fn read(data: Box<dyn ReadAt>, origin: &Path) -> Result<Package, TreeDeltaError> {
        let size = data.size().map_err(io_error(origin, "read"))?;
        let mut head = vec![0u8; (size.min(HEADER_LEN as u64)) as usize];
        data.read_exact_at(&mut head, 0)
            .map_err(io_error(origin, "read"))?;
        let header = Header::parse(&head)?;
        if size != header.package_len() {
            return Err(TreeDeltaError::Corrupt(format!(
                "the package is {size} bytes but its header says {} (truncated or extended)",
                header.package_len()
            )));
        }
        let mut stored = vec![0u8; header.index_len as usize];
        data.read_exact_at(&mut stored, header.index_range().start)
            .map_err(io_error(origin, "read"))?;
        let index = Index::from_stored(&header, &stored)?;
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (idx, op) in index.ops.iter().enumerate() {
            if let Some(range) = op.blob_range() {
                groups.entry(range.start).or_default().push(idx);
            }
        }
        groups.retain(|_, members| members.len() > 1);
        Ok(Package {
            header,
            index,
            data,
            origin: origin.to_owned(),
            groups,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The checked index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The target manifest, rebuilt from `source` (the manifest of the version the delta
    /// applies to) and the index.
    ///
    /// Fails with [`TreeDeltaError::WrongSource`] if `source` does not hash to the header's
    /// source digest, and with [`TreeDeltaError::Corrupt`] if the index does not fit the
    /// source (removes or reads a path the source lacks), gives a malformed manifest, or
    /// gives one that does not hash to the header's target digest.
    pub fn target_manifest(&self, source: &Manifest) -> Result<Manifest, TreeDeltaError> {
        self.check_source(source)?;
        let target = self.index.target_from(source)?;
        if target.tree_digest() != self.header.target {
            return Err(corrupt(
                "the target manifest rebuilt from the index does not match the header's target digest",
            ));
        }
        Ok(target)
    }

    /// Checks that `source` is the manifest of the version the delta applies to.
    pub fn check_source(&self, source: &Manifest) -> Result<(), TreeDeltaError> {
        let found = source.tree_digest();
        if found != self.header.source {
            return Err(TreeDeltaError::WrongSource {
                expected: self.header.source,
                found,
            });
        }
        Ok(())
    }

    /// What the package holds, per kind of operation; `source` is the manifest of the
    /// version the delta applies to (see [`Package::target_manifest`]).
    pub fn stats(&self, source: &Manifest) -> Result<Stats, TreeDeltaError> {
        let target = self.target_manifest(source)?;
        Ok(self.index.stats(&self.header, source, &target))
    }

    /// The raw file delta of a payload operation (unchecked; [`Package::rebuild`] checks it).
    pub fn blob(&self, op: &Op) -> Result<Vec<u8>, TreeDeltaError> {
        let Some(range) = op.blob_range() else {
            return Ok(Vec::new());
        };
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| corrupt("a file delta is too large for this machine"))?;
        let mut blob = vec![0u8; len];
        self.data
            .read_exact_at(&mut blob, self.header.body_start() + range.start)
            .map_err(io_error(&self.origin, "read"))?;
        Ok(blob)
    }

    /// The payload operations that share `op`'s file delta, in index order (`op` alone
    /// for a file delta of its own; nothing for `copy` and `mode`).
    ///
    /// Small files are diffed together: their bases, concatenated in index order, are the
    /// old input of one file delta, and their targets, concatenated, its output. They then
    /// share one compression context and may copy from each other's bases.
    pub fn members<'a>(&'a self, op: &'a Op) -> Vec<&'a Op> {
        let Some(range) = op.blob_range() else {
            return Vec::new();
        };
        match self.groups.get(&range.start) {
            Some(members) => members.iter().map(|&idx| &self.index.ops[idx]).collect(),
            None => vec![op],
        }
    }

    /// Rebuilds the target file of a `patch` or `add` operation, checking that its file
    /// delta is the one the manifests promise before decoding it ([`check_blob`]) and the
    /// output after. `read_base(path, size)` gives the content of a source file: the
    /// operation's base, or, for a file delta shared by several files, each member's base.
    ///
    /// `source` is the manifest [`Package::target_manifest`] accepted; only the bases'
    /// entries are looked up in it (its digest is not recomputed per file). A shared file
    /// delta is decoded once; its output is kept until every member has been taken (or the
    /// package is dropped), at most [`GROUP_MAX`] bytes per group.
    pub fn rebuild<E: From<TreeDeltaError>>(
        &self,
        source: &Manifest,
        op: &Op,
        read_base: &ReadBase<'_, E>,
    ) -> Result<Vec<u8>, E> {
        let members = self.members(op);
        let file_error = |source| TreeDeltaError::FileDelta {
            path: op.path().to_owned(),
            source,
        };
        if members.len() <= 1 {
            let blob = self.blob(op)?;
            check_blob(source, &[op], &blob)?;
            let base = match op {
                Op::Patch { base, .. } => read_base(base, base_entry(source, base)?.0)?,
                _ => Vec::new(),
            };
            return Ok(decode::apply(&base, &blob).map_err(file_error)?);
        }
        let offset = op.blob_range().map_or(0, |range| range.start);
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(offset)
            .or_insert_with(|| {
                std::sync::Arc::new(GroupSlot {
                    output: Mutex::new(None),
                    remaining: AtomicUsize::new(members.len()),
                })
            })
            .clone();
        let output = {
            let mut output = slot
                .output
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match &*output {
                Some(done) => std::sync::Arc::clone(done),
                None => {
                    let blob = self.blob(op)?;
                    check_blob(source, &members, &blob)?;
                    let mut bases = Vec::new();
                    for member in &members {
                        if let Op::Patch { base, .. } = member {
                            bases.extend_from_slice(&read_base(base, base_entry(source, base)?.0)?);
                        }
                    }
                    let done =
                        std::sync::Arc::new(decode::apply(&bases, &blob).map_err(file_error)?);
                    *output = Some(std::sync::Arc::clone(&done));
                    done
                }
            }
        };
        let mut start = 0u64;
        for member in &members {
            let (size, hash) = target_of(member);
            if member.path() == op.path() {
                let range = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(start + size).ok())
                    .filter(|(_, end)| *end <= output.len())
                    .ok_or_else(|| corrupt("a shared file delta is shorter than its files"))?;
                let bytes = output[range.0..range.1].to_vec();
                if *blake3::hash(&bytes).as_bytes() != hash.0 {
                    return Err(TreeDeltaError::FileDelta {
                        path: op.path().to_owned(),
                        source: DeltaError::Corrupt(
                            "the rebuilt file does not have the hash the index gives".into(),
                        ),
                    }
                    .into());
                }
                if slot.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.slots
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .remove(&offset);
                }
                return Ok(bytes);
            }
            start += size;
        }
        Err(corrupt("an operation is not a member of its own file delta").into())
    }
}

/// How [`Package::rebuild`] reads a source file: `(path, size)` to its content.
pub type ReadBase<'a, E> = dyn Fn(&str, u64) -> Result<Vec<u8>, E> + 'a;

/// The largest group of small files diffed as one (bases plus targets, in bytes): what a
/// client holds at once to rebuild any of them.
pub const GROUP_MAX: u64 = 32 << 20;

/// The largest file (base plus target, in bytes) that joins a group.
const GROUP_FILE_MAX: u64 = 8 << 20;

/// The decoded output of a shared file delta, while members still need it.
struct GroupSlot {
    output: Mutex<Option<std::sync::Arc<Vec<u8>>>>,
    remaining: AtomicUsize,
}

/// The size and hash of a payload operation's target file.
fn target_of(op: &Op) -> (u64, FileHash) {
    match op {
        Op::Patch { size, blake3, .. } | Op::Add { size, blake3, .. } => (*size, *blake3),
        Op::Copy { .. } | Op::Mode { .. } => (0, FileHash(*blake3::hash(b"").as_bytes())),
    }
}

/// The size and hash of the source file `base`.
fn base_entry(source: &Manifest, base: &str) -> Result<(u64, FileHash), TreeDeltaError> {
    source
        .entries
        .binary_search_by(|entry| entry.path.as_str().cmp(base))
        .ok()
        .and_then(|idx| match source.entries[idx].kind {
            EntryKind::File { size, blake3, .. } => Some((size, blake3)),
            _ => None,
        })
        .ok_or_else(|| TreeDeltaError::Corrupt(format!("{base:?} is not a source file")))
}

/// Checks a fetched file delta against the (already validated) index and the source
/// manifest: its own checksum, and that it turns exactly the source's entries for the bases
/// of `members` (see [`Package::members`]) into exactly their targets. For one file both
/// sizes and hashes are compared; for a shared file delta the sizes of the concatenations
/// (its hashes are checked when it is applied, and each member's output after).
pub fn check_blob(
    source: &Manifest,
    members: &[&Op],
    blob: &[u8],
) -> Result<file_format::Header, TreeDeltaError> {
    let path = members.first().map_or("", |op| op.path());
    let file_header =
        file_format::read_header(blob).map_err(|source| TreeDeltaError::FileDelta {
            path: path.to_owned(),
            source,
        })?;
    let empty = FileHash(*blake3::hash(b"").as_bytes());
    let mut base = (0u64, empty);
    let mut target = (0u64, empty);
    for op in members {
        match op {
            Op::Patch { base: from, .. } => {
                let entry = base_entry(source, from)?;
                base = (base.0 + entry.0, entry.1);
            }
            Op::Add { .. } => {}
            Op::Copy { .. } | Op::Mode { .. } => {
                return Err(TreeDeltaError::Corrupt(format!(
                    "{:?} has no file delta",
                    op.path()
                )));
            }
        }
        let (size, hash) = target_of(op);
        target = (target.0 + size, hash);
    }
    let belongs = if members.len() == 1 {
        (file_header.target_size, FileHash(file_header.target_hash)) == target
            && (file_header.source_size, FileHash(file_header.source_hash)) == base
    } else {
        file_header.target_size == target.0 && file_header.source_size == base.0
    };
    if !belongs {
        return Err(TreeDeltaError::Corrupt(format!(
            "the file delta stored for {path:?} belongs to other files"
        )));
    }
    Ok(file_header)
}

/// Scans both builds and writes a tree delta that turns `old_root` into `new_root`.
///
/// `progress(bytes_done, bytes_total)` counts the new files' bytes as their diffs finish.
/// Returns what the package holds.
pub fn create(
    old_root: &Path,
    new_root: &Path,
    out: &mut dyn Write,
    options: &CreateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Stats, TreeDeltaError> {
    let old = crate::manifest::scan(old_root)?;
    let new = crate::manifest::scan(new_root)?;
    create_from_manifests(
        Build {
            root: old_root,
            manifest: &old,
        },
        Build {
            root: new_root,
            manifest: &new,
        },
        out,
        options,
        progress,
    )
}

/// A build folder and its manifest.
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// The folder.
    pub root: &'a Path,
    /// Its manifest, e.g. from [`crate::manifest::scan`]; files are checked against it as
    /// they are read.
    pub manifest: &'a Manifest,
}

/// Like [`create`], with manifests the caller already has (a server records one per
/// version).
pub fn create_from_manifests(
    old: Build<'_>,
    new: Build<'_>,
    out: &mut dyn Write,
    options: &CreateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Stats, TreeDeltaError> {
    for entry in old.manifest.entries.iter().chain(&new.manifest.entries) {
        check_untrusted_path(&entry.path).map_err(|reason| TreeDeltaError::UnsupportedPath {
            path: entry.path.clone(),
            reason,
        })?;
    }
    let planned = plan(old.manifest, new.manifest);
    let new_files = files_by_path(new.manifest);
    let old_files = files_by_path(old.manifest);

    // Payload jobs, largest first so the long ones start early.
    let mut jobs: Vec<Job<'_>> = planned
        .iter()
        .enumerate()
        .filter_map(|(planned_idx, planned)| {
            let base = match &planned.kind {
                Planned::Patch { base } => Some(base.as_str()),
                Planned::Add => None,
                Planned::Copy { .. } | Planned::Mode => return None,
            };
            let new_size = new_files[planned.path.as_str()].size;
            let base_size = base.map_or(0, |base| old_files[base].size);
            Some(Job {
                planned_idx,
                path: &planned.path,
                base,
                memory: diff_memory(base_size, new_size, &options.file),
                new_size,
            })
        })
        .collect();
    jobs.sort_by(|a, b| {
        b.memory
            .cmp(&a.memory)
            .then_with(|| a.planned_idx.cmp(&b.planned_idx))
    });
    let total: u64 = jobs.iter().map(|job| job.new_size).sum();
    let progress_state = Mutex::new(0u64);
    progress(0, total);

    let spool_file = tempfile::tempfile().map_err(io_error(Path::new("<temp dir>"), "create"))?;
    let spool = Mutex::new((spool_file, 0u64));
    let budget = Budget::new(options.memory_budget);
    let blobs: Vec<(usize, bool, u64, u64)> = run_parallel(&jobs, options.threads, |job| {
        let _memory = budget.acquire(job.memory);
        let new_bytes = read_build_file(new.root, job.path, new_files[job.path])?;
        let base_bytes = match job.base {
            Some(base) => read_build_file(old.root, base, old_files[base])?,
            None => Vec::new(),
        };
        let file_options = tuned(&options.file, job.new_size.max(base_bytes.len() as u64));
        let diff_error = |source| TreeDeltaError::FileDelta {
            path: job.path.to_owned(),
            source,
        };
        let mut blob = encode::diff(&base_bytes, &new_bytes, &file_options).map_err(diff_error)?;
        let mut is_patch = job.base.is_some();
        // A delta that found nothing better than compressing the file alone would still make
        // the client read and check the base; store it as an added file instead.
        if is_patch && file_format::read_header(&blob).map_err(diff_error)?.method == Method::Full {
            blob = encode::diff(&[], &new_bytes, &file_options).map_err(diff_error)?;
            is_patch = false;
        }
        drop((new_bytes, base_bytes));
        let spool_at = {
            let mut spool = spool.lock().unwrap_or_else(|poison| poison.into_inner());
            let at = spool.1;
            spool
                .0
                .write_all(&blob)
                .map_err(io_error(Path::new("<temp file>"), "write"))?;
            spool.1 += blob.len() as u64;
            at
        };
        {
            let mut done = progress_state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            *done += job.new_size;
            progress(*done, total);
        }
        Ok::<_, TreeDeltaError>((job.planned_idx, is_patch, spool_at, blob.len() as u64))
    })?;
    let mut blob_of: HashMap<usize, (bool, u64, u64)> = HashMap::new();
    for (planned_idx, is_patch, spool_at, len) in blobs {
        blob_of.insert(planned_idx, (is_patch, spool_at, len));
    }

    // Small files again, diffed together in groups: one compression context instead of
    // one per file, and matches across files. A group is kept only where it is smaller
    // than its members' own file deltas.
    let groups = plan_groups(
        &planned,
        &blob_of,
        (&old_files, &new_files),
        options.group_max.min(GROUP_MAX),
    );
    let shared = run_parallel(&groups, options.threads, |members| {
        let (mut bases, mut targets) = (Vec::new(), Vec::new());
        for &planned_idx in members {
            let planned = &planned[planned_idx];
            if let (Planned::Patch { base }, (true, _, _)) = (&planned.kind, blob_of[&planned_idx])
            {
                bases.extend(read_build_file(old.root, base, old_files[base.as_str()])?);
            }
            targets.extend(read_build_file(
                new.root,
                &planned.path,
                new_files[planned.path.as_str()],
            )?);
        }
        let _memory = budget.acquire(diff_memory(
            bases.len() as u64,
            targets.len() as u64,
            &options.file,
        ));
        let file_options = tuned(&options.file, bases.len().max(targets.len()) as u64);
        let blob = encode::diff(&bases, &targets, &file_options).map_err(|source| {
            TreeDeltaError::FileDelta {
                path: planned[members[0]].path.clone(),
                source,
            }
        })?;
        let separate: u64 = members.iter().map(|idx| blob_of[idx].2).sum();
        if blob.len() as u64 >= separate {
            return Ok(None);
        }
        let mut spool = spool.lock().unwrap_or_else(|poison| poison.into_inner());
        let at = spool.1;
        spool
            .0
            .write_all(&blob)
            .map_err(io_error(Path::new("<temp file>"), "write"))?;
        spool.1 += blob.len() as u64;
        Ok::<_, TreeDeltaError>(Some((at, blob.len() as u64)))
    })?;
    for (members, shared) in groups.iter().zip(shared) {
        if let Some((spool_at, len)) = shared {
            for idx in members {
                let is_patch = blob_of[idx].0;
                blob_of.insert(*idx, (is_patch, spool_at, len));
            }
        }
    }

    // Lay the file deltas out in index order.
    let mut ops = Vec::with_capacity(planned.len());
    let mut body_parts: Vec<(u64, u64)> = Vec::new();
    let mut placed: HashMap<u64, u64> = HashMap::new();
    let mut offset = 0u64;
    for (planned_idx, planned) in planned.iter().enumerate() {
        let path = planned.path.clone();
        let file = new_files[path.as_str()];
        let op = match &planned.kind {
            Planned::Copy { from } => Op::Copy {
                path,
                from: from.clone(),
                executable: file.executable,
            },
            Planned::Mode => Op::Mode { path },
            Planned::Patch { .. } | Planned::Add => {
                let (is_patch, spool_at, len) = blob_of[&planned_idx];
                let at = match placed.get(&spool_at) {
                    Some(&at) => at,
                    None => {
                        body_parts.push((spool_at, len));
                        placed.insert(spool_at, offset);
                        offset += len;
                        offset - len
                    }
                };
                match &planned.kind {
                    Planned::Patch { base } if is_patch => Op::Patch {
                        path,
                        base: base.clone(),
                        size: file.size,
                        executable: file.executable,
                        blake3: file.hash,
                        offset: at,
                        len,
                    },
                    _ => Op::Add {
                        path,
                        size: file.size,
                        executable: file.executable,
                        blake3: file.hash,
                        offset: at,
                        len,
                    },
                }
            }
        };
        ops.push(op);
    }
    let index = Index {
        ops,
        ..tree_difference(old.manifest, new.manifest)
    };
    debug_assert_eq!(
        index.target_from(old.manifest).ok().as_ref(),
        Some(new.manifest)
    );
    let raw = serde_json::to_vec(&index).expect("an index always serializes");
    let stored = zstd::stream::encode_all(&raw[..], INDEX_ZSTD_LEVEL)
        .map_err(io_error(Path::new("<index>"), "compress"))?;
    let header = Header {
        index_len: stored.len() as u64,
        index_raw_len: raw.len() as u64,
        body_len: offset,
        source: old.manifest.tree_digest(),
        target: new.manifest.tree_digest(),
        index_hash: *blake3::hash(&stored).as_bytes(),
    };
    let output = Path::new("<output>");
    out.write_all(&header.encode())
        .map_err(io_error(output, "write"))?;
    out.write_all(&stored).map_err(io_error(output, "write"))?;
    let mut spool = spool
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
        .0;
    let mut buf = vec![0u8; 1 << 20];
    for (spool_at, len) in body_parts {
        spool
            .seek(SeekFrom::Start(spool_at))
            .map_err(io_error(Path::new("<temp file>"), "seek"))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            spool
                .read_exact(&mut buf[..n])
                .map_err(io_error(Path::new("<temp file>"), "read"))?;
            out.write_all(&buf[..n])
                .map_err(io_error(output, "write"))?;
            left -= n as u64;
        }
    }
    out.flush().map_err(io_error(output, "write"))?;
    Ok(index.stats(&header, old.manifest, new.manifest))
}

/// The index's lists besides the operations: the source paths the target lacks, and the
/// target's directories and symlinks that the source lacks at their path or has otherwise.
fn tree_difference(old: &Manifest, new: &Manifest) -> Index {
    let old_kinds: HashMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let new_paths: HashSet<&str> = new.entries.iter().map(|e| e.path.as_str()).collect();
    let removed = old
        .entries
        .iter()
        .filter(|entry| !new_paths.contains(entry.path.as_str()))
        .map(|entry| entry.path.clone())
        .collect();
    let mut dirs = Vec::new();
    let mut symlinks = Vec::new();
    for entry in &new.entries {
        if old_kinds.get(entry.path.as_str()) == Some(&&entry.kind) {
            continue;
        }
        match &entry.kind {
            EntryKind::Dir => dirs.push(entry.path.clone()),
            EntryKind::Symlink { target } => symlinks.push(Symlink {
                path: entry.path.clone(),
                target: target.clone(),
            }),
            // Files are the operations'.
            EntryKind::File { .. } => {}
        }
    }
    Index {
        removed,
        dirs,
        symlinks,
        ops: Vec::new(),
    }
}

/// One target file as planned, before its file delta exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedOp {
    pub(crate) path: String,
    pub(crate) kind: Planned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    Copy { from: String },
    Patch { base: String },
    Add,
    Mode,
}

/// Decides, per target file in path order, how to make it. Pure and deterministic: ties
/// are broken by path.
pub(crate) fn plan(old: &Manifest, new: &Manifest) -> Vec<PlannedOp> {
    let old_files = files_by_path(old);
    let mut by_hash: HashMap<FileHash, &str> = HashMap::new();
    // Candidates for a base, each list sorted by (size, path).
    let mut by_name: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    let mut by_extension: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for entry in &old.entries {
        let Some(file) = old_files.get(entry.path.as_str()) else {
            continue;
        };
        // Entries are in path order, so the first path with a hash is the smallest.
        by_hash.entry(file.hash).or_insert(&entry.path);
        if file.size == 0 {
            continue;
        }
        let name = file_name(&entry.path);
        by_name
            .entry(name)
            .or_default()
            .push((file.size, &entry.path));
        if let Some(extension) = extension(name) {
            by_extension
                .entry(extension)
                .or_default()
                .push((file.size, &entry.path));
        }
    }
    for list in by_name.values_mut().chain(by_extension.values_mut()) {
        list.sort_unstable();
    }
    let mut planned = Vec::new();
    for entry in &new.entries {
        let EntryKind::File {
            size,
            executable,
            blake3,
        } = entry.kind
        else {
            continue;
        };
        let same_path = old_files.get(entry.path.as_str());
        let kind = match same_path {
            Some(old) if old.hash == blake3 && old.executable == executable => continue,
            Some(old) if old.hash == blake3 => Planned::Mode,
            _ => {
                if let Some(from) = by_hash.get(&blake3) {
                    Planned::Copy {
                        from: (*from).to_owned(),
                    }
                } else if size == 0 {
                    Planned::Add
                } else if same_path.is_some_and(|old| old.size > 0) {
                    Planned::Patch {
                        base: entry.path.clone(),
                    }
                } else {
                    let name = file_name(&entry.path);
                    let similar = by_name
                        .get(name)
                        .and_then(|list| closest(list, size, |_| true))
                        .or_else(|| {
                            let list = by_extension.get(extension(name)?)?;
                            // Files of the same type but very different sizes rarely share
                            // much, and the diff would cost memory for the larger one.
                            closest(list, size, |old_size| {
                                old_size <= size.saturating_mul(4)
                                    && size <= old_size.saturating_mul(4)
                            })
                        });
                    match similar {
                        Some(base) => Planned::Patch {
                            base: base.to_owned(),
                        },
                        None => Planned::Add,
                    }
                }
            }
        };
        planned.push(PlannedOp {
            path: entry.path.clone(),
            kind,
        });
    }
    planned
}

/// The candidate whose size is closest to `size` (the smaller size, then the smaller path,
/// on a tie) among those `accept` allows.
fn closest<'a>(
    list: &[(u64, &'a str)],
    size: u64,
    accept: impl Fn(u64) -> bool,
) -> Option<&'a str> {
    let at = list.partition_point(|(candidate, _)| *candidate < size);
    // The closest sizes are the first one at or above `size` and the last one below; take the
    // smallest path among equal sizes.
    let above = list.get(at).map(|(s, _)| *s);
    let below = at.checked_sub(1).map(|idx| list[idx].0);
    let best_size = match (below, above) {
        (Some(b), Some(a)) => {
            if size - b <= a - size {
                b
            } else {
                a
            }
        }
        (Some(b), None) => b,
        (None, Some(a)) => a,
        (None, None) => return None,
    };
    if !accept(best_size) {
        return None;
    }
    let first = list.partition_point(|(candidate, _)| *candidate < best_size);
    Some(list[first].1)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The extension of a file name, without the dot; none for `name`, `.hidden` or `name.`.
fn extension(name: &str) -> Option<&str> {
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then_some(extension)
}

struct Job<'a> {
    planned_idx: usize,
    path: &'a str,
    base: Option<&'a str>,
    memory: u64,
    new_size: u64,
}

/// The groups of small payload files worth diffing together: in index order, each file
/// (its base, if its own delta used one, plus its target) at most [`GROUP_FILE_MAX`] bytes,
/// each group at most `group_max` bytes and of at least two files.
fn plan_groups(
    planned: &[PlannedOp],
    blob_of: &HashMap<usize, (bool, u64, u64)>,
    (old_files, new_files): (&HashMap<&str, FileInfo>, &HashMap<&str, FileInfo>),
    group_max: u64,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut bytes = 0u64;
    for (planned_idx, planned) in planned.iter().enumerate() {
        let Some(&(is_patch, _, _)) = blob_of.get(&planned_idx) else {
            continue;
        };
        let base_size = match &planned.kind {
            Planned::Patch { base } if is_patch => old_files[base.as_str()].size,
            _ => 0,
        };
        let size = base_size + new_files[planned.path.as_str()].size;
        if size > GROUP_FILE_MAX.min(group_max) {
            continue;
        }
        if bytes + size > group_max {
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        groups
            .last_mut()
            .expect("there is a group")
            .push(planned_idx);
    }
    groups.retain(|group| group.len() > 1);
    groups
}

/// About what one diff needs at its peak: both files, the suffix array and streams (see
/// `mist_delta::encode`), and three LZMA encoders running in parallel.
fn diff_memory(base_size: u64, new_size: u64, options: &DiffOptions) -> u64 {
    let lzma = tuned(options, base_size.max(new_size))
        .lzma_preset
        .map_or(0, |preset| 3 * lzma_encoder_memory(preset));
    6 * base_size + 4 * new_size + lzma + (64 << 20)
}

/// liblzma's documented encoder memory for the normal-mode presets.
fn lzma_encoder_memory(preset: u32) -> u64 {
    const MIB: u64 = 1 << 20;
    match preset {
        0..=3 => 32 * MIB,
        4..=6 => 94 * MIB,
        7 => 186 * MIB,
        8 => 370 * MIB,
        _ => 674 * MIB,
    }
}

/// `options` for one file of `input_len` bytes: LZMA presets 6–9 differ only in dictionary
/// size (8, 16, 32, 64 MiB), and a dictionary larger than the input gains nothing.
fn tuned(options: &DiffOptions, input_len: u64) -> DiffOptions {
    const MIB: u64 = 1 << 20;
    let needed = match input_len {
        0..=8_388_608 => 6,
        n if n <= 16 * MIB => 7,
        n if n <= 32 * MIB => 8,
        _ => 9,
    };
    DiffOptions {
        lzma_preset: options.lzma_preset.map(|preset| {
            if preset > 6 {
                preset.min(needed)
            } else {
                preset
            }
        }),
        ..*options
    }
}

/// Reads a file of a build and checks it is still what the manifest says.
fn read_build_file(root: &Path, rel: &str, info: FileInfo) -> Result<Vec<u8>, TreeDeltaError> {
    let path = root.join(rel);
    let mut file = open_regular(&path).map_err(io_error(&path, "open"))?;
    let mut bytes = Vec::with_capacity(info.size.min(1 << 30) as usize);
    (&mut file)
        .take(info.size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(&path, "read"))?;
    if bytes.len() as u64 != info.size || *blake3::hash(&bytes).as_bytes() != info.hash.0 {
        return Err(TreeDeltaError::Changed { path });
    }
    Ok(bytes)
}

fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
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
            Tree {
                root_path: old_root,
                dir: &old,
            },
            package,
            Manifests {
                source,
                target: &target,
            },
            Tree {
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

#[cfg(unix)]
use crate::confined::{Dir, Kind, WalkError};

/// An open tree root and the path it was opened from (for messages).
#[cfg(unix)]
#[derive(Clone, Copy)]
pub(crate) struct Tree<'a> {
    pub(crate) root_path: &'a Path,
    pub(crate) dir: &'a Dir,
}

#[cfg(unix)]
impl Tree<'_> {
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
    old: Tree<'_>,
    package: &Package,
    manifests: Manifests<'_>,
    dest: Tree<'_>,
    options: &ApplyOptions,
) -> Result<(), TreeDeltaError> {
    let index = &package.index;
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

/// The permission bits Mist gives a file: the manifest records only the executable bit.
pub(crate) fn mode_for(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
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

/// Reads a whole old file, refusing one longer than the manifest says.
pub(crate) fn read_at_most(file: File, size: u64, shown: &Path) -> Result<Vec<u8>, TreeDeltaError> {
    let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
    file.take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(shown, "read"))?;
    if bytes.len() as u64 != size {
        return Err(TreeDeltaError::SourceMismatch(format!(
            "{} is {} bytes, expected {size}",
            shown.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Copies `src` into `out`, checking its size and hash against `info`.
pub(crate) fn copy_verified(
    mut src: File,
    out: &mut File,
    info: FileInfo,
    shown: &Path,
) -> Result<(), TreeDeltaError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; (1 << 20).min(info.size as usize + 1)];
    let mut n_copied = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(shown, "read")(error)),
        };
        n_copied += n as u64;
        if n_copied > info.size {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error(shown, "copy"))?;
    }
    if n_copied != info.size || *hasher.finalize().as_bytes() != info.hash.0 {
        return Err(TreeDeltaError::SourceMismatch(format!(
            "{} does not have the content the delta expects",
            shown.display()
        )));
    }
    Ok(())
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

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

fn corrupt(message: &str) -> TreeDeltaError {
    TreeDeltaError::Corrupt(message.to_owned())
}

pub(crate) fn io_error(
    path: &Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> TreeDeltaError {
    let path = path.to_owned();
    move |source| TreeDeltaError::Io {
        path,
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

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

    fn planned(old: Vec<Entry>, new: Vec<Entry>) -> Vec<(String, Planned)> {
        plan(&Manifest { entries: old }, &Manifest { entries: new })
            .into_iter()
            .map(|op| (op.path, op.kind))
            .collect()
    }

    fn patch(base: &str) -> Planned {
        Planned::Patch {
            base: base.to_owned(),
        }
    }

    #[test]
    fn operations_are_chosen_by_content_then_path_then_similarity() {
        let old = vec![
            dir("a"),
            file("a/data.pak", 1000, false, 1),
            file("a/level.bin", 500, false, 2),
            file("a/same.txt", 10, false, 3),
            file("a/tool", 50, true, 4),
            file("b.bin", 2100, false, 5),
            file("c.bin", 1900, false, 6),
        ];
        let new = vec![
            dir("a"),
            file("a/data.pak", 1200, false, 11),
            file("a/same.txt", 10, false, 3),
            file("a/tool", 50, false, 4),
            dir("x"),
            file("x/copy.txt", 10, false, 3),
            file("x/level.bin", 600, false, 12),
            file("x/new.bin", 2000, false, 13),
            file("x/far.bin", 100_000, false, 14),
            file("x/empty", 0, false, 15),
            file("x/plain", 7, false, 16),
        ];
        assert_eq!(
            planned(old, new),
            vec![
                ("a/data.pak".to_owned(), patch("a/data.pak")),
                ("a/tool".to_owned(), Planned::Mode),
                (
                    "x/copy.txt".to_owned(),
                    Planned::Copy {
                        from: "a/same.txt".to_owned()
                    }
                ),
                ("x/level.bin".to_owned(), patch("a/level.bin")),
                ("x/new.bin".to_owned(), patch("c.bin")),
                ("x/far.bin".to_owned(), Planned::Add),
                ("x/empty".to_owned(), Planned::Add),
                ("x/plain".to_owned(), Planned::Add),
            ]
        );
    }

    #[test]
    fn closest_prefers_the_smaller_size_then_the_first_path() {
        let list = [(10, "a"), (20, "b"), (20, "c"), (30, "d")];
        assert_eq!(closest(&list, 15, |_| true), Some("a"));
        assert_eq!(closest(&list, 16, |_| true), Some("b"));
        assert_eq!(closest(&list, 25, |_| true), Some("b"));
        assert_eq!(closest(&list, 99, |_| true), Some("d"));
        assert_eq!(closest(&list, 1, |_| true), Some("a"));
        assert_eq!(closest(&list, 1, |size| size > 100), None);
        assert_eq!(closest(&[], 1, |_| true), None);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.txt"), Some("txt"));
        assert_eq!(extension("a.tar.gz"), Some("gz"));
        assert_eq!(extension(".hidden"), None);
        assert_eq!(extension("name."), None);
        assert_eq!(extension("plain"), None);
    }

    #[test]
    fn untrusted_paths() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("a/b.txt", true),
            ("...", true),
            ("", false),
            ("/etc/passwd", false),
            ("a/../../x", false),
            ("..", false),
            ("./a", false),
            ("a//b", false),
            ("a/", false),
            ("a\\..\\b", false),
            ("a\0b", false),
        ];
        for (path, ok) in cases {
            assert_eq!(check_untrusted_path(path).is_ok(), *ok, "{path:?}");
        }
    }

    #[test]
    fn header_round_trips_and_rejects_every_bit_flip() {
        let header = Header {
            index_len: 100,
            index_raw_len: 300,
            body_len: 5000,
            source: TreeDigest([1; 32]),
            target: TreeDigest([2; 32]),
            index_hash: [3; 32],
        };
        let bytes = header.encode();
        assert_eq!(Header::parse(&bytes).unwrap(), header);
        for bit in 0..HEADER_LEN * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::parse(&damaged).is_err(), "bit {bit}");
        }
        for len in 0..HEADER_LEN {
            assert!(Header::parse(&bytes[..len]).is_err(), "length {len}");
        }
    }
}
