//! The check of a version's `source` against a NAS: [`check_source_on_nas`], the one
//! function that decides whether a source is a build Mist may read. `mistpipe validate
//! --nas`, the loader's [`crate::load::LoadOptions::nas_root`], the pre-commit hook and the
//! reconciler's ingest all call it, so they cannot disagree.

use std::path::{Path, PathBuf};

use mist_games::scan::ScanError;

/// The reconciler's own folder below the NAS root (artifacts, work in progress). No source
/// may be in it, before or after resolving symlinks.
pub const STATE_DIR: &str = ".mist";

/// Why a version's `source` is not a build on the NAS.
#[derive(Debug, thiserror::Error)]
pub enum SourceOnNasError {
    /// The NAS root (first) cannot be resolved (second).
    #[error("cannot open the NAS root {root}: {1}", root = .0.display())]
    NasRoot(PathBuf, std::io::Error),
    /// Nothing is at the `spec.source` (first): the path looked for (second) is missing.
    #[error("`spec.source` `{0}` does not exist on the NAS ({target})", target = .1.display())]
    Missing(String, PathBuf),
    /// The `spec.source` (first) cannot be resolved (second).
    #[error("cannot resolve `spec.source` `{0}` on the NAS: {1}")]
    Resolve(String, std::io::Error),
    /// A symlink takes the `spec.source` out of the NAS.
    #[error("`spec.source` `{0}` resolves outside the NAS root through a symlink")]
    Outside(String),
    /// The `spec.source` is in the reconciler's own folder, by its name or through a symlink.
    #[error("`spec.source` `{0}` is inside Mist's own folder `{STATE_DIR}/` on the NAS")]
    StateDir(String),
    /// The `spec.source` is a file or something else than a folder.
    #[error("`spec.source` `{0}` is not a folder")]
    NotAFolder(String),
    /// The folder holds no file yet (a copy that has not started, or a wrong folder).
    #[error("`spec.source` `{0}` holds no files")]
    Empty(String),
    /// The folder holds something a build may not hold.
    #[error("`spec.source` `{0}` is not a valid build: {1}")]
    Build(String, ScanError),
}

impl SourceOnNasError {
    /// Whether the build may still arrive (missing or empty: being copied), rather than
    /// being wrong until someone changes it.
    pub fn may_still_arrive(&self) -> bool {
        matches!(
            self,
            SourceOnNasError::Missing(..) | SourceOnNasError::Empty(_)
        )
    }
}

/// Whether `source` names [`STATE_DIR`] or something below it.
fn in_state_dir(source: &str) -> bool {
    source
        .split('/')
        .find(|part| !part.is_empty() && *part != ".")
        == Some(STATE_DIR)
}

/// Resolves `source` to a folder below `nas` (every symlink followed), outside Mist's own
/// folder, without looking inside it: what the reconciler's observation checks on each pass.
pub fn resolve_source_on_nas(nas: &Path, source: &str) -> Result<PathBuf, SourceOnNasError> {
    if in_state_dir(source) {
        return Err(SourceOnNasError::StateDir(source.to_owned()));
    }
    let nas_real = nas
        .canonicalize()
        .map_err(|error| SourceOnNasError::NasRoot(nas.to_owned(), error))?;
    let target = nas_real.join(source);
    let real = match target.canonicalize() {
        Ok(real) => real,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceOnNasError::Missing(source.to_owned(), target));
        }
        Err(error) => return Err(SourceOnNasError::Resolve(source.to_owned(), error)),
    };
    if !real.starts_with(&nas_real) {
        return Err(SourceOnNasError::Outside(source.to_owned()));
    }
    if real.starts_with(nas_real.join(STATE_DIR)) {
        return Err(SourceOnNasError::StateDir(source.to_owned()));
    }
    if !real.is_dir() {
        return Err(SourceOnNasError::NotAFolder(source.to_owned()));
    }
    Ok(real)
}

/// Checks that `source` is a build Mist may read: a folder below `nas` once every symlink is
/// resolved ([`resolve_source_on_nas`]), holding at least one file and only what a build may
/// hold (`mist_games::scan::check_build`: no special file, no symlink leaving the build).
/// Returns the resolved folder.
pub fn check_source_on_nas(nas: &Path, source: &str) -> Result<PathBuf, SourceOnNasError> {
    let real = resolve_source_on_nas(nas, source)?;
    match mist_games::scan::check_build(&real) {
        Ok(0) => Err(SourceOnNasError::Empty(source.to_owned())),
        Ok(_) => Ok(real),
        Err(error) => Err(SourceOnNasError::Build(source.to_owned(), error)),
    }
}
