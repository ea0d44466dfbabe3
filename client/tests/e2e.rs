//! `mist` end to end against a real `mistd` on loopback: log in, list, install, update by
//! one version and by a jump, verify, `verify --repair` by deltas, uninstall, a download
//! killed with SIGKILL and resumed, a server that drops connections or corrupts bytes
//! (through a faulty proxy), and the plain progress lines.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Client, Fault, FaultyProxy, assert_success, server, tree, wait_for};
use mist_games::manifest::{self, EntryKind};
use mist_games::scan;

/// The manifest of a demo build on the NAS, the truth an install must match.
fn build_manifest(game: &str, version: &str) -> manifest::Manifest {
    scan::scan(&server().nas.join("incoming").join(game).join(version)).unwrap()
}

/// (inode, mtime) of every file, to tell rewritten files from untouched ones.
fn identities(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    scan::scan(dir)
        .unwrap()
        .entries
        .into_iter()
        .filter(|entry| matches!(entry.kind, EntryKind::File { .. }))
        .map(|entry| {
            let metadata = std::fs::symlink_metadata(dir.join(&entry.path)).unwrap();
            (
                entry.path,
                (metadata.ino(), metadata.mtime(), metadata.mtime_nsec()),
            )
        })
        .collect()
}

fn file_hashes(manifest: &manifest::Manifest) -> BTreeMap<&str, &EntryKind> {
    manifest
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect()
}

#[test]
fn login_saves_a_private_token_and_never_prints_it() {
    let server = server();
    let client = Client::new();
    let wrong = client.run_with_stdin(
        &[
            "login",
            "--server",
            &server.url,
            "--user",
            "friend",
            "--password-stdin",
        ],
        "not-the-password\n",
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong user name or password"),
        "{wrong:?}"
    );
    assert!(!client.config().join("credentials.json").exists());

    let output = client.run_with_stdin(
        &[
            "login",
            "--server",
            &server.url,
            "--user",
            "friend",
            "--password-stdin",
        ],
        &format!("{}\n", server.password),
    );
    assert_success(&output);
    let path = client.config().join("credentials.json");
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let token = saved["token"].as_str().unwrap();
    assert!(token.len() > 20);
    let status = client.run(&["status"]);
    for output in [&output, &status] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!text.contains(token), "the token was printed: {text}");
        assert!(!text.contains(&server.password), "the password was printed");
    }
    let status = client.json(&["status"]);
    assert_eq!(status["user"], "friend");
    assert_eq!(status["games"], serde_json::json!([]));
}

