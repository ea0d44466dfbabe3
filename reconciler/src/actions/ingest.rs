//! The ingest job: scan a version's source build, check it, and record its manifest.

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::state::{ArtifactKind, VersionObserved, VersionState};
use mist_games::manifest::ScanError;

use super::error::{ActionError, retry};
use super::run::{Run, blocking};
use crate::diff::condition::Reason;
use crate::store::STATE_DIR;

impl Run {
    /// Scans the source build, checks it and records its manifest.
    #[tracing::instrument(skip(self))]
    pub(super) async fn ingest(
        &self,
        game: &str,
        version: &str,
        source: &str,
        pinned: Option<&str>,
    ) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        if source == STATE_DIR || source.starts_with(&format!("{STATE_DIR}/")) {
            return Err(ActionError::Terminal(
                Reason::InvalidBuild,
                format!("the source {source} is inside the reconciler's own folder {STATE_DIR}"),
            ));
        }
        let nas = self.ctx.nas.clone();
        let source_owned = source.to_string();
        let root = blocking(move || {
            mist_specs::load::check_source_on_nas(&nas, &source_owned)
                .map(|()| nas.join(&source_owned))
                .map_err(|message| {
                    if nas.join(&source_owned).exists() {
                        ActionError::Terminal(Reason::InvalidBuild, message)
                    } else {
                        retry(message)
                    }
                })
        })
        .await?;

        self.progress.stage(0, "scan", 0);
        let progress = self.progress.clone();
        let manifest = blocking(move || {
            mist_games::manifest::scan_with_progress(&root, &|done, total| {
                progress.set(done, total)
            })
            .map_err(|error| match error {
                ScanError::UnsupportedFileType { .. }
                | ScanError::InvalidSymlink { .. }
                | ScanError::NonUtf8Name { .. }
                | ScanError::RootNotDirectory { .. } => {
                    ActionError::Terminal(Reason::InvalidBuild, error.to_string())
                }
                ScanError::Io { .. } | ScanError::Changed { .. } => retry(error),
            })
        })
        .await?;
        self.check_cancel()?;

        let digest = manifest.tree_digest().to_string();
        if let Some(pinned) = pinned
            && pinned != digest
        {
            return Err(ActionError::Terminal(
                Reason::PinnedDigestMismatch,
                format!(
                    "the build in {source} hashes to {digest}, but the spec pins {pinned}; pin \
                     the digest `mistpipe manifest` prints for this build, or restore the build"
                ),
            ));
        }
        let row = db
            .version(game, version)
            .await
            .map_err(retry)?
            .ok_or_else(|| retry(format!("version {game}/{version} has no row yet")))?;
        if let Some(recorded) = &row.observed.tree_digest
            && recorded != &digest
            && pinned != Some(digest.as_str())
        {
            return Err(ActionError::Terminal(
                Reason::DigestMismatch,
                format!(
                    "the build in {source} hashes to {digest}, but it was ingested as \
                     {recorded}; a released version never changes silently: restore the build, \
                     pin the new digest, or publish it as a new version"
                ),
            ));
        }

        let json = serde_json::to_vec(&manifest).map_err(retry)?;
        self.progress.stage(1, "store", json.len() as u64);
        let store = self.ctx.store.clone();
        let stored = blocking(move || store.put(&json).map_err(retry)).await?;
        self.progress.set(stored.size, stored.size);
        self.check_cancel()?;
        let now = self.now();
        self.record(&stored, ArtifactKind::Manifest, Some(now))
            .await?;

        let n_files = manifest.n_files();
        let total_size = manifest.total_size();
        {
            let _rows = self.ctx.rows.lock().await;
            let row = db
                .version(game, version)
                .await
                .map_err(retry)?
                .ok_or_else(|| retry(format!("version {game}/{version} is gone")))?;
            let same_content = row.observed.tree_digest.as_deref() == Some(digest.as_str());
            let observed = VersionObserved {
                tree_digest: Some(digest.clone()),
                manifest_address: Some(stored.address.clone()),
                pack_address: if same_content {
                    row.observed.pack_address.clone()
                } else {
                    None
                },
                state: match row.observed.state {
                    VersionState::Pending => VersionState::Ingested,
                    state => state,
                },
            };
            db.set_version_observed(game, version, &observed, now)
                .await
                .map_err(retry)?;
        }
        self.event(
            &ObjectRef::version(game, version),
            Severity::Normal,
            "Ingested",
            &format!("ingested {source}: {n_files} files, {total_size} bytes, {digest}"),
        )
        .await;
        Ok(())
    }
}
