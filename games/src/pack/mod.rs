//! Packs: a whole build as one deterministic tar+zstd stream, and its checked unpacking.
//!
//! [`write::write_pack`] writes every entry of a [`Manifest`] in manifest order as a GNU tar
//! stream with fixed metadata (mtime 0, uid and gid 0, no user or group names, modes
//! derived from the manifest), compressed as one zstd frame. The same manifest and file
//! contents always give the same bytes, whatever the files' times, owners or exact modes.
//!
//! [`read::unpack`] streams a pack into an empty staging directory and treats the manifest,
//! which the caller got from a trusted index and whose digest it checked, as the index:
//! every tar entry must be the next manifest entry, with the same type, size, symlink
//! target and BLAKE3 hash, and anything else is refused with a [`PackError`] that names
//! the path. [`read::verify_pack`] runs the same checks without writing anything. The
//! format and the list of what the reader refuses are in `docs/pack.md`.
//!
//! This file holds the types and the tar layout both sides share; [`write`](mod@write)
//! writes packs and [`read`] reads them.
//!
//! ## Warning
//! On error, the destination directory holds partial files, possibly with wrong contents.
//! Nothing outside it is ever created or written, but the caller must discard it: unpack
//! into a staging directory and only move it into place after `Ok`.

use std::io::{self, Read};
use std::path::PathBuf;

use crate::manifest::{EntryKind, FileHash, Manifest, ManifestError};

pub mod read;
pub mod write;

/// What [`write_pack`](write::write_pack) wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// The length of the tar stream before compression; always [`tar_len`] of the
    /// manifest.
    pub tar_len: u64,
    /// The length of the compressed pack written to the output.
    pub pack_len: u64,
}

crate::io_error::io_error_fn!(PackError);

