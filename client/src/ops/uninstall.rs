//! `mist uninstall`: a game's folder, its update state, its downloads and its local state
//! removed.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use mist_games::install::{location, recover};

use super::Context;
use crate::state;

/// Removes a game's files, its staging folder and lock, its downloads and its state.
pub fn uninstall(context: &Context, game: &str) -> anyhow::Result<PathBuf> {
    let installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist status`"))?;
    let dir = &installed.dir;
    if dir.parent().is_some_and(|parent| parent.is_dir()) {
        // The engine's lock file, named while the folder is still there to be found.
        let lock = location::lock_path(dir)
            .with_context(|| format!("failed to find the update state of {game}"))?;
        // Takes the engine's lock (refusing while another `mist` updates the game), settles
        // any interrupted commit and removes the staged files.
        recover::discard_staging(dir)
            .with_context(|| format!("failed to clean up the update state of {game}"))?;
        match std::fs::remove_dir_all(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("failed to remove {}", dir.display()));
            }
            _ => {}
        }
        match std::fs::remove_file(&lock) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("failed to remove {}", lock.display()));
            }
            _ => {}
        }
    }
    if let Some(pending) = &installed.pending {
        let downloads = context.dirs.downloads();
        for path in [
            downloads.join(&pending.digest),
            downloads.join(format!("{}.part", pending.digest)),
        ] {
            let _ = std::fs::remove_file(path);
        }
    }
    state::remove_game(&context.dirs, game)?;
    Ok(installed.dir)
}
