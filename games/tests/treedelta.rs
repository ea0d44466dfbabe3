//! Tree deltas, in-place installs and chain replay on real trees in temp dirs: random trees
//! round-trip exactly, damaged packages and escaping paths are refused without writing, and
//! installs keep files that are in neither version.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use mist_delta::encode::DiffOptions;
use mist_games::install::{
    InstallError, InstallOptions, Outcome, Recovery, location, recover, update,
};
use mist_games::manifest::{EntryKind, Manifest, TreeDigest};
use mist_games::pack;
use mist_games::replay::{self, ReplayError};
use mist_games::scan::scan;
use mist_games::treedelta::apply::{ApplyOptions, apply_to_dir};
use mist_games::treedelta::create::{self, CreateOptions};
use mist_games::treedelta::format::{HEADER_LEN, TreeDeltaError};
use mist_games::treedelta::index::{Op, Symlink};
use mist_games::treedelta::package::{Package, check_blob};
use mist_games::treedelta::stats::{KindStats, Stats};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// A model of a tree, written to disk and edited at random.

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File { content: Vec<u8>, executable: bool },
    Symlink(String),
    Dir,
}

type Model = BTreeMap<String, Node>;

fn file(content: &[u8]) -> Node {
    Node::File {
        content: content.to_vec(),
        executable: false,
    }
}

fn write_tree(root: &Path, model: &Model) {
    fs::create_dir_all(root).unwrap();
    for (path, node) in model {
        let full = root.join(path);
        match node {
            Node::File {
                content,
                executable,
            } => {
                fs::write(&full, content).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Symlink(target) => symlink(target, &full).unwrap(),
            Node::Dir => fs::create_dir(&full).unwrap(),
        }
    }
}

/// Bytes with runs and repeats, so that diffs find matches, from a seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let word = (state >> 24).to_le_bytes();
        let repeat = 1 + (state >> 60) as usize;
        for _ in 0..repeat {
            out.extend_from_slice(&word[..4]);
        }
    }
    out.truncate(len);
    out
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "data.pak",
    "level.bin",
    "readme.txt",
    "lib.so",
    "Game",
    "c.pak",
];

#[derive(Clone, Debug)]
enum Edit {
    Add {
        dir: usize,
        name: usize,
        seed: u64,
        len: u16,
        executable: bool,
    },
    Delete {
        pick: usize,
    },
    Rename {
        pick: usize,
        dir: usize,
        name: usize,
    },
    Copy {
        pick: usize,
        dir: usize,
        name: usize,
    },
    Modify {
        pick: usize,
        at: u16,
        seed: u64,
    },
    Shift {
        pick: usize,
        n: u8,
    },
    Mode {
        pick: usize,
    },
    MakeDir {
        dir: usize,
        name: usize,
    },
    Symlink {
        dir: usize,
        name: usize,
        target: usize,
    },
    Retype {
        pick: usize,
        seed: u64,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), any::<usize>(), any::<u64>(), 0u16..3000, any::<bool>()).prop_map(
            |(dir, name, seed, len, executable)| Edit::Add { dir, name, seed, len, executable }
        ),
        1 => any::<usize>().prop_map(|pick| Edit::Delete { pick }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(pick, dir, name)| Edit::Rename { pick, dir, name }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(pick, dir, name)| Edit::Copy { pick, dir, name }),
        2 => (any::<usize>(), any::<u16>(), any::<u64>())
            .prop_map(|(pick, at, seed)| Edit::Modify { pick, at, seed }),
        1 => (any::<usize>(), 1u8..40).prop_map(|(pick, n)| Edit::Shift { pick, n }),
        1 => any::<usize>().prop_map(|pick| Edit::Mode { pick }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(dir, name)| Edit::MakeDir { dir, name }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(dir, name, target)| Edit::Symlink { dir, name, target }),
        1 => (any::<usize>(), any::<u64>()).prop_map(|(pick, seed)| Edit::Retype { pick, seed }),
    ]
}

fn pick(list: &[String], idx: usize) -> Option<&String> {
    (!list.is_empty()).then(|| &list[idx % list.len()])
}

fn dirs(model: &Model) -> Vec<String> {
    std::iter::once(String::new())
        .chain(
            model
                .iter()
                .filter(|(_, node)| **node == Node::Dir)
                .map(|(path, _)| path.clone()),
        )
        .collect()
}

fn files(model: &Model) -> Vec<String> {
    model
        .iter()
        .filter(|(_, node)| matches!(node, Node::File { .. }))
        .map(|(path, _)| path.clone())
        .collect()
}

