//! `mistd demo`: the generated data, in real temp folders with real git repositories.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::PasswordVerifier;
use mist_games::manifest::{EntryKind, Manifest};
use mist_games::scan;
use mist_specs::load::{LoadOptions, load_git};
use mist_specs::model::Role;
use mistd::demo::{self, BuildState, DemoError, DemoLayout};

/// Every build's tree digest, pinned: the demo must be byte for byte the same on every
/// machine. A deliberate change to the generator changes these; update them from the
/// failure message.
const EXPECTED_DIGESTS: &[(&str, &str, &str)] = &[
    (
        "lantern",
        "1.0",
        "blake3:476d8a4c36e7b60fc3ccff95c02f84570fa10505ccd7062d0f57bf9060f71b53",
    ),
    (
        "lantern",
        "1.1",
        "blake3:50b6de478331bb68caa7b25a0662dc9dbfa83085324dfb22e08eb61980b607d8",
    ),
    (
        "lantern",
        "1.2",
        "blake3:8d4bf0dc17e7ff680138a6845ed90aaf44b4c9d10a7c562412b421d9f4926d45",
    ),
    (
        "lantern",
        "2.0",
        "blake3:bf83485df86d4997cf38b38c1000bff85596450fd099713252133ba1ee5938d5",
    ),
    (
        "starfall",
        "1.0.0",
        "blake3:73215439ecad1ddc59954884e776a7426f145f9ba89787ba3334ef31bda27ea0",
    ),
    (
        "starfall",
        "1.0.1",
        "blake3:1b8a735d73786ae9ec403da067569d942ac130665c08bf44e746e7db71ffc7bd",
    ),
    (
        "starfall",
        "1.1.0",
        "blake3:4b0b7ae5604c32634d42d0bff9bb54d69c57e76cb27dc31b94091d795b81b106",
    ),
    (
        "starfall",
        "1.2.0",
        "blake3:47776649d30018c24490bab859c62162a8b5e59ad25bfcb485de609d4322d561",
    ),
    (
        "tidewater",
        "0.9.0",
        "blake3:6073ecdfc75e10d60eb61e4bf5c9bc58d1e20182d2bb100d580b6e98dfc8107c",
    ),
    (
        "tidewater",
        "1.0.0",
        "blake3:5889220c31dc2fc346dcad30136654350e3afd6be2d0c34c98d9f77f645c8425",
    ),
    (
        "tidewater",
        "1.1.0",
        "blake3:af0da85175fb5003e2a561c35d8579412e91bf349e89d00195efcd199c03bda5",
    ),
];

fn generate() -> (tempfile::TempDir, DemoLayout) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = demo::generate(&tmp.path().join("demo")).unwrap();
    (tmp, layout)
}

fn scan(path: &Path) -> Manifest {
    scan::scan(path).unwrap_or_else(|e| panic!("cannot scan {}: {e}", path.display()))
}

/// Every build's digest by (game, version), from scanning the NAS.
fn nas_digests(layout: &DemoLayout) -> Vec<(String, String, String)> {
    let mut digests = Vec::new();
    for game in &layout.games {
        for version in &game.versions {
            let digest = scan(&layout.nas.join(&version.source)).tree_digest();
            digests.push((game.name.clone(), version.name.clone(), digest.to_string()));
        }
    }
    digests
}

/// Files by path: (hash, size, executable).
fn files(manifest: &Manifest) -> BTreeMap<String, (String, u64, bool)> {
    manifest
        .entries
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File {
                size,
                executable,
                blake3,
            } => Some((entry.path.clone(), (blake3.to_string(), *size, *executable))),
            _ => None,
        })
        .collect()
}

fn build_dir(layout: &DemoLayout, game: &str, version: &str) -> PathBuf {
    layout.nas.join("incoming").join(game).join(version)
}

#[test]
fn builds_are_the_same_on_every_run_and_machine() {
    let (_tmp_a, a) = generate();
    let (_tmp_b, b) = generate();
    let digests_a = nas_digests(&a);
    assert_eq!(digests_a, nas_digests(&b));
    let expected: Vec<(String, String, String)> = EXPECTED_DIGESTS
        .iter()
        .map(|(g, v, d)| (g.to_string(), v.to_string(), d.to_string()))
        .collect();
    let listing: String = digests_a
        .iter()
        .map(|(g, v, d)| format!("    (\"{g}\", \"{v}\", \"{d}\"),\n"))
        .collect();
    assert_eq!(
        digests_a, expected,
        "the demo builds changed; if that is intended, pin these:\n{listing}"
    );
}

