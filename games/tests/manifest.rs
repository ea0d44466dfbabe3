//! `scan` on real files in temp dirs, the digest and hash text forms, and the JSON shape.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mist_games::manifest::{
    Entry, EntryKind, FileHash, Manifest, ParseDigestError, SymlinkProblem, TreeDigest,
};
use mist_games::scan::{ScanError, scan, scan_with_progress};

/// A fresh temp dir holding the build root `build/`, so tests can also put things next to
/// the root (for links that escape it).
struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("build")).unwrap();
        Dir { tmp }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("build")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn file(&self, rel: &str, contents: &[u8]) -> &Dir {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        self
    }

    fn exec(&self, rel: &str, contents: &[u8]) -> &Dir {
        self.file(rel, contents);
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    fn dir(&self, rel: &str) -> &Dir {
        fs::create_dir_all(self.path(rel)).unwrap();
        self
    }

    fn link(&self, rel: &str, target: &str) -> &Dir {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
        self
    }

    fn scan(&self) -> Result<Manifest, ScanError> {
        scan(&self.root())
    }
}

fn file(path: &str, contents: &[u8], executable: bool) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::File {
            size: contents.len() as u64,
            executable,
            blake3: FileHash(*blake3::hash(contents).as_bytes()),
        },
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Dir,
    }
}

fn link(path: &str, target: &str) -> Entry {
    Entry {
        path: path.to_owned(),
        kind: EntryKind::Symlink {
            target: target.to_owned(),
        },
    }
}

#[test]
fn scan_records_every_entry_sorted() {
    let build = Dir::new();
    build
        .exec("bin/game", b"#!/bin/sh\necho hi\n")
        .file("a.txt", b"a")
        .file("a/b", b"")
        .dir("empty/nested")
        .link("lib", "bin")
        .file("Data/level 1.dat", &[7; 3000]);
    let manifest = build.scan().unwrap();
    // Bytewise order: uppercase before lowercase, '.' (0x2e) before '/' (0x2f).
    let expected = vec![
        dir("Data"),
        file("Data/level 1.dat", &[7; 3000], false),
        dir("a"),
        file("a.txt", b"a", false),
        file("a/b", b"", false),
        dir("bin"),
        file("bin/game", b"#!/bin/sh\necho hi\n", true),
        dir("empty"),
        dir("empty/nested"),
        link("lib", "bin"),
    ];
    assert_eq!(manifest.entries, expected);
    assert_eq!(manifest.n_files(), 4);
    assert_eq!(manifest.total_size(), 3000 + 1 + 18);
    manifest.validate().unwrap();
}

#[test]
fn empty_root_scans_to_empty_manifest() {
    let build = Dir::new();
    let manifest = build.scan().unwrap();
    assert!(manifest.entries.is_empty());
    assert_eq!(
        manifest.tree_digest(),
        Manifest { entries: vec![] }.tree_digest()
    );
}

#[test]
fn large_files_hash_like_small_ones() {
    // Above the multi-threaded hashing threshold, and read in several 4 MiB pieces of
    // which the last is short.
    let contents: Vec<u8> = (0..(9 * 1024 * 1024 + 12345u64))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let build = Dir::new();
    build
        .file("big.pak", &contents)
        .file("small", &contents[..100]);
    let manifest = build.scan().unwrap();
    assert_eq!(
        manifest.entries,
        vec![
            file("big.pak", &contents, false),
            file("small", &contents[..100], false)
        ]
    );
}

#[test]
fn symlinks_are_recorded_not_followed() {
    let build = Dir::new();
    build
        .file("real/data", b"payload")
        .link("alias", "real")
        .link("real/self", ".")
        .link("dangling", "missing/file")
        .link("deep/up", "../real/data");
    let manifest = build.scan().unwrap();
    assert_eq!(
        manifest.entries,
        vec![
            link("alias", "real"),
            link("dangling", "missing/file"),
            dir("deep"),
            link("deep/up", "../real/data"),
            dir("real"),
            file("real/data", b"payload", false),
            link("real/self", "."),
        ]
    );
}

