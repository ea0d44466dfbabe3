//! Properties of `scan` and the tree digest over random file trees on disk.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mist_games::manifest::{Entry, EntryKind, FileHash, Manifest};
use mist_games::scan::scan;
use proptest::prelude::*;
use proptest::sample::Index;

use common::{Model, Node, materialize};

const NAMES: &[&str] = &["a", "b", "c.txt", "C", "d-1", "é"];

fn node() -> impl Strategy<Value = Node> {
    let small = prop::collection::vec(any::<u8>(), 0..300);
    // Big enough for the scanner to hash it with several threads.
    let large = (any::<u8>(), 1024 * 1024..1100 * 1024usize)
        .prop_map(|(seed, len)| (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect());
    let contents = prop_oneof![9 => small, 1 => large];
    prop_oneof![
        6 => (contents, any::<bool>())
            .prop_map(|(contents, executable)| Node::File { contents, executable }),
        2 => Just(Node::Dir),
        1 => prop::sample::select(&["a", "b/c.txt", ".", "missing"][..])
            .prop_map(|target| Node::Link { target: target.to_owned() }),
    ]
}

fn tree() -> impl Strategy<Value = Model> {
    common::tree(NAMES, node(), 0..20)
}

fn expected_manifest(model: &Model) -> Manifest {
    let entries = model
        .iter()
        .map(|(path, node)| Entry {
            path: path.clone(),
            kind: match node {
                Node::File {
                    contents,
                    executable,
                } => EntryKind::File {
                    size: contents.len() as u64,
                    executable: *executable,
                    blake3: FileHash(*blake3::hash(contents).as_bytes()),
                },
                Node::Dir => EntryKind::Dir,
                Node::Link { target } => EntryKind::Symlink {
                    target: target.clone(),
                },
            },
        })
        .collect();
    Manifest { entries }
}

/// One change to a build that must change its digest.
#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(Index),
    Append,
    Truncate,
    Rename,
    ToggleExecutable,
    AddEmptyDir,
    MoveIntoNewDir,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::FlipByte),
        Just(Mutation::Append),
        Just(Mutation::Truncate),
        Just(Mutation::Rename),
        Just(Mutation::ToggleExecutable),
        Just(Mutation::AddEmptyDir),
        Just(Mutation::MoveIntoNewDir),
    ]
}

/// Applies `mutation` to the file `rel` (which exists with `contents`) under `root`.
fn mutate(root: &Path, rel: &str, contents: &[u8], executable: bool, mutation: &Mutation) {
    let path = root.join(rel);
    match mutation {
        Mutation::FlipByte(idx) => {
            let mut changed = contents.to_vec();
            if changed.is_empty() {
                changed.push(0);
            } else {
                changed[idx.index(contents.len())] ^= 0x01;
            }
            fs::write(&path, changed).unwrap();
        }
        Mutation::Append => {
            let mut changed = contents.to_vec();
            changed.push(b'!');
            fs::write(&path, changed).unwrap();
        }
        Mutation::Truncate => {
            // An empty file gets one byte instead, which is still a content change.
            let changed = if contents.is_empty() {
                &b"x"[..]
            } else {
                &contents[..contents.len() - 1]
            };
            fs::write(&path, changed).unwrap();
        }
        Mutation::Rename => {
            // Not one of `NAMES`, so the new name is free.
            fs::rename(&path, path.with_file_name("renamed")).unwrap();
        }
        Mutation::ToggleExecutable => {
            let mode = if executable { 0o644 } else { 0o744 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        Mutation::AddEmptyDir => fs::create_dir(path.with_file_name("new-empty")).unwrap(),
        Mutation::MoveIntoNewDir => {
            let dir = path.with_file_name("moved");
            fs::create_dir(&dir).unwrap();
            fs::rename(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Scanning sees exactly the tree on disk, and scanning again, elsewhere or after
    /// creating it in another order, or after a JSON round trip, gives the same digest.
    #[test]
    fn rescan_gives_the_same_digest(model in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        materialize(&one, &model, false);
        materialize(&two, &model, true);
        let first = scan(&one).unwrap();
        prop_assert_eq!(&first, &expected_manifest(&model));
        let again = scan(&one).unwrap();
        let elsewhere = scan(&two).unwrap();
        prop_assert_eq!(first.tree_digest(), again.tree_digest());
        prop_assert_eq!(first.tree_digest(), elsewhere.tree_digest());
        let json = serde_json::to_string(&first).unwrap();
        let parsed: Manifest = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(parsed.tree_digest(), first.tree_digest());
    }

    /// Any content change, rename, mode change or new directory changes the digest.
    #[test]
    fn any_change_changes_the_digest(
        model in tree(),
        file_idx in any::<Index>(),
        mutation in mutation(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        materialize(tmp.path(), &model, false);
        let before = scan(tmp.path()).unwrap().tree_digest();
        let files: Vec<(&String, &Vec<u8>, bool)> = model
            .iter()
            .filter_map(|(path, node)| match node {
                Node::File { contents, executable } => Some((path, contents, *executable)),
                _ => None,
            })
            .collect();
        let (rel, contents, executable) = files[file_idx.index(files.len())];
        mutate(tmp.path(), rel, contents, executable, &mutation);
        let after = scan(tmp.path()).unwrap().tree_digest();
        prop_assert_ne!(before, after, "{:?} of {}", mutation, rel);
    }
}
