//! `mistpipe`, the admin's CLI: everything an admin does to a spec repository before
//! `git push` — validate, scaffold, print schemas, hash builds — and, over a server's read
//! API, what the server has (`status`) and what a push would change (`plan`).
//!
//! Exit codes are the same for every command and for `mist` and `mistd` (docs/cli.md):
//! 0 success, 1 a check ran and found what it checks not as wanted (`validate`: problems;
//! `plan`: changes to make), 2 wrong usage or the command could not run (clap's usage errors
//! included).

mod confirm;
mod delta;
mod drift;
mod failure;
mod output;
mod remote;
mod repo;
mod scaffold;
mod status;
mod users;
mod validate;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The admin's tool for a Mist spec repository.
///
/// A spec repository holds `games/<game>/game.yaml`, `games/<game>/versions/<version>.yaml`
/// and `users/<user>.yaml`. Scaffold them with `new` and `user add`, check them with
/// `validate`, see what a push would change with `plan`, then commit and push; the Mist
/// server does the rest (`status` shows how far it got).
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
    mistpipe validate\n  \
    mistpipe plan --server https://mist.example.org --user alice\n\n\
    Exit codes: 0 success, 1 the check found something (validate: problems; plan: changes),\n\
    2 wrong usage or could not run."
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
        mistpipe validate --rev origin/main --json"
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

    /// Show a server's status: what is Ready, what is in progress, what is Stalled and why.
    ///
    /// Asks GET /v1/status (the content of `mistd status --json`) and prints `mistd status`'s
    /// table, ending with a verdict that names every Stalled version. Exit code 0 when the
    /// server answered (even if versions are Stalled), 2 when it could not be asked (not
    /// reachable, credentials refused, an answer that is not a Mist status).
    ///
    /// Credentials: --token-file PATH, --user NAME (asks for the password, or reads it with
    /// --password-stdin), or the MIST_TOKEN variable. An admin's
    /// token shows everything; a user's only the Ready versions of their games. The token and
    /// password are never printed.
    #[command(
        after_help = "Examples:\n  mistpipe status --server https://mist.example.org --user alice\n  \
        MIST_TOKEN=$(cat ~/.mist-token) mistpipe status --server http://127.0.0.1:8080 --json"
    )]
    Status(status::StatusArgs),

    /// Show what the server's reconciler would do for the specs in DIR.
    ///
    /// Loads DIR with the loader `validate` uses and compares it with what the server's read
    /// API shows an admin (GET /v1/games, /v1/games/{game}, /v1/users, /v1/status). Prints one
    /// line per change — `+` added, `~` changed, `-` removed — then a summary:
    ///
    ///     + game quake (public)
    ///     ~ version doom 1.2 (notes changed)
    ///     - user bob (deleted: can no longer log in)
    ///
    /// Compared: games (added, removed; title, description, public/private, launch, suspend),
    /// versions (added, removed; notes, the pinned digest against the ingested one, retired by
    /// retention), users (added, removed; role, display name, disabled). Not compared, because
    /// the API does not show them: grants, steamAppId, retention settings, version sources and
    /// password hashes. Removing a version or game only retires it (no longer served, nothing
    /// deleted) unless the game's retention says `prune: true`; a suspended game's versions
    /// are left as they are.
    ///
    /// Needs an admin's credentials (see `status`). Exit code 0 in sync, 1 there are changes,
    /// 2 it could not run (invalid specs, printed like `validate` does; the server not
    /// reachable; credentials refused).
    #[command(
        verbatim_doc_comment,
        after_help = "Examples:\n  mistpipe plan --server https://mist.example.org --user alice\n  \
        mistpipe plan my-specs/ --server http://127.0.0.1:8080 --token-file ~/.mist-token --json"
    )]
    Plan(drift::PlanArgs),

    /// Confirm a spec commit that retires more of the Ready versions than the server retires
    /// unconfirmed (more than half, by default).
    ///
    /// The server holds such a commit, a push to the wrong branch or a bad merge more often
    /// than a wish, and keeps serving every version with a NeedsConfirmation condition. This
    /// commits the confirmation (an empty commit marked `Mist-Confirm-Retire: yes`) on top.
    #[command(after_help = "Examples:\n  cd my-specs && mistpipe confirm-retire && git push")]
    ConfirmRetire(confirm::ConfirmArgs),

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
        Command::Status(args) => status::run(&args),
        Command::Plan(args) => drift::run(&args),
        Command::ConfirmRetire(args) => confirm::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
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
                let text = mist_specs::scaffold::schema_text(kind);
                output::write_replacing(&path, |out| Ok(out.write_all(text.as_bytes())?))?;
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
    let manifest = mist_games::scan::scan(&args.dir)
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