#[test]
fn commands_need_a_login() {
    let client = Client::new();
    let output = client.run(&["list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("mist login"));
}

#[test]
fn install_update_by_one_version_verify_and_uninstall() {
    let client = Client::logged_in();
    let list = client.json(&["list"]);
    let starfall = list
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "starfall")
        .expect("starfall listed");
    assert_eq!(starfall["latest"], "1.2.0");
    assert_eq!(starfall["installed"], serde_json::Value::Null);

    let dir = client.home.path().join("games/starfall");
    let dir_arg = dir.to_str().unwrap();
    let installed = client.json(&[
        "install",
        "starfall",
        "--version",
        "1.1.0",
        "--dir",
        dir_arg,
    ]);
    assert_eq!(installed[0]["outcome"], "installed");
    assert_eq!(installed[0]["route"], "full");
    assert_eq!(
        scan::scan(&dir).unwrap(),
        build_manifest("starfall", "1.1.0")
    );
    let again = client.run(&["install", "starfall"]);
    assert_eq!(again.status.code(), Some(2), "a second install is refused");

    let list = client.json(&["list"]);
    let starfall = list
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "starfall")
        .unwrap();
    assert_eq!(starfall["installed"], "1.1.0");
    assert_eq!(starfall["updateAvailable"], true);

    let before = identities(&dir);
    let updated = client.json(&["update", "starfall"]);
    assert_eq!(updated[0]["outcome"], "updated");
    assert_eq!(updated[0]["from"], "1.1.0");
    assert_eq!(updated[0]["to"], "1.2.0");
    assert_ne!(updated[0]["route"], "full");
    let planned = updated[0]["plannedBytes"].as_u64().unwrap();
    assert!(updated[0]["downloadedBytes"].as_u64().unwrap() <= planned * 105 / 100);
    assert!(planned < updated[0]["fullBytes"].as_u64().unwrap());
    let target = build_manifest("starfall", "1.2.0");
    assert_eq!(scan::scan(&dir).unwrap(), target);

    // Files the update does not change are not rewritten.
    let source = build_manifest("starfall", "1.1.0");
    let (old, new) = (file_hashes(&source), file_hashes(&target));
    let after = identities(&dir);
    let unchanged: Vec<&str> = new
        .iter()
        .filter(|(path, kind)| {
            matches!(kind, EntryKind::File { .. }) && old.get(*path) == Some(*kind)
        })
        .map(|(path, _)| *path)
        .collect();
    assert!(!unchanged.is_empty(), "the demo keeps some files");
    for path in unchanged {
        assert_eq!(before[path], after[path], "{path} was rewritten");
    }

    let up_to_date = client.json(&["update", "--all"]);
    assert_eq!(up_to_date[0]["outcome"], "upToDate");

    let verified = client.json(&["verify", "starfall"]);
    assert_eq!(verified["missing"], serde_json::json!([]));
    assert_eq!(verified["changed"], serde_json::json!([]));
    std::fs::write(dir.join("README.txt"), b"scribbled").unwrap();
    std::fs::remove_file(dir.join("data/config.ini")).unwrap();
    std::fs::write(dir.join("my-save.dat"), b"a friend's save").unwrap();
    let damaged = client.run(&["verify", "starfall", "--json"]);
    assert_eq!(damaged.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&damaged.stdout).unwrap();
    assert_eq!(report["changed"], serde_json::json!(["README.txt"]));
    assert_eq!(report["missing"], serde_json::json!(["data/config.ini"]));
    assert_eq!(report["extra"], serde_json::json!(["my-save.dat"]));

    // The friend's save stays; everything the game installed goes.
    let uninstalled = client.run(&["uninstall", "starfall"]);
    assert_success(&uninstalled);
    let said = String::from_utf8_lossy(&uninstalled.stdout);
    assert!(
        said.contains("kept what it did not install") && said.contains("my-save.dat"),
        "{said}"
    );
    assert_eq!(tree(&dir), ["my-save.dat"]);
    assert_eq!(
        std::fs::read(dir.join("my-save.dat")).unwrap(),
        b"a friend's save"
    );
    assert_eq!(tree(&client.data().join("games")), Vec::<String>::new());
    assert_eq!(tree(&client.data().join("downloads")), Vec::<String>::new());
    assert_eq!(client.json(&["status"])["games"], serde_json::json!([]));
    assert_eq!(
        client.run(&["uninstall", "starfall"]).status.code(),
        Some(2)
    );
}

#[test]
fn update_by_a_jump_over_several_versions() {
    let client = Client::logged_in();
    let installed = client.json(&["install", "starfall", "--version", "1.0.0"]);
    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    assert!(
        dir.starts_with(client.data()),
        "the default library is in the data folder"
    );
    assert_eq!(
        scan::scan(&dir).unwrap(),
        build_manifest("starfall", "1.0.0")
    );

    let updated = client.json(&["update", "starfall"]);
    assert_eq!(updated[0]["from"], "1.0.0");
    assert_eq!(updated[0]["to"], "1.2.0");
    assert_ne!(updated[0]["route"], "full");
    let planned = updated[0]["plannedBytes"].as_u64().unwrap();
    assert!(updated[0]["downloadedBytes"].as_u64().unwrap() <= planned * 105 / 100);
    assert_eq!(
        scan::scan(&dir).unwrap(),
        build_manifest("starfall", "1.2.0")
    );
    let status = client.json(&["status"]);
    assert_eq!(status["games"][0]["version"], "1.2.0");

    assert_success(&client.run(&["uninstall", "starfall"]));
    assert_eq!(tree(&client.data().join("library")), Vec::<String>::new());
    assert_eq!(tree(&client.data().join("games")), Vec::<String>::new());
}

