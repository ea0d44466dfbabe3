//! `mist`, the friends' client: get games from a Mist server and keep them up to date.
//!
//! Exit codes (docs/cli.md): 0 success, 1 `mist verify` found the game damaged, 2 the
//! command was used wrongly or could not do its work (the message says why; installs are
//! left at the old version or the new one). `mist launch` exits 0 once the game ran, whatever
//! the game's own code, unless `--pass-exit-code` asks for it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use mist_client::dirs::Dirs;
use mist_client::download::{DownloadOptions, parse_rate};
use mist_client::ops::install::UpdateSummary;
use mist_client::ops::{self, Context};
use mist_client::progress::{Progress, ProgressMode};
use mist_platform::units::{count, human_size, utc_minute};

/// Get games from a Mist server and keep them up to date, downloading only what changed.
///
/// Log in once with `mist login --server URL`; the token is kept in the config folder
/// (MIST_CONFIG_DIR, else $XDG_CONFIG_HOME/mist, else ~/.config/mist) with mode 0600.
/// Installed games' state and partial downloads live in the data folder (MIST_DATA_DIR, else
/// $XDG_DATA_HOME/mist, else ~/.local/share/mist). Every command can be stopped at any
/// moment: an install is always the old version or the new one, and running the same command
/// again finishes the job, resuming downloads where they stopped.
#[derive(Parser)]
#[command(name = "mist", version, max_term_width = 100)]
#[command(
    after_help = "Examples:\n  mist login --server https://mist.example:8080 --user alice\n  \
    mist list\n  mist install starfall\n  mist update --all\n  mist launch starfall -- --windowed\n\n\
    Exit codes: 0 success, 1 `mist verify` found damage, 2 wrong usage or the command failed."
)]
struct Cli {
    /// No progress bars (they are also hidden when standard error is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,

    /// How progress is shown: `auto` (bars on a terminal), `plain` (lines like
    /// `download 1048576/5242880` on standard error, for scripts) or `none`.
    #[arg(long, global = true, value_name = "MODE", default_value = "auto", value_parser = ["auto", "plain", "none"], env = "MIST_PROGRESS")]
    progress: String,

