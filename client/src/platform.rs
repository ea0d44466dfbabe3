//! What the client does differently from one operating system to another, in one place.
//!
//! Each function has a Unix version, which is what Mist runs on today, and a version for the
//! other systems, so that the rest of the client does not need `#[cfg]` of its own. File
//! modes exist only on Unix; elsewhere they are ignored, and files get the system's defaults.

use std::io;
use std::path::Path;
use std::process::Command;

/// Creates `dir` and its parents; new folders get mode 0700, since they may hold a token.
#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `dir` and its parents.
#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the folder `dir` (its parent must exist) with `mode`, less the umask.
#[cfg(unix)]
pub(crate) fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(mode).create(dir)
}

/// Creates the folder `dir` (its parent must exist); `mode` has no meaning here.
#[cfg(not(unix))]
pub(crate) fn create_dir(dir: &Path, _mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new().create(dir)
}

/// Makes `link` a symlink to `target`, which is not resolved.
#[cfg(unix)]
pub(crate) fn symlink(target: &str, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Fails: a game's symlinks are made only on Unix, where a manifest can hold them.
#[cfg(not(unix))]
pub(crate) fn symlink(_target: &str, link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("cannot make the symlink {} on this system", link.display()),
    ))
}

/// Replaces this process with `command`, so that the game gets the terminal, the signals
/// and the exit status directly. Returns only if the game could not be started.
#[cfg(unix)]
pub fn exec(command: &mut Command) -> io::Error {
    std::os::unix::process::CommandExt::exec(command)
}

/// Runs `command` and exits with its status: a process cannot replace itself here. Returns
/// only if the game could not be started.
#[cfg(not(unix))]
pub fn exec(command: &mut Command) -> io::Error {
    match command.status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(error) => error,
    }
}
