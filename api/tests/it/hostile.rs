//! Path traversal and injection on every path and query parameter: always a 400 or 404,
//! never a file from outside the artifact store, never a 500.
//!
//! Requests are written byte for byte over TCP: an HTTP client library would normalise
//! `..` and percent-encodings before sending them.

use std::net::SocketAddr;

use mist_db::state::{Artifact, ArtifactKind, VersionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Sends `GET <target>` as is; returns the status and the body.
async fn raw_get(api: &TestApi, target: &str, token: &str) -> (u16, String) {
    raw_request(api, "GET", target, token, "").await
}

async fn raw_request(
    api: &TestApi,
    method: &str,
    target: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let address: SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {target}: {text:?}"));
    (status, text)
}

const CANARY: &str = "CANARY-outside-the-store";

const BAD_SEGMENTS: &[&str] = &[
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "%2fetc%2fpasswd",
    "canary.txt",
    "..%2fcanary.txt",
    "%00",
    "open%00",
    "open%20",
    "OPEN",
    "open;rm%20-rf",
    "open'--",
    "%27%20OR%201%3D1--",
    "%E2%80%AE",
    "%C0%AE%C0%AE",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "-open",
    "1.0%2f..%2f..",
    "%252e%252e",
];

fn is_refusal(status: u16) -> bool {
    matches!(status, 400 | 404 | 405)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_injection_in_paths_and_queries_are_refused() {
    each_backend("traversal_and_injection", defaults, |api| async move {
        let w = world(&api).await;
        std::fs::write(api.nas.path().join("canary.txt"), CANARY).unwrap();
        std::fs::write(api.nas.path().join(".mist").join("canary.txt"), CANARY).unwrap();
        let root = api.login("root").await;
        let hex = w.open_packs[0].strip_prefix("blake3:").unwrap();

        let mut targets = Vec::new();
        for bad in BAD_SEGMENTS {
            targets.push(format!("/v1/games/{bad}"));
            targets.push(format!("/v1/games/{bad}/update"));
            targets.push(format!("/v1/games/{bad}/versions/1.0/manifest"));
            targets.push(format!("/v1/games/open/versions/{bad}/manifest"));
            targets.push(format!("/v1/artifacts/{bad}"));
            targets.push(format!("/v1/artifacts/blake3:{bad}"));
            targets.push(format!("/v1/games/open/update?from={bad}"));
            targets.push(format!("/v1/games/open/update?to={bad}"));
            targets.push(format!("/v1/games/open/update?from=1.0&to={bad}"));
        }
        for digest in [
            format!("blake3:{}", hex.to_uppercase()),
            format!("blake3:{}", &hex[..63]),
            format!("blake3:{hex}0"),
            format!("sha256:{hex}"),
            hex.to_owned(),
            format!("blake3:{}/..", hex),
            format!("blake3:{}%2f..%2f..%2fcanary.txt", &hex[..2]),
            format!("{}%2f{hex}", &hex[..2]),
            "blake3:..%2f..%2fcanary.txt".to_owned(),
        ] {
            targets.push(format!("/v1/artifacts/{digest}"));
        }
        for target in &targets {
            let (status, text) = raw_get(&api, target, &root).await;
            assert!(is_refusal(status), "{target}: {status} {text}");
            assert!(!text.contains(CANARY), "{target} leaked the canary");
        }
        // Path parameters keep working with the real names (the test is not vacuous).
        assert_eq!(
            raw_get(&api, &format!("/v1/artifacts/{}", w.open_packs[0]), &root)
                .await
                .0,
            200
        );
        assert_eq!(
            raw_get(&api, "/v1/games/open/update?from=1.0", &root)
                .await
                .0,
            200
        );
        // The percent-encoded colon is the same address.
        assert_eq!(
            raw_get(&api, &format!("/v1/artifacts/blake3%3A{hex}"), &root)
                .await
                .0,
            200
        );

        for bad in BAD_SEGMENTS {
            let target = format!("/v1/games/open/versions/{bad}/repair");
            let (status, text) = raw_request(&api, "POST", &target, &root, r#"{"files":[]}"#).await;
            assert!(is_refusal(status), "{target}: {status} {text}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_artifact_row_never_opens_a_file_outside_the_store() {
    each_backend("corrupt_artifact_row", defaults, |api| async move {
        world(&api).await;
        std::fs::write(api.nas.path().join("canary.txt"), CANARY).unwrap();
        // A row whose recorded path climbs out of the store (only a bug or a tampered
        // database could write one): the API refuses to open it.
        let address = format!("blake3:{}", "c".repeat(64));
        api.db()
            .record_artifact(&Artifact {
                address: address.clone(),
                kind: ArtifactKind::Pack,
                size: CANARY.len() as u64,
                path: "../../canary.txt".to_owned(),
                created_at: T0,
                verified_at: None,
            })
            .await
            .unwrap();
        api.add_version("open", "2.0", 10, VersionState::Ready, None, Some(&address))
            .await;
        let root = api.login("root").await;
        let (status, text) = raw_get(&api, &format!("/v1/artifacts/{address}"), &root).await;
        assert!(status >= 500, "{status}");
        assert!(!text.contains(CANARY), "{text}");
    })
    .await;
}
