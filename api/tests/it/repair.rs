//! Repairs: signatures in, repair deltas out, applied and verified by the client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mist_db::state::{ArtifactKind, VersionState};
use mist_games::manifest::EntryKind;
use mist_games::{pack, repair, scan};
use serde_json::{Value, json};

use crate::common::*;

/// The status of a `POST` that declares `length` bytes of body and sends none: a limit on
/// the body must answer from the header alone (sending the bytes would race the server
/// closing the connection).
async fn declared_length_status(api: &TestApi, path: &str, token: &str, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

async fn setup(api: &TestApi) -> mist_games::manifest::Manifest {
    world(api).await;
    api.add_game("fix", false, &[]).await;
    let dir = api.nas.path().join("incoming/fix/1.0");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/big.bin"), pattern(300_000, 3)).unwrap();
    std::fs::write(dir.join("small.txt"), b"hello").unwrap();
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
    api.add_version(
        "fix",
        "1.0",
        0,
        VersionState::Ready,
        Some(&manifest_address),
        Some(&pack_address),
    )
    .await;
    manifest
}

fn damaged() -> Vec<u8> {
    let mut local = pattern(300_000, 3);
    for byte in &mut local[150_000..150_100] {
        *byte = 0;
    }
    local
}

async fn repair_and_check(api: &TestApi, token: &str, manifest: &mist_games::manifest::Manifest) {
    let local = damaged();
    let request = json!({"files": [
        {"path": "data/big.bin", "signature": BASE64.encode(repair::signature(&local))},
        {"path": "small.txt", "signature": BASE64.encode(repair::signature(b""))},
    ]});
    let (status, body) = api
        .post_json("/v1/games/fix/versions/1.0/repair", Some(token), &request)
        .await;
    assert_eq!(status, 200, "{body}");
    let files = body["files"].as_array().unwrap();
    assert_eq!(files[0]["path"], "data/big.bin");
    assert_eq!(files[0]["method"], "rsync");
    assert_eq!(files[1]["method"], "whole");
    for (file, local) in files.iter().zip([local.as_slice(), b"".as_slice()]) {
        let entry = manifest
            .entries
            .iter()
            .find(|entry| entry.path == file["path"].as_str().unwrap())
            .unwrap();
        let EntryKind::File { size, blake3, .. } = &entry.kind else {
            panic!("not a file")
        };
        assert_eq!(file["size"], *size);
        assert_eq!(file["blake3"], blake3.to_string());
        let delta = BASE64.decode(file["delta"].as_str().unwrap()).unwrap();
        let rebuilt = repair::apply_repair(local, &delta, blake3, *size).unwrap();
        assert_eq!(rebuilt.len() as u64, *size);
    }
    let delta_len = files[0]["delta"].as_str().unwrap().len();
    assert!(
        delta_len < 100_000,
        "an rsync delta, not the file: {delta_len}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_from_the_build_and_from_the_pack() {
    each_backend(
        "repair_from_the_build_and_from_the_pack",
        defaults,
        |api| async move {
            let manifest = setup(&api).await;
            let alice = api.login("alice").await;
            repair_and_check(&api, &alice, &manifest).await;
            // The build drifts on the NAS (or is removed): the pack still serves the true bytes,
            // and the drifted bytes are never sent.
            let build = api.nas.path().join("incoming/fix/1.0");
            std::fs::write(build.join("data/big.bin"), pattern(300_000, 99)).unwrap();
            repair_and_check(&api, &alice, &manifest).await;
            std::fs::remove_dir_all(&build).unwrap();
            repair_and_check(&api, &alice, &manifest).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_repair_requests_are_refused() {
    each_backend("bad_repair_requests", defaults, |api| async move {
        setup(&api).await;
        let alice = api.login("alice").await;
        let good_signature = BASE64.encode(repair::signature(b"x"));
        let cases: Vec<(Value, u16)> = vec![
            (
                json!({"files": [{"path": "nope", "signature": good_signature}]}),
                400,
            ),
            (
                json!({"files": [{"path": "../../etc/passwd", "signature": good_signature}]}),
                400,
            ),
            (
                json!({"files": [{"path": "data", "signature": good_signature}]}),
                400,
            ),
            (
                json!({"files": [{"path": "small.txt", "signature": "***"}]}),
                400,
            ),
            (
                json!({"files": [{"path": "small.txt", "signature": BASE64.encode(b"garbage")}]}),
                400,
            ),
            (json!({"files": []}), 400),
            (json!({"files": "x"}), 400),
            (json!({"other": 1}), 400),
        ];
        for (body, expected) in cases {
            let (status, answer) = api
                .post_json("/v1/games/fix/versions/1.0/repair", Some(&alice), &body)
                .await;
            assert_eq!(status, expected, "{body} -> {answer}");
        }
        // A body over the limit is refused from its declared length, before it is read.
        let repair_path = "/v1/games/fix/versions/1.0/repair";
        let status = declared_length_status(&api, repair_path, &alice, 17 * 1024 * 1024).await;
        assert_eq!(status, 413);
        // Small bodies elsewhere.
        let status = declared_length_status(&api, "/v1/auth/login", "", 100 * 1024).await;
        assert_eq!(status, 413);
    })
    .await;
}
