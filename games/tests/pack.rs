//! Packs on real files in temp dirs: round trips over random trees, determinism,
//! corruption anywhere in a pack, and hand-built hostile tars.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use mist_games::manifest::{Entry, EntryKind, FileHash, Manifest, ManifestError};
use mist_games::pack::read::{unpack, verify_pack};
use mist_games::pack::write::write_pack;
use mist_games::pack::{EntryProblem, PackError, tar_len};
use mist_games::scan::scan;
use proptest::prelude::*;

use common::{Model, Node, materialize};

// ---------------------------------------------------------------------------------------
// Building trees and packs.

/// Names include one long enough that two levels need a GNU long-name entry.
const NAMES: &[&str] = &[
    "a",
    "b",
    "c.txt",
    "é",
    "a-rather-long-directory-name-that-pushes-paths-past-the-tar-name-field",
];

fn node() -> impl Strategy<Value = Node> {
    let small = prop::collection::vec(any::<u8>(), 0..600);
    // Compressible and a little over the copy buffer, so files span several reads.
    let large = (any::<u8>(), 256 * 1024..270 * 1024usize)
        .prop_map(|(seed, len)| (0..len).map(|i| (i / 7) as u8 ^ seed).collect());
    let contents = prop_oneof![12 => small, 1 => large];
    let long_target = format!("{}/{}", NAMES[4], NAMES[4]);
    prop_oneof![
        6 => (contents, any::<bool>())
            .prop_map(|(contents, executable)| Node::File { contents, executable }),
        2 => Just(Node::Dir),
        1 => prop::sample::select(vec!["a".to_owned(), "b/c.txt".to_owned(), ".".to_owned(),
                                       "missing".to_owned(), long_target])
            .prop_map(|target| Node::Link { target }),
    ]
}

fn tree() -> impl Strategy<Value = Model> {
    common::tree(NAMES, node(), 0..16)
}

fn pack(root: &Path, manifest: &Manifest) -> Vec<u8> {
    let mut out = Vec::new();
    let info = write_pack(root, manifest, &mut out, 3).unwrap();
    assert_eq!(info.pack_len, out.len() as u64);
    assert_eq!(info.tar_len, tar_len(manifest));
    out
}

/// A fixed tree with every kind of entry, long names, and files big enough that a pack
/// has many compressed blocks.
fn sample_model() -> Model {
    let long_dir = NAMES[4];
    let mut model = Model::new();
    let mut add_file = |path: &str, contents: Vec<u8>, executable: bool| {
        model.insert(
            path.to_owned(),
            Node::File {
                contents,
                executable,
            },
        );
    };
    add_file("bin/game", b"#!/bin/sh\necho game\n".to_vec(), true);
    add_file("empty", Vec::new(), false);
    add_file("data/text.txt", b"all work and no play ".repeat(400), false);
    let mut state = 0x9e37_79b9_u32;
    let noise = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    add_file("data/noise.bin", noise, false);
    add_file(
        &format!("{long_dir}/{long_dir}/deep.txt"),
        b"deep".to_vec(),
        false,
    );
    model.insert("bin".to_owned(), Node::Dir);
    model.insert("data".to_owned(), Node::Dir);
    model.insert("data/empty-dir".to_owned(), Node::Dir);
    model.insert(long_dir.to_owned(), Node::Dir);
    model.insert(format!("{long_dir}/{long_dir}"), Node::Dir);
    model.insert(
        "data/game-link".to_owned(),
        Node::Link {
            target: "../bin/game".to_owned(),
        },
    );
    model.insert(
        "deep-link".to_owned(),
        Node::Link {
            target: format!("{long_dir}/{long_dir}/deep.txt"),
        },
    );
    model
}

/// A temp dir with the staging dir `dest` (not created) and a sibling `canary/` holding
/// one file, to check that nothing outside `dest` is touched.
struct Staging {
    tmp: tempfile::TempDir,
}

