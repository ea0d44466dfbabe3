//! Packs: a whole build as one deterministic tar+zstd stream, and its checked unpacking.
//!
//! [`write_pack`] writes every entry of a [`Manifest`] in manifest order as a GNU tar
//! stream with fixed metadata (mtime 0, uid and gid 0, no user or group names, modes
//! derived from the manifest), compressed as one zstd frame. The same manifest and file
//! contents always give the same bytes, whatever the files' times, owners or exact modes.
//!
//! [`unpack`] streams a pack into an empty staging directory and treats the manifest,
//! which the caller got from a trusted index and whose digest it checked, as the index:
//! every tar entry must be the next manifest entry, with the same type, size, symlink
//! target and BLAKE3 hash, and anything else is refused with a [`PackError`] that names
//! the path. [`verify_pack`] runs the same checks without writing anything. The format and
//! the list of what the reader refuses are in `docs/pack.md`.
//!
//! ## Warning
//! On error, the destination directory holds partial files, possibly with wrong contents.
//! Nothing outside it is ever created or written, but the caller must discard it: unpack
//! into a staging directory and only move it into place after `Ok`.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::manifest::{Entry, EntryKind, FileHash, Manifest, ManifestError};

/// What [`write_pack`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// The length of the tar stream before compression; always [`tar_len`] of the
    /// manifest.
    pub tar_len: u64,
    /// The length of the compressed pack written to the output.
    pub pack_len: u64,
}

