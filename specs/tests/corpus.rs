//! The broken-spec corpus: one directory per problem, each checked against its `expected`
//! diagnostics, from a directory and from a git commit of the same tree.
//!
//! Layout (see `corpus/README.md`):
//! - `corpus/valid-base/` is a small valid tree;
//! - `corpus/cases/<NN-name>/` holds only the files that differ from the base (copied over a
//!   copy of it), an optional `DELETE` listing base paths to remove, and `expected`: exactly
//!   one line `<file>[:<line>[:<column>]] <gist>`, the one diagnostic the tree must produce;
//! - `corpus/multi/<NN-name>/` is the same, but `expected` lists several diagnostics, in the
//!   order the loader sorts them (file, line, column).
//!
//! Adding a case is adding a directory; no code changes.

mod common;

use std::path::{Path, PathBuf};

use mist_specs::load::LoadOptions;

use common::{Expected, check_tree, copy_dir, load_both, render, write};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Builds the base tree with a case's overlay in `into`.
fn materialise(case: &Path, into: &Path) -> Result<(), String> {
    copy_dir(&corpus().join("valid-base"), into);
    if let Ok(list) = std::fs::read_to_string(case.join("DELETE")) {
        for path in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let target = into.join(path);
            let removed = if target.is_dir() {
                std::fs::remove_dir_all(&target)
            } else {
                std::fs::remove_file(&target)
            };
            removed.map_err(|e| format!("DELETE {path}: {e}"))?;
        }
    }
    for entry in std::fs::read_dir(case).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name();
        if name == "expected" || name == "DELETE" {
            continue;
        }
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&entry.path(), &into.join(&name));
        } else {
            std::fs::copy(entry.path(), into.join(&name)).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn read_expected(case: &Path) -> Result<Vec<Expected>, String> {
    let text = std::fs::read_to_string(case.join("expected"))
        .map_err(|e| format!("no `expected` file: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(Expected::parse)
        .collect()
}

/// Runs every case directory under `corpus/<group>`; `check_count` vets the number of
/// expected diagnostics. Returns the number of cases.
fn run_group(group: &str, check_count: fn(usize) -> Result<(), String>) -> usize {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus().join(group))
        .expect("corpus group folder")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let outcome = read_expected(case).and_then(|expected| {
            check_count(expected.len())?;
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let tree = dir.path().join("tree");
            materialise(case, &tree)?;
            check_tree(&tree, &LoadOptions::default(), &expected)
        });
        if let Err(why) = outcome {
            failures.push(format!("case {group}/{name} failed:\n{why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn valid_base_has_no_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&corpus().join("valid-base"), dir.path());
    let loaded = load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        loaded.is_valid(),
        "valid-base has diagnostics:\n{}",
        render(&loaded.diagnostics)
    );
    let specs = &loaded.specs;
    assert_eq!(
        specs.games.keys().collect::<Vec<_>>(),
        ["celeste", "secret"]
    );
    let celeste: Vec<&str> = specs.games["celeste"]
        .versions
        .iter()
        .map(|v| v.metadata.name.as_str())
        .collect();
    assert_eq!(celeste, ["1.4.0.0", "1.4.0.1"]);
    assert!(specs.games["secret"].game.spec.private);
    assert_eq!(specs.games["secret"].game.spec.grants, ["alice"]);
    assert_eq!(specs.users.keys().collect::<Vec<_>>(), ["alice", "root"]);
}

#[test]
fn every_single_problem_case_reports_exactly_its_diagnostic() {
    let n = run_group("cases", |count| {
        if count == 1 {
            Ok(())
        } else {
            Err(format!(
                "`expected` must hold exactly one line, it holds {count}"
            ))
        }
    });
    assert!(
        n >= 40,
        "the corpus must hold at least 40 cases, it holds {n}"
    );
}

#[test]
fn several_problems_are_all_reported() {
    let n = run_group("multi", |count| {
        if count >= 2 {
            Ok(())
        } else {
            Err(format!(
                "a multi case expects several diagnostics, not {count}"
            ))
        }
    });
    assert!(n >= 1);
}

/// Cases that need a NAS next to the tree: the base tree's versions point at
/// `incoming/celeste/1.4.0.0` and `incoming/celeste/1.4.0.1`.
#[test]
fn sources_are_checked_against_the_nas() {
    /// A build folder holding one file (an empty folder is refused: `holds no files`).
    fn build(dir: &Path) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("game.bin"), "bytes").expect("write");
    }
    type Setup = fn(nas: &Path, outside: &Path);
    let cases: &[(&str, Setup, &[&str])] = &[
        (
            "both builds present",
            |nas, _| {
                for v in ["1.4.0.0", "1.4.0.1"] {
                    build(&nas.join("incoming/celeste").join(v));
                }
            },
            &[],
        ),
        (
            "a build is missing",
            |nas, _| build(&nas.join("incoming/celeste/1.4.0.0")),
            &[
                "games/celeste/versions/1.4.0.1.yaml:7:11 `spec.source` `incoming/celeste/1.4.0.1` does not exist on the NAS",
            ],
        ),
        (
            "a build is a file",
            |nas, _| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                std::fs::write(nas.join("incoming/celeste/1.4.0.1"), "not a folder")
                    .expect("write");
            },
            &["games/celeste/versions/1.4.0.1.yaml:7:11 is not a folder"],
        ),
        (
            "a build is a symlink out of the NAS",
            |nas, outside| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                build(&outside.join("stolen"));
                std::os::unix::fs::symlink(
                    outside.join("stolen"),
                    nas.join("incoming/celeste/1.4.0.1"),
                )
                .expect("symlink");
            },
            &[
                "games/celeste/versions/1.4.0.1.yaml:7:11 resolves outside the NAS root through a symlink",
            ],
        ),
        (
            "a parent folder is a symlink out of the NAS",
            |nas, outside| {
                for v in ["1.4.0.0", "1.4.0.1"] {
                    build(&outside.join("celeste").join(v));
                }
                std::fs::create_dir_all(nas.join("incoming")).expect("mkdir");
                std::os::unix::fs::symlink(outside.join("celeste"), nas.join("incoming/celeste"))
                    .expect("symlink");
            },
            &[
                "games/celeste/versions/1.4.0.0.yaml:7:11 resolves outside the NAS root",
                "games/celeste/versions/1.4.0.1.yaml:7:11 resolves outside the NAS root",
            ],
        ),
        (
            "a relative symlink out of the NAS",
            |nas, _| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                std::os::unix::fs::symlink("../../..", nas.join("incoming/celeste/1.4.0.1"))
                    .expect("symlink");
            },
            &["games/celeste/versions/1.4.0.1.yaml:7:11 resolves outside the NAS root"],
        ),
        (
            "a symlink that stays inside the NAS is fine",
            |nas, _| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                build(&nas.join("builds/celeste-1.4.0.1"));
                std::os::unix::fs::symlink(
                    "../../builds/celeste-1.4.0.1",
                    nas.join("incoming/celeste/1.4.0.1"),
                )
                .expect("symlink");
            },
            &[],
        ),
        (
            "an empty build folder",
            |nas, _| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                std::fs::create_dir_all(nas.join("incoming/celeste/1.4.0.1")).expect("mkdir");
            },
            &["games/celeste/versions/1.4.0.1.yaml:7:11 holds no files"],
        ),
        (
            "a build that links into Mist's own folder",
            |nas, _| {
                build(&nas.join("incoming/celeste/1.4.0.0"));
                build(&nas.join(".mist/tmp/x"));
                std::os::unix::fs::symlink(
                    "../../.mist/tmp/x",
                    nas.join("incoming/celeste/1.4.0.1"),
                )
                .expect("symlink");
            },
            &["games/celeste/versions/1.4.0.1.yaml:7:11 is inside Mist's own folder"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, setup, expected) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let (tree, nas, outside) = (
            dir.path().join("tree"),
            dir.path().join("nas"),
            dir.path().join("outside"),
        );
        copy_dir(&corpus().join("valid-base"), &tree);
        std::fs::create_dir_all(&nas).expect("mkdir nas");
        std::fs::create_dir_all(&outside).expect("mkdir outside");
        setup(&nas, &outside);
        let options = LoadOptions {
            nas_root: Some(nas),
        };
        let expected: Vec<Expected> = expected
            .iter()
            .map(|e| Expected::parse(e).expect("well-formed expectation"))
            .collect();
        if let Err(why) = check_tree(&tree, &options, &expected) {
            failures.push(format!("NAS case `{name}` failed:\n{why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A missing NAS root is a diagnostic on every version, not a crash.
#[test]
fn missing_nas_root_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = dir.path().join("tree");
    copy_dir(&corpus().join("valid-base"), &tree);
    let options = LoadOptions {
        nas_root: Some(dir.path().join("no-such-nas")),
    };
    let expected: Vec<Expected> = [
        "games/celeste/versions/1.4.0.0.yaml:7:11 cannot open the NAS root",
        "games/celeste/versions/1.4.0.1.yaml:7:11 cannot open the NAS root",
    ]
    .iter()
    .map(|e| Expected::parse(e).expect("well-formed expectation"))
    .collect();
    check_tree(&tree, &options, &expected).unwrap_or_else(|e| panic!("{e}"));
}

/// The harness itself: an overlay really replaces files, and DELETE really removes them.
#[test]
fn materialise_applies_overlay_and_delete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let case = dir.path().join("case");
    write(&case, "users/root.yaml", "replaced");
    write(&case, "DELETE", "games/secret\n");
    write(&case, "expected", "x y\n");
    let tree = dir.path().join("tree");
    materialise(&case, &tree).expect("materialise");
    assert_eq!(
        std::fs::read_to_string(tree.join("users/root.yaml")).expect("read"),
        "replaced"
    );
    assert!(!tree.join("games/secret").exists());
    assert!(!tree.join("expected").exists() && !tree.join("DELETE").exists());
    assert!(tree.join("games/celeste/game.yaml").is_file());
}

/// The valid base with celeste's `headerImage: art/header.webp`, and `files` added.
fn base_with_header_image(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&corpus().join("valid-base"), dir.path());
    let game_yaml = dir.path().join("games/celeste/game.yaml");
    let yaml = std::fs::read_to_string(&game_yaml).unwrap();
    std::fs::write(
        &game_yaml,
        yaml.replace(
            "  private: false\n",
            "  headerImage: art/header.webp\n  private: false\n",
        ),
    )
    .unwrap();
    for (path, contents) in files {
        write(dir.path(), path, contents);
    }
    dir
}

#[test]
fn a_header_image_beside_game_yaml_is_read_and_checked() {
    let webp: &[u8] = b"RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0 a header image";
    let dir = base_with_header_image(&[("games/celeste/art/header.webp", webp)]);
    let loaded = load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.is_valid(), "{}", render(&loaded.diagnostics));
    let image = loaded.specs.games["celeste"]
        .header_image
        .as_ref()
        .expect("the header image");
    assert_eq!(image.path, "games/celeste/art/header.webp");
    assert_eq!(image.image_type.media_type(), "image/webp");
    assert_eq!(&image.bytes[..], webp);
    assert!(loaded.specs.games["secret"].header_image.is_none());

    // A file beside it that is no image of the game's is still a stray.
    let dir = base_with_header_image(&[
        ("games/celeste/art/header.webp", webp),
        ("games/celeste/art/notes.txt", b"draft"),
    ]);
    let loaded = load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.diagnostics.len(),
        1,
        "{}",
        render(&loaded.diagnostics)
    );
    assert_eq!(
        loaded.diagnostics[0].to_string(),
        "games/celeste/art/notes.txt: error: Mist does not read this file"
    );
}