#[test]
fn specs_validate_and_pin_every_build() {
    let (_tmp, layout) = generate();
    assert!(layout.created);
    assert_eq!(layout.problems, Vec::<String>::new());
    let options = LoadOptions {
        nas_root: Some(layout.nas.clone()),
    };
    let loaded = load_git(&layout.specs_repo, "main", &options).unwrap();
    let problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(problems, Vec::<String>::new());

    let specs = &loaded.specs;
    let versions: Vec<(&str, Vec<&str>)> = specs
        .games
        .iter()
        .map(|(name, game)| {
            let names = game
                .versions
                .iter()
                .map(|v| v.metadata.name.as_str())
                .collect();
            (name.as_str(), names)
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("lantern", vec!["1.0", "1.1", "1.2", "2.0"]),
            ("starfall", vec!["1.0.0", "1.0.1", "1.1.0", "1.2.0"]),
            ("tidewater", vec!["0.9.0", "1.0.0", "1.1.0"]),
        ]
    );
    let mut total_size = 0;
    for (name, game) in &specs.games {
        let spec = &game.game.spec;
        assert_eq!(spec.retention.keep_versions, 0, "{name}");
        assert!(!spec.retention.prune, "{name}");
        assert!(!spec.suspend, "{name}");
        let executable = &spec
            .launch
            .as_ref()
            .expect("every game launches")
            .executable;
        for version in &game.versions {
            let build = scan(&layout.nas.join(&version.spec.source));
            assert_eq!(
                version.spec.digest.as_deref(),
                Some(build.tree_digest().to_string().as_str()),
                "{name} {}",
                version.metadata.name
            );
            let launched = files(&build).get(executable).cloned();
            assert!(
                matches!(launched, Some((_, _, true))),
                "{name} {}: {executable} is not an executable file of the build",
                version.metadata.name
            );
            total_size += build.total_size();
        }
    }
    assert!(
        (30_000_000..=60_000_000).contains(&total_size),
        "the NAS holds {total_size} bytes"
    );
    assert_eq!(specs.games["lantern"].game.spec.grants, ["friend"]);
    let private: Vec<&str> = specs
        .games
        .iter()
        .filter(|(_, g)| g.game.spec.private)
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(private, ["lantern"]);
    let roles: Vec<(&str, Role)> = specs
        .users
        .iter()
        .map(|(name, user)| (name.as_str(), user.spec.role))
        .collect();
    assert_eq!(roles, [("admin", Role::Admin), ("friend", Role::User)]);
    for version in layout.games.iter().flat_map(|g| &g.versions) {
        assert!(
            matches!(version.build, BuildState::Matches { .. }),
            "{version:?}"
        );
    }
}

#[test]
fn history_has_one_valid_commit_per_release() {
    let (_tmp, layout) = generate();
    let repo = git2::Repository::open(&layout.specs_repo).unwrap();
    assert_eq!(repo.head().unwrap().name().unwrap(), "refs/heads/main");
    let statuses = repo.statuses(None).unwrap();
    assert_eq!(statuses.len(), 0, "the work tree is checked out at the tip");

    let mut revwalk = repo.revwalk().unwrap();
    revwalk.push_head().unwrap();
    revwalk.set_sorting(git2::Sort::REVERSE).unwrap();
    let options = LoadOptions {
        nas_root: Some(layout.nas.clone()),
    };
    let mut history = Vec::new();
    let mut previous_time = i64::MIN;
    for id in revwalk {
        let commit = repo.find_commit(id.unwrap()).unwrap();
        assert!(commit.time().seconds() > previous_time);
        previous_time = commit.time().seconds();
        let loaded = load_git(&layout.specs_repo, &commit.id().to_string(), &options).unwrap();
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        let n_versions: usize = loaded.specs.games.values().map(|g| g.versions.len()).sum();
        history.push(format!(
            "{} | {} games, {n_versions} versions, {} users",
            commit.summary().unwrap().unwrap(),
            loaded.specs.games.len(),
            loaded.specs.users.len()
        ));
    }
    assert_eq!(layout.n_commits, history.len());
    assert_eq!(
        history,
        [
            "Add the demo users and the spec schemas | 0 games, 0 versions, 2 users",
            "Add Starfall, Tidewater and Lantern | 3 games, 3 versions, 2 users",
            "Release Starfall 1.0.1 | 3 games, 4 versions, 2 users",
            "Release Lantern 1.1 | 3 games, 5 versions, 2 users",
            "Release Tidewater 1.0.0 | 3 games, 6 versions, 2 users",
            "Release Starfall 1.1.0 | 3 games, 7 versions, 2 users",
            "Release Lantern 1.2 | 3 games, 8 versions, 2 users",
            "Release Tidewater 1.1.0 | 3 games, 9 versions, 2 users",
            "Release Starfall 1.2.0 | 3 games, 10 versions, 2 users",
            "Release Lantern 2.0 | 3 games, 11 versions, 2 users",
        ]
    );
    for kind in ["game", "version", "user"] {
        let schema = layout
            .specs_repo
            .join(format!("schemas/{kind}.schema.json"));
        let text = std::fs::read_to_string(&schema).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
    }
}

