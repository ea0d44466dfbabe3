//! `mistpipe` end to end: the real binary, real files in temp dirs, real git repositories.

mod common;

use std::path::Path;

use common::{
    Dir, Out, Problem, examples, game_yaml, git, git_commit_all, git_init, git_stage_all, mistpipe,
    mistpipe_with_stdin, parse_report, user_yaml, value_position, version_yaml,
};
use mist_specs::load::{LoadOptions, load_dir};

// ---------------------------------------------------------------------------------------
// validate: text output, exit codes

#[test]
fn validate_examples_is_valid() {
    let out = mistpipe(&examples(), &["validate"]).expect_code(0);
    let report = parse_report(&out.stdout);
    assert!(report.problems.is_empty(), "{out}");
    assert!(report.summary.starts_with("valid: "), "{out}");
    let loaded = load_dir(&examples(), &LoadOptions::default()).unwrap();
    let versions: usize = loaded.specs.games.values().map(|g| g.versions.len()).sum();
    let counted = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let counts = format!(
        "{}, {}, {}",
        counted(loaded.specs.games.len(), "game"),
        counted(versions, "version"),
        counted(loaded.specs.users.len(), "user")
    );
    assert!(report.summary.ends_with(&counts), "{out}");
    assert_eq!(out.stderr, "");

    // The same tree named by DIR from elsewhere.
    let dir = examples();
    let out = mistpipe(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["validate", dir.to_str().unwrap()],
    )
    .expect_code(0);
    assert!(
        out.stdout.lines().last().unwrap().starts_with("valid:"),
        "{out}"
    );
}

#[test]
fn validate_in_a_subfolder_checks_the_whole_repository_and_an_empty_tree_warns() {
    let dir = Dir::new();
    git_init(dir.path());
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    dir.write(
        "games/doom/versions/1.0.yaml",
        &version_yaml("doom", "1.0", "incoming/doom/1.0", "  bogus: 1\n"),
    );

    // From a subfolder, the repository's root is found the way git finds its own, and the
    // paths printed lead from where the command runs.
    let out = mistpipe(&dir.join("games/doom/versions"), &["validate"]).expect_code(1);
    assert!(
        out.stdout
            .starts_with("../../../games/doom/versions/1.0.yaml:"),
        "{out}"
    );
    assert!(out.stdout.contains("invalid: "), "{out}");

    // A folder with no specs at all is not "valid: 0 games".
    let empty = Dir::new();
    let out = mistpipe(empty.path(), &["validate"]).expect_code(1);
    assert!(!out.stdout.contains("valid: "), "{out}");
    assert!(
        out.stderr.contains("no game, version or user specs"),
        "{out}"
    );
}

/// A tree with six problems in three files, each with a known position.
struct Broken {
    dir: Dir,
    /// (file, needle whose first occurrence is the problem's position, part of the message)
    expected: Vec<(&'static str, &'static str, &'static str)>,
}

fn broken_tree() -> Broken {
    let dir = Dir::new();
    dir.write(
        "games/doom/game.yaml",
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: doom\nspec:\n  title: \"\"\n  \
         grants:\n    - nobody\n",
    );
    dir.write(
        "games/doom/versions/1.0.yaml",
        &version_yaml("doom", "1.0", "../etc", "  digest: blake3:xyz\n"),
    );
    dir.write(
        "users/eve.yaml",
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: Eve\nspec:\n  role: user\n  \
         passwordHash: plain\n",
    );
    Broken {
        dir,
        expected: vec![
            ("games/doom/game.yaml", "\"\"", "`spec.title` is empty"),
            (
                "games/doom/game.yaml",
                "nobody",
                "grant to unknown user `nobody`",
            ),
            ("games/doom/versions/1.0.yaml", "../etc", "contains `..`"),
            (
                "games/doom/versions/1.0.yaml",
                "blake3:xyz",
                "64 hex digits",
            ),
            (
                "users/eve.yaml",
                "Eve",
                "must start with a lowercase letter",
            ),
            ("users/eve.yaml", "plain", "not a PHC string"),
        ],
    }
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line as u32, column as u32)
}

/// Checks that `problems` are exactly the broken tree's, with paths prefixed by `prefix`.
#[track_caller]
fn assert_broken_problems(broken: &Broken, problems: &[Problem], prefix: &str, out: &Out) {
    let mut expected: Vec<(String, u32, u32, &str)> = broken
        .expected
        .iter()
        .map(|(file, needle, message)| {
            let (line, column) = position(&broken.dir.read(file), needle);
            (format!("{prefix}{file}"), line, column, *message)
        })
        .collect();
    expected.sort();
    let mut actual: Vec<(String, u32, u32, &str)> = problems
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                p.line.unwrap_or_else(|| panic!("no line in {p:?}\n{out}")),
                p.column
                    .unwrap_or_else(|| panic!("no column in {p:?}\n{out}")),
                p.message.as_str(),
            )
        })
        .collect();
    actual.sort();
    assert_eq!(actual.len(), expected.len(), "{out}");
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!((&a.0, a.1, a.2), (&e.0, e.1, e.2), "{out}");
        assert!(
            a.3.contains(e.3),
            "{:?} does not contain {:?}\n{out}",
            a.3,
            e.3
        );
    }
}

#[test]
fn validate_reports_every_problem_with_its_position() {
    let broken = broken_tree();

    // From inside the tree: paths relative to it.
    let out = mistpipe(broken.dir.path(), &["validate"]).expect_code(1);
    assert_eq!(out.stderr, "", "problems go to stdout");
    let report = parse_report(&out.stdout);
    assert_broken_problems(&broken, &report.problems, "", &out);
    assert!(report.summary.starts_with("invalid: "), "{out}");
    assert!(report.summary.contains("6 problems in 3 files"), "{out}");
    // Hints are printed for the problems that have an obvious fix.
    let hinted: Vec<&str> = report
        .problems
        .iter()
        .filter(|p| p.hint.is_some())
        .map(|p| p.message.as_str())
        .collect();
    assert!(hinted.iter().any(|m| m.contains("`nobody`")), "{out}");
    assert!(hinted.iter().any(|m| m.contains("64 hex digits")), "{out}");

    // From its parent, naming DIR: every path starts with DIR.
    let parent = broken.dir.path().parent().unwrap();
    let name = broken.dir.path().file_name().unwrap().to_str().unwrap();
    let out = mistpipe(parent, &["validate", name]).expect_code(1);
    let report = parse_report(&out.stdout);
    assert_broken_problems(&broken, &report.problems, &format!("{name}/"), &out);
    for problem in &report.problems {
        assert!(
            parent.join(&problem.path).is_file(),
            "{} is not a file from the cwd",
            problem.path
        );
    }
}

