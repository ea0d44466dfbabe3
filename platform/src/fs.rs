//! Files and folders: opening without following symlinks, atomic writes, modes and fsyncs.
//!
//! Mist reads files from folders that others may change under it (a build being copied, a
//! friend's install, the NAS) and writes files that a crash must never leave half written.
//! The functions here are the one way every crate does both:
//!
//! - [`open_nofollow`] and [`open_regular_nofollow`] open a path without following a
//!   symlink at its last component and without blocking if a fifo is there;
//! - [`write_atomic`] and [`write_atomic_with`] write a temporary file beside the target,
//!   fsync it, rename (or link) it into place and fsync the folder, as [`AtomicWrite`] says;
//! - [`create_new_nofollow`], [`create_dir`], [`set_mode`], [`sync_dir`],
//!   [`is_executable`], [`is_symlink_refusal`] and [`is_dir_not_empty`] are the pieces.
//!
//! On Unix "without following" is `O_NOFOLLOW`; on Windows the reparse point itself is
//! opened (`FILE_FLAG_OPEN_REPARSE_POINT`), which then fails the regular-file check. Windows
//! has no permission bits and cannot fsync a folder, so modes are ignored there and
//! [`sync_dir`] does nothing.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How [`write_atomic`] and [`write_atomic_with`] write a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite {
    /// The file's permission bits, set exactly whatever the umask; `None` gives what the
    /// system gives any new file (`0o666` less the umask). Ignored on Windows.
    pub mode: Option<u32>,
    /// Whether a file already at the path is replaced. When `false` the write fails with
    /// [`io::ErrorKind::AlreadyExists`] and leaves that file as it is, even if it appears
    /// while the new one is being written (the new file is hard-linked into place).
    pub replace: bool,
}

impl Default for AtomicWrite {
    /// Replaces any file at the path, with the system's default mode.
    fn default() -> Self {
        AtomicWrite {
            mode: None,
            replace: true,
        }
    }
}

/// Opens `path` for reading without following a symlink at its last component and without
/// blocking if it is a fifo; the file may be of any type.
///
/// On Unix a symlink fails with `ELOOP` (see [`is_symlink_refusal`]) and the file is open
/// with `O_NONBLOCK`, which a caller that goes on reading a regular file should clear with
/// [`clear_nonblocking`]. On Windows the link itself is opened. Callers that only want a
/// regular file use [`open_regular_nofollow`].
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    options.open(path)
}

/// Opens the regular file at `path` for reading, refusing a symlink (never followed), a
/// folder, a fifo (without blocking on it), a device or a socket.
///
/// Anything but a regular file fails with the message `not a regular file`; a symlink on
/// Unix fails earlier, with `ELOOP`. The returned file reads blocking, like any other.
pub fn open_regular_nofollow(path: &Path) -> io::Result<File> {
    let file = open_nofollow(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    // Some file systems (FUSE, old mandatory locks) can answer `EAGAIN` to a non-blocking
    // read even of a regular file, so the flag that kept a fifo from blocking goes.
    clear_nonblocking(&file)?;
    Ok(file)
}

/// Clears the `O_NONBLOCK` that [`open_nofollow`] set, once the file is known to be
/// regular. Does nothing on Windows.
pub fn clear_nonblocking(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `fcntl(F_GETFL)` and `fcntl(F_SETFL)` on a descriptor `file` owns.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; only `O_NONBLOCK` changes.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Whether `error` is how [`open_nofollow`] refuses a symlink (`ELOOP` on Unix; never on
/// Windows, where the link itself opens).
pub fn is_symlink_refusal(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        error.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// Whether `error` is how removing a folder fails because it still holds something
/// (`ENOTEMPTY`, or `EEXIST`, which some Unix systems answer instead).
pub fn is_dir_not_empty(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            error.raw_os_error(),
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
        )
    }
    #[cfg(not(unix))]
    {
        error.kind() == io::ErrorKind::DirectoryNotEmpty
    }
}

/// Creates the new file `path` for writing with permission bits `mode` (less the umask),
/// failing if anything, a symlink included, is there. `mode` is ignored on Windows.
pub fn create_new_nofollow(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW).mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Creates the folder `path` with permission bits `mode` (less the umask), failing if
/// anything, a symlink included, is there; its parent must exist. `mode` is ignored on
/// Windows.
pub fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().mode(mode).create(path)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        fs::create_dir(path)
    }
}