    #[command(flatten)]
    download: DownloadArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DownloadArgs {
    /// Artifacts downloaded at once.
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16), env = "MIST_JOBS")]
    jobs: u16,

    /// The most bytes per second over all downloads, e.g. 500K, 2M, 1G.
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate, env = "MIST_LIMIT_RATE")]
    limit_rate: Option<u64>,

    /// Failed attempts in a row before a download gives up (waits double after each).
    #[arg(long, global = true, default_value_t = 6)]
    retries: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Log in and save the token (mode 0600; never printed).
    ///
    /// The password is asked without echo on a terminal, or read from the first line of
    /// standard input with --password-stdin (`pass show mist | mist login --user alice
    /// --password-stdin`).
    Login {
        /// The server, e.g. https://mist.example:8080 (default: the last one used).
        // This comment is also the `--help` text, which shows the URL as it is written.
        #[expect(rustdoc::bare_urls)]
        #[arg(long, env = "MIST_SERVER")]
        server: Option<String>,
        /// The user name (asked on a terminal when missing).
        #[arg(long, env = "MIST_USER")]
        user: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long, requires = "user")]
        password_stdin: bool,
    },
    /// List the games on the server, what is installed and which updates are waiting.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a game: its description, store details (genres, developers, release date) and
    /// every version with its size and release notes.
    Info {
        /// The game's name, as `mist list` shows it.
        game: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a game.
    #[command(after_help = "Examples:\n  mist install starfall\n  \
        mist install starfall --version 1.0.0 --dir ~/Games/starfall")]
    Install {
        /// The game's name, as `mist list` shows it.
        game: String,
        /// The version (default: the newest).
        #[arg(long)]
        version: Option<String>,
        /// The folder to install into, which must be new or empty (default: the library in
        /// the data folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Update a game, or every installed game with --all, to the newest version.
    ///
    /// Downloads the cheapest route the server plans (tree deltas, a skip delta or the
    /// pack) and applies it; files the update does not change are not rewritten. Also
    /// finishes an update that was interrupted.
    #[command(after_help = "Examples:\n  mist update starfall\n  mist update --all")]
    Update {
        /// The game to update (or --all).
        #[arg(conflicts_with = "all")]
        game: Option<String>,
        /// Update every installed game.
        #[arg(long)]
        all: bool,
        /// Print the summaries as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare every installed file with the manifest of its version.
    ///
    /// Exit code 0 when every file of the game is intact, 1 when some are missing or changed
    /// (with --repair: still damaged after the repair), 2 when it could not check.
    #[command(after_help = "Examples:\n  mist verify starfall\n  mist verify starfall --repair")]
    Verify {
        /// The game.
        game: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Repair what is missing or changed: each damaged file is fixed by an rsync delta
        /// or a whole-file fetch, whichever the server finds smaller. Files the game does
        /// not list are left alone.
        #[arg(long)]
        repair: bool,
    },
    /// Remove a game: its files, partial downloads and local state.
    ///
    /// Only what the game installed is removed: files in its folder that it did not install
    /// (saves, configs, mods) are kept and listed. `--purge` removes the whole folder.
    #[command(
        after_help = "Examples:\n  mist uninstall starfall\n  mist uninstall starfall --purge"
    )]
    Uninstall {
        /// The game.
        game: String,
        /// Remove the whole install folder, files the game did not install too. Asks first
        /// on a terminal; elsewhere it needs --yes.
        #[arg(long)]
        purge: bool,
        /// Purge without asking.
        #[arg(long, requires = "purge")]
        yes: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a game with the server's launch command, adding ARGS, and wait for it to end.
    ///
    /// Ctrl-C goes to the game. mist exits 0 once the game ran, whatever the game's own exit
    /// code (a code other than 0 is reported on standard error), unless --pass-exit-code
    /// asks for the game's code as mist's.
    #[command(after_help = "Examples:\n  mist launch starfall\n  \
        mist launch starfall -- --windowed\n  mist launch starfall --pass-exit-code")]
    Launch {
        /// The game.
        game: String,
        /// Exit with the game's exit code (128 + N when signal N ended it), for scripts that
        /// check how the game ended.
        #[arg(long)]
        pass_exit_code: bool,
        /// Arguments passed to the game after the server's own.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Show the login and the installed games (no network).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The exit code of a check that found what it checks not as wanted (`mist verify`).
const EXIT_NOT_AS_WANTED: u8 = 1;

/// The exit code of wrong usage or a command that could not do its work; clap's usage
/// errors exit with it too.
const EXIT_CANNOT_RUN: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let context = Context {
        dirs: Dirs::from_env()?,
        progress: Progress::with_mode(match cli.progress.as_str() {
            _ if cli.quiet => ProgressMode::Off,
            "plain" => ProgressMode::Plain,
            "none" => ProgressMode::Off,
            _ => ProgressMode::Auto,
        }),
        download: DownloadOptions {
            jobs: usize::from(cli.download.jobs),
            limit_rate: cli.download.limit_rate,
            retries: cli.download.retries,
            ..DownloadOptions::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Login {
            server,
            user,
            password_stdin,
        } => login(
            &runtime,
            &context,
            server,
            user,
            password_stdin,
            &mut stdout,
        )?,
        Command::List { json } => list(&runtime, &context, json, &mut stdout)?,
        Command::Info { game, json } => {
            let info = runtime.block_on(ops::library::info(&context, &game))?;
            if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&info)?)?;
            } else {
                print_info(&mut stdout, &info)?;
            }
        }
        Command::Install {
            game,
            version,
            dir,
            json,
        } => {
            let summary = runtime.block_on(ops::install::install(
                &context,
                &game,
                version.as_deref(),
                dir.as_deref(),
            ));
            print_summaries(
                &mut stdout,
                &[finish_line(summary, "installing", &game)?],
                json,
            )?;
        }
        Command::Update { game, all, json } => {
            let games = match (game, all) {
                (Some(game), _) => vec![game],
                (None, true) => ops::library::installed_games(&context)?,
                (None, false) => bail!(
                    "name the game to update (`mist update GAME`), or update every installed \
                     game with `mist update --all`"
                ),
            };
            update(&runtime, &context, &games, json, &mut stdout)?;
        }
        Command::Verify {
            game,
            json,
            repair: true,
        } => return repair(&runtime, &context, &game, json, &mut stdout),
        Command::Verify { game, json, .. } => return verify(&context, &game, json, &mut stdout),
        Command::Uninstall {
            game,
            purge,
            yes,
            json,
        } => uninstall(&context, &game, purge, yes, json, &mut stdout)?,
        Command::Launch {
            game,
            pass_exit_code,
            args,
        } => {
            let mut command = ops::launch::launch_command(&context, &game, &args)?;
            drop(stdout);
            let status = mist_client::platform::run_game(&mut command)
                .with_context(|| format!("failed to start {game}"))?;
            let code = mist_client::platform::exit_code_of(status);
            if pass_exit_code {
                return Ok(ExitCode::from(code));
            }
            if code != 0 {
                eprintln!(
                    "{game} exited with code {code} (`mist launch --pass-exit-code` makes it \
                     mist's exit code)"
                );
            }
        }
        Command::Status { json } => status(&context, json, &mut stdout)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `mist login`: asks for what the command line does not give, and saves the token.
fn login(
    runtime: &tokio::runtime::Runtime,
    context: &Context,
    server: Option<String>,
    user: Option<String>,
    password_stdin: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    let user = match user {
        Some(user) => user,
        None => prompt_user()?,
    };
    let password = mist_platform::password::read("Password: ", password_stdin)?;
    let credentials = runtime.block_on(ops::login(&context.dirs, server, &user, &password))?;
    writeln!(
        stdout,
        "Logged in to {} as {}; token saved in {}",
        credentials.server,
        credentials.user,
        context.dirs.credentials().display()
    )?;
    Ok(())
}

/// `mist list`: the catalog as a table or JSON.
fn list(
    runtime: &tokio::runtime::Runtime,
    context: &Context,
    json: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    let rows = runtime.block_on(ops::library::list(context))?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    let legend = list_legend(&rows);
    writeln!(
        stdout,
        "{:<20} {:<12} {:>9} {:<12} TITLE",
        "GAME", "LATEST", "SIZE", "INSTALLED"
    )?;
    for row in rows {
        let installed = match (&row.installed, row.update_available) {
            (Some(version), true) => format!("{version} *"),
            (Some(version), false) => version.clone(),
            (None, _) => "-".into(),
        };
        writeln!(
            stdout,
            "{:<20} {:<12} {:>9} {:<12} {}",
            row.name,
            row.latest.as_deref().unwrap_or("-"),
            row.size.map_or_else(|| "-".to_owned(), human_size),
            installed,
            row.title
        )?;
    }
    for line in legend {
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}

/// What the marks in `mist list`'s table mean, for the marks it shows.
fn list_legend(rows: &[ops::library::ListRow]) -> Vec<String> {
    let mut legend = Vec::new();
    if rows.is_empty() {
        legend.push("No games on the server that you may see yet.".to_owned());
        return legend;
    }
    legend.push(String::new());
    if rows.iter().any(|row| row.update_available) {
        legend.push(
            "*  an update is waiting: `mist update GAME`, or `mist update --all` for every game"
                .to_owned(),
        );
    }
    if rows.iter().any(|row| row.installed.is_none()) {
        legend.push("-  not installed (`mist install GAME`), or no version Ready yet".to_owned());
    }
    if legend.len() == 1 {
        legend.clear();
    }
    legend
}

/// `mist info`: the game, its store details, and its versions newest first with their
/// sizes and notes.
fn print_info(stdout: &mut impl Write, info: &ops::library::GameInfo) -> anyhow::Result<()> {
    let game = &info.game;
    writeln!(stdout, "{} ({})", game.title, game.name)?;
    if let Some(description) = &game.description {
        writeln!(stdout, "{description}")?;
    }
    writeln!(stdout)?;
    let field = |stdout: &mut dyn Write, name: &str, value: &str| -> std::io::Result<()> {
        writeln!(stdout, "{:<12} {value}", format!("{name}:"))
    };
    if let Some(store) = &game.store {
        if !store.genres.is_empty() {
            field(stdout, "Genres", &store.genres.join(", "))?;
        }
        if !store.developers.is_empty() {
            field(stdout, "Developers", &store.developers.join(", "))?;
        }
        if let Some(date) = &store.release_date {
            field(stdout, "Released", date)?;
        }
        field(
            stdout,
            "Steam app",
            &format!(
                "{} (store details of {})",
                store.steam_app_id,
                utc_minute(store.fetched_at)
            ),
        )?;
    }
    let latest = game.latest.as_deref().unwrap_or("none ready yet");
    let installed = match (&info.installed, &game.latest) {
        (Some(installed), Some(latest)) if installed != latest => {
            format!("{installed}, `mist update {}` for {latest}", game.name)
        }
        (Some(installed), _) => installed.clone(),
        (None, _) => format!("no (`mist install {}`)", game.name),
    };
    field(stdout, "Latest", latest)?;
    field(stdout, "Installed", &installed)?;
    writeln!(stdout)?;
    writeln!(stdout, "Versions, newest first:")?;
    for version in game.versions.iter().rev() {
        let mut line = format!("  {}", version.name);
        if let Some(pack) = &version.pack {
            line.push_str(&format!("  {}", human_size(pack.size)));
        }
        if let Some(released_at) = version.released_at {
            line.push_str(&format!("  released {}", utc_minute(released_at)));
        }
        writeln!(stdout, "{line}")?;
        for note in version.notes.iter().flat_map(|notes| notes.lines()) {
            writeln!(stdout, "      {note}")?;
        }
    }
    Ok(())
}

/// `mist update`: each game in turn; with several games, one failure does not stop the
/// others, and the command fails at the end.
fn update(
    runtime: &tokio::runtime::Runtime,
    context: &Context,
    games: &[String],
    json: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    let mut summaries = Vec::new();
    let mut failed = 0;
    for game in games {
        match finish_line(
            runtime.block_on(ops::install::update(context, game)),
            "updating",
            game,
        ) {
            Ok(summary) => summaries.push(summary),
            Err(error) if games.len() > 1 => {
                eprintln!("error: {error:#}");
                failed += 1;
            }
            Err(error) => return Err(error),
        }
    }
    print_summaries(stdout, &summaries, json)?;
    if failed > 0 {
        bail!("{failed} of {} updates failed", games.len());
    }
    Ok(())
}

/// `mist verify --repair`: the repair report as text or JSON; fails when the game is still
/// damaged.
fn repair(
    runtime: &tokio::runtime::Runtime,
    context: &Context,
    game: &str,
    json: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let report = runtime.block_on(mist_client::repair::verify_and_repair(context, game))?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        if !report.after.is_clean() {
            eprintln!("{game} is still damaged after the repair");
        }
    } else {
        mist_client::repair::print(stdout, &report)?;
    }
    Ok(if report.after.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_AS_WANTED)
    })
}

