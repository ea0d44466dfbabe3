//! Crash safety of in-place updates: a child process applying a tree delta is stopped after
//! every one of its filesystem steps (`MIST_FAULT_AFTER_OPS`) and killed with SIGKILL at
//! moments chosen by what it has done so far. After each crash, recovery must leave exactly
//! the old or exactly the new tree (with the friend's own files intact), and running the
//! update again must finish it.
//!
//! The child is this test binary itself, re-run with `CHILD_ENV` set so that only
//! `crash_child` does anything.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mist_delta::encode::DiffOptions;
use mist_games::install::{FAULT_ENV, InstallOptions, Outcome, location, recover, update};
use mist_games::manifest::Manifest;
use mist_games::scan::scan;
use mist_games::treedelta::create::{CreateOptions, create};
use mist_games::treedelta::package::Package;

const CHILD_ENV: &str = "MIST_CRASH_TEST_CHILD";
const INSTALL_ENV: &str = "MIST_CRASH_TEST_INSTALL";
const PACKAGE_ENV: &str = "MIST_CRASH_TEST_PACKAGE";

/// The child's work; does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(mode) = env::var(CHILD_ENV) else {
        return;
    };
    let install_dir = PathBuf::from(env::var(INSTALL_ENV).unwrap());
    match mode.as_str() {
        "apply" => {
            let package_path = PathBuf::from(env::var(PACKAGE_ENV).unwrap());
            let package = Package::open(&package_path).unwrap();
            let source = read_source(&package_path);
            update::apply_delta(&install_dir, &source, &package, &options()).unwrap();
        }
        "recover" => {
            recover::recover(&install_dir).unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// The source manifest the package applies with, stored beside it (a client has the
/// manifest of the version it runs recorded).
fn source_path(package: &Path) -> PathBuf {
    package.with_extension("source.json")
}

fn read_source(package: &Path) -> Manifest {
    serde_json::from_slice(&fs::read(source_path(package)).unwrap()).unwrap()
}

fn options() -> InstallOptions {
    InstallOptions {
        // One staging thread makes the N-th step the same step in every run.
        threads: 1,
        ..InstallOptions::default()
    }
}

fn spawn(mode: &str, install_dir: &Path, package: &Path, fault_after: Option<u64>) -> Child {
    let mut command = Command::new(env::current_exe().unwrap());
    command
        .args(["--exact", "crash_child", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, mode)
        .env(INSTALL_ENV, install_dir)
        .env(PACKAGE_ENV, package)
        .env_remove(FAULT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(n) = fault_after {
        command.env(FAULT_ENV, n.to_string());
    }
    command.spawn().unwrap()
}

/// Waits for a child and returns how it ended, failing the test if it failed on its own.
fn finish(child: Child) -> ExitStatus {
    let output = child.wait_with_output().unwrap();
    let status = output.status;
    assert!(
        status.success() || status.signal().is_some(),
        "the child failed: {status}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    status
}

// ---------------------------------------------------------------------------------------
// The trees.

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>, bool),
    Symlink(&'static str),
    Dir,
}

type Model = BTreeMap<String, Node>;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_add(1);
    (0..len)
        .map(|idx| {
            if idx % 16 == 0 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
            }
            (state >> (8 * (idx % 8))) as u8
        })
        .collect()
}

/// An old and a new version with `n_files` data files and every kind of change: patched,
/// added, deleted, renamed, copied, mode changes, a symlink retargeted, a file becoming a
/// folder and a folder becoming a file, a folder removed and one added.
fn versions(n_files: usize, file_len: usize) -> (Model, Model) {
    let mut old = Model::new();
    old.insert("data".into(), Node::Dir);
    for idx in 0..n_files {
        old.insert(
            format!("data/f{idx:02}.bin"),
            Node::File(bytes(idx as u64, file_len + 97 * idx), idx % 5 == 0),
        );
    }
    old.insert("bin".into(), Node::Dir);
    old.insert("bin/game".into(), Node::File(bytes(100, 3000), true));
    old.insert("current".into(), Node::Symlink("data"));
    old.insert(
        "will_be_dir".into(),
        Node::File(b"a file for now".to_vec(), false),
    );
    old.insert("will_be_file".into(), Node::Dir);
    old.insert(
        "will_be_file/inner".into(),
        Node::File(b"inner".to_vec(), false),
    );
    old.insert("removed".into(), Node::Dir);
    old.insert("removed/a".into(), Node::File(b"a".to_vec(), false));

    let mut new = old.clone();
    for idx in 0..n_files {
        let path = format!("data/f{idx:02}.bin");
        match idx % 6 {
            // Patched: a few bytes changed and some inserted.
            0 | 1 => {
                if let Some(Node::File(content, _)) = new.get_mut(&path) {
                    content[10..20].copy_from_slice(b"0123456789");
                    content.splice(500..500, b"inserted".iter().copied());
                }
            }
            // Renamed.
            2 => {
                let node = new.remove(&path).unwrap();
                new.insert(format!("data/renamed{idx:02}.bin"), node);
            }
            // Deleted.
            3 => {
                new.remove(&path);
            }
            // Mode changed.
            4 => {
                if let Some(Node::File(_, executable)) = new.get_mut(&path) {
                    *executable = !*executable;
                }
            }
            // Copied elsewhere, and unchanged.
            _ => {
                let node = new[&path].clone();
                new.insert(format!("copies/c{idx:02}.bin"), node);
                new.insert("copies".into(), Node::Dir);
            }
        }
    }
    new.insert(
        "data/added.bin".into(),
        Node::File(bytes(200, file_len), false),
    );
    new.insert("current".into(), Node::Symlink("bin"));
    new.insert("will_be_dir".into(), Node::Dir);
    new.insert("will_be_dir/x".into(), Node::File(b"x".to_vec(), true));
    new.remove("will_be_file/inner");
    new.insert(
        "will_be_file".into(),
        Node::File(b"now a file".to_vec(), false),
    );
    new.remove("removed/a");
    new.remove("removed");
    (old, new)
}

fn write_tree(root: &Path, model: &Model) {
    fs::create_dir_all(root).unwrap();
    for (path, node) in model {
        let full = root.join(path);
        match node {
            Node::File(content, executable) => {
                fs::write(&full, content).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Symlink(target) => symlink(target, &full).unwrap(),
            Node::Dir => fs::create_dir(&full).unwrap(),
        }
    }
}

/// A friend's files, in neither version.
fn add_untracked(root: &Path) {
    fs::create_dir(root.join("saves")).unwrap();
    fs::write(root.join("saves/slot1.sav"), b"precious progress").unwrap();
    fs::write(root.join("data/my-mod.cfg"), b"mod settings").unwrap();
}

/// What an install holds, without the friend's files, after checking they are intact.
fn scan_install(root: &Path) -> Manifest {
    assert_eq!(
        fs::read(root.join("saves/slot1.sav")).unwrap(),
        b"precious progress"
    );
    assert_eq!(
        fs::read(root.join("data/my-mod.cfg")).unwrap(),
        b"mod settings"
    );
    let mut manifest = scan(root).unwrap();
    manifest
        .entries
        .retain(|entry| !(entry.path.starts_with("saves") || entry.path == "data/my-mod.cfg"));
    manifest
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Old,
    New,
}

struct Fixture {
    temp: tempfile::TempDir,
    old_model: Model,
    package: PathBuf,
    old: Manifest,
    new: Manifest,
}

impl Fixture {
    fn new(n_files: usize, file_len: usize) -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let (old_model, new_model) = versions(n_files, file_len);
        let old_root = temp.path().join("old");
        let new_root = temp.path().join("new");
        write_tree(&old_root, &old_model);
        write_tree(&new_root, &new_model);
        let package = temp.path().join("update.mtd");
        let mut out = fs::File::create(&package).unwrap();
        let create_options = CreateOptions {
            file: DiffOptions {
                zstd_level: 3,
                lzma_preset: Some(1),
                ..DiffOptions::default()
            },
            ..CreateOptions::default()
        };
        create(&old_root, &new_root, &mut out, &create_options, &|_, _| {}).unwrap();
        let old = scan(&old_root).unwrap();
        fs::write(source_path(&package), serde_json::to_vec(&old).unwrap()).unwrap();
        Fixture {
            old,
            new: scan(&new_root).unwrap(),
            temp,
            old_model,
            package,
        }
    }

    /// A fresh install of the old version with a friend's files, alone in its own folder
    /// (so the staging folder and lock beside it are its own).
    fn install(&self, name: &str) -> PathBuf {
        let install_dir = self.temp.path().join(name).join("game");
        write_tree(&install_dir, &self.old_model);
        add_untracked(&install_dir);
        install_dir
    }

    fn version(&self, install_dir: &Path) -> Version {
        let found = scan_install(install_dir);
        if found == self.old {
            Version::Old
        } else if found == self.new {
            Version::New
        } else {
            let describe = |manifest: &Manifest| {
                manifest
                    .entries
                    .iter()
                    .map(|entry| format!("{entry:?}"))
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let (found, old, new) = (describe(&found), describe(&self.old), describe(&self.new));
            panic!(
                "the install is neither version:\nnot in old: {:#?}\nnot in new: {:#?}",
                found.difference(&old).collect::<Vec<_>>(),
                found.difference(&new).collect::<Vec<_>>()
            );
        }
    }

    /// Recovers, checks the install is one of the versions, re-runs the update, checks it
    /// finished and left nothing behind; returns the version recovery gave.
    fn recover_and_finish(&self, install_dir: &Path) -> Version {
        recover::recover(install_dir).unwrap();
        let recovered = self.version(install_dir);
        let package = Package::open(&self.package).unwrap();
        let report = update::apply_delta(install_dir, &self.old, &package, &options()).unwrap();
        let expected = match recovered {
            Version::Old => Outcome::Updated,
            Version::New => Outcome::AlreadyCurrent,
        };
        assert_eq!(report.outcome, expected);
        assert_eq!(self.version(install_dir), Version::New);
        assert!(!location::staging_path(install_dir).unwrap().exists());
        recovered
    }
}

#[test]
fn a_crash_after_any_step_leaves_old_or_new() {
    let fixture = Fixture::new(12, 3000);
    let mut seen = Vec::new();
    let mut n_steps = None;
    for fault_after in 1..2000u64 {
        let install_dir = fixture.install(&format!("run{fault_after}"));
        let status = finish(spawn(
            "apply",
            &install_dir,
            &fixture.package,
            Some(fault_after),
        ));
        if status.success() {
            // More steps than the update has: it ran to the end.
            assert_eq!(fixture.version(&install_dir), Version::New);
            n_steps = Some(fault_after - 1);
            break;
        }
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}");
        // Every few crash points, recovery itself is crashed at each of its steps first.
        if fault_after % 7 == 0 {
            for recover_fault in 1..2000u64 {
                let status = finish(spawn(
                    "recover",
                    &install_dir,
                    &fixture.package,
                    Some(recover_fault),
                ));
                if status.success() {
                    break;
                }
            }
        }
        seen.push(fixture.recover_and_finish(&install_dir));
        fs::remove_dir_all(install_dir.parent().unwrap()).unwrap();
    }
    let n_steps = n_steps.expect("the update finishes when never stopped");
    assert!(n_steps >= 20, "only {n_steps} steps");
    assert_eq!(seen.len() as u64, n_steps);
    // Early crashes leave the old version, late ones the new: both sides of the commit point
    // were hit.
    assert_eq!(seen.first(), Some(&Version::Old));
    assert_eq!(seen.last(), Some(&Version::New));
    let switch = seen.iter().position(|v| *v == Version::New).unwrap();
    assert!(
        seen[switch..].iter().all(|v| *v == Version::New),
        "once committed, every crash rolls forward: {seen:?}"
    );
}

/// Which moment to kill at, chosen per round.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Right after the start.
    Start,
    /// Once the staging folder exists.
    Staging,
    /// Once this many files are staged.
    Staged(usize),
    /// Once the journal is committed.
    Journal,
    /// Once this many old files are backed up.
    BackedUp(usize),
}

impl Moment {
    fn reached(self, staging: &Path) -> bool {
        let count =
            |sub: &str| fs::read_dir(staging.join(sub)).map_or(0, |entries| entries.count());
        match self {
            Moment::Start => true,
            Moment::Staging => staging.exists(),
            Moment::Staged(n) => count("objects") >= n,
            Moment::Journal => staging.join("journal").exists(),
            Moment::BackedUp(n) => count("backup") >= n,
        }
    }
}

#[test]
fn sigkill_at_random_moments_leaves_old_or_new() {
    let fixture = Fixture::new(30, 60_000);
    // A fixed seed: the moments are chosen the same way in every run.
    let mut seed = 0x5eed_u64;
    let mut next = |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut n_killed = 0;
    let mut seen = Vec::new();
    for round in 0..24 {
        let moment = match next(5) {
            0 => Moment::Start,
            1 => Moment::Staging,
            2 => Moment::Staged(1 + next(20) as usize),
            3 => Moment::Journal,
            _ => Moment::BackedUp(1 + next(8) as usize),
        };
        let install_dir = fixture.install(&format!("round{round}"));
        let staging = location::staging_path(&install_dir).unwrap();
        let mut child = spawn("apply", &install_dir, &fixture.package, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Poll for the moment (or the child's end) with a deadline.
        while !moment.reached(&staging) && child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {moment:?}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().unwrap();
        let status = finish(child);
        if status.signal() == Some(libc::SIGKILL) {
            n_killed += 1;
        }
        seen.push((moment, fixture.recover_and_finish(&install_dir)));
        fs::remove_dir_all(install_dir.parent().unwrap()).unwrap();
    }
    assert!(n_killed >= 20, "only {n_killed} kills landed: {seen:?}");
}