#[test]
fn passwords_are_random_and_only_hashed() {
    let (tmp, layout) = generate();
    let (_tmp_b, other) = generate();
    let hasher = argon2::Argon2::default();
    for (user, other_user) in layout.users.iter().zip(&other.users) {
        let password = user.password.as_deref().expect("a new demo has passwords");
        assert!(password.len() >= 20, "{password}");
        assert_ne!(Some(password), other_user.password.as_deref());
        let text =
            std::fs::read_to_string(layout.specs_repo.join(format!("users/{}.yaml", user.name)))
                .unwrap();
        let hash_line = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("passwordHash: "))
            .unwrap();
        let hash_text: String = serde_json::from_str(hash_line).unwrap();
        assert!(
            hash_text.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash_text}"
        );
        let hash = argon2::password_hash::phc::PasswordHash::new(&hash_text).unwrap();
        hasher.verify_password(password.as_bytes(), &hash).unwrap();
        assert!(hasher.verify_password(b"not the password", &hash).is_err());
        assert_no_file_contains(tmp.path(), password.as_bytes());
    }
    let debug = format!("{layout:?}");
    for user in &layout.users {
        assert!(!debug.contains(user.password.as_deref().unwrap()));
    }
}

/// Fails if any file under `dir` (git objects are compressed, so those are skipped: they hold
/// only what the work tree holds) contains `needle`.
fn assert_no_file_contains(dir: &Path, needle: &[u8]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with(".git/objects") {
                assert_no_file_contains(&path, needle);
            }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a password",
                path.display()
            );
        }
    }
}

#[test]
fn a_second_run_reuses_the_demo_untouched() {
    let (tmp, first) = generate();
    let dir = tmp.path().join("demo");
    let before = scan(&dir).tree_digest();
    let second = demo::generate(&dir).unwrap();
    assert!(!second.created);
    assert!(second.users.iter().all(|u| u.password.is_none()));
    assert_eq!(second.head_commit, first.head_commit);
    assert_eq!(second.root, first.root);
    assert_eq!(scan(&dir).tree_digest(), before, "nothing was written");
    let names = |layout: &DemoLayout| -> Vec<(String, Vec<String>)> {
        layout
            .games
            .iter()
            .map(|g| {
                let versions = g.versions.iter().map(|v| v.name.clone()).collect();
                (g.name.clone(), versions)
            })
            .collect()
    };
    assert_eq!(names(&second), names(&first));
}

#[test]
fn a_second_run_reports_a_changed_build() {
    let (tmp, _) = generate();
    let dir = tmp.path().join("demo");
    let tampered = dir.join("nas/incoming/starfall/1.0.1/data/config.ini");
    std::fs::write(&tampered, "[video]\nwidth = 640\n").unwrap();
    std::fs::remove_dir_all(dir.join("nas/incoming/tidewater/0.9.0")).unwrap();
    let layout = demo::generate(&dir).unwrap();
    let states: BTreeMap<(String, String), &BuildState> = layout
        .games
        .iter()
        .flat_map(|g| {
            g.versions
                .iter()
                .map(|v| ((g.name.clone(), v.name.clone()), &v.build))
        })
        .collect();
    let key = |g: &str, v: &str| (g.to_string(), v.to_string());
    assert!(matches!(
        states[&key("starfall", "1.0.1")],
        BuildState::Differs { .. }
    ));
    assert!(matches!(
        states[&key("tidewater", "0.9.0")],
        BuildState::Unreadable { .. }
    ));
    assert!(matches!(
        states[&key("starfall", "1.0.0")],
        BuildState::Matches { .. }
    ));
}

