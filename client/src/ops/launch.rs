//! `mist launch`: the command that starts an installed game.

use anyhow::{Context as _, anyhow, bail};
use mist_games::manifest::EntryKind;

use super::Context;
use crate::state;

/// The program and arguments that start `game`, with the friend's `extra` arguments.
pub fn launch_command(
    context: &Context,
    game: &str,
    extra: &[String],
) -> anyhow::Result<std::process::Command> {
    let installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist list`"))?;
    if installed.version.is_none() || installed.pending.is_some() {
        bail!("{game} has an unfinished install or update; run `mist update {game}` first");
    }
    let launch = installed
        .launch
        .as_ref()
        .ok_or_else(|| anyhow!("the server gave no launch command for {game}"))?;
    // Only a file the manifest lists can be started: never a path outside the install.
    let listed = installed.manifest.entries.iter().any(|entry| {
        entry.path == launch.executable && matches!(entry.kind, EntryKind::File { .. })
    });
    if !listed {
        bail!(
            "the launch executable {:?} of {game} is not a file of the install",
            launch.executable
        );
    }
    let program = installed.dir.join(&launch.executable);
    check_runnable(&program).with_context(|| {
        format!(
            "cannot start {game}: {} is not a program this computer can run",
            launch.executable
        )
    })?;
    let mut command = std::process::Command::new(&program);
    command
        .args(&launch.args)
        .args(extra)
        .current_dir(&installed.dir);
    Ok(command)
}

/// Why a file cannot be started here.
#[derive(Debug, thiserror::Error)]
pub enum NotRunnable {
    /// The file cannot be read.
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    /// No execute permission.
    #[error("it is not marked executable; `mist verify --repair` restores the game's files")]
    NotExecutable,
    /// An ELF file for another processor.
    #[error("it is a Linux program for {found}, and this computer is {here}")]
    OtherMachine {
        /// The program's processor.
        found: String,
        /// This computer's.
        here: &'static str,
    },
    /// Neither an ELF program nor a `#!` script.
    #[error("it is neither a Linux program (ELF) nor a script starting with #!")]
    Unknown,
}

/// Checks that `path` is a program this computer can start: executable, and either a `#!`
/// script or a 64-bit ELF for this processor. Running anything else through the shell
/// would spray its bytes on the terminal.
pub fn check_runnable(path: &std::path::Path) -> Result<(), NotRunnable> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::File::open(path).map_err(NotRunnable::Read)?;
    let mode = file
        .metadata()
        .map_err(NotRunnable::Read)?
        .permissions()
        .mode();
    if mode & 0o111 == 0 {
        return Err(NotRunnable::NotExecutable);
    }
    let mut head = [0u8; 20];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).map_err(NotRunnable::Read)? {
            0 => break,
            n => filled += n,
        }
    }
    let head = &head[..filled];
    if head.starts_with(b"#!") {
        return Ok(());
    }
    if !head.starts_with(b"\x7fELF") || head.len() < 20 {
        return Err(NotRunnable::Unknown);
    }
    let machine = match head[5] {
        2 => u16::from_be_bytes([head[18], head[19]]),
        _ => u16::from_le_bytes([head[18], head[19]]),
    };
    let found = elf_machine(head[4], machine);
    let here = std::env::consts::ARCH;
    if found == here {
        Ok(())
    } else {
        Err(NotRunnable::OtherMachine {
            found: found.to_owned(),
            here,
        })
    }
}

/// The name Rust gives (`std::env::consts::ARCH`) to an ELF class and `e_machine`.
fn elf_machine(class: u8, machine: u16) -> &'static str {
    match (class, machine) {
        (2, 62) => "x86_64",
        (1, 3) => "x86",
        (2, 183) => "aarch64",
        (1, 40) => "arm",
        (2, 243) => "riscv64",
        (2, 21) => "powerpc64",
        (2, 22) => "s390x",
        _ => "another processor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &std::path::Path, name: &str, bytes: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn scripts_and_programs_for_this_processor_run_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let script = file(dir.path(), "run.sh", b"#!/bin/sh\necho hi\n", 0o755);
        assert!(check_runnable(&script).is_ok());
        // This test's own executable is an ELF program for this processor.
        assert!(check_runnable(&std::env::current_exe().unwrap()).is_ok());

        let plain = file(dir.path(), "run2.sh", b"#!/bin/sh\n", 0o644);
        assert!(matches!(
            check_runnable(&plain),
            Err(NotRunnable::NotExecutable)
        ));
        let garbage = file(dir.path(), "game", b"\x00\x01binary junk", 0o755);
        assert!(matches!(
            check_runnable(&garbage),
            Err(NotRunnable::Unknown)
        ));

        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let other = if std::env::consts::ARCH == "aarch64" {
            62u16
        } else {
            183
        };
        elf[18..20].copy_from_slice(&other.to_le_bytes());
        let foreign = file(dir.path(), "foreign", &elf, 0o755);
        let error = check_runnable(&foreign).unwrap_err();
        assert!(matches!(error, NotRunnable::OtherMachine { .. }), "{error}");
        assert!(error.to_string().contains(std::env::consts::ARCH));
    }
}
