//! `mist launch`: the command that starts an installed game.

use anyhow::{anyhow, bail};
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
    let mut command = std::process::Command::new(installed.dir.join(&launch.executable));
    command
        .args(&launch.args)
        .args(extra)
        .current_dir(&installed.dir);
    Ok(command)
}
