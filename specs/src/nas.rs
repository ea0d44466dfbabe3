//! The check of a version's `source` against a NAS: [`check_source_on_nas`], for
//! `mistpipe validate --nas`, the loader's [`crate::load::LoadOptions::nas_root`] and the
//! reconciler.

use std::path::{Path, PathBuf};

/// Why a version's `source` is not a folder on the NAS.
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
    /// The `spec.source` is a file or something else than a folder.
    #[error("`spec.source` `{0}` is not a folder")]
    NotAFolder(String),
}

/// Checks that `source` is a directory below `nas` once every symlink is resolved.
pub fn check_source_on_nas(nas: &Path, source: &str) -> Result<(), SourceOnNasError> {
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
    if !real.is_dir() {
        return Err(SourceOnNasError::NotAFolder(source.to_owned()));
    }
    Ok(())
}