#[test]
fn validate_problem_without_a_position_names_the_file() {
    let dir = Dir::new();
    dir.write("users/bob.yml", &user_yaml("bob"));
    let out = mistpipe(dir.path(), &["validate"]).expect_code(1);
    let report = parse_report(&out.stdout);
    assert_eq!(report.problems.len(), 1, "{out}");
    let problem = &report.problems[0];
    assert_eq!(
        (problem.path.as_str(), problem.line, problem.column),
        ("users/bob.yml", None, None)
    );
    assert!(out.stdout.starts_with("users/bob.yml: error: "), "{out}");
    assert!(
        problem.hint.as_deref().unwrap().contains("bob.yaml"),
        "{out}"
    );
    assert!(report.summary.contains("1 problem in 1 file"), "{out}");
}

#[test]
fn validate_json_lists_the_same_problems() {
    let broken = broken_tree();
    let text = parse_report(&mistpipe(broken.dir.path(), &["validate"]).stdout).problems;
    let out = mistpipe(broken.dir.path(), &["validate", "--format", "json"]).expect_code(1);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON array ({e}):\n{out}"));
    let from_json: Vec<Problem> = rows
        .iter()
        .map(|row| {
            let object = row.as_object().expect("each problem is an object");
            for key in object.keys() {
                assert!(
                    ["file", "line", "column", "message", "hint"].contains(&key.as_str()),
                    "unexpected key {key} in {row}"
                );
            }
            for key in ["file", "line", "column", "message"] {
                assert!(object.contains_key(key), "no {key} in {row}");
            }
            Problem {
                path: row["file"].as_str().unwrap().to_string(),
                line: row["line"].as_u64().map(|n| n as u32),
                column: row["column"].as_u64().map(|n| n as u32),
                message: row["message"].as_str().unwrap().to_string(),
                hint: object
                    .get("hint")
                    .map(|h| h.as_str().expect("hint is a string").to_string()),
            }
        })
        .collect();
    assert_eq!(from_json, text);
    assert_broken_problems(&broken, &from_json, "", &out);

    let out = mistpipe(&examples(), &["validate", "--format", "json"]).expect_code(0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn validate_json_is_the_same_as_format_json() {
    let broken = broken_tree();
    let old = mistpipe(broken.dir.path(), &["validate", "--format", "json"]).expect_code(1);
    let out = mistpipe(broken.dir.path(), &["validate", "--json"]).expect_code(1);
    assert_eq!(out.stdout, old.stdout);
    let out = mistpipe(&examples(), &["validate", "--json"]).expect_code(0);
    assert_eq!(out.stdout.trim(), "[]", "{out}");
}

#[test]
fn the_spec_repository_is_named_with_repo_by_every_command() {
    let outside = Dir::new();
    let repo = Dir::new();
    git_init(repo.path());
    let r = repo.path().to_str().unwrap();
    let elsewhere = outside.path();
    mistpipe(
        elsewhere,
        &["new", "game", "doom", "--title", "Doom", "--repo", r],
    )
    .expect_code(0);
    let out = mistpipe(elsewhere, &["validate", "--repo", r]).expect_code(0);
    assert!(out.stdout.contains("1 game, 0 versions, 0 users"), "{out}");
    // The folder as an argument, as older scripts and hooks give it, still works...
    mistpipe(elsewhere, &["validate", r]).expect_code(0);
    // ...but not both at once.
    mistpipe(elsewhere, &["validate", r, "--repo", r]).expect_code(2);
    mistpipe(elsewhere, &["hook", "install", "--repo", r]).expect_code(0);
    assert!(repo.join(".git/hooks/pre-commit").is_file());
    // Every command's help shows --repo, and none shows the folder as an argument.
    for command in [
        &["validate"][..],
        &["plan"],
        &["hook", "install"],
        &["new", "game"],
        &["new", "version"],
        &["user", "add"],
        &["user", "passwd"],
        &["confirm-retire"],
    ] {
        let out = mistpipe(elsewhere, &[command, &["--help"]].concat()).expect_code(0);
        assert!(out.stdout.contains("--repo <DIR>"), "{command:?}: {out}");
        assert!(!out.stdout.contains("[DIR]"), "{command:?}: {out}");
    }
}

#[test]
fn hook_install_outside_a_git_repository_says_so_in_words() {
    let dir = Dir::new();
    let out = mistpipe(dir.path(), &["hook", "install"]).expect_code(2);
    assert!(
        out.stderr.starts_with(
            "error: the current folder is not in a git repository, and a hook belongs to one"
        ),
        "{out}"
    );
    assert!(out.stderr.contains("git init"), "{out}");
    assert!(!out.stderr.contains("class="), "no libgit2 codes: {out}");
    assert!(dir.listing().is_empty());
    // From a subfolder of a repository, the hook goes to the repository.
    git_init(dir.path());
    dir.write("games/.keep", "");
    mistpipe(&dir.join("games"), &["hook", "install"]).expect_code(0);
    assert!(dir.join(".git/hooks/pre-commit").is_file());
}

#[test]
fn bad_indentation_is_reported_on_the_line_at_fault_with_a_hint() {
    let dir = Dir::new();
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    dir.write(
        "users/bob.yaml",
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: bob\nspec:\n  role: user\n   \
         disabled: true\n",
    );
    let out = mistpipe(dir.path(), &["validate"]).expect_code(1);
    let report = parse_report(&out.stdout);
    assert_eq!(report.problems.len(), 1, "{out}");
    let problem = &report.problems[0];
    assert_eq!(problem.path, "users/bob.yaml");
    assert_eq!((problem.line, problem.column), (Some(7), Some(4)), "{out}");
    let hint = problem.hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("deeper than line 6") && hint.contains("indent it by 2 spaces"),
        "{out}"
    );

    dir.write(
        "users/bob.yaml",
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: bob\nspec:\n\trole: user\n",
    );
    let out = mistpipe(dir.path(), &["validate"]).expect_code(1);
    let problem = &parse_report(&out.stdout).problems[0];
    assert_eq!(problem.line, Some(6), "{out}");
    assert!(
        problem.hint.as_deref().unwrap_or_default().contains("tab"),
        "{out}"
    );
}

#[test]
fn validate_exits_2_when_it_cannot_run() {
    let dir = Dir::new();
    dir.write("a-file", "x");
    git_init(&dir.join("repo"));
    let cases: &[(&[&str], &str)] = &[
        (&["validate", "no-such-dir"], "no-such-dir"),
        (&["validate", "a-file"], "a-file"),
        (&["validate", "repo", "--rev", "nosuchrev"], "nosuchrev"),
        (&["validate", ".", "--staged"], "repository"),
        (&["validate", ".", "--rev", "HEAD"], "repository"),
    ];
    for (args, mentioned) in cases {
        let out = mistpipe(dir.path(), args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out}");
        assert!(out.stderr.contains(mentioned), "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new();
    let cases: &[&[&str]] = &[
        &[],
        &["validate", "--format", "xml"],
        &["validate", "--rev", "HEAD", "--staged"],
        &["no-such-command"],
        &["new", "game", "x"],
    ];
    for args in cases {
        let out = mistpipe(dir.path(), args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(
            out.stderr.starts_with("error:") || out.stderr.contains("Usage:"),
            "{args:?}: {out}"
        );
    }
    assert!(dir.listing().is_empty());
}

// ---------------------------------------------------------------------------------------
// validate --rev and --staged

#[test]
fn validate_rev_reads_the_commit_not_the_work_tree() {
    let dir = Dir::new();
    let repo = git_init(dir.path());
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    let good = git_commit_all(&repo, "good");
    // The work tree breaks; HEAD is still good.
    dir.write("games/doom/game.yaml", "apiVersion: mist/v1\nkind: Gam\n");
    mistpipe(dir.path(), &["validate"]).expect_code(1);
    let out = mistpipe(dir.path(), &["validate", "--rev", "HEAD"]).expect_code(0);
    let summary = out.stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("valid: ") && summary.contains(&good),
        "{out}"
    );

    // Commit the broken file, then mend the work tree: the other way round.
    let bad = git_commit_all(&repo, "bad");
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    mistpipe(dir.path(), &["validate"]).expect_code(0);
    let out = mistpipe(dir.path(), &["validate", "--rev", "HEAD"]).expect_code(1);
    let report = parse_report(&out.stdout);
    assert!(!report.problems.is_empty(), "{out}");
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.path == "games/doom/game.yaml"),
        "{out}"
    );
    assert!(report.summary.contains(&bad), "{out}");
    // Older commits by id, and the JSON format, work the same way.
    mistpipe(dir.path(), &["validate", "--rev", &good]).expect_code(0);
    mistpipe(dir.path(), &["validate", "--rev", "HEAD~1"]).expect_code(0);
    let out = mistpipe(dir.path(), &["validate", "--rev", &bad, "--format", "json"]).expect_code(1);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows[0]["file"], "games/doom/game.yaml");

    // DIR may be given from outside the repository.
    let parent = dir.path().parent().unwrap();
    let name = dir.path().file_name().unwrap().to_str().unwrap();
    mistpipe(parent, &["validate", name, "--rev", &good]).expect_code(0);
    mistpipe(parent, &["validate", name, "--rev", &bad]).expect_code(1);
}

