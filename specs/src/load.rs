//! Loading and validating a whole spec tree.
//!
//! [`load`] never stops at the first problem: it reads every file it can, checks each
//! against its kind's schema and the rules in [`crate::check`], then checks the references
//! between files, and returns the specs that are valid together with a [`Diagnostic`] for
//! every problem. A caller that applies specs must refuse the whole tree when any diagnostic
//! is present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::check;
pub use crate::diagnostic::Diagnostic;
use crate::image::{self, HeaderImage};
use crate::model::{Game, Kind, User, Version};
use crate::order::compare_versions;
use crate::schema;
use crate::source::{DirSource, EntryKind, GitSource, SourceError, SpecSource};
use crate::yaml::{self, Mark, Node, position_after};

/// The largest spec file Mist reads.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// A game with its versions, in version order (oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct GameSpecs {
    /// The game.
    pub game: Game,
    /// Its versions, oldest first.
    pub versions: Vec<Version>,
    /// The header image `spec.headerImage` names, read and checked.
    pub header_image: Option<HeaderImage>,
}

/// The valid specs of a tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Specs {
    /// Games by name.
    pub games: BTreeMap<String, GameSpecs>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
}

/// The result of loading a tree: what is valid, and every problem found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The specs that passed every check. Incomplete when `diagnostics` is not empty.
    pub specs: Specs,
    /// Every problem, sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether the tree is valid as a whole.
    pub fn is_valid(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// Options for [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The NAS root. When given, each version's `source` must exist below it as a directory
    /// and must not leave it through a symlink.
    pub nas_root: Option<PathBuf>,
}

/// Loads the spec tree in a directory.
pub fn load_dir(root: &Path, options: &LoadOptions) -> Result<Loaded, SourceError> {
    load(&DirSource::new(root)?, options)
}

/// Loads the spec tree at a commit (branch, tag or id) of a git repository.
pub fn load_git(repo: &Path, rev: &str, options: &LoadOptions) -> Result<Loaded, SourceError> {
    load(&GitSource::open(repo, rev)?, options)
}

/// Loads and validates a spec tree. Fails only when the tree cannot be listed or read;
/// every problem in the specs themselves is a [`Diagnostic`].
pub fn load(source: &dyn SpecSource, options: &LoadOptions) -> Result<Loaded, SourceError> {
    let mut loader = Loader {
        source,
        options,
        diagnostics: Vec::new(),
        header_images: BTreeMap::new(),
        declared_images: BTreeSet::new(),
    };
    let mut specs = loader.run()?;
    let mut diagnostics = loader.diagnostics;
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    diagnostics.dedup();
    drop_invalid(&mut specs, &diagnostics);
    Ok(Loaded { specs, diagnostics })
}

/// Removes every spec whose file has a diagnostic, so `Loaded::specs` holds only specs that
/// passed every check (a valid spec's name equals its path, so the path is known).
fn drop_invalid(specs: &mut Specs, diagnostics: &[Diagnostic]) {
    let bad: BTreeSet<&str> = diagnostics.iter().map(|d| d.file.as_str()).collect();
    if bad.is_empty() {
        return;
    }
    specs
        .games
        .retain(|name, _| !bad.contains(format!("games/{name}/game.yaml").as_str()));
    for (name, game) in &mut specs.games {
        game.versions.retain(|v| {
            !bad.contains(format!("games/{name}/versions/{}.yaml", v.metadata.name).as_str())
        });
    }
    specs
        .users
        .retain(|name, _| !bad.contains(format!("users/{name}.yaml").as_str()));
}

/// A parsed document with the file it came from, kept for cross-file checks.
struct Parsed<T> {
    file: String,
    root: Node,
    spec: T,
}

struct Loader<'a> {
    source: &'a dyn SpecSource,
    options: &'a LoadOptions,
    diagnostics: Vec<Diagnostic>,
    /// The header images read, by game folder.
    header_images: BTreeMap<String, HeaderImage>,
    /// Every header image a game.yaml names, valid or not, by its path in the tree.
    declared_images: BTreeSet<String>,
}

