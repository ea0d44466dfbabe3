//! End-to-end update benchmark (issue 6, "Targets"): `cargo bench -p mist-client --bench update`.
//!
//! Makes a `mistd demo` in a temporary folder, adds a game made of the real numpy 1.26.3 and
//! 1.26.4 trees from `../shared/bench/pairs.sh` when they are available, serves it on
//! loopback with the release `mistd`, and runs the release `mist` for a consecutive update
//! and a three-version jump (and the numpy pair). For each case it prints the bytes
//! downloaded against the planned bytes (target ≤ 1.05×), the ratio to a full download, and
//! the wall time of `mist update` against max(download time, apply time) as `mist update
//! --json` reports them (target ≤ 1.3×). `MIST_BENCH_RUNS` sets the runs per case (default
//! 3; the median by wall time is reported).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Downloaded bytes may exceed the plan by this factor at most.
const MAX_BYTES_RATIO: f64 = 1.05;
/// `mist update`'s wall time may exceed max(download, apply) by this factor at most.
const MAX_WALL_RATIO: f64 = 1.3;

/// One benchmark case: install `from`, then `mist update` to the newest version `to`.
struct Case {
    label: &'static str,
    game: &'static str,
    from: &'static str,
    to: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        label: "consecutive",
        game: "starfall",
        from: "1.1.0",
        to: "1.2.0",
    },
    Case {
        label: "three-version jump",
        game: "starfall",
        from: "1.0.0",
        to: "1.2.0",
    },
    Case {
        label: "consecutive",
        game: "tidewater",
        from: "1.0.0",
        to: "1.1.0",
    },
    Case {
        label: "three-version jump",
        game: "lantern",
        from: "1.0",
        to: "2.0",
    },
];

const NUMPY_CASE: Case = Case {
    label: "consecutive, real pair",
    game: "numpy",
    from: "1.26.3",
    to: "1.26.4",
};