#[test]
fn validate_staged_reads_the_index_not_the_work_tree() {
    let dir = Dir::new();
    let repo = git_init(dir.path());
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    git_commit_all(&repo, "good");

    // An unstaged breakage is not what `git commit` would record.
    dir.write("games/doom/game.yaml", "apiVersion: mist/v1\nkind: Gam\n");
    let out = mistpipe(dir.path(), &["validate", "--staged"]).expect_code(0);
    assert!(
        out.stdout.lines().last().unwrap().contains("(staged)"),
        "{out}"
    );

    // Staged, it is.
    git_stage_all(&repo);
    let out = mistpipe(dir.path(), &["validate", "--staged"]).expect_code(1);
    assert_eq!(
        parse_report(&out.stdout).problems[0].path,
        "games/doom/game.yaml"
    );

    // Mending the work tree without staging changes nothing for --staged.
    dir.write("games/doom/game.yaml", &game_yaml("doom"));
    mistpipe(dir.path(), &["validate"]).expect_code(0);
    mistpipe(dir.path(), &["validate", "--staged"]).expect_code(1);

    // A new file counts only once staged.
    git_stage_all(&repo);
    dir.write("users/bob.yaml", "not: [a, user");
    mistpipe(dir.path(), &["validate", "--staged"]).expect_code(0);
    git_stage_all(&repo);
    mistpipe(dir.path(), &["validate", "--staged"]).expect_code(1);

    // Reading the index changes neither refs nor the index itself.
    let head = repo.head().unwrap().target().unwrap();
    let index = std::fs::read(dir.join(".git/index")).unwrap();
    mistpipe(dir.path(), &["validate", "--staged"]).expect_code(1);
    assert_eq!(repo.head().unwrap().target().unwrap(), head);
    assert_eq!(std::fs::read(dir.join(".git/index")).unwrap(), index);
}

// ---------------------------------------------------------------------------------------
// validate --nas

/// A NAS folder with one build, and a spec repo whose version pins its digest.
struct Nas {
    root: Dir,
}

impl Nas {
    fn new() -> Nas {
        let root = Dir::new();
        root.write("nas/incoming/doom/1.0/doom.exe", "MZ the game");
        root.write("nas/incoming/doom/1.0/data/e1m1.wad", &"wad".repeat(1000));
        root.write("outside/build/secret", "not on the NAS");
        root.write("specs/games/doom/game.yaml", &game_yaml("doom"));
        Nas { root }
    }

    fn nas(&self) -> String {
        self.root.join("nas").to_str().unwrap().to_string()
    }

    fn digest(&self, rel: &str) -> String {
        mist_games::scan::scan(&self.root.join(rel))
            .unwrap()
            .tree_digest()
            .to_string()
    }

    fn validate(&self) -> Out {
        mistpipe(
            &self.root.join("specs"),
            &["validate", "--nas", &self.nas()],
        )
    }
}

#[test]
fn validate_nas_checks_pinned_digests() {
    let nas = Nas::new();
    let digest = nas.digest("nas/incoming/doom/1.0");
    let version = version_yaml(
        "doom",
        "1.0",
        "incoming/doom/1.0",
        &format!("  digest: {digest}\n"),
    );
    nas.root
        .write("specs/games/doom/versions/1.0.yaml", &version);
    let out = nas.validate().expect_code(0);
    assert!(out.stdout.starts_with("valid: "), "{out}");
    // Without --nas nothing is hashed, so a changed build goes unnoticed.
    nas.root
        .write("nas/incoming/doom/1.0/doom.exe", "MZ the game, patched");
    mistpipe(&nas.root.join("specs"), &["validate"]).expect_code(0);

    let out = nas.validate().expect_code(1);
    let report = parse_report(&out.stdout);
    assert_eq!(report.problems.len(), 1, "{out}");
    let problem = &report.problems[0];
    assert_eq!(problem.path, "games/doom/versions/1.0.yaml");
    let (line, column) = value_position(&version, "digest");
    assert_eq!(
        (problem.line, problem.column),
        (Some(line), Some(column)),
        "{out}"
    );
    assert!(problem.message.contains("pinned digest"), "{out}");
    assert!(
        problem
            .message
            .contains(&nas.digest("nas/incoming/doom/1.0")),
        "{out}"
    );
    assert!(problem.hint.is_some(), "{out}");

    // A new file in the build changes its digest too.
    nas.root
        .write("nas/incoming/doom/1.0/doom.exe", "MZ the game");
    nas.validate().expect_code(0);
    nas.root.write("nas/incoming/doom/1.0/extra.txt", "");
    nas.validate().expect_code(1);
}

