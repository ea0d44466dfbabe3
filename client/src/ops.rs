//! The commands: each takes a [`Context`], talks to the server, changes installs only
//! through `mist_games::install`, and returns a report that `main` prints as text or JSON.
//!
//! An install or update is a list of steps (a pack, or tree deltas in order). All the
//! steps' downloads start at once (at most [`DownloadOptions::jobs`] run together) and each
//! step is applied as soon as it and the steps before it are ready, so downloading and
//! applying overlap. Before a step is applied the game's state records it as pending; after
//! the engine commits it the state moves to the new version. A run stopped anywhere is
//! finished by the next `mist install` or `mist update`: the engine rolls a half-committed
//! step forward or back, a step already committed is recognised as current, and downloads
//! resume from their partial files.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use mist_games::install::{InstallOptions, Outcome, recover, update};
use mist_games::manifest::{EntryKind, Manifest};
use mist_games::{pack, scan, treedelta};
use serde::Serialize;

use crate::api::{self, Api};
use crate::dirs::Dirs;
use crate::download::{DownloadOptions, Downloader};
use crate::progress::{ArtifactProgress, Progress};
use crate::state::{self, Credentials, InstalledGame, PendingStep};
use mist_wire::catalog::{ArtifactLink, GameDetail};
use mist_wire::update::{PlanStep, Route, StepKind};

/// What every command gets.
#[derive(Clone)]
pub struct Context {
    /// The client's folders.
    pub dirs: Dirs,
    /// Where progress bars go.
    pub progress: Progress,
    /// How to download.
    pub download: DownloadOptions,
}

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

/// How long the stages of [`run_steps`] took.
#[derive(Debug, Clone, Copy, Default)]
struct StageTimes {
    download: std::time::Duration,
    apply: std::time::Duration,
}

/// A row of `mist list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    /// The game.
    pub name: String,
    /// Its title.
    pub title: String,
    /// The newest version.
    pub latest: Option<String>,
    /// The installed version.
    pub installed: Option<String>,
    /// Whether an update to `latest` is waiting.
    pub update_available: bool,
}

/// `mist status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The server logged in to.
    pub server: Option<String>,
    /// The user logged in as.
    pub user: Option<String>,
    /// When the token expires, epoch seconds.
    pub token_expires_at: Option<u64>,
    /// The installed games.
    pub games: Vec<GameStatus>,
}

/// A game in `mist status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameStatus {
    /// The game.
    pub game: String,
    /// The installed version; `None` while the first install is unfinished.
    pub version: Option<String>,
    /// The install folder.
    pub dir: PathBuf,
    /// Files in the manifest.
    pub n_files: usize,
    /// Bytes in the manifest.
    pub size: u64,
    /// The version an interrupted step goes to; `mist update` finishes it.
    pub interrupted_towards: Option<String>,
}

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

/// Logs in to `server` and saves the token (mode 0600). Never prints the token.
pub async fn login(
    dirs: &Dirs,
    server: Option<String>,
    user: &str,
    password: &str,
) -> anyhow::Result<Credentials> {
    let saved = state::load_credentials(dirs)?;
    let server = server
        .or_else(|| saved.map(|credentials| credentials.server))
        .ok_or_else(|| anyhow!("no server known yet: pass --server URL"))?;
    let url = api::parse_server(&server)?;
    let response = api::login(&url, user, password).await?;
    let credentials = Credentials {
        server: url.to_string(),
        user: response.user,
        token: response.token,
        expires_at: Some(response.expires_at),
    };
    state::save_credentials(dirs, &credentials)?;
    Ok(credentials)
}

/// The saved login as an [`Api`].
pub fn connect(dirs: &Dirs) -> anyhow::Result<Api> {
    let credentials = state::load_credentials(dirs)?
        .ok_or_else(|| anyhow!("not logged in; run `mist login --server URL` first"))?;
    Ok(Api::new(&credentials.server, credentials.token)?)
}

/// The catalog with what is installed.
pub async fn list(context: &Context) -> anyhow::Result<Vec<ListRow>> {
    let api = connect(&context.dirs)?;
    let catalog = api.games().await?;
    let installed: BTreeMap<String, InstalledGame> = state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| (installed.game.clone(), installed))
        .collect();
    Ok(catalog
        .games
        .into_iter()
        .map(|game| {
            let installed = installed
                .get(&game.name)
                .and_then(|installed| installed.version.clone());
            let update_available = match (&installed, &game.latest) {
                (Some(installed), Some(latest)) => installed != latest,
                _ => false,
            };
            ListRow {
                name: game.name,
                title: game.title,
                latest: game.latest,
                installed,
                update_available,
            }
        })
        .collect())
}