impl Staging {
    fn new() -> Staging {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("canary")).unwrap();
        fs::write(tmp.path().join("canary/file"), b"canary").unwrap();
        Staging { tmp }
    }

    fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }

    fn canary(&self) -> PathBuf {
        self.tmp.path().join("canary")
    }

    /// Asserts that the temp dir holds only `dest` and the untouched canary.
    fn assert_nothing_outside_dest(&self) {
        let mut names: Vec<String> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|child| child.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names.retain(|name| name != "dest");
        assert_eq!(names, ["canary"]);
        let canary: Vec<_> = fs::read_dir(self.canary()).unwrap().collect();
        assert_eq!(canary.len(), 1);
        assert_eq!(fs::read(self.canary().join("file")).unwrap(), b"canary");
    }
}

// ---------------------------------------------------------------------------------------
// Round trips and determinism.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// `manifest(unpack(pack(dir))) == manifest(dir)`, and the checks of `verify_pack`
    /// agree with `unpack`.
    #[test]
    fn random_trees_round_trip(model in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("build");
        materialize(&root, &model, false);
        let manifest = scan(&root).unwrap();
        let pack_bytes = pack(&root, &manifest);
        verify_pack(&pack_bytes[..], &manifest).unwrap();
        let dest = tmp.path().join("dest");
        unpack(&pack_bytes[..], &manifest, &dest).unwrap();
        let unpacked = scan(&dest).unwrap();
        prop_assert_eq!(unpacked.tree_digest(), manifest.tree_digest());
        prop_assert_eq!(unpacked, manifest);
    }
}

#[test]
fn sample_tree_round_trips_with_exact_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);
    let dest = tmp.path().join("dest");
    unpack(&pack_bytes[..], &manifest, &dest).unwrap();
    assert_eq!(scan(&dest).unwrap(), manifest);
    let mode = |rel: &str| fs::metadata(dest.join(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("bin/game"), 0o755);
    assert_eq!(mode("data/text.txt"), 0o644);
    assert_eq!(mode("data/empty-dir"), 0o755);
}

#[test]
fn empty_build_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    fs::create_dir(&root).unwrap();
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);
    // An existing empty directory is an acceptable destination too.
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    unpack(&pack_bytes[..], &manifest, &dest).unwrap();
    assert_eq!(scan(&dest).unwrap(), manifest);
}

/// Packs over 32 MiB use a 128 MiB window with long-distance matching, so a file repeated
/// 17 MiB apart is stored about once, and the reader accepts that window.
#[test]
fn large_packs_match_across_a_long_window() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    fs::create_dir(&root).unwrap();
    let mut state = 0x2545_f491_u32;
    let chunk: Vec<u8> = (0..17 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    fs::write(root.join("one.bin"), &chunk).unwrap();
    fs::write(root.join("two.bin"), &chunk).unwrap();
    let manifest = scan(&root).unwrap();
    let mut pack_bytes = Vec::new();
    let info = write_pack(&root, &manifest, &mut pack_bytes, 1).unwrap();
    assert!(
        info.pack_len * 10 < info.tar_len * 6,
        "{} of {} bytes",
        info.pack_len,
        info.tar_len
    );
    let dest = tmp.path().join("dest");
    unpack(&pack_bytes[..], &manifest, &dest).unwrap();
    assert_eq!(scan(&dest).unwrap(), manifest);
}

/// The same manifest and contents give the same bytes, whatever the order the files were
/// created in, their times, owners and exact modes.
#[test]
fn packs_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let model = sample_model();
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    materialize(&one, &model, false);
    materialize(&two, &model, true);
    let old_time =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let mut changed_owner = false;
    for (rel, node) in &model {
        let path = two.join(rel);
        if let Node::File { executable, .. } = node {
            let mode = if *executable { 0o700 } else { 0o600 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old_time)
                .unwrap();
        }
        // Changing the owner needs root; where the tests run unprivileged only times and
        // modes differ.
        changed_owner |= std::os::unix::fs::lchown(&path, Some(1234), Some(1234)).is_ok();
    }
    eprintln!("owners changed: {changed_owner}");
    let manifest = scan(&one).unwrap();
    assert_eq!(scan(&two).unwrap(), manifest);
    let first = pack(&one, &manifest);
    assert_eq!(pack(&one, &manifest), first, "packing twice");
    assert_eq!(pack(&two, &manifest), first, "packing a copy");
}