#[test]
fn validate_nas_confines_sources_to_the_nas() {
    let nas = Nas::new();
    std::os::unix::fs::symlink(
        nas.root.join("outside"),
        nas.root.join("nas/incoming/escape"),
    )
    .unwrap();
    // A well-formed pin that matches nothing: hashing a build would report a mismatch.
    let pinned = format!("  digest: blake3:{}\n", "0".repeat(64));
    let cases = [
        ("1.0", "incoming/escape/build", "outside the NAS"),
        ("2.0", "../outside/build", "contains `..`"),
        ("3.0", "incoming/doom/9.9", "does not exist"),
    ];
    for (version, source, _) in cases {
        let text = version_yaml("doom", version, source, &pinned);
        nas.root
            .write(&format!("specs/games/doom/versions/{version}.yaml"), &text);
    }
    let out = nas.validate().expect_code(1);
    let report = parse_report(&out.stdout);
    assert_eq!(report.problems.len(), cases.len(), "{out}");
    for ((version, source, message), problem) in cases.iter().zip(&report.problems) {
        assert_eq!(
            problem.path,
            format!("games/doom/versions/{version}.yaml"),
            "{out}"
        );
        assert!(problem.message.contains(message), "{source}: {out}");
        let text = nas
            .root
            .read(&format!("specs/games/doom/versions/{version}.yaml"));
        let (line, column) = value_position(&text, "source");
        assert_eq!(
            (problem.line, problem.column),
            (Some(line), Some(column)),
            "{out}"
        );
    }
    // Nothing outside the NAS (or missing) was hashed.
    assert!(!out.stdout.contains("hashes to"), "{out}");
}

// ---------------------------------------------------------------------------------------
// new game, new version, user add

/// Reads the `$schema` line of a scaffolded file and checks it names an existing schema of
/// the right kind, relative to the file.
#[track_caller]
fn assert_schema_line(repo: &Dir, rel: &str, kind: &str) {
    let text = repo.read(rel);
    let first = text.lines().next().unwrap();
    let target = first
        .strip_prefix("# yaml-language-server: $schema=")
        .unwrap_or_else(|| panic!("{rel} starts with {first:?}"));
    assert!(
        !target.starts_with('/'),
        "{rel}: the schema path {target} is absolute"
    );
    let schema = repo.join(rel).parent().unwrap().join(target);
    assert!(schema.is_file(), "{rel}: {target} does not exist");
    assert_eq!(
        std::fs::canonicalize(&schema).unwrap(),
        std::fs::canonicalize(repo.join(&format!("schemas/{kind}.schema.json"))).unwrap()
    );
    let printed = mistpipe(repo.path(), &["schema", kind])
        .expect_code(0)
        .stdout;
    assert_eq!(
        std::fs::read_to_string(&schema).unwrap(),
        printed,
        "{rel}: stale schema"
    );
}

#[test]
fn new_writes_specs_that_validate() {
    let repo = Dir::new();
    let nas = Dir::new();
    nas.write("incoming/celeste/1.4.0.1/Celeste", "binary");
    let r = repo.path().to_str().unwrap();

    let out = mistpipe_with_stdin(
        repo.path(),
        &[
            "user",
            "add",
            "alice",
            "--display-name",
            "Alice",
            "--password-stdin",
        ],
        "long enough password\n",
    )
    .expect_code(0);
    assert!(out.stdout.contains("users/alice.yaml"), "{out}");
    let out = mistpipe(
        Path::new("/"),
        &[
            "new",
            "game",
            "celeste",
            "--title",
            "Celeste",
            "--description",
            "A mountain.",
            "--private",
            "--grant",
            "alice",
            "--executable",
            "bin/Celeste",
            "--repo",
            r,
        ],
    )
    .expect_code(0);
    assert!(out.stdout.contains("games/celeste/game.yaml"), "{out}");
    mistpipe(
        repo.path(),
        &[
            "new",
            "version",
            "celeste",
            "1.4.0.1",
            "--source",
            "incoming/celeste/1.4.0.1",
            "--notes",
            "Fixes the chapter 7 crash.",
        ],
    )
    .expect_code(0);

    assert_schema_line(&repo, "games/celeste/game.yaml", "game");
    assert_schema_line(&repo, "games/celeste/versions/1.4.0.1.yaml", "version");
    assert_schema_line(&repo, "users/alice.yaml", "user");

    let out = mistpipe(
        repo.path(),
        &["validate", "--nas", nas.path().to_str().unwrap()],
    )
    .expect_code(0);
    assert!(out.stdout.contains("1 game, 1 version, 1 user"), "{out}");

    let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
    assert!(loaded.is_valid());
    let celeste = &loaded.specs.games["celeste"];
    assert_eq!(celeste.game.spec.title, "Celeste");
    assert_eq!(
        celeste.game.spec.description.as_deref(),
        Some("A mountain.")
    );
    assert!(celeste.game.spec.private);
    assert_eq!(celeste.game.spec.grants, ["alice"]);
    assert_eq!(
        celeste.game.spec.launch.as_ref().unwrap().executable,
        "bin/Celeste"
    );
    assert_eq!(
        celeste.game.spec.retention.keep_versions, 0,
        "keep every version by default"
    );
    assert!(!celeste.game.spec.retention.prune, "never prune by default");
    let version = &celeste.versions[0];
    assert_eq!(version.spec.source, "incoming/celeste/1.4.0.1");
    assert_eq!(version.spec.digest, None);
    assert_eq!(
        version.spec.notes.as_deref(),
        Some("Fixes the chapter 7 crash.")
    );
    let alice = &loaded.specs.users["alice"];
    assert_eq!(alice.spec.display_name.as_deref(), Some("Alice"));
    assert_eq!(alice.spec.role, mist_specs::model::Role::User);
    assert!(!alice.spec.disabled);
}

#[test]
fn new_never_overwrites() {
    let repo = Dir::new();
    let add_user = |repo: &Dir| {
        mistpipe_with_stdin(
            repo.path(),
            &["user", "add", "bob", "--password-stdin"],
            "password-1\n",
        )
    };
    let commands: [(&str, &[&str]); 3] = [
        (
            "games/doom/game.yaml",
            &["new", "game", "doom", "--title", "Doom"],
        ),
        (
            "games/doom/versions/1.0.yaml",
            &["new", "version", "doom", "1.0", "--source", "incoming/doom"],
        ),
        ("users/bob.yaml", &["user", "add", "bob"]),
    ];
    for (rel, args) in commands {
        let first = if rel.starts_with("users/") {
            add_user(&repo)
        } else {
            mistpipe(repo.path(), args)
        };
        first.expect_code(0);
        // Hand edits must survive a second run.
        let edited = format!("{}# edited by hand\n", repo.read(rel));
        repo.write(rel, &edited);
        let again = if rel.starts_with("users/") {
            add_user(&repo)
        } else {
            mistpipe(repo.path(), args)
        };
        let again = again.expect_code(2);
        assert!(again.stderr.starts_with("error: "), "{again}");
        assert!(again.stderr.contains("already exists"), "{again}");
        assert_eq!(repo.read(rel), edited, "{rel} was overwritten");
    }
    mistpipe(repo.path(), &["validate"]).expect_code(0);
}

