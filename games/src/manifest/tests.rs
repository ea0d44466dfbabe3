//! Unit tests of the manifest types: the digest encoding, hash text, paths and symlinks.

use proptest::prelude::*;

use super::*;

/// A file entry whose hash is `byte` repeated (for the unit tests of this crate).
pub(crate) fn file(path: &str, size: u64, executable: bool, byte: u8) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::File {
            size,
            executable,
            blake3: FileHash([byte; 32]),
        },
    }
}

/// A folder entry (for the unit tests of this crate).
pub(crate) fn dir(path: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Dir,
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Symlink {
            target: target.to_owned(),
        },
    }
}

/// Reads a "mist-tree-v1" encoding back into entries. That such a decoder exists, and
/// inverts the encoding, is what makes the encoding injective.
fn decode(mut bytes: &[u8]) -> Vec<Entry> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        head
    }
    fn take_u64(bytes: &mut &[u8]) -> u64 {
        u64::from_le_bytes(take(bytes, 8).try_into().unwrap())
    }
    fn take_string(bytes: &mut &[u8]) -> String {
        let len = take_u64(bytes) as usize;
        String::from_utf8(take(bytes, len).to_vec()).unwrap()
    }
    assert_eq!(take(&mut bytes, TREE_HEADER.len()), TREE_HEADER);
    let n_entries = take_u64(&mut bytes);
    let mut entries = Vec::new();
    for _ in 0..n_entries {
        let tag = take(&mut bytes, 1)[0];
        let path = take_string(&mut bytes);
        let kind = match tag {
            b'f' => EntryKind::File {
                size: take_u64(&mut bytes),
                executable: match take(&mut bytes, 1)[0] {
                    0 => false,
                    1 => true,
                    other => panic!("bad executable flag {other}"),
                },
                blake3: FileHash(take(&mut bytes, 32).try_into().unwrap()),
            },
            b'l' => EntryKind::Symlink {
                target: take_string(&mut bytes),
            },
            b'd' => EntryKind::Dir,
            other => panic!("bad tag {other}"),
        };
        entries.push(Entry { path, kind });
    }
    assert!(bytes.is_empty(), "trailing bytes");
    entries
}

fn arbitrary_entry() -> impl Strategy<Value = Entry> {
    // Short strings over a small alphabet, so that prefixes and near-collisions (a
    // path that ends where another begins) are common.
    let text = r"[ab/.\\é0]{0,6}";
    let kind = prop_oneof![
        (any::<u64>(), any::<bool>(), any::<[u8; 32]>()).prop_map(|(size, executable, hash)| {
            EntryKind::File {
                size,
                executable,
                blake3: FileHash(hash),
            }
        }),
        text.prop_map(|target| EntryKind::Symlink { target }),
        Just(EntryKind::Dir),
    ];
    (text, kind).prop_map(|(path, kind)| Entry { path, kind })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any list of entries, well formed or not, encodes to bytes that decode back to
    /// the same entries in path order: the encoding loses nothing.
    #[test]
    fn encoding_is_injective(entries in prop::collection::vec(arbitrary_entry(), 0..8)) {
        let manifest = Manifest { entries };
        let mut sorted = manifest.entries.clone();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        prop_assert_eq!(decode(&manifest.canonical_encoding()), sorted);
    }

    /// Parsing what `Display` prints gives back the same value, for both hash types.
    #[test]
    fn hash_text_round_trips(bytes in any::<[u8; 32]>()) {
        let hash = FileHash(bytes);
        prop_assert_eq!(hash.to_string().parse::<FileHash>(), Ok(hash));
        let digest = TreeDigest(bytes);
        prop_assert_eq!(digest.to_string().parse::<TreeDigest>(), Ok(digest));
    }
}

/// Pins the documented example in `docs/manifest.md` byte for byte.
#[test]
fn canonical_encoding_matches_the_documented_example() {
    let manifest = Manifest {
        entries: vec![
            dir("bin"),
            file("bin/game", 5, true, 0xab),
            symlink("lib", "bin"),
        ],
    };
    let mut expected = Vec::new();
    expected.extend_from_slice(b"mist-tree-v1\0");
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.push(b'd');
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(b"bin");
    expected.push(b'f');
    expected.extend_from_slice(&8u64.to_le_bytes());
    expected.extend_from_slice(b"bin/game");
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.push(1);
    expected.extend_from_slice(&[0xab; 32]);
    expected.push(b'l');
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(b"lib");
    expected.extend_from_slice(&3u64.to_le_bytes());
    expected.extend_from_slice(b"bin");
    assert_eq!(manifest.canonical_encoding(), expected);
    assert_eq!(
        manifest.tree_digest().to_string(),
        "blake3:4d287f31e44909f359e8b6acd10ef4eadf79cada0108760d99970a0825be4a06"
    );
}

#[test]
fn empty_manifest_encoding() {
    let manifest = Manifest {
        entries: Vec::new(),
    };
    assert_eq!(
        manifest.canonical_encoding(),
        b"mist-tree-v1\0\0\0\0\0\0\0\0\0"
    );
}

#[test]
fn tree_digest_ignores_entry_order() {
    let sorted = Manifest {
        entries: vec![dir("a"), file("a/x", 1, false, 1), file("b", 2, true, 2)],
    };
    let mut shuffled = sorted.clone();
    shuffled.entries.reverse();
    assert_eq!(sorted.tree_digest(), shuffled.tree_digest());
}

/// Moving a byte between the path and the symlink target must not collide, which is
/// what the length prefixes are for.
#[test]
fn length_prefixes_separate_path_and_target() {
    let one = Manifest {
        entries: vec![symlink("ab", "c")],
    };
    let two = Manifest {
        entries: vec![symlink("a", "bc")],
    };
    assert_ne!(one.tree_digest(), two.tree_digest());
}

#[test]
fn symlink_targets() {
    let cases: &[(&str, &str, Result<(), SymlinkProblem>)] = &[
        ("l", "x", Ok(())),
        ("l", ".", Ok(())),
        ("l", "./a//b/", Ok(())),
        ("a/l", "..", Ok(())),
        ("a/b/l", "../../x/y", Ok(())),
        ("a/l", "../x", Ok(())),
        ("l", "..", Err(SymlinkProblem::Escapes)),
        ("a/l", "../../etc", Err(SymlinkProblem::Escapes)),
        ("a/l", "./../..", Err(SymlinkProblem::Escapes)),
        ("l", "/etc/passwd", Err(SymlinkProblem::Absolute)),
        ("l", "", Err(SymlinkProblem::Empty)),
        ("a/l", "x/..", Err(SymlinkProblem::DotDotAfterName)),
        ("a/l", "s/../..", Err(SymlinkProblem::DotDotAfterName)),
        ("l", "a\0b", Err(SymlinkProblem::ContainsNul)),
    ];
    for (link, target, expected) in cases {
        assert_eq!(
            check_symlink_target(link, target),
            *expected,
            "{link} -> {target}"
        );
    }
}

#[test]
fn paths() {
    let cases: &[(&str, bool)] = &[
        ("a", true),
        ("a/b.txt", true),
        ("a b/ü", true),
        ("...", true),
        ("", false),
        ("/a", false),
        ("a/", false),
        ("a//b", false),
        ("./a", false),
        ("a/./b", false),
        ("a/..", false),
        ("a\0b", false),
        ("a\\..\\..\\x", false),
    ];
    for (path, ok) in cases {
        assert_eq!(check_path(path).is_ok(), *ok, "{path:?}");
    }
}
