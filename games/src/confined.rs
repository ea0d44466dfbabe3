//! File operations relative to open directories that never follow a symlink.
//!
//! Every path below a root is reached one component at a time with
//! `openat(O_NOFOLLOW | O_DIRECTORY)`, so a symlink where a directory should be fails with
//! an error instead of leading outside, and renames, removals and creations name a single
//! component inside a directory already open.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// An open directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

/// What a name is, without following symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "folder",
            Kind::Symlink => "symlink",
            Kind::Other => "special file",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
}

/// Why a path below a directory could not be opened as a directory.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// The component ending `prefix` is a symlink.
    Symlink { prefix: String },
    /// The component ending `prefix` is something else that is not a directory.
    NotDir { prefix: String },
    /// Another error at the component ending `prefix`.
    Io { prefix: String, source: io::Error },
}

fn c_name(name: &[u8]) -> io::Result<CString> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a name contains a NUL byte"))
}

/// Runs a system call until it is not interrupted.
fn retry(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        let ret = call();
        if ret >= 0 {
            return Ok(ret);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

impl Dir {
    /// Opens `path` as a directory; symlinks in `path` itself are followed (it comes
    /// from the user, not from an input file).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let path = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = retry(|| unsafe { libc::open(path.as_ptr(), DIR_FLAGS) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the child directory `name`, refusing a symlink.
    pub(crate) fn open_dir(&self, name: impl AsRef<[u8]>) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.open_at(name.as_ref(), DIR_FLAGS | libc::O_NOFOLLOW, 0)?,
        })
    }

    /// Opens the directory `rel` (`/`-separated, may be empty for this one), one
    /// component at a time.
    pub(crate) fn open_path(&self, rel: &str) -> Result<Dir, WalkError> {
        let mut dir = self.try_clone().map_err(|source| WalkError::Io {
            prefix: String::new(),
            source,
        })?;
        if rel.is_empty() {
            return Ok(dir);
        }
        let mut end = 0;
        for component in rel.split('/') {
            end += component.len();
            let prefix = &rel[..end];
            end += 1;
            dir = match dir.open_dir(component) {
                Ok(next) => next,
                Err(error)
                    if matches!(
                        error.raw_os_error(),
                        Some(libc::ELOOP) | Some(libc::ENOTDIR)
                    ) =>
                {
                    let prefix = prefix.to_owned();
                    let is_symlink = dir
                        .stat(component)
                        .ok()
                        .flatten()
                        .is_some_and(|stat| stat.kind == Kind::Symlink);
                    return Err(if is_symlink {
                        WalkError::Symlink { prefix }
                    } else {
                        WalkError::NotDir { prefix }
                    });
                }
                Err(source) => {
                    return Err(WalkError::Io {
                        prefix: prefix.to_owned(),
                        source,
                    });
                }
            };
        }
        Ok(dir)
    }

    pub(crate) fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// What `name` is, without following a symlink; `None` if it does not exist.
    pub(crate) fn stat(&self, name: impl AsRef<[u8]>) -> io::Result<Option<Stat>> {
        let name = c_name(name.as_ref())?;
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, NUL-terminated name and a writable `stat`.
        let result = retry(|| unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        });
        match result {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        }
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        };
        Ok(Some(Stat {
            kind,
            size: st.st_size as u64,
            #[allow(clippy::unnecessary_cast, reason = "mode_t is u16 on some systems")]
            mode: (st.st_mode & 0o7777) as u32,
        }))
    }

    /// Opens the regular file `name` for reading, refusing a symlink and never
    /// blocking on a fifo.
    pub(crate) fn open_file(&self, name: impl AsRef<[u8]>) -> io::Result<File> {
        let file = File::from(self.open_at(
            name.as_ref(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            0,
        )?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        Ok(file)
    }

    /// Creates the new file `name` for writing; fails if anything is there.
    pub(crate) fn create_file(&self, name: impl AsRef<[u8]>, mode: u32) -> io::Result<File> {
        Ok(File::from(self.open_at(
            name.as_ref(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )?))
    }

    /// Renames `from` here to `to` in `to_dir`, replacing a file there.
    pub(crate) fn rename(
        &self,
        from: impl AsRef<[u8]>,
        to_dir: &Dir,
        to: impl AsRef<[u8]>,
    ) -> io::Result<()> {
        self.rename_at(&c_name(from.as_ref())?, to_dir, &c_name(to.as_ref())?)
    }

    /// Renames `from` here to `to` in `to_dir`, failing with `AlreadyExists` if
    /// anything is there.
    pub(crate) fn rename_noreplace(
        &self,
        from: impl AsRef<[u8]>,
        to_dir: &Dir,
        to: impl AsRef<[u8]>,
    ) -> io::Result<()> {
        let (from, to) = (c_name(from.as_ref())?, c_name(to.as_ref())?);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: valid fds and NUL-terminated names.
            let result = retry(|| unsafe {
                libc::renameat2(
                    self.fd.as_raw_fd(),
                    from.as_ptr(),
                    to_dir.fd.as_raw_fd(),
                    to.as_ptr(),
                    libc::RENAME_NOREPLACE as libc::c_uint,
                )
            });
            match result {
                Ok(_) => return Ok(()),
                // File systems without RENAME_NOREPLACE fall through to check-then-rename.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {}
                Err(error) => return Err(error),
            }
        }
        let to_name = to.to_bytes();
        if to_dir.stat(to_name)?.is_some() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        self.rename_at(&from, to_dir, &to)
    }

    /// `renameat(2)` from `from` here to `to` in `to_dir`.
    fn rename_at(&self, from: &CStr, to_dir: &Dir, to: &CStr) -> io::Result<()> {
        // SAFETY: valid fds and NUL-terminated names.
        retry(|| unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                from.as_ptr(),
                to_dir.fd.as_raw_fd(),
                to.as_ptr(),
            )
        })
        .map(drop)
    }

    /// `openat(2)` of `name` here with `flags` (and `mode`, when they create a file).
    fn open_at(&self, name: &[u8], flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
        let name = c_name(name)?;
        // SAFETY: valid fd and NUL-terminated name.
        let fd = retry(|| unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags,
                mode as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub(crate) fn mkdir(&self, name: impl AsRef<[u8]>, mode: u32) -> io::Result<()> {
        let name = c_name(name.as_ref())?;
        // SAFETY: valid fd and NUL-terminated name.
        retry(|| unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
            .map(drop)
    }

    pub(crate) fn remove_file(&self, name: impl AsRef<[u8]>) -> io::Result<()> {
        let name = c_name(name.as_ref())?;
        // SAFETY: valid fd and NUL-terminated name.
        retry(|| unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    pub(crate) fn remove_dir(&self, name: impl AsRef<[u8]>) -> io::Result<()> {
        let name = c_name(name.as_ref())?;
        // SAFETY: valid fd and NUL-terminated name.
        retry(|| unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    pub(crate) fn symlink(&self, target: &str, name: impl AsRef<[u8]>) -> io::Result<()> {
        let name = c_name(name.as_ref())?;
        let target = CString::new(target)?;
        // SAFETY: valid fd and NUL-terminated strings.
        retry(|| unsafe { libc::symlinkat(target.as_ptr(), self.fd.as_raw_fd(), name.as_ptr()) })
            .map(drop)
    }

    pub(crate) fn read_link(&self, name: impl AsRef<[u8]>) -> io::Result<Vec<u8>> {
        let name = c_name(name.as_ref())?;
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: valid fd, NUL-terminated name, and `buf` is writable for its length.
            let n = unsafe {
                libc::readlinkat(
                    self.fd.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n < buf.len() {
                buf.truncate(n);
                return Ok(buf);
            }
            buf.resize(buf.len() * 2, 0);
        }
    }

    /// Sets the permission bits of the regular file `name` (never through a symlink).
    pub(crate) fn set_mode(&self, name: impl AsRef<[u8]>, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.open_file(name)?
            .set_permissions(std::fs::Permissions::from_mode(mode))
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        // SAFETY: valid fd.
        retry(|| unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    /// The names in this directory, without `.` and `..`, sorted.
    pub(crate) fn list(&self) -> io::Result<Vec<Vec<u8>>> {
        // SAFETY: valid fd; the duplicate is owned by the DIR stream from here on.
        let dup = retry(|| unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: `dup` is an open directory fd nobody else owns.
        let stream = unsafe { libc::fdopendir(dup) };
        if stream.is_null() {
            let error = io::Error::last_os_error();
            // SAFETY: `dup` is still ours when fdopendir fails.
            unsafe { libc::close(dup) };
            return Err(error);
        }
        // The duplicate shares the read position with the original.
        // SAFETY: `stream` is a valid DIR stream.
        unsafe { libc::rewinddir(stream) };
        let mut names = Vec::new();
        let result = loop {
            clear_errno();
            // SAFETY: `stream` is a valid DIR stream.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                let error = io::Error::last_os_error();
                break match error.raw_os_error() {
                    Some(0) | None => Ok(()),
                    Some(_) => Err(error),
                };
            }
            // SAFETY: `d_name` of a returned entry is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        };
        // SAFETY: `stream` is valid and closed once; this also closes `dup`.
        unsafe { libc::closedir(stream) };
        result?;
        names.sort();
        Ok(names)
    }

    /// Bytes available to unprivileged users on this directory's file system.
    pub(crate) fn free_bytes(&self) -> io::Result<u64> {
        // SAFETY: an all-zero `statvfs` is a valid value to be overwritten.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and a writable `statvfs`.
        retry(|| unsafe { libc::fstatvfs(self.fd.as_raw_fd(), &mut st) })?;
        #[allow(clippy::unnecessary_cast, reason = "the field types differ by system")]
        Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }

    /// Removes `name` and everything below it, never following a symlink; nothing if
    /// it does not exist. Calls `on_remove` after each removal.
    pub(crate) fn remove_tree(
        &self,
        name: impl AsRef<[u8]>,
        on_remove: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let name = name.as_ref();
        match self.stat(name)? {
            None => return Ok(()),
            Some(stat) if stat.kind == Kind::Dir => {
                let dir = self.open_dir(name)?;
                for child in dir.list()? {
                    dir.remove_tree(&child, on_remove)?;
                }
                drop(dir);
                self.remove_dir(name)?;
            }
            Some(_) => self.remove_file(name)?,
        }
        on_remove();
        Ok(())
    }

    /// Opens (creating) the file `name` and takes an exclusive `flock` on it without
    /// waiting: `WouldBlock` if another process holds it. Released when the file is
    /// closed, including when the process dies.
    pub(crate) fn lock_file(&self, name: impl AsRef<[u8]>) -> io::Result<File> {
        let file = File::from(self.open_at(
            name.as_ref(),
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )?);
        // SAFETY: valid fd.
        retry(|| unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })?;
        Ok(file)
    }
}

fn clear_errno() {
    // SAFETY: the errno location is valid for the current thread.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe {
        *libc::__errno_location() = 0;
    }
    // SAFETY: the errno location is valid for the current thread.
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    unsafe {
        *libc::__error() = 0;
    }
}