#[test]
fn a_download_killed_mid_way_resumes_where_it_stopped() {
    let client = Client::logged_in();
    let downloads = client.data().join("downloads");
    // Killed six times, each time further in: slow enough to be caught mid-way (the pack is
    // over a megabyte), and every run resumes from what the one before left.
    let mut part = PathBuf::new();
    let mut kept = 0;
    for round in 0..6u64 {
        let threshold = (64 + round * 128) * 1024;
        let mut child = client
            .command(&[
                "install",
                "lantern",
                "--version",
                "1.0",
                "--limit-rate",
                "256K",
            ])
            .spawn()
            .unwrap();
        let (found, killed_at) = wait_for("a partial download", Duration::from_secs(60), || {
            let entries = std::fs::read_dir(&downloads).ok()?;
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "part"))
                .find_map(|path| {
                    let len = std::fs::metadata(&path).ok()?.len();
                    (len > threshold).then_some((path, len))
                })
        });
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        child.wait().unwrap();
        kept = std::fs::metadata(&found).unwrap().len();
        assert!(
            kept >= killed_at && kept >= threshold,
            "round {round}: the partial data survived the kill"
        );
        part = found;
    }
    let status = client.json(&["status"]);
    assert_eq!(status["games"][0]["version"], serde_json::Value::Null);

    let resumed = client.json(&["install", "lantern"]);
    assert_eq!(resumed[0]["to"], "1.0");
    let planned = resumed[0]["plannedBytes"].as_u64().unwrap();
    let downloaded = resumed[0]["downloadedBytes"].as_u64().unwrap();
    assert!(
        downloaded + kept <= planned + 64 * 1024,
        "{downloaded} bytes downloaded again of {planned}; {kept} were on disk"
    );
    let dir = Path::new(resumed[0]["dir"].as_str().unwrap()).to_owned();
    assert_eq!(scan::scan(&dir).unwrap(), build_manifest("lantern", "1.0"));
    assert!(!part.exists());
    assert_eq!(tree(&downloads), Vec::<String>::new());
}

/// The client killed at many points of applying an update (the engine's fault injection
/// aborts the process after its N-th filesystem step): the install is always the old version
/// or the new one once the engine's recovery ran, and running `mist update` again finishes
/// it.
#[test]
fn an_update_killed_while_applying_is_old_or_new_and_a_rerun_finishes_it() {
    let client = Client::logged_in();
    let old = build_manifest("starfall", "1.1.0");
    let new = build_manifest("starfall", "1.2.0");
    let mut n_interrupted = 0;
    for fault_after in [1, 2, 3, 4, 6, 8, 10, 12, 15, 18, 21, 24] {
        let installed = client.json(&["install", "starfall", "--version", "1.1.0"]);
        let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
        let output = client
            .command(&["update", "starfall"])
            .env("MIST_FAULT_AFTER_OPS", fault_after.to_string())
            .output()
            .unwrap();
        if !output.status.success() {
            n_interrupted += 1;
        }
        // A kill during the commit leaves a journal; the engine's recovery (which every
        // `mist` command that touches the install runs first) settles it.
        mist_games::install::recover::recover(&dir).unwrap();
        let on_disk = scan::scan(&dir).unwrap();
        assert!(
            on_disk == old || on_disk == new,
            "after a fault at step {fault_after} the install is neither 1.1.0 nor 1.2.0"
        );
        let finished = client.json(&["update", "starfall"]);
        assert_eq!(scan::scan(&dir).unwrap(), new, "{finished:#}");
        assert_eq!(client.json(&["status"])["games"][0]["version"], "1.2.0");
        assert_success(&client.run(&["uninstall", "starfall"]));
    }
    assert!(
        n_interrupted >= 10,
        "only {n_interrupted} runs were interrupted"
    );
    assert_eq!(tree(&client.data().join("library")), Vec::<String>::new());
    assert_eq!(tree(&client.data().join("downloads")), Vec::<String>::new());
}

/// The install's JSON summary from `mist … --json`, panicking with the output on failure.
fn summary(output: &std::process::Output) -> serde_json::Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).expect("JSON on standard output")
}