/// The tar inside a pack carries no time, owner or mode that the manifest does not fix.
#[test]
fn tar_headers_are_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let tar_bytes = zstd::decode_all(&pack(&root, &manifest)[..]).unwrap();
    assert_eq!(tar_bytes.len() as u64, tar_len(&manifest));
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut paths = Vec::new();
    for tar_entry in archive.entries().unwrap() {
        let tar_entry = tar_entry.unwrap();
        let header = tar_entry.header();
        assert!(header.as_gnu().is_some());
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        let path = String::from_utf8(tar_entry.path_bytes().into_owned()).unwrap();
        let expected_mode = match &manifest.entries[paths.len()].kind {
            EntryKind::Dir => 0o755,
            EntryKind::File { executable, .. } => {
                if *executable {
                    0o755
                } else {
                    0o644
                }
            }
            EntryKind::Symlink { .. } => 0o777,
        };
        assert_eq!(header.mode().unwrap(), expected_mode, "{path}");
        paths.push(path);
    }
    let manifest_paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, manifest_paths);
}

#[test]
fn writer_refuses_a_build_that_changed_since_the_scan() {
    type Change = fn(&Path);
    let cases: &[(&str, Change)] = &[
        ("same size, new bytes", |root| {
            fs::write(root.join("bin/game"), b"#!/bin/sh\necho GAME\n").unwrap()
        }),
        ("grown", |root| fs::write(root.join("empty"), b"x").unwrap()),
        ("exec bit", |root| {
            fs::set_permissions(root.join("bin/game"), fs::Permissions::from_mode(0o644)).unwrap()
        }),
        ("file replaced by a symlink", |root| {
            fs::remove_file(root.join("empty")).unwrap();
            symlink("bin/game", root.join("empty")).unwrap();
        }),
        ("symlink retargeted", |root| {
            fs::remove_file(root.join("deep-link")).unwrap();
            symlink("empty", root.join("deep-link")).unwrap();
        }),
        ("dir replaced by a file", |root| {
            fs::remove_dir(root.join("data/empty-dir")).unwrap();
            fs::write(root.join("data/empty-dir"), b"").unwrap();
        }),
    ];
    for (name, change) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("build");
        materialize(&root, &sample_model(), false);
        let manifest = scan(&root).unwrap();
        change(&root);
        let result = write_pack(&root, &manifest, Vec::new(), 3);
        assert!(
            matches!(result, Err(PackError::Changed { .. })),
            "{name}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Corruption.

/// Flips one bit at every position of a pack: the reader must fail, or produce exactly
/// the manifest. zstd ignores a few bits (an unused header flag, some bits of entropy
/// tables), so a handful of flips decode to the very same tar stream; those are accepted.
#[test]
fn bit_flips_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);
    let tar_bytes = zstd::decode_all(&pack_bytes[..]).unwrap();
    let mut n_accepted = 0;
    for position in 0..pack_bytes.len() {
        let mut damaged = pack_bytes.clone();
        damaged[position] ^= 1 << (position % 8);
        let verified = verify_pack(&damaged[..], &manifest);
        // Every flip is verified; the accepted ones and a sample of the others also go
        // through a real unpack.
        if verified.is_ok() || position % 23 == 0 {
            let staging = Staging::new();
            let unpacked = unpack(&damaged[..], &manifest, &staging.dest());
            assert_eq!(unpacked.is_ok(), verified.is_ok(), "flip at {position}");
            if unpacked.is_ok() {
                assert_eq!(scan(&staging.dest()).unwrap(), manifest);
                assert!(zstd::decode_all(&damaged[..]).unwrap() == tar_bytes);
                n_accepted += 1;
            }
            staging.assert_nothing_outside_dest();
        }
    }
    assert!(
        n_accepted * 100 < pack_bytes.len(),
        "{n_accepted} of {} flips accepted",
        pack_bytes.len()
    );
}

