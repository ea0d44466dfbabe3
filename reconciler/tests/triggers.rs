//! The triggers against real things: commits to real repositories seen through inotify,
//! `SIGHUP` sent to this process, and the periodic resync on tokio's paused clock.
//!
//! Nothing here sleeps to wait: real events are awaited with a deadline, intervals run on
//! paused time.

mod common;

use std::time::Duration;

use common::{commit, game, init, init_bare, version};
use mist_reconciler::desired::{DesiredConfig, DesiredState, SpecsSource};
use mist_reconciler::triggers::{self, Reason, Request, Requests, TriggersConfig};
use tokio::time::{Instant, timeout};

/// The target: a commit to the local spec repository starts work within 1 s.
const TARGET: Duration = Duration::from_secs(1);

/// Only the ref watcher.
fn watch_only(git_dir: std::path::PathBuf) -> TriggersConfig {
    TriggersConfig {
        startup: false,
        watch_git_dir: Some(git_dir),
        resync: None,
        sighup: false,
        ..Default::default()
    }
}

async fn expect_request(requests: &mut Requests, within: Duration, what: &str) -> Request {
    timeout(within, requests.wait())
        .await
        .unwrap_or_else(|_| panic!("no request within {within:?} after {what}"))
}

async fn expect_quiet(requests: &mut Requests) {
    // A zero timeout polls once: anything already pending is taken.
    if let Ok(request) = timeout(Duration::ZERO, requests.wait()).await {
        panic!("unexpected request: {request}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_to_a_local_work_tree_is_seen_within_a_second() {
    let origin = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let repo = init(origin.path());
    let mut files = vec![game("doom"), version("doom", "1.0")];
    commit(&repo, &files, "first");

    let mut reader = DesiredState::open(DesiredConfig::new(
        SpecsSource::Local(origin.path().into()),
        data.path(),
    ))
    .unwrap();
    let config = watch_only(reader.watch_dir().unwrap().unwrap());
    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&config, &trigger).unwrap();
    // Reading refs must not trigger anything by itself (no feedback loop).
    reader.read().unwrap();
    expect_quiet(&mut requests).await;

    let mut latencies = Vec::new();
    for version_idx in 1..=10 {
        files.push(version("doom", &format!("1.{version_idx}")));
        let started = Instant::now();
        let new_commit = commit(&repo, &files, "another version");
        let request = expect_request(&mut requests, TARGET, "a commit").await;
        latencies.push(started.elapsed());
        assert_eq!(request.to_string(), Reason::GitRefs.to_string());
        // The run the request starts sees the new commit.
        assert_eq!(reader.read().unwrap().commit, new_commit);
    }
    latencies.sort();
    eprintln!(
        "commit -> request latency over {} commits: min {:?}, median {:?}, max {:?}",
        latencies.len(),
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_into_a_bare_repository_is_seen() {
    // The usual server-side layout: admins push into a bare repository that mistd reads.
    let bare = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    init_bare(bare.path());
    let work_repo = init(work.path());
    let pushed = commit(&work_repo, &[game("doom")], "first");

    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&watch_only(bare.path().into()), &trigger).unwrap();

    let mut remote = work_repo
        .remote_anonymous(&common::file_url(bare.path()))
        .unwrap();
    let started = Instant::now();
    remote
        .push(&["refs/heads/main:refs/heads/main"], None)
        .unwrap();
    expect_request(&mut requests, TARGET, "a push").await;
    eprintln!("push -> request latency: {:?}", started.elapsed());
    let bare_repo = git2::Repository::open_bare(bare.path()).unwrap();
    let tip = bare_repo.refname_to_id("refs/heads/main").unwrap();
    assert_eq!(tip.to_string(), pushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_refs_and_new_ref_folders_are_seen() {
    let origin = tempfile::tempdir().unwrap();
    let repo = init(origin.path());
    let tip = repo
        .find_commit(commit(&repo, &[game("doom")], "first").parse().unwrap())
        .unwrap();
    let git_dir = origin.path().join(".git");
    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&watch_only(git_dir.clone()), &trigger).unwrap();

    // A branch in a folder that did not exist when the watch started.
    repo.branch("team/feature", &tip, false).unwrap();
    expect_request(&mut requests, TARGET, "a branch in a new folder").await;
    repo.branch("team/other", &tip, false).unwrap();
    expect_request(&mut requests, TARGET, "a branch in the new folder").await;

    // `git pack-refs` and `git gc` replace `packed-refs` by rename; write it the same way.
    let packed = format!(
        "# pack-refs with: peeled fully-peeled sorted \n{} refs/heads/x\n",
        tip.id()
    );
    std::fs::write(git_dir.join("packed-refs.lock"), packed).unwrap();
    std::fs::rename(
        git_dir.join("packed-refs.lock"),
        git_dir.join("packed-refs"),
    )
    .unwrap();
    expect_request(&mut requests, TARGET, "packed-refs replaced").await;

    // Files that are not refs are ignored.
    std::fs::write(git_dir.join("FETCH_HEAD"), "").unwrap();
    std::fs::write(git_dir.join("description"), "x").unwrap();
    // Let the watcher deliver whatever it would (a bounded wait for nothing, not a sleep
    // for something).
    assert!(
        timeout(Duration::from_millis(300), requests.wait())
            .await
            .is_err(),
        "a non-ref file triggered a run"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn sighup_requests_a_run() {
    let config = TriggersConfig {
        startup: false,
        watch_git_dir: None,
        resync: None,
        sighup: true,
        ..Default::default()
    };
    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&config, &trigger).unwrap();
    expect_quiet(&mut requests).await;
    // SAFETY: kill(2) with our own pid; `spawn` has installed the handler, so SIGHUP is
    // caught instead of ending the test process.
    let status = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(status, 0);
    let request = expect_request(&mut requests, Duration::from_secs(5), "SIGHUP").await;
    assert_eq!(request.to_string(), "SIGHUP");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn startup_requests_one_run_at_once() {
    let (trigger, mut requests) = triggers::channel();
    let config = TriggersConfig {
        sighup: false,
        resync: None,
        ..Default::default()
    };
    let _tasks = triggers::spawn(&config, &trigger).unwrap();
    let request = requests
        .try_take()
        .expect("a start-up request before anything runs");
    assert_eq!(request.to_string(), "startup");
    expect_quiet(&mut requests).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn periodic_resync_ticks_with_ten_percent_jitter() {
    let interval = Duration::from_secs(60);
    let config = TriggersConfig {
        startup: false,
        watch_git_dir: None,
        resync: Some(interval),
        sighup: false,
        ..Default::default()
    };
    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&config, &trigger).unwrap();

    let mut previous = Instant::now();
    for tick_idx in 0..20 {
        // Nothing before the earliest possible tick (-10 %)...
        tokio::time::advance(interval.mul_f64(0.9) - Duration::from_millis(1)).await;
        expect_quiet(&mut requests).await;
        // ...and a tick by the latest (+10 %). With paused time and nothing else to do,
        // tokio jumps the clock straight to the resync timer.
        let request = expect_request(&mut requests, interval, "the resync interval").await;
        assert_eq!(request.to_string(), "periodic resync");
        let elapsed = previous.elapsed();
        assert!(
            elapsed >= interval.mul_f64(0.9) && elapsed <= interval.mul_f64(1.1),
            "tick {tick_idx} after {elapsed:?}"
        );
        previous = Instant::now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_made_by_the_git_command_is_seen_within_a_second() {
    if !common::have_git_command() {
        eprintln!("SKIPPED: the `git` command is not installed");
        return;
    }
    let origin = tempfile::tempdir().unwrap();
    let repo = init(origin.path());
    commit(&repo, &[game("doom")], "first");
    let (trigger, mut requests) = triggers::channel();
    let _tasks = triggers::spawn(&watch_only(origin.path().join(".git")), &trigger).unwrap();

    let started = Instant::now();
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(origin.path())
        .args([
            "-c",
            "user.name=Mist tests",
            "-c",
            "user.email=tests@mist.invalid",
        ])
        .args([
            "commit",
            "--quiet",
            "--allow-empty",
            "--no-verify",
            "-m",
            "cli",
        ])
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .status()
        .unwrap();
    assert!(status.success());
    expect_request(&mut requests, TARGET, "git commit").await;
    eprintln!(
        "`git commit` -> request latency (process included): {:?}",
        started.elapsed()
    );
}
