//! The bytes of a package: its fixed header, its limits, and the errors of reading, making
//! and applying one.

use std::io;
use std::ops::Range;
use std::path::PathBuf;

use mist_delta::format::DeltaError;

use crate::manifest::{SymlinkProblem, TreeDigest};
use crate::scan::ScanError;

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

/// The largest group of small files diffed as one (bases plus targets, in bytes): what a
/// client holds at once to rebuild any of them.
pub const GROUP_MAX: u64 = 32 << 20;

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

    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
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
    #[error("file delta for {path:?}")]
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
    #[error(
        "not enough free space in {}: {} needed, {} free",
        dir.display(),
        mist_platform::units::human_size(*needed),
        mist_platform::units::human_size(*available)
    )]
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
    #[error("failed to {action} {}", path.display())]
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

/// Checks that a path from untrusted input names something strictly inside a root on every
/// system: relative, `/`-separated, no empty, `.` or `..` component, no backslash (a
/// separator on Windows) and no NUL.
pub fn check_untrusted_path(path: &str) -> Result<(), &'static str> {
    crate::manifest::check_path(path)
}

pub(crate) fn symlink_reason(problem: SymlinkProblem) -> &'static str {
    match problem {
        SymlinkProblem::Empty => "the symlink target is empty",
        SymlinkProblem::Absolute => "the symlink target is absolute",
        SymlinkProblem::Escapes => "the symlink target points outside the build root",
        SymlinkProblem::DotDotAfterName => "the symlink target has '..' after a name",
        SymlinkProblem::NotUtf8 => "the symlink target is not valid UTF-8",
        SymlinkProblem::ContainsNul => "the symlink target contains a NUL byte",
    }
}

pub(crate) fn check_path_field(path: &str) -> Result<(), TreeDeltaError> {
    check_untrusted_path(path).map_err(|reason| TreeDeltaError::UnsafePath {
        path: path.to_owned(),
        reason,
    })
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

pub(crate) fn corrupt(message: &str) -> TreeDeltaError {
    TreeDeltaError::Corrupt(message.to_owned())
}

crate::io_error::io_error_fn!(TreeDeltaError);

#[cfg(test)]
mod tests {
    use super::*;

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