#[test]
fn new_refuses_invalid_input_and_writes_nothing() {
    let repo = Dir::new();
    repo.write("games/doom/game.yaml", &game_yaml("doom"));
    repo.write("users/bob.yaml", &user_yaml("bob"));
    let before = repo.listing();
    let long = "a".repeat(64);
    let cases: &[&[&str]] = &[
        &["new", "game", "Doom2", "--title", "x"],
        &["new", "game", "doom_2", "--title", "x"],
        &["new", "game", "doom.2", "--title", "x"],
        &["new", "game", "../evil", "--title", "x"],
        &["new", "game", "a/b", "--title", "x"],
        &["new", "game", "é", "--title", "x"],
        &["new", "game", "", "--title", "x"],
        &["new", "game", &long, "--title", "x"],
        &["new", "game", "quake", "--title", ""],
        &["new", "game", "quake", "--title", "   "],
        &["new", "game", "quake", "--title", "x", "--grant", "Bob"],
        &[
            "new",
            "game",
            "quake",
            "--title",
            "x",
            "--executable",
            "/bin/sh",
        ],
        &[
            "new",
            "game",
            "quake",
            "--title",
            "x",
            "--executable",
            "../../bin/sh",
        ],
        &[
            "new",
            "version",
            "doom",
            "../1.0",
            "--source",
            "incoming/doom",
        ],
        &["new", "version", "doom", "1 0", "--source", "incoming/doom"],
        &[
            "new",
            "version",
            "doom",
            "1..0",
            "--source",
            "incoming/doom",
        ],
        &[
            "new",
            "version",
            "doom",
            "1.0",
            "--source",
            "/srv/nas/incoming/doom",
        ],
        &[
            "new",
            "version",
            "doom",
            "1.0",
            "--source",
            "../incoming/doom",
        ],
        &["new", "version", "Doom", "1.0", "--source", "incoming/doom"],
        &[
            "new",
            "version",
            "quake",
            "1.0",
            "--source",
            "incoming/quake",
        ],
        &["user", "add", "Alice", "--password-stdin"],
        &["user", "add", "../alice", "--password-stdin"],
    ];
    for args in cases {
        let out = mistpipe_with_stdin(repo.path(), args, "long enough password\n");
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert_eq!(repo.listing(), before, "{args:?} wrote something");
    }
}

#[test]
fn new_version_of_an_unknown_game_says_how_to_create_it() {
    let repo = Dir::new();
    let out = mistpipe(
        repo.path(),
        &[
            "new",
            "version",
            "quake",
            "1.0",
            "--source",
            "incoming/quake",
        ],
    )
    .expect_code(2);
    assert!(out.stderr.contains("mistpipe new game quake"), "{out}");
    assert!(repo.listing().is_empty(), "{:?}", repo.listing());
}

#[test]
fn new_version_with_nas_pins_the_manifest_digest() {
    let nas = Dir::new();
    nas.write("incoming/doom/1.0/doom.exe", "MZ");
    nas.write("incoming/doom/1.0/base/doom.wad", &"IWAD".repeat(4096));
    nas.write("incoming/doom/1.0/empty", "");
    std::os::unix::fs::symlink(nas.join("incoming/doom/1.0"), nas.join("incoming/linked")).unwrap();
    let outside = Dir::new();
    outside.write("build/x", "x");
    std::os::unix::fs::symlink(outside.path(), nas.join("incoming/escape")).unwrap();
    let n = nas.path().to_str().unwrap();
    let repo = Dir::new();
    repo.write("games/doom/game.yaml", &game_yaml("doom"));

    let build = nas.join("incoming/doom/1.0");
    let printed = mistpipe(repo.path(), &["manifest", build.to_str().unwrap()])
        .expect_code(0)
        .stdout;
    let digest = printed.trim_end();

    let args = [
        "new",
        "version",
        "doom",
        "1.0",
        "--source",
        "incoming/doom/1.0",
        "--nas",
        n,
    ];
    let out = mistpipe(repo.path(), &args).expect_code(0);
    assert!(
        out.stderr.contains(digest),
        "it shows what it pinned: {out}"
    );
    let text = repo.read("games/doom/versions/1.0.yaml");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("digest:"))
        .expect("a digest line");
    assert_eq!(
        line.trim_start().strip_prefix("digest:").unwrap().trim(),
        digest
    );
    let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
    assert_eq!(
        loaded.specs.games["doom"].versions[0]
            .spec
            .digest
            .as_deref(),
        Some(digest)
    );

    // A source reached through a symlink inside the NAS is fine.
    mistpipe(
        repo.path(),
        &[
            "new",
            "version",
            "doom",
            "1.1",
            "--source",
            "incoming/linked",
            "--nas",
            n,
        ],
    )
    .expect_code(0);
    mistpipe(repo.path(), &["validate", "--nas", n]).expect_code(0);

    // "so the server refuses a build that changes afterwards"
    nas.write("incoming/doom/1.0/empty", "not any more");
    let out = mistpipe(repo.path(), &["validate", "--nas", n]).expect_code(1);
    assert!(out.stdout.contains("pinned digest"), "{out}");

    // Sources that are missing or leave the NAS are refused, and nothing is written.
    let before = repo.listing();
    for source in [
        "incoming/escape/build",
        "incoming/doom/2.0",
        "incoming/doom/1.0/doom.exe",
    ] {
        let out = mistpipe(
            repo.path(),
            &[
                "new", "version", "doom", "2.0", "--source", source, "--nas", n,
            ],
        );
        let out = out.expect_code(2);
        assert!(out.stderr.starts_with("error: "), "{source}: {out}");
        assert_eq!(repo.listing(), before, "{source}");
    }
}

