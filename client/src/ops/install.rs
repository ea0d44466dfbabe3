//! `mist install` and `mist update`: the server's plan for a game, downloaded and applied
//! step by step (see `steps`), and the summary of what that cost.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use mist_games::install::InstallOptions;
use mist_games::manifest::{EntryKind, Manifest};
use mist_platform::units::human_size;
use serde::Serialize;

use super::steps::{StageTimes, fetch_manifest, run_steps};
use super::{Context, connect};
use crate::download::Downloader;
use crate::state::{self, InstalledGame};
use mist_wire::catalog::GameDetail;
use mist_wire::update::{PlanStep, Route, StepKind, UpdatePlan};

/// What `mist install` and `mist update` did to one game.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSummary {
    /// The game.
    pub game: String,
    /// The version before, if any.
    pub from: Option<String>,
    /// The version now.
    pub to: String,
    /// `installed`, `updated`, `resumed` or `upToDate`.
    pub outcome: &'static str,
    /// The planner's route: `full`, `skip`, `chain` or `upToDate`.
    pub route: String,
    /// The bytes the plan said to download.
    pub planned_bytes: u64,
    /// The bytes actually received (less when a download resumed).
    pub downloaded_bytes: u64,
    /// What a full download would have cost, if the planner priced it.
    pub full_bytes: Option<u64>,
    /// Seconds from the start of the first download to the last download verified.
    pub download_seconds: f64,
    /// Seconds spent applying steps (and recording them in the state), summed over steps;
    /// it overlaps the download time when there are several steps.
    pub apply_seconds: f64,
    /// The install folder.
    pub dir: PathBuf,
}

/// Installs `game` at `version` (default: the newest) into `dir` (default: the library in
/// the data folder), or finishes an interrupted install.
pub async fn install(
    context: &Context,
    game: &str,
    version: Option<&str>,
    dir: Option<&Path>,
) -> anyhow::Result<UpdateSummary> {
    check_game_name(game)?;
    let api = connect(&context.dirs)?;
    let recorded = state::load_game(&context.dirs, game)?;
    let fresh = recorded.is_none();
    let mut installed = match recorded {
        Some(installed) if installed.version.is_some() => bail!(
            "{game} is already installed ({} in {}); use `mist update {game}`",
            installed.version.as_deref().unwrap_or_default(),
            installed.dir.display()
        ),
        Some(installed) => {
            if let Some(dir) = dir
                && absolute(dir)? != installed.dir
            {
                bail!(
                    "an install of {game} into {} was interrupted; run `mist install {game}` \
                     without --dir to finish it, or `mist uninstall {game}` first",
                    installed.dir.display()
                );
            }
            installed
        }
        None => {
            let dir = match dir {
                Some(dir) => absolute(dir)?,
                None => context.dirs.default_install_dir(game),
            };
            check_free_for_install(&dir)?;
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("failed to create {}", parent.display()))?;
            }
            InstalledGame {
                game: game.to_owned(),
                dir,
                version: None,
                manifest: Manifest {
                    entries: Vec::new(),
                },
                launch: None,
                wanted: version.map(str::to_owned),
                pending: None,
            }
        }
    };
    if let (Some(wanted), Some(version)) = (&installed.wanted, version)
        && wanted != version
    {
        bail!(
            "an install of {game} {wanted} was interrupted; run `mist install {game}` to \
             finish it, or `mist uninstall {game}` first"
        );
    }
    let version = version.map(str::to_owned).or(installed.wanted.clone());
    let detail = api.game(game).await?;
    installed.launch = detail.launch.clone();
    let downloader = Downloader::new(api.clone(), context.dirs.downloads(), context.download);
    if let Some(summary) = finish_pending(context, &downloader, &detail, &mut installed).await? {
        return Ok(summary);
    }
    // Recorded before anything is downloaded, so that `mist status` shows the install and
    // `mist uninstall` can clean up after an interrupted one.
    state::save_game(&context.dirs, &installed)?;
    let plan = api.plan(game, None, version.as_deref()).await?;
    let target = fetch_manifest(&downloader, plan.manifest.as_ref(), &detail, &plan.to).await?;
    if let Err(error) = check_space(context, &installed, &target, plan.total_bytes) {
        if fresh {
            // Nothing was downloaded or written: the install is not left half-begun.
            state::remove_game(&context.dirs, game)?;
        }
        return Err(error);
    }
    let times = run_steps(
        context,
        &downloader,
        &detail,
        &mut installed,
        &plan.steps,
        Some(&target),
    )
    .await?;
    Ok(plan_summary(
        game,
        None,
        "installed",
        (&plan, times),
        &downloader,
        installed.dir,
    ))
}

