//! The steps of an install or update: downloaded in parallel, applied in order as they
//! arrive, each recorded in the game's state before and after its commit.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use mist_games::install::{InstallOptions, Outcome, update};
use mist_games::manifest::Manifest;
use mist_games::{pack, treedelta};

use super::Context;
use crate::download::Downloader;
use crate::progress::ArtifactProgress;
use crate::state::{self, InstalledGame, PendingStep};
use mist_wire::catalog::{ArtifactLink, GameDetail};
use mist_wire::update::{PlanStep, StepKind};

/// How long the stages of [`run_steps`] took.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StageTimes {
    pub(super) download: std::time::Duration,
    pub(super) apply: std::time::Duration,
}

/// Downloads `steps` in parallel and applies them in order as they arrive, recording each in
/// the state before and after its commit. `pack_target` is the target manifest when the
/// (single) step is a pack. Returns how long downloading and applying took.
pub(super) async fn run_steps(
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
pub(super) async fn fetch_manifest(
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
