//! What a job reads fresh when it runs: which versions hold the content it names, a game's
//! versions and deltas with what of them is on the NAS, and manifests.

use std::collections::HashMap;

use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use mist_db::state::VersionState;
use mist_games::manifest::Manifest;

use super::error::{ActionError, retry};
use super::run::{Run, blocking};
use crate::diff::condition::Reason;
use crate::diff::input::InputFacts;

/// One version as a job sees it, fresh from the database and the NAS.
#[derive(Debug, Clone)]
pub(super) struct VersionFact {
    pub(super) name: String,
    pub(super) source: String,
    pub(super) digest: Option<String>,
    pub(super) manifest_address: Option<String>,
    pub(super) pack_address: Option<String>,
}

/// A game's versions (in order, without retired ones), their deltas and input facts.
pub(super) struct GameFacts {
    /// The versions, oldest first.
    pub(super) versions: Vec<VersionFact>,
    /// What [`input_for`](crate::diff::input::input_for) needs to know about each version.
    pub(super) inputs: Vec<InputFacts>,
    /// Delta artifact addresses by (from, to) version name.
    pub(super) deltas: HashMap<(String, String), String>,
}

impl Run {
    /// Finds versions holding the given tree digests, in that order: the ones the payload
    /// names (`names`, newline-separated) when they still hold them, else any versions of the
    /// payload's game, else of any game (a job queued again keeps its first payload, whose
    /// versions may have changed or been pruned since). Retired versions do not count.
    pub(super) async fn locate(
        &self,
        game: &str,
        names: &str,
        digests: &[&str],
    ) -> Result<Option<(String, Vec<String>)>, ActionError> {
        let db = &self.ctx.db;
        let names: Vec<&str> = names.split('\n').collect();
        let mut games = vec![game.to_string()];
        games.extend(
            db.games()
                .await
                .map_err(retry)?
                .into_iter()
                .map(|g| g.name)
                .filter(|name| name != game),
        );
        for (game_idx, candidate) in games.iter().enumerate() {
            let rows = db.versions_of(candidate).await.map_err(retry)?;
            let holds = |name: &str, digest: &str| {
                rows.iter().any(|row| {
                    row.spec.name == name
                        && row.observed.state != VersionState::Retired
                        && row.observed.tree_digest.as_deref() == Some(digest)
                })
            };
            if game_idx == 0
                && names
                    .iter()
                    .zip(digests)
                    .all(|(name, digest)| holds(name, digest))
            {
                return Ok(Some((
                    candidate.clone(),
                    names.iter().map(|name| name.to_string()).collect(),
                )));
            }
            let found: Option<Vec<String>> = digests
                .iter()
                .map(|digest| {
                    rows.iter()
                        .find(|row| {
                            row.observed.state != VersionState::Retired
                                && row.observed.tree_digest.as_deref() == Some(digest)
                        })
                        .map(|row| row.spec.name.clone())
                })
                .collect();
            if let Some(found) = found {
                return Ok(Some((candidate.clone(), found)));
            }
        }
        Ok(None)
    }

    /// Reads a game's versions, deltas and what of them is on the NAS.
    pub(super) async fn game_facts(&self, game: &str) -> Result<GameFacts, ActionError> {
        let db = &self.ctx.db;
        let rows = db.versions_of(game).await.map_err(retry)?;
        let delta_rows = db.deltas_of(game).await.map_err(retry)?;
        let mut versions = Vec::new();
        let mut drifted = Vec::new();
        for row in rows {
            if row.observed.state == VersionState::Retired {
                continue;
            }
            let conditions = db
                .conditions_of(&ObjectRef::version(game, &row.spec.name))
                .await
                .map_err(retry)?;
            drifted.push(conditions.iter().any(|condition| {
                condition.condition_type == ConditionType::Stalled
                    && condition.status == ConditionStatus::True
                    && condition.reason == Reason::DigestMismatch.as_str()
            }));
            versions.push(VersionFact {
                name: row.spec.name,
                source: row.spec.source,
                digest: row.observed.tree_digest,
                manifest_address: row.observed.manifest_address,
                pack_address: row.observed.pack_address,
            });
        }
        let deltas: HashMap<(String, String), String> = delta_rows
            .into_iter()
            .map(|delta| ((delta.from_version, delta.to_version), delta.address))
            .collect();
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let mut addresses: Vec<&String> = Vec::new();
        for version in &versions {
            addresses.extend(version.manifest_address.iter());
            addresses.extend(version.pack_address.iter());
        }
        addresses.extend(deltas.values());
        for address in addresses {
            if let Some(artifact) = db.artifact(address).await.map_err(retry)? {
                sizes.insert(address.clone(), artifact.size);
            }
        }
        let store = self.ctx.store.clone();
        let nas = self.ctx.nas.clone();
        let versions_for_stat = versions.clone();
        let deltas_for_stat = deltas.clone();
        let inputs = blocking(move || {
            let present = |address: &Option<String>| {
                address.as_ref().is_some_and(|address| {
                    sizes
                        .get(address)
                        .is_some_and(|size| store.is_present(address, *size))
                })
            };
            Ok(versions_for_stat
                .iter()
                .enumerate()
                .map(|(idx, version)| {
                    let manifest = version.digest.is_some() && present(&version.manifest_address);
                    InputFacts {
                        source_ok: manifest && !drifted[idx] && nas.join(&version.source).is_dir(),
                        manifest,
                        pack: present(&version.pack_address),
                        delta_from_previous: idx > 0
                            && present(
                                &deltas_for_stat
                                    .get(&(
                                        versions_for_stat[idx - 1].name.clone(),
                                        version.name.clone(),
                                    ))
                                    .cloned(),
                            ),
                    }
                })
                .collect())
        })
        .await?;
        Ok(GameFacts {
            versions,
            inputs,
            deltas,
        })
    }

    /// Reads and checks a version's manifest artifact.
    pub(super) async fn manifest_of(&self, version: &VersionFact) -> Result<Manifest, ActionError> {
        let (Some(address), Some(digest)) = (&version.manifest_address, &version.digest) else {
            return Err(retry(format!(
                "version {} has no manifest yet",
                version.name
            )));
        };
        let store = self.ctx.store.clone();
        let address = address.clone();
        let digest = digest.clone();
        blocking(move || {
            let bytes = store.read(&address).map_err(retry)?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| retry(format!("the manifest artifact {address} is damaged: {e}")))?;
            if manifest.tree_digest().to_string() != digest {
                return Err(retry(format!(
                    "the manifest artifact {address} does not describe {digest}"
                )));
            }
            Ok(manifest)
        })
        .await
    }
}

impl GameFacts {
    /// The index of a version that still has the given content.
    pub(super) fn index_of(&self, name: &str, digest: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|version| version.name == name && version.digest.as_deref() == Some(digest))
    }
}
