//! `mist verify`: every installed entry compared with the manifest of its version.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};
use mist_games::manifest::EntryKind;
use mist_games::scan;
use serde::Serialize;

use super::Context;
use crate::state;

/// `mist verify`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The game.
    pub game: String,
    /// The version checked against.
    pub version: Option<String>,
    /// Entries of the manifest missing on disk.
    pub missing: Vec<String>,
    /// Entries present but different (content, size, type, mode or symlink target).
    pub changed: Vec<String>,
    /// Entries on disk the manifest does not list (saves, mods…); never an error.
    pub extra: Vec<String>,
}

impl VerifyReport {
    /// Whether every manifest entry is intact.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty()
    }
}

/// Compares every installed file with the manifest.
pub fn verify(context: &Context, game: &str) -> anyhow::Result<VerifyReport> {
    let installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist status`"))?;
    if installed.version.is_none() || installed.pending.is_some() {
        bail!("{game} has an unfinished install or update; run `mist update {game}` first");
    }
    let bar = context
        .progress
        .bytes("verify", installed.manifest.total_size());
    let on_disk = scan::scan_with_progress(&installed.dir, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("failed to read {}", installed.dir.display()))?;
    bar.finish();
    let expected: BTreeMap<&str, &EntryKind> = installed
        .manifest
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let found: BTreeMap<&str, &EntryKind> = on_disk
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let mut report = VerifyReport {
        game: game.to_owned(),
        version: installed.version.clone(),
        ..VerifyReport::default()
    };
    for (path, kind) in &expected {
        match found.get(path) {
            None => report.missing.push((*path).to_owned()),
            Some(found) if found != kind => report.changed.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    report.extra = found
        .keys()
        .filter(|path| !expected.contains_key(*path))
        .map(|path| (*path).to_owned())
        .collect();
    Ok(report)
}
