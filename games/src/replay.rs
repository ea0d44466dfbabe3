//! Chain replay: rebuilding version N from version K and the tree deltas between them, for
//! versions whose source build is gone from the NAS.
//!
//! [`replay`] checks that the chain connects (each delta's target digest is the next one's
//! source, the first starts at K's manifest and the last ends at N's) and rebuilds each
//! step's target manifest from the one before (the source manifest the next delta needs)
//! before doing any work,
//! then applies the deltas one after another into hidden folders beside the output, each
//! step verifying every file, and finally compares a scan of the result with N's manifest
//! before renaming it into place. Intermediate versions are removed as soon as the next one
//! is built, so at most two whole versions exist besides the base.

use std::path::{Path, PathBuf};

use crate::confined::Dir;
use crate::manifest::{Manifest, TreeDigest};
use crate::scan::scan;
use crate::treedelta::apply::{ApplyOptions, apply_to_dir};
use crate::treedelta::format::TreeDeltaError;
use crate::treedelta::package::Package;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The chain is empty.
    #[error("the delta chain is empty")]
    EmptyChain,
    /// Two consecutive deltas do not connect, or the ends do not match.
    #[error(
        "the delta chain is broken at step {step}: expected a delta from {expected}, found one from {found}"
    )]
    Broken {
        /// The 0-based position in the chain.
        step: usize,
        /// The version the step must start from.
        expected: TreeDigest,
        /// The version the delta starts from.
        found: TreeDigest,
    },
    /// The last delta does not produce the wanted version.
    #[error("the delta chain ends at {found}, not at the wanted version {expected}")]
    WrongEnd {
        /// The wanted version.
        expected: TreeDigest,
        /// Where the chain ends.
        found: TreeDigest,
    },
    /// A step failed.
    #[error("step {step} of the delta chain")]
    Step {
        /// The 0-based position in the chain.
        step: usize,
        /// What went wrong.
        #[source]
        source: TreeDeltaError,
    },
    /// The rebuilt tree differs from the wanted manifest.
    #[error("the rebuilt tree does not match the wanted version {expected} (got {found})")]
    Mismatch {
        /// The wanted version.
        expected: TreeDigest,
        /// What was built.
        found: TreeDigest,
    },
}

/// Rebuilds the version `expected` into `out` (which must not exist) from the build in
/// `base_root`, whose manifest is `base`, and `chain`, the deltas from that version to
/// `expected` in order.
pub fn replay(
    base_root: &Path,
    base: &Manifest,
    chain: &[Package],
    out: &Path,
    expected: &Manifest,
    options: &ApplyOptions,
) -> Result<(), ReplayError> {
    let manifests = check_chain(base, chain, expected)?;
    let last = chain.len() - 1;
    let output = Output::of(out);
    let step_error = |step: usize| move |source| ReplayError::Step { step, source };
    let built = apply_chain(base_root, base, chain, &manifests, &output, options)?;
    let found = scan(&built)
        .map_err(|error| step_error(last)(TreeDeltaError::Scan(error)))?
        .tree_digest();
    if found != expected.tree_digest() {
        output.remove(&built);
        return Err(ReplayError::Mismatch {
            expected: expected.tree_digest(),
            found,
        });
    }
    let renamed = (|| {
        let parent = Dir::open(&output.parent)?;
        let built_name = built.file_name().expect("a step folder has a name");
        parent.rename_noreplace(built_name.as_encoded_bytes(), &parent, &output.name)?;
        parent.sync()
    })();
    if let Err(source) = renamed {
        output.remove(&built);
        let error = if source.kind() == std::io::ErrorKind::AlreadyExists {
            TreeDeltaError::OutputExists {
                path: out.to_owned(),
            }
        } else {
            TreeDeltaError::Io {
                path: out.to_owned(),
                action: "rename into",
                source,
            }
        };
        return Err(step_error(last)(error));
    }
    Ok(())
}

/// Checks that `chain` leads from `base` to `expected` and returns each step's target
/// manifest, which is the next step's source manifest.
fn check_chain(
    base: &Manifest,
    chain: &[Package],
    expected: &Manifest,
) -> Result<Vec<Manifest>, ReplayError> {
    if chain.is_empty() {
        return Err(ReplayError::EmptyChain);
    }
    let mut at = base.tree_digest();
    for (step, package) in chain.iter().enumerate() {
        if package.header().source != at {
            return Err(ReplayError::Broken {
                step,
                expected: at,
                found: package.header().source,
            });
        }
        at = package.header().target;
    }
    if at != expected.tree_digest() {
        return Err(ReplayError::WrongEnd {
            expected: expected.tree_digest(),
            found: at,
        });
    }
    // Each step's source manifest is the target manifest the step before gives; rebuilding
    // them all first finds a damaged index before any work.
    let mut manifests: Vec<Manifest> = Vec::with_capacity(chain.len());
    for (step, package) in chain.iter().enumerate() {
        let source = manifests.last().unwrap_or(base);
        let target = package
            .target_manifest(source)
            .map_err(|source| ReplayError::Step { step, source })?;
        manifests.push(target);
    }
    Ok(manifests)
}

/// Applies every step into its hidden folder, each from the one before (the first from
/// `base_root`), removing each folder once the next is built; returns the last.
fn apply_chain(
    base_root: &Path,
    base: &Manifest,
    chain: &[Package],
    manifests: &[Manifest],
    output: &Output,
    options: &ApplyOptions,
) -> Result<PathBuf, ReplayError> {
    let mut previous: Option<PathBuf> = None;
    for (step, package) in chain.iter().enumerate() {
        let from = previous.as_deref().unwrap_or(base_root);
        let into = output.step_path(step);
        output.remove(&into);
        let source = step
            .checked_sub(1)
            .map_or(base, |previous| &manifests[previous]);
        let applied = apply_to_dir(from, source, package, &into, options)
            .map_err(|source| ReplayError::Step { step, source });
        if let Some(previous) = previous.take() {
            output.remove(&previous);
        }
        if let Err(error) = applied {
            output.remove(&into);
            return Err(error);
        }
        previous = Some(into);
    }
    Ok(previous.expect("the chain is not empty"))
}

/// The output's folder and name, and the hidden folders beside it that the steps build.
struct Output {
    parent: PathBuf,
    name: String,
}

impl Output {
    fn of(out: &Path) -> Output {
        let parent = match out.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Output { parent, name }
    }

    /// The folder step `step` is built into.
    fn step_path(&self, step: usize) -> PathBuf {
        self.parent
            .join(format!(".{}.mist-replay-{step}", self.name))
    }

    /// Removes a step folder if it is there; a failure leaves it over, nothing worse.
    fn remove(&self, path: &Path) {
        if let Ok(parent) = Dir::open(&self.parent)
            && let Some(name) = path.file_name()
        {
            let _ = parent.remove_tree(name.as_encoded_bytes(), &mut || {});
        }
    }
}