#[test]
fn truncations_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);
    let len = pack_bytes.len();
    let lengths = (0..len).step_by(7).chain(len.saturating_sub(16)..len);
    for cut in lengths {
        let result = verify_pack(&pack_bytes[..cut], &manifest);
        assert!(result.is_err(), "truncated to {cut} of {len}: {result:?}");
        if cut % 97 == 0 {
            let staging = Staging::new();
            assert!(unpack(&pack_bytes[..cut], &manifest, &staging.dest()).is_err());
            staging.assert_nothing_outside_dest();
        }
    }
}

#[test]
fn data_after_the_pack_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);
    let mut garbage = pack_bytes.clone();
    garbage.extend_from_slice(b"garbage");
    assert!(matches!(
        verify_pack(&garbage[..], &manifest),
        Err(PackError::Read(_))
    ));
    // A second, valid zstd frame is more decompressed data than the manifest allows.
    let mut two_frames = pack_bytes.clone();
    two_frames.extend_from_slice(&zstd::encode_all(&b"more"[..], 3).unwrap());
    assert!(matches!(
        verify_pack(&two_frames[..], &manifest),
        Err(PackError::TooLarge { .. })
    ));
    // The pack of another build.
    let other_manifest = Manifest {
        entries: manifest.entries[1..].to_vec(),
    };
    assert!(verify_pack(&pack_bytes[..], &other_manifest).is_err());
}

// ---------------------------------------------------------------------------------------
// Hostile tars, built header by header.

/// A tar stream written header by header, bypassing every check of the tar crate's
/// builder.
#[derive(Default)]
struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    fn header(mut self, name: &[u8], entry_type: u8, size: u64, link_name: &[u8]) -> RawTar {
        let mut header = tar::Header::new_gnu();
        let fields = header.as_old_mut();
        fields.name[..name.len()].copy_from_slice(name);
        fields.linkname[..link_name.len()].copy_from_slice(link_name);
        fields.linkflag = [entry_type];
        header.set_mode(0o644);
        header.set_size(size);
        header.set_cksum();
        self.bytes.extend_from_slice(header.as_bytes());
        self
    }

    fn data(mut self, data: &[u8]) -> RawTar {
        self.bytes.extend_from_slice(data);
        let padding = data.len().next_multiple_of(512) - data.len();
        self.bytes.extend(std::iter::repeat_n(0, padding));
        self
    }

    fn file(self, name: &str, contents: &[u8]) -> RawTar {
        self.header(name.as_bytes(), b'0', contents.len() as u64, b"")
            .data(contents)
    }

    fn dir(self, name: &str) -> RawTar {
        self.header(name.as_bytes(), b'5', 0, b"")
    }

    fn symlink(self, name: &str, target: &str) -> RawTar {
        self.header(name.as_bytes(), b'2', 0, target.as_bytes())
    }

    fn long_name(self, entry_type: u8, name: &[u8]) -> RawTar {
        let mut data = name.to_vec();
        data.push(0);
        self.header(b"././@LongLink", entry_type, data.len() as u64, b"")
            .data(&data)
    }

    fn compressed(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0; 1024]);
        zstd::encode_all(&self.bytes[..], 3).unwrap()
    }
}

fn file_entry(path: &str, contents: &[u8]) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::File {
            size: contents.len() as u64,
            executable: false,
            blake3: FileHash(*blake3::hash(contents).as_bytes()),
        },
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Dir,
    }
}

fn symlink_entry(path: &str, target: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Symlink {
            target: target.to_owned(),
        },
    }
}

/// Unpacks `pack_bytes` against `entries` into a fresh staging dir, expects an error that
/// `expected` accepts, and checks that nothing outside the staging dir changed.
fn check_refused(
    name: &str,
    entries: Vec<Entry>,
    pack_bytes: &[u8],
    expected: fn(&PackError) -> bool,
) {
    let manifest = Manifest { entries };
    let staging = Staging::new();
    let result = unpack(pack_bytes, &manifest, &staging.dest());
    match &result {
        Err(error) if expected(error) => {}
        other => panic!("{name}: unexpected result {other:?}"),
    }
    let verified = verify_pack(pack_bytes, &manifest);
    assert!(verified.is_err(), "{name}: verify_pack accepted it");
    staging.assert_nothing_outside_dest();
}