#[test]
fn escaping_symlinks_are_rejected() {
    let cases: &[(&str, &str, SymlinkProblem)] = &[
        ("a/etc", "../../etc", SymlinkProblem::Escapes),
        ("up", "..", SymlinkProblem::Escapes),
        ("passwd", "/etc/passwd", SymlinkProblem::Absolute),
        ("a/detour", "b/../..", SymlinkProblem::DotDotAfterName),
    ];
    for (rel, target, problem) in cases {
        let build = Dir::new();
        build.file("ok", b"").link(rel, target);
        match build.scan() {
            Err(ScanError::InvalidSymlink {
                path,
                target: got_target,
                problem: got_problem,
            }) => {
                assert_eq!(path, build.path(rel));
                assert_eq!(got_target, *target);
                assert_eq!(got_problem, *problem);
            }
            other => panic!("{rel} -> {target}: expected InvalidSymlink, got {other:?}"),
        }
    }
}

#[test]
fn symlink_error_message_names_the_path() {
    let build = Dir::new();
    build.link("a/etc", "../../etc");
    let message = build.scan().unwrap_err().to_string();
    let expected = format!(
        "symlink {} -> ../../etc: the target points outside the build root",
        build.path("a/etc").display()
    );
    assert_eq!(message, expected);
}

#[test]
fn fifo_is_rejected() {
    let build = Dir::new();
    build.dir("sub");
    let fifo = build.path("sub/pipe");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let error = build.scan().unwrap_err();
    assert!(
        matches!(&error, ScanError::UnsupportedFileType { path, kind: "fifo" } if *path == fifo),
        "{error:?}"
    );
    assert!(error.to_string().contains("sub/pipe is a fifo"), "{error}");
}

#[test]
fn socket_is_rejected() {
    let build = Dir::new();
    let socket = build.path("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let error = build.scan().unwrap_err();
    assert!(
        matches!(&error, ScanError::UnsupportedFileType { path, kind: "socket" } if *path == socket),
        "{error:?}"
    );
}

#[test]
fn non_utf8_name_is_rejected() {
    use std::os::unix::ffi::OsStrExt;
    let build = Dir::new();
    let bad = build
        .root()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&bad, b"x").unwrap();
    let error = build.scan().unwrap_err();
    assert!(
        matches!(&error, ScanError::NonUtf8Name { path } if *path == bad),
        "{error:?}"
    );
    assert!(error.to_string().contains("caf\u{fffd}.txt"), "{error}");
}

#[test]
fn root_must_be_a_directory() {
    let build = Dir::new();
    build.file("file", b"x");
    assert!(matches!(
        scan(&build.path("file")),
        Err(ScanError::RootNotDirectory { path }) if path == build.path("file")
    ));
    let missing = build.path("missing");
    let error = scan(&missing).unwrap_err();
    assert!(
        matches!(&error, ScanError::Io { path, .. } if *path == missing),
        "{error:?}"
    );
}

#[test]
fn root_may_be_a_symlink_to_a_directory() {
    let build = Dir::new();
    build.file("x", b"1");
    let alias = build.tmp.path().join("alias");
    symlink(build.root(), &alias).unwrap();
    assert_eq!(scan(&alias).unwrap(), build.scan().unwrap());
}

#[test]
fn deep_trees_do_not_overflow() {
    let build = Dir::new();
    let deep: Vec<&str> = std::iter::repeat_n("d", 1000).collect();
    let deep = deep.join("/");
    build.file(&format!("{deep}/leaf"), b"x");
    let manifest = build.scan().unwrap();
    assert_eq!(manifest.entries.len(), 1001);
    assert_eq!(
        manifest.entries.last().unwrap().path,
        format!("{deep}/leaf")
    );
}

#[test]
fn ordering_does_not_depend_on_creation_order() {
    let names = ["b", "a/z", "a/a", "A", "a.b", "a-b", "ä", "0"];
    let forward = Dir::new();
    for name in names {
        forward.file(name, name.as_bytes());
    }
    let backward = Dir::new();
    for name in names.iter().rev() {
        backward.file(name, name.as_bytes());
    }
    let forward = forward.scan().unwrap();
    let backward = backward.scan().unwrap();
    assert_eq!(forward, backward);
    let paths: Vec<&str> = forward.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["0", "A", "a", "a-b", "a.b", "a/a", "a/z", "b", "ä"]);
}

