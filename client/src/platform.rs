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

/// Runs the game `command` and waits for it. The game shares the terminal: a Ctrl-C (or
/// Ctrl-\\) reaches the game, which decides what to do with it, while `mist` ignores it and
/// keeps waiting, so the game's end is always reported. Fails only if the game could not
/// be started.
#[cfg(unix)]
pub fn run_game(command: &mut Command) -> io::Result<std::process::ExitStatus> {
    let mut child = command.spawn()?;
    // Ignored only once the game runs: an ignored signal would stay ignored in the game.
    // SAFETY: signal(2) with valid signal numbers and SIG_IGN; no handler runs.
    let previous = unsafe {
        [
            (libc::SIGINT, libc::signal(libc::SIGINT, libc::SIG_IGN)),
            (libc::SIGQUIT, libc::signal(libc::SIGQUIT, libc::SIG_IGN)),
        ]
    };
    let status = child.wait();
    for (signal, handler) in previous {
        // SAFETY: restores the disposition signal(2) returned for the same signal.
        unsafe { libc::signal(signal, handler) };
    }
    status
}

/// Runs the game `command` and waits for it. Fails only if the game could not be started.
#[cfg(not(unix))]
pub fn run_game(command: &mut Command) -> io::Result<std::process::ExitStatus> {
    command.status()
}

/// The exit code a shell would show for `status`: the code, or 128 + the signal that ended
/// the process.
#[cfg(unix)]
pub fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

/// The exit code of `status` (1 when there is none).
#[cfg(not(unix))]
pub fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    status.code().map_or(1, |code| code as u8)
}