fn child(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn remove_subtree(model: &mut Model, path: &str) {
    let prefix = format!("{path}/");
    model.retain(|other, _| other != path && !other.starts_with(&prefix));
}

/// A free path `dir/name`, if the name is not taken.
fn free_path(model: &Model, dir: usize, name: usize) -> Option<String> {
    let dirs = dirs(model);
    let path = child(pick(&dirs, dir)?, NAMES[name % NAMES.len()]);
    (!model.contains_key(&path)).then_some(path)
}

fn apply_edit(model: &mut Model, edit: &Edit) {
    let all: Vec<String> = model.keys().cloned().collect();
    let files = files(model);
    match *edit {
        Edit::Add {
            dir,
            name,
            seed,
            len,
            executable,
        } => {
            if let Some(path) = free_path(model, dir, name) {
                let content = content(seed, len as usize);
                model.insert(
                    path,
                    Node::File {
                        content,
                        executable,
                    },
                );
            }
        }
        Edit::Delete { pick: idx } => {
            if let Some(path) = pick(&all, idx) {
                remove_subtree(model, path);
            }
        }
        Edit::Rename {
            pick: idx,
            dir,
            name,
        }
        | Edit::Copy {
            pick: idx,
            dir,
            name,
        } => {
            if let (Some(from), Some(to)) = (pick(&files, idx), free_path(model, dir, name)) {
                let node = model[from].clone();
                if matches!(edit, Edit::Rename { .. }) {
                    model.remove(from);
                }
                model.insert(to, node);
            }
        }
        Edit::Modify {
            pick: idx,
            at,
            seed,
        } => {
            if let Some(path) = pick(&files, idx)
                && let Some(Node::File { content: bytes, .. }) = model.get_mut(path)
            {
                let patch = self::content(seed, 1 + (seed % 16) as usize);
                if bytes.is_empty() {
                    bytes.extend_from_slice(&patch);
                } else {
                    let at = at as usize % bytes.len();
                    let end = (at + patch.len()).min(bytes.len());
                    bytes.splice(at..end, patch);
                }
            }
        }
        Edit::Shift { pick: idx, n } => {
            if let Some(path) = pick(&files, idx)
                && let Some(Node::File { content: bytes, .. }) = model.get_mut(path)
            {
                bytes.splice(0..0, std::iter::repeat_n(n, n as usize));
            }
        }
        Edit::Mode { pick: idx } => {
            if let Some(path) = pick(&files, idx)
                && let Some(Node::File { executable, .. }) = model.get_mut(path)
            {
                *executable = !*executable;
            }
        }
        Edit::MakeDir { dir, name } => {
            if let Some(path) = free_path(model, dir, name) {
                model.insert(path, Node::Dir);
            }
        }
        Edit::Symlink { dir, name, target } => {
            if let Some(path) = free_path(model, dir, name) {
                model.insert(path, Node::Symlink(NAMES[target % NAMES.len()].to_owned()));
            }
        }
        Edit::Retype { pick: idx, seed } => {
            if let Some(path) = pick(&all, idx).cloned() {
                let node = match model[&path] {
                    Node::File { .. } => Node::Dir,
                    Node::Dir | Node::Symlink(_) => Node::File {
                        content: content(seed, 100 + (seed % 900) as usize),
                        executable: false,
                    },
                };
                remove_subtree(model, &path);
                model.insert(path, node);
            }
        }
    }
}

fn build(base: &Model, edits: &[Edit]) -> Model {
    let mut model = base.clone();
    for edit in edits {
        apply_edit(&mut model, edit);
    }
    model
}

// ---------------------------------------------------------------------------------------
// Helpers around the API.

fn quick() -> CreateOptions {
    CreateOptions {
        file: DiffOptions {
            zstd_level: 3,
            lzma_preset: Some(1),
            ..DiffOptions::default()
        },
        ..CreateOptions::default()
    }
}

fn create_with(old: &Path, new: &Path, options: &CreateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    create::create(old, new, &mut out, options, &|_, _| {}).expect("create");
    out
}

fn create(old: &Path, new: &Path) -> Vec<u8> {
    create_with(old, new, &quick())
}

fn package(bytes: &[u8]) -> Package {
    Package::from_bytes(bytes.to_vec()).expect("the package reads")
}

/// Files in neither version that every install test puts into the install.
const UNTRACKED: &[(&str, &[u8])] = &[
    ("saves", b""),
    ("saves/slot1.sav", b"precious progress"),
    ("user.cfg", b"fov=110"),
];

fn add_untracked(root: &Path) {
    for (path, bytes) in UNTRACKED {
        let full = root.join(path);
        if path.contains('.') {
            fs::write(full, bytes).unwrap();
        } else {
            fs::create_dir(full).unwrap();
        }
    }
}

/// The manifest of an install without the untracked files, after checking they are intact.
fn scan_install(root: &Path) -> Manifest {
    for (path, bytes) in UNTRACKED {
        if path.contains('.') {
            assert_eq!(fs::read(root.join(path)).unwrap(), *bytes, "{path} changed");
        }
    }
    let mut manifest = scan(root).unwrap();
    manifest.entries.retain(|entry| {
        !UNTRACKED
            .iter()
            .any(|(path, _)| entry.path == *path || entry.path.starts_with("saves/"))
    });
    manifest
}

struct Temp {
    dir: tempfile::TempDir,
}

impl Temp {
    fn new() -> Temp {
        Temp {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `model` under `rel` and returns its path.
    fn tree(&self, rel: &str, model: &Model) -> PathBuf {
        let root = self.path(rel);
        write_tree(&root, model);
        root
    }
}

fn model(entries: &[(&str, Node)]) -> Model {
    entries
        .iter()
        .map(|(path, node)| ((*path).to_owned(), node.clone()))
        .collect()
}

/// Two versions exercising every kind of operation.
fn sample_versions() -> (Model, Model) {
    let big = content(7, 40_000);
    let mut big_changed = big.clone();
    big_changed[20_000..20_010].copy_from_slice(b"0123456789");
    let old = model(&[
        ("bin", Node::Dir),
        (
            "bin/game",
            Node::File {
                content: content(1, 5000),
                executable: true,
            },
        ),
        ("bin/tool", file(&content(2, 300))),
        ("data", Node::Dir),
        ("data/level1.pak", file(&big)),
        ("data/old.txt", file(b"going away")),
        ("data/moved.bin", file(&content(3, 2000))),
        ("docs", Node::Dir),
        ("docs/readme.txt", file(b"hello")),
        ("lib", Node::Symlink("bin".to_owned())),
        ("becomes_dir", file(b"file now, folder later")),
        ("gone", Node::Dir),
        ("gone/inner.txt", file(b"inner")),
    ]);
    let new = model(&[
        ("bin", Node::Dir),
        (
            "bin/game",
            Node::File {
                content: content(1, 5000),
                executable: true,
            },
        ),
        (
            "bin/tool",
            Node::File {
                content: content(2, 300),
                executable: true,
            },
        ),
        ("data", Node::Dir),
        ("data/level1.pak", file(&big_changed)),
        ("data/level2.pak", file(&content(8, 3000))),
        ("docs", Node::Dir),
        ("docs/readme.txt", file(b"hello")),
        ("docs/copy-of-readme.txt", file(b"hello")),
        ("assets", Node::Dir),
        ("assets/moved.bin", file(&content(3, 2000))),
        ("lib", Node::Symlink("docs".to_owned())),
        ("becomes_dir", Node::Dir),
        ("becomes_dir/x", file(b"x")),
    ]);
    (old, new)
}

// ---------------------------------------------------------------------------------------
// Round trips.

#[test]
fn every_kind_of_change_round_trips_and_is_counted() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let bytes = create(&old, &new);
    let package = package(&bytes);
    let source = scan(&old).unwrap();
    let stats = package.stats(&source).unwrap();
    let count = |kind: KindStats| (kind.files, kind.bytes);
    assert_eq!(count(stats.unchanged), (2, 5000 + 5), "{stats:?}");
    assert_eq!(count(stats.copied), (2, 2000 + 5), "{stats:?}");
    assert_eq!(count(stats.patched), (1, 40_000), "{stats:?}");
    assert_eq!(count(stats.added), (2, 3000 + 1), "{stats:?}");
    assert_eq!(count(stats.mode), (1, 300), "{stats:?}");
    assert_eq!(count(stats.deleted), (4, 10 + 2000 + 22 + 5), "{stats:?}");
    assert_eq!(
        stats.copied.stored + stats.unchanged.stored + stats.mode.stored,
        0
    );
    assert!(stats.patched.stored < 1000, "{stats:?}");
    assert_eq!(stats.package_bytes, bytes.len() as u64);
    assert_eq!(
        stats.package_bytes,
        HEADER_LEN as u64 + stats.index_bytes + stats.patched.stored + stats.added.stored
    );

    assert_eq!(
        package.target_manifest(&source).unwrap(),
        scan(&new).unwrap()
    );

    let out = temp.path("out");
    apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default()).unwrap();
    assert_eq!(scan(&out).unwrap(), scan(&new).unwrap());

    let install = temp.tree("install", &old_model);
    add_untracked(&install);
    let report =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!(scan_install(&install), scan(&new).unwrap());
    assert!(!location::staging_path(&install).unwrap().exists());

    // Running it again finds the new version and changes nothing.
    let again =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyCurrent);
    assert_eq!(scan_install(&install), scan(&new).unwrap());
}

/// Twelve small files, each changed in the same way: a version string and a few bytes.
fn many_small_changes() -> (Model, Model) {
    let mut old = Model::new();
    let mut new = Model::new();
    for idx in 0..12u64 {
        let path = format!("lib/module{idx:02}.so");
        let mut before = content(100 + idx, 3000);
        before[100..112].copy_from_slice(b"version=1.26");
        let mut after = before.clone();
        after[100..112].copy_from_slice(b"version=1.27");
        after[2000 + idx as usize] ^= 0x5a;
        old.insert(path.clone(), file(&before));
        new.insert(path, file(&after));
    }
    old.insert("lib".to_owned(), Node::Dir);
    new.insert("lib".to_owned(), Node::Dir);
    (old, new)
}

