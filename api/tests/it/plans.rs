//! Update plans over HTTP, and the end-to-end path of a client: plan, download with a
//! resume, apply with the content engine, verify against the manifest.

use std::path::{Path, PathBuf};

use mist_db::state::{ArtifactKind, VersionState};
use mist_games::manifest::Manifest;
use mist_games::{pack, scan, treedelta};
use serde_json::Value;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_over_http() {
    each_backend("plans_over_http", defaults, |api| async move {
        let w = world(&api).await;
        let alice = api.login("alice").await;

        let (status, plan) = api.get_json("/v1/games/open/update", Some(&alice)).await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["route"], "full");
        assert_eq!(plan["from"], Value::Null);
        assert_eq!(plan["to"], "1.2");
        assert_eq!(plan["steps"][0]["digest"], w.open_packs[2].as_str());
        assert_eq!(
            plan["steps"][0]["url"],
            format!("/v1/artifacts/{}", w.open_packs[2])
        );
        assert_eq!(plan["totalBytes"], 10_200);
        assert_eq!(plan["manifest"]["digest"], w.open_manifests[2].as_str());

        let (_, plan) = api
            .get_json("/v1/games/open/update?from=1.0", Some(&alice))
            .await;
        assert_eq!(plan["route"], "chain");
        assert_eq!(plan["totalBytes"], 700);
        let steps: Vec<(String, String)> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["from"].as_str().unwrap().to_owned(),
                    s["digest"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                ("1.0".to_owned(), w.open_deltas[0].clone()),
                ("1.1".to_owned(), w.open_deltas[1].clone())
            ]
        );
        let rejected = &plan["rejected"];
        assert_eq!(rejected[0]["route"], "full");
        assert_eq!(rejected[0]["totalBytes"], 10_200);
        assert_eq!(rejected[1]["route"], "skip");
        assert_eq!(rejected[1]["totalBytes"], Value::Null);

        // A warmed skip delta that is cheaper wins.
        let skip = api
            .put_artifact(ArtifactKind::Delta, &pattern(500, 9))
            .await;
        api.add_delta("open", "1.0", "1.2", &skip).await;
        let (_, plan) = api
            .get_json("/v1/games/open/update?from=1.0&to=1.2", Some(&alice))
            .await;
        assert_eq!(plan["route"], "skip");
        assert_eq!(plan["totalBytes"], 500);

        let (_, plan) = api
            .get_json("/v1/games/open/update?from=1.2", Some(&alice))
            .await;
        assert_eq!(plan["route"], "upToDate");
        assert_eq!(plan["steps"], serde_json::json!([]));

        // Friends cannot target or start from a version that was never served.
        assert_eq!(
            api.get_json("/v1/games/open/update?to=1.3", Some(&alice))
                .await
                .0,
            404
        );
        assert_eq!(
            api.get_json("/v1/games/open/update?from=1.3", Some(&alice))
                .await
                .0,
            404
        );
        assert_eq!(
            api.get_json("/v1/games/open/update?from=0.9", Some(&alice))
                .await
                .0,
            404
        );
        assert_eq!(
            api.get_json("/v1/games/open/update?from=..", Some(&alice))
                .await
                .0,
            400
        );
        // An admin may target the pending version, which has no way there yet.
        let root = api.login("root").await;
        assert_eq!(
            api.get_json("/v1/games/open/update?from=1.2&to=1.3", Some(&root))
                .await
                .0,
            409
        );
    })
    .await;
}

/// Three releases of a small game, with the kinds of change real updates have.
fn write_build(root: &Path, release: u8) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let mut exe = pattern(120_000, 1);
    for byte in exe.iter_mut().skip(50_000).take(64 * usize::from(release)) {
        *byte = byte.wrapping_add(release);
    }
    std::fs::write(root.join("bin/game"), exe).unwrap();
    let mut pak = pattern(200_000, 2);
    pak.splice(
        100_000..100_000,
        pattern(3_000 * usize::from(release), 40 + release),
    );
    std::fs::write(root.join("data/assets.pak"), pak).unwrap();
    std::fs::write(root.join("readme.txt"), format!("release {release}\n")).unwrap();
    if release >= 2 {
        std::fs::write(root.join("data/new-level.dat"), pattern(5_000, 7)).unwrap();
    }
}

