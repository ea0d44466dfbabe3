//! `mist uninstall`: the game's files, its update state, its downloads and its local state
//! removed — and the friend's own files (saves, configs, mods) in the install folder kept,
//! unless they ask for a purge.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use mist_games::install::{location, recover, remove};
use serde::Serialize;

use super::Context;
use crate::state;

/// What `mist uninstall` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallReport {
    /// The game.
    pub game: String,
    /// The install folder.
    pub dir: PathBuf,
    /// Files and symlinks of the game removed.
    pub removed: u64,
    /// What was left in the install folder because the game did not install it (relative
    /// paths, folders before their contents); empty after a purge.
    pub kept: Vec<String>,
    /// Whether everything in the folder was removed, the friend's files too.
    pub purged: bool,
}

/// How much to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What the installed version's manifest lists; everything else stays.
    Listed,
    /// The whole install folder, whatever is in it.
    Purge,
}

/// The files in a game's install folder that the game did not install: what an uninstall
/// without a purge keeps. For a confirmation before a purge.
pub fn foreign_files(context: &Context, game: &str) -> anyhow::Result<Vec<String>> {
    let installed = load(context, game)?;
    remove::unlisted(&installed.dir, &installed.manifest)
        .with_context(|| format!("failed to list {}", installed.dir.display()))
}

fn load(context: &Context, game: &str) -> anyhow::Result<state::InstalledGame> {
    state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist status`"))
}

/// Removes a game: the files its manifest lists (or, with [`Scope::Purge`], the whole
/// folder), its staging folder and lock, its downloads and its state.
pub fn uninstall(context: &Context, game: &str, scope: Scope) -> anyhow::Result<UninstallReport> {
    let installed = load(context, game)?;
    let dir = &installed.dir;
    let mut report = UninstallReport {
        game: game.to_owned(),
        dir: dir.clone(),
        removed: 0,
        kept: Vec::new(),
        purged: scope == Scope::Purge,
    };
    if dir.parent().is_some_and(|parent| parent.is_dir()) {
        // The engine's lock file, named while the folder is still there to be found.
        let lock = location::lock_path(dir)
            .with_context(|| format!("failed to find the update state of {game}"))?;
        // Takes the engine's lock (refusing while another `mist` updates the game), settles
        // any interrupted commit and removes the staged files.
        recover::discard_staging(dir)
            .with_context(|| format!("failed to clean up the update state of {game}"))?;
        match scope {
            Scope::Listed => {
                let removal = remove::remove_listed(dir, &installed.manifest)
                    .with_context(|| format!("failed to remove {game}"))?;
                report.removed = removal.removed;
                report.kept = removal.kept;
            }
            Scope::Purge => {
                remove::remove_all(dir).with_context(|| format!("failed to remove {game}"))?;
            }
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
    Ok(report)
}