/// Every complete (not `.part`) file under `downloads` is the artifact its name says.
fn assert_downloads_are_verified(downloads: &Path) {
    for name in tree(downloads) {
        let path = downloads.join(&name);
        if name.ends_with(".part") || path.is_dir() {
            continue;
        }
        let actual = mist_client::download::hash_file(&path).unwrap();
        assert_eq!(
            actual,
            name,
            "{} is not the artifact it is named after",
            path.display()
        );
    }
}

#[test]
fn a_connection_dropped_mid_file_is_resumed_and_the_install_is_whole() {
    let cut_at = 256 * 1024;
    let proxy = FaultyProxy::start(Fault::DropAfterOnce(cut_at));
    let client = Client::logged_in_to(&proxy.url);
    let installed = summary(&client.run(&["install", "lantern", "--version", "1.0", "--json"]));
    assert_eq!(installed[0]["outcome"], "installed");
    assert_eq!(proxy.n_faults(), 1, "the connection was dropped once");
    let requests = proxy.artifact_requests();
    assert!(
        requests.iter().skip(1).any(|head| head
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={cut_at}-"))),
        "the download resumed from byte {cut_at}: {requests:#?}"
    );
    let planned = installed[0]["plannedBytes"].as_u64().unwrap();
    let downloaded = installed[0]["downloadedBytes"].as_u64().unwrap();
    assert!(
        downloaded <= planned * 105 / 100,
        "{downloaded} bytes downloaded for {planned} planned: the dropped part was fetched again"
    );
    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    assert_eq!(scan::scan(&dir).unwrap(), build_manifest("lantern", "1.0"));
    assert_eq!(tree(&client.data().join("downloads")), Vec::<String>::new());
}

#[test]
fn a_corrupted_byte_is_detected_and_downloaded_again() {
    let proxy = FaultyProxy::start(Fault::CorruptOnce);
    let client = Client::logged_in_to(&proxy.url);
    let output = client.run(&["install", "starfall", "--version", "1.1.0", "--json"]);
    let installed = summary(&output);
    assert_eq!(installed[0]["outcome"], "installed");
    assert_eq!(proxy.n_faults(), 1, "one artifact was corrupted");
    let requests = proxy.artifact_requests();
    let first_path = requests[0].split_whitespace().nth(1).unwrap();
    assert!(
        requests[1..]
            .iter()
            .any(|head| head.split_whitespace().nth(1) == Some(first_path)),
        "the corrupt artifact was downloaded again: {requests:#?}"
    );
    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    assert_eq!(
        scan::scan(&dir).unwrap(),
        build_manifest("starfall", "1.1.0")
    );
    assert_eq!(tree(&client.data().join("downloads")), Vec::<String>::new());
}

#[test]
fn an_artifact_corrupt_every_time_is_never_installed() {
    let proxy = FaultyProxy::start(Fault::None);
    let client = Client::logged_in_to(&proxy.url);
    let installed = client.json(&["install", "starfall", "--version", "1.1.0"]);
    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    let old = build_manifest("starfall", "1.1.0");
    assert_eq!(scan::scan(&dir).unwrap(), old);
    let status_before = client.json(&["status"]);
    let files_before = identities(&dir);

    proxy.set_fault(Fault::CorruptAlways);
    let output = client.run(&["update", "starfall"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "the update must fail: {stderr}"
    );
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert!(stderr.contains("updating starfall failed"), "{stderr}");
    assert!(
        proxy.n_faults() >= 2,
        "the artifact was fetched again before giving up"
    );

    assert_eq!(scan::scan(&dir).unwrap(), old, "the install is unchanged");
    assert_eq!(identities(&dir), files_before, "no file was rewritten");
    assert_eq!(client.json(&["status"]), status_before);
    assert_downloads_are_verified(&client.data().join("downloads"));

    // The server is healthy again: the same command finishes the job.
    proxy.set_fault(Fault::None);
    let updated = client.json(&["update", "starfall"]);
    assert_eq!(updated[0]["to"], "1.2.0");
    assert_eq!(
        scan::scan(&dir).unwrap(),
        build_manifest("starfall", "1.2.0")
    );
}

/// `(stage, done, total)` of every plain progress line.
fn progress_lines(stderr: &str) -> Vec<(String, u64, u64)> {
    stderr
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let stage = words.next()?;
            let (done, total) = words.next()?.split_once('/')?;
            Some((stage.to_owned(), done.parse().ok()?, total.parse().ok()?))
        })
        .collect()
}