/// A hostile pack: name, manifest entries, pack bytes, and the error it must cause.
type Case = (&'static str, Vec<Entry>, Vec<u8>, fn(&PackError) -> bool);

fn problem(error: &PackError) -> Option<&EntryProblem> {
    match error {
        PackError::Entry { problem, .. } => Some(problem),
        _ => None,
    }
}

#[test]
fn path_escapes_are_refused() {
    let staging_probe = Staging::new();
    // An absolute path aimed at a real directory next to the staging dir.
    let absolute = format!("{}/pwned", staging_probe.canary().display());
    let cases: Vec<Case> = vec![
        (
            "parent dir",
            vec![file_entry("a", b"a")],
            RawTar::default().file("../evil", b"evil").compressed(),
            |e| problem(e) == Some(&EntryProblem::ParentDir),
        ),
        (
            "parent dir inside",
            vec![file_entry("a", b"a")],
            RawTar::default()
                .file("a/../../canary/file", b"evil")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::ParentDir),
        ),
        (
            "parent dir in a long name",
            // A long path in the manifest, so that a long name of this length is allowed.
            vec![
                dir_entry(&"d".repeat(120)),
                file_entry(&format!("{}/{}", "d".repeat(120), "f".repeat(40)), b"a"),
            ],
            RawTar::default()
                .long_name(
                    b'L',
                    format!("{}/../../../evil", "d".repeat(120)).as_bytes(),
                )
                .file("ignored", b"evil")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::ParentDir),
        ),
        (
            "absolute",
            vec![file_entry("a", b"a")],
            RawTar::default().file(&absolute, b"evil").compressed(),
            |e| problem(e) == Some(&EntryProblem::Absolute),
        ),
        (
            "symlink out of the root",
            vec![symlink_entry("a", "b"), dir_entry("b")],
            RawTar::default().symlink("a", "../canary").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::SymlinkTarget { .. })),
        ),
        (
            "absolute symlink",
            vec![symlink_entry("a", "b"), dir_entry("b")],
            RawTar::default().symlink("a", "/etc").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::SymlinkTarget { .. })),
        ),
        (
            "long symlink target out of the root",
            // A long target in the manifest, so that a long link name of this length is
            // allowed.
            vec![
                symlink_entry("a", &format!("{}b", "./".repeat(66))),
                dir_entry("b"),
            ],
            RawTar::default()
                .long_name(b'K', format!("{}../../canary", "./".repeat(60)).as_bytes())
                .symlink("a", "b")
                .compressed(),
            |e| matches!(problem(e), Some(EntryProblem::SymlinkTarget { .. })),
        ),
        (
            "write through a symlink",
            vec![symlink_entry("a", "b"), dir_entry("b")],
            RawTar::default()
                .symlink("a", "b")
                .dir("b")
                .file("a/y", b"through the link")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::NotInManifest),
        ),
        (
            "symlink replaced by a directory, then written into",
            vec![symlink_entry("a", "b"), dir_entry("b")],
            RawTar::default().symlink("a", "b").dir("a").compressed(),
            |e| problem(e) == Some(&EntryProblem::Duplicate),
        ),
        (
            "hard link to a file outside",
            vec![file_entry("a", b"a")],
            RawTar::default()
                .header(b"a", b'1', 0, b"../canary/file")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::HardLink),
        ),
        (
            "hard link inside",
            vec![file_entry("a", b"a"), file_entry("b", b"a")],
            RawTar::default()
                .file("a", b"a")
                .header(b"b", b'1', 0, b"a")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::HardLink),
        ),
    ];
    for (name, entries, pack_bytes, expected) in cases {
        check_refused(name, entries, &pack_bytes, expected);
    }
    staging_probe.assert_nothing_outside_dest();
}