/// What one `mist update` did.
#[derive(Debug, Clone)]
struct Run {
    wall: f64,
    download: f64,
    apply: f64,
    planned: u64,
    downloaded: u64,
    full: Option<u64>,
    route: String,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let work = tempfile::Builder::new()
        .prefix("mist-bench-update-")
        .tempdir()
        .expect("temporary folder");
    let bins = build_server_binaries();
    let demo = work.path().join("demo");
    let password = make_demo(&bins, &demo);
    let numpy = add_numpy(&bins, &demo);
    let mut server = Server::start(&bins.mistd, &demo);
    let client = Client::login(work.path(), &server.url, &password);
    let runs: usize = std::env::var("MIST_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(3)
        .max(1);

    let mut cases: Vec<&Case> = CASES.iter().collect();
    if numpy {
        cases.push(&NUMPY_CASE);
    }
    let mut all_ok = true;
    println!("\n# mist update benchmark ({runs} run(s) per case, median by wall time)\n");
    for (case_idx, case) in cases.iter().enumerate() {
        let mut results: Vec<Run> = (0..runs)
            .map(|run_idx| {
                let dir = work.path().join(format!("games/{case_idx}-{run_idx}"));
                client.run_case(case, &dir)
            })
            .collect();
        results.sort_by(|a, b| a.wall.total_cmp(&b.wall));
        let run = results[results.len() / 2].clone();
        let full = run
            .full
            .unwrap_or_else(|| client.full_bytes(case, &work.path().join("full")));
        all_ok &= report(case, &run, full);
    }
    server.stop();
    println!(
        "\nOverall: {}",
        if all_ok {
            "every target met"
        } else {
            "SOME TARGETS MISSED"
        }
    );
}

/// Prints one case's table and target checks; returns whether both targets are met.
fn report(case: &Case, run: &Run, full: u64) -> bool {
    let bytes_ratio = run.downloaded as f64 / run.planned.max(1) as f64;
    let busiest = run.download.max(run.apply);
    let wall_ratio = run.wall / busiest.max(f64::EPSILON);
    let bytes_ok = bytes_ratio <= MAX_BYTES_RATIO;
    let wall_ok = wall_ratio <= MAX_WALL_RATIO;
    println!(
        "## {} {} → {} ({}, route `{}`)\n",
        case.game, case.from, case.to, case.label, run.route
    );
    println!("| metric | value |");
    println!("|---|---:|");
    println!("| planned bytes | {} |", run.planned);
    println!("| downloaded bytes | {} |", run.downloaded);
    println!("| downloaded / planned | {bytes_ratio:.3} |");
    println!("| full download (pack) bytes | {full} |");
    println!(
        "| downloaded / full | {:.3} |",
        run.downloaded as f64 / full.max(1) as f64
    );
    println!("| `mist update` wall | {:.3} s |", run.wall);
    println!("| download time | {:.3} s |", run.download);
    println!("| apply time | {:.3} s |", run.apply);
    println!("| wall / max(download, apply) | {wall_ratio:.2} |");
    println!();
    println!(
        "- bytes downloaded ≤ {MAX_BYTES_RATIO} × planned: {} ({bytes_ratio:.3})",
        verdict(bytes_ok)
    );
    println!(
        "- wall ≤ {MAX_WALL_RATIO} × max(download, apply): {} ({wall_ratio:.2})\n",
        verdict(wall_ok)
    );
    bytes_ok && wall_ok
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// The release server binaries.
struct Bins {
    mistd: PathBuf,
    mistpipe: PathBuf,
}

/// Builds `mistd` and `mistpipe` with the bench's profile: cargo builds only this package's
/// binaries for a bench.
fn build_server_binaries() -> Bins {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "mistd",
            "-p",
            "mistpipe",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build --release -p mistd -p mistpipe");
    assert!(status.success(), "cargo build --release -p mistd failed");
    // <target>/release/deps/<bench binary>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bins = Bins {
        mistd: dir.join("mistd"),
        mistpipe: dir.join("mistpipe"),
    };
    assert!(bins.mistd.is_file(), "{} is missing", bins.mistd.display());
    bins
}

/// `mistd demo --no-serve` in `demo`; returns the friend's password.
fn make_demo(bins: &Bins, demo: &Path) -> String {
    let started = Instant::now();
    let output = Command::new(&bins.mistd)
        .arg("demo")
        .arg("--dir")
        .arg(demo)
        .arg("--no-serve")
        .output()
        .expect("run mistd demo");
    assert!(output.status.success(), "mistd demo failed: {output:?}");
    eprintln!("demo made in {:.1} s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.len() == 3 && words[0] == "friend")
        .map(|words| words[2].to_owned())
        .unwrap_or_else(|| panic!("no password for friend in:\n{stdout}"))
}

/// Adds the game `numpy` (1.26.3 and 1.26.4, hard-linked from the pairs cache) to the demo
/// and lets `mistd demo` reconcile it. Returns false, saying why, when the pair is
/// unavailable or does not become Ready.
fn add_numpy(bins: &Bins, demo: &Path) -> bool {
    match try_add_numpy(bins, demo) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("the numpy pair is left out: {why}");
            false
        }
    }
}

