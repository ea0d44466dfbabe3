//! The typed spec kinds: [`Game`], [`Version`] and [`User`].
//!
//! These types are the single source of truth for the format: the JSON Schema that
//! `mistpipe schema` prints and that [`crate::load`] validates against is derived from them,
//! so every doc comment here ends up in editors' hover text.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` Mist understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// Version 1 of the Mist spec format.
    #[serde(rename = "mist/v1")]
    V1,
}

/// A game: its title, who may see it, how it is launched and how long its versions are kept.
///
/// Lives at `games/<name>/game.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Mist Game")]
pub struct Game {
    /// Always `mist/v1`.
    pub api_version: ApiVersion,
    /// Always `Game`.
    pub kind: GameKind,
    /// The game's identity.
    pub metadata: GameMetadata,
    /// What the game is and how it is served.
    pub spec: GameSpec,
}

/// The `kind` of a Game document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GameKind {
    /// A game.
    Game,
}

/// Identity of a game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameMetadata {
    /// The game's name: lowercase letters, digits and `-`, starting with a letter or digit,
    /// at most 63 characters. Must equal the folder name under `games/`.
    pub name: String,
}

/// What a game is and how Mist serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameSpec {
    /// The title friends see, e.g. `Celeste`.
    pub title: String,
    /// A short description shown in the catalog, instead of Steam's when `steamAppId` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Steam app id: the store's description, header image, genres, developers and
    /// release date are pulled from Steam and refreshed weekly. `description` and
    /// `headerImage` here win over Steam's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steam_app_id: Option<u32>,
    /// A header image kept next to `game.yaml`: its path relative to the game's folder, e.g.
    /// `header.png`. PNG, JPEG or WebP, at most 2 MB; shown instead of Steam's (460×215 is
    /// the shape the store expects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_image: Option<String>,
    /// A private game is seen only by admins and by the users listed in `grants`.
    #[serde(default)]
    pub private: bool,
    /// Users (by name) who may see this game when it is private.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// How the `mist` client starts the game.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// How many versions to keep, and whether older ones may be deleted.
    #[serde(default)]
    pub retention: Retention,
    /// When true the reconciler leaves this game exactly as it is: no ingest, no deltas, no pruning.
    #[serde(default)]
    pub suspend: bool,
}

/// How the `mist` client starts a game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Launch {
    /// The program to run, relative to the install directory, e.g. `Celeste` or `bin/game.exe`.
    pub executable: String,
    /// Arguments passed to the program before any the friend adds.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Retention policy for a game's versions. Nothing is ever deleted unless `prune` is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    /// How many of the newest versions to keep; 0 keeps all of them.
    #[serde(default)]
    pub keep_versions: u32,
    /// Whether versions beyond `keepVersions` may be deleted. Off by default.
    #[serde(default)]
    pub prune: bool,
}

/// One released build of a game.
///
/// Lives at `games/<game>/versions/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Mist Version")]
pub struct Version {
    /// Always `mist/v1`.
    pub api_version: ApiVersion,
    /// Always `Version`.
    pub kind: VersionKind,
    /// The version's identity.
    pub metadata: VersionMetadata,
    /// Where the build is and what it must hash to.
    pub spec: VersionSpec,
}

/// The `kind` of a Version document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VersionKind {
    /// A version of a game.
    Version,
}

/// Identity of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionMetadata {
    /// The version's name, e.g. `1.4.0.1`: letters, digits, `.`, `_`, `+` and `-`, starting
    /// with a letter or digit, at most 64 characters. Must equal the file stem. Versions are
    /// ordered by dotted segments, numeric segments compared as numbers.
    pub name: String,
    /// The game this version belongs to. Must equal the folder name under `games/`.
    pub game: String,
}

/// Where a version's build is and what it must hash to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionSpec {
    /// The build's directory relative to the NAS root, e.g. `incoming/celeste/1.4.0.1`.
    /// Must not be absolute or contain `..`.
    pub source: String,
    /// The build's tree digest, `blake3:` and 64 lowercase hex digits, as printed by
    /// `mistpipe manifest`. When set, a build that hashes differently is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Release notes shown to friends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A person who may log in to Mist.
///
/// Lives at `users/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Mist User")]
pub struct User {
    /// Always `mist/v1`.
    pub api_version: ApiVersion,
    /// Always `User`.
    pub kind: UserKind,
    /// The user's identity.
    pub metadata: UserMetadata,
    /// The user's role and credentials.
    pub spec: UserSpec,
}

/// The `kind` of a User document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UserKind {
    /// A user.
    User,
}

/// Identity of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserMetadata {
    /// The login name: lowercase letters, digits and `-`, starting with a letter or digit, at
    /// most 63 characters. Must equal the file stem under `users/`.
    pub name: String,
}

/// A user's role and credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    /// The name shown in the client and on pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `user` sees public games and granted private ones; `admin` sees everything.
    pub role: Role,
    /// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), as written by
    /// `mistpipe user add`. Never a plain password.
    pub password_hash: String,
    /// A disabled user cannot log in, and tokens already issued stop working.
    #[serde(default)]
    pub disabled: bool,
}

/// What a user may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A friend: sees public games and private games granted to them.
    User,
    /// An admin: sees every game and the reconciler's status detail.
    Admin,
}

/// The three kinds of spec document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `games/<game>/game.yaml`.
    Game,
    /// `games/<game>/versions/<version>.yaml`.
    Version,
    /// `users/<user>.yaml`.
    User,
}

impl Kind {
    /// Every kind, in the order `mistpipe schema` writes them.
    pub const ALL: [Kind; 3] = [Kind::Game, Kind::Version, Kind::User];

    /// The `kind:` value in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Game => "Game",
            Kind::Version => "Version",
            Kind::User => "User",
        }
    }

    /// The JSON Schema of this kind, as a JSON value.
    pub fn json_schema(self) -> serde_json::Value {
        let schema = match self {
            Kind::Game => schemars::schema_for!(Game),
            Kind::Version => schemars::schema_for!(Version),
            Kind::User => schemars::schema_for!(User),
        };
        schema.to_value()
    }

    /// The file name `mistpipe schema` writes this kind's schema to.
    pub fn schema_file_name(self) -> &'static str {
        match self {
            Kind::Game => "game.schema.json",
            Kind::Version => "version.schema.json",
            Kind::User => "user.schema.json",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
