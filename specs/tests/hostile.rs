//! Hostile input: every file gets a clear diagnostic (or loads, when it is valid but
//! large), never a panic, and the directory and a git commit agree. How long each takes is
//! measured by `benches/hostile.rs`, not here.

mod common;
#[path = "common/hostile.rs"]
mod inputs;

use std::path::Path;

use mist_specs::load::{LoadOptions, Loaded, load_dir};

use common::{Expected, check_tree, commit_all, load_both, render, write};
use inputs::Hostile;

/// Puts one hostile file in an otherwise empty tree and checks the diagnostics, from the
/// directory and from git.
fn check(input: Hostile, expected: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), input.path, &input.bytes);
    let expected: Vec<Expected> = expected
        .iter()
        .map(|e| Expected::parse(e).expect("well-formed expectation"))
        .collect();
    if let Err(why) = check_tree(dir.path(), &LoadOptions::default(), &expected) {
        panic!(
            "hostile input `{}` ({} bytes):\n{why}",
            input.name,
            input.bytes.len()
        );
    }
}

/// One test per input: `hostile!(name, generator, [expected diagnostics])`.
macro_rules! hostile {
    ($name:ident, $input:expr, [$($expected:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            check($input, &[$($expected),*]);
        }
    };
}

hostile!(
    file_over_one_mib,
    inputs::oversized(),
    ["users/mallory.yaml the file is 1048577 bytes; spec files may be at most 1048576 bytes"]
);
hostile!(
    billion_laughs,
    inputs::billion_laughs(),
    ["users/mallory.yaml:10:12 through aliases (an alias bomb?)"]
);
hostile!(
    wide_aliases,
    inputs::wide_aliases(),
    ["users/mallory.yaml:7 through aliases (an alias bomb?)"]
);
hostile!(
    deep_flow_sequences,
    inputs::deep_flow_sequences(),
    ["users/mallory.yaml:1 invalid YAML: recursion limit exceeded"]
);
hostile!(
    deep_flow_mappings,
    inputs::deep_flow_mappings(),
    ["users/mallory.yaml:1 invalid YAML: recursion limit exceeded"]
);
hostile!(
    deep_block_sequences,
    inputs::deep_block_sequences(),
    ["users/mallory.yaml:1:65 nesting deeper than 32 levels"]
);
hostile!(
    deep_block_mappings,
    inputs::deep_block_mappings(),
    ["users/mallory.yaml:33 nesting deeper than 32 levels"]
);
hostile!(
    invalid_utf8,
    inputs::invalid_utf8(),
    ["users/mallory.yaml:6:18 the file is not valid UTF-8"]
);
hostile!(
    nul_byte,
    inputs::nul_bytes(),
    ["users/mallory.yaml:6:19 the file contains the control character U+0000"]
);
hostile!(
    escape_sequence,
    inputs::escape_sequence(),
    ["users/mallory.yaml:6:16 the file contains the control character U+001B"]
);
hostile!(
    all_nul,
    inputs::all_nul(),
    ["users/mallory.yaml:1:1 the file contains the control character U+0000"]
);
hostile!(long_line_is_read, inputs::long_line(), []);
hostile!(
    long_line_with_error,
    inputs::long_line_with_error(),
    ["users/mallory.yaml:8:1048380 mapping values are not allowed"]
);
hostile!(huge_scalar_is_read, inputs::huge_scalar(), []);
hostile!(
    many_items,
    inputs::many_items(),
    ["users/mallory.yaml:19992 the document has more than 20000 values"]
);
hostile!(
    many_duplicate_keys,
    inputs::many_duplicate_keys(),
    ["users/mallory.yaml:10000 the document has more than 20000 values"]
);

#[test]
fn large_valid_values_arrive_whole() {
    for input in [inputs::long_line(), inputs::huge_scalar()] {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), input.path, &input.bytes);
        let loaded =
            load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let name = loaded.specs.users["mallory"]
            .spec
            .display_name
            .clone()
            .unwrap_or_default();
        assert!(
            name.len() > 990_000,
            "`{}`: displayName has only {} bytes",
            input.name,
            name.len()
        );
    }
}

#[test]
fn every_unknown_field_is_reported() {
    let input = inputs::many_unknown_keys();
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), input.path, &input.bytes);
    let loaded = load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let unknown = loaded
        .diagnostics
        .iter()
        .filter(|d| d.message.starts_with("unknown field `field"))
        .count();
    let missing = loaded
        .diagnostics
        .iter()
        .filter(|d| d.message.starts_with("missing required field"))
        .count();
    assert_eq!(
        (unknown, missing, loaded.diagnostics.len()),
        (9_000, 2, 9_002)
    );
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| d.file == "users/mallory.yaml" && d.line.is_some())
    );
}

