//! `mistpipe plan`: what the reconciler will do for the specs in a folder, compared with what
//! a server's read API shows.
//!
//! The shell reads the specs with the loader `validate` uses and the server's state with an
//! admin's token (`GET /v1/games`, `/v1/games/{game}`, `/v1/users`, `/v1/status`); [`diff`]
//! is pure and holds every rule, each one the reconciler's (docs/reconciler.md):
//!
//! - games and users in the specs but not on the server are added; users no longer in the
//!   specs are deleted (they cannot log in);
//! - a game no longer in the specs keeps its row and data: its versions are marked retired;
//! - a version no longer in the specs is retired, and nothing is deleted unless its game's
//!   retention says `prune: true` (then its artifacts and row go);
//! - with `prune: true` and `keepVersions: N`, versions beyond the newest N are retired;
//! - a suspended game's row (title, flags) is written, but its versions are left as they are.
//!
//! Only what the API shows can be compared: not grants, `steamAppId`, retention, version
//! sources or password hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use mist_specs::load::{GameSpecs, LoadOptions, Specs};
use mist_specs::model::Role;
use mist_specs::source::DirSource;
use mist_wire::auth::{self, UserInfo, UserList};
use mist_wire::catalog::{GameDetail, GameList, LaunchInfo, VersionDetail, VersionState};
use mist_wire::status::StatusView;
use serde::Serialize;

use mist_platform::units;

use crate::remote::{ServerArgs, Session};
use crate::repo::RepoArgs;

#[derive(clap::Args)]
pub(crate) struct PlanArgs {
    /// The spec repository (or any folder holding games/ and users/).
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the plan as JSON: `{"inSync", "changes": [{"action", "kind", "game", "name",
    /// "details"}], "notes"}`.
    #[arg(long)]
    json: bool,
}

/// What the server shows of its desired state (an admin's view).
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    /// Games by name, each as `GET /v1/games/{game}` shows it to an admin.
    pub(crate) games: BTreeMap<String, GameDetail>,
    /// Users by name.
    pub(crate) users: BTreeMap<String, UserInfo>,
}

/// What the reconciler would do: the drift between the specs and the server.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Drift {
    /// Whether there is nothing to do.
    in_sync: bool,
    /// Every change, games (each followed by its versions) then users, by name.
    changes: Vec<Change>,
    /// Things worth knowing that are not changes.
    notes: Vec<String>,
}

/// One thing added, changed or removed.
#[derive(Debug, Serialize)]
pub(crate) struct Change {
    action: Action,
    kind: Kind,
    /// The game, for games and versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    game: Option<String>,
    /// The game's, version's or user's name.
    name: String,
    /// What changes, for people.
    details: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Add,
    Change,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Game,
    Version,
    User,
}

