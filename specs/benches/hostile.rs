//! Times loading each hostile input, to show that every one is diagnosed well under a
//! second. Run with `cargo bench -p mist-specs --bench hostile`.
//!
//! Each input is written alone into a tree and loaded from the directory and from a git
//! commit; the figure is the median of several runs, in milliseconds per file.

#[path = "../tests/common/hostile.rs"]
mod inputs;

use std::path::Path;
use std::time::{Duration, Instant};

use mist_specs::load::{LoadOptions, Loaded, load_dir, load_git};

const RUNS: usize = 7;

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().expect("a parent")).expect("create folders");
    std::fs::write(full, bytes).expect("write");
}

fn commit_all(dir: &Path) {
    let repo = git2::Repository::init(dir).expect("git init");
    let mut index = repo.index().expect("git index");
    index
        .add_all(["*"], git2::IndexAddOption::FORCE, None)
        .expect("git add");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("write tree"))
        .expect("find tree");
    let signature =
        git2::Signature::new("Mist bench", "bench@mist.invalid", &git2::Time::new(0, 0))
            .expect("signature");
    repo.commit(Some("HEAD"), &signature, &signature, "bench", &tree, &[])
        .expect("commit");
}

/// The median time of `RUNS` loads, and the last result.
fn time(mut load: impl FnMut() -> Loaded) -> (Duration, Loaded) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = Loaded::default();
    for _ in 0..RUNS {
        let start = Instant::now();
        last = load();
        times.push(start.elapsed());
    }
    times.sort();
    (times[RUNS / 2], last)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(loaded: &Loaded) -> String {
    match loaded.diagnostics.as_slice() {
        [] => "valid".to_string(),
        [d] => {
            let text = d.to_string();
            let short: String = text.chars().take(90).collect();
            if short.len() < text.len() {
                format!("{short}…")
            } else {
                short
            }
        }
        many => format!("{} diagnostics", many.len()),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters inputs by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let options = LoadOptions::default();
    println!(
        "{:<36} {:>9} {:>10} {:>10}  result",
        "input", "bytes", "dir ms", "git ms"
    );
    for input in inputs::all() {
        if filter.as_deref().is_some_and(|f| !input.name.contains(f)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), input.path, &input.bytes);
        let (from_dir, loaded) = time(|| load_dir(dir.path(), &options).expect("load dir"));
        commit_all(dir.path());
        let (from_git, _) = time(|| load_git(dir.path(), "HEAD", &options).expect("load git"));
        println!(
            "{:<36} {:>9} {:>10.2} {:>10.2}  {}",
            input.name,
            input.bytes.len(),
            ms(from_dir),
            ms(from_git),
            summary(&loaded)
        );
    }

    // Thousands of files: total time and time per file.
    const FILES: usize = 5_000;
    if filter.as_deref().is_none_or(|f| "5,000 users".contains(f)) {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..FILES {
            let name = format!("user-{i:04}");
            write(
                dir.path(),
                &format!("users/{name}.yaml"),
                inputs::user(&name).as_bytes(),
            );
        }
        let (from_dir, loaded) = time(|| load_dir(dir.path(), &options).expect("load dir"));
        commit_all(dir.path());
        let (from_git, _) = time(|| load_git(dir.path(), "HEAD", &options).expect("load git"));
        println!(
            "{:<36} {:>9} {:>10.2} {:>10.2}  {} users loaded, {}; per file: dir {:.3} ms, git {:.3} ms",
            "5,000 users (whole tree)",
            "",
            ms(from_dir),
            ms(from_git),
            loaded.specs.users.len(),
            summary(&loaded),
            ms(from_dir) / FILES as f64,
            ms(from_git) / FILES as f64,
        );
    }
}
