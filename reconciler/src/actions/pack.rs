//! The pack job: a version's tree as one tar+zstd artifact.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::state::{ArtifactKind, VersionObserved};
use mist_games::pack;
use mist_platform::units::{count, human_size};

use super::error::{ActionError, retry};
use super::run::{Run, blocking};
use crate::store::is_cancelled;

/// The zstd level of packs: packs are made once and downloaded many times, but a level in
/// the high teens would take hours on a large build with two cores.
pub const PACK_ZSTD_LEVEL: i32 = 12;

impl Run {
    /// Packs a version.
    #[tracing::instrument(skip(self))]
    pub(super) async fn pack(
        &self,
        game: &str,
        version: &str,
        digest: &str,
    ) -> Result<(), ActionError> {
        let Some((game, version)) = self.locate(game, version, &[digest]).await? else {
            tracing::info!("no version has this content any more; nothing to pack");
            self.log(
                LogLevel::Info,
                "no version has this content any more; nothing to pack",
            );
            return Ok(());
        };
        let (game, version) = (game.as_str(), version[0].as_str());
        let facts = self.game_facts(game).await?;
        let Some(idx) = facts.index_of(version, digest) else {
            return Err(retry(format!("{game}/{version} changed meanwhile")));
        };
        let manifest = self.manifest_of(&facts.versions[idx]).await?;
        self.progress.stage(0, "prepare", 1);
        let tree = self
            .input_tree(game, &facts, idx, &manifest, "pack")
            .await?;
        self.progress.set(1, 1);
        self.check_cancel()?;

        let total = pack::tar_len(&manifest);
        self.log(
            LogLevel::Info,
            format!(
                "packing {} ({} as tar) at zstd level {PACK_ZSTD_LEVEL}",
                count(manifest.n_files() as u64, "file"),
                human_size(total)
            ),
        );
        let pack_started = std::time::Instant::now();
        self.progress.stage(1, "pack", total);
        let store = self.ctx.store.clone();
        let cancel = self.cancel.clone();
        let written = Arc::new(AtomicU64::new(0));
        let stored = {
            let written_by_work = written.clone();
            let manifest = manifest.clone();
            let work = blocking(move || {
                let mut writer = store
                    .writer()
                    .map_err(retry)?
                    .cancel_on(cancel)
                    .count_into(written_by_work);
                pack::write::write_pack(&tree.root, &manifest, &mut writer, PACK_ZSTD_LEVEL)
                    .map_err(|error| {
                        if is_cancelled(&error) {
                            ActionError::Cancelled
                        } else {
                            retry(error)
                        }
                    })?;
                let stored = writer.finish().map_err(retry)?;
                drop(tree);
                Ok(stored)
            });
            self.with_progress(work, &written, total).await
        };
        let stored = stored.inspect_err(|error| self.on_changed(game, version, error))?;
        self.progress.set(total, total);
        self.log_made("packed into", &stored, ("the tar", total), pack_started);
        self.check_cancel()?;
        self.record(&stored, ArtifactKind::Pack, None).await?;
        self.ctx
            .update_version_observed((game, version), self.now(), |observed| {
                (observed.tree_digest.as_deref() == Some(digest)).then(|| VersionObserved {
                    pack_address: Some(stored.address.clone()),
                    ..observed
                })
            })
            .await
            .map_err(retry)?;
        self.event(
            &ObjectRef::version(game, version),
            Severity::Normal,
            "Packed",
            &format!("packed into {} ({} bytes)", stored.address, stored.size),
        )
        .await;
        Ok(())
    }
}