/// Why a pack could not be written, read or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The manifest given is not well formed, so it cannot serve as an index.
    #[error("invalid manifest")]
    InvalidManifest(#[from] ManifestError),
    /// A local file operation failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// What was being done, e.g. `create file`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// While packing, a build file no longer matches the manifest.
    #[error("{} changed since the build was scanned ({detail}); rescan the build", path.display())]
    Changed {
        /// The path on disk.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// Writing the compressed pack failed.
    #[error("failed to write the pack")]
    Write(#[source] io::Error),
    /// The pack could not be read: it is damaged, truncated, not a pack, or the reader
    /// failed.
    #[error("failed to read the pack (damaged, truncated or not a Mist pack)")]
    Read(#[source] io::Error),
    /// The pack decompresses to more bytes than its manifest allows, e.g. a decompression
    /// bomb; reading stopped one byte past the limit.
    #[error("the pack decompresses to more than the {limit} bytes its manifest allows")]
    TooLarge {
        /// The exact tar length the manifest implies.
        limit: u64,
    },
    /// The unpack destination exists and is not an empty directory.
    #[error("unpack destination {} must be an empty directory or not exist", path.display())]
    DestNotEmpty {
        /// The destination as given.
        path: PathBuf,
    },
    /// A tar entry was refused.
    #[error("pack entry {path:?} refused: {problem}")]
    Entry {
        /// The entry's path as stored in the pack (lossy if it is not UTF-8).
        path: String,
        /// Why it was refused.
        problem: EntryProblem,
    },
    /// The manifest lists an entry that the pack does not have at its place.
    #[error("the pack has no entry {path:?}, which the manifest lists")]
    Missing {
        /// The manifest path.
        path: String,
    },
    /// The tar stream does not end with the zero blocks that
    /// [`write_pack`](write::write_pack) writes.
    #[error("the pack has data after its last entry")]
    TrailingData,
}

/// Why [`unpack`](read::unpack) or [`verify_pack`](read::verify_pack) refused one tar entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    /// The path is not valid UTF-8.
    #[error("the path is not valid UTF-8")]
    NotUtf8,
    /// The path is absolute.
    #[error("the path is absolute")]
    Absolute,
    /// The path has a `..` component.
    #[error("the path has a '..' component")]
    ParentDir,
    /// The manifest has no entry with this path.
    #[error("the manifest has no such entry")]
    NotInManifest,
    /// The path appeared earlier in the pack.
    #[error("the entry appears twice")]
    Duplicate,
    /// The entry's type differs from the manifest's.
    #[error("it is a {found} in the pack but a {expected} in the manifest")]
    WrongType {
        /// The manifest's type.
        expected: &'static str,
        /// The pack's type.
        found: &'static str,
    },
    /// A hard link; packs never contain them, and one could alias a file outside the root.
    #[error("hard links are not allowed")]
    HardLink,
    /// A device, fifo, pax header, sparse file or other type that packs never contain.
    #[error("entries of type {0} are not allowed")]
    UnsupportedType(String),
    /// A symlink's target differs from the manifest's; it could point outside the root.
    #[error("the symlink points to {found:?}, the manifest says {expected:?}")]
    SymlinkTarget {
        /// The manifest's target.
        expected: String,
        /// The pack's target (lossy if it is not UTF-8).
        found: String,
    },
    /// The entry's declared size differs from the manifest's; nothing of it was read.
    #[error("it declares {found} bytes, the manifest {expected}")]
    Size {
        /// The manifest's size (0 for directories and symlinks).
        expected: u64,
        /// The size in the tar header.
        found: u64,
    },
    /// The file's contents do not hash as the manifest says.
    #[error("its contents hash to {found}, the manifest says {expected}")]
    Hash {
        /// The manifest's hash.
        expected: FileHash,
        /// The hash of the bytes in the pack.
        found: FileHash,
    },
    /// The header is not one that [`write_pack`](write::write_pack) writes.
    #[error("malformed header: {0}")]
    Malformed(&'static str),
}

/// The exact length of the uncompressed tar stream that [`write_pack`](write::write_pack)
/// writes for `manifest`: a 512-byte header per entry, a GNU long-name entry for each path
/// and symlink target longer than 100 bytes, file data padded to 512 bytes, and two zero
/// blocks at the end. Saturates instead of overflowing.
pub fn tar_len(manifest: &Manifest) -> u64 {
    let mut len = 2 * BLOCK_LEN;
    for entry in &manifest.entries {
        len = len
            .saturating_add(BLOCK_LEN)
            .saturating_add(long_name_len(entry.path.len()));
        match &entry.kind {
            EntryKind::File { size, .. } => len = len.saturating_add(padded(*size)),
            EntryKind::Symlink { target } => {
                len = len.saturating_add(long_name_len(target.len()));
            }
            EntryKind::Dir => {}
        }
    }
    len
}

/// The tar block size.
pub(crate) const BLOCK_LEN: u64 = 512;
/// The length of the name and link name fields of a tar header.
pub(crate) const NAME_FIELD_LEN: usize = 100;
/// The largest zstd window, as a power of two: 128 MiB, zstd's default decoder limit.
pub(crate) const WINDOW_LOG_MAX: u32 = 27;
/// Packs at least this large get the largest window and long-distance matching, so that
/// files repeated far apart in a big build compress against each other.
pub(crate) const LONG_WINDOW_MIN_LEN: u64 = 32 << 20;
/// Files are copied this many bytes at a time.
pub(crate) const COPY_BUF_LEN: usize = 256 * 1024;

pub(crate) const TYPE_FILE: u8 = b'0';
pub(crate) const TYPE_HARD_LINK: u8 = b'1';
pub(crate) const TYPE_SYMLINK: u8 = b'2';
pub(crate) const TYPE_DIR: u8 = b'5';
pub(crate) const TYPE_LONG_NAME: u8 = b'L';
pub(crate) const TYPE_LONG_LINK: u8 = b'K';

pub(crate) fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK_LEN).saturating_mul(BLOCK_LEN)
}

pub(crate) fn long_name_len(len: usize) -> u64 {
    if len <= NAME_FIELD_LEN {
        0
    } else {
        BLOCK_LEN.saturating_add(padded(len as u64 + 1))
    }
}

pub(crate) fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn manifest(entries: Vec<Entry>) -> Manifest {
        Manifest { entries }
    }

    /// `tar_len` is checked against the writer by zstd's pledged size on every pack; this
    /// pins the arithmetic for long names, which small test trees rarely reach.
    #[test]
    fn tar_len_counts_long_names_and_padding() {
        let long = "x".repeat(101);
        let cases: &[(Vec<Entry>, u64)] = &[
            (vec![], 1024),
            (
                vec![Entry {
                    path: "a".to_owned(),
                    kind: EntryKind::File {
                        size: 1,
                        executable: false,
                        blake3: FileHash([0; 32]),
                    },
                }],
                1024 + 512 + 512,
            ),
            (
                vec![Entry {
                    path: "x".repeat(100),
                    kind: EntryKind::Dir,
                }],
                1024 + 512,
            ),
            (
                vec![Entry {
                    path: long.clone(),
                    kind: EntryKind::Symlink {
                        target: long.clone(),
                    },
                }],
                1024 + 512 + 2 * (512 + 512),
            ),
        ];
        for (entries, expected) in cases {
            assert_eq!(
                tar_len(&manifest(entries.clone())),
                *expected,
                "{entries:?}"
            );
        }
    }
}
