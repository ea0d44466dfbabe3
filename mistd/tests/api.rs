//! The read API end to end, the way a friend's client uses it: `mistd demo` converges a demo
//! NAS, then `mistd run --role api` serves it from a read-only database; log in, list, fetch
//! a plan from the first version to the latest, download its artifacts with a resume in the
//! middle, apply them with the content engine and verify the result against the manifest.
//! The NAS must be exactly as it was: the API never writes there.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Mistd, file_facts, password_of};
use mist_games::manifest::Manifest;
use mist_games::{pack, scan, treedelta};
use serde_json::{Value, json};

/// One HTTP/1.1 request with `Connection: close`; the status, the headers (lowercase names)
/// and the body bytes. Bodies here carry `Content-Length`, so no de-chunking is needed.
fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

fn get_json(address: SocketAddr, path: &str, token: &str) -> Value {
    let auth = format!("Bearer {token}");
    let (status, _, body) = request(address, "GET", path, &[("Authorization", &auth)], b"");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Downloads a plan step's artifact in two requests, the second resuming with `If-Range`.
fn download_resuming(address: SocketAddr, token: &str, step: &Value) -> Vec<u8> {
    let url = step["url"].as_str().unwrap();
    let digest = step["digest"].as_str().unwrap();
    let size = step["size"].as_u64().unwrap();
    let auth = format!("Bearer {token}");
    let half = size / 2;
    let first_range = format!("bytes=0-{}", half - 1);
    let (status, headers, mut bytes) = request(
        address,
        "GET",
        url,
        &[("Authorization", &auth), ("Range", &first_range)],
        b"",
    );
    assert_eq!(status, 206);
    let etag = headers
        .iter()
        .find(|(name, _)| name == "etag")
        .map(|(_, value)| value.clone())
        .expect("ETag");
    assert_eq!(etag, format!("\"{digest}\""));
    let rest_range = format!("bytes={half}-");
    let (status, _, rest) = request(
        address,
        "GET",
        url,
        &[
            ("Authorization", &auth),
            ("Range", &rest_range),
            ("If-Range", &etag),
        ],
        b"",
    );
    assert_eq!(status, 206);
    bytes.extend_from_slice(&rest);
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(format!("blake3:{}", blake3::hash(&bytes).to_hex()), digest);
    bytes
}

fn fetch_manifest(address: SocketAddr, token: &str, game: &str, version: &str) -> Manifest {
    let manifest = get_json(
        address,
        &format!("/v1/games/{game}/versions/{version}/manifest"),
        token,
    );
    serde_json::from_value(manifest).unwrap()
}

#[test]
fn a_friend_installs_and_updates_a_demo_game_through_the_api_role() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let stdout = common::run_demo(&dir);
    let password = password_of(&stdout, "friend");
    let nas = dir.join("nas");
    let data = dir.join("data");
    let nas_before = file_facts(&nas);

    let mut server = Mistd::run(
        &[
            OsStr::new("--role"),
            OsStr::new("api"),
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--nas"),
            nas.as_os_str(),
            OsStr::new("--trusted-proxy"),
            OsStr::new("127.0.0.1"),
        ],
        &tmp.path().join("mistd.log"),
    );
    server.wait_healthy(Duration::from_secs(60));
    let address = server.address;

    // Behind the trusted proxy (127.0.0.1), an attacker's address is refused after ten wrong
    // passwords, counted through the api role's login store; the friend's address is not.
    let attempt = |forwarded_for: &str, password: &str| {
        let login = json!({"user": "friend", "password": password}).to_string();
        request(
            address,
            "POST",
            "/v1/auth/login",
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", forwarded_for),
            ],
            login.as_bytes(),
        )
        .0
    };
    for _ in 0..10 {
        assert_eq!(attempt("203.0.113.66", "wrong"), 401);
    }
    assert_eq!(attempt("203.0.113.66", &password), 429);
    assert_eq!(attempt("198.51.100.7", &password), 200);

    let login = json!({"user": "friend", "password": password}).to_string();
    let (status, _, body) = request(
        address,
        "POST",
        "/v1/auth/login",
        &[("Content-Type", "application/json")],
        login.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let login: Value = serde_json::from_slice(&body).unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let secret_mode = std::fs::metadata(data.join("jwt-secret")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&secret_mode.permissions()) & 0o777,
        0o600
    );

    let games = get_json(address, "/v1/games", &token);
    let starfall = games["games"]
        .as_array()
        .unwrap()
        .iter()
        .find(|game| game["name"] == "starfall")
        .expect("starfall in the catalog")
        .clone();
    let versions: Vec<String> = starfall["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version["name"].as_str().unwrap().to_owned())
        .collect();
    let (first, latest) = (&versions[0], versions.last().unwrap());
    assert_eq!(starfall["latest"], latest.as_str());

    // Install the first version from its pack.
    let fresh = get_json(
        address,
        &format!("/v1/games/starfall/update?to={first}"),
        &token,
    );
    assert_eq!(fresh["route"], "full");
    let pack_bytes = download_resuming(address, &token, &fresh["steps"][0]);
    let client = tempfile::tempdir().unwrap();
    let mut installed = client.path().join("starfall");
    let mut installed_manifest = fetch_manifest(address, &token, "starfall", first);
    pack::read::unpack(pack_bytes.as_slice(), &installed_manifest, &installed).unwrap();
    assert_eq!(scan::scan(&installed).unwrap(), installed_manifest);

    // Update it to the latest with the planned deltas.
    let plan = get_json(
        address,
        &format!("/v1/games/starfall/update?from={first}"),
        &token,
    );
    assert_eq!(plan["to"], latest.as_str());
    assert_ne!(plan["route"], "full", "{plan:#}");
    let full_bytes = plan["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rejected| rejected["route"] == "full")
        .and_then(|rejected| rejected["totalBytes"].as_u64())
        .expect("the full download was priced");
    assert!(
        plan["totalBytes"].as_u64().unwrap() < full_bytes,
        "{plan:#}"
    );
    for (step_idx, step) in plan["steps"].as_array().unwrap().iter().enumerate() {
        let package =
            treedelta::package::Package::from_bytes(download_resuming(address, &token, step))
                .unwrap();
        let next = client.path().join(format!("starfall-{step_idx}"));
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
    let target = fetch_manifest(address, &token, "starfall", latest);
    assert_eq!(installed_manifest, target);
    assert_eq!(scan::scan(&installed).unwrap(), target);

    assert_eq!(file_facts(&nas), nas_before, "the API wrote on the NAS");
    assert_nothing_logged_as_error(&server.log_text());
}

fn assert_nothing_logged_as_error(log: &str) {
    assert!(
        !log.lines().any(|line| line.contains("ERROR")),
        "errors in the log:\n{log}"
    );
}