/// Where a file sits in the layout, and so what it must hold.
enum Role {
    Game { folder: String },
    Version { folder: String, stem: String },
    User { stem: String },
}

impl Loader<'_> {
    fn error(
        &mut self,
        file: &str,
        mark: Option<Mark>,
        message: impl std::fmt::Display,
        hint: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: file.to_string(),
            line: mark.map(|m| m.line),
            column: mark.map(|m| m.column),
            message: message.to_string(),
            hint,
        });
    }

    fn run(&mut self) -> Result<Specs, SourceError> {
        let entries = self.source.entries()?;
        let mut games: Vec<Parsed<Game>> = Vec::new();
        let mut versions: Vec<Parsed<Version>> = Vec::new();
        let mut users: Vec<Parsed<User>> = Vec::new();
        // What the tree holds, valid or not, so that one broken file is reported once and
        // not again by every file that refers to it.
        let mut game_folders = BTreeSet::new();
        let mut version_folders = BTreeSet::new();
        let mut user_stems = BTreeSet::new();
        let mut stray_folders = BTreeSet::new();
        // Paths in game folders beside the specs: header images, or strays.
        let mut beside_specs = Vec::new();
        let kinds: BTreeMap<&str, EntryKind> = entries
            .iter()
            .map(|entry| (entry.path.as_str(), entry.kind))
            .collect();

        for entry in &entries {
            let parts: Vec<&str> = entry.path.split('/').collect();
            if !matches!(parts[0], "games" | "users") {
                // Outside games/ and users/ Mist reads nothing: READMEs, CI files and the
                // like are the admin's business.
                continue;
            }
            // The contents of a folder reported as stray are not reported one by one.
            if (1..parts.len()).any(|n| stray_folders.contains(&parts[..n].join("/"))) {
                continue;
            }
            if !entry.valid_utf8 {
                self.error(&entry.path, None, "file name is not valid UTF-8", None);
                continue;
            }
            if image::in_game_folder_beside_specs(&parts)
                && matches!(entry.kind, EntryKind::File { .. } | EntryKind::Dir)
            {
                beside_specs.push(entry);
                continue;
            }
            let reported = self.diagnostics.len();
            let role = match self.classify(&parts, entry.kind) {
                Some(role) => role,
                None => {
                    if entry.kind == EntryKind::Dir && self.diagnostics.len() > reported {
                        stray_folders.insert(entry.path.clone());
                    }
                    continue;
                }
            };
            match &role {
                Role::Game { folder } => game_folders.insert(folder.clone()),
                Role::Version { folder, .. } => version_folders.insert(folder.clone()),
                Role::User { stem } => user_stems.insert(stem.clone()),
            };
            let EntryKind::File { size } = entry.kind else {
                continue;
            };
            let Some(root) = self.read_document(&entry.path, size)? else {
                continue;
            };
            match role {
                Role::Game { folder } => {
                    if let Some(game) = self.typed::<Game>(Kind::Game, &entry.path, root) {
                        self.check_game(&game, &folder);
                        self.check_header_image(&game, &folder, &kinds)?;
                        games.push(game);
                    }
                }
                Role::Version { folder, stem } => {
                    if let Some(version) = self.typed::<Version>(Kind::Version, &entry.path, root) {
                        self.check_version(&version, &folder, &stem);
                        versions.push(version);
                    }
                }
                Role::User { stem } => {
                    if let Some(user) = self.typed::<User>(Kind::User, &entry.path, root) {
                        self.check_user(&user, &stem);
                        users.push(user);
                    }
                }
            }
        }

        // What sits beside the specs and is no header image (nor holds one) is a stray.
        for entry in beside_specs {
            let parts: Vec<&str> = entry.path.split('/').collect();
            if image::holds_header_image(&entry.path, self.declared_images.iter())
                || (1..parts.len()).any(|n| stray_folders.contains(&parts[..n].join("/")))
            {
                continue;
            }
            let reported = self.diagnostics.len();
            self.classify(&parts, entry.kind);
            if entry.kind == EntryKind::Dir && self.diagnostics.len() > reported {
                stray_folders.insert(entry.path.clone());
            }
        }

        // Folders under games/ that lack a game.yaml. When the folder has versions, each of
        // them is reported as a version of an unknown game instead.
        for entry in &entries {
            let parts: Vec<&str> = entry.path.split('/').collect();
            if parts.len() == 2
                && parts[0] == "games"
                && entry.kind == EntryKind::Dir
                && !game_folders.contains(parts[1])
                && !version_folders.contains(parts[1])
            {
                self.error(
                    &entry.path,
                    None,
                    format!("game folder `{}` has no game.yaml", parts[1]),
                    Some(format!(
                        "create it with `mistpipe new game {} --title …`",
                        parts[1]
                    )),
                );
            }
        }

        Ok(self.cross_check(games, versions, users, &game_folders, &user_stems))
    }

    /// Decides what a path must be; reports paths Mist would not read.
    fn classify(&mut self, parts: &[&str], kind: EntryKind) -> Option<Role> {
        let path = parts.join("/");
        let is_file = matches!(kind, EntryKind::File { .. });
        if matches!(kind, EntryKind::Symlink | EntryKind::Other) {
            let what = if kind == EntryKind::Symlink {
                "a symlink"
            } else {
                "not a regular file or folder"
            };
            self.error(
                &path,
                None,
                format!("{what}; spec trees hold only folders and .yaml files"),
                None,
            );
            return None;
        }
        if parts.last() == Some(&".gitkeep") && is_file {
            return None;
        }
        let yaml_stem = |name: &str| name.strip_suffix(".yaml").map(str::to_string);
        let stray = |this: &mut Self, expected: &str| {
            let name = parts.last().copied().unwrap_or_default();
            let hint = if let Some(stem) = name
                .strip_suffix(".yml")
                .or_else(|| name.strip_suffix(".YAML"))
            {
                Some(format!(
                    "Mist reads only `.yaml` files: rename it to `{stem}.yaml`"
                ))
            } else {
                Some(format!("{expected}; move or delete this"))
            };
            let message = if is_file {
                "Mist does not read this file"
            } else {
                "Mist does not read this folder or anything in it"
            };
            this.error(&path, None, message, hint);
            None
        };
        match (parts, is_file) {
            (["games" | "users"], false) => None,
            (["games" | "users"], true) => {
                self.error(
                    &path,
                    None,
                    format!("`{}` must be a folder", parts[0]),
                    None,
                );
                None
            }
            (["games", _], false) => None,
            (["games", _], true) => stray(self, "games/ holds one folder per game"),
            (["games", game, "game.yaml"], true) => Some(Role::Game {
                folder: game.to_string(),
            }),
            (["games", _, "versions"], false) => None,
            (["games", _, _], _) => stray(self, "a game folder holds game.yaml and versions/"),
            (["games", game, "versions", name], true) => match yaml_stem(name) {
                Some(stem) => Some(Role::Version {
                    folder: game.to_string(),
                    stem,
                }),
                None => stray(self, "versions/ holds one <version>.yaml per version"),
            },
            (["games", ..], _) => stray(self, "versions/ holds one <version>.yaml per version"),
            (["users", name], true) => match yaml_stem(name) {
                Some(stem) => Some(Role::User { stem }),
                None => stray(self, "users/ holds one <user>.yaml per user"),
            },
            (["users", ..], _) => stray(self, "users/ holds one <user>.yaml per user, no folders"),
            _ => None,
        }
    }

    /// Reads and parses one file, bounded; reports and returns `None` on failure.
    fn read_document(&mut self, file: &str, size: u64) -> Result<Option<Node>, SourceError> {
        if size > MAX_FILE_SIZE {
            self.error(
                file,
                None,
                format!(
                    "the file is {size} bytes; spec files may be at most {MAX_FILE_SIZE} bytes"
                ),
                None,
            );
            return Ok(None);
        }
        let bytes = self.source.read(file, MAX_FILE_SIZE + 1)?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            self.error(
                file,
                None,
                format!("the file is larger than {MAX_FILE_SIZE} bytes"),
                None,
            );
            return Ok(None);
        }
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => {
                let mark = position_after(&bytes[..e.valid_up_to()]);
                self.error(
                    file,
                    Some(mark),
                    "the file is not valid UTF-8",
                    Some("save it as UTF-8".into()),
                );
                return Ok(None);
            }
        };
        // YAML forbids control characters other than tab and line breaks, and yaml-rust2
        // silently stops reading at a NUL, which would hide everything after it.
        if let Some(at) =
            text.find(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{85}'))
        {
            let c = text[at..].chars().next().unwrap_or_default();
            let mark = position_after(&bytes[..at]);
            self.error(
                file,
                Some(mark),
                format!(
                    "the file contains the control character U+{:04X}; spec files are text",
                    u32::from(c)
                ),
                None,
            );
            return Ok(None);
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match yaml::parse(text, yaml::Limits::default()) {
            Ok(root) => Ok(Some(root)),
            Err(errors) => {
                for e in errors {
                    // A syntax error caused by indentation is reported on the line at fault.
                    match crate::indent::indentation_fault(text, e.mark.line) {
                        Some(fault) if e.message.starts_with("invalid YAML") => {
                            let mark = Mark {
                                line: fault.line,
                                column: fault.column,
                            };
                            self.error(file, Some(mark), e.message, Some(fault.hint));
                        }
                        _ => self.error(file, Some(e.mark), e.message, None),
                    }
                }
                Ok(None)
            }
        }
    }

    /// Checks a document against the kind's schema and converts it.
    fn typed<T: DeserializeOwned>(
        &mut self,
        kind: Kind,
        file: &str,
        root: Node,
    ) -> Option<Parsed<T>> {
        let violations = schema::validate(&kind.json_schema(), &root);
        if !violations.is_empty() {
            for v in violations {
                let hint = if v.message.starts_with("`kind` is") {
                    Some(format!(
                        "this file's place in the tree says it holds a {kind}"
                    ))
                } else {
                    v.hint
                };
                self.error(file, Some(v.mark), v.message, hint);
            }
            return None;
        }
        match serde_json::from_value::<T>(root.to_json()) {
            Ok(spec) => Some(Parsed {
                file: file.to_string(),
                root,
                spec,
            }),
            Err(e) => {
                self.error(file, Some(root.mark), format!("invalid {kind}: {e}"), None);
                None
            }
        }
    }

    fn mark_at(parsed_root: &Node, path: &[&str]) -> Option<Mark> {
        parsed_root.at(path).map(|n| n.mark)
    }

    fn check_name_matches(
        &mut self,
        parsed: (&Node, &str),
        name: &str,
        expected: &str,
        what: &str,
        rule: fn(&str) -> Result<(), check::CheckError>,
    ) {
        let (root, file) = parsed;
        let mark = Self::mark_at(root, &["metadata", "name"]);
        if let Err(problem) = rule(name) {
            self.error(file, mark, problem, None);
        } else if name != expected {
            self.error(
                file,
                mark,
                format!(
                    "`metadata.name` is `{name}` but the {what} is `{expected}`; they must be equal"
                ),
                None,
            );
        }
    }

    fn check_game(&mut self, game: &Parsed<Game>, folder: &str) {
        let (root, file, spec) = (&game.root, game.file.as_str(), &game.spec);
        self.check_name_matches(
            (root, file),
            &spec.metadata.name,
            folder,
            "folder name",
            check::check_name,
        );
        if spec.spec.title.trim().is_empty() {
            self.error(
                file,
                Self::mark_at(root, &["spec", "title"]),
                "`spec.title` is empty",
                None,
            );
        }
        if let Some(launch) = &spec.spec.launch
            && let Err(problem) =
                check::check_relative_path(&launch.executable, "`spec.launch.executable`")
        {
            self.error(
                file,
                Self::mark_at(root, &["spec", "launch", "executable"]),
                problem,
                None,
            );
        }
        let retention = spec.spec.retention;
        if retention.prune && retention.keep_versions == 0 {
            self.error(
                file,
                Self::mark_at(root, &["spec", "retention"]),
                "retention has `prune: true` with `keepVersions: 0` (keep all), so nothing could ever be pruned",
                Some("set `keepVersions` to how many versions to keep, or remove `prune`".into()),
            );
        }
    }

    /// Reads and checks the header image the game names, if any.
    fn check_header_image(
        &mut self,
        game: &Parsed<Game>,
        folder: &str,
        kinds: &BTreeMap<&str, EntryKind>,
    ) -> Result<(), SourceError> {
        let Some(path) = &game.spec.spec.header_image else {
            return Ok(());
        };
        self.declared_images
            .insert(image::header_image_path(folder, path));
        match image::read_header_image(self.source, folder, path, |p| kinds.get(p).copied())? {
            Ok(header_image) => {
                self.header_images.insert(folder.to_owned(), header_image);
            }
            Err(problem) => {
                let mark = Self::mark_at(&game.root, &["spec", "headerImage"]);
                self.error(&game.file, mark, problem, None);
            }
        }
        Ok(())
    }

    fn check_version(&mut self, version: &Parsed<Version>, folder: &str, stem: &str) {
        let (root, file, spec) = (&version.root, version.file.as_str(), &version.spec);
        self.check_name_matches(
            (root, file),
            &spec.metadata.name,
            stem,
            "file stem",
            check::check_version_name,
        );
        let game_mark = Self::mark_at(root, &["metadata", "game"]);
        if spec.metadata.game != folder {
            self.error(
                file,
                game_mark,
                format!(
                    "`metadata.game` is `{}` but the file is under games/{folder}/",
                    spec.metadata.game
                ),
                None,
            );
        }
        let source_mark = Self::mark_at(root, &["spec", "source"]);
        match check::check_relative_path(&spec.spec.source, "`spec.source`") {
            Err(problem) => self.error(file, source_mark, problem, Some("give the build's folder relative to the NAS root, e.g. `incoming/<game>/<version>`".into())),
            Ok(()) => {
                if let Some(nas) = &self.options.nas_root
                    && let Err(problem) = crate::nas::check_source_on_nas(nas, &spec.spec.source)
                {
                    self.error(file, source_mark, problem, None);
                }
            }
        }
        if let Some(digest) = &spec.spec.digest
            && let Err(problem) = check::check_digest(digest)
        {
            self.error(
                file,
                Self::mark_at(root, &["spec", "digest"]),
                problem,
                Some("print the right value with `mistpipe manifest <build folder>`".into()),
            );
        }
    }

    fn check_user(&mut self, user: &Parsed<User>, stem: &str) {
        let (root, file, spec) = (&user.root, user.file.as_str(), &user.spec);
        self.check_name_matches(
            (root, file),
            &spec.metadata.name,
            stem,
            "file stem",
            check::check_name,
        );
        if let Err(problem) = check::check_password_hash(&spec.spec.password_hash) {
            self.error(
                file,
                Self::mark_at(root, &["spec", "passwordHash"]),
                problem,
                None,
            );
        }
    }

    /// Checks references between files. `game_folders` and `user_stems` say which
    /// game.yaml and user files exist, valid or not: a reference to an existing but invalid
    /// file is not reported again, since that file's own diagnostics say what is wrong.
    fn cross_check(
        &mut self,
        games: Vec<Parsed<Game>>,
        versions: Vec<Parsed<Version>>,
        users: Vec<Parsed<User>>,
        game_folders: &BTreeSet<String>,
        user_stems: &BTreeSet<String>,
    ) -> Specs {
        self.check_grants(&games, &users, user_stems);
        let mut by_game = self.group_versions(versions, &games, game_folders);
        for versions in by_game.values_mut() {
            self.order_versions(versions);
        }
        let mut specs = assemble_specs(games, by_game, users);
        for (name, game) in &mut specs.games {
            game.header_image = self.header_images.remove(name);
        }
        specs
    }

    /// Reports grants to users that have no file.
    fn check_grants(
        &mut self,
        games: &[Parsed<Game>],
        users: &[Parsed<User>],
        user_stems: &BTreeSet<String>,
    ) {
        let user_names: BTreeSet<&str> = users
            .iter()
            .map(|u| u.spec.metadata.name.as_str())
            .collect();
        for game in games {
            let grants = game.root.at(&["spec", "grants"]);
            for (idx, grant) in game.spec.spec.grants.iter().enumerate() {
                if !user_names.contains(grant.as_str()) && !user_stems.contains(grant) {
                    let mark = match grants.map(|g| &g.value) {
                        Some(yaml::Value::Seq(items)) => items.get(idx).map(|n| n.mark),
                        _ => None,
                    };
                    let hint = schema::closest(grant, user_names.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"));
                    self.error(
                        &game.file,
                        mark,
                        format!("grant to unknown user `{grant}`"),
                        hint.or_else(|| {
                            Some(format!(
                                "add users/{grant}.yaml with `mistpipe user add {grant}`"
                            ))
                        }),
                    );
                }
            }
        }
    }

    /// Sorts the versions by game; reports versions of games that have no game.yaml.
    fn group_versions(
        &mut self,
        versions: Vec<Parsed<Version>>,
        games: &[Parsed<Game>],
        game_folders: &BTreeSet<String>,
    ) -> BTreeMap<String, Vec<Parsed<Version>>> {
        let game_names: BTreeSet<&str> = games
            .iter()
            .map(|g| g.spec.metadata.name.as_str())
            .collect();
        let mut by_game: BTreeMap<String, Vec<Parsed<Version>>> = BTreeMap::new();
        for version in versions {
            let game = version.spec.metadata.game.clone();
            if !game_names.contains(game.as_str()) {
                // A `metadata.game` that differs from the folder is reported by check_version.
                let folder = version.file.split('/').nth(1).unwrap_or_default();
                if game != folder || game_folders.contains(&game) {
                    continue;
                }
                let mark = Self::mark_at(&version.root, &["metadata", "game"]);
                self.error(&version.file, mark, format!("version of unknown game `{game}`"), Some(format!("games/{game}/game.yaml does not exist; create it with `mistpipe new game {game} --title …`")));
                continue;
            }
            by_game.entry(game).or_default().push(version);
        }
        by_game
    }

    /// Puts one game's versions in version order; reports two that order equal.
    fn order_versions(&mut self, versions: &mut [Parsed<Version>]) {
        versions.sort_by(|a, b| {
            compare_versions(&a.spec.metadata.name, &b.spec.metadata.name)
                .then_with(|| a.file.cmp(&b.file))
        });
        for pair in versions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if compare_versions(&a.spec.metadata.name, &b.spec.metadata.name).is_eq() {
                let mark = Self::mark_at(&b.root, &["metadata", "name"]);
                let message = if a.spec.metadata.name == b.spec.metadata.name {
                    format!(
                        "duplicate version `{}` (also in {})",
                        b.spec.metadata.name, a.file
                    )
                } else {
                    format!(
                        "version `{}` orders equal to `{}` in {}; versions of a game must be strictly ordered",
                        b.spec.metadata.name, a.spec.metadata.name, a.file
                    )
                };
                self.diagnostics.push(Diagnostic {
                    file: b.file.clone(),
                    line: mark.map(|m| m.line),
                    column: mark.map(|m| m.column),
                    message,
                    hint: None,
                });
            }
        }
    }
}

/// The specs of the parsed files, each game with its versions in order.
fn assemble_specs(
    games: Vec<Parsed<Game>>,
    mut by_game: BTreeMap<String, Vec<Parsed<Version>>>,
    users: Vec<Parsed<User>>,
) -> Specs {
    let mut specs = Specs::default();
    for game in games {
        let name = game.spec.metadata.name.clone();
        let versions = by_game
            .remove(&name)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.spec)
            .collect();
        specs.games.insert(
            name,
            GameSpecs {
                game: game.spec,
                versions,
                header_image: None,
            },
        );
    }
    for user in users {
        specs
            .users
            .insert(user.spec.metadata.name.clone(), user.spec);
    }
    specs
}