#[test]
fn refuses_a_folder_that_is_not_a_demo() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tex"), "precious").unwrap();
    let error = demo::generate(tmp.path()).unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<DemoError>(),
            Some(DemoError::NotEmpty(_))
        ),
        "{error:#}"
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["thesis.tex"]);

    let file = tmp.path().join("thesis.tex");
    let error = demo::generate(&file).unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<DemoError>(),
            Some(DemoError::NotADirectory(_))
        ),
        "{error:#}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
}

#[test]
fn an_interrupted_demo_is_started_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    std::fs::create_dir_all(dir.join("nas/incoming/starfall")).unwrap();
    std::fs::write(dir.join("nas/incoming/starfall/half-written"), "x").unwrap();
    std::fs::write(dir.join(demo::PARTIAL_MARKER_FILE), "").unwrap();
    let layout = demo::generate(&dir).unwrap();
    assert!(layout.created);
    assert!(!dir.join("nas/incoming/starfall/half-written").exists());
    assert!(!dir.join(demo::PARTIAL_MARKER_FILE).exists());
    assert!(dir.join(demo::MARKER_FILE).is_file());

    // The partial marker does not make a folder with other files ours.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join(demo::PARTIAL_MARKER_FILE), "").unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let error = demo::generate(&other).unwrap_err();
    assert!(error.downcast_ref::<DemoError>().is_some(), "{error:#}");
    assert!(other.join("notes.txt").exists());
}

/// Consecutive versions of every game differ the way real updates do: the big files that
/// change change a little (a bsdiff-style delta is under a tenth of the file), and most
/// files do not change at all.
#[test]
fn updates_are_delta_friendly() {
    let (_tmp, layout) = generate();
    let options = fast_diff_options(mist_delta::matcher::SearchParams::default().chunk);
    let mut report = Vec::new();
    for game in &layout.games {
        for pair in game.versions.windows(2) {
            let old_dir = layout.nas.join(&pair[0].source);
            let new_dir = layout.nas.join(&pair[1].source);
            let old = files(&scan(&old_dir));
            let new = files(&scan(&new_dir));
            let old_hashes: Vec<&String> = old.values().map(|(hash, _, _)| hash).collect();
            let mut added_bytes = 0;
            let mut total = 0;
            let mut n_big_changed = 0;
            for (path, (hash, size, _)) in &new {
                total += size;
                if old_hashes.contains(&hash) {
                    // Unchanged, renamed or moved: costs nothing.
                    continue;
                }
                let Some((_, old_size, _)) = old.get(path) else {
                    added_bytes += size;
                    continue;
                };
                if *size < 64 * 1024 {
                    continue;
                }
                let old_bytes = std::fs::read(old_dir.join(path)).unwrap();
                let new_file = std::fs::read(new_dir.join(path)).unwrap();
                let delta = mist_delta::encode::diff(&old_bytes, &new_file, &options).unwrap();
                assert_eq!(
                    mist_delta::decode::apply(&old_bytes, &delta).unwrap(),
                    new_file
                );
                report.push(format!(
                    "{} {}→{} {path}: {old_size} → {size} bytes, delta {}",
                    game.name,
                    pair[0].name,
                    pair[1].name,
                    delta.len()
                ));
                assert!(
                    (delta.len() as u64) * 10 < *size,
                    "{}",
                    report.last().unwrap()
                );
                n_big_changed += 1;
            }
            assert!(
                n_big_changed >= 1,
                "{} {}: no big file changed",
                game.name,
                pair[1].name
            );
            // Files that are new under a new name cannot be patched; they are a small part.
            assert!(
                added_bytes * 10 < total,
                "{} {}: {added_bytes} of {total} bytes are in added files",
                game.name,
                pair[1].name
            );
        }
    }
    // Shown with --nocapture; handy when tuning the generators.
    println!("{}", report.join("\n"));
    let changed: Vec<&str> = report
        .iter()
        .map(|line| line.split(':').next().unwrap())
        .collect();
    for expected in [
        "starfall 1.0.0→1.0.1 bin/starfall",
        "starfall 1.1.0→1.2.0 lib/libstarphys.so",
        "tidewater 0.9.0→1.0.0 data/assets.pak",
        "tidewater 1.0.0→1.1.0 data/assets.pak",
        "lantern 1.1→1.2 levels/01-meadow.lvl",
        "lantern 1.2→2.0 bin/lantern-engine",
    ] {
        assert!(changed.contains(&expected), "{expected} not in {changed:?}");
    }
}

