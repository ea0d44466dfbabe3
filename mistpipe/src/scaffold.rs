//! Writing new spec files from the templates in `templates/specs/`, and git hooks.
//!
//! Every file written here is checked by the same loader `validate` uses before it is
//! written, and an existing file is never overwritten.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mist_platform::units::{count, human_size};
use mist_specs::check;
use mist_specs::model::Kind;
use mist_specs::scaffold::{SCHEMA_DIR, hash_password, render, schema_ref, schema_text};

use crate::failure::Failure;
use crate::output::{write_new, write_replacing};

/// Shortest password `user add` accepts.
const MIN_PASSWORD_LEN: usize = 8;

#[derive(clap::Subcommand)]
pub(crate) enum NewCommand {
    /// Write games/NAME/game.yaml.
    #[command(
        after_help = "Examples:\n  mistpipe new game celeste --title Celeste\n  \
        mistpipe new game secret-project --title 'Secret Project' --private --grant alice"
    )]
    Game {
        /// The game's name: lowercase letters, digits and `-`.
        name: String,
        /// The title friends see.
        #[arg(long)]
        title: String,
        /// A short description for the catalog.
        #[arg(long)]
        description: Option<String>,
        /// Make the game visible only to admins and granted users.
        #[arg(long)]
        private: bool,
        /// A user who may see the game when it is private (repeatable).
        #[arg(long = "grant", value_name = "USER")]
        grants: Vec<String>,
        /// The program the client starts, relative to the install folder.
        #[arg(long, value_name = "PATH")]
        executable: Option<String>,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
    /// Write games/GAME/versions/VERSION.yaml for a build on the NAS.
    ///
    /// With --nas the build is hashed and its tree digest pinned, so the server refuses a
    /// build that changes afterwards.
    #[command(
        after_help = "Examples:\n  mistpipe new version celeste 1.4.0.1 --source incoming/celeste/1.4.0.1 \
        --nas /srv/nas --notes 'Fixes the chapter 7 crash.'"
    )]
    Version {
        /// The game, which must already have games/GAME/game.yaml.
        game: String,
        /// The version name, e.g. 1.4.0.1.
        #[arg(value_name = "VERSION")]
        version_name: String,
        /// The build folder relative to the NAS root.
        #[arg(long, value_name = "REL")]
        source: String,
        /// The NAS root: check the build is there and pin its digest.
        #[arg(long, value_name = "DIR")]
        nas: Option<PathBuf>,
        /// Release notes.
        #[arg(long)]
        notes: Option<String>,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Write users/NAME.yaml with an argon2id hash of a password.
    ///
    /// The password is read from a prompt that does not echo (asked twice), or from the first
    /// line of standard input with --password-stdin. It never appears in output, in the file
    /// or in the process list.
    #[command(after_help = "Examples:\n  mistpipe user add alice --role user\n  \
        printf '%s\\n' \"$PW\" | mistpipe user add bob --role admin --password-stdin")]
    Add {
        /// The login name: lowercase letters, digits and `-`.
        name: String,
        /// What the user may see.
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// The name shown in the client.
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
    /// Set a new password for an existing user (asked twice, or --password-stdin).
    ///
    /// Commit the change: tokens the user holds stop working once the server has read it.
    #[command(after_help = "Examples:\n  mistpipe user passwd alice\n  \
        printf '%s\\n' \"$PW\" | mistpipe user passwd alice --password-stdin")]
    Passwd {
        /// The login name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
    /// Disable a user: they cannot log in, and their tokens stop working once the commit is
    /// read. Their file and grants stay, so `enable` undoes it.
    #[command(after_help = "Examples:\n  mistpipe user disable alice")]
    Disable {
        /// The login name.
        name: String,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
    /// Enable a disabled user again.
    #[command(after_help = "Examples:\n  mistpipe user enable alice")]
    Enable {
        /// The login name.
        name: String,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
    /// Delete a user's file. Refused while a game grants them access (remove the grant, or
    /// disable the user instead).
    #[command(after_help = "Examples:\n  mistpipe user remove alice")]
    Remove {
        /// The login name.
        name: String,
        /// The spec repository.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum HookCommand {
    /// Install a pre-commit hook that runs `mistpipe validate --staged`.
    ///
    /// The hook refuses any commit whose staged specs do not validate. It calls this
    /// mistpipe binary by its absolute path.
    #[command(after_help = "Examples:\n  cd my-specs && mistpipe hook install\n  \
        mistpipe hook install --repo my-specs\n  \
        mistpipe hook install --nas /srv/nas   # also check each version's source on the NAS")]
    Install {
        /// The spec repository (a git work tree, or any folder in it).
        #[command(flatten)]
        repo: crate::repo::RepoArgs,
        /// The NAS root: the hook also checks that each version's source is a build on it
        /// (`validate --nas`), so a wrong `source` is refused at commit time.
        #[arg(long, value_name = "DIR")]
        nas: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// Sees public games and granted private ones.
    User,
    /// Sees everything.
    Admin,
}

pub(crate) fn run_new(command: NewCommand) -> anyhow::Result<()> {
    match command {
        NewCommand::Game {
            name,
            title,
            description,
            private,
            grants,
            executable,
            repo,
        } => {
            check::check_name(&name).map_err(|error| Failure::invalid(error.to_string()))?;
            if title.trim().is_empty() {
                // The schema allows it, but `validate` rejects an empty title.
                return Err(Failure::invalid(
                    "--title is empty; give the title friends see",
                ));
            }
            for grant in &grants {
                check::check_name(grant).map_err(|e| Failure::invalid(format!("--grant: {e}")))?;
            }
            if let Some(executable) = &executable {
                check::check_relative_path(executable, "--executable")
                    .map_err(|error| Failure::invalid(error.to_string()))?;
            }
            let rel = format!("games/{name}/game.yaml");
            let text = render(
                "game.yaml.j2",
                minijinja::context! {
                    schema => schema_ref(&rel, Kind::Game),
                    name, title, description, private, grants, executable,
                },
            )?;
            write_spec(&repo, &rel, Kind::Game, &text)
        }
        NewCommand::Version {
            game,
            version_name: version,
            source,
            nas,
            notes,
            repo,
        } => {
            check::check_name(&game).map_err(|error| Failure::invalid(error.to_string()))?;
            check::check_version_name(&version)
                .map_err(|error| Failure::invalid(error.to_string()))?;
            check::check_relative_path(&source, "--source")
                .map_err(|error| Failure::invalid(error.to_string()))?;
            let game_file = repo.join("games").join(&game).join("game.yaml");
            if !game_file.is_file() {
                return Err(Failure::invalid(format!(
                    "there is no game `{game}` ({} does not exist); create it first with `mistpipe new game {game} --title …`",
                    game_file.display()
                )));
            }
            let digest = match &nas {
                Some(nas) => {
                    mist_specs::nas::check_source_on_nas(nas, &source)
                        .map_err(|error| Failure::invalid(error.to_string()))?;
                    let build = nas.join(&source);
                    eprintln!("hashing {} …", build.display());
                    let manifest = mist_games::scan::scan(&build)
                        .with_context(|| format!("cannot hash the build in {}", build.display()))?;
                    let digest = manifest.tree_digest().to_string();
                    eprintln!(
                        "{}, {}: {digest}",
                        count(manifest.n_files() as u64, "file"),
                        human_size(manifest.total_size())
                    );
                    Some(digest)
                }
                None => None,
            };
            let rel = format!("games/{game}/versions/{version}.yaml");
            let text = render(
                "version.yaml.j2",
                minijinja::context! { schema => schema_ref(&rel, Kind::Version), game, version, source, digest, notes },
            )?;
            write_spec(&repo, &rel, Kind::Version, &text)
        }
    }
}

pub(crate) fn run_user(command: UserCommand) -> anyhow::Result<()> {
    use crate::users::{Change, change, remove};
    let (name, role, display_name, password_stdin, repo) = match command {
        UserCommand::Add {
            name,
            role,
            display_name,
            password_stdin,
            repo,
        } => (name, role, display_name, password_stdin, repo),
        UserCommand::Passwd {
            name,
            password_stdin,
            repo,
        } => {
            let password = new_password(&name, password_stdin)?;
            change(&repo, &name, Change::Password(password))?;
            return done(&format!("changed the password of {name}"));
        }
        UserCommand::Disable { name, repo } => {
            change(&repo, &name, Change::Disabled(true))?;
            return done(&format!("disabled {name}"));
        }
        UserCommand::Enable { name, repo } => {
            change(&repo, &name, Change::Disabled(false))?;
            return done(&format!("enabled {name}"));
        }
        UserCommand::Remove { name, repo } => {
            remove(&repo, &name)?;
            return done(&format!("removed {name}"));
        }
    };
    add_user(name, role, display_name, password_stdin, repo)
}

fn done(what: &str) -> anyhow::Result<()> {
    println!("{what}; commit the change for the server to apply it");
    Ok(())
}

/// A password read as `user add` reads it, and long enough.
fn new_password(name: &str, password_stdin: bool) -> anyhow::Result<String> {
    let password = read_password(name, password_stdin)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Failure::invalid(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(password)
}

fn add_user(
    name: String,
    role: RoleArg,
    display_name: Option<String>,
    password_stdin: bool,
    repo: PathBuf,
) -> anyhow::Result<()> {
    check::check_name(&name).map_err(|error| Failure::invalid(error.to_string()))?;
    let rel = format!("users/{name}.yaml");
    let path = repo.join(&rel);
    if path.exists() {
        return Err(Failure::invalid(format!(
            "{} already exists; not overwriting it",
            path.display()
        )));
    }
    let password = new_password(&name, password_stdin)?;
    let password_hash = hash_password(&password).map_err(anyhow::Error::msg)?;
    let role = match role {
        RoleArg::User => "user",
        RoleArg::Admin => "admin",
    };
    let text = render(
        "user.yaml.j2",
        minijinja::context! { schema => schema_ref(&rel, Kind::User), name, role, display_name, password_hash },
    )?;
    write_spec(&repo, &rel, Kind::User, &text)
}

pub(crate) fn run_hook(command: HookCommand) -> anyhow::Result<()> {
    let HookCommand::Install { repo, nas } = command;
    let repo = repo.dir();
    let nas = nas
        .map(|nas| {
            std::fs::canonicalize(&nas)
                .ok()
                .filter(|real| real.is_dir())
                .ok_or_else(|| {
                    Failure::invalid(format!(
                        "--nas {}: no such folder; give the NAS root the builds are copied to",
                        nas.display()
                    ))
                })
        })
        .transpose()?;
    let repository = git2::Repository::discover(&repo).map_err(|_| {
        let folder = if repo == Path::new(".") {
            "the current folder".to_owned()
        } else {
            repo.display().to_string()
        };
        Failure::invalid(format!(
            "{folder} is not in a git repository, and a hook belongs to one: run this in your \
             spec repository (or pass --repo DIR), or make one first with `git init`"
        ))
    })?;
    let hooks = repository.path().join("hooks");
    std::fs::create_dir_all(&hooks)
        .with_context(|| format!("cannot create {}", hooks.display()))?;
    let hook = hooks.join("pre-commit");
    if hook.exists() {
        return Err(Failure::invalid(format!(
            "{} already exists; add `mistpipe validate --staged \"$(git rev-parse --show-toplevel)\"` to it by hand",
            hook.display()
        )));
    }
    let exe = std::env::current_exe().context("cannot find the mistpipe binary's path")?;
    let text = render(
        "pre-commit.sh.j2",
        minijinja::context! {
            mistpipe => shell_quote(&exe.display().to_string()),
            nas => nas.map(|nas| shell_quote(&nas.display().to_string())),
        },
    )?;
    write_new(&hook, text.as_bytes(), Some(0o755))?;
    println!("installed {}", hook.display());
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    use mist_platform::password::{PasswordError, read_new};
    match read_new(&format!("Password for {name}: "), from_stdin) {
        Ok(Some(password)) => Ok(password),
        Ok(None) => Err(Failure::invalid("the passwords differ")),
        // Too short, as the caller says.
        Err(PasswordError::Empty) => Ok(String::new()),
        Err(error) => Err(error.into()),
    }
}

/// Checks the rendered spec with the real loader, then writes it (never over a file).
fn write_spec(repo: &Path, rel: &str, kind: Kind, text: &str) -> anyhow::Result<()> {
    crate::output::check_spec_text(text, kind).map_err(|problem| {
        Failure::invalid(format!("the scaffold for {rel} is invalid: {problem}"))
    })?;
    let path = repo.join(rel);
    if path.exists() {
        return Err(Failure::invalid(format!(
            "{} already exists; not overwriting it",
            path.display()
        )));
    }
    // Folders this call creates, outermost first, so a refused scaffold leaves none behind.
    let mut created = Vec::new();
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.exists()) {
        created.push(d.to_path_buf());
        dir = d.parent();
    }
    created.reverse();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_new(&path, text.as_bytes(), None)?;

    // Check the new file in its tree with the same loader `validate` uses (references to
    // other files included), and take it back if it has a problem.
    let problems: Vec<String> = match mist_specs::load::load_dir(repo, &Default::default()) {
        Ok(loaded) => loaded
            .diagnostics
            .iter()
            .filter(|d| d.file == rel)
            .map(|d| d.message.clone())
            .collect(),
        Err(e) => vec![format!("cannot check the spec tree: {e}")],
    };
    if !problems.is_empty() {
        let _ = std::fs::remove_file(&path);
        for d in created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        return Err(Failure::invalid(format!(
            "not writing {rel}: {}",
            problems.join("; ")
        )));
    }
    ensure_schemas(repo)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Writes the schema files the `$schema` lines point at, when missing or out of date.
fn ensure_schemas(repo: &Path) -> anyhow::Result<()> {
    let dir = repo.join(SCHEMA_DIR);
    for kind in Kind::ALL {
        let path = dir.join(kind.schema_file_name());
        let text = schema_text(kind);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            write_replacing(&path, |out| Ok(out.write_all(text.as_bytes())?))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