/// Checks that each stage's numbers only grow, keep one total and end exactly at it; returns
/// each stage's total.
fn check_progress(stderr: &str) -> BTreeMap<String, u64> {
    let mut stages: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (stage, done, total) in progress_lines(stderr) {
        assert!(done <= total, "{stage} {done}/{total} overshoots\n{stderr}");
        if let Some((last, last_total)) = stages.get(&stage) {
            assert_eq!(*last_total, total, "the {stage} total changed\n{stderr}");
            assert!(
                done >= *last,
                "{stage} went back from {last} to {done}\n{stderr}"
            );
        }
        stages.insert(stage, (done, total));
    }
    stages
        .into_iter()
        .map(|(stage, (done, total))| {
            assert_eq!(done, total, "{stage} ended at {done} of {total}\n{stderr}");
            (stage, total)
        })
        .collect()
}

#[test]
fn plain_progress_is_monotonic_and_ends_at_the_real_total() {
    let client = Client::logged_in();
    let output = client.run(&[
        "install",
        "lantern",
        "--version",
        "1.0",
        "--progress",
        "plain",
        "--limit-rate",
        "4M",
        "--json",
    ]);
    let installed = summary(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let totals = check_progress(&stderr);
    let planned = installed[0]["plannedBytes"].as_u64().unwrap();
    assert_eq!(totals.get("download"), Some(&planned), "{stderr}");
    assert!(totals.contains_key("apply"), "{stderr}");
    let n_downloads = progress_lines(&stderr)
        .iter()
        .filter(|(stage, _, _)| stage == "download")
        .count();
    assert!(
        n_downloads >= 2,
        "the download was shown on its way\n{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lantern installed: nothing → 1.0"),
        "the run ends with a success line, not {last:?}"
    );

    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    let output = client
        .command(&["verify", "lantern"])
        .env("MIST_PROGRESS", "plain")
        .output()
        .unwrap();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let totals = check_progress(&stderr);
    assert_eq!(
        totals.get("verify"),
        Some(&scan::scan(&dir).unwrap().total_size()),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("lantern 1.0 is intact"), "{last:?}");
}

