//! The pages' server-time targets: the store with 200 games (median ≤ 5 ms) and the status
//! board with 200 games × 10 versions (≤ 20 ms), measured as the time to the whole response
//! over loopback HTTP (so an upper bound of the server's own time), while the database's
//! change counter stands still.
//!
//! The API runs in this process on a 2-worker tokio runtime over a read-only SQLite handle,
//! populated like the HTTP tests (`tests/it/common.rs`); the board's status source is the
//! tests' (`common::test_status_source`), built from the versions table.
//!
//! Run: `cargo bench --workspace --bench pages` (`MIST_BENCH_REQUESTS`, default 300, sets
//! the requests per page).

#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{PASSWORD, TestApi};
use mist_db::state::{Role, VersionState};
use mist_db::testing::TestDb;

const N_GAMES: usize = 200;
const N_VERSIONS: usize = 10;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n_requests: usize = std::env::var("MIST_BENCH_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(300);
    let api = TestApi::start(TestDb::sqlite().await, common::defaults).await;
    api.add_users(&[("alice", Role::User, false), ("root", Role::Admin, false)])
        .await;
    for game_idx in 0..N_GAMES {
        let game = format!("game-{game_idx:03}");
        api.add_game(&game, false, &[]).await;
        for version_idx in 0..N_VERSIONS {
            api.add_version(
                &game,
                &format!("1.{version_idx}"),
                version_idx as i64,
                VersionState::Ready,
                None,
                None,
            )
            .await;
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    println!("| page | requests | median | p90 | target |");
    println!("|---|---:|---:|---:|---|");
    for (user, path, target) in [("alice", "/", "≤ 5 ms"), ("root", "/admin", "≤ 20 ms")] {
        let response = client
            .post(api.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "user={user}&password={}",
                PASSWORD.replace(' ', "+")
            ))
            .send()
            .await
            .expect("sign in");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .expect("cookie value")
            .to_owned();
        let mut times: Vec<Duration> = Vec::with_capacity(n_requests);
        for request_idx in 0..=n_requests {
            let started = Instant::now();
            let response = client
                .get(api.url(path))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            let body = response.bytes().await.expect("body");
            assert!(body.len() > 10_000, "{path} shows the games");
            // The first request loads the caches; the target is the steady state.
            if request_idx > 0 {
                times.push(started.elapsed());
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        println!(
            "| {path} ({N_GAMES} games × {N_VERSIONS} versions) | {n_requests} | {:.2} ms | {:.2} ms | {target} |",
            median.as_secs_f64() * 1000.0,
            p90.as_secs_f64() * 1000.0
        );
    }
}
