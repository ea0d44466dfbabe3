//! `mistpipe`, the admin's CLI: everything an admin does to a spec repository before
//! `git push` — validate, scaffold, print schemas, hash builds.
//!
//! Exit codes are the same for every command: 0 success, 1 the input is invalid (for
//! `validate`: problems were found), 2 the command could not run.

mod delta;
mod scaffold;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The admin's tool for a Mist spec repository.
///
/// A spec repository holds games/<game>/game.yaml, games/<game>/versions/<version>.yaml and
/// users/<user>.yaml. Scaffold them with `new` and `user add`, check them with `validate`,
/// then commit and push; the Mist server does the rest.
#[derive(Parser)]
#[command(
    name = "mistpipe",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Examples:\n  mistpipe new game celeste --title Celeste\n  \
    mistpipe new version celeste 1.4.0.1 --source incoming/celeste/1.4.0.1 --nas /srv/nas\n  \
    mistpipe validate\n\nExit codes: 0 success, 1 invalid input, 2 could not run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a spec repository and print every problem.
    ///
    /// Each problem is printed as `path:line:col: error: message`, with a hint where one
    /// helps, followed by a summary line. Exit code 0 when the tree is valid, 1 when it has
    /// problems, 2 when it could not be read.
    #[command(
        after_help = "Examples:\n  mistpipe validate\n  mistpipe validate specs/ --nas /srv/nas\n  \
        mistpipe validate --staged          # what `git commit` would record (pre-commit hook)\n  \
        mistpipe validate --rev origin/main --format json"
    )]
    Validate(validate::ValidateArgs),

    /// Print or write the JSON Schema of each spec kind.
    ///
    /// Editors with the YAML language server use these to complete fields and flag mistakes:
    /// scaffolded files start with a `# yaml-language-server: $schema=…` line pointing at
    /// `schemas/<kind>.schema.json` in the repository.
    #[command(after_help = "Examples:\n  mistpipe schema game\n  mistpipe schema --out schemas/")]
    Schema(SchemaArgs),

    /// Scaffold a new game or version spec from the templates.
    #[command(
        subcommand,
        after_help = "Examples:\n  mistpipe new game celeste --title Celeste\n  \
        mistpipe new version celeste 1.4.0.1 --source incoming/celeste/1.4.0.1 --nas /srv/nas"
    )]
    New(scaffold::NewCommand),

    /// Manage user specs.
    #[command(
        subcommand,
        after_help = "Examples:\n  mistpipe user add alice --role user"
    )]
    User(scaffold::UserCommand),

    /// Print a build's tree digest, or its whole manifest as JSON.
    ///
    /// The digest is what `spec.digest` pins in a version spec; see docs/manifest.md for its
    /// exact definition.
    #[command(
        after_help = "Examples:\n  mistpipe manifest /srv/nas/incoming/celeste/1.4.0.1\n  \
        mistpipe manifest build/ --json > manifest.json"
    )]
    Manifest(ManifestArgs),

    /// Make and apply file and tree deltas.
    #[command(
        subcommand,
        after_help = "Examples:\n  mistpipe delta create builds/1.0 builds/1.1 -o 1.1.mtd --stats\n  \
        mistpipe delta apply builds/1.0 1.1.mtd -o rebuilt/1.1"
    )]
    Delta(delta::DeltaCommand),

    /// Install git hooks in a spec repository.
    #[command(
        subcommand,
        after_help = "Examples:\n  cd my-specs && mistpipe hook install"
    )]
    Hook(scaffold::HookCommand),
}

#[derive(clap::Args)]
struct SchemaArgs {
    /// Which kind to print; all three when writing with --out.
    #[arg(value_enum)]
    kind: Option<SchemaKind>,
    /// Write `<kind>.schema.json` files into this folder instead of printing.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaKind {
    Game,
    Version,
    User,
}

impl SchemaKind {
    fn kind(self) -> mist_specs::model::Kind {
        match self {
            SchemaKind::Game => mist_specs::model::Kind::Game,
            SchemaKind::Version => mist_specs::model::Kind::Version,
            SchemaKind::User => mist_specs::model::Kind::User,
        }
    }
}

#[derive(clap::Args)]
struct ManifestArgs {
    /// The build folder to scan.
    dir: PathBuf,
    /// Print the whole manifest (every file's path, size, mode and BLAKE3 hash) as JSON.
    #[arg(long)]
    json: bool,
}

/// A failure the user can act on, with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The input is wrong (exit 1).
    pub(crate) fn invalid(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            code: 1,
            message: message.into(),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema(&args).map(|()| ExitCode::SUCCESS),
        Command::New(command) => scaffold::run_new(command).map(|()| ExitCode::SUCCESS),
        Command::User(command) => scaffold::run_user(command).map(|()| ExitCode::SUCCESS),
        Command::Manifest(args) => manifest(&args).map(|()| ExitCode::SUCCESS),
        Command::Hook(command) => scaffold::run_hook(command).map(|()| ExitCode::SUCCESS),
        Command::Delta(command) => delta::run(command).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<Failure>().map_or(2, |f| f.code);
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn schema(args: &SchemaArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let kinds: Vec<_> = match args.kind {
        Some(kind) => vec![kind.kind()],
        None => mist_specs::model::Kind::ALL.to_vec(),
    };
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for kind in kinds {
                let path = dir.join(kind.schema_file_name());
                scaffold::write_replacing(&path, &mist_specs::scaffold::schema_text(kind))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            if kinds.len() == 1 {
                out.write_all(mist_specs::scaffold::schema_text(kinds[0]).as_bytes())?;
            } else {
                let all: serde_json::Map<String, serde_json::Value> = kinds
                    .iter()
                    .map(|k| (k.as_str().to_string(), k.json_schema()))
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            }
        }
    }
    Ok(())
}

fn manifest(args: &ManifestArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let manifest = mist_games::manifest::scan(&args.dir)
        .with_context(|| format!("cannot scan the build in {}", args.dir.display()))?;
    let digest = manifest.tree_digest();
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "digest": digest.to_string(),
            "files": manifest.n_files(),
            "bytes": manifest.total_size(),
            "entries": manifest.entries,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(out, "{digest}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
