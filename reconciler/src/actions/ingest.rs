//! The ingest job: scan a version's source build, check it, and record its manifest.

use std::path::PathBuf;

use mist_db::EpochMs;
use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::state::{ArtifactKind, VersionObserved, VersionState};
use mist_games::manifest::Manifest;
use mist_games::scan::ScanError;
use mist_platform::units::{count, human_size};
use mist_specs::nas::SourceOnNasError;

use super::error::{ActionError, retry};
use super::run::{Run, blocking};
use crate::diff::condition::Reason;
use crate::store::Stored;

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
        let root = self.source_root(source).await?;
        self.log(
            LogLevel::Info,
            format!("reading the build in {}", root.display()),
        );
        let scan_started = std::time::Instant::now();
        let manifest = self.scan(root).await?;
        self.check_cancel()?;

        let digest = manifest.tree_digest().to_string();
        self.log(
            LogLevel::Info,
            format!(
                "scanned {}, {} in {:.1} s: {digest}",
                count(manifest.n_files() as u64, "file"),
                human_size(manifest.total_size()),
                scan_started.elapsed().as_secs_f64()
            ),
        );
        if pinned == Some(digest.as_str()) {
            self.log(LogLevel::Info, "the digest is the one the spec pins");
        }
        self.check_digest(game, version, source, pinned, &digest)
            .await?;

        let stored = self.store_manifest(&manifest).await?;
        self.log(
            LogLevel::Info,
            format!(
                "stored the manifest as {} ({})",
                stored.address,
                human_size(stored.size)
            ),
        );
        self.check_cancel()?;
        let now = self.now();
        self.record(&stored, ArtifactKind::Manifest, Some(now))
            .await?;
        self.record_ingest(game, version, &digest, &stored, now)
            .await?;
        let n_files = manifest.n_files();
        let total_size = manifest.total_size();
        self.event(
            &ObjectRef::version(game, version),
            Severity::Normal,
            "Ingested",
            &format!("ingested {source}: {n_files} files, {total_size} bytes, {digest}"),
        )
        .await;
        Ok(())
    }

    /// The source build's folder, once `mist_specs::nas::check_source_on_nas` (the check
    /// `mistpipe validate --nas` makes) accepts it. A build that may still arrive (missing,
    /// empty) and a failed read are retried; a wrong one waits for a spec or NAS change.
    async fn source_root(&self, source: &str) -> Result<PathBuf, ActionError> {
        let nas = self.ctx.nas.clone();
        let source_owned = source.to_string();
        blocking(move || {
            mist_specs::nas::check_source_on_nas(&nas, &source_owned)
                .map(|_| nas.join(&source_owned))
                .map_err(|problem| match &problem {
                    SourceOnNasError::Outside(_)
                    | SourceOnNasError::StateDir(_)
                    | SourceOnNasError::NotAFolder(_)
                    | SourceOnNasError::Build(
                        _,
                        ScanError::UnsupportedFileType { .. }
                        | ScanError::InvalidSymlink { .. }
                        | ScanError::NonUtf8Name { .. }
                        | ScanError::RootNotDirectory { .. },
                    ) => ActionError::Terminal(Reason::InvalidBuild, problem.to_string()),
                    _ => retry(problem),
                })
        })
        .await
    }

    /// Stage 0: scans the build into its manifest. Something a build may not hold is
    /// terminal; I/O and a build that changed while it was read are retried.
    async fn scan(&self, root: PathBuf) -> Result<Manifest, ActionError> {
        self.progress.stage(0, "scan", 0);
        let progress = self.progress.clone();
        blocking(move || {
            mist_games::scan::scan_with_progress(&root, &|done, total| progress.set(done, total))
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
        .await
    }

    /// Refuses a build that does not hash to the pinned digest, or that changed since it was
    /// ingested (unless the spec pins the new digest).
    async fn check_digest(
        &self,
        game: &str,
        version: &str,
        source: &str,
        pinned: Option<&str>,
        digest: &str,
    ) -> Result<(), ActionError> {
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
        let row = self
            .ctx
            .db
            .version(game, version)
            .await
            .map_err(retry)?
            .ok_or_else(|| retry(format!("version {game}/{version} has no row yet")))?;
        if let Some(recorded) = &row.observed.tree_digest
            && recorded != digest
            && pinned != Some(digest)
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
        Ok(())
    }

    /// Stage 1: writes the manifest (canonical JSON) to the artifact store.
    async fn store_manifest(&self, manifest: &Manifest) -> Result<Stored, ActionError> {
        let json = serde_json::to_vec(manifest).map_err(retry)?;
        self.progress.stage(1, "store", json.len() as u64);
        let store = self.ctx.store.clone();
        let stored = blocking(move || store.put(&json).map_err(retry)).await?;
        self.progress.set(stored.size, stored.size);
        Ok(stored)
    }

    /// Records the tree digest and the manifest on the version's row; its pack stays only
    /// when the content is the same.
    async fn record_ingest(
        &self,
        game: &str,
        version: &str,
        digest: &str,
        stored: &Stored,
        now: EpochMs,
    ) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        let _rows = self.ctx.rows.lock().await;
        let row = db
            .version(game, version)
            .await
            .map_err(retry)?
            .ok_or_else(|| retry(format!("version {game}/{version} is gone")))?;
        let same_content = row.observed.tree_digest.as_deref() == Some(digest);
        let observed = VersionObserved {
            tree_digest: Some(digest.to_string()),
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
        Ok(())
    }
}
