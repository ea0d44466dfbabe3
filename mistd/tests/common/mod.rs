//! Helpers for the process tests: running `mistd`, a tiny HTTP/1.1 client over
//! `std::net::TcpStream`, polling with deadlines, git commits and snapshots of a NAS.
#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `mistd` binary under test.
pub fn mistd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mistd"))
}

/// How often [`wait_for`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// How often [`wait_converged`] runs `mistd status`: a process each time, so less often.
pub const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, or panics after `timeout` naming `what` and the
/// last thing `check` said through `last`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    wait_for_every(POLL_INTERVAL, what, timeout, check)
}

/// [`wait_for`] looking every `interval`.
pub fn wait_for_every<T>(
    interval: Duration,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(value) = check(&mut last) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(interval);
    }
}

/// A port that was free a moment ago: bind port 0, read the port, let it go. Another process
/// could take it in between; on a test machine that is rare enough.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// One `GET` over HTTP/1.1 with `Connection: close`: the status code and the body, or the
/// I/O error (connection refused while the server starts).
pub fn http_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(address, "GET", path, &[], b"")
}

/// One request over HTTP/1.1 with `Connection: close`; the response body is read to the end
/// (the server closes the connection), de-chunked if needed.
pub fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// A running `mistd` process, killed (SIGKILL) when dropped if still running. Its stderr
/// goes to a file, shown when a test fails.
pub struct Mistd {
    pub child: Child,
    pub address: SocketAddr,
    pub log: PathBuf,
}

impl Mistd {
    /// Starts `mistd run` with `args` on a free port, logs in `log`.
    pub fn run(args: &[&std::ffi::OsStr], log: &Path) -> Mistd {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log_file = std::fs::File::create(log).expect("create the log file");
        let child = Command::new(mistd_bin())
            .arg("run")
            .args(args)
            .arg("--listen")
            .arg(address.to_string())
            .env_remove("RUST_LOG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start mistd run");
        Mistd {
            child,
            address,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        let result = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(result, 0, "kill({}, {signal})", self.pid());
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/healthz` to answer 200.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let address = self.address;
        let log = self.log.clone();
        wait_for("GET /healthz = 200", timeout, |last| {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "mistd exited with {status} before it was healthy:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            match http_get(address, "/healthz") {
                Ok((200, _)) => Some(()),
                Ok((status, body)) => {
                    *last = format!("{status} {body}");
                    None
                }
                Err(e) => {
                    *last = e.to_string();
                    None
                }
            }
        });
    }

    /// Waits for the process to exit, at most `timeout`; returns its status and how long it
    /// took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = wait_for("mistd to exit", timeout, |_| {
            self.child.try_wait().expect("try_wait")
        });
        (status, started.elapsed())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mistd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
            if std::thread::panicking() {
                eprintln!("mistd log ({}):\n{}", self.log.display(), self.log_text());
            }
        }
    }
}

/// Runs `mistd status --data <data> --json` and parses it.
pub fn status(data: &Path) -> Result<serde_json::Value, String> {
    let output = Command::new(mistd_bin())
        .arg("status")
        .arg("--data")
        .arg(data)
        .arg("--json")
        .env_remove("MIST_DB")
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

/// Every (game, version) in a status report with its `ready`.
pub fn readiness(report: &serde_json::Value) -> BTreeMap<(String, String), bool> {
    let mut versions = BTreeMap::new();
    for game in report["games"].as_array().into_iter().flatten() {
        for version in game["versions"].as_array().into_iter().flatten() {
            versions.insert(
                (
                    game["name"].as_str().unwrap_or("-").to_string(),
                    version["name"].as_str().unwrap_or("-").to_string(),
                ),
                version["ready"].as_bool() == Some(true),
            );
        }
    }
    versions
}

/// Whether every version is Ready and no job is waiting or running.
pub fn converged(report: &serde_json::Value, n_versions: usize) -> bool {
    let versions = readiness(report);
    let queue_idle = report["queue"].as_array().is_none_or(|jobs| {
        jobs.iter()
            .all(|job| !matches!(job["state"].as_str(), Some("queued" | "running" | "failed")))
    });
    versions.len() == n_versions && versions.values().all(|ready| *ready) && queue_idle
}

/// Waits until `mistd status` shows `n_versions` versions, all Ready, and an idle queue.
pub fn wait_converged(data: &Path, n_versions: usize, timeout: Duration) -> serde_json::Value {
    let what = "every version Ready";
    wait_for_every(STATUS_POLL_INTERVAL, what, timeout, |last| {
        match status(data) {
            Ok(report) if converged(&report, n_versions) => Some(report),
            Ok(report) => {
                *last = report.to_string();
                None
            }
            Err(e) => {
                *last = e;
                None
            }
        }
    })
}

/// Commits the work tree's current files on the checked-out branch (like `git add -A &&
/// git commit`); returns the commit id.
pub fn commit_all(repo_dir: &Path, message: &str) -> String {
    let repo = git2::Repository::open(repo_dir).expect("open the spec repository");
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("git add");
    index.write().expect("write the index");
    let tree = repo
        .find_tree(index.write_tree().expect("write tree"))
        .expect("tree");
    let signature = git2::Signature::now("Mist tests", "tests@mist.invalid").unwrap();
    let parent = repo
        .head()
        .ok()
        .map(|head| head.peel_to_commit().expect("tip"));
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .expect("commit")
    .to_string()
}

/// Copies a folder tree (files, folders, modes; no symlinks in our fixtures).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if file_type.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file below `dir`, by path relative to it, with (size, mode, mtime in ns).
pub fn file_facts(dir: &Path) -> BTreeMap<String, (u64, u32, i128)> {
    use std::os::unix::fs::MetadataExt;
    let mut facts = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let relative = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mtime = i128::from(metadata.mtime()) * 1_000_000_000
                    + i128::from(metadata.mtime_nsec());
                facts.insert(relative, (metadata.len(), metadata.mode(), mtime));
            }
        }
    }
    facts
}

