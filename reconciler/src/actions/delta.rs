//! The delta job: the tree delta from one version to another.

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::state::{ArtifactKind, Delta};
use mist_games::manifest::Manifest;
use mist_games::treedelta::create::{self, Build, CreateOptions};
use mist_games::treedelta::format::TreeDeltaError;
use mist_games::treedelta::stats::Stats;
use mist_platform::units::{count, human_size};

use super::error::{ActionError, retry};
use super::input_tree::InputTree;
use super::run::{Run, blocking};
use crate::diff::condition::Reason;
use crate::store::{Stored, is_cancelled};

impl Run {
    /// Makes the tree delta from one version to another.
    #[tracing::instrument(skip(self, from_digest, to_digest), fields(version = to))]
    pub(super) async fn delta(
        &self,
        game: &str,
        from: &str,
        to: &str,
        from_digest: &str,
        to_digest: &str,
    ) -> Result<(), ActionError> {
        let names = format!("{from}\n{to}");
        let located = self.locate(game, &names, &[from_digest, to_digest]).await?;
        let Some((game, versions)) = located else {
            tracing::info!("no game has this content any more; no delta to make");
            self.log(
                LogLevel::Info,
                "no game has this content any more; no delta to make",
            );
            return Ok(());
        };
        let (game, from, to) = (game.as_str(), versions[0].as_str(), versions[1].as_str());
        let facts = self.game_facts(game).await?;
        let (Some(from_idx), Some(to_idx)) = (
            facts.index_of(from, from_digest),
            facts.index_of(to, to_digest),
        ) else {
            return Err(retry(format!("{game}/{from} or {to} changed meanwhile")));
        };
        let old_manifest = self.manifest_of(&facts.versions[from_idx]).await?;
        let new_manifest = self.manifest_of(&facts.versions[to_idx]).await?;
        self.progress.stage(0, "prepare", 2);
        let old_tree = self
            .input_tree(game, &facts, from_idx, &old_manifest, "delta")
            .await?;
        self.progress.set(1, 2);
        let new_tree = self
            .input_tree(game, &facts, to_idx, &new_manifest, "delta")
            .await?;
        self.progress.set(2, 2);
        self.check_cancel()?;

        let stored = self
            .write_delta((old_tree, old_manifest), (new_tree, new_manifest))
            .await
            .inspect_err(|error| {
                self.on_changed(game, from, error);
                self.on_changed(game, to, error);
            })?;
        self.check_cancel()?;
        self.record(&stored, ArtifactKind::Delta, None).await?;
        let delta = Delta {
            game: game.to_string(),
            from_version: from.to_string(),
            to_version: to.to_string(),
            address: stored.address.clone(),
        };
        self.ctx
            .db
            .upsert_delta(&delta, self.now())
            .await
            .map_err(retry)?;
        self.event(
            &ObjectRef::version(game, to),
            Severity::Normal,
            "DeltaCreated",
            &format!(
                "made the delta from {from} to {to}: {} ({} bytes)",
                stored.address, stored.size
            ),
        )
        .await;
        Ok(())
    }

    /// Stage 1: diffs the old tree against the new one into a delta artifact.
    async fn write_delta(
        &self,
        (old_tree, old_manifest): (InputTree, Manifest),
        (new_tree, new_manifest): (InputTree, Manifest),
    ) -> Result<Stored, ActionError> {
        let diff_total = new_manifest.total_size();
        self.log(
            LogLevel::Info,
            format!(
                "diffing {} ({}) against {} ({})",
                count(new_manifest.n_files() as u64, "new file"),
                human_size(diff_total),
                count(old_manifest.n_files() as u64, "old file"),
                human_size(old_manifest.total_size())
            ),
        );
        let diff_started = std::time::Instant::now();
        self.progress.stage(1, "diff", diff_total);
        let store = self.ctx.store.clone();
        let cancel = self.cancel.clone();
        let progress = self.progress.clone();
        let (stored, stats) = blocking(move || {
            let mut writer = store.writer().map_err(retry)?.cancel_on(cancel);
            let options = CreateOptions::default();
            let stats = create::create_from_manifests(
                Build {
                    root: &old_tree.root,
                    manifest: &old_manifest,
                },
                Build {
                    root: &new_tree.root,
                    manifest: &new_manifest,
                },
                &mut writer,
                &options,
                &|done, total| progress.set(done, total),
            )
            .map_err(|error| match error {
                TreeDeltaError::UnsupportedPath { .. } => {
                    ActionError::Terminal(Reason::InvalidBuild, error.to_string())
                }
                error if is_cancelled(&error) => ActionError::Cancelled,
                error => retry(error),
            })?;
            let stored = writer.finish().map_err(retry)?;
            drop((old_tree, new_tree));
            Ok((stored, stats))
        })
        .await?;
        self.progress.set(diff_total, diff_total);
        self.log_made(
            "made a delta of",
            &stored,
            ("the new build", diff_total),
            diff_started,
        );
        self.log(LogLevel::Info, methods(&stats));
        Ok(stored)
    }
}

/// How each file of the new build was made, in one line: the methods the delta chose.
fn methods(stats: &Stats) -> String {
    let kinds = [
        ("unchanged", &stats.unchanged),
        ("copied", &stats.copied),
        ("patched", &stats.patched),
        ("added", &stats.added),
        ("mode only", &stats.mode),
        ("deleted", &stats.deleted),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(_, kind)| kind.files > 0)
        .map(|(name, kind)| {
            format!(
                "{name} {} ({} stored for {})",
                kind.files,
                human_size(kind.stored),
                human_size(kind.bytes)
            )
        })
        .collect();
    if parts.is_empty() {
        "methods: no files".to_string()
    } else {
        format!("methods: {}", parts.join(", "))
    }
}
