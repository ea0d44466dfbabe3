//! Checks of what the reconciler produced, by re-reading it from scratch.

use std::collections::BTreeMap;

use mist_games::manifest::Manifest;
use mist_games::scan::scan;
use mist_games::treedelta::package::Package;

use crate::world::World;

/// Re-hashes every artifact file and checks it against its address and size; checks every
/// manifest against its version's digest, every pack by unpacking and re-scanning it, and
/// every delta's header against its versions' digests. Returns how many artifacts there are.
pub async fn verify_artifacts(world: &World) -> usize {
    let snapshot = world.db().load_snapshot().await.expect("snapshot");
    let store = world.nas().join(".mist/artifacts");
    for artifact in &snapshot.artifacts {
        let bytes = std::fs::read(store.join(&artifact.path)).unwrap_or_else(|e| {
            panic!(
                "artifact {} missing at {}: {e}",
                artifact.address, artifact.path
            )
        });
        assert_eq!(bytes.len() as u64, artifact.size, "{}", artifact.address);
        assert_eq!(
            format!("blake3:{}", blake3::hash(&bytes).to_hex()),
            artifact.address,
            "artifact bytes do not hash to their address"
        );
    }
    let path_of = |address: &str| {
        let artifact = snapshot
            .artifacts
            .iter()
            .find(|artifact| artifact.address == address)
            .unwrap_or_else(|| panic!("no artifact row for {address}"));
        store.join(&artifact.path)
    };
    let mut digests = BTreeMap::new();
    for version in &snapshot.versions {
        let Some(digest) = &version.observed.tree_digest else {
            continue;
        };
        let id = format!("{}/{}", version.spec.game, version.spec.name);
        digests.insert(
            (version.spec.game.clone(), version.spec.name.clone()),
            digest.clone(),
        );
        if let Some(address) = &version.observed.manifest_address {
            let manifest: Manifest =
                serde_json::from_slice(&std::fs::read(path_of(address)).unwrap()).unwrap();
            assert_eq!(&manifest.tree_digest().to_string(), digest, "{id} manifest");
            if let Some(pack) = &version.observed.pack_address {
                let out = tempfile::tempdir().unwrap();
                let dest = out.path().join("unpacked");
                let file = std::fs::File::open(path_of(pack)).unwrap();
                mist_games::pack::read::unpack(file, &manifest, &dest).unwrap();
                assert_eq!(
                    &scan(&dest).unwrap().tree_digest().to_string(),
                    digest,
                    "{id} pack"
                );
            }
        }
        let build = world.nas().join(&version.spec.source);
        if build.is_dir() && version.observed.state != mist_db::state::VersionState::Stalled {
            assert_eq!(
                &scan(&build).unwrap().tree_digest().to_string(),
                digest,
                "{id} build"
            );
        }
    }
    for delta in &snapshot.deltas {
        let package = Package::open(&path_of(&delta.address)).unwrap();
        let from = &digests[&(delta.game.clone(), delta.from_version.clone())];
        let to = &digests[&(delta.game.clone(), delta.to_version.clone())];
        assert_eq!(&package.header().source.to_string(), from);
        assert_eq!(&package.header().target.to_string(), to);
    }
    snapshot.artifacts.len()
}

/// The (from, to) delta edges of a game.
pub async fn delta_edges(world: &World, game: &str) -> Vec<String> {
    world
        .db()
        .deltas_of(game)
        .await
        .unwrap()
        .into_iter()
        .map(|delta| format!("{}->{}", delta.from_version, delta.to_version))
        .collect()
}