/// The artifact store's files (`<nas>/.mist/artifacts/<xx>/<hex>`) by content address,
/// after checking each one's BLAKE3 equals its name: a torn or wrong file fails here.
pub fn verified_artifacts(nas: &Path) -> BTreeMap<String, u64> {
    let root = nas.join(".mist").join("artifacts");
    let mut artifacts = BTreeMap::new();
    for (relative, (size, _, _)) in file_facts(&root) {
        let hex = Path::new(&relative)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(root.join(&relative)).unwrap();
        let digest = blake3::hash(&bytes).to_hex().to_string();
        assert_eq!(
            digest, hex,
            "artifact {relative} does not hash to its name: torn or wrong"
        );
        assert_eq!(
            &relative[..2],
            &hex[..2],
            "artifact {relative} is misplaced"
        );
        artifacts.insert(format!("blake3:{hex}"), size);
    }
    artifacts
}

/// Files left in the store's temp folder.
pub fn tmp_leftovers(nas: &Path) -> Vec<String> {
    file_facts(&nas.join(".mist").join("tmp"))
        .into_keys()
        .collect()
}

/// The arguments of `mistd run` that name the spec repository, the NAS and the data folder.
pub fn run_args<'a>(specs: &'a Path, nas: &'a Path, data: &'a Path) -> Vec<&'a OsStr> {
    vec![
        OsStr::new("--specs"),
        specs.as_os_str(),
        OsStr::new("--nas"),
        nas.as_os_str(),
        OsStr::new("--data"),
        data.as_os_str(),
    ]
}

/// Runs a `mistd` command to the end.
pub fn mistd_output(args: &[&OsStr]) -> Output {
    Command::new(mistd_bin())
        .args(args)
        .output()
        .expect("run mistd")
}

/// Runs `mistd run ARGS --listen <a free loopback port>` to its end: for starts that must
/// fail.
pub fn run_output(args: &[&OsStr]) -> Output {
    let address = format!("127.0.0.1:{}", free_port());
    mistd_output(
        &[
            &[OsStr::new("run")],
            args,
            &[OsStr::new("--listen"), OsStr::new(&address)],
        ]
        .concat(),
    )
}