/// What `mist status` shows, from local state only.
pub fn status(context: &Context) -> anyhow::Result<StatusReport> {
    let credentials = state::load_credentials(&context.dirs)?;
    let games = state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| GameStatus {
            n_files: installed.manifest.n_files(),
            size: installed.manifest.total_size(),
            interrupted_towards: installed.pending.as_ref().map(|step| step.to.clone()),
            game: installed.game,
            version: installed.version,
            dir: installed.dir,
        })
        .collect();
    Ok(StatusReport {
        server: credentials.as_ref().map(|c| c.server.clone()),
        user: credentials.as_ref().map(|c| c.user.clone()),
        token_expires_at: credentials.and_then(|c| c.expires_at),
        games,
    })
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
    let mut installed = match state::load_game(&context.dirs, game)? {
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
            "an install of {game} {wanted} was interrupted; run `mist install {game}` to              finish it, or `mist uninstall {game}` first"
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
    let times = run_steps(
        context,
        &downloader,
        &detail,
        &mut installed,
        &plan.steps,
        Some(&target),
    )
    .await?;
    Ok(UpdateSummary {
        game: game.to_owned(),
        from: None,
        to: plan.to.clone(),
        outcome: "installed",
        route: plan.route.as_str().to_owned(),
        planned_bytes: plan.total_bytes,
        downloaded_bytes: downloader.bytes_received(),
        full_bytes: plan.full_bytes(),
        download_seconds: times.download.as_secs_f64(),
        apply_seconds: times.apply.as_secs_f64(),
        dir: installed.dir,
    })
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
    let pack_target = match plan.steps.first().map(|step| step.kind) {
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
    Ok(UpdateSummary {
        game: game.to_owned(),
        from: resumed.and_then(|summary| summary.from).or(Some(from)),
        to: plan.to.clone(),
        outcome: "updated",
        route: plan.route.as_str().to_owned(),
        planned_bytes: plan.total_bytes,
        downloaded_bytes: downloader.bytes_received(),
        full_bytes: plan.full_bytes(),
        download_seconds: resumed_download + times.download.as_secs_f64(),
        apply_seconds: resumed_apply + times.apply.as_secs_f64(),
        dir: installed.dir,
    })
}

/// The names of every game in the local state.
pub fn installed_games(context: &Context) -> anyhow::Result<Vec<String>> {
    Ok(state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| installed.game)
        .collect())
}

