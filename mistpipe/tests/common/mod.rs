//! Helpers for running the real `mistpipe` binary against real files in temp dirs.
#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// What a finished process left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "unexpected exit code; output:\n{self}");
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The environment variables through which git (and so a hook) could point elsewhere.
const GIT_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_CEILING_DIRECTORIES",
];

/// Runs `mistpipe args…` in `cwd` with an empty standard input (never a terminal).
pub fn mistpipe(cwd: &Path, args: &[&str]) -> Out {
    mistpipe_with_stdin(cwd, args, "")
}

/// Runs `mistpipe args…` in `cwd` with `stdin` as standard input.
pub fn mistpipe_with_stdin(cwd: &Path, args: &[&str], stdin: &str) -> Out {
    let mut cmd = assert_cmd::Command::cargo_bin("mistpipe").expect("the mistpipe binary is built");
    cmd.current_dir(cwd).args(args).write_stdin(stdin);
    for var in GIT_ENV.iter().chain(SERVER_ENV) {
        cmd.env_remove(var);
    }
    // Not the developer's own `mist login`, which mistpipe would use.
    cmd.env("MIST_CONFIG_DIR", NO_MIST_LOGIN);
    let output = cmd.output().expect("mistpipe runs");
    Out {
        code: output.status.code().expect("mistpipe exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs the `git` command line in `cwd`, ignoring the user's and the system's git config.
pub fn git(cwd: &Path, args: &[&str]) -> Out {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(cwd)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null());
    for var in GIT_ENV {
        cmd.env_remove(var);
    }
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("this test needs the `git` command line on PATH, and it could not run: {e}")
    });
    Out {
        code: output.status.code().expect("git exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A fresh temporary folder that files are written into by relative path.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Writes `text` to `rel`, creating folders as needed.
    pub fn write(&self, rel: &str, text: &str) -> &Dir {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    /// Every file and folder below the root, relative, sorted; for "nothing was written".
    pub fn listing(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut queue = vec![self.path().to_path_buf()];
        while let Some(dir) = queue.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(self.path()).unwrap();
                found.push(rel.to_string_lossy().into_owned());
                if path.is_dir() && !path.is_symlink() {
                    queue.push(path);
                }
            }
        }
        found.sort();
        found
    }
}

/// A valid argon2id hash (alice's in specs/examples), for users whose password does not matter.
pub const SOME_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$VSCI+jA9Bru4HaCnQla5zQ$4KXIQI4OZP1OVISsVgWVjgJxbWSj5rOtN7mq84QUH58";

/// A valid game spec.
pub fn game_yaml(name: &str) -> String {
    format!("apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: {name}\nspec:\n  title: {name}\n")
}

/// A valid version spec; `extra` holds more `spec` lines, each indented by two spaces.
pub fn version_yaml(game: &str, version: &str, source: &str, extra: &str) -> String {
    format!(
        "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{version}\"\n  game: {game}\n\
         spec:\n  source: {source}\n{extra}"
    )
}

/// A valid user spec.
pub fn user_yaml(name: &str) -> String {
    format!(
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: {name}\nspec:\n  role: user\n  \
         passwordHash: \"{SOME_HASH}\"\n"
    )
}

/// One `path:line:col: error: message` line of `validate`, with its hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
    pub hint: Option<String>,
}

/// `validate`'s text output, checked line by line: problems, each followed by at most one
/// hint, then exactly one summary line.
#[derive(Debug)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub summary: String,
}

/// Parses `path[:line[:col]]: error: message`, by hand.
pub fn parse_problem(line: &str) -> Option<Problem> {
    let (location, message) = line.split_once(": error: ")?;
    if location.is_empty() || location.starts_with(' ') || message.is_empty() {
        return None;
    }
    let mut parts = location.rsplitn(3, ':');
    let last = parts.next()?;
    let middle = parts.next();
    let first = parts.next();
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
            .filter(|n| *n >= 1)
    };
    let (path, line, column) = match (first, middle.and_then(number), number(last)) {
        (Some(path), Some(line), Some(column)) => (path.to_string(), Some(line), Some(column)),
        (_, _, Some(line)) => (location.rsplit_once(':')?.0.to_string(), Some(line), None),
        _ => (location.to_string(), None, None),
    };
    Some(Problem {
        path,
        line,
        column,
        message: message.to_string(),
        hint: None,
    })
}