/// Updates an installed game to the newest version (finishing an interrupted step first).
pub async fn update(context: &Context, game: &str) -> anyhow::Result<UpdateSummary> {
    let api = connect(&context.dirs)?;
    let mut installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist list`"))?;
    let detail = api.game(game).await?;
    installed.launch = detail.launch.clone();
    let downloader = Downloader::new(api.clone(), context.dirs.downloads(), context.download);
    let resumed = finish_pending(context, &downloader, &detail, &mut installed).await?;
    let Some(from) = installed.version.clone() else {
        bail!("the first install of {game} did not finish; run `mist install {game}`");
    };
    let plan = api.plan(game, Some(&from), None).await?;
    if plan.route == Route::UpToDate {
        state::save_game(&context.dirs, &installed)?;
        return Ok(resumed.unwrap_or(UpdateSummary {
            game: game.to_owned(),
            from: Some(from.clone()),
            to: from,
            outcome: "upToDate",
            route: plan.route.as_str().to_owned(),
            planned_bytes: 0,
            downloaded_bytes: downloader.bytes_received(),
            full_bytes: None,
            download_seconds: 0.0,
            apply_seconds: 0.0,
            dir: installed.dir,
        }));
    }
    let target = match &plan.manifest {
        Some(link) => Some(fetch_manifest(&downloader, Some(link), &detail, &plan.to).await?),
        None => None,
    };
    if let Some(target) = &target {
        check_space(context, &installed, target, plan.total_bytes)?;
    }
    let pack_target = match plan.steps.first().map(|step| step.kind) {
        Some(StepKind::Pack) if target.is_some() => target,
        Some(StepKind::Pack) => {
            Some(fetch_manifest(&downloader, plan.manifest.as_ref(), &detail, &plan.to).await?)
        }
        _ => None,
    };
    let times = run_steps(
        context,
        &downloader,
        &detail,
        &mut installed,
        &plan.steps,
        pack_target.as_ref(),
    )
    .await?;
    let (resumed_download, resumed_apply) = resumed.as_ref().map_or((0.0, 0.0), |summary| {
        (summary.download_seconds, summary.apply_seconds)
    });
    let from = resumed.and_then(|summary| summary.from).or(Some(from));
    let mut summary = plan_summary(
        game,
        from,
        "updated",
        (&plan, times),
        &downloader,
        installed.dir,
    );
    summary.download_seconds += resumed_download;
    summary.apply_seconds += resumed_apply;
    Ok(summary)
}

/// What carrying out `plan` cost, in `times`, as `install` and `update` report it.
fn plan_summary(
    game: &str,
    from: Option<String>,
    outcome: &'static str,
    (plan, times): (&UpdatePlan, StageTimes),
    downloader: &Downloader,
    dir: PathBuf,
) -> UpdateSummary {
    UpdateSummary {
        game: game.to_owned(),
        from,
        to: plan.to.clone(),
        outcome,
        route: plan.route.as_str().to_owned(),
        planned_bytes: plan.total_bytes,
        downloaded_bytes: downloader.bytes_received(),
        full_bytes: plan.full_bytes(),
        download_seconds: times.download.as_secs_f64(),
        apply_seconds: times.apply.as_secs_f64(),
        dir,
    }
}

/// Applies the step recorded as pending, if any.
async fn finish_pending(
    context: &Context,
    downloader: &Downloader,
    detail: &GameDetail,
    installed: &mut InstalledGame,
) -> anyhow::Result<Option<UpdateSummary>> {
    let Some(pending) = installed.pending.clone() else {
        return Ok(None);
    };
    context.progress.println(&format!(
        "Finishing the interrupted step of {} to {}",
        installed.game, pending.to
    ));
    let from = installed.version.clone();
    let step = PlanStep {
        kind: pending.kind,
        from: from.clone(),
        to: pending.to.clone(),
        digest: pending.digest.clone(),
        size: pending.size,
        url: mist_wire::digest::artifact_path(&pending.digest),
    };
    let times = run_steps(
        context,
        downloader,
        detail,
        installed,
        &[step],
        pending.target_manifest.as_ref(),
    )
    .await?;
    Ok(Some(UpdateSummary {
        game: installed.game.clone(),
        from,
        to: pending.to,
        outcome: "resumed",
        route: "resumed".into(),
        planned_bytes: pending.size,
        downloaded_bytes: downloader.bytes_received(),
        full_bytes: None,
        download_seconds: times.download.as_secs_f64(),
        apply_seconds: times.apply.as_secs_f64(),
        dir: installed.dir.clone(),
    }))
}

/// Game names as the server allows them; anything else never reaches a path or a URL.
fn check_game_name(game: &str) -> anyhow::Result<()> {
    let valid = !game.is_empty()
        && game.len() <= 63
        && game
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !game.starts_with('-');
    if valid {
        Ok(())
    } else {
        bail!("{game:?} is not a game name (lowercase letters, digits and '-')")
    }
}

/// Checks, before anything is downloaded, that the disks hold what going from `installed`
/// to `target` takes: the downloads, the new and changed files staged beside the install,
/// and the engine's margin, which is kept free so that the disk never fills to the last
/// byte.
fn check_space(
    context: &Context,
    installed: &InstalledGame,
    target: &Manifest,
    download_bytes: u64,
) -> anyhow::Result<()> {
    let current: std::collections::HashMap<&str, &EntryKind> = installed
        .manifest
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let staged: u64 = target
        .entries
        .iter()
        .filter(|entry| current.get(entry.path.as_str()) != Some(&&entry.kind))
        .map(|entry| match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    let margin = InstallOptions::default().free_space_margin;
    let downloads = context.dirs.downloads();
    let same_disk = device(&installed.dir)? == device(&downloads)?;
    let mut checks = vec![(&installed.dir, staged + margin)];
    if same_disk {
        checks[0].1 += download_bytes;
    } else {
        checks.push((&downloads, download_bytes + margin));
    }
    for (dir, needed) in checks {
        let free = mist_platform::fs::free_bytes(dir)
            .with_context(|| format!("failed to read the free space of {}", dir.display()))?;
        if free < needed {
            bail!(
                "not enough free space for {}: {} needs {} ({} to download, {} of new files, \
                 and {} kept free so that the disk never fills up), and {} is free; nothing \
                 was downloaded",
                installed.game,
                dir.display(),
                human_size(needed),
                human_size(download_bytes),
                human_size(staged),
                human_size(margin),
                human_size(free),
            );
        }
    }
    Ok(())
}

/// The file system device holding `path`, or the nearest folder above it that exists.
fn device(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let existing = mist_platform::fs::nearest_existing(path);
    Ok(std::fs::metadata(existing)
        .with_context(|| format!("failed to read {}", existing.display()))?
        .dev())
}

/// A fresh install needs a folder that is missing or empty: `mist uninstall` removes the
/// whole folder, so it must hold nothing but the game.
fn check_free_for_install(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; install into a new or empty folder",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("failed to read {}", dir.display())),
    }
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("failed to resolve {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_names_are_checked() {
        assert!(check_game_name("starfall").is_ok());
        assert!(check_game_name("half-life-2").is_ok());
        for bad in ["", "../etc", "Star", "a/b", "-x", "a b"] {
            assert!(check_game_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn installs_need_an_empty_or_missing_folder() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check_free_for_install(&tmp.path().join("missing")).is_ok());
        assert!(check_free_for_install(tmp.path()).is_ok());
        std::fs::write(tmp.path().join("save.dat"), b"mine").unwrap();
        assert!(check_free_for_install(tmp.path()).is_err());
    }
}
