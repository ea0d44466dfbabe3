//! Helpers shared by the integration tests: real git repositories in temp dirs, written with
//! git2.
#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::path::Path;

/// The branch the tests use.
pub const BRANCH: &str = "main";

/// A valid game spec.
pub fn game(name: &str) -> (String, String) {
    (
        format!("games/{name}/game.yaml"),
        format!(
            "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: {name}\nspec:\n  title: {name}\n"
        ),
    )
}

/// A valid version spec.
pub fn version(game: &str, name: &str) -> (String, String) {
    (
        format!("games/{game}/versions/{name}.yaml"),
        format!(
            "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{name}\"\n  game: {game}\n\
             spec:\n  source: incoming/{game}/{name}\n"
        ),
    )
}

/// Makes an empty work-tree repository whose HEAD is `refs/heads/main`.
pub fn init(dir: &Path) -> git2::Repository {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head(BRANCH);
    git2::Repository::init_opts(dir, &options).expect("git init")
}

/// Makes an empty bare repository whose HEAD is `refs/heads/main`.
pub fn init_bare(dir: &Path) -> git2::Repository {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head(BRANCH).bare(true);
    git2::Repository::init_opts(dir, &options).expect("git init --bare")
}

/// Commits a tree holding exactly `files` (path, contents) on `main`, on top of its tip, and
/// returns the full commit id. Builds the tree in the object database: no work tree needed,
/// so it works on bare repositories too.
pub fn commit<C: AsRef<[u8]>>(
    repo: &git2::Repository,
    files: &[(String, C)],
    message: &str,
) -> String {
    let tree = build_tree(repo, files, "");
    let signature = git2::Signature::now("Mist tests", "tests@mist.invalid").expect("signature");
    let parent = repo
        .find_reference(&format!("refs/heads/{BRANCH}"))
        .ok()
        .map(|r| r.peel_to_commit().expect("tip commit"));
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some(&format!("refs/heads/{BRANCH}")),
        &signature,
        &signature,
        message,
        &repo.find_tree(tree).expect("tree"),
        &parents,
    )
    .expect("git commit")
    .to_string()
}

fn build_tree<C: AsRef<[u8]>>(
    repo: &git2::Repository,
    files: &[(String, C)],
    prefix: &str,
) -> git2::Oid {
    let mut builder = repo.treebuilder(None).expect("treebuilder");
    let mut subdirs: Vec<&str> = Vec::new();
    for (path, contents) in files {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        match rest.split_once('/') {
            None => {
                let blob = repo.blob(contents.as_ref()).expect("blob");
                builder.insert(rest, blob, 0o100644).expect("insert blob");
            }
            Some((dir, _)) => {
                if !subdirs.contains(&dir) {
                    subdirs.push(dir);
                }
            }
        }
    }
    for dir in subdirs {
        let subtree = build_tree(repo, files, &format!("{prefix}{dir}/"));
        builder.insert(dir, subtree, 0o040000).expect("insert tree");
    }
    builder.write().expect("write tree")
}

/// A `file://` URL for a local path.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Whether the `git` command can be run here.
pub fn have_git_command() -> bool {
    std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
