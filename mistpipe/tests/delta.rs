//! `mistpipe delta create|apply` end to end: the real binary on real files and folders.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `mistpipe args…` with no standard input (so stderr is never a terminal).
fn mistpipe(args: &[&Path]) -> Out {
    let output = assert_cmd::Command::cargo_bin("mistpipe")
        .expect("the mistpipe binary is built")
        .args(args)
        .output()
        .expect("mistpipe runs");
    Out {
        code: output.status.code().expect("mistpipe exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `mistpipe` with string arguments, the paths joined to `dir`.
fn run(dir: &Path, args: &[&str]) -> Out {
    let args: Vec<std::path::PathBuf> = args
        .iter()
        .map(|arg| {
            if arg.starts_with('-') || ["delta", "create", "apply"].contains(arg) {
                arg.into()
            } else {
                dir.join(arg)
            }
        })
        .collect();
    let refs: Vec<&Path> = args.iter().map(|arg| arg.as_path()).collect();
    mistpipe(&refs)
}

#[track_caller]
fn expect(out: Out, code: i32) -> Out {
    assert_eq!(
        out.code, code,
        "unexpected exit code\n--- stdout\n{}--- stderr\n{}",
        out.stdout, out.stderr
    );
    out
}

fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|idx| ((idx / 7).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn write(path: &Path, content: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Two build folders with one change of each kind.
fn builds(dir: &Path) {
    let big = bytes(1, 50_000);
    let mut changed = big.clone();
    changed[1000..1010].copy_from_slice(b"0123456789");
    write(&dir.join("old/data/level.pak"), &big);
    write(
        &dir.join("old/data/gone.txt"),
        b"deleted in the new version",
    );
    write(&dir.join("old/bin/tool"), b"#!/bin/sh\n");
    write(&dir.join("old/readme.txt"), b"same in both");
    write(&dir.join("old/moved.bin"), &bytes(2, 3000));
    symlink("data", dir.join("old/current")).unwrap();

    write(&dir.join("new/data/level.pak"), &changed);
    write(&dir.join("new/data/added.dat"), &bytes(3, 4000));
    write(&dir.join("new/bin/tool"), b"#!/bin/sh\n");
    fs::set_permissions(dir.join("new/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&dir.join("new/readme.txt"), b"same in both");
    write(&dir.join("new/assets/moved.bin"), &bytes(2, 3000));
    symlink("bin", dir.join("new/current")).unwrap();
}

fn manifest(dir: &Path) -> mist_games::manifest::Manifest {
    mist_games::scan::scan(dir).unwrap()
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["create", "apply"] {
        let out = expect(run(dir.path(), &["delta", command, "--help"]), 0);
        assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
        assert!(out.stdout.contains("-o, --output"), "{}", out.stdout);
    }
}

#[test]
fn folders_round_trip_with_stats() {
    let dir = tempfile::tempdir().unwrap();
    builds(dir.path());
    let out = expect(
        run(
            dir.path(),
            &[
                "delta",
                "create",
                "old",
                "new",
                "-o",
                "update.mtd",
                "--stats",
            ],
        ),
        0,
    );
    assert_eq!(out.stderr, "");
    // The renamed file counts as copied to its new path and deleted from its old one.
    let expected = [
        ("unchanged", 1),
        ("copied/renamed", 1),
        ("patched", 1),
        ("added", 1),
        ("deleted", 2),
        ("mode", 1),
    ];
    for (kind, n_files) in expected {
        let line = out
            .stdout
            .lines()
            .find(|line| line.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} line in\n{}", out.stdout));
        let files: u64 = line
            .split_whitespace()
            .rev()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(files, n_files, "{line}");
    }
    // The index size is reported, and it is small: the index holds only the change.
    let index_bytes = |stdout: &str| -> u64 {
        let first = stdout.lines().next().unwrap();
        let (_, rest) = first
            .split_once("index ")
            .unwrap_or_else(|| panic!("no index size in {first:?}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let created_index = index_bytes(&out.stdout);
    assert!(created_index > 0 && created_index < 1000, "{}", out.stdout);
    let applied = expect(
        run(
            dir.path(),
            &[
                "delta",
                "apply",
                "old",
                "update.mtd",
                "-o",
                "rebuilt",
                "--stats",
            ],
        ),
        0,
    );
    assert_eq!(index_bytes(&applied.stdout), created_index);
    assert_eq!(
        applied.stdout.lines().skip(1).collect::<Vec<_>>(),
        out.stdout.lines().skip(1).collect::<Vec<_>>()
    );
    assert_eq!(
        manifest(&dir.path().join("rebuilt")),
        manifest(&dir.path().join("new"))
    );

    // The same inputs give the same bytes.
    expect(
        run(
            dir.path(),
            &["delta", "create", "old", "new", "-o", "again.mtd"],
        ),
        0,
    );
    assert_eq!(
        fs::read(dir.path().join("update.mtd")).unwrap(),
        fs::read(dir.path().join("again.mtd")).unwrap()
    );
}

#[test]
fn files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let old = bytes(5, 100_000);
    let mut new = old.clone();
    new.splice(5000..5000, b"inserted".iter().copied());
    write(&dir.path().join("game.old"), &old);
    write(&dir.path().join("game.new"), &new);
    let out = expect(
        run(
            dir.path(),
            &[
                "delta", "create", "game.old", "game.new", "-o", "game.mfd", "--stats",
            ],
        ),
        0,
    );
    assert!(out.stdout.starts_with("file delta"), "{}", out.stdout);
    expect(
        run(
            dir.path(),
            &["delta", "apply", "game.old", "game.mfd", "-o", "game.out"],
        ),
        0,
    );
    assert_eq!(fs::read(dir.path().join("game.out")).unwrap(), new);
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    builds(dir.path());
    expect(
        run(
            dir.path(),
            &["delta", "create", "old", "new", "-o", "update.mtd"],
        ),
        0,
    );
    let patch = fs::read(dir.path().join("update.mtd")).unwrap();

    // A damaged package, in the index and in the body.
    for at in [200, patch.len() - 1] {
        let mut damaged = patch.clone();
        damaged[at] ^= 0x40;
        fs::write(dir.path().join("damaged.mtd"), &damaged).unwrap();
        let out = expect(
            run(
                dir.path(),
                &["delta", "apply", "old", "damaged.mtd", "-o", "out"],
            ),
            2,
        );
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert!(!dir.path().join("out").exists());
    }
    // A truncated one.
    fs::write(dir.path().join("short.mtd"), &patch[..patch.len() / 2]).unwrap();
    expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "short.mtd", "-o", "out"],
        ),
        2,
    );

    // The wrong old version: OLD is scanned, and its tree digest is not the delta's source.
    write(&dir.path().join("old/data/level.pak"), b"not the old level");
    let out = expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "update.mtd", "-o", "out"],
        ),
        2,
    );
    assert!(
        out.stderr
            .contains("is not the version the delta was made from"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("out").exists());
    // So is an OLD with an extra file, which version 1 of the format let through.
    write(&dir.path().join("old/data/level.pak"), &bytes(1, 50_000));
    write(&dir.path().join("old/extra.txt"), b"extra");
    expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "update.mtd", "-o", "out"],
        ),
        2,
    );
    assert!(!dir.path().join("out").exists());
    fs::remove_file(dir.path().join("old/extra.txt")).unwrap();
    expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "update.mtd", "-o", "out"],
        ),
        0,
    );
    fs::remove_dir_all(dir.path().join("out")).unwrap();

    // Not a delta; a file delta applied to a folder; a file and a folder.
    expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "new/readme.txt", "-o", "out"],
        ),
        2,
    );
    write(&dir.path().join("a.bin"), b"aaaa");
    expect(
        run(
            dir.path(),
            &["delta", "create", "a.bin", "a.bin", "-o", "a.mfd"],
        ),
        0,
    );
    expect(
        run(dir.path(), &["delta", "apply", "old", "a.mfd", "-o", "out"]),
        2,
    );
    expect(
        run(
            dir.path(),
            &["delta", "create", "a.bin", "new", "-o", "x.mtd"],
        ),
        2,
    );
    assert!(!dir.path().join("out").exists());
    assert!(!dir.path().join("x.mtd").exists());
}

#[test]
fn environment_problems_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    builds(dir.path());
    expect(
        run(
            dir.path(),
            &["delta", "create", "old", "new", "-o", "update.mtd"],
        ),
        0,
    );
    // OUT exists: refused, and left as it was.
    write(&dir.path().join("taken/keep.txt"), b"keep");
    let out = expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "update.mtd", "-o", "taken"],
        ),
        2,
    );
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        fs::read(dir.path().join("taken/keep.txt")).unwrap(),
        b"keep"
    );
    // Missing inputs.
    expect(
        run(
            dir.path(),
            &["delta", "create", "nope", "new", "-o", "x.mtd"],
        ),
        2,
    );
    expect(
        run(
            dir.path(),
            &["delta", "apply", "old", "nope.mtd", "-o", "out"],
        ),
        2,
    );
    assert!(!dir.path().join("out").exists());
}