/// 5,000 users, every tenth broken: all are read, each broken one is reported once.
#[test]
fn five_thousand_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..5_000 {
        let name = format!("user-{i:04}");
        let text = if i % 10 == 0 {
            inputs::user(&format!("other-{i}"))
        } else {
            inputs::user(&name)
        };
        write(dir.path(), &format!("users/{name}.yaml"), text);
    }
    let loaded = load_both(dir.path(), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loaded.specs.users.len(),
        5_000,
        "every user that parses is kept, even with a wrong name"
    );
    assert_eq!(
        loaded.diagnostics.len(),
        500,
        "{}",
        render(&loaded.diagnostics[..10.min(loaded.diagnostics.len())])
    );
    for (n, d) in loaded.diagnostics.iter().enumerate() {
        let i = n * 10;
        assert_eq!(
            (d.file.as_str(), d.line),
            (format!("users/user-{i:04}.yaml").as_str(), Some(4))
        );
        assert!(
            d.message
                .contains(&format!("`metadata.name` is `other-{i}`")),
            "{d}"
        );
    }
}

/// Symlinks are never followed, whether they point at a file, a folder, or nowhere; git
/// stores them as links too, so both sources report the same.
#[test]
fn symlinks_in_the_tree_are_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tree, outside) = (dir.path().join("tree"), dir.path().join("outside"));
    write(&outside, "secret.yaml", inputs::user("mallory"));
    write(
        &outside,
        "game/game.yaml",
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: game\nspec:\n  title: Game\n",
    );
    write(&tree, "users/alice.yaml", inputs::user("alice"));
    std::fs::create_dir_all(tree.join("games")).expect("mkdir");
    std::os::unix::fs::symlink(outside.join("secret.yaml"), tree.join("users/mallory.yaml"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.join("game"), tree.join("games/game")).expect("symlink");
    std::os::unix::fs::symlink("/nowhere/at/all", tree.join("users/dangling.yaml"))
        .expect("symlink");
    let expected: Vec<Expected> = [
        "games/game a symlink; spec trees hold only folders and .yaml files",
        "users/dangling.yaml a symlink",
        "users/mallory.yaml a symlink",
    ]
    .iter()
    .map(|e| Expected::parse(e).expect("well-formed expectation"))
    .collect();
    check_tree(&tree, &LoadOptions::default(), &expected).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn file_name_that_is_not_utf8_is_reported() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "users/alice.yaml", inputs::user("alice"));
    let name = std::ffi::OsStr::from_bytes(b"mall\xf6ry.yaml");
    std::fs::write(dir.path().join("users").join(name), inputs::user("mallory")).expect("write");
    let expected = [
        Expected::parse("users/mall\u{fffd}ry.yaml file name is not valid UTF-8")
            .expect("expectation"),
    ];
    check_tree(dir.path(), &LoadOptions::default(), &expected).unwrap_or_else(|e| panic!("{e}"));
}

/// A socket is neither a file nor a folder. git cannot hold one, so only the directory
/// loader sees it.
#[test]
fn special_file_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "users/alice.yaml", inputs::user("alice"));
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("users/mallory.yaml"))
        .expect("bind socket");
    let loaded = load_dir(dir.path(), &LoadOptions::default()).expect("load");
    assert_one(&loaded, "users/mallory.yaml not a regular file or folder");
}

/// 1,000 nested folders: the loader walks them without recursion, and reports the stray
/// folder once rather than every level below it. (libgit2 refuses to add more than 100
/// levels, so this is a directory-only test.)
#[test]
fn deeply_nested_folders() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "users/alice.yaml", inputs::user("alice"));
    let deep = format!("users/deep/{}", vec!["d"; 1_000].join("/"));
    write(dir.path(), &format!("{deep}/bob.yaml"), inputs::user("bob"));
    let loaded = load_dir(dir.path(), &LoadOptions::default()).expect("load");
    assert_one(&loaded, "users/deep Mist does not read this folder");
}

/// A git commit whose blob is over the limit is refused from its size, before reading.
#[test]
fn oversized_blob_in_git_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes = inputs::user("mallory").into_bytes();
    bytes.resize(64 * inputs::MIB, b'\n');
    write(dir.path(), "users/mallory.yaml", &bytes);
    commit_all(dir.path());
    std::fs::remove_file(dir.path().join("users/mallory.yaml")).expect("remove the work tree copy");
    let loaded =
        mist_specs::load::load_git(dir.path(), "HEAD", &LoadOptions::default()).expect("load");
    assert_one(&loaded, "users/mallory.yaml the file is 67108864 bytes");
}

fn assert_one(loaded: &Loaded, expected: &str) {
    let expected = Expected::parse(expected).expect("well-formed expectation");
    assert!(
        loaded.diagnostics.len() == 1 && expected.matches(&loaded.diagnostics[0]),
        "expected one diagnostic like `{} … {}`, got:\n{}",
        expected.file,
        expected.gist,
        render(&loaded.diagnostics)
    );
}

#[test]
fn tree_root_that_is_a_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "file", "x");
    assert!(load_dir(&dir.path().join("file"), &LoadOptions::default()).is_err());
    assert!(load_dir(Path::new("/no/such/tree"), &LoadOptions::default()).is_err());
    assert!(mist_specs::load::load_git(dir.path(), "HEAD", &LoadOptions::default()).is_err());
}