fn try_add_numpy(bins: &Bins, demo: &Path) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/pairs.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("numpy-tree")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed", script.display()));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let words: Vec<&str> = stdout
        .lines()
        .find(|line| line.starts_with("numpy-tree "))
        .ok_or("pairs.sh printed no numpy-tree line")?
        .split_whitespace()
        .collect();
    let [_, "dir", old, new] = words[..] else {
        return Err(format!("unexpected pairs.sh line: {words:?}"));
    };
    let incoming = demo.join("nas/incoming/numpy");
    std::fs::create_dir_all(&incoming).map_err(|e| e.to_string())?;
    for (tree, version) in [(old, "1.26.3"), (new, "1.26.4")] {
        // Hard links: the NAS never modifies its builds.
        run(Command::new("cp")
            .arg("-al")
            .arg(tree)
            .arg(incoming.join(version)))?;
    }
    let specs = demo.join("specs");
    run(Command::new(&bins.mistpipe)
        .args(["new", "game", "numpy", "--title", "NumPy", "--repo"])
        .arg(&specs))?;
    for version in ["1.26.3", "1.26.4"] {
        run(Command::new(&bins.mistpipe)
            .args(["new", "version", "numpy", version, "--source"])
            .arg(format!("incoming/numpy/{version}"))
            .arg("--nas")
            .arg(demo.join("nas"))
            .arg("--repo")
            .arg(&specs))?;
    }
    run(Command::new("git")
        .arg("-C")
        .arg(&specs)
        .args(["add", "-A"]))?;
    run(Command::new("git").arg("-C").arg(&specs).args([
        "-c",
        "user.name=Bench",
        "-c",
        "user.email=bench@mist.invalid",
        "commit",
        "--quiet",
        "-m",
        "Add numpy 1.26.3 and 1.26.4",
    ]))?;
    // A demo that exists is reused: this reconciles the new commit and exits once every
    // version is Ready (or fails saying which is not).
    let started = Instant::now();
    run(Command::new(&bins.mistd)
        .arg("demo")
        .arg("--dir")
        .arg(demo)
        .arg("--no-serve"))?;
    eprintln!(
        "numpy 1.26.3 and 1.26.4 Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `mistd run --role api` on loopback over the demo's data and NAS.
struct Server {
    url: String,
    child: Child,
}

impl Server {
    fn start(mistd: &Path, demo: &Path) -> Server {
        let log = std::fs::File::create(demo.join("mistd.log")).unwrap();
        let (mut command, address) = common::mistd_api_command(mistd, demo, log);
        let child = command.spawn().expect("start mistd run");
        let mut server = Server {
            url: format!("http://{address}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !common::answers_200(address, "/readyz") {
            if Instant::now() > deadline || server.child.try_wait().unwrap().is_some() {
                server.stop();
                panic!("mistd did not answer GET /readyz = 200 within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// SIGTERM, then waits (SIGKILL after 10 s).
    fn stop(&mut self) {
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        // SAFETY: sends a signal to our own child, whose pid is not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The release `mist` with private folders.
struct Client {
    home: PathBuf,
}

impl Client {
    fn login(work: &Path, url: &str, password: &str) -> Client {
        let client = Client {
            home: work.join("client"),
        };
        let mut child = client
            .command(&[
                "login",
                "--server",
                url,
                "--user",
                "friend",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mist login");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "mist login failed: {output:?}");
        client
    }

    fn command(&self, args: &[&str]) -> Command {
        common::mist_command(&self.home, args)
    }

    /// Runs `mist ARGS --json` successfully and returns its one summary.
    fn summary(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--json", "--quiet"]);
        let output = self.command(&args).output().expect("run mist");
        assert!(
            output.status.success(),
            "mist {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let value: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON on standard output");
        value[0].clone()
    }

    /// Installs `case.from` in `dir`, times `mist update` to `case.to`, uninstalls.
    fn run_case(&self, case: &Case, dir: &Path) -> Run {
        let dir_arg = dir.to_str().unwrap();
        self.summary(&[
            "install",
            case.game,
            "--version",
            case.from,
            "--dir",
            dir_arg,
        ]);
        let started = Instant::now();
        let summary = self.summary(&["update", case.game]);
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(summary["to"], case.to, "{summary}");
        let uninstall = self
            .command(&["uninstall", case.game])
            .output()
            .expect("run mist uninstall");
        assert!(uninstall.status.success(), "{uninstall:?}");
        Run {
            wall,
            download: summary["downloadSeconds"]
                .as_f64()
                .expect("downloadSeconds"),
            apply: summary["applySeconds"].as_f64().expect("applySeconds"),
            planned: summary["plannedBytes"].as_u64().unwrap(),
            downloaded: summary["downloadedBytes"].as_u64().unwrap(),
            full: summary["fullBytes"].as_u64(),
            route: summary["route"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// The planned bytes of a fresh install of `case.to` (its pack), by installing it.
    fn full_bytes(&self, case: &Case, dir: &Path) -> u64 {
        let summary = self.summary(&[
            "install",
            case.game,
            "--version",
            case.to,
            "--dir",
            dir.to_str().unwrap(),
        ]);
        let _ = self.command(&["uninstall", case.game]).output();
        summary["plannedBytes"].as_u64().unwrap()
    }
}