/// Runs `mistd demo --dir <dir> --no-serve` to the end: makes (or reuses) the demo and
/// converges it.
pub fn demo_no_serve(dir: &Path) -> Output {
    mistd_output(&[
        OsStr::new("demo"),
        OsStr::new("--dir"),
        dir.as_os_str(),
        OsStr::new("--no-serve"),
    ])
}

/// A small multi-version demo for tests that reconcile it many times: games with a few
/// versions each, made of an executable-like file edited a little per release, an asset
/// file that grows, and files added, removed and renamed.
pub struct SmallDemo {
    /// The spec repository (a work tree on `main`).
    pub specs: PathBuf,
    /// The NAS root, builds under `incoming/`.
    pub nas: PathBuf,
    /// Versions over all games.
    pub n_versions: usize,
}

/// Makes a [`SmallDemo`] under `root`: `games` are (name, number of versions); `size` is the
/// executable-like file's size in bytes. Deterministic.
pub fn small_demo(root: &Path, games: &[(&str, usize)], size: usize) -> SmallDemo {
    let specs = root.join("specs");
    let nas = root.join("nas");
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    git2::Repository::init_opts(&specs, &options).expect("git init");
    let mut n_versions = 0;
    for (game_idx, (game, n_game_versions)) in games.iter().enumerate() {
        let game_dir = specs.join("games").join(game);
        std::fs::create_dir_all(game_dir.join("versions")).unwrap();
        std::fs::write(
            game_dir.join("game.yaml"),
            format!(
                "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: {game}\nspec:\n  \
                 title: {game}\n"
            ),
        )
        .unwrap();
        let mut rng = SplitMix64(0x5eed_0000 + game_idx as u64);
        let mut executable = rng.bytes(size);
        let mut assets = rng.bytes(size / 2);
        for version_idx in 0..*n_game_versions {
            let version = format!("1.{version_idx}");
            if version_idx > 0 {
                // A release: a few small edits and one insertion in the executable, a record
                // inserted in the middle of the assets.
                for _ in 0..8 {
                    let at = rng.below(executable.len() - 64);
                    let patch = rng.bytes(64);
                    executable[at..at + 64].copy_from_slice(&patch);
                }
                let at = rng.below(executable.len());
                let inserted = rng.bytes(1024);
                executable.splice(at..at, inserted);
                let at = rng.below(assets.len());
                let record = rng.bytes(4096);
                assets.splice(at..at, record);
            }
            let build = nas.join("incoming").join(game).join(&version);
            std::fs::create_dir_all(build.join("bin")).unwrap();
            std::fs::create_dir_all(build.join("data")).unwrap();
            std::fs::write(build.join("bin").join(game), &executable).unwrap();
            std::fs::write(build.join("data/assets.pak"), &assets).unwrap();
            let notes_name = if version_idx >= 3 {
                "NOTES.txt"
            } else {
                "notes.txt"
            };
            std::fs::write(build.join(notes_name), format!("{game} {version}\n")).unwrap();
            if version_idx >= 2 {
                std::fs::write(build.join("data/level-2.dat"), rng.bytes(20_000)).unwrap();
            }
            std::fs::write(
                game_dir.join("versions").join(format!("{version}.yaml")),
                format!(
                    "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{version}\"\n  \
                     game: {game}\nspec:\n  source: incoming/{game}/{version}\n"
                ),
            )
            .unwrap();
            n_versions += 1;
        }
    }
    commit_all(&specs, "The small demo");
    SmallDemo {
        specs,
        nas,
        n_versions,
    }
}

/// splitmix64: deterministic test data.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(n + 8);
        while bytes.len() < n {
            bytes.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        bytes.truncate(n);
        bytes
    }
}

/// The password `mistd demo` printed for `user` (`  <user>  <role>  <password>`).
pub fn password_of(stdout: &str, user: &str) -> String {
    stdout
        .lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .find(|words| words.len() == 3 && words[0] == user)
        .map(|words| words[2].to_owned())
        .unwrap_or_else(|| panic!("no password for {user} in:\n{stdout}"))
}

/// Runs `mistd demo --dir <dir> --no-serve`, which must exit 0; returns what it printed.
pub fn run_demo(dir: &Path) -> String {
    let output = demo_no_serve(dir);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