/// A manifest that itself lets a link escape is refused before anything is read.
#[test]
fn escaping_manifests_are_refused() {
    let entries = vec![symlink_entry("a", "../canary")];
    let pack_bytes = RawTar::default().symlink("a", "../canary").compressed();
    check_refused("escaping manifest", entries, &pack_bytes, |e| {
        matches!(
            e,
            PackError::InvalidManifest(ManifestError::InvalidSymlink { .. })
        )
    });
    let entries = vec![symlink_entry("a", "b"), file_entry("a/y", b"y")];
    let pack_bytes = RawTar::default()
        .symlink("a", "b")
        .file("a/y", b"y")
        .compressed();
    check_refused("file under a symlink", entries, &pack_bytes, |e| {
        matches!(
            e,
            PackError::InvalidManifest(ManifestError::MissingParent { .. })
        )
    });
}

#[test]
fn hostile_entries_are_refused() {
    let a = || vec![file_entry("a", b"aaa")];
    let ab = || vec![file_entry("a", b"aaa"), file_entry("b", b"bbb")];
    let cases: Vec<Case> = vec![
        (
            "character device",
            a(),
            RawTar::default().header(b"a", b'3', 0, b"").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(t)) if t == "character device"),
        ),
        (
            "block device",
            a(),
            RawTar::default().header(b"a", b'4', 0, b"").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(_))),
        ),
        (
            "fifo",
            a(),
            RawTar::default().header(b"a", b'6', 0, b"").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(_))),
        ),
        (
            "pax header renaming the next entry",
            a(),
            RawTar::default()
                .header(b"PaxHeader/a", b'x', 20, b"")
                .data(b"20 path=../evil/xyz\n")
                .file("a", b"aaa")
                .compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(t)) if t.contains("pax")),
        ),
        (
            "GNU sparse file",
            a(),
            RawTar::default().header(b"a", b'S', 0, b"").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(_))),
        ),
        (
            "old-style regular file",
            a(),
            RawTar::default()
                .header(b"a", b'\0', 3, b"")
                .data(b"aaa")
                .compressed(),
            |e| matches!(problem(e), Some(EntryProblem::UnsupportedType(_))),
        ),
        (
            "larger than declared",
            a(),
            RawTar::default()
                .header(b"a", b'0', 1 << 40, b"")
                .data(b"aaa")
                .compressed(),
            |e| {
                problem(e)
                    == Some(&EntryProblem::Size {
                        expected: 3,
                        found: 1 << 40,
                    })
            },
        ),
        (
            "smaller than declared",
            a(),
            RawTar::default().file("a", b"aa").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::Size { .. })),
        ),
        (
            "huge long name",
            a(),
            RawTar::default()
                .header(b"././@LongLink", b'L', 1 << 40, b"")
                .data(&[b'a'; 600])
                .compressed(),
            |e| matches!(problem(e), Some(EntryProblem::Malformed(_))),
        ),
        (
            "long name with no entry",
            ab(),
            RawTar::default()
                .file("a", b"aaa")
                .long_name(b'L', b"b")
                .compressed(),
            |e| matches!(problem(e), Some(EntryProblem::Malformed(_))),
        ),
        (
            "wrong contents",
            a(),
            RawTar::default().file("a", b"aab").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::Hash { .. })),
        ),
        (
            "directory for a file",
            a(),
            RawTar::default().dir("a").compressed(),
            |e| {
                problem(e)
                    == Some(&EntryProblem::WrongType {
                        expected: "file",
                        found: "directory",
                    })
            },
        ),
        (
            "symlink for a file",
            a(),
            RawTar::default().symlink("a", "b").compressed(),
            |e| matches!(problem(e), Some(EntryProblem::WrongType { .. })),
        ),
        (
            "not in the manifest",
            a(),
            RawTar::default()
                .file("a", b"aaa")
                .file("c", b"c")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::NotInManifest),
        ),
        (
            "duplicate",
            ab(),
            RawTar::default()
                .file("a", b"aaa")
                .file("b", b"bbb")
                .file("a", b"aaa")
                .compressed(),
            |e| problem(e) == Some(&EntryProblem::Duplicate),
        ),
        (
            "missing first",
            ab(),
            RawTar::default().file("b", b"bbb").compressed(),
            |e| matches!(e, PackError::Missing { path } if path == "a"),
        ),
        (
            "missing last",
            ab(),
            RawTar::default().file("a", b"aaa").compressed(),
            |e| matches!(e, PackError::Missing { path } if path == "b"),
        ),
        (
            "name not UTF-8",
            a(),
            RawTar::default().header(b"\xff", b'0', 0, b"").compressed(),
            |e| problem(e) == Some(&EntryProblem::NotUtf8),
        ),
        (
            "ustar header",
            a(),
            {
                let mut header = tar::Header::new_ustar();
                header.set_path("a").unwrap();
                header.set_size(3);
                header.set_cksum();
                let mut raw = RawTar::default();
                raw.bytes.extend_from_slice(header.as_bytes());
                raw.data(b"aaa").compressed()
            },
            |e| matches!(problem(e), Some(EntryProblem::Malformed(_))),
        ),
        (
            "bad header checksum",
            a(),
            {
                let mut raw = RawTar::default().file("a", b"aaa");
                raw.bytes[0] = b'b';
                raw.compressed()
            },
            |e| matches!(e, PackError::Read(_)),
        ),
        (
            "not zstd",
            a(),
            RawTar::default().file("a", b"aaa").bytes,
            |e| matches!(e, PackError::Read(_)),
        ),
    ];
    for (name, entries, pack_bytes, expected) in cases {
        check_refused(name, entries, &pack_bytes, expected);
    }
}