struct Release {
    dir: PathBuf,
    manifest: Manifest,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_plan_download_resume_apply_verify() {
    each_backend("end_to_end", defaults, |api| async move {
        world(&api).await;
        api.add_game("e2e", false, &[]).await;
        let mut releases = Vec::new();
        for release in 1..=3u8 {
            let dir = api.nas.path().join(format!("incoming/e2e/{release}"));
            write_build(&dir, release);
            let manifest = scan::scan(&dir).unwrap();
            let manifest_address = api
                .put_artifact(
                    ArtifactKind::Manifest,
                    &serde_json::to_vec(&manifest).unwrap(),
                )
                .await;
            let mut pack_bytes = Vec::new();
            pack::write::write_pack(&dir, &manifest, &mut pack_bytes, 3).unwrap();
            let pack_address = api.put_artifact(ArtifactKind::Pack, &pack_bytes).await;
            let name = release.to_string();
            api.add_version(
                "e2e",
                &name,
                i64::from(release),
                VersionState::Ready,
                Some(&manifest_address),
                Some(&pack_address),
            )
            .await;
            releases.push(Release { dir, manifest });
        }
        for (from, to) in [(1usize, 2usize), (2, 3), (1, 3)] {
            let mut delta = Vec::new();
            treedelta::create::create(
                &releases[from - 1].dir,
                &releases[to - 1].dir,
                &mut delta,
                &treedelta::create::CreateOptions::default(),
                &|_, _| {},
            )
            .unwrap();
            let address = api.put_artifact(ArtifactKind::Delta, &delta).await;
            api.add_delta("e2e", &from.to_string(), &to.to_string(), &address)
                .await;
        }

        let alice = api.login("alice").await;
        let client_dir = tempfile::tempdir().unwrap();
        // The friend has release 1, installed from its pack.
        let (_, fresh) = api
            .get_json("/v1/games/e2e/update?to=1", Some(&alice))
            .await;
        assert_eq!(fresh["route"], "full");
        let pack_bytes = download_resuming(&api, &alice, &fresh["steps"][0]).await;
        let mut installed = client_dir.path().join("install-1");
        let mut installed_manifest = fetch_manifest(&api, &alice, "1").await;
        pack::read::unpack(pack_bytes.as_slice(), &installed_manifest, &installed).unwrap();
        assert_eq!(scan::scan(&installed).unwrap(), releases[0].manifest);

        // Update to the latest.
        let (status, plan) = api
            .get_json("/v1/games/e2e/update?from=1", Some(&alice))
            .await;
        assert_eq!(status, 200, "{plan}");
        assert_eq!(plan["to"], "3");
        assert_ne!(
            plan["route"], "full",
            "deltas are far smaller than the pack: {plan}"
        );
        for (step_idx, step) in plan["steps"].as_array().unwrap().iter().enumerate() {
            let bytes = download_resuming(&api, &alice, step).await;
            let package = treedelta::package::Package::from_bytes(bytes).unwrap();
            let next = client_dir.path().join(format!("step-{step_idx}"));
            treedelta::apply::apply_to_dir(
                &installed,
                &installed_manifest,
                &package,
                &next,
                &treedelta::apply::ApplyOptions::default(),
            )
            .unwrap();
            installed_manifest = package.target_manifest(&installed_manifest).unwrap();
            installed = next;
        }
        let target = fetch_manifest(&api, &alice, "3").await;
        assert_eq!(installed_manifest, target);
        assert_eq!(scan::scan(&installed).unwrap(), target);
        assert_eq!(target, releases[2].manifest);
    })
    .await;
}

/// Downloads a step's artifact in two requests (the second resuming where the first
/// stopped, with `If-Range`), and checks its digest.
async fn download_resuming(api: &TestApi, token: &str, step: &Value) -> Vec<u8> {
    let url = step["url"].as_str().unwrap();
    let digest = step["digest"].as_str().unwrap();
    let size = step["size"].as_u64().unwrap();
    let half = size / 2;
    let first = api
        .get(
            url,
            Some(token),
            &[("range", &format!("bytes=0-{}", half - 1))],
        )
        .await;
    assert_eq!(first.status().as_u16(), 206);
    let mut bytes = first.bytes().await.unwrap().to_vec();
    let etag = format!("\"{digest}\"");
    let rest = api
        .get(
            url,
            Some(token),
            &[("range", &format!("bytes={half}-")), ("if-range", &etag)],
        )
        .await;
    assert_eq!(rest.status().as_u16(), 206);
    bytes.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(format!("blake3:{}", blake3::hash(&bytes).to_hex()), digest);
    bytes
}

async fn fetch_manifest(api: &TestApi, token: &str, version: &str) -> Manifest {
    let response = api
        .get(
            &format!("/v1/games/e2e/versions/{version}/manifest"),
            Some(token),
            &[],
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}