#[test]
fn verify_repair_fixes_damaged_files_by_deltas_and_leaves_extra_files_alone() {
    let client = Client::logged_in();
    let dir = client.home.path().join("games/lantern");
    let installed = client.json(&["install", "lantern", "--dir", dir.to_str().unwrap()]);
    let version = installed[0]["to"].as_str().unwrap().to_owned();
    let truth = build_manifest("lantern", &version);
    assert_eq!(scan::scan(&dir).unwrap(), truth);

    // The largest file gets bytes flipped in its middle, another is truncated, a third
    // deleted, and a friend's save appears.
    let mut files: Vec<(&str, u64, bool)> = truth
        .entries
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File {
                size, executable, ..
            } => Some((entry.path.as_str(), *size, *executable)),
            _ => None,
        })
        .collect();
    files.sort_by_key(|(path, size, _)| (std::cmp::Reverse(*size), *path));
    assert!(files.len() >= 3, "the demo has files enough");
    let (corrupted, corrupted_size, _) = files[0];
    let (truncated, truncated_size, _) = files[1];
    let (deleted, _, _) = files[2];
    let mut bytes = std::fs::read(dir.join(corrupted)).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte = !*byte;
    }
    std::fs::write(dir.join(corrupted), &bytes).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(truncated))
        .unwrap();
    file.set_len(truncated_size / 3).unwrap();
    drop(file);
    std::fs::remove_file(dir.join(deleted)).unwrap();
    std::fs::write(dir.join("my-save.dat"), b"a friend's save").unwrap();

    let damaged = client.run(&["verify", "lantern", "--json"]);
    assert_eq!(damaged.status.code(), Some(1), "{damaged:?}");
    let report: serde_json::Value = serde_json::from_slice(&damaged.stdout).unwrap();
    let mut changed = vec![corrupted, truncated];
    changed.sort_unstable();
    assert_eq!(report["changed"], serde_json::json!(changed));
    assert_eq!(report["missing"], serde_json::json!([deleted]));
    assert_eq!(report["extra"], serde_json::json!(["my-save.dat"]));

    let repaired = client.run(&["verify", "lantern", "--repair", "--json"]);
    assert_success(&repaired);
    let report: serde_json::Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!(report["failed"], serde_json::json!([]));
    assert_eq!(report["after"]["missing"], serde_json::json!([]));
    assert_eq!(report["after"]["changed"], serde_json::json!([]));
    assert_eq!(report["after"]["extra"], serde_json::json!(["my-save.dat"]));
    let entries = report["repaired"].as_array().unwrap();
    let mut paths: Vec<&str> = entries
        .iter()
        .map(|entry| entry["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    let mut expected = vec![corrupted, truncated, deleted];
    expected.sort_unstable();
    assert_eq!(paths, expected);
    let big = entries
        .iter()
        .find(|entry| entry["path"] == corrupted)
        .unwrap();
    assert_eq!(big["method"], "rsync", "{big}");
    assert_eq!(big["size"], corrupted_size);
    let downloaded = report["downloadedBytes"].as_u64().unwrap();
    assert!(
        big["deltaBytes"].as_u64().unwrap() < corrupted_size / 10,
        "a delta, not the whole file: {big}"
    );
    assert!(
        downloaded < report["repairedBytes"].as_u64().unwrap(),
        "{report}"
    );

    assert_success(&client.run(&["verify", "lantern"]));
    assert_eq!(
        scan::scan(&dir)
            .unwrap()
            .entries
            .into_iter()
            .filter(|entry| entry.path != "my-save.dat")
            .collect::<Vec<_>>(),
        truth.entries
    );
    assert_eq!(
        std::fs::read(dir.join("my-save.dat")).unwrap(),
        b"a friend's save"
    );
    let text = client.run(&["verify", "lantern", "--repair"]);
    assert_success(&text);
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("is intact"),
        "{text:?}"
    );
}

#[test]
fn purge_removes_a_friends_files_only_when_confirmed() {
    let client = Client::logged_in();
    let output = client.run(&["install", "starfall", "--json"]);
    assert_success(&output);
    let installed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let dir = Path::new(installed[0]["dir"].as_str().unwrap()).to_owned();
    // The summary says where the game went, in units people read.
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!("→ 1.2.0 in {} (", dir.display()))
            && said.contains(" MB downloaded of "),
        "{said}"
    );
    std::fs::create_dir(dir.join("mods")).unwrap();
    std::fs::write(dir.join("mods/better-ships.pak"), b"a mod").unwrap();

    // Not on a terminal and no --yes: refused, nothing removed.
    let refused = client.run(&["uninstall", "starfall", "--purge"]);
    assert_eq!(refused.status.code(), Some(2));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--yes") && said.contains("did not install"),
        "{said}"
    );
    assert!(dir.join("mods/better-ships.pak").is_file());
    assert_eq!(
        scan::scan(&dir).unwrap().entries.len(),
        build_manifest("starfall", "1.2.0").entries.len() + 2
    );

    // --yes purges.
    let report = client.json(&["uninstall", "starfall", "--purge", "--yes"]);
    assert_eq!(report["purged"], true);
    assert!(!dir.exists());
    assert_eq!(client.json(&["status"])["games"], serde_json::json!([]));
}

