//! Helpers shared by the integration tests: real trees in temp dirs, committed with git2.
#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::fmt::Write as _;
use std::path::Path;

use mist_specs::load::{Diagnostic, LoadOptions, Loaded, load_dir, load_git};

/// Copies the directory `from` into `to` (created if missing), recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("list {}: {e}", from.display()))
    {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| {
                panic!(
                    "copy {} to {}: {e}",
                    entry.path().display(),
                    target.display()
                )
            });
        }
    }
}

/// Writes `contents` to `root/path`, creating parent folders.
pub fn write(root: &Path, path: &str, contents: impl AsRef<[u8]>) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().expect("a parent")).expect("create parent folders");
    std::fs::write(&full, contents).unwrap_or_else(|e| panic!("write {}: {e}", full.display()));
}

/// Makes `dir` a git repository whose one commit (HEAD) holds every file in it.
pub fn commit_all(dir: &Path) -> git2::Oid {
    let repo = git2::Repository::init(dir).expect("git init");
    let mut index = repo.index().expect("git index");
    // FORCE: a global excludes file on the test machine must not change what is committed.
    index
        .add_all(["*"], git2::IndexAddOption::FORCE, None)
        .expect("git add");
    index.write().expect("write git index");
    let tree = repo
        .find_tree(index.write_tree().expect("write git tree"))
        .expect("find git tree");
    let signature =
        git2::Signature::new("Mist tests", "tests@mist.invalid", &git2::Time::new(0, 0))
            .expect("git signature");
    repo.commit(
        Some("HEAD"),
        &signature,
        &signature,
        "spec tree",
        &tree,
        &[],
    )
    .expect("git commit")
}

/// Loads `tree` from the directory, then commits it and loads `HEAD`; both must agree.
/// Returns the directory's result, or a description of the disagreement.
pub fn load_both(tree: &Path, options: &LoadOptions) -> Result<Loaded, String> {
    let from_dir = load_dir(tree, options).map_err(|e| format!("load_dir failed: {e}"))?;
    commit_all(tree);
    let from_git = load_git(tree, "HEAD", options).map_err(|e| format!("load_git failed: {e}"))?;
    if from_dir != from_git {
        return Err(format!(
            "the directory and the git commit give different results\n--- directory:\n{}--- git:\n{}",
            render(&from_dir.diagnostics),
            render(&from_git.diagnostics)
        ));
    }
    Ok(from_dir)
}

/// One expected diagnostic: `<file>[:<line>[:<column>]] <gist>`.
#[derive(Debug)]
pub struct Expected {
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub gist: String,
}

impl Expected {
    pub fn parse(text: &str) -> Result<Expected, String> {
        let (location, gist) = text
            .split_once(' ')
            .ok_or_else(|| format!("no gist in `{text}`"))?;
        let mut parts = location.split(':');
        let file = parts.next().unwrap_or_default().to_string();
        let mut number = |what: &str| {
            parts
                .next()
                .map(|n| {
                    n.parse::<u32>()
                        .map_err(|_| format!("bad {what} `{n}` in `{text}`"))
                })
                .transpose()
        };
        let line = number("line")?;
        let column = number("column")?;
        if parts.next().is_some() {
            return Err(format!("too many `:` in `{location}`"));
        }
        Ok(Expected {
            file,
            line,
            column,
            gist: gist.trim().to_string(),
        })
    }

    /// Whether `d` is this diagnostic: same file and line (none when none is expected),
    /// the same column when one is expected, and a message containing the gist.
    pub fn matches(&self, d: &Diagnostic) -> bool {
        d.file == self.file
            && d.line == self.line
            && (self.column.is_none() || d.column == self.column)
            && d.message.contains(&self.gist)
    }
}

/// Loads `tree` from the directory and from git and compares the diagnostics with
/// `expected`, in order. Returns a description of the failure.
pub fn check_tree(tree: &Path, options: &LoadOptions, expected: &[Expected]) -> Result<(), String> {
    let loaded = load_both(tree, options)?;
    let actual = &loaded.diagnostics;
    let all_match =
        actual.len() == expected.len() && expected.iter().zip(actual).all(|(e, d)| e.matches(d));
    if all_match {
        return Ok(());
    }
    let wanted: String = expected
        .iter()
        .map(|e| {
            let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            let column = e.column.map(|c| format!(":{c}")).unwrap_or_default();
            format!("    {}{line}{column} …{}…\n", e.file, e.gist)
        })
        .collect();
    Err(format!("expected:\n{wanted}actual:\n{}", render(actual)))
}

/// One diagnostic per line, with its hint, for failure messages.
pub fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    if diagnostics.is_empty() {
        out.push_str("    (no diagnostics)\n");
    }
    for d in diagnostics {
        let _ = write!(out, "    {d}");
        if let Some(hint) = &d.hint {
            let _ = write!(out, " [hint: {hint}]");
        }
        out.push('\n');
    }
    out
}