/// Why a pack could not be written, read or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The manifest given is not well formed, so it cannot serve as an index.
    #[error("invalid manifest: {0}")]
    InvalidManifest(#[from] ManifestError),
    /// A local file operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
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
    #[error("failed to write the pack: {0}")]
    Write(#[source] io::Error),
    /// The pack could not be read: it is damaged, truncated, not a pack, or the reader
    /// failed.
    #[error("failed to read the pack (damaged, truncated or not a Mist pack): {0}")]
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
    /// The tar stream does not end with the zero blocks that [`write_pack`] writes.
    #[error("the pack has data after its last entry")]
    TrailingData,
}

/// Why [`unpack`] or [`verify_pack`] refused one tar entry.
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
    /// The header is not one that [`write_pack`] writes.
    #[error("malformed header: {0}")]
    Malformed(&'static str),
}

/// Writes the build at `root`, described by `manifest`, to `out` as a pack, and returns
/// its sizes.
///
/// Entries are written in manifest order: directories with mode `0o755`, files with
/// `0o755` or `0o644` by their executable bit, symlinks with `0o777`; mtime, uid and gid
/// are 0 and names are empty. `level` is the zstd level (1–22); large packs use a
/// 128 MiB window with long-distance matching, which [`unpack`] accepts.
///
/// Every file's bytes are checked against the manifest while being packed, and so are
/// its size, executable bit, and each directory's and symlink's presence and target: a
/// build that changed since its scan is an error. On error, `out` holds a partial pack
/// and must be discarded. Paths below `root` are not checked for symlinks that replaced
/// directories after the scan, but any file read through one would still have to hash
/// as the manifest says.
pub fn write_pack(
    root: &Path,
    manifest: &Manifest,
    out: impl Write,
    level: i32,
) -> Result<PackInfo, PackError> {
    manifest.validate()?;
    let tar_len = tar_len(manifest);
    let mut counter = CountingWriter {
        inner: out,
        n_written: 0,
    };
    let mut encoder =
        zstd::stream::write::Encoder::new(&mut counter, level).map_err(PackError::Write)?;
    encoder
        .set_pledged_src_size(Some(tar_len))
        .map_err(PackError::Write)?;
    encoder.include_checksum(true).map_err(PackError::Write)?;
    encoder
        .include_contentsize(true)
        .map_err(PackError::Write)?;
    if tar_len > LONG_WINDOW_MIN_LEN {
        encoder
            .window_log(WINDOW_LOG_MAX)
            .map_err(PackError::Write)?;
        encoder
            .long_distance_matching(true)
            .map_err(PackError::Write)?;
    }
    let mut buf = vec![0u8; COPY_BUF_LEN];
    for entry in &manifest.entries {
        append_entry(&mut encoder, root, entry, &mut buf)?;
    }
    encoder
        .write_all(&[0; 2 * BLOCK_LEN as usize])
        .map_err(PackError::Write)?;
    // A pledged size that differs from what was written fails here, which would mean
    // `tar_len` no longer describes the writer.
    encoder.finish().map_err(PackError::Write)?;
    counter.flush().map_err(PackError::Write)?;
    Ok(PackInfo {
        tar_len,
        pack_len: counter.n_written,
    })
}

/// Unpacks `pack` into `dest`, checking every entry against `manifest` while streaming.
///
/// `dest` must be an empty directory or not exist (its parent must); directories are
/// created `0o755`, files `0o755` or `0o644` from the manifest's executable bit, and
/// symlinks with the manifest's target. Header modes, times and owners are ignored.
///
/// Refused, with an error naming the path: entries not in the manifest, out of order,
/// duplicated or missing; absolute paths and `..`; symlinks whose target differs from the
/// manifest's; hard links, devices, fifos, pax headers and sparse files; a type, size or
/// BLAKE3 hash that differs from the manifest's (sizes are checked before any data is
/// read); and more decompressed bytes than the manifest implies ([`tar_len`]), so a
/// decompression bomb is stopped one byte past the limit. Files are created with
/// `O_EXCL | O_NOFOLLOW` and directories one at a time, so nothing is ever written
/// through a symlink.
///
/// ## Warning
/// On error `dest` may hold partial or wrong files: the caller must discard it. Nothing
/// outside `dest` is ever touched.
pub fn unpack(pack: impl Read, manifest: &Manifest, dest: &Path) -> Result<(), PackError> {
    manifest.validate()?;
    prepare_dest(dest)?;
    read_pack(pack, manifest, Some(dest))
}

/// Reads `pack` to its end and checks it against `manifest` exactly as [`unpack`] does,
/// without writing anything.
pub fn verify_pack(pack: impl Read, manifest: &Manifest) -> Result<(), PackError> {
    manifest.validate()?;
    read_pack(pack, manifest, None)
}

/// The exact length of the uncompressed tar stream that [`write_pack`] writes for
/// `manifest`: a 512-byte header per entry, a GNU long-name entry for each path and
/// symlink target longer than 100 bytes, file data padded to 512 bytes, and two zero
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
const BLOCK_LEN: u64 = 512;
/// The length of the name and link name fields of a tar header.
const NAME_FIELD_LEN: usize = 100;
/// The largest zstd window, as a power of two: 128 MiB, zstd's default decoder limit.
const WINDOW_LOG_MAX: u32 = 27;
/// Packs at least this large get the largest window and long-distance matching, so that
/// files repeated far apart in a big build compress against each other.
const LONG_WINDOW_MIN_LEN: u64 = 32 << 20;
/// Files are copied this many bytes at a time.
const COPY_BUF_LEN: usize = 256 * 1024;

const TYPE_FILE: u8 = b'0';
const TYPE_HARD_LINK: u8 = b'1';
const TYPE_SYMLINK: u8 = b'2';
const TYPE_DIR: u8 = b'5';
const TYPE_LONG_NAME: u8 = b'L';
const TYPE_LONG_LINK: u8 = b'K';

fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK_LEN).saturating_mul(BLOCK_LEN)
}

fn long_name_len(len: usize) -> u64 {
    if len <= NAME_FIELD_LEN {
        0
    } else {
        BLOCK_LEN.saturating_add(padded(len as u64 + 1))
    }
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    n_written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n_written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A header with everything that could vary fixed: GNU magic, mtime, uid and gid 0, empty
/// user and group names. Names longer than a field are cut, as GNU tar does; the long-name
/// entry before the header holds the whole name.
fn header(name: &[u8], entry_type: u8, mode: u32, size: u64, link_name: &[u8]) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let fields = header.as_old_mut();
    let name = &name[..name.len().min(NAME_FIELD_LEN)];
    fields.name[..name.len()].copy_from_slice(name);
    let link_name = &link_name[..link_name.len().min(NAME_FIELD_LEN)];
    fields.linkname[..link_name.len()].copy_from_slice(link_name);
    fields.linkflag = [entry_type];
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_cksum();
    header
}

