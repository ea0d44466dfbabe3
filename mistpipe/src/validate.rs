//! `mistpipe validate`: every problem in a spec tree, in a form editors and scripts read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use mist_platform::units::count;
use mist_specs::load::{Diagnostic, LoadOptions, Loaded};
use mist_specs::source::{DirSource, GitSource, SpecSource};

use crate::repo::RepoArgs;

#[derive(clap::Args)]
pub(crate) struct ValidateArgs {
    /// The spec repository, or any folder in it: its root is found the way git finds its own.
    #[command(flatten)]
    repo: RepoArgs,
    /// The NAS root: also check that every version's source exists below it, and that
    /// pinned digests match the builds (this hashes every pinned build).
    #[arg(long, value_name = "DIR")]
    nas: Option<PathBuf>,
    /// Print the problems as a JSON array of `{file, line, column, message, hint}`.
    #[arg(long)]
    json: bool,
    /// The output format: `--format json` is the older spelling of --json.
    #[arg(long, value_enum, default_value_t = Format::Text, hide = true)]
    format: Format,
    /// Validate this commit (branch, tag or id) of the git repository in DIR instead of the
    /// files on disk.
    #[arg(long, value_name = "REV", conflicts_with = "staged")]
    rev: Option<String>,
    /// Validate what is staged in DIR's git index: exactly what `git commit` would record.
    #[arg(long)]
    staged: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// `path:line:col: error: message` lines, hints and a summary.
    Text,
    /// A JSON array of `{file, line, column, message, hint}`.
    Json,
}

pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        nas_root: args.nas.clone(),
    };
    // Run from a subfolder, the files on disk are read from the spec repository's root, as
    // git finds its own; a commit or the index always holds the whole tree.
    let given = args.repo.dir();
    let dir = match (&args.rev, args.staged) {
        (None, false) => spec_root(&given)?,
        _ => given,
    };
    let source: Box<dyn SpecSource> = match (&args.rev, args.staged) {
        (Some(rev), _) => Box::new(GitSource::open(&dir, rev)?),
        (None, true) => staged_source(&dir)?,
        (None, false) => Box::new(DirSource::new(&dir)?),
    };
    let mut loaded = mist_specs::load::load(source.as_ref(), &options)
        .with_context(|| format!("cannot read the spec tree in {}", source.describe()))?;
    if let Some(nas) = &args.nas {
        check_pinned_digests(source.as_ref(), nas, &mut loaded)?;
    }

    // Paths are printed relative to the current directory so editors can jump to them.
    let display_root = if args.rev.is_some() || args.staged || dir == Path::new(".") {
        None
    } else {
        Some(dir.as_path())
    };
    let shown = |d: &Diagnostic| match display_root {
        Some(root) => root.join(&d.file).display().to_string(),
        None => d.file.clone(),
    };

    let mut out = std::io::stdout().lock();
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json => {
            let rows: Vec<Diagnostic> = loaded
                .diagnostics
                .iter()
                .map(|d| Diagnostic {
                    file: shown(d),
                    ..d.clone()
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        }
        Format::Text => {
            for d in &loaded.diagnostics {
                let shown_diagnostic = Diagnostic {
                    file: shown(d),
                    ..d.clone()
                };
                writeln!(out, "{shown_diagnostic}")?;
                if let Some(hint) = &d.hint {
                    writeln!(out, "  hint: {hint}")?;
                }
            }
            if !(loaded.is_valid() && is_empty(&loaded)) {
                writeln!(out, "{}", summary(&loaded, &source.describe()))?;
            }
        }
    }
    if loaded.is_valid() && is_empty(&loaded) {
        eprintln!(
            "warning: {} holds no game, version or user specs (no games/ or users/ folder); \
             is this the spec repository? `mistpipe new game NAME` starts one",
            source.describe()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if loaded.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn is_empty(loaded: &Loaded) -> bool {
    loaded.specs.games.is_empty() && loaded.specs.users.is_empty()
}

/// The spec repository holding `dir`: `dir` itself or the nearest folder above it with a
/// `games/` or `users/` folder, looking no higher than the git repository's root (the folder
/// with `.git`). Returned relative to `dir` (`dir/../..`), so that the paths printed stay
/// relative to where the command runs; `dir` itself when none is found.
fn spec_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let absolute =
        std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    for (depth, candidate) in absolute.ancestors().enumerate() {
        if candidate.join("games").is_dir() || candidate.join("users").is_dir() {
            let mut root = if depth > 0 && dir == Path::new(".") {
                PathBuf::new()
            } else {
                dir.to_owned()
            };
            for _ in 0..depth {
                root.push("..");
            }
            return Ok(root);
        }
        if candidate.join(".git").exists() {
            break;
        }
    }
    Ok(dir.to_owned())
}

/// The staged tree of `dir`: what `git commit` would record. git runs the pre-commit hook
/// with `GIT_INDEX_FILE` naming the index it is about to commit.
fn staged_source(dir: &Path) -> anyhow::Result<Box<dyn SpecSource>> {
    let index_file = std::env::var_os("GIT_INDEX_FILE").map(PathBuf::from);
    Ok(Box::new(GitSource::open_index(dir, index_file.as_deref())?))
}

fn summary(loaded: &Loaded, what: &str) -> String {
    let games = loaded.specs.games.len();
    let versions: usize = loaded.specs.games.values().map(|g| g.versions.len()).sum();
    let users = loaded.specs.users.len();
    let counts = format!(
        "{}, {}, {}",
        count(games as u64, "game"),
        count(versions as u64, "version"),
        count(users as u64, "user")
    );
    if loaded.is_valid() {
        format!("valid: {what}: {counts}")
    } else {
        let n = loaded.diagnostics.len();
        let mut files: Vec<&str> = loaded.diagnostics.iter().map(|d| d.file.as_str()).collect();
        files.dedup();
        files.sort_unstable();
        files.dedup();
        format!(
            "invalid: {what}: {} in {} ({counts} valid)",
            count(n as u64, "problem"),
            count(files.len() as u64, "file"),
        )
    }
}

/// Hashes every build whose version pins a digest and reports the ones that differ.
fn check_pinned_digests(
    source: &dyn SpecSource,
    nas: &Path,
    loaded: &mut Loaded,
) -> anyhow::Result<()> {
    let mut found = Vec::new();
    for (game_name, game) in &loaded.specs.games {
        for version in &game.versions {
            let Some(pinned) = &version.spec.digest else {
                continue;
            };
            if mist_specs::nas::check_source_on_nas(nas, &version.spec.source).is_err() {
                // The loader already reported a missing or escaping source; never hash
                // anything outside the NAS.
                continue;
            }
            let build = nas.join(&version.spec.source);
            let file = format!("games/{game_name}/versions/{}.yaml", version.metadata.name);
            let manifest = match mist_games::scan::scan(&build) {
                Ok(manifest) => manifest,
                Err(e) => {
                    found.push(Diagnostic {
                        file,
                        line: None,
                        column: None,
                        message: format!("cannot hash the build in {}: {e}", build.display()),
                        hint: None,
                    });
                    continue;
                }
            };
            let actual = manifest.tree_digest().to_string();
            if &actual != pinned {
                let mark = digest_mark(source, &file);
                found.push(Diagnostic {
                    file,
                    line: mark.map(|m| m.line),
                    column: mark.map(|m| m.column),
                    message: format!(
                        "the build in `{}` hashes to {actual}, not the pinned digest",
                        version.spec.source
                    ),
                    hint: Some(
                        "if the build is right, pin the new digest; if not, restore the build"
                            .into(),
                    ),
                });
            }
        }
    }
    loaded.diagnostics.extend(found);
    loaded
        .diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Ok(())
}

fn digest_mark(source: &dyn SpecSource, file: &str) -> Option<mist_specs::yaml::Mark> {
    let bytes = source.read(file, mist_specs::load::MAX_FILE_SIZE).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let root = mist_specs::yaml::parse(text, mist_specs::yaml::Limits::default()).ok()?;
    root.at(&["spec", "digest"]).map(|n| n.mark)
}