#[test]
fn titles_and_texts_round_trip() {
    let texts = [
        "Celeste",
        "Doom: Eternal",
        "\"Quoted\" and 'single'",
        "key: value # not a comment",
        "- a dash",
        "[not, a, list]",
        "{not: a map}",
        "&anchor *alias !tag |pipe >fold",
        "Pokémon ✨ 日本語 🎮",
        "two\nlines",
        "trailing newline\n",
        "  leading and trailing spaces  ",
        "tab\there",
        "back\\slash \\n not a newline",
        "null",
        "true",
        "0x1F",
        "1.4e3",
        "~",
        "%percent @at `tick`",
        "bell\u{7} nbsp\u{a0} bom\u{feff} line sep\u{2028} del\u{7f}",
        "{{ not a template }} {% neither %}",
    ];
    let repo = Dir::new();
    repo.write("games/g/game.yaml", &game_yaml("g"));
    for (i, text) in texts.iter().enumerate() {
        let name = format!("g{i}");
        // `--flag=value`, so that a text starting with `-` is not taken for a flag.
        let flag = |flag: &str| format!("--{flag}={text}");
        mistpipe(
            repo.path(),
            &["new", "game", &name, &flag("title"), &flag("description")],
        )
        .expect_code(0);
        let version = format!("1.{i}");
        mistpipe(
            repo.path(),
            &[
                "new",
                "version",
                "g",
                &version,
                "--source",
                "in/g",
                &flag("notes"),
            ],
        )
        .expect_code(0);
        mistpipe_with_stdin(
            repo.path(),
            &[
                "user",
                "add",
                &name,
                &flag("display-name"),
                "--password-stdin",
            ],
            "long enough password\n",
        )
        .expect_code(0);
    }
    let out = mistpipe(repo.path(), &["validate"]);
    assert_eq!(out.code, 0, "{out}");
    let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let game = &loaded.specs.games[&format!("g{i}")].game.spec;
        assert_eq!(game.title, *text);
        assert_eq!(game.description.as_deref(), Some(*text));
        let version = &loaded.specs.games["g"].versions[i];
        assert_eq!(version.metadata.name, format!("1.{i}"));
        assert_eq!(version.spec.notes.as_deref(), Some(*text));
        let user = &loaded.specs.users[&format!("g{i}")].spec;
        assert_eq!(user.display_name.as_deref(), Some(*text));
    }
}

// ---------------------------------------------------------------------------------------
// user add

/// The OWASP password storage cheat sheet's argon2id configurations (m KiB, t), p = 1.
const OWASP: [(u32, u32); 5] = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)];