#[test]
fn progress_is_monotonic_and_complete() {
    let build = Dir::new();
    build.file("big", &vec![1; 3 * 1024 * 1024]);
    for idx in 0..50 {
        build.file(&format!("small/{idx}"), &vec![2; 40_000]);
    }
    let total = 3 * 1024 * 1024 + 50 * 40_000;
    let calls = Mutex::new(Vec::new());
    scan_with_progress(&build.root(), &|done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .unwrap();
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert!(calls.len() >= 3, "{calls:?}");
    assert!(calls.iter().all(|&(_, t)| t == total));
    assert!(
        calls.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "{calls:?}"
    );
}

/// The progress callback runs after the listing and before hashing, which lets a test
/// change a file at exactly that point without sleeping.
#[test]
fn files_written_during_the_scan_are_an_error() {
    let append = |path: &Path| {
        use std::io::Write;
        let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(b"more").unwrap();
    };
    for size in [10, 1024 * 1024] {
        let build = Dir::new();
        build.file("growing", &vec![0; size]);
        let growing = build.path("growing");
        let error = scan_with_progress(&build.root(), &|done, _| {
            if done == 0 {
                append(&growing)
            }
        })
        .unwrap_err();
        assert!(
            matches!(&error, ScanError::Changed { path, .. } if *path == growing),
            "{error:?}"
        );
        assert!(error.to_string().contains("still being written"), "{error}");
    }
}

#[test]
fn same_size_rewrite_during_the_scan_is_an_error() {
    let build = Dir::new();
    build.file("patched", b"old contents");
    let patched = build.path("patched");
    // An old mtime makes the rewrite's new mtime differ whatever the clock granularity.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&patched)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let error = scan_with_progress(&build.root(), &|done, _| {
        if done == 0 {
            fs::write(&patched, b"new contents").unwrap();
        }
    })
    .unwrap_err();
    assert!(
        matches!(&error, ScanError::Changed { path, .. } if *path == patched),
        "{error:?}"
    );
}

#[test]
fn file_replaced_by_symlink_during_the_scan_is_not_followed() {
    let build = Dir::new();
    build.file("f", b"x");
    let f = build.path("f");
    let error = scan_with_progress(&build.root(), &|done, _| {
        if done == 0 {
            fs::remove_file(&f).unwrap();
            symlink("/etc/hostname", &f).unwrap();
        }
    })
    .unwrap_err();
    assert!(
        matches!(&error, ScanError::Changed { path, .. } if *path == f),
        "{error:?}"
    );
}

#[test]
fn tree_digest_text_round_trips() {
    let digest = TreeDigest(std::array::from_fn(|i| i as u8 * 7));
    let text = digest.to_string();
    assert_eq!(
        text,
        "blake3:00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9"
    );
    assert_eq!(text.parse::<TreeDigest>().unwrap(), digest);
    let hash = FileHash(digest.0);
    assert_eq!(hash.to_string(), text["blake3:".len()..]);
    assert_eq!(hash.to_string().parse::<FileHash>().unwrap(), hash);
}

#[test]
fn malformed_digests_say_what_is_wrong() {
    let hex = "00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9";
    let cases: Vec<(String, ParseDigestError, &str)> = vec![
        (
            hex.to_owned(),
            ParseDigestError::MissingPrefix {
                input: hex.to_owned(),
            },
            "expected a digest of the form 'blake3:<64 hex digits>', got \"00070e",
        ),
        (
            format!("sha256:{hex}"),
            ParseDigestError::MissingPrefix {
                input: format!("sha256:{hex}"),
            },
            "got \"sha256:",
        ),
        (
            format!("blake3:{}", &hex[..63]),
            ParseDigestError::WrongLength { len: 63 },
            "expected 64 hex digits, got 63 characters",
        ),
        (
            format!("blake3:{hex}0"),
            ParseDigestError::WrongLength { len: 65 },
            "got 65 characters",
        ),
        (
            "blake3:".to_owned(),
            ParseDigestError::WrongLength { len: 0 },
            "got 0 characters",
        ),
        (
            format!("blake3:{}", hex.to_uppercase()),
            ParseDigestError::InvalidCharacter {
                character: 'E',
                position: 5,
                hint: "; digests are written in lowercase",
            },
            "invalid character 'E' at position 5 of the hex digits; digests are written in lowercase",
        ),
        (
            format!("blake3:{}g", &hex[..63]),
            ParseDigestError::InvalidCharacter {
                character: 'g',
                position: 63,
                hint: "",
            },
            "invalid character 'g' at position 63 of the hex digits",
        ),
        (
            format!("blake3:{}é", &hex[..63]),
            ParseDigestError::InvalidCharacter {
                character: 'é',
                position: 63,
                hint: "",
            },
            "'é' at position 63",
        ),
        (
            format!(" blake3:{hex}"),
            ParseDigestError::MissingPrefix {
                input: format!(" blake3:{hex}"),
            },
            "got \" blake3:",
        ),
    ];
    for (input, expected, message) in cases {
        let error = input.parse::<TreeDigest>().unwrap_err();
        assert_eq!(error, expected, "{input:?}");
        assert!(error.to_string().contains(message), "{input:?}: {error}");
    }
    let long = "x".repeat(1000);
    let message = long.parse::<TreeDigest>().unwrap_err().to_string();
    assert!(message.len() < 200, "{message}");
    assert!(matches!(
        "blake3:00".parse::<FileHash>(),
        Err(ParseDigestError::WrongLength { len: 9 })
    ));
}