/// Removes a game's files, its staging folder and lock, its downloads and its state.
pub fn uninstall(context: &Context, game: &str) -> anyhow::Result<PathBuf> {
    let installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist status`"))?;
    let dir = &installed.dir;
    if let Some(parent) = dir.parent().filter(|parent| parent.is_dir()) {
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
        if let Some(name) = dir.file_name() {
            let lock = parent.join(format!(".{}.mist-lock", name.to_string_lossy()));
            match std::fs::remove_file(&lock) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error)
                        .with_context(|| format!("failed to remove {}", lock.display()));
                }
                _ => {}
            }
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

/// Downloads `steps` in parallel and applies them in order as they arrive, recording each in
/// the state before and after its commit. `pack_target` is the target manifest when the
/// (single) step is a pack. Returns how long downloading and applying took.
async fn run_steps(
    context: &Context,
    downloader: &Downloader,
    detail: &GameDetail,
    installed: &mut InstalledGame,
    steps: &[PlanStep],
    pack_target: Option<&Manifest>,
) -> anyhow::Result<StageTimes> {
    let started = std::time::Instant::now();
    let mut times = StageTimes::default();
    let total: u64 = steps.iter().map(|step| step.size).sum();
    let download_bar = context.progress.bytes("download", total);
    let apply_bar = context.progress.steps("apply", steps.len() as u64);
    let mut downloads = AbortOnDrop(
        steps
            .iter()
            .map(|step| {
                let downloader = downloader.clone();
                let progress = ArtifactProgress::new(download_bar.clone(), step.size);
                let (digest, size) = (step.digest.clone(), step.size);
                tokio::spawn(async move {
                    let artifact = downloader.fetch(&digest, size, &progress).await?;
                    Ok((artifact, std::time::Instant::now()))
                })
            })
            .collect(),
    );
    for (step, download) in steps.iter().zip(downloads.0.iter_mut()) {
        apply_bar.set_message(format!("waiting for {}", step.to));
        let (artifact, downloaded_at) = download.await.expect("downloads do not panic")?;
        times.download = times.download.max(downloaded_at - started);
        let apply_started = std::time::Instant::now();
        let target_manifest = match step.kind {
            StepKind::Pack => Some(
                pack_target
                    .ok_or_else(|| anyhow!("no manifest for the pack of {}", step.to))?
                    .clone(),
            ),
            StepKind::Delta => None,
        };
        installed.pending = Some(PendingStep {
            kind: step.kind,
            to: step.to.clone(),
            digest: step.digest.clone(),
            size: step.size,
            target_manifest: target_manifest.clone(),
        });
        state::save_game(&context.dirs, installed)?;
        apply_bar.set_message(format!(
            "{} → {}",
            installed.version.as_deref().unwrap_or("∅"),
            step.to
        ));
        let expected = expected_tree_digest(detail, &step.to);
        let (dir, source, kind) = (installed.dir.clone(), installed.manifest.clone(), step.kind);
        let new_manifest = tokio::task::spawn_blocking(move || {
            apply_step(
                &dir,
                &source,
                kind,
                &artifact,
                target_manifest.as_ref(),
                expected.as_deref(),
            )
        })
        .await
        .expect("applying does not panic")
        .with_context(|| format!("failed to apply the update to {}", step.to))?;
        installed.version = Some(step.to.clone());
        installed.manifest = new_manifest;
        installed.pending = None;
        state::save_game(&context.dirs, installed)?;
        downloader.discard(&step.digest)?;
        times.apply += apply_started.elapsed();
        apply_bar.inc(1);
    }
    download_bar.finish();
    apply_bar.finish_with_message(format!(
        "at {}",
        installed.version.as_deref().unwrap_or("?")
    ));
    Ok(times)
}

/// Aborts the downloads still running when an update fails (their partial files stay).
struct AbortOnDrop(Vec<tokio::task::JoinHandle<DownloadResult>>);

/// A verified artifact and when its download finished.
type DownloadResult = Result<(PathBuf, std::time::Instant), crate::download::DownloadError>;

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// Applies one downloaded step to the install; returns the manifest of the result.
fn apply_step(
    dir: &Path,
    source: &Manifest,
    kind: StepKind,
    artifact: &Path,
    pack_target: Option<&Manifest>,
    expected_tree: Option<&str>,
) -> anyhow::Result<Manifest> {
    let options = InstallOptions::default();
    let check_target = |target: &Manifest| -> anyhow::Result<()> {
        let digest = target.tree_digest().to_string();
        match expected_tree {
            Some(expected) if expected != digest => bail!(
                "the server's update makes tree {digest}, but the catalog says {expected}; \
                 nothing was changed"
            ),
            _ => Ok(()),
        }
    };
    let (target, report) = match kind {
        StepKind::Delta => {
            let package = treedelta::package::Package::open(artifact)?;
            let target = package.target_manifest(source)?;
            check_target(&target)?;
            let report = update::apply_delta(dir, source, &package, &options)?;
            (target, report)
        }
        StepKind::Pack => {
            let target = pack_target.ok_or_else(|| anyhow!("a pack without a manifest"))?;
            check_target(target)?;
            let mut unpack = |dest: &Path| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let file = std::fs::File::open(artifact)?;
                pack::read::unpack(BufReader::new(file), target, dest)?;
                Ok(())
            };
            let report = update::apply_pack(dir, source, target, &mut unpack, &options)?;
            (target.clone(), report)
        }
    };
    debug_assert!(matches!(
        report.outcome,
        Outcome::Updated | Outcome::AlreadyCurrent
    ));
    Ok(target)
}

/// Downloads and checks a version's manifest: its bytes against the link's digest, its
/// tree against the catalog's tree digest.
async fn fetch_manifest(
    downloader: &Downloader,
    link: Option<&ArtifactLink>,
    detail: &GameDetail,
    version: &str,
) -> anyhow::Result<Manifest> {
    let link = link.ok_or_else(|| anyhow!("the server gave no manifest for {version}"))?;
    let progress = ArtifactProgress::new(indicatif::ProgressBar::hidden(), link.size);
    let path = downloader.fetch(&link.digest, link.size, &progress).await?;
    let bytes =
        std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("the server's manifest of {version} is invalid"))?;
    if let Some(expected) = expected_tree_digest(detail, version) {
        let digest = manifest.tree_digest().to_string();
        if digest != expected {
            bail!(
                "the server's manifest of {version} is tree {digest}, the catalog says {expected}"
            );
        }
    }
    downloader.discard(&link.digest)?;
    Ok(manifest)
}

fn expected_tree_digest(detail: &GameDetail, version: &str) -> Option<String> {
    detail
        .versions
        .iter()
        .find(|candidate| candidate.name == version)
        .and_then(|candidate| candidate.tree_digest.clone())
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
