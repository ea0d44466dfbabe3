//! Reading a pack: every entry checked against the manifest while it streams, and written
//! into a fresh folder when unpacking.

use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mist_platform::fs::{create_dir, create_new_nofollow, set_mode};

use crate::manifest::{Entry, EntryKind, FileHash, Manifest, mode_for};
use crate::pack::{
    BLOCK_LEN, COPY_BUF_LEN, EntryProblem, PackError, TYPE_DIR, TYPE_FILE, TYPE_HARD_LINK,
    TYPE_LONG_LINK, TYPE_LONG_NAME, TYPE_SYMLINK, WINDOW_LOG_MAX, io_error, read_retrying, tar_len,
};

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

/// Fails unless `dest` is an empty real directory (not a symlink to one), or creates it.
fn prepare_dest(dest: &Path) -> Result<(), PackError> {
    match fs::symlink_metadata(dest) {
        Ok(metadata) if metadata.is_dir() => {
            let mut children = fs::read_dir(dest).map_err(io_error(dest, "read directory"))?;
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
            // `create_dir` fails on anything that exists, a symlink included.
            create_dir(dest, 0o755).map_err(io_error(dest, "create directory"))
        }
        Err(error) => Err(io_error(dest, "read metadata of")(error)),
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

impl<'a> PackReader<'a> {
    /// Checks one tar entry against the manifest and, when unpacking, writes it.
    fn entry<R: Read>(&mut self, tar_entry: &mut tar::Entry<'_, R>) -> Result<(), PackError> {
        let header = tar_entry.header();
        let header_name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        if header.as_gnu().is_none() {
            return Err(PackError::Entry {
                path: header_name,
                problem: EntryProblem::Malformed("not a GNU tar header"),
            });
        }
        let entry_type = header.as_old().linkflag[0];
        let size = header.entry_size().map_err(PackError::Read)?;
        if entry_type == TYPE_LONG_NAME || entry_type == TYPE_LONG_LINK {
            return self.long_name(tar_entry, &header_name, entry_type, size);
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
        let found = Found {
            entry_type,
            size,
            has_link: link_bytes.is_some(),
        };
        let (path, entry) = self.manifest_entry(&path_bytes, &lossy_path, found)?;
        let target_path = self.dest.map(|dest| dest.join(path));
        self.write_entry(tar_entry, entry, target_path, link_bytes, &lossy_path)
    }

    /// Keeps a GNU long name (or long link name) for the entry that follows it.
    fn long_name<R: Read>(
        &mut self,
        tar_entry: &mut tar::Entry<'_, R>,
        header_name: &str,
        entry_type: u8,
        size: u64,
    ) -> Result<(), PackError> {
        let refuse = |path: &str, problem| PackError::Entry {
            path: path.to_owned(),
            problem,
        };
        let slot = if entry_type == TYPE_LONG_NAME {
            &mut self.long_name
        } else {
            &mut self.long_link
        };
        if slot.is_some() {
            return Err(refuse(
                header_name,
                EntryProblem::Malformed("two long names for one entry"),
            ));
        }
        if size < 2 || size > self.max_long_name_len as u64 + 1 {
            return Err(refuse(
                header_name,
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
                header_name,
                EntryProblem::Malformed("a long name that is not one NUL-terminated string"),
            ));
        }
        *slot = Some(name);
        Ok(())
    }

    /// The manifest entry a tar entry at `path_bytes` must be: the next one, with the same
    /// type and size, at a path that is UTF-8, relative and never climbs. Returns the path
    /// and the entry.
    fn manifest_entry<'p>(
        &mut self,
        path_bytes: &'p [u8],
        lossy_path: &str,
        found: Found,
    ) -> Result<(&'p str, &'a Entry), PackError> {
        let Found {
            entry_type,
            size,
            has_link,
        } = found;
        let refuse = |problem| PackError::Entry {
            path: lossy_path.to_owned(),
            problem,
        };
        let found_kind = match entry_type {
            TYPE_FILE => "file",
            TYPE_DIR => "directory",
            TYPE_SYMLINK => "symlink",
            TYPE_HARD_LINK => return Err(refuse(EntryProblem::HardLink)),
            other => return Err(refuse(EntryProblem::UnsupportedType(type_name(other)))),
        };
        if has_link && entry_type != TYPE_SYMLINK {
            return Err(refuse(EntryProblem::Malformed("a link name on a non-link")));
        }
        let Ok(path) = std::str::from_utf8(path_bytes) else {
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
        Ok((path, entry))
    }

    /// Checks the content of a tar entry against its manifest entry (a symlink's target, a
    /// file's BLAKE3) and, when unpacking, writes it at `target_path`.
    fn write_entry<R: Read>(
        &mut self,
        tar_entry: &mut tar::Entry<'_, R>,
        entry: &Entry,
        target_path: Option<PathBuf>,
        link_bytes: Option<Vec<u8>>,
        lossy_path: &str,
    ) -> Result<(), PackError> {
        let refuse = |problem| PackError::Entry {
            path: lossy_path.to_owned(),
            problem,
        };
        let io_path = target_path.clone().unwrap_or_default();
        match &entry.kind {
            EntryKind::Dir => {
                if let Some(target_path) = &target_path {
                    create_dir(target_path, 0o755)
                        .map_err(io_error(&io_path, "create directory"))?;
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
                    create_symlink(target, target_path)
                        .map_err(io_error(&io_path, "create symlink"))?;
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
                        create_new_nofollow(target_path, mode_for(*executable))
                            .map_err(io_error(&io_path, "create file"))?,
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
                            .map_err(io_error(&io_path, "write"))?;
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
                    // The exact mode, whatever the umask.
                    set_mode(&file, mode_for(*executable))
                        .map_err(io_error(&io_path, "set permissions of"))?;
                }
                Ok(())
            }
        }
    }
}

/// What a tar entry's header says it is.
#[derive(Clone, Copy)]
struct Found {
    entry_type: u8,
    size: u64,
    has_link: bool,
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