/// Parses the whole text output of `validate`, panicking on any line that fits no form.
#[track_caller]
pub fn parse_report(stdout: &str) -> Report {
    let lines: Vec<&str> = stdout.lines().collect();
    let (summary, body) = lines.split_last().expect("validate prints a summary line");
    assert!(
        summary.starts_with("valid: ") || summary.starts_with("invalid: "),
        "the last line is not a summary: {summary:?}\n{stdout}"
    );
    let mut problems: Vec<Problem> = Vec::new();
    for line in body {
        if let Some(hint) = line.strip_prefix("  hint: ") {
            let last = problems
                .last_mut()
                .unwrap_or_else(|| panic!("a hint before any problem: {line:?}"));
            assert!(last.hint.is_none(), "two hints for one problem:\n{stdout}");
            last.hint = Some(hint.to_string());
        } else {
            let problem = parse_problem(line)
                .unwrap_or_else(|| panic!("not a problem line: {line:?}\n{stdout}"));
            problems.push(problem);
        }
    }
    Report {
        problems,
        summary: summary.to_string(),
    }
}

/// The 1-based line and column of the value of the first `key:` line in `text`.
pub fn value_position(text: &str, key: &str) -> (u32, u32) {
    let needle = format!("{key}:");
    for (idx, line) in text.lines().enumerate() {
        if let Some(at) = line.find(&needle)
            && line[..at].trim().is_empty()
        {
            let after = &line[at + needle.len()..];
            let value_at = at + needle.len() + (after.len() - after.trim_start().len());
            return (idx as u32 + 1, line[..value_at].chars().count() as u32 + 1);
        }
    }
    panic!("no `{key}:` line in\n{text}");
}

/// The folder holding the committed example spec tree.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples")
}

/// A git repository in `dir`, made with git2.
pub fn git_init(dir: &Path) -> git2::Repository {
    git2::Repository::init(dir).expect("git init")
}

/// Stages every file of the work tree (new, changed and deleted).
pub fn git_stage_all(repo: &git2::Repository) {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
}

/// Stages everything and commits it on HEAD; returns the commit id.
pub fn git_commit_all(repo: &git2::Repository, message: &str) -> String {
    git_stage_all(repo);
    let mut index = repo.index().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@t").unwrap();
    let parent = repo.head().ok().map(|h| h.peel_to_commit().unwrap());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        message,
        &tree,
        &parents,
    )
    .unwrap()
    .to_string()
}

/// The environment variables through which `mistpipe` could find a server or a token.
const SERVER_ENV: &[&str] = &["MIST_SERVER", "MIST_TOKEN"];

/// A `mist` config folder that does not exist: no saved login.
const NO_MIST_LOGIN: &str = "/nonexistent/mist-config";

/// Runs `mistpipe args…` in `cwd` with `stdin` as standard input and `env` set (the
/// caller's MIST_SERVER and MIST_TOKEN removed first).
pub fn mistpipe_with_env(cwd: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
    let mut cmd = assert_cmd::Command::cargo_bin("mistpipe").expect("the mistpipe binary is built");
    cmd.current_dir(cwd).args(args).write_stdin(stdin);
    for var in GIT_ENV.iter().chain(SERVER_ENV) {
        cmd.env_remove(var);
    }
    // Not the developer's own `mist login`, which mistpipe would use.
    cmd.env("MIST_CONFIG_DIR", NO_MIST_LOGIN);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd.output().expect("mistpipe runs");
    Out {
        code: output.status.code().expect("mistpipe exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}