#[test]
fn every_demo_game_launches_and_a_file_that_is_no_program_is_refused() {
    let client = Client::logged_in();
    let games = client.json(&["list"]);
    let names: Vec<&str> = games
        .as_array()
        .unwrap()
        .iter()
        .map(|game| game["name"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for game in &names {
        client.json(&["install", game]);
        let launched = client.run(&["launch", game, "--", "--windowed"]);
        assert_success(&launched);
        let said = String::from_utf8_lossy(&launched.stdout);
        assert!(
            said.contains("arguments:") && said.contains("--windowed"),
            "{game}: {said}"
        );
        assert!(
            launched.stdout.len() < 1000,
            "{game} printed {} bytes",
            launched.stdout.len()
        );
    }

    // The same file with its script header overwritten: refused, with a reason.
    let installed = client.json(&["status"]);
    let starfall = installed["games"]
        .as_array()
        .unwrap()
        .iter()
        .find(|game| game["game"] == "starfall")
        .expect("starfall installed");
    let dir = Path::new(starfall["dir"].as_str().unwrap()).to_owned();
    let program = dir.join("bin/starfall");
    let mut bytes = std::fs::read(&program).unwrap();
    bytes[..2].copy_from_slice(b"\0\0");
    std::fs::write(&program, bytes).unwrap();
    let refused = client.run(&["launch", "starfall"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(refused.stdout.is_empty());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("bin/starfall is not a program this computer can run"),
        "{said}"
    );
}

#[test]
fn launch_exits_0_whatever_the_game_says_unless_asked_for_its_code() {
    let client = Client::logged_in();
    client.json(&["install", "tidewater"]);
    let installed = client.json(&["status"]);
    let tidewater = installed["games"]
        .as_array()
        .unwrap()
        .iter()
        .find(|game| game["game"] == "tidewater")
        .expect("tidewater installed");
    let dir = Path::new(tidewater["dir"].as_str().unwrap()).to_owned();
    let launcher = dir.join("tidewater");
    // A game that fails: a script that prints its arguments and exits 3.
    std::fs::write(&launcher, "#!/bin/sh\necho \"arguments: $*\"\nexit 3\n").unwrap();

    let launched = client.run(&["launch", "tidewater", "--", "--windowed"]);
    assert_eq!(launched.status.code(), Some(0), "{launched:?}");
    assert!(String::from_utf8_lossy(&launched.stdout).contains("--windowed"));
    let said = String::from_utf8_lossy(&launched.stderr);
    assert!(said.contains("tidewater exited with code 3"), "{said}");
    assert!(said.contains("--pass-exit-code"), "{said}");

    let launched = client.run(&["launch", "tidewater", "--pass-exit-code"]);
    assert_eq!(launched.status.code(), Some(3), "{launched:?}");
}

#[test]
fn exit_codes_follow_the_cli_conventions() {
    let client = Client::logged_in();
    // Usage errors (clap's and mist's own): 2.
    for args in [
        &["--no-such-flag"][..],
        &["install"],
        &["update"],
        &["update", "starfall", "--all"],
        &["launch", "starfall", "--no-such-flag"],
    ] {
        let output = client.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    // A command that could not do its work: 2.
    let output = client.run(&["install", "no-such-game"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = client.run(&["verify", "starfall"]);
    assert_eq!(output.status.code(), Some(2), "not installed: {output:?}");
    // `mist status` counts in words and sizes in human units.
    client.json(&["install", "starfall"]);
    let output = client.run(&["status"]);
    assert_success(&output);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(" files, ") && said.contains("B in "),
        "{said}"
    );
    assert!(!said.contains(" bytes"), "{said}");
}

#[test]
fn the_free_space_is_checked_before_anything_is_downloaded() {
    let client = Client::logged_in();
    // An 8 MB disk, mounted in a mount namespace of the `mist` process only.
    let small = client.home.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mist = client.command(&[]);
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=8m tmpfs \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&small)
        .arg(mist.get_program())
        .args(["install", "starfall", "--dir"])
        .arg(small.join("starfall"));
    for (key, value) in mist.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let output = command.output().expect("run unshare");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("not enough free space for starfall")
            && said.contains("kept free so that the disk never fills up")
            && said.contains("nothing was downloaded")
            && said.contains(" MB"),
        "{said}"
    );
    assert!(!said.contains("bytes needed"), "{said}");
    assert_eq!(tree(&client.data().join("downloads")), Vec::<String>::new());
    assert_eq!(client.json(&["status"])["games"], serde_json::json!([]));
}