/// `mist verify`: what differs from the manifest; exit code 1 when something is missing or
/// changed.
fn verify(
    context: &Context,
    game: &str,
    json: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let report = ops::verify::verify(context, game)?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for path in &report.missing {
            writeln!(stdout, "missing  {path}")?;
        }
        for path in &report.changed {
            writeln!(stdout, "changed  {path}")?;
        }
        for path in &report.extra {
            writeln!(stdout, "extra    {path}")?;
        }
    }
    if !report.is_clean() {
        eprintln!(
            "{game} is damaged: {} missing, {} changed; fix it with \
             `mist verify {game} --repair`",
            report.missing.len(),
            report.changed.len()
        );
        return Ok(ExitCode::from(EXIT_NOT_AS_WANTED));
    }
    eprintln!(
        "{game} {} is intact ({} not from the game)",
        report.version.as_deref().unwrap_or("?"),
        count(report.extra.len() as u64, "extra file"),
    );
    Ok(ExitCode::SUCCESS)
}

/// `mist status`: the login and the installed games, as text or JSON.
fn status(context: &Context, json: bool, stdout: &mut impl Write) -> anyhow::Result<()> {
    let report = ops::library::status(context)?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    match (&report.server, &report.user) {
        (Some(server), Some(user)) => {
            writeln!(stdout, "Logged in to {server} as {user}")?;
        }
        _ => writeln!(stdout, "Not logged in (run `mist login --server URL`)")?,
    }
    for game in &report.games {
        let version = match (&game.version, &game.interrupted_towards) {
            (_, Some(to)) => format!("interrupted on the way to {to}"),
            (Some(version), None) => version.clone(),
            (None, None) => "install not finished".into(),
        };
        writeln!(
            stdout,
            "{:<20} {:<30} {}, {} in {}",
            game.game,
            version,
            count(game.n_files as u64, "file"),
            human_size(game.size),
            game.dir.display()
        )?;
    }
    Ok(())
}

