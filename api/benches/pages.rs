//! The pages' targets: the store with 200 games (median ≤ 5 ms) and the status board with
//! 200 games × 10 versions and 20 finished jobs with full logs (≤ 20 ms), measured as the time
//! to the whole response over loopback HTTP (so an upper bound of the server's own time),
//! while the database's change counter stands still; then the store's first contentful paint
//! in headless Chromium (≤ 500 ms), measured by `tests/browser/fcp.mjs` when Chromium and the
//! browser test's npm packages are there (otherwise the bench says it skipped it).
//!
//! The API runs in this process on a 2-worker tokio runtime over a read-only SQLite handle,
//! populated like the HTTP tests (`tests/it/common.rs`); the board's status source is the
//! tests' (`common::test_status_source`), built from the versions table.
//!
//! Run: `cargo bench -p mist-api --bench pages` (`MIST_BENCH_REQUESTS`, default 300, sets
//! the requests per page; `MIST_CHROMIUM` the browser, `/usr/bin/chromium` by default).

#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestApi};
use mist_db::joblog::{LogLevel, LogLimits, LogLine};
use mist_db::queue::{NewJob, QueueConfig};
use mist_db::state::{Role, VersionState};
use mist_db::testing::TestDb;

const N_GAMES: usize = 200;
const N_VERSIONS: usize = 10;
/// Finished jobs on the board (its whole history), each with a full log.
const N_LOGGED_JOBS: usize = 20;

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
    add_logged_jobs(&api).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    println!("| page | requests | median | p90 | target |");
    println!("|---|---:|---:|---:|---|");
    let mut store_cookie = String::new();
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
        if path == "/" {
            store_cookie = cookie.clone();
        }
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
            "| {path} ({N_GAMES} games × {N_VERSIONS} versions{}) | {n_requests} | {:.2} ms | {:.2} ms | {target} |",
            if path == "/admin" {
                format!(", {N_LOGGED_JOBS} jobs with full logs")
            } else {
                String::new()
            },
            median.as_secs_f64() * 1000.0,
            p90.as_secs_f64() * 1000.0
        );
    }
    first_contentful_paint(&api.url("/"), &store_cookie).await;
}

/// Finished jobs with full logs (200 lines of 100 bytes), which the board shows in its history.
async fn add_logged_jobs(api: &TestApi) {
    let queue = api.db().queue(QueueConfig {
        max_running: 1,
        ..QueueConfig::default()
    });
    let limits = LogLimits::default();
    let lease = Duration::from_secs(60);
    for job_idx in 0..N_LOGGED_JOBS {
        let key = format!("pack:blake3:{job_idx:064x}");
        let new_job = NewJob {
            key: key.clone(),
            kind: "pack".to_owned(),
            game: Some(format!("game-{job_idx:03}")),
            version: Some("1.9".to_owned()),
            payload_json: "{}".to_owned(),
            priority: 0,
        };
        queue.enqueue(&new_job, 0).await.expect("enqueue");
        queue
            .claim("bench", 0, lease)
            .await
            .expect("claim")
            .expect("a job");
        let lines: Vec<LogLine> = (0..limits.max_lines)
            .map(|line_idx| LogLine {
                at: i64::from(line_idx) * 1000,
                level: LogLevel::Info,
                message: format!(
                    "{line_idx:>4} {}",
                    "packed a file of 1.2 MB in 0.1 s; ".repeat(3)
                ),
            })
            .collect();
        api.db()
            .append_job_log(&key, "bench", &lines, &limits)
            .await
            .expect("log");
        queue.complete(&key, "bench", 1).await.expect("complete");
    }
}

/// The store's first contentful paint in headless Chromium, by `tests/browser/fcp.mjs`.
async fn first_contentful_paint(url: &str, cookie: &str) {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("MIST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !browser_dir.join("node_modules/playwright-core").is_dir() || !chromium.is_file() {
        println!(
            "first contentful paint: skipped (needs {} and `npm ci --prefix api/tests/browser`)",
            chromium.display()
        );
        return;
    }
    let mut command = std::process::Command::new("node");
    command
        .arg(browser_dir.join("fcp.mjs"))
        .current_dir(&browser_dir)
        .env("MIST_URL", url)
        .env("MIST_COOKIE", cookie)
        .env("MIST_CHROMIUM", &chromium);
    // The server keeps answering on the runtime's workers while node waits here.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run node");
    assert!(
        output.status.success(),
        "fcp.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
}