/// Zeros compress to almost nothing; a pack that decompresses to far more than its
/// manifest implies is stopped one byte past the limit, with nothing written.
#[test]
fn decompression_bombs_are_stopped() {
    fn bomb(prefix: &[u8], n_zeros: usize) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder.write_all(prefix).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..n_zeros / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        encoder.finish().unwrap()
    }
    let valid_tar = {
        let mut raw = RawTar::default().file("a", b"aaa");
        raw.bytes.extend_from_slice(&[0; 1024]);
        raw.bytes
    };
    let big = 256 << 20;
    // A valid pack followed by a flood of zeros.
    let pack_bytes = bomb(&valid_tar, big);
    assert!(pack_bytes.len() < 64 * 1024, "{} bytes", pack_bytes.len());
    check_refused(
        "zeros after the pack",
        vec![file_entry("a", b"aaa")],
        &pack_bytes,
        |e| matches!(e, PackError::TooLarge { limit: 2048 }),
    );
    // Nothing but zeros: the end of the archive comes before the first entry.
    let pack_bytes = bomb(b"", big);
    check_refused(
        "only zeros",
        vec![file_entry("a", b"aaa")],
        &pack_bytes,
        |e| matches!(e, PackError::Missing { .. }),
    );
    check_refused("only zeros, empty build", Vec::new(), &pack_bytes, |e| {
        matches!(e, PackError::TooLarge { limit: 1024 })
    });
}

#[test]
fn destinations_must_be_empty_real_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("build");
    materialize(&root, &sample_model(), false);
    let manifest = scan(&root).unwrap();
    let pack_bytes = pack(&root, &manifest);

    let not_empty = tmp.path().join("not-empty");
    fs::create_dir(&not_empty).unwrap();
    fs::write(not_empty.join("keep"), b"keep").unwrap();
    let result = unpack(&pack_bytes[..], &manifest, &not_empty);
    assert!(
        matches!(result, Err(PackError::DestNotEmpty { .. })),
        "{result:?}"
    );
    assert_eq!(fs::read(not_empty.join("keep")).unwrap(), b"keep");

    let empty_target = tmp.path().join("empty-target");
    fs::create_dir(&empty_target).unwrap();
    let link = tmp.path().join("link");
    symlink(&empty_target, &link).unwrap();
    let result = unpack(&pack_bytes[..], &manifest, &link);
    assert!(
        matches!(result, Err(PackError::DestNotEmpty { .. })),
        "{result:?}"
    );
    assert_eq!(fs::read_dir(&empty_target).unwrap().count(), 0);

    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let result = unpack(&pack_bytes[..], &manifest, &file);
    assert!(
        matches!(result, Err(PackError::DestNotEmpty { .. })),
        "{result:?}"
    );
}