#[test]
fn user_add_stores_an_argon2id_hash_of_the_password() {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;

    let repo = Dir::new();
    let password = "correct horse battery staple";
    let out = mistpipe_with_stdin(
        repo.path(),
        &[
            "user",
            "add",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    )
    .expect_code(0);
    let text = repo.read("users/carol.yaml");
    for (what, haystack) in [
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
        ("the file", &text),
    ] {
        assert!(
            !haystack.contains(password),
            "the password appears in {what}"
        );
        assert!(
            !haystack.contains("battery"),
            "part of the password appears in {what}"
        );
    }

    let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    let user = &loaded.specs.users["carol"];
    assert_eq!(user.spec.role, mist_specs::model::Role::Admin);
    let stored = &user.spec.password_hash;
    let hash = PasswordHash::new(stored).unwrap();
    assert_eq!(hash.algorithm.as_str(), "argon2id");
    assert_eq!(hash.version, Some(19));
    let params = argon2::Params::try_from(&hash).unwrap();
    assert_eq!(params.p_cost(), 1);
    assert!(
        OWASP
            .iter()
            .any(|&(m, t)| params.m_cost() >= m && params.t_cost() >= t),
        "m={} t={} is weaker than OWASP's recommendation",
        params.m_cost(),
        params.t_cost()
    );
    assert!(
        hash.salt.unwrap().as_ref().len() >= 16,
        "a salt of at least 16 bytes"
    );

    let argon2 = argon2::Argon2::default();
    assert!(argon2.verify_password(password.as_bytes(), &hash).is_ok());
    for wrong in [
        "correct horse battery stapl",
        "Correct horse battery staple",
        "",
        "correct horse battery staple\n",
    ] {
        assert!(
            argon2.verify_password(wrong.as_bytes(), &hash).is_err(),
            "{wrong:?} verifies"
        );
    }

    // A second user with the same password gets a different salt.
    mistpipe_with_stdin(
        repo.path(),
        &["user", "add", "dave", "--password-stdin"],
        &format!("{password}\n"),
    )
    .expect_code(0);
    let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
    assert_ne!(loaded.specs.users["dave"].spec.password_hash, *stored);
    mistpipe(repo.path(), &["validate"]).expect_code(0);
}

#[test]
fn user_add_reads_only_the_first_line() {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;

    let repo = Dir::new();
    for (name, stdin, password) in [
        ("unix", "first line  \nsecond line\n", "first line  "),
        ("windows", "windows line\r\nsecond\r\n", "windows line"),
        ("no-newline", "no newline at all", "no newline at all"),
    ] {
        mistpipe_with_stdin(
            repo.path(),
            &["user", "add", name, "--password-stdin"],
            stdin,
        )
        .expect_code(0);
        let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
        let stored = &loaded.specs.users[name].spec.password_hash;
        let hash = PasswordHash::new(stored).unwrap();
        let argon2 = argon2::Argon2::default();
        assert!(
            argon2.verify_password(password.as_bytes(), &hash).is_ok(),
            "{name}"
        );
        if stdin != password {
            assert!(
                argon2.verify_password(stdin.as_bytes(), &hash).is_err(),
                "{name}"
            );
        }
    }
}

#[test]
fn user_add_refuses_short_passwords() {
    let repo = Dir::new();
    for stdin in [
        "",
        "\n",
        "short\n",
        "1234567\nlong second line\n",
        "ééééééé\n",
    ] {
        let out = mistpipe_with_stdin(
            repo.path(),
            &["user", "add", "bob", "--password-stdin"],
            stdin,
        )
        .expect_code(2);
        assert!(out.stderr.starts_with("error: "), "{out}");
        assert!(out.stderr.contains("at least"), "{out}");
        assert!(
            repo.listing().is_empty(),
            "{stdin:?} wrote {:?}",
            repo.listing()
        );
    }
    // Eight characters, not bytes, is enough.
    mistpipe_with_stdin(
        repo.path(),
        &["user", "add", "bob", "--password-stdin"],
        "éééééééé\n",
    )
    .expect_code(0);
}

#[test]
fn user_add_without_a_terminal_needs_password_stdin() {
    let repo = Dir::new();
    let out = mistpipe_with_stdin(
        repo.path(),
        &["user", "add", "bob"],
        "a password on stdin\n",
    )
    .expect_code(2);
    assert!(out.stderr.starts_with("error: "), "{out}");
    assert!(out.stderr.contains("--password-stdin"), "{out}");
    assert!(!out.stderr.contains("a password on stdin"), "{out}");
    assert!(repo.listing().is_empty());
}

// ---------------------------------------------------------------------------------------
// schema and manifest

#[test]
fn schema_prints_one_kind_as_json() {
    let dir = Dir::new();
    for kind in ["game", "version", "user"] {
        let out = mistpipe(dir.path(), &["schema", kind]).expect_code(0);
        let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert!(
            schema["$schema"]
                .as_str()
                .unwrap()
                .contains("json-schema.org"),
            "{kind}"
        );
        let properties = schema["properties"].as_object().unwrap();
        for key in ["apiVersion", "kind", "metadata", "spec"] {
            assert!(properties.contains_key(key), "{kind} lacks {key}");
        }
        assert_eq!(
            schema["additionalProperties"], false,
            "{kind}: unknown fields are errors"
        );
    }
    let out = mistpipe(dir.path(), &["schema"]).expect_code(0);
    let all: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(all.as_object().unwrap().len(), 3, "{out}");
    assert!(dir.listing().is_empty());
}

#[test]
fn schema_out_writes_the_three_files() {
    let dir = Dir::new();
    let out = mistpipe(dir.path(), &["schema", "--out", "schemas"]).expect_code(0);
    assert_eq!(out.stdout.lines().count(), 3, "{out}");
    assert_eq!(
        dir.listing(),
        [
            "schemas",
            "schemas/game.schema.json",
            "schemas/user.schema.json",
            "schemas/version.schema.json"
        ]
    );
    for kind in ["game", "version", "user"] {
        let printed = mistpipe(dir.path(), &["schema", kind])
            .expect_code(0)
            .stdout;
        assert_eq!(
            dir.read(&format!("schemas/{kind}.schema.json")),
            printed,
            "{kind}"
        );
    }
    // Schemas are generated, so writing them again replaces them.
    dir.write("schemas/game.schema.json", "stale");
    mistpipe(dir.path(), &["schema", "game", "--out", "schemas"]).expect_code(0);
    assert_ne!(dir.read("schemas/game.schema.json"), "stale");
    assert_eq!(
        dir.listing().len(),
        4,
        "no temporary file is left: {:?}",
        dir.listing()
    );
}

#[test]
fn committed_example_schemas_are_current() {
    let dir = Dir::new();
    mistpipe(dir.path(), &["schema", "--out", "."]).expect_code(0);
    for file in [
        "game.schema.json",
        "version.schema.json",
        "user.schema.json",
    ] {
        let committed = std::fs::read_to_string(examples().join("schemas").join(file)).unwrap();
        assert!(
            committed == dir.read(file),
            "specs/examples/schemas/{file} is stale; regenerate it with \
             `cargo run -p mistpipe -- schema --out specs/examples/schemas`"
        );
    }
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("blake3:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[test]
fn manifest_prints_the_tree_digest() {
    let build = Dir::new();
    build.write("game.exe", "MZ");
    build.write("data/level1.pak", &"pak".repeat(10_000));
    build.write("data/empty", "");
    let out = mistpipe(build.path(), &["manifest", "."]).expect_code(0);
    assert!(
        out.stdout.ends_with('\n') && out.stdout.lines().count() == 1,
        "{out}"
    );
    let digest = out.stdout.trim_end();
    assert!(is_digest(digest), "{out}");
    assert_eq!(
        digest,
        mist_games::scan::scan(build.path())
            .unwrap()
            .tree_digest()
            .to_string()
    );

    let out = mistpipe(build.path(), &["manifest", ".", "--json"]).expect_code(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["digest"], digest);
    assert_eq!(json["files"], 3);
    assert_eq!(json["bytes"], 2 + 30_000);
    let paths: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for path in ["game.exe", "data/level1.pak", "data/empty"] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }

    // One changed byte changes the digest.
    build.write("data/empty", "x");
    let changed = mistpipe(build.path(), &["manifest", "."])
        .expect_code(0)
        .stdout;
    assert!(is_digest(changed.trim_end()));
    assert_ne!(changed.trim_end(), digest);

    let out = mistpipe(build.path(), &["manifest", "no-such-build"]).expect_code(2);
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("no-such-build"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------
// hook install

#[test]
fn a_hook_that_knows_the_nas_refuses_a_wrong_source_with_its_line() {
    let repo = Dir::new();
    let nas = Dir::new();
    let r = repo.path();
    git(r, &["init", "-q"]).expect_code(0);
    // A NAS that does not exist is refused, and no hook is written.
    let out = mistpipe(r, &["hook", "install", "--nas", "/no/such/nas"]).expect_code(2);
    assert!(
        out.stderr.contains("--nas /no/such/nas: no such folder"),
        "{out}"
    );
    assert!(!r.join(".git/hooks/pre-commit").exists());
    let n = nas.path().to_str().unwrap();
    mistpipe(r, &["hook", "install", "--nas", n]).expect_code(0);
    let commit = || git(r, &["commit", "-q", "-m", "test"]);
    let head = || git(r, &["rev-parse", "HEAD"]).stdout;

    nas.write("incoming/doom/1.0/doom.exe", "MZ");
    repo.write("games/doom/game.yaml", &game_yaml("doom"));
    repo.write(
        "games/doom/versions/1.0.yaml",
        &version_yaml("doom", "1.0", "incoming/doom/1.0", ""),
    );
    git(r, &["add", "-A"]).expect_code(0);
    commit().expect_code(0);
    let good = head();

    // A typo in `source`: the hook refuses the commit, naming the file and line.
    let wrong = version_yaml("doom", "1.1", "incoming/dom/1.1", "");
    repo.write("games/doom/versions/1.1.yaml", &wrong);
    git(r, &["add", "-A"]).expect_code(0);
    let out = commit();
    assert_ne!(out.code, 0, "{out}");
    let (line, column) = value_position(&wrong, "source");
    assert!(
        out.stderr.contains(&format!(
            "games/doom/versions/1.1.yaml:{line}:{column}: error: `spec.source` \
             `incoming/dom/1.1` does not exist on the NAS"
        )),
        "{out}"
    );
    assert_eq!(head(), good);

    // Once the source is right, the commit goes through.
    nas.write("incoming/doom/1.1/doom.exe", "MZ1");
    repo.write(
        "games/doom/versions/1.1.yaml",
        &version_yaml("doom", "1.1", "incoming/doom/1.1", ""),
    );
    git(r, &["add", "-A"]).expect_code(0);
    commit().expect_code(0);
    assert_ne!(head(), good);
}

#[test]
fn hook_install_makes_git_refuse_invalid_commits() {
    let repo = Dir::new();
    let r = repo.path();
    git(r, &["init", "-q"]).expect_code(0);
    let out = mistpipe(r, &["hook", "install"]).expect_code(0);
    let hook = r.join(".git/hooks/pre-commit");
    assert!(out.stdout.contains("pre-commit"), "{out}");
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(script.starts_with("#!"), "{script}");
    // "It calls this mistpipe binary by its absolute path."
    let exe = assert_cmd::cargo::cargo_bin("mistpipe");
    assert!(script.contains(exe.to_str().unwrap()), "{script}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&hook).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the hook is not executable: {mode:o}");

    // Installing again refuses to replace the hook.
    let out = mistpipe(r, &["hook", "install"]).expect_code(2);
    assert!(out.stderr.contains("already exists"), "{out}");
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), script);

    let head = || git(r, &["rev-parse", "HEAD"]).stdout;
    let commit = |args: &[&str]| git(r, &[&["commit", "-q", "-m", "test"][..], args].concat());

    // A valid spec is committed.
    repo.write("games/doom/game.yaml", &game_yaml("doom"));
    git(r, &["add", "-A"]).expect_code(0);
    commit(&[]).expect_code(0);
    let good = head();

    // A staged invalid spec is refused, with the problem shown.
    let broken = "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: doom\nspec:\n  title: \"\"\n";
    repo.write("games/doom/game.yaml", broken);
    git(r, &["add", "-A"]).expect_code(0);
    let out = commit(&[]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("games/doom/game.yaml:6:10: error: `spec.title` is empty"),
        "{out}"
    );
    assert_eq!(head(), good);

    // `git commit -a` and `git commit <path>` commit a temporary index: it is the one checked.
    git(r, &["reset", "-q"]).expect_code(0);
    let out = commit(&["-a"]);
    assert_ne!(out.code, 0, "commit -a: {out}");
    let out = commit(&["games/doom/game.yaml"]);
    assert_ne!(out.code, 0, "commit <path>: {out}");
    assert_eq!(head(), good);

    // A valid staged change commits even while the work tree has an invalid one.
    repo.write("users/bob.yaml", &user_yaml("bob"));
    git(r, &["add", "users/bob.yaml"]).expect_code(0);
    commit(&[]).expect_code(0);
    assert_ne!(head(), good);
    let files = git(r, &["ls-tree", "-r", "--name-only", "HEAD"])
        .expect_code(0)
        .stdout;
    assert_eq!(files, "games/doom/game.yaml\nusers/bob.yaml\n");
    assert!(
        git(r, &["show", "HEAD:games/doom/game.yaml"])
            .stdout
            .contains("title: doom")
    );

    // Mended, `commit -a` goes through.
    repo.write(
        "games/doom/game.yaml",
        &game_yaml("doom").replace("title: doom", "title: Doom"),
    );
    commit(&["-a"]).expect_code(0);
    assert!(
        git(r, &["show", "HEAD:games/doom/game.yaml"])
            .stdout
            .contains("title: Doom")
    );
    assert_eq!(git(r, &["status", "--porcelain"]).stdout, "");
}

// ---------------------------------------------------------------------------------------
// --help

/// The subcommands listed in a help text's `Commands:` section, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_help_has_examples() {
    let dir = Dir::new();
    let mut queue: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = mistpipe(dir.path(), &args).expect_code(0);
        assert!(
            out.stdout.contains("\nExamples:\n"),
            "`mistpipe {}` has no examples:\n{out}",
            args.join(" ")
        );
        for sub in subcommands(&out.stdout) {
            let mut child = path.clone();
            child.push(sub);
            queue.push(child);
        }
        seen.push(path.join(" "));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "",
            "confirm-retire",
            "delta",
            "delta apply",
            "delta create",
            "hook",
            "hook install",
            "manifest",
            "new",
            "new game",
            "new version",
            "plan",
            "schema",
            "status",
            "user",
            "user add",
            "user disable",
            "user enable",
            "user passwd",
            "user remove",
            "validate",
        ],
        "the help tree changed; check the new commands are tested"
    );
    // The top level explains the exit codes every command uses.
    let out = mistpipe(dir.path(), &["--help"]).expect_code(0);
    assert!(
        out.stdout.contains(
            "Exit codes: 0 success, 1 the check found something (validate: problems; plan: \
             changes),\n2 wrong usage or could not run."
        ),
        "{out}"
    );
}