/// Prints the final line of an install or update on standard error, success or failure.
fn finish_line(
    summary: anyhow::Result<UpdateSummary>,
    verb: &str,
    game: &str,
) -> anyhow::Result<UpdateSummary> {
    match summary {
        Ok(summary) => {
            let line = match summary.outcome {
                "upToDate" => format!("{game} is up to date ({})", summary.to),
                outcome => {
                    let ratio = summary
                        .full_bytes
                        .filter(|full| *full > 0)
                        .map(|full| {
                            format!(
                                ", {:.0} % of a full download",
                                100.0 * summary.downloaded_bytes as f64 / full as f64
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "{game} {outcome}: {} → {} in {} ({} route, {} downloaded of {} planned{ratio})",
                        summary.from.as_deref().unwrap_or("nothing"),
                        summary.to,
                        summary.dir.display(),
                        summary.route,
                        human_size(summary.downloaded_bytes),
                        human_size(summary.planned_bytes),
                    )
                }
            };
            eprintln!("{line}");
            Ok(summary)
        }
        Err(error) => Err(error.context(format!("{verb} {game} failed"))),
    }
}

fn print_summaries(
    stdout: &mut impl Write,
    summaries: &[UpdateSummary],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(summaries)?)?;
    }
    Ok(())
}

fn uninstall(
    context: &Context,
    game: &str,
    purge: bool,
    yes: bool,
    json: bool,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    use ops::uninstall::{Scope, foreign_files, uninstall};
    let scope = if purge { Scope::Purge } else { Scope::Listed };
    if purge && !yes {
        let foreign = foreign_files(context, game)?;
        if !foreign.is_empty() && !confirm_purge(game, &foreign)? {
            bail!("nothing removed");
        }
    }
    let report = uninstall(context, game, scope)?;
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let dir = report.dir.display();
    if report.kept.is_empty() {
        writeln!(stdout, "Uninstalled {game}: removed {dir}")?;
        return Ok(());
    }
    writeln!(
        stdout,
        "Uninstalled {game}: removed its {}; kept what it did not install, in {dir}:",
        count(report.removed, "file"),
    )?;
    for path in report.kept.iter().take(10) {
        writeln!(stdout, "  {path}")?;
    }
    if report.kept.len() > 10 {
        writeln!(stdout, "  … and {} more", report.kept.len() - 10)?;
    }
    writeln!(
        stdout,
        "`mist uninstall {game} --purge` would remove them too."
    )?;
    Ok(())
}

/// Asks on the terminal before a purge removes files the game did not install.
fn confirm_purge(game: &str, foreign: &[String]) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "--purge would delete {} {game} did not install (saves, configs, mods); add \
             --yes to confirm when not on a terminal",
            count(foreign.len() as u64, "file")
        );
    }
    eprintln!("These are not {game}'s files (saves, configs, mods?):");
    for path in foreign.iter().take(10) {
        eprintln!("  {path}");
    }
    if foreign.len() > 10 {
        eprintln!("  … and {} more", foreign.len() - 10);
    }
    eprint!("Delete them with the game? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn prompt_user() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "standard input is not a terminal, so there is nowhere to ask for the user name; pass --user NAME (and --password-stdin)"
        );
    }
    eprint!("User: ");
    std::io::stderr().flush()?;
    let mut user = String::new();
    std::io::stdin().lock().read_line(&mut user)?;
    let user = user.trim().to_owned();
    if user.is_empty() {
        bail!("no user name given");
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