/// Sets the permission bits of an open file exactly, whatever the umask. Does nothing on
/// Windows.
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// Whether any of the Unix execute bits (`0o111`) is set; always `false` on Windows.
pub fn is_executable(metadata: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        false
    }
}

/// Fsyncs the folder `dir`, so that a file created, renamed or removed in it stays so after
/// a power loss. Does nothing on Windows, which cannot open a folder as a file.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Bytes an unprivileged user may still write on the file system that holds `path`, or
/// would hold it: a path that does not exist yet is measured at its nearest existing
/// ancestor. `u64::MAX` where the platform cannot say (see [`free_space`]).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    Ok(free_space(nearest_existing(path))?.unwrap_or(u64::MAX))
}

/// `path` if it exists, else its nearest ancestor that does (`.` for a relative path none
/// of whose ancestors exists): where a file at `path` would be created.
pub fn nearest_existing(path: &Path) -> &Path {
    path.ancestors()
        .find(|at| !at.as_os_str().is_empty() && at.exists())
        .unwrap_or(Path::new("."))
}

/// Bytes an unprivileged user may still write on the file system that holds `path`
/// (`statvfs`'s available blocks times the fragment size); `None` where the platform has no
/// such call.
pub fn free_space(path: &Path) -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
        // SAFETY: an all-zero `statvfs` is a valid value to be overwritten.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a writable `statvfs`.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(
            clippy::useless_conversion,
            reason = "the field types differ by platform"
        )]
        let bytes = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
        Ok(Some(bytes))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Writes `bytes` to `path` so that a reader, or a crash, sees the old file or the new one,
/// never a part; see [`write_atomic_with`].
pub fn write_atomic(path: &Path, bytes: &[u8], options: AtomicWrite) -> io::Result<()> {
    write_atomic_with(path, options, |file| file.write_all(bytes))
}

/// Writes `path` through `fill` so that a reader, or a crash, sees the old file or the new
/// one, never a part.
///
/// `fill` writes into a new temporary file beside `path` (`.<name>.tmp-<pid>-<n>`, created
/// without following a symlink); the file then gets its mode, is fsynced and renamed over
/// `path` (or, without [`AtomicWrite::replace`], hard-linked to it, which fails if `path`
/// exists), and the folder is fsynced. The folder must exist. On any error the temporary
/// file is removed and `path` is as it was. A symlink at `path` is replaced, never
/// followed; a folder there makes the rename fail.
pub fn write_atomic_with<E: From<io::Error>>(
    path: &Path,
    options: AtomicWrite,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let tmp = temp_beside(path)?;
    let mut file = match create_new_nofollow(&tmp, options.mode.unwrap_or(0o666)) {
        // A file left by a process that had the same id and crashed.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            create_new_nofollow(&tmp, options.mode.unwrap_or(0o666))?
        }
        other => other?,
    };
    let written = (|| {
        fill(&mut file)?;
        if let Some(mode) = options.mode {
            // The umask may have taken bits away.
            set_mode(&file, mode)?;
        }
        file.sync_all()?;
        drop(file);
        if options.replace {
            fs::rename(&tmp, path)?;
        } else {
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        Ok::<_, E>(())
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    sync_dir(dir)?;
    Ok(())
}

/// A temporary name beside `path` that no other write of this process uses at once.
fn temp_beside(path: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(path.with_file_name(format!(
        ".{}.tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Opens a reparse point (a symlink) itself rather than what it points to.
#[cfg(windows)]
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