#[test]
fn user_passwd_disable_enable_and_remove_change_an_existing_user() {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;

    let repo = Dir::new();
    mistpipe_with_stdin(
        repo.path(),
        &["user", "add", "erin", "--password-stdin"],
        "first password\n",
    )
    .expect_code(0);
    // An admin's comment survives every change.
    let with_comment = format!(
        "# Erin, a friend since 2024.\n{}",
        repo.read("users/erin.yaml")
    );
    repo.write("users/erin.yaml", &with_comment);

    let out = mistpipe_with_stdin(
        repo.path(),
        &["user", "passwd", "erin", "--password-stdin"],
        "second password\n",
    )
    .expect_code(0);
    assert!(out.stdout.contains("commit the change"), "{out}");
    let user = |repo: &Dir| {
        let loaded = load_dir(repo.path(), &LoadOptions::default()).unwrap();
        assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
        loaded.specs.users["erin"].clone()
    };
    let stored = user(&repo).spec.password_hash;
    let hash = PasswordHash::new(&stored).unwrap();
    let argon2 = argon2::Argon2::default();
    assert!(argon2.verify_password(b"second password", &hash).is_ok());
    assert!(argon2.verify_password(b"first password", &hash).is_err());
    assert!(
        repo.read("users/erin.yaml")
            .starts_with("# Erin, a friend since 2024.\n")
    );

    mistpipe(repo.path(), &["user", "disable", "erin"]).expect_code(0);
    assert!(user(&repo).spec.disabled);
    mistpipe(repo.path(), &["user", "enable", "erin"]).expect_code(0);
    assert!(!user(&repo).spec.disabled);
    assert_eq!(user(&repo).spec.password_hash, stored);

    // Not removed while a game grants them access; removed once it does not.
    repo.write(
        "games/secret/game.yaml",
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: secret\nspec:\n  title: Secret\n  \
         private: true\n  grants:\n    - erin\n",
    );
    let out = mistpipe(repo.path(), &["user", "remove", "erin"]).expect_code(2);
    assert!(out.stderr.contains("erin is granted secret"), "{out}");
    assert!(repo.path().join("users/erin.yaml").is_file());
    repo.write(
        "games/secret/game.yaml",
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: secret\nspec:\n  title: Secret\n  \
         private: true\n",
    );
    mistpipe(repo.path(), &["user", "remove", "erin"]).expect_code(0);
    assert!(!repo.path().join("users/erin.yaml").exists());
    let out = mistpipe(repo.path(), &["user", "disable", "erin"]).expect_code(2);
    assert!(out.stderr.contains("there is no user `erin`"), "{out}");
}

#[test]
fn confirm_retire_commits_the_trailer_on_top_and_changes_no_spec() {
    let repo = Dir::new();
    let git_repo = git_init(repo.path());
    repo.write("games/doom/game.yaml", &game_yaml("doom"));
    git_commit_all(&git_repo, "doom");
    let before = git_repo.head().unwrap().peel_to_commit().unwrap();

    let out = mistpipe(&repo.join("games"), &["confirm-retire"]).expect_code(0);
    assert!(out.stdout.contains("committed"), "{out}");
    let head = git_repo.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(head.parent_id(0).unwrap(), before.id());
    assert_eq!(head.tree_id(), before.tree_id());
    assert!(
        head.message()
            .unwrap()
            .lines()
            .any(|line| line == mist_specs::CONFIRM_RETIRE_TRAILER),
        "{:?}",
        head.message()
    );

    let elsewhere = Dir::new();
    let out = mistpipe(elsewhere.path(), &["confirm-retire"]).expect_code(2);
    assert!(out.stderr.contains("not in a git repository"), "{out}");
}