pub(crate) fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let dir = args.repo.dir();
    let source = DirSource::new(&dir)?;
    let loaded = mist_specs::load::load(&source, &LoadOptions::default())
        .with_context(|| format!("cannot read the spec tree in {}", dir.display()))?;
    if !loaded.is_valid() {
        let mut err = std::io::stderr().lock();
        for diagnostic in &loaded.diagnostics {
            let shown = mist_specs::load::Diagnostic {
                file: dir.join(&diagnostic.file).display().to_string(),
                ..diagnostic.clone()
            };
            writeln!(err, "{shown}")?;
            if let Some(hint) = &diagnostic.hint {
                writeln!(err, "  hint: {hint}")?;
            }
        }
        anyhow::bail!(
            "the specs in {} are invalid ({}); the server would refuse them, so there is \
             nothing to plan",
            dir.display(),
            mist_platform::units::count(loaded.diagnostics.len() as u64, "problem"),
        );
    }

    let session = Session::open(&args.server)?;
    if let Some(role) = session.role.filter(|role| *role != auth::Role::Admin) {
        anyhow::bail!(
            "plan needs an admin: the server shows only admins every game, version and user \
             (logged in as a `{role}`)"
        );
    }
    let state = fetch_state(&session)?;
    let status: StatusView = session.get(&["v1", "status"])?;

    let mut plan = diff(&loaded.specs, &state);
    if let StatusView::Admin(status) = &status
        && !status.errors.is_empty()
    {
        let n_errors = status.errors.len();
        let applied = status
            .last_applied_revision
            .as_deref()
            .map_or("none", |commit| &commit[..commit.len().min(12)]);
        plan.notes.push(format!(
            "the server's latest spec commit has {} and is not applied; it serves commit \
             {applied} (`mistpipe status` shows the errors)",
            mist_platform::units::count(n_errors as u64, "error"),
        ));
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?;
    } else {
        write!(out, "{}", render(&plan, &loaded.specs, &state))?;
    }
    Ok(if plan.in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The server's games (each in detail) and users.
fn fetch_state(session: &Session) -> anyhow::Result<ServerState> {
    let list: GameList = session.get(&["v1", "games"])?;
    let mut state = ServerState::default();
    for summary in list.games {
        let game: GameDetail = session.get(&["v1", "games", &summary.name])?;
        if game.suspended.is_none() || game.versions.iter().any(|v| v.state.is_none()) {
            anyhow::bail!(
                "plan needs an admin's token: the server shows this one only what a friend sees"
            );
        }
        state.games.insert(summary.name, game);
    }
    let users: UserList = session.get(&["v1", "users"])?;
    state.users = users
        .users
        .into_iter()
        .map(|user| (user.name.clone(), user))
        .collect();
    Ok(state)
}

/// The reconciler's changes for `specs` against `server`; see the module documentation.
pub(crate) fn diff(specs: &Specs, server: &ServerState) -> Drift {
    let mut plan = Drift::default();
    let names: BTreeSet<&String> = specs.games.keys().chain(server.games.keys()).collect();
    for name in names {
        match (specs.games.get(name), server.games.get(name)) {
            (Some(desired), None) => add_game(&mut plan, name, desired),
            (Some(desired), Some(observed)) => change_game(&mut plan, name, desired, observed),
            (None, Some(observed)) => remove_game(&mut plan, name, observed),
            (None, None) => unreachable!("the name came from one of the maps"),
        }
    }
    let names: BTreeSet<&String> = specs.users.keys().chain(server.users.keys()).collect();
    for name in names {
        match (specs.users.get(name), server.users.get(name)) {
            (Some(desired), None) => plan.push(
                Action::Add,
                Kind::User,
                None,
                name,
                vec![role_name(desired.spec.role).to_string()],
            ),
            (Some(desired), Some(observed)) => {
                let mut details = Vec::new();
                let role = role_name(desired.spec.role);
                if role != observed.role.as_str() {
                    details.push(format!("role {} → {role}", observed.role));
                }
                if desired.spec.display_name != observed.display_name {
                    details.push("display name changed".to_string());
                }
                if desired.spec.disabled != observed.disabled {
                    details.push(if desired.spec.disabled {
                        "disabled: can no longer log in".to_string()
                    } else {
                        "enabled again".to_string()
                    });
                }
                if !details.is_empty() {
                    plan.push(Action::Change, Kind::User, None, name, details);
                }
            }
            (None, Some(_)) => plan.push(
                Action::Remove,
                Kind::User,
                None,
                name,
                vec!["deleted: can no longer log in".to_string()],
            ),
            (None, None) => unreachable!("the name came from one of the maps"),
        }
    }
    plan.in_sync = plan.changes.is_empty();
    plan
}

impl Drift {
    fn push(
        &mut self,
        action: Action,
        kind: Kind,
        game: Option<&str>,
        name: &str,
        details: Vec<String>,
    ) {
        self.changes.push(Change {
            action,
            kind,
            game: game.map(str::to_owned),
            name: name.to_owned(),
            details,
        });
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

fn add_game(plan: &mut Drift, name: &str, desired: &GameSpecs) {
    let spec = &desired.game.spec;
    let mut details = vec![if spec.private { "private" } else { "public" }.to_string()];
    if spec.suspend {
        details.push(format!(
            "suspended: its {} version{} wait until it is resumed",
            desired.versions.len(),
            if desired.versions.len() == 1 { "" } else { "s" }
        ));
    }
    plan.push(Action::Add, Kind::Game, None, name, details);
    if spec.suspend {
        return;
    }
    for version in &desired.versions {
        plan.push(
            Action::Add,
            Kind::Version,
            Some(name),
            &version.metadata.name,
            Vec::new(),
        );
    }
}

fn change_game(plan: &mut Drift, name: &str, desired: &GameSpecs, observed: &GameDetail) {
    let spec = &desired.game.spec;
    let mut details = Vec::new();
    if spec.title != observed.title {
        details.push(format!("title {:?} → {:?}", observed.title, spec.title));
    }
    if spec.description != observed.description {
        details.push("description changed".to_string());
    }
    if spec.private != observed.private {
        details.push(if spec.private {
            "public → private".to_string()
        } else {
            "private → public".to_string()
        });
    }
    let launch = spec.launch.as_ref().map(|launch| LaunchInfo {
        executable: launch.executable.clone(),
        args: launch.args.clone(),
    });
    if launch != observed.launch {
        details.push("launch changed".to_string());
    }
    if observed.suspended != Some(spec.suspend) {
        details.push(if spec.suspend {
            "suspended: left exactly as it is".to_string()
        } else {
            "resumed".to_string()
        });
    }
    if !details.is_empty() {
        plan.push(Action::Change, Kind::Game, None, name, details);
    }

    let mut versions = Drift::default();
    diff_versions(&mut versions, name, desired, observed);
    if spec.suspend {
        // The reconciler writes no version rows for a suspended game.
        if !versions.changes.is_empty() {
            plan.notes.push(format!(
                "{name} is suspended: {} version change{} wait until it is resumed",
                versions.changes.len(),
                if versions.changes.len() == 1 { "" } else { "s" }
            ));
        }
    } else {
        plan.changes.append(&mut versions.changes);
    }
}

fn diff_versions(plan: &mut Drift, game: &str, desired: &GameSpecs, observed: &GameDetail) {
    let retention = &desired.game.spec.retention;
    let n_versions = desired.versions.len();
    let keep = usize::try_from(retention.keep_versions).unwrap_or(usize::MAX);
    let observed_by_name: BTreeMap<&str, &VersionDetail> = observed
        .versions
        .iter()
        .map(|version| (version.name.as_str(), version))
        .collect();
    for (version_idx, version) in desired.versions.iter().enumerate() {
        let name = version.metadata.name.as_str();
        let Some(server_version) = observed_by_name.get(name) else {
            plan.push(Action::Add, Kind::Version, Some(game), name, Vec::new());
            continue;
        };
        let mut details = Vec::new();
        let beyond_kept = retention.prune && keep > 0 && version_idx + keep < n_versions;
        let retired = server_version.state == Some(VersionState::Retired);
        if beyond_kept && !retired {
            details.push(format!(
                "beyond the newest {keep} kept: retired, its artifacts removed"
            ));
        } else if !beyond_kept && retired {
            details.push("retired on the server: served again once Ready".to_string());
        }
        if version.spec.notes != server_version.notes {
            details.push("notes changed".to_string());
        }
        if let (Some(pinned), Some(ingested)) = (&version.spec.digest, &server_version.tree_digest)
            && pinned != ingested
        {
            details.push(format!(
                "pinned digest {} differs from the ingested {}: ingested again",
                short_digest(pinned),
                short_digest(ingested)
            ));
        }
        if !details.is_empty() {
            plan.push(Action::Change, Kind::Version, Some(game), name, details);
        }
    }
    let desired_names: BTreeSet<&str> = desired
        .versions
        .iter()
        .map(|version| version.metadata.name.as_str())
        .collect();
    for version in &observed.versions {
        if desired_names.contains(version.name.as_str()) {
            continue;
        }
        if retention.prune {
            plan.push(
                Action::Remove,
                Kind::Version,
                Some(game),
                &version.name,
                vec!["pruned: its artifacts and row are removed, never its build".to_string()],
            );
        } else if version.state != Some(VersionState::Retired) {
            plan.push(
                Action::Remove,
                Kind::Version,
                Some(game),
                &version.name,
                vec![
                    "retired: no longer served, and nothing is deleted: no retention policy prunes it"
                        .to_string(),
                ],
            );
        }
    }
}

fn remove_game(plan: &mut Drift, name: &str, observed: &GameDetail) {
    let n_live = observed
        .versions
        .iter()
        .filter(|version| version.state != Some(VersionState::Retired))
        .count();
    // A game removed earlier keeps its row with every version retired: nothing left to do.
    if n_live == 0 {
        return;
    }
    plan.push(
        Action::Remove,
        Kind::Game,
        None,
        name,
        vec![format!(
            "its {n_live} version{} retired: no longer served; nothing is deleted",
            if n_live == 1 { " is" } else { "s are" }
        )],
    );
}

fn short_digest(digest: &str) -> &str {
    &digest[..digest.len().min("blake3:".len() + 12)]
}

/// The text form: one line per change (`+ game foo`, `~ version foo 1.2 (notes changed)`,
/// `- user bob (…)`), the notes, then a summary.
fn render(plan: &Drift, specs: &Specs, server: &ServerState) -> String {
    let mut text = String::new();
    for change in &plan.changes {
        let sign = match change.action {
            Action::Add => '+',
            Action::Change => '~',
            Action::Remove => '-',
        };
        let _ = match (change.kind, &change.game) {
            (Kind::Version, Some(game)) => write!(text, "{sign} version {game} {}", change.name),
            (Kind::Game, _) => write!(text, "{sign} game {}", change.name),
            _ => write!(text, "{sign} user {}", change.name),
        };
        if !change.details.is_empty() {
            let _ = write!(text, " ({})", change.details.join("; "));
        }
        text.push('\n');
    }
    for note in &plan.notes {
        let _ = writeln!(text, "note: {note}");
    }
    if plan.in_sync {
        let n_versions: usize = specs.games.values().map(|g| g.versions.len()).sum();
        let _ = writeln!(
            text,
            "In sync: the server has what the specs say ({}, {}, {}).",
            units::count(specs.games.len() as u64, "game"),
            units::count(n_versions as u64, "version"),
            units::count(specs.users.len() as u64, "user")
        );
    } else {
        let count = |action| {
            plan.changes
                .iter()
                .filter(|change| change.action == action)
                .count()
        };
        let _ = writeln!(
            text,
            "Plan: {} to add, {} to change, {} to remove (server: {}, {}).",
            count(Action::Add),
            count(Action::Change),
            count(Action::Remove),
            units::count(server.games.len() as u64, "game"),
            units::count(server.users.len() as u64, "user")
        );
    }
    text
}

#[cfg(test)]
mod tests;
