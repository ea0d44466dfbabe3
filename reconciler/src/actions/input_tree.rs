//! A version's tree as a job's input: its source build, a replay of the delta chain, or its
//! unpacked pack.

use std::fs::File;
use std::path::PathBuf;

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_games::manifest::Manifest;
use mist_games::pack;
use mist_games::replay::{self, ReplayError};
use mist_games::treedelta::apply::ApplyOptions;
use mist_games::treedelta::package::Package;

use super::error::{ActionError, retry};
use super::facts::{GameFacts, VersionFact};
use super::run::{Run, blocking};
use crate::diff::input::{Input, input_for};
use crate::store::TmpGuard;

/// A version's tree on disk as a job's input: its source build in place, or a tree the job
/// made below `tmp/` (replayed or unpacked), removed when this is dropped.
pub(super) struct InputTree {
    /// The root folder of the tree.
    pub(super) root: PathBuf,
    /// Removes the tree when it was made for the job.
    _guard: Option<TmpGuard>,
}

impl Run {
    /// A version's tree: its source build, or a replay of the delta chain, or its unpacked
    /// pack (see [`input_for`]).
    pub(super) async fn input_tree(
        &self,
        game: &str,
        facts: &GameFacts,
        idx: usize,
        manifest: &Manifest,
        purpose: &str,
    ) -> Result<InputTree, ActionError> {
        let version = &facts.versions[idx];
        match input_for(&facts.inputs, idx) {
            None => Err(retry(format!(
                "the build of {} is not on the NAS and cannot be rebuilt",
                version.name
            ))),
            Some(Input::Source) => {
                self.log(
                    LogLevel::Info,
                    format!(
                        "reading {} from its build in {}",
                        version.name, version.source
                    ),
                );
                self.source_tree(version).await
            }
            Some(Input::Replay { base }) => {
                let base_version = &facts.versions[base];
                let base_manifest = self.manifest_of(base_version).await?;
                let chain_paths = self.delta_chain(facts, base, idx)?;
                let n_steps = chain_paths.len();
                self.log(
                    LogLevel::Info,
                    format!(
                        "rebuilding {} from {} and {n_steps} deltas, because its build is not \
                         on the NAS",
                        version.name, base_version.name
                    ),
                );
                let tree = self
                    .replayed_tree(base_version, base_manifest, chain_paths, manifest)
                    .await?;
                self.event(
                    &ObjectRef::version(game, &version.name),
                    Severity::Normal,
                    "Replayed",
                    &format!(
                        "rebuilt {} from {} and {n_steps} deltas for a {purpose}, because its \
                         build is not on the NAS",
                        version.name, base_version.name
                    ),
                )
                .await;
                Ok(tree)
            }
            Some(Input::Pack) => {
                self.log(
                    LogLevel::Info,
                    format!(
                        "unpacking {} from its pack, because its build is not on the NAS",
                        version.name
                    ),
                );
                let tree = self.unpacked_tree(version, manifest).await?;
                self.event(
                    &ObjectRef::version(game, &version.name),
                    Severity::Normal,
                    "Unpacked",
                    &format!(
                        "unpacked {} from its pack for a {purpose}, because its build is not on \
                         the NAS",
                        version.name
                    ),
                )
                .await;
                Ok(tree)
            }
        }
    }

    /// The version's source build, in place.
    async fn source_tree(&self, version: &VersionFact) -> Result<InputTree, ActionError> {
        let nas = self.ctx.nas.clone();
        let source = version.source.clone();
        blocking(move || {
            mist_specs::nas::check_source_on_nas(&nas, &source).map_err(retry)?;
            Ok(InputTree {
                root: nas.join(&source),
                _guard: None,
            })
        })
        .await
    }

    /// The files of the direct deltas from version `base` up to version `idx`, in order.
    fn delta_chain(
        &self,
        facts: &GameFacts,
        base: usize,
        idx: usize,
    ) -> Result<Vec<PathBuf>, ActionError> {
        let mut chain_paths = Vec::new();
        for step in base + 1..=idx {
            let key = (
                facts.versions[step - 1].name.clone(),
                facts.versions[step].name.clone(),
            );
            let address = facts
                .deltas
                .get(&key)
                .ok_or_else(|| retry(format!("the delta from {} to {} is gone", key.0, key.1)))?;
            chain_paths.push(
                self.ctx
                    .store
                    .path_of(address)
                    .ok_or_else(|| retry(format!("invalid address {address}")))?,
            );
        }
        Ok(chain_paths)
    }

    /// The tree rebuilt below `tmp/` from the source build of `base_version` and the deltas
    /// of `chain_paths`, checked against the version's `manifest`.
    async fn replayed_tree(
        &self,
        base_version: &VersionFact,
        base_manifest: Manifest,
        chain_paths: Vec<PathBuf>,
        manifest: &Manifest,
    ) -> Result<InputTree, ActionError> {
        let out = self.ctx.store.new_tmp_path();
        let base_root = self.ctx.nas.join(&base_version.source);
        let expected = manifest.clone();
        blocking(move || {
            let chain = chain_paths
                .iter()
                .map(|path| Package::open(path))
                .collect::<Result<Vec<_>, _>>()
                .map_err(retry)?;
            let guard = TmpGuard(out.clone());
            replay::replay(
                &base_root,
                &base_manifest,
                &chain,
                &out,
                &expected,
                &ApplyOptions::default(),
            )
            .map_err(|error: ReplayError| retry(error))?;
            Ok(InputTree {
                root: out,
                _guard: Some(guard),
            })
        })
        .await
    }

    /// The version's pack, unpacked below `tmp/`.
    async fn unpacked_tree(
        &self,
        version: &VersionFact,
        manifest: &Manifest,
    ) -> Result<InputTree, ActionError> {
        let address = version.pack_address.clone().unwrap_or_default();
        let path = self
            .ctx
            .store
            .path_of(&address)
            .ok_or_else(|| retry(format!("invalid address {address}")))?;
        let out = self.ctx.store.new_tmp_path();
        let manifest = manifest.clone();
        blocking(move || {
            let guard = TmpGuard(out.clone());
            let file = File::open(&path).map_err(retry)?;
            pack::read::unpack(std::io::BufReader::new(file), &manifest, &out).map_err(retry)?;
            Ok(InputTree {
                root: out,
                _guard: Some(guard),
            })
        })
        .await
    }
}
