//! Scanning a build folder into a [`Manifest`]: every entry listed without following
//! symlinks, every file hashed with BLAKE3 in parallel, and the files checked not to have
//! changed while they were read.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use mist_platform::fs::{clear_nonblocking, is_executable, is_symlink_refusal, open_nofollow};
use rayon::prelude::*;

use crate::manifest::{Entry, EntryKind, FileHash, Manifest, SymlinkProblem, check_symlink_target};

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
    #[error("failed to {action} {}", path.display())]
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

/// Checks that the build directory `root` could be scanned, without reading any file: the
/// same walk as [`scan`], refusing what it refuses (special files, names that are not UTF-8,
/// symlinks whose target is absolute or leaves the root). Returns the number of files.
pub fn check_build(root: &Path) -> Result<usize, ScanError> {
    list(root).map(|listing| listing.files.len())
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

/// Files at least this large are hashed with several threads (BLAKE3's tree splits across
/// the rayon pool); smaller ones on one thread each, in parallel with other files, because
/// splitting a small input costs more than it gains.
const PARALLEL_MIN_SIZE: u64 = 1024 * 1024;

/// Files are read and hashed this many bytes at a time: large enough for BLAKE3 to split
/// a piece across threads, small enough to stay in cache between the read and the hash.
const PIECE_SIZE: usize = 4 * 1024 * 1024;

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

crate::io_error::io_error_fn!(ScanError);

/// Walks `root` with an explicit stack, so deep trees cannot overflow the call stack.
fn list(root: &Path) -> Result<Listing, ScanError> {
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
    let changed = |detail: String| ScanError::Changed {
        path: file.path.clone(),
        detail,
    };
    // Opened without following a symlink that replaced the file since the listing, and
    // without blocking if a fifo did.
    let handle = match open_nofollow(&file.path) {
        Ok(handle) => handle,
        Err(error) if is_symlink_refusal(&error) => {
            return Err(changed("it was replaced by a symlink".to_owned()));
        }
        Err(error) => return Err(io_error(&file.path, "open")(error)),
    };
    let before = handle
        .metadata()
        .map_err(io_error(&file.path, "read metadata of"))?;
    if !before.is_file() {
        return Err(changed("it is no longer a regular file".to_owned()));
    }
    // Some file systems (FUSE, old mandatory locks) can answer `EAGAIN` to a non-blocking
    // read even of a regular file.
    clear_nonblocking(&handle).map_err(io_error(&file.path, "configure"))?;
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
        let filled = read_up_to(&handle, &mut buf[..want]).map_err(io_error(&file.path, "read"))?;
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
    let after = handle
        .metadata()
        .map_err(io_error(&file.path, "read metadata of"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