/// Fast settings for [`mist_delta::encode::diff`]: the point is the matches, not the last
/// percent of compression.
fn fast_diff_options(chunk: usize) -> mist_delta::encode::DiffOptions {
    mist_delta::encode::DiffOptions {
        zstd_level: 3,
        lzma_preset: None,
        search: mist_delta::matcher::SearchParams {
            chunk,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Lantern's releases add, remove, rename and move files and change an exec bit.
#[test]
fn lantern_adds_removes_renames_and_moves_files() {
    let (_tmp, layout) = generate();
    let version = |v: &str| files(&scan(&build_dir(&layout, "lantern", v)));
    let (v1_0, v1_1, v1_2, v2_0) = (
        version("1.0"),
        version("1.1"),
        version("1.2"),
        version("2.0"),
    );

    // 1.1 adds a level and only sets the editor script's exec bit.
    assert!(!v1_0.contains_key("levels/05-caverns.lvl"));
    assert!(v1_1.contains_key("levels/05-caverns.lvl"));
    let editor = "tools/level-editor.sh";
    assert_eq!(v1_0[editor].0, v1_1[editor].0);
    assert_eq!((v1_0[editor].2, v1_1[editor].2), (false, true));

    // 1.2 removes a level and moves the music, bytes unchanged.
    assert!(v1_1.contains_key("levels/03-swamp.lvl"));
    assert!(!v1_2.contains_key("levels/03-swamp.lvl"));
    for track in ["theme.ogg", "forest.ogg"] {
        assert!(!v1_2.contains_key(&format!("music/{track}")));
        assert_eq!(
            v1_1[&format!("music/{track}")].0,
            v1_2[&format!("audio/music/{track}")].0
        );
    }

    // 2.0 renames a level, bytes unchanged, and adds one.
    assert_eq!(
        v1_2["levels/05-caverns.lvl"].0,
        v2_0["levels/03-caverns.lvl"].0
    );
    assert!(!v2_0.contains_key("levels/05-caverns.lvl"));
    assert!(v2_0.contains_key("levels/06-summit.lvl"));

    // Unchanged across all four: the second music track and the forest level.
    assert_eq!(v1_0["music/forest.ogg"].0, v2_0["audio/music/forest.ogg"].0);
    assert_eq!(
        v1_1["levels/02-forest.lvl"].0,
        v2_0["levels/02-forest.lvl"].0
    );

    // The empty saves folder is part of every build.
    let manifest = scan(&build_dir(&layout, "lantern", "2.0"));
    assert!(
        manifest
            .entries
            .iter()
            .any(|e| e.path == "saves" && e.kind == EntryKind::Dir)
    );
}

mod cli {
    use assert_cmd::Command;

    fn mistd() -> Command {
        Command::cargo_bin("mistd").unwrap()
    }

    /// `mistd demo --no-serve` end to end: generates, converges, prints the summary and
    /// exits 0; `mistd status --json` then shows every version Ready. A second run reuses
    /// the demo and finds nothing to do.
    #[test]
    fn demo_converges_prints_users_passwords_and_next_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let output = crate::common::demo_no_serve(&dir);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        for expected in [
            "Made a Mist demo in",
            "starfall",
            "tidewater",
            "lantern",
            "private",
            "admin",
            "friend",
            "11/11 versions Ready",
            ".mist",
            "Try next",
            "mistd status --data",
            "mistpipe validate",
            "mistpipe new version starfall 1.3.0",
            // The friend's commands too, and how to serve the demo first with --no-serve.
            "mistd run --specs",
            "mist login --server http://127.0.0.1:8080 --user friend",
            "mist install starfall",
            "mistpipe status --server http://127.0.0.1:8080 --user admin",
        ] {
            assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
        }
        // The passwords: in the description of the new demo, and again in the summary.
        let password_lines: Vec<&str> = stdout
            .lines()
            .filter(|l| {
                l.trim_start().starts_with("admin ") || l.trim_start().starts_with("friend ")
            })
            .collect();
        assert_eq!(password_lines.len(), 4, "{stdout}");
        for line in &password_lines {
            let password = line.split_whitespace().last().unwrap();
            assert_eq!(password.len(), 23, "{line}");
        }
        assert_eq!(password_lines[..2], password_lines[2..], "{stdout}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains("versions ready"),
            "no progress shown:\n{stderr}"
        );

        assert_all_ready(&dir.join("data"));

        let again = crate::common::demo_no_serve(&dir);
        assert_eq!(again.status.code(), Some(0), "{again:?}");
        let stdout = String::from_utf8(again.stdout).unwrap();
        assert!(stdout.contains("Reusing the Mist demo"), "{stdout}");
        assert!(stdout.contains("not shown again"), "{stdout}");
        assert!(stdout.contains("11/11 versions Ready"), "{stdout}");
        assert_all_ready(&dir.join("data"));

        // A lost password: new ones, committed, printed once; the rest of the demo stays.
        let reset = mistd()
            .arg("demo")
            .arg("--dir")
            .arg(&dir)
            .arg("--no-serve")
            .arg("--reset-passwords")
            .output()
            .unwrap();
        assert_eq!(reset.status.code(), Some(0), "{reset:?}");
        let stdout = String::from_utf8(reset.stdout).unwrap();
        let friend = stdout
            .lines()
            .find(|l| l.trim_start().starts_with("friend "))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no friend password in:\n{stdout}"));
        assert_eq!(friend.len(), 23, "{stdout}");
        assert!(!password_lines.iter().any(|line| line.ends_with(friend)));
        let yaml = std::fs::read_to_string(dir.join("specs/users/friend.yaml")).unwrap();
        let hash = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("passwordHash: "))
            .unwrap()
            .trim_matches(['"', '\'']);
        use argon2::password_hash::PasswordVerifier;
        let hash = argon2::password_hash::phc::PasswordHash::new(hash).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(friend.as_bytes(), &hash)
                .is_ok()
        );
        let repo = git2::Repository::open(dir.join("specs")).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        assert!(
            head.message()
                .unwrap()
                .starts_with("Reset the demo users' passwords")
        );
        assert_eq!(
            git2::Status::empty(),
            repo.status_file(std::path::Path::new("users/friend.yaml"))
                .unwrap()
        );
        assert_all_ready(&dir.join("data"));
    }

    /// `mistd status --json` lists the demo's 11 versions, every one Ready, and full commit
    /// ids; the table form says the same.
    fn assert_all_ready(data: &std::path::Path) {
        let output = mistd()
            .arg("status")
            .arg("--data")
            .arg(data)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut versions = Vec::new();
        for game in report["games"].as_array().expect("games") {
            for version in game["versions"].as_array().expect("versions") {
                versions.push((
                    format!("{} {}", game["name"].as_str().unwrap(), version["name"]),
                    version["ready"].as_bool(),
                ));
            }
        }
        assert_eq!(versions.len(), 11, "{report:#}");
        assert!(
            versions.iter().all(|(_, ready)| *ready == Some(true)),
            "{report:#}"
        );
        let commit = report["commit"].as_str().expect("commit");
        assert_eq!(commit.len(), 40, "{report:#}");

        let table = mistd()
            .arg("status")
            .arg("--data")
            .arg(data)
            .output()
            .unwrap();
        assert_eq!(table.status.code(), Some(0), "{table:?}");
        let table = String::from_utf8(table.stdout).unwrap();
        assert!(table.contains("11/11 versions ready"), "{table}");
    }

    #[test]
    fn demo_refuses_a_folder_in_use_with_exit_code_2() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let output = mistd()
            .arg("demo")
            .arg("--dir")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains("is not empty and is not a Mist demo"),
            "{stderr}"
        );
    }

    #[test]
    fn help_has_examples() {
        let output = mistd().args(["demo", "--help"]).output().unwrap();
        assert_eq!(output.status.code(), Some(0));
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("mistd demo --dir"), "{stdout}");
        let output = mistd().arg("--help").output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("Exit codes"), "{stdout}");
        let output = mistd().arg("bogus").output().unwrap();
        assert_eq!(output.status.code(), Some(2));
    }
}