/// Writes `data` followed by zeros up to the next block boundary.
fn write_padded(out: &mut impl Write, data: &[u8]) -> Result<(), PackError> {
    out.write_all(data).map_err(PackError::Write)?;
    write_padding(out, data.len() as u64)
}

fn write_padding(out: &mut impl Write, len: u64) -> Result<(), PackError> {
    let n_zeros = (padded(len) - len) as usize;
    out.write_all(&[0; BLOCK_LEN as usize][..n_zeros])
        .map_err(PackError::Write)
}

/// Writes a GNU long-name (`L`) or long-link (`K`) entry when `name` does not fit a field.
fn write_long_name(out: &mut impl Write, entry_type: u8, name: &[u8]) -> Result<(), PackError> {
    if name.len() <= NAME_FIELD_LEN {
        return Ok(());
    }
    let mut data = name.to_vec();
    data.push(0);
    let long = header(b"././@LongLink", entry_type, 0o644, data.len() as u64, b"");
    out.write_all(long.as_bytes()).map_err(PackError::Write)?;
    write_padded(out, &data)
}

fn append_entry(
    out: &mut impl Write,
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<(), PackError> {
    let path = root.join(&entry.path);
    let name = entry.path.as_bytes();
    let changed = |detail: &str| PackError::Changed {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    let io_error = |action: &'static str| {
        let path = path.clone();
        move |source| PackError::Io {
            path,
            action,
            source,
        }
    };
    match &entry.kind {
        EntryKind::Dir => {
            let metadata = fs::symlink_metadata(&path).map_err(io_error("read metadata of"))?;
            if !metadata.is_dir() {
                return Err(changed("it is no longer a directory"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            let dir_header = header(name, TYPE_DIR, 0o755, 0, b"");
            out.write_all(dir_header.as_bytes())
                .map_err(PackError::Write)
        }
        EntryKind::Symlink { target } => {
            let found = fs::read_link(&path).map_err(io_error("read symlink"))?;
            if found.as_os_str() != target.as_str() {
                return Err(changed("the symlink points elsewhere"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            write_long_name(out, TYPE_LONG_LINK, target.as_bytes())?;
            let link_header = header(name, TYPE_SYMLINK, 0o777, 0, target.as_bytes());
            out.write_all(link_header.as_bytes())
                .map_err(PackError::Write)
        }
        EntryKind::File {
            size,
            executable,
            blake3,
        } => {
            let file = match open_no_follow(&path) {
                Ok(file) => file,
                Err(error) if is_symlink_loop(&error) => {
                    return Err(changed("it was replaced by a symlink"));
                }
                Err(error) => return Err(io_error("open")(error)),
            };
            let metadata = file.metadata().map_err(io_error("read metadata of"))?;
            if !metadata.is_file() {
                return Err(changed("it is no longer a regular file"));
            }
            if metadata.len() != *size {
                return Err(changed(&format!(
                    "{} bytes in the manifest, {} on disk",
                    size,
                    metadata.len()
                )));
            }
            if is_executable(&metadata) != *executable {
                return Err(changed("its executable bit differs from the manifest"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            let mode = if *executable { 0o755 } else { 0o644 };
            let file_header = header(name, TYPE_FILE, mode, *size, b"");
            out.write_all(file_header.as_bytes())
                .map_err(PackError::Write)?;
            let mut hasher = blake3::Hasher::new();
            let mut remaining = *size;
            let mut reader = &file;
            while remaining > 0 {
                let want = remaining.min(buf.len() as u64) as usize;
                let n_read =
                    read_retrying(&mut reader, &mut buf[..want]).map_err(io_error("read"))?;
                if n_read == 0 {
                    return Err(changed("it became shorter while being packed"));
                }
                hasher.update(&buf[..n_read]);
                out.write_all(&buf[..n_read]).map_err(PackError::Write)?;
                remaining -= n_read as u64;
            }
            if read_retrying(&mut reader, &mut buf[..1]).map_err(io_error("read"))? != 0 {
                return Err(changed("it became longer while being packed"));
            }
            if hasher.finalize().as_bytes() != &blake3.0 {
                return Err(changed("its contents no longer hash as the manifest says"));
            }
            write_padding(out, *size)
        }
    }
}

fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Fails unless `dest` is an empty real directory (not a symlink to one), or creates it.
fn prepare_dest(dest: &Path) -> Result<(), PackError> {
    let io_error = |action: &'static str| {
        move |source| PackError::Io {
            path: dest.to_owned(),
            action,
            source,
        }
    };
    match fs::symlink_metadata(dest) {
        Ok(metadata) if metadata.is_dir() => {
            let mut children = fs::read_dir(dest).map_err(io_error("read directory"))?;
            if children.next().is_some() {
                return Err(PackError::DestNotEmpty {
                    path: dest.to_owned(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(PackError::DestNotEmpty {
            path: dest.to_owned(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            create_dir(dest).map_err(io_error("create directory"))
        }
        Err(error) => Err(io_error("read metadata of")(error)),
    }
}

/// Reads decompressed bytes up to a limit; one byte more sets the shared flag and fails.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // Probe for one more byte, so that the end of a stream of exactly the limit
            // is still an ordinary end.
            let mut probe = [0u8; 1];
            if read_retrying(&mut self.inner, &mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded.set(true);
            return Err(io::Error::other("decompressed data exceeds the limit"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n_read = self.inner.read(&mut buf[..want])?;
        self.remaining -= n_read as u64;
        Ok(n_read)
    }
}

/// The checks shared by [`unpack`] and [`verify_pack`]; writes into `dest` when given.
fn read_pack(pack: impl Read, manifest: &Manifest, dest: Option<&Path>) -> Result<(), PackError> {
    let limit = tar_len(manifest);
    let exceeded = Rc::new(Cell::new(false));
    let read_error = |error: io::Error| {
        if exceeded.get() {
            PackError::TooLarge { limit }
        } else {
            PackError::Read(error)
        }
    };
    let mut decoder = zstd::stream::read::Decoder::new(pack).map_err(read_error)?;
    decoder.window_log_max(WINDOW_LOG_MAX).map_err(read_error)?;
    let limited = LimitedReader {
        inner: decoder,
        remaining: limit,
        exceeded: Rc::clone(&exceeded),
    };
    let mut archive = tar::Archive::new(limited);
    let mut reader = PackReader {
        manifest,
        dest,
        next_idx: 0,
        long_name: None,
        long_link: None,
        // No valid long name is longer than the longest path or target in the manifest.
        max_long_name_len: manifest
            .entries
            .iter()
            .map(|entry| match &entry.kind {
                EntryKind::Symlink { target } => entry.path.len().max(target.len()),
                _ => entry.path.len(),
            })
            .max()
            .unwrap_or(0),
        buf: vec![0u8; COPY_BUF_LEN],
    };
    for tar_entry in archive.entries().map_err(read_error)?.raw(true) {
        let mut tar_entry = tar_entry.map_err(read_error)?;
        reader.entry(&mut tar_entry).map_err(|error| match error {
            PackError::Read(error) => read_error(error),
            other => other,
        })?;
    }
    if reader.long_name.is_some() || reader.long_link.is_some() {
        return Err(PackError::Entry {
            path: "././@LongLink".to_owned(),
            problem: EntryProblem::Malformed("a long name with no entry after it"),
        });
    }
    if let Some(entry) = manifest.entries.get(reader.next_idx) {
        return Err(PackError::Missing {
            path: entry.path.clone(),
        });
    }
    // The tar reader stopped at the first zero block; the rest must be the second one and
    // then the end of the zstd frame, whose checksum the decoder checks on the way.
    let mut limited = archive.into_inner();
    let mut rest = Vec::new();
    (&mut limited)
        .take(BLOCK_LEN + 1)
        .read_to_end(&mut rest)
        .map_err(read_error)?;
    if rest.iter().any(|&byte| byte != 0) {
        return Err(PackError::TrailingData);
    }
    if (rest.len() as u64) < BLOCK_LEN {
        return Err(PackError::Read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the pack ends inside its end-of-archive blocks",
        )));
    }
    if limited.remaining != 0 {
        return Err(PackError::TrailingData);
    }
    let mut probe = [0u8; 1];
    match read_retrying(&mut limited, &mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(PackError::TrailingData),
        Err(error) => Err(read_error(error)),
    }
}

/// The state of one pass over a pack's entries.
struct PackReader<'a> {
    manifest: &'a Manifest,
    dest: Option<&'a Path>,
    /// The index of the manifest entry the next tar entry must be.
    next_idx: usize,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    max_long_name_len: usize,
    buf: Vec<u8>,
}

impl PackReader<'_> {
    fn entry<R: Read>(&mut self, tar_entry: &mut tar::Entry<'_, R>) -> Result<(), PackError> {
        let header = tar_entry.header();
        let header_name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let refuse = |path: &str, problem| PackError::Entry {
            path: path.to_owned(),
            problem,
        };
        if header.as_gnu().is_none() {
            return Err(refuse(
                &header_name,
                EntryProblem::Malformed("not a GNU tar header"),
            ));
        }
        let entry_type = header.as_old().linkflag[0];
        let size = header.entry_size().map_err(PackError::Read)?;
        if entry_type == TYPE_LONG_NAME || entry_type == TYPE_LONG_LINK {
            let slot = if entry_type == TYPE_LONG_NAME {
                &mut self.long_name
            } else {
                &mut self.long_link
            };
            if slot.is_some() {
                return Err(refuse(
                    &header_name,
                    EntryProblem::Malformed("two long names for one entry"),
                ));
            }
            if size < 2 || size > self.max_long_name_len as u64 + 1 {
                return Err(refuse(
                    &header_name,
                    EntryProblem::Malformed("a long name of a length no manifest entry has"),
                ));
            }
            let mut name = Vec::with_capacity(size as usize);
            tar_entry.read_to_end(&mut name).map_err(PackError::Read)?;
            if name.len() as u64 != size {
                return Err(PackError::Read(io::ErrorKind::UnexpectedEof.into()));
            }
            if name.pop() != Some(0) || name.contains(&0) {
                return Err(refuse(
                    &header_name,
                    EntryProblem::Malformed("a long name that is not one NUL-terminated string"),
                ));
            }
            *slot = Some(name);
            return Ok(());
        }
        let path_bytes = match self.long_name.take() {
            Some(name) => name,
            None => header.path_bytes().into_owned(),
        };
        let link_bytes = match self.long_link.take() {
            Some(name) => Some(name),
            None => header.link_name_bytes().map(|name| name.into_owned()),
        };
        let lossy_path = String::from_utf8_lossy(&path_bytes).into_owned();
        let refuse = |problem| PackError::Entry {
            path: lossy_path.clone(),
            problem,
        };
        let found_kind = match entry_type {
            TYPE_FILE => "file",
            TYPE_DIR => "directory",
            TYPE_SYMLINK => "symlink",
            TYPE_HARD_LINK => return Err(refuse(EntryProblem::HardLink)),
            other => return Err(refuse(EntryProblem::UnsupportedType(type_name(other)))),
        };
        if link_bytes.is_some() && entry_type != TYPE_SYMLINK {
            return Err(refuse(EntryProblem::Malformed("a link name on a non-link")));
        }
        let Ok(path) = std::str::from_utf8(&path_bytes) else {
            return Err(refuse(EntryProblem::NotUtf8));
        };
        if path.starts_with('/') {
            return Err(refuse(EntryProblem::Absolute));
        }
        if path.split('/').any(|component| component == "..") {
            return Err(refuse(EntryProblem::ParentDir));
        }
        let entries = &self.manifest.entries;
        let idx = entries
            .binary_search_by(|entry| entry.path.as_str().cmp(path))
            .map_err(|_| refuse(EntryProblem::NotInManifest))?;
        if idx < self.next_idx {
            return Err(refuse(EntryProblem::Duplicate));
        }
        if idx > self.next_idx {
            return Err(PackError::Missing {
                path: entries[self.next_idx].path.clone(),
            });
        }
        self.next_idx += 1;
        let entry = &entries[idx];
        let expected_kind = match entry.kind {
            EntryKind::File { .. } => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink { .. } => "symlink",
        };
        if expected_kind != found_kind {
            return Err(refuse(EntryProblem::WrongType {
                expected: expected_kind,
                found: found_kind,
            }));
        }
        let expected_size = match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        };
        if size != expected_size {
            return Err(refuse(EntryProblem::Size {
                expected: expected_size,
                found: size,
            }));
        }
        let target_path = self.dest.map(|dest| dest.join(path));
        let io_error = |action: &'static str| {
            let path = target_path.clone().unwrap_or_default();
            move |source| PackError::Io {
                path,
                action,
                source,
            }
        };
        match &entry.kind {
            EntryKind::Dir => {
                if let Some(target_path) = &target_path {
                    create_dir(target_path).map_err(io_error("create directory"))?;
                }
                Ok(())
            }
            EntryKind::Symlink { target } => {
                let found = link_bytes.unwrap_or_default();
                if found != target.as_bytes() {
                    return Err(refuse(EntryProblem::SymlinkTarget {
                        expected: target.clone(),
                        found: String::from_utf8_lossy(&found).into_owned(),
                    }));
                }
                if let Some(target_path) = &target_path {
                    create_symlink(target, target_path).map_err(io_error("create symlink"))?;
                }
                Ok(())
            }
            EntryKind::File {
                size,
                executable,
                blake3,
            } => {
                let mut file = match &target_path {
                    Some(target_path) => Some(
                        create_file(target_path, *executable).map_err(io_error("create file"))?,
                    ),
                    None => None,
                };
                let mut hasher = blake3::Hasher::new();
                let mut remaining = *size;
                while remaining > 0 {
                    let want = remaining.min(self.buf.len() as u64) as usize;
                    let n_read =
                        read_retrying(tar_entry, &mut self.buf[..want]).map_err(PackError::Read)?;
                    if n_read == 0 {
                        return Err(PackError::Read(io::ErrorKind::UnexpectedEof.into()));
                    }
                    hasher.update(&self.buf[..n_read]);
                    if let Some(file) = &mut file {
                        file.write_all(&self.buf[..n_read])
                            .map_err(io_error("write"))?;
                    }
                    remaining -= n_read as u64;
                }
                let found = FileHash(*hasher.finalize().as_bytes());
                if found != *blake3 {
                    return Err(refuse(EntryProblem::Hash {
                        expected: *blake3,
                        found,
                    }));
                }
                if let Some(file) = file {
                    set_mode(&file, *executable).map_err(io_error("set permissions of"))?;
                }
                Ok(())
            }
        }
    }
}

/// A readable name for a tar type flag.
fn type_name(entry_type: u8) -> String {
    match entry_type {
        b'\0' => "old-style regular file".to_owned(),
        b'3' => "character device".to_owned(),
        b'4' => "block device".to_owned(),
        b'6' => "fifo".to_owned(),
        b'7' => "contiguous file".to_owned(),
        b'x' => "pax extended header".to_owned(),
        b'g' => "pax global header".to_owned(),
        b'S' => "GNU sparse file".to_owned(),
        other => format!("{:?}", char::from(other)),
    }
}

#[cfg(unix)]
fn create_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // `DirBuilder::create` fails on anything that exists, a symlink included.
    fs::DirBuilder::new().mode(0o755).create(path)
}

#[cfg(not(unix))]
fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)
}

/// Creates a new file, failing if anything (a symlink included) exists at `path`.
fn create_file(path: &Path, executable: bool) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .custom_flags(libc::O_NOFOLLOW)
            .mode(if executable { 0o755 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    options.open(path)
}

/// Sets the file's exact mode through its handle, whatever the umask.
#[cfg(unix)]
fn set_mode(file: &File, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _executable: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn create_symlink(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are only unpacked on Unix",
    ))
}

/// Opens a build file for reading without following a symlink that replaced it, and
/// without blocking if a fifo did.
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

#[cfg(unix)]
fn is_symlink_loop(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_symlink_loop(_error: &io::Error) -> bool {
    false
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
