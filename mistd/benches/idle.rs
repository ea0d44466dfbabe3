//! Target checks for a converged `mistd run` (issue 4, "Targets"):
//!
//! - **idle CPU**: a converged `mistd run` on the demo, left alone for 30 s, must use less
//!   than 1 % of a core (utime + stime from `/proc/<pid>/stat`);
//! - **commit → work started**: a commit to the local spec repository must start work within
//!   1 s. Measured from the commit to (a) the new version appearing in the status, (b) its
//!   first job running, and (c) the version being Ready.
//!
//! Run with `cargo bench -p mistd --bench idle` (release build). `MIST_BENCH_IDLE_SECS`
//! shortens the idle window; `MIST_BENCH_COMMITS` sets how many commits are timed (5).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Mistd, commit_all, run_args, wait_converged, wait_for};

const N_DEMO_VERSIONS: usize = 11;

fn main() {
    // `cargo bench` passes `--bench`; anything else (say, `cargo test --benches`) only checks
    // that this builds.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("idle: run with `cargo bench -p mistd --bench idle`");
        return;
    }
    let idle_secs: u64 = env_number("MIST_BENCH_IDLE_SECS", 30);
    let n_commits: usize = env_number("MIST_BENCH_COMMITS", 5);

    let tmp = tempfile::tempdir().unwrap();
    let layout = mistd::demo::generate(&tmp.path().join("demo")).unwrap();
    let args = run_args(&layout.specs_repo, &layout.nas, &layout.data);
    let mut mistd = Mistd::run(&args, &tmp.path().join("mistd.log"));
    let started = Instant::now();
    wait_converged(&layout.data, N_DEMO_VERSIONS, Duration::from_secs(900));
    println!(
        "converged the demo ({N_DEMO_VERSIONS} versions) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Idle CPU. Let the last pass settle first: the window starts one second after
    // convergence was seen.
    let settle_until = Instant::now() + Duration::from_secs(1);
    wait_for("settling", Duration::from_secs(2), |_| {
        (Instant::now() >= settle_until).then_some(())
    });
    let ticks_per_second = clock_ticks_per_second();
    let cpu_before = cpu_ticks(mistd.pid());
    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let cpu_after = cpu_ticks(mistd.pid());
    let window = window_start.elapsed().as_secs_f64();
    let cpu_seconds = (cpu_after - cpu_before) as f64 / ticks_per_second;
    let percent = 100.0 * cpu_seconds / window;
    println!(
        "idle CPU: {cpu_seconds:.3} s of CPU over {window:.1} s = {percent:.3} % of a core \
         (target < 1 %): {}",
        if percent < 1.0 { "ok" } else { "MISSED" }
    );

    // Commit → work started.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(mist_db::Db::connect_read_only(&mist_db::sqlite_url_in(
            &layout.data,
        )))
        .unwrap();
    let mut seen_ms = Vec::new();
    let mut running_ms = Vec::new();
    let mut ready_ms = Vec::new();
    for commit_idx in 0..n_commits {
        let version = format!("1.3.{commit_idx}");
        let build = layout.nas.join("incoming/starfall").join(&version);
        common::copy_tree(&layout.nas.join("incoming/starfall/1.2.0"), &build);
        std::fs::write(build.join("patch-notes.txt"), format!("{version}\n")).unwrap();
        std::fs::write(
            layout
                .specs_repo
                .join(format!("games/starfall/versions/{version}.yaml")),
            format!(
                "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{version}\"\n  \
                 game: starfall\nspec:\n  source: incoming/starfall/{version}\n"
            ),
        )
        .unwrap();
        let committed = Instant::now();
        commit_all(&layout.specs_repo, &format!("Release starfall {version}"));
        let mut seen = None;
        let mut running = None;
        let ready = loop {
            let report = runtime.block_on(mist_reconciler::status(&db)).unwrap();
            let report = serde_json::to_value(&report).unwrap();
            let elapsed = committed.elapsed();
            let entry = report["games"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|game| game["name"] == "starfall")
                .flat_map(|game| game["versions"].as_array().into_iter().flatten())
                .find(|v| v["name"] == version.as_str())
                .cloned();
            if entry.is_some() && seen.is_none() {
                seen = Some(elapsed);
            }
            let job_running = report["queue"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|job| job["version"] == version.as_str() && job["state"] == "running");
            if (job_running || entry.as_ref().is_some_and(|v| v["ready"] == true))
                && running.is_none()
            {
                running = Some(elapsed);
            }
            if entry.is_some_and(|v| v["ready"] == true) {
                break elapsed;
            }
            assert!(
                elapsed < Duration::from_secs(300),
                "{version} never became Ready"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
        println!(
            "commit {version}: in the status after {:.0} ms, a job running after {:.0} ms, \
             Ready after {:.0} ms",
            ms(seen),
            ms(running),
            ms(Some(ready))
        );
        seen_ms.push(ms(seen));
        running_ms.push(ms(running));
        ready_ms.push(ms(Some(ready)));
    }
    runtime.block_on(db.close());
    let summary = |name: &str, values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        println!(
            "commit -> {name}: median {:.0} ms, max {:.0} ms over {} commits",
            values[values.len() / 2],
            values[values.len() - 1],
            values.len()
        );
    };
    summary("seen", &mut seen_ms);
    summary("work started", &mut running_ms);
    summary("Ready", &mut ready_ms);
    let worst_start = running_ms.last().copied().unwrap_or(f64::NAN);
    println!(
        "target: work starts within 1000 ms of a commit: {}",
        if worst_start <= 1000.0 {
            "ok"
        } else {
            "MISSED"
        }
    );

    mistd.signal(libc::SIGTERM);
    let (status, took) = mistd.wait_exit(Duration::from_secs(10));
    println!("SIGTERM -> {status} after {} ms", took.as_millis());
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields[14 - 3].parse().unwrap();
    let stime: u64 = fields[15 - 3].parse().unwrap();
    utime + stime
}