#[test]
fn small_files_share_a_file_delta_and_each_is_checked() {
    let temp = Temp::new();
    let (old_model, new_model) = many_small_changes();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let source = scan(&old).unwrap();
    let grouped = create(&old, &new);
    let separate = create_with(
        &old,
        &new,
        &CreateOptions {
            group_max: 0,
            ..quick()
        },
    );
    assert!(
        grouped.len() < separate.len(),
        "grouped {} vs separate {}",
        grouped.len(),
        separate.len()
    );
    let package = package(&grouped);
    let first = &package.index().ops[0];
    let members = package.members(first);
    assert_eq!(members.len(), 12, "{:?}", package.index());
    // The JSON names the shared blob instead of repeating its length.
    let json = serde_json::to_string(package.index()).unwrap();
    assert_eq!(json.matches(r#""len":"#).count(), 1, "{json}");
    assert_eq!(json.matches(r#""blob":0"#).count(), 11, "{json}");
    // Stats split the shared blob over its files and add up to the package.
    let stats = package.stats(&source).unwrap();
    assert_eq!(stats.patched.files, 12);
    assert_eq!(
        stats.package_bytes,
        HEADER_LEN as u64 + stats.index_bytes + stats.patched.stored + stats.added.stored
    );
    // Each member rebuilds alone, checked against its own hash.
    let read = |base: &str, _size: u64| Ok::<_, TreeDeltaError>(fs::read(old.join(base)).unwrap());
    for op in &package.index().ops {
        let bytes = package.rebuild(&source, op, &read).unwrap();
        assert_eq!(bytes, fs::read(new.join(op.path())).unwrap());
    }
    // A base that is not what the source manifest says is refused, for every member.
    let wrong = |base: &str, _size: u64| {
        let mut bytes = fs::read(old.join(base)).unwrap();
        if base.ends_with("07.so") {
            bytes[0] ^= 1;
        }
        Ok::<_, TreeDeltaError>(bytes)
    };
    let fresh = Package::from_bytes(grouped.clone()).unwrap();
    assert!(fresh.rebuild(&source, first, &wrong).is_err());
    // Applied to a folder and to an install, it gives the new version.
    let out = temp.path("out");
    apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default()).unwrap();
    assert_eq!(scan(&out).unwrap(), scan(&new).unwrap());
    let install = temp.tree("install", &old_model);
    add_untracked(&install);
    let report =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!(scan_install(&install), scan(&new).unwrap());

    // References to blobs that do not exist, or an operation with both or neither of `len`
    // and `blob`, are refused when the index is read.
    let header = package.header();
    let body = &grouped[header.body_start() as usize..];
    for bad in [
        json.replacen(r#""blob":0"#, r#""blob":1"#, 1),
        json.replacen(r#""blob":0"#, r#""blob":0,"len":5"#, 1),
        json.replacen(r#""blob":0,"#, "", 1)
            .replacen(r#","blob":0"#, "", 1),
    ] {
        assert_ne!(bad, json);
        let error =
            Package::from_bytes(assemble(header.source, header.target, &bad, body)).unwrap_err();
        assert!(
            matches!(error, TreeDeltaError::Corrupt(_)),
            "{bad}: {error}"
        );
    }
}

#[test]
fn renames_and_copies_cost_nothing() {
    let temp = Temp::new();
    let blob = content(11, 200_000);
    let old = temp.tree("old", &model(&[("a.bin", file(&blob))]));
    let new = temp.tree(
        "new",
        &model(&[
            ("x", Node::Dir),
            ("x/renamed.bin", file(&blob)),
            ("x/copy.bin", file(&blob)),
        ]),
    );
    let package = package(&create(&old, &new));
    let stats = package.stats(&scan(&old).unwrap()).unwrap();
    assert_eq!(stats.copied.files, 2);
    assert_eq!(stats.patched.files + stats.added.files, 0);
    assert!(stats.package_bytes < 2000, "{stats:?}");
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let one_thread = create_with(
        &old,
        &new,
        &CreateOptions {
            threads: 1,
            ..quick()
        },
    );
    let four_threads = create_with(
        &old,
        &new,
        &CreateOptions {
            threads: 4,
            memory_budget: 1,
            ..quick()
        },
    );
    assert_eq!(one_thread, four_threads);
    assert_eq!(one_thread, create(&old, &new));
}

#[test]
fn identical_trees_make_an_empty_body() {
    let temp = Temp::new();
    let (old_model, _) = sample_versions();
    let old = temp.tree("old", &old_model);
    let same = temp.tree("same", &old_model);
    let package = package(&create(&old, &same));
    assert!(package.index().ops.is_empty());
    assert_eq!(package.header().body_len, 0);
    assert_eq!(package.header().source, package.header().target);
}

#[test]
fn default_options_round_trip() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let bytes = create_with(&old, &new, &CreateOptions::default());
    let out = temp.path("out");
    let source = scan(&old).unwrap();
    apply_to_dir(
        &old,
        &source,
        &package(&bytes),
        &out,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(scan(&out).unwrap(), scan(&new).unwrap());
}

#[test]
fn chain_replay_rebuilds_the_last_version_and_checks_the_chain() {
    let temp = Temp::new();
    let (v0, v1) = sample_versions();
    let mut v2 = v1.clone();
    v2.insert("data/level3.pak".to_owned(), file(&content(9, 5000)));
    v2.remove("docs/copy-of-readme.txt");
    let roots: Vec<PathBuf> = [&v0, &v1, &v2]
        .iter()
        .enumerate()
        .map(|(idx, model)| temp.tree(&format!("v{idx}"), model))
        .collect();
    let manifests: Vec<Manifest> = roots.iter().map(|root| scan(root).unwrap()).collect();
    let d01 = package(&create(&roots[0], &roots[1]));
    let d12 = package(&create(&roots[1], &roots[2]));
    let out = temp.path("replayed");
    replay::replay(
        &roots[0],
        &manifests[0],
        &[package(&create(&roots[0], &roots[1])), d12],
        &out,
        &manifests[2],
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(scan(&out).unwrap(), manifests[2]);
    let leftovers: Vec<_> = fs::read_dir(temp.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A chain in the wrong order, or ending elsewhere, is refused before any work.
    let d12 = package(&create(&roots[1], &roots[2]));
    let wrong_order = replay::replay(
        &roots[0],
        &manifests[0],
        &[d12, d01],
        &temp.path("never"),
        &manifests[2],
        &ApplyOptions::default(),
    );
    assert!(matches!(
        wrong_order,
        Err(ReplayError::Broken { step: 0, .. })
    ));
    let d01 = package(&create(&roots[0], &roots[1]));
    let short = replay::replay(
        &roots[0],
        &manifests[0],
        &[d01],
        &temp.path("never"),
        &manifests[2],
        &ApplyOptions::default(),
    );
    assert!(matches!(short, Err(ReplayError::WrongEnd { .. })));
    assert!(!temp.path("never").exists());

    // A base that is not the chain's start fails on the first file it differs in, and
    // leaves nothing behind.
    fs::write(roots[0].join("bin/game"), b"damaged").unwrap();
    let stale = replay::replay(
        &roots[0],
        &manifests[0],
        &[package(&create_from_fresh(&v0, &v1))],
        &temp.path("never"),
        &manifests[1],
        &ApplyOptions::default(),
    );
    assert!(
        matches!(
            stale,
            Err(ReplayError::Step {
                source: TreeDeltaError::SourceMismatch(_),
                ..
            })
        ),
        "{stale:?}"
    );
    assert!(!temp.path("never").exists());
}

/// A delta between two freshly written models (independent of any damaged copy on disk).
fn create_from_fresh(old: &Model, new: &Model) -> Vec<u8> {
    let temp = Temp::new();
    create(&temp.tree("old", old), &temp.tree("new", new))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random trees and random edits (add, delete, rename, copy, modify, shift, mode change,
    /// symlinks, files becoming folders and back) round-trip exactly through a tree delta
    /// applied into a new folder, applied in place to an install with a friend's files,
    /// and through chain replay.
    #[test]
    fn random_trees_round_trip(
        initial in prop::collection::vec(edit(), 1..30),
        step1 in prop::collection::vec(edit(), 0..12),
        step2 in prop::collection::vec(edit(), 0..12),
    ) {
        let temp = Temp::new();
        let v0 = build(&Model::new(), &initial);
        let v1 = build(&v0, &step1);
        let v2 = build(&v1, &step2);
        let roots = [temp.tree("v0", &v0), temp.tree("v1", &v1), temp.tree("v2", &v2)];
        let manifests: Vec<Manifest> = roots.iter().map(|root| scan(root).unwrap()).collect();
        let d01 = create(&roots[0], &roots[1]);
        let d12 = create(&roots[1], &roots[2]);

        let out = temp.path("out");
        apply_to_dir(
            &roots[0], &manifests[0], &package(&d01), &out, &ApplyOptions::default(),
        ).unwrap();
        prop_assert_eq!(&scan(&out).unwrap(), &manifests[1]);

        let install = temp.tree("install", &v0);
        add_untracked(&install);
        for (delta, source, expected) in
            [(&d01, &manifests[0], &manifests[1]), (&d12, &manifests[1], &manifests[2])]
        {
            update::apply_delta(&install, source, &package(delta), &InstallOptions::default())
                .unwrap();
            prop_assert_eq!(&scan_install(&install), expected);
        }

        let replayed = temp.path("replayed");
        replay::replay(
            &roots[0], &manifests[0], &[package(&d01), package(&d12)], &replayed,
            &manifests[2], &ApplyOptions::default(),
        ).unwrap();
        prop_assert_eq!(&scan(&replayed).unwrap(), &manifests[2]);
    }
}

// ---------------------------------------------------------------------------------------
// Damaged packages.

fn sample_package(temp: &Temp) -> (PathBuf, Vec<u8>) {
    sample_package_with(temp, &quick())
}

/// The sample package with every file delta its own, for tests about single blobs.
fn sample_package_ungrouped(temp: &Temp) -> (PathBuf, Vec<u8>) {
    sample_package_with(
        temp,
        &CreateOptions {
            group_max: 0,
            ..quick()
        },
    )
}

fn sample_package_with(temp: &Temp, options: &CreateOptions) -> (PathBuf, Vec<u8>) {
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    (old.clone(), create_with(&old, &new, options))
}

#[test]
fn every_bit_flip_and_truncation_is_rejected_before_output() {
    let temp = Temp::new();
    let (old, bytes) = sample_package(&temp);
    let source = scan(&old).unwrap();
    let out = temp.path("out");
    let mut n_read_ok = 0;
    for byte_idx in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[byte_idx] ^= 1 << (byte_idx % 8);
        // Damage in the header or index is caught on reading; damage in a file delta when it
        // is used. Either way no output appears.
        if let Ok(package) = Package::from_bytes(damaged) {
            n_read_ok += 1;
            let result = apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default());
            assert!(result.is_err(), "flip at byte {byte_idx} was applied");
            assert!(!out.exists(), "flip at byte {byte_idx} left output");
        }
    }
    // The body is most of the package: those flips are caught by the file deltas.
    assert!(n_read_ok > 0);
    for len in 0..bytes.len() {
        assert!(
            Package::from_bytes(bytes[..len].to_vec()).is_err(),
            "truncation to {len} was read"
        );
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(Package::from_bytes(extended).is_err());
    assert!(matches!(
        Package::from_bytes(b"MISTFDLT and more".to_vec()),
        Err(TreeDeltaError::BadMagic)
    ));
}

#[test]
fn damaged_packages_never_change_an_install() {
    let temp = Temp::new();
    let (old_model, _) = sample_versions();
    let (old, bytes) = sample_package(&temp);
    let source = scan(&old).unwrap();
    let install = temp.tree("install", &old_model);
    add_untracked(&install);
    let before = scan_install(&install);
    // A spread of positions over the whole package, header, index and body.
    let step = (bytes.len() / 60).max(1);
    for byte_idx in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
        let mut damaged = bytes.clone();
        damaged[byte_idx] ^= 0x10;
        if let Ok(package) = Package::from_bytes(damaged) {
            let result =
                update::apply_delta(&install, &source, &package, &InstallOptions::default());
            assert!(result.is_err(), "flip at byte {byte_idx} was installed");
        }
        // Files staged by an earlier round would spare this one from reading its deltas.
        recover::discard_staging(&install).unwrap();
        assert_eq!(scan_install(&install), before, "flip at byte {byte_idx}");
    }
    // Verified files staged before a failure are kept, and a good package resumes.
    let report = update::apply_delta(
        &install,
        &source,
        &package(&bytes),
        &InstallOptions::default(),
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert!(!location::staging_path(&install).unwrap().exists());
}

#[test]
fn staged_files_are_kept_and_reused_after_a_failure() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (old, bytes) = sample_package_ungrouped(&temp);
    let source = scan(&old).unwrap();
    let package_ok = package(&bytes);
    // Damage the last file delta, so the files staged before it are good.
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    let package_bad = package(&damaged);
    let install = temp.tree("install", &old_model);
    let options = InstallOptions {
        threads: 1,
        ..InstallOptions::default()
    };
    let error = update::apply_delta(&install, &source, &package_bad, &options).unwrap_err();
    assert!(matches!(error, InstallError::Delta(_)), "{error}");
    assert_eq!(
        scan(&install).unwrap(),
        scan(&temp.tree("old-again", &old_model)).unwrap()
    );
    let staged = location::staging_path(&install).unwrap().join("objects");
    let n_staged = fs::read_dir(&staged).unwrap().count() as u64;
    assert!(n_staged > 0);
    let report = update::apply_delta(&install, &source, &package_ok, &options).unwrap();
    assert_eq!(report.files_resumed, n_staged);
    assert!(report.files_staged > 0);
    assert_eq!(
        scan(&install).unwrap(),
        scan(&temp.tree("new-again", &new_model)).unwrap()
    );
}

/// Writes a package around a hand-made index, following docs/delta.md: the header, the
/// zstd-compressed JSON index, the body.
fn assemble(source: TreeDigest, target: TreeDigest, index_json: &str, body: &[u8]) -> Vec<u8> {
    let stored = zstd::stream::encode_all(index_json.as_bytes(), 3).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(b"MISTTDLT");
    out.extend_from_slice(&[3, 0, 0, 0]);
    out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index_json.len() as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&source.0);
    out.extend_from_slice(&target.0);
    out.extend_from_slice(blake3::hash(&stored).as_bytes());
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&stored);
    out.extend_from_slice(body);
    out
}

#[test]
fn a_hand_assembled_package_matches_the_documented_format() {
    let temp = Temp::new();
    let (old, bytes) = sample_package_ungrouped(&temp);
    let source = scan(&old).unwrap();
    let package = package(&bytes);
    let index_json = serde_json::to_string(package.index()).unwrap();
    let body = &bytes[package.header().body_start() as usize..];
    let rebuilt = assemble(
        package.header().source,
        package.header().target,
        &index_json,
        body,
    );
    let reread = Package::from_bytes(rebuilt).unwrap();
    assert_eq!(reread.index(), package.index());
    assert_eq!(
        reread.stats(&source).unwrap(),
        Stats {
            index_bytes: reread.header().index_len,
            index_raw_bytes: reread.header().index_raw_len,
            package_bytes: reread.header().package_len(),
            ..package.stats(&source).unwrap()
        }
    );

    // The documented JSON, written by hand: what is derivable (offsets, a patch base equal to
    // its path, a false executable bit) is left out, and a reader fills it in.
    let blob = |op: &Op| package.blob(op).unwrap();
    let index = package.index();
    let hash_of = |path: &str| match index.op(path).unwrap() {
        Op::Patch { blake3, size, .. } | Op::Add { blake3, size, .. } => (*blake3, *size),
        other => panic!("{other:?}"),
    };
    let (level1, level1_size) = hash_of("data/level1.pak");
    let (level2, level2_size) = hash_of("data/level2.pak");
    let (x, x_size) = hash_of("becomes_dir/x");
    let by_hand = format!(
        concat!(
            r#"{{"removed":["data/moved.bin","data/old.txt","gone","gone/inner.txt"],"#,
            r#""dirs":["assets","becomes_dir"],"symlinks":[{{"path":"lib","target":"docs"}}],"#,
            r#""ops":[{{"op":"copy","path":"assets/moved.bin","from":"data/moved.bin"}},"#,
            r#"{{"op":"add","path":"becomes_dir/x","size":{},"blake3":"{}","len":{}}},"#,
            r#"{{"op":"mode","path":"bin/tool"}},"#,
            r#"{{"op":"patch","path":"data/level1.pak","size":{},"blake3":"{}","len":{}}},"#,
            r#"{{"op":"add","path":"data/level2.pak","size":{},"blake3":"{}","len":{}}},"#,
            r#"{{"op":"copy","path":"docs/copy-of-readme.txt","from":"docs/readme.txt"}}]}}"#
        ),
        x_size,
        x,
        blob(index.op("becomes_dir/x").unwrap()).len(),
        level1_size,
        level1,
        blob(index.op("data/level1.pak").unwrap()).len(),
        level2_size,
        level2,
        blob(index.op("data/level2.pak").unwrap()).len(),
    );
    assert_eq!(by_hand, index_json);
    let by_hand = Package::from_bytes(assemble(
        package.header().source,
        package.header().target,
        &by_hand,
        body,
    ))
    .unwrap();
    assert_eq!(by_hand.index(), package.index());
    let out = temp.path("by-hand");
    apply_to_dir(&old, &source, &by_hand, &out, &ApplyOptions::default()).unwrap();
    assert_eq!(
        scan(&out).unwrap(),
        package.target_manifest(&source).unwrap()
    );
}

/// An index (as JSON) with the given list contents.
fn index_json(removed: &str, dirs: &str, symlinks: &str, ops: &str) -> String {
    format!(r#"{{"removed":[{removed}],"dirs":[{dirs}],"symlinks":[{symlinks}],"ops":[{ops}]}}"#)
}

const HASH_A: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn empty_manifest() -> Manifest {
    Manifest {
        entries: Vec::new(),
    }
}

#[test]
fn escaping_paths_in_a_package_are_refused() {
    let add = |path: &str| {
        format!(r#"{{"op":"add","path":"{path}","size":1,"blake3":"{HASH_A}","len":1}}"#)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "absolute removed path",
            index_json(r#""/etc/passwd""#, "", "", ""),
            "absolute",
        ),
        (
            "removed path outside",
            index_json(r#""../x""#, "", "", ""),
            "'..'",
        ),
        (
            "dot-dot dir",
            index_json("", r#""../outside""#, "", ""),
            "'..'",
        ),
        (
            "inner dot-dot",
            index_json("", r#""a""#, "", &add("a/../../x")),
            "'..'",
        ),
        (
            "backslash",
            index_json("", "", "", &add(r"..\\outside")),
            "backslash",
        ),
        (
            "empty component",
            index_json("", r#""a//b""#, "", ""),
            "empty component",
        ),
        (
            "symlink escaping",
            index_json("", "", r#"{"path":"l","target":"../.."}"#, ""),
            "outside the build root",
        ),
        (
            "absolute symlink",
            index_json("", "", r#"{"path":"l","target":"/etc"}"#, ""),
            "absolute",
        ),
        (
            "symlink path outside",
            index_json("", "", r#"{"path":"../l","target":"x"}"#, ""),
            "'..'",
        ),
        (
            "file below a symlink",
            index_json("", "", r#"{"path":"l","target":"d"}"#, &add("l/x")),
            "no parent directory",
        ),
        (
            "copy from outside",
            index_json(
                "",
                "",
                "",
                r#"{"op":"copy","path":"x","from":"../etc/passwd"}"#,
            ),
            "'..'",
        ),
        (
            "patch base outside",
            index_json(
                "",
                "",
                "",
                &format!(
                    r#"{{"op":"patch","path":"x","base":"/etc/shadow","size":1,"blake3":"{HASH_A}","len":1}}"#
                ),
            ),
            "absolute",
        ),
        (
            "op for a path outside",
            index_json("", "", "", &add("../x")),
            "'..'",
        ),
        ("op for the root", index_json("", "", "", &add("")), "empty"),
    ];
    let temp = Temp::new();
    let old = temp.tree("old", &Model::new());
    let source = empty_manifest();
    for (name, json, expected) in cases {
        // The header's source digest is that of the (empty) source, so that the path checks,
        // not the digest check, are what refuses the package. Paths are checked on reading;
        // what needs the source (a file below a symlink) when the target manifest is rebuilt.
        let body = if json.contains(r#""len":1"#) {
            &b"x"[..]
        } else {
            b""
        };
        let bytes = assemble(source.tree_digest(), TreeDigest([0; 32]), &json, body);
        let error = match Package::from_bytes(bytes) {
            Err(error) => error,
            Ok(package) => {
                let out = temp.path("out");
                let error = apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default())
                    .expect_err(name);
                assert!(!out.exists(), "{name}");
                assert!(package.target_manifest(&source).is_err(), "{name}");
                error
            }
        };
        let message = error.to_string();
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn an_install_whose_folder_became_an_outside_symlink_is_refused() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let package = package(&create(&old, &new));
    let source = scan(&old).unwrap();

    // `data` is replaced by a symlink to a folder outside holding the same files, so every
    // size and hash check through the link would pass.
    let outside = temp.tree("outside", &{
        let mut outside = Model::new();
        for (path, node) in &old_model {
            if let Some(rest) = path.strip_prefix("data/") {
                outside.insert(rest.to_owned(), node.clone());
            }
        }
        outside
    });
    let outside_before = scan(&outside).unwrap();
    let install = temp.tree("install", &old_model);
    fs::remove_dir_all(install.join("data")).unwrap();
    symlink(&outside, install.join("data")).unwrap();

    // The check of the install stops at `data` itself: the source says it is a folder.
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(matches!(error, InstallError::NotSource { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("\"data\" should be a folder but is a symlink"),
        "{error}"
    );
    assert_eq!(scan(&outside).unwrap(), outside_before);
    assert!(install.join("data").is_symlink());

    // Reading an old tree through such a link is refused too.
    let out = temp.path("out");
    let error =
        apply_to_dir(&install, &source, &package, &out, &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(error, TreeDeltaError::Symlink { ref path, .. } if path == "data"),
        "{error}"
    );
    assert!(!out.exists());

    // A friend's symlink to elsewhere where the new version makes a folder is in the way;
    // nothing is written through it.
    let linked = temp.tree("linked", &old_model);
    symlink(&outside, linked.join("assets")).unwrap();
    let error =
        update::apply_delta(&linked, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(
        matches!(error, InstallError::Conflict { ref path, .. } if path == "assets"),
        "{error}"
    );
    assert_eq!(scan(&outside).unwrap(), outside_before);

    // A staging folder replaced by a symlink to elsewhere is refused, not written through.
    let clean = temp.tree("clean", &old_model);
    let elsewhere = temp.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, temp.path(".clean.mist-staging")).unwrap();
    let error =
        update::apply_delta(&clean, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(matches!(error, InstallError::Symlink { .. }), "{error}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(scan(&clean).unwrap(), scan(&old).unwrap());
}

// ---------------------------------------------------------------------------------------
// Installs: what is refused, what is kept.

#[test]
fn untracked_files_in_the_way_are_refused_and_kept() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let package = package(&create(&old, &new));
    let source = scan(&old).unwrap();

    // A friend's file where the new version puts one.
    let install = temp.tree("install", &old_model);
    fs::write(install.join("data/level2.pak"), b"my mod").unwrap();
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(
        matches!(error, InstallError::Conflict { ref path, .. } if path == "data/level2.pak"),
        "{error}"
    );
    assert_eq!(
        fs::read(install.join("data/level2.pak")).unwrap(),
        b"my mod"
    );

    // A friend's file inside a folder the new version turns into a file.
    let mut old_with_dir = old_model.clone();
    old_with_dir.insert("plugins".to_owned(), Node::Dir);
    old_with_dir.insert("plugins/official.so".to_owned(), file(b"so"));
    let mut new_with_file = new_model.clone();
    new_with_file.insert("plugins".to_owned(), file(b"now a file"));
    let (package, source) = package_of(&temp, "plugins", &old_with_dir, &new_with_file);
    let install = temp.tree("install-plugins", &old_with_dir);
    fs::write(install.join("plugins/mine.so"), b"mine").unwrap();
    let before = scan(&install).unwrap();
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(
        matches!(error, InstallError::Conflict { ref path, .. } if path == "plugins/mine.so"),
        "{error}"
    );
    assert_eq!(scan(&install).unwrap(), before);

    // Without the friend's file it goes through.
    fs::remove_file(install.join("plugins/mine.so")).unwrap();
    update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    assert_eq!(fs::read(install.join("plugins")).unwrap(), b"now a file");
}

/// A package from `old` to `new`, and the source manifest it applies with.
fn package_of(temp: &Temp, name: &str, old: &Model, new: &Model) -> (Package, Manifest) {
    let old = temp.tree(&format!("{name}-old"), old);
    let new = temp.tree(&format!("{name}-new"), new);
    (package(&create(&old, &new)), scan(&old).unwrap())
}

#[test]
fn folders_and_symlinks_swap_places_in_an_install() {
    // A folder becomes a symlink and a symlink becomes a folder, and back: the folders the
    // commit touched are then symlinks, which must not stop it (nor be followed).
    let temp = Temp::new();
    let v0 = model(&[
        ("d", Node::Dir),
        ("d/f", file(b"in a folder")),
        ("s", Node::Symlink("t".to_owned())),
        ("t", Node::Dir),
        ("t/g", file(b"target")),
    ]);
    let v1 = model(&[
        ("d", Node::Symlink("t".to_owned())),
        ("s", Node::Dir),
        ("s/h", file(b"now a folder")),
        ("t", Node::Dir),
        ("t/g", file(b"target")),
    ]);
    let (forward, v0_manifest) = package_of(&temp, "forward", &v0, &v1);
    let (backward, v1_manifest) = package_of(&temp, "backward", &v1, &v0);
    let install = temp.tree("install", &v0);
    add_untracked(&install);
    update::apply_delta(&install, &v0_manifest, &forward, &InstallOptions::default()).unwrap();
    assert_eq!(scan_install(&install), v1_manifest);
    update::apply_delta(
        &install,
        &v1_manifest,
        &backward,
        &InstallOptions::default(),
    )
    .unwrap();
    assert_eq!(scan_install(&install), v0_manifest);
}

#[test]
fn a_friends_files_in_a_removed_folder_keep_it() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);
    let install = temp.tree("install", &old_model);
    fs::write(install.join("gone/notes.txt"), b"mine").unwrap();
    update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    assert_eq!(fs::read(install.join("gone/notes.txt")).unwrap(), b"mine");
    assert!(!install.join("gone/inner.txt").exists());
}

#[test]
fn an_install_at_another_version_is_refused_unchanged() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);

    let mut modified = old_model.clone();
    modified.insert("data/old.txt".to_owned(), file(b"going awaz"));
    let install = temp.tree("install", &modified);
    // Same size: found only by hashing, which `verify_unchanged` turns on for every file and
    // which files the update reads always get.
    let before = scan(&install).unwrap();
    let options = InstallOptions {
        verify_unchanged: true,
        ..InstallOptions::default()
    };
    let error = update::apply_delta(&install, &source, &package, &options).unwrap_err();
    assert!(matches!(error, InstallError::NotSource { .. }), "{error}");
    assert_eq!(scan(&install).unwrap(), before);

    let mut missing = old_model.clone();
    missing.remove("bin/game");
    let install = temp.tree("install-missing", &missing);
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(error.to_string().contains("bin/game"), "{error}");

    // A changed file the update patches is caught by the file delta's source check, before
    // the commit.
    let mut changed_base = old_model.clone();
    if let Some(Node::File { content, .. }) = changed_base.get_mut("data/level1.pak") {
        content[0] ^= 1;
    }
    let install = temp.tree("install-base", &changed_base);
    let before = scan(&install).unwrap();
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(error.to_string().contains("level1.pak"), "{error}");
    assert_eq!(scan(&install).unwrap(), before);
}

#[test]
fn not_enough_space_is_refused_before_staging() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);
    let install = temp.tree("install", &old_model);
    let options = InstallOptions {
        free_space_margin: u64::MAX / 2,
        ..InstallOptions::default()
    };
    let error = update::apply_delta(&install, &source, &package, &options).unwrap_err();
    assert!(matches!(error, InstallError::NoSpace { .. }), "{error}");
    assert_eq!(
        scan(&install).unwrap(),
        scan(&temp.tree("old", &old_model)).unwrap()
    );
}

#[test]
fn a_second_updater_is_turned_away() {
    use std::os::fd::AsRawFd;
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);
    let install = temp.tree("install", &old_model);
    let lock = fs::File::create(temp.path(".install.mist-lock")).unwrap();
    // SAFETY: a valid fd.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let error =
        update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap_err();
    assert!(matches!(error, InstallError::Busy { .. }), "{error}");
    drop(lock);
    update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
}

#[test]
fn the_lock_and_the_staging_folder_sit_beside_the_real_install_folder() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);
    let install = temp.tree("install", &old_model);
    let lock = location::lock_path(&install).unwrap();
    assert_eq!(lock.file_name().unwrap(), ".install.mist-lock");
    assert_eq!(
        lock.parent(),
        location::staging_path(&install).unwrap().parent()
    );
    update::apply_delta(&install, &source, &package, &InstallOptions::default()).unwrap();
    // The lock outlives the update, so that two processes never lock different files.
    assert!(lock.is_file());
    let link = temp.path("link");
    symlink(&install, &link).unwrap();
    assert_eq!(location::lock_path(&link).unwrap(), lock);
    assert_eq!(
        location::staging_path(&link).unwrap(),
        location::staging_path(&install).unwrap()
    );
}

#[test]
fn packs_install_fresh_and_update() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let old_manifest = scan(&old).unwrap();
    let new_manifest = scan(&new).unwrap();
    let pack_of = |root: &Path, manifest: &Manifest| {
        let mut bytes = Vec::new();
        pack::write::write_pack(root, manifest, &mut bytes, 3).unwrap();
        bytes
    };
    let old_pack = pack_of(&old, &old_manifest);
    let new_pack = pack_of(&new, &new_manifest);

    let install = temp.path("install");
    let empty = Manifest {
        entries: Vec::new(),
    };
    let mut n_unpacked = 0;
    let report = update::apply_pack(
        &install,
        &empty,
        &old_manifest,
        &mut |dest: &Path| {
            n_unpacked += 1;
            pack::read::unpack(&old_pack[..], &old_manifest, dest).map_err(Into::into)
        },
        &InstallOptions::default(),
    )
    .unwrap();
    assert_eq!(report.outcome, Outcome::Updated);
    assert_eq!(scan(&install).unwrap(), old_manifest);

    add_untracked(&install);
    update::apply_pack(
        &install,
        &old_manifest,
        &new_manifest,
        &mut |dest: &Path| {
            n_unpacked += 1;
            pack::read::unpack(&new_pack[..], &new_manifest, dest).map_err(Into::into)
        },
        &InstallOptions::default(),
    )
    .unwrap();
    assert_eq!(scan_install(&install), new_manifest);
    assert_eq!(n_unpacked, 2);

    // A pack that does not match the manifest is refused by the hook and changes nothing.
    let error = update::apply_pack(
        &install,
        &new_manifest,
        &old_manifest,
        &mut |dest: &Path| {
            pack::read::unpack(&new_pack[..], &old_manifest, dest).map_err(Into::into)
        },
        &InstallOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, InstallError::Unpack(_)), "{error}");
    assert_eq!(scan_install(&install), new_manifest);
    assert_eq!(recover::recover(&install).unwrap(), Recovery::Clean);
}

#[test]
fn recover_without_an_update_does_nothing() {
    let temp = Temp::new();
    let (old_model, _) = sample_versions();
    let install = temp.tree("install", &old_model);
    assert_eq!(recover::recover(&install).unwrap(), Recovery::Clean);
    assert_eq!(recover::discard_staging(&install).unwrap(), Recovery::Clean);
    assert_eq!(
        scan(&install).unwrap(),
        scan(&temp.tree("old", &old_model)).unwrap()
    );
}

#[test]
fn the_index_names_every_changed_file_once() {
    let temp = Temp::new();
    let (old, bytes) = sample_package(&temp);
    let source = scan(&old).unwrap();
    let package = package(&bytes);
    let index = package.index();
    let paths: Vec<&str> = index.ops.iter().map(Op::path).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paths, sorted);
    for op in &index.ops {
        if let Some(range) = op.blob_range() {
            let blob = package.blob(op).unwrap();
            assert_eq!(blob.len() as u64, range.end - range.start);
            check_blob(&source, &package.members(op), &blob).unwrap();
        }
    }
    // A blob checked against the wrong operation is refused.
    let payload: Vec<&Op> = index
        .ops
        .iter()
        .filter(|op| op.blob_range().is_some())
        .collect();
    assert!(payload.len() >= 2);
    let blob = package.blob(payload[0]).unwrap();
    assert!(check_blob(&source, &[payload[1]], &blob).is_err());
    // Checked against a source whose base differs, a patch's blob is refused too.
    let patch = index
        .ops
        .iter()
        .find(|op| matches!(op, Op::Patch { .. }))
        .unwrap();
    let mut other_source = source.clone();
    for entry in &mut other_source.entries {
        if let EntryKind::File { blake3, .. } = &mut entry.kind {
            blake3.0[0] ^= 1;
        }
    }
    let error = check_blob(&other_source, &[patch], &package.blob(patch).unwrap()).unwrap_err();
    assert!(
        error.to_string().contains("belongs to other files"),
        "{error}"
    );
    // Unchanged files have no operation; the JSON has no field the docs do not list.
    assert!(index.op("bin/game").is_none());
    let mut stored = Vec::new();
    let range = package.header().index_range();
    zstd::stream::read::Decoder::new(&bytes[range.start as usize..range.end as usize])
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dirs", "ops", "removed", "symlinks"]);
    // The source manifest is not in the index, and only changed entries of the target are.
    assert!(!String::from_utf8_lossy(&stored).contains("bin/game"));
    assert_eq!(
        index.symlinks,
        [Symlink {
            path: "lib".to_owned(),
            target: "docs".to_owned()
        }]
    );
    assert!(matches!(
        package
            .target_manifest(&source)
            .unwrap()
            .entries
            .iter()
            .find(|e| e.path == "lib")
            .unwrap()
            .kind,
        EntryKind::Symlink { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// The index follows the change, not the tree; the source manifest comes from the caller.

#[test]
fn the_index_grows_with_the_change_not_the_tree() {
    let temp = Temp::new();
    let mut old_model = Model::new();
    for dir in 0..10 {
        old_model.insert(format!("assets{dir:02}"), Node::Dir);
        for idx in 0..50 {
            old_model.insert(
                format!("assets{dir:02}/file{idx:03}.dat"),
                file(&content((dir * 100 + idx) as u64, 300 + idx * 7)),
            );
        }
    }
    let mut new_model = old_model.clone();
    for path in ["assets03/file007.dat", "assets08/file042.dat"] {
        if let Some(Node::File { content, .. }) = new_model.get_mut(path) {
            content[10..20].copy_from_slice(b"changed!!!");
        }
    }
    let old = temp.tree("old", &old_model);
    let new = temp.tree("new", &new_model);
    let source = scan(&old).unwrap();
    assert_eq!(source.n_files(), 500);
    let package = package(&create(&old, &new));
    let stats = package.stats(&source).unwrap();
    assert_eq!(stats.patched.files, 2, "{stats:?}");
    assert_eq!(stats.unchanged.files, 498, "{stats:?}");
    // Two ops, each a path, a size, a hash and a length: about 200 bytes. The full manifests
    // of format version 1 made this about 18 KB, growing with every file of the tree.
    assert!(stats.index_bytes < 1024, "{stats:?}");
    assert!(stats.index_raw_bytes < 1024, "{stats:?}");
    let out = temp.path("out");
    apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default()).unwrap();
    assert_eq!(scan(&out).unwrap(), scan(&new).unwrap());
}

#[test]
fn a_wrong_source_manifest_is_refused_before_anything_is_written() {
    let temp = Temp::new();
    let (old_model, new_model) = sample_versions();
    let (package, source) = package_of(&temp, "v", &old_model, &new_model);
    let old = temp.tree("old", &old_model);

    // Another version's manifest (here the target's), and one differing in one hash.
    let target = package.target_manifest(&source).unwrap();
    let mut one_hash_off = source.clone();
    if let Some(EntryKind::File { blake3, .. }) = one_hash_off
        .entries
        .iter_mut()
        .find(|e| e.path == "docs/readme.txt")
        .map(|e| &mut e.kind)
    {
        blake3.0[31] ^= 1;
    }
    for wrong in [&target, &one_hash_off, &empty_manifest()] {
        let check = |error: TreeDeltaError| {
            assert!(
                matches!(error, TreeDeltaError::WrongSource { expected, found }
                    if expected == package.header().source && found == wrong.tree_digest()),
                "{error}"
            );
            assert!(error.to_string().contains("source manifest"), "{error}");
        };
        check(package.target_manifest(wrong).unwrap_err());
        check(package.stats(wrong).unwrap_err());
        let out = temp.path("out");
        check(apply_to_dir(&old, wrong, &package, &out, &ApplyOptions::default()).unwrap_err());
        assert!(!out.exists());
        assert!(
            fs::read_dir(temp.dir.path()).unwrap().all(|entry| !entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("out")),
            "a temporary output folder was made"
        );

        let install = temp.tree("install", &old_model);
        add_untracked(&install);
        let before = scan(&install).unwrap();
        let error =
            update::apply_delta(&install, wrong, &package, &InstallOptions::default()).unwrap_err();
        match error {
            InstallError::Delta(error) => check(error),
            other => panic!("{other}"),
        }
        assert_eq!(scan(&install).unwrap(), before);
        assert!(!location::staging_path(&install).unwrap().exists());
        fs::remove_dir_all(&install).unwrap();
    }

    // Replay checks each step's source: a base manifest that is not the chain's start.
    let error = replay::replay(
        &old,
        &one_hash_off,
        &[package],
        &temp.path("never"),
        &target,
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(error, ReplayError::Broken { step: 0, .. }),
        "{error}"
    );
    assert!(!temp.path("never").exists());
}

/// Re-encodes `bytes`'s index after `edit` changed its JSON, with a consistent header, so
/// that only the rebuilt target manifest can notice.
fn with_index(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let package = package(bytes);
    let mut json = serde_json::to_value(package.index()).unwrap();
    edit(&mut json);
    let body = &bytes[package.header().body_start() as usize..];
    assemble(
        package.header().source,
        package.header().target,
        &serde_json::to_string(&json).unwrap(),
        body,
    )
}

#[test]
fn tampered_changed_entries_are_refused_before_anything_is_written() {
    let temp = Temp::new();
    let (old_model, _) = sample_versions();
    let (old, bytes) = sample_package(&temp);
    let source = scan(&old).unwrap();
    let other_hash = "ab".repeat(32);
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a symlink retargeted",
            Box::new(|json| json["symlinks"][0]["target"] = "bin".into()),
        ),
        (
            "a symlink change dropped",
            Box::new(|json| {
                json["symlinks"].as_array_mut().unwrap().clear();
            }),
        ),
        (
            "a directory added",
            Box::new(|json| json["dirs"].as_array_mut().unwrap().push("zz".into())),
        ),
        (
            "a removal dropped",
            Box::new(|json| {
                json["removed"].as_array_mut().unwrap().remove(1);
            }),
        ),
        (
            "an added file's hash",
            Box::new(move |json| {
                let ops = json["ops"].as_array_mut().unwrap();
                let add = ops.iter_mut().find(|op| op["op"] == "add").unwrap();
                add["blake3"] = other_hash.clone().into();
            }),
        ),
        (
            "a patched file's size",
            Box::new(|json| {
                let ops = json["ops"].as_array_mut().unwrap();
                let patch = ops.iter_mut().find(|op| op["op"] == "patch").unwrap();
                patch["size"] = 12345.into();
            }),
        ),
        (
            "a copy made executable",
            Box::new(|json| {
                let ops = json["ops"].as_array_mut().unwrap();
                let copy = ops.iter_mut().find(|op| op["op"] == "copy").unwrap();
                copy["executable"] = true.into();
            }),
        ),
        (
            "a mode change dropped",
            Box::new(|json| {
                json["ops"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|op| op["op"] != "mode");
            }),
        ),
    ];
    for (name, edit) in edits {
        let tampered = with_index(&bytes, edit);
        // The index is consistent on its own: it reads.
        let package = Package::from_bytes(tampered).unwrap_or_else(|e| panic!("{name}: {e}"));
        let error = package.target_manifest(&source).unwrap_err();
        assert!(
            matches!(error, TreeDeltaError::Corrupt(ref message)
                if message.contains("does not match the header's target digest")),
            "{name}: {error}"
        );
        let out = temp.path("out");
        let error =
            apply_to_dir(&old, &source, &package, &out, &ApplyOptions::default()).unwrap_err();
        assert!(error.to_string().contains("corrupt"), "{name}: {error}");
        assert!(!out.exists(), "{name}");
        let install = temp.tree("install", &old_model);
        let before = scan(&install).unwrap();
        let error = update::apply_delta(&install, &source, &package, &InstallOptions::default())
            .unwrap_err();
        assert!(error.to_string().contains("corrupt"), "{name}: {error}");
        assert_eq!(scan(&install).unwrap(), before, "{name}");
        assert!(
            !location::staging_path(&install).unwrap().exists(),
            "{name}"
        );
        fs::remove_dir_all(&install).unwrap();
    }

    // Edits that do not fit the source are refused by what they name.
    let misfits: Vec<(&str, Edit, &str)> = vec![
        (
            "removing a path the source lacks",
            Box::new(|json| json["removed"].as_array_mut().unwrap().push("zz".into())),
            "which the source does not have",
        ),
        (
            "copying from a path the source lacks",
            Box::new(|json| {
                let ops = json["ops"].as_array_mut().unwrap();
                let copy = ops.iter_mut().find(|op| op["op"] == "copy").unwrap();
                copy["from"] = "nowhere".into();
            }),
            "not a file of the source",
        ),
        (
            "a directory left without its removed parent",
            Box::new(|json| {
                json["removed"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|path| path != "gone");
            }),
            "does not match the header's target digest",
        ),
        (
            "a new directory dropped",
            Box::new(|json| {
                json["dirs"].as_array_mut().unwrap().remove(0);
            }),
            "has no parent directory entry \"assets\"",
        ),
        (
            "a file below a removed folder",
            Box::new(|json| {
                json["removed"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|path| path != "gone/inner.txt");
            }),
            "not well formed",
        ),
    ];
    for (name, edit, expected) in misfits {
        let package =
            Package::from_bytes(with_index(&bytes, edit)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let error = package.target_manifest(&source).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
}