#[test]
fn json_shape_is_stable() {
    let build = Dir::new();
    build
        .exec("bin/game", b"hello")
        .link("current", "bin")
        .dir("saves");
    let manifest = build.scan().unwrap();
    let json = serde_json::to_string_pretty(&manifest).unwrap();
    let expected = r#"{
  "entries": [
    {
      "path": "bin",
      "type": "dir"
    },
    {
      "path": "bin/game",
      "type": "file",
      "size": 5,
      "executable": true,
      "blake3": "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    },
    {
      "path": "current",
      "type": "symlink",
      "target": "bin"
    },
    {
      "path": "saves",
      "type": "dir"
    }
  ]
}"#;
    assert_eq!(json, expected);
    let parsed: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, manifest);
    let digest_json = serde_json::to_string(&manifest.tree_digest()).unwrap();
    assert_eq!(digest_json, format!("\"{}\"", manifest.tree_digest()));
    let digest: TreeDigest = serde_json::from_str(&digest_json).unwrap();
    assert_eq!(digest, manifest.tree_digest());
}

#[test]
fn invalid_json_manifests_are_rejected() {
    let hash = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f";
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"entries":[{"path":"a","type":"dir","mode":7}]}"#.to_owned(),
            "unknown field `mode`",
        ),
        (
            r#"{"entries":[],"version":2}"#.to_owned(),
            "unknown field `version`",
        ),
        (
            r#"{"entries":[{"path":"a","type":"pipe"}]}"#.to_owned(),
            "unknown variant `pipe`",
        ),
        (
            format!(r#"{{"entries":[{{"path":"a","type":"file","size":1,"blake3":"{hash}"}}]}}"#),
            "missing field `executable`",
        ),
        (
            format!(
                r#"{{"entries":[{{"path":"a","type":"file","size":1,"executable":false,"blake3":"{}"}}]}}"#,
                hash.to_uppercase()
            ),
            "lowercase",
        ),
        (
            r#"{"entries":[{"path":"b","type":"dir"},{"path":"a","type":"dir"}]}"#.to_owned(),
            r#"entry "a" must sort strictly after the entry before it, "b""#,
        ),
        (
            r#"{"entries":[{"path":"a","type":"dir"},{"path":"a","type":"dir"}]}"#.to_owned(),
            "must sort strictly after",
        ),
        (
            r#"{"entries":[{"path":"a/b","type":"dir"}]}"#.to_owned(),
            r#"entry "a/b" has no parent directory entry "a""#,
        ),
        (
            r#"{"entries":[{"path":"a","type":"symlink","target":"."},{"path":"a/b","type":"dir"}]}"#.to_owned(),
            "has no parent directory entry",
        ),
        (
            r#"{"entries":[{"path":"../x","type":"dir"}]}"#.to_owned(),
            r#"invalid path "../x": the path has a '.' or '..' component"#,
        ),
        (
            r#"{"entries":[{"path":"/etc","type":"dir"}]}"#.to_owned(),
            "the path is absolute",
        ),
        (
            r#"{"entries":[{"path":"","type":"dir"}]}"#.to_owned(),
            "the path is empty",
        ),
        (
            r#"{"entries":[{"path":"l","type":"symlink","target":"../x"}]}"#.to_owned(),
            r#"symlink "l" -> "../x": the target points outside the build root"#,
        ),
    ];
    for (json, message) in cases {
        let error = serde_json::from_str::<Manifest>(&json).unwrap_err();
        assert!(error.to_string().contains(message), "{json}: {error}");
    }
}
