//! Desired and observed state: the revisions seen, games, versions, users, content-addressed
//! artifacts and the deltas between versions.
//!
//! Every write here compares before it writes. An upsert whose values equal the stored row
//! changes nothing (not even `updated_at`) and returns `false`, so a reconcile pass over a
//! converged state leaves the database untouched. The comparison is done by the database in the
//! same statement (`ON CONFLICT … DO UPDATE … WHERE … IS DISTINCT FROM …`), so it is atomic.
//!
//! The types and their decoders are here; the queries, each an `impl Db` block, are in the
//! submodules by table: `revisions` (the sync state and the revisions seen), `games`,
//! `versions`, `users`, `artifacts` and `deltas`.

mod artifacts;
mod deltas;
mod games;
mod revisions;
mod users;
mod versions;

use crate::{EpochMs, Error, Record, text_enum, to_u64};

// The column lists, each in the order its decoder below reads them.
macro_rules! sync_state_columns {
    () => {
        "observed_commit, last_attempted_commit, last_applied_commit"
    };
}
macro_rules! revision_columns {
    () => {
        "commit_id, seen_at, outcome, errors_json"
    };
}
macro_rules! game_columns {
    () => {
        "name, spec_json, suspended, private, grants_json"
    };
}
macro_rules! version_columns {
    () => {
        "game, name, order_index, source, pinned_digest, spec_json, tree_digest, \
         manifest_address, pack_address, state"
    };
}
macro_rules! user_columns {
    () => {
        "name, display_name, role, password_hash, disabled"
    };
}
macro_rules! artifact_columns {
    () => {
        "address, kind, size, path, created_at, verified_at"
    };
}
macro_rules! delta_columns {
    () => {
        "game, from_version, to_version, address"
    };
}
pub(crate) use {
    artifact_columns, delta_columns, game_columns, revision_columns, sync_state_columns,
    user_columns, version_columns,
};

/// The one-row summary of the spec repository as the reconciler saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// The commit at the tip of the configured branch when it was last looked at.
    pub observed_commit: Option<String>,
    /// The last commit the reconciler tried to apply, whatever the outcome.
    pub last_attempted_commit: Option<String>,
    /// The last commit that loaded, validated and was applied; it stays in force while newer
    /// commits fail.
    pub last_applied_commit: Option<String>,
}

text_enum! {
    /// Whether a spec commit could be applied.
    pub enum Outcome ("revisions.outcome") {
        /// The tree loaded and validated; it was applied.
        Ok => "ok",
        /// The tree failed to load or validate; nothing was applied.
        Failed => "failed",
    }
}

/// A spec commit the reconciler evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// The full commit id.
    pub commit_id: String,
    /// When the commit was first seen. Recording the same commit again keeps the first time.
    pub seen_at: EpochMs,
    /// Whether it could be applied.
    pub outcome: Outcome,
    /// The load and validation errors as a JSON array (empty when `outcome` is `Ok`).
    pub errors_json: String,
}

/// The artifact store in numbers, as the database records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArtifactTotals {
    /// Recorded artifacts.
    pub n_artifacts: u64,
    /// Their sizes added up.
    pub bytes: u64,
}

/// A game as the specs declare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Game {
    /// The game's name, e.g. `celeste`.
    pub name: String,
    /// The whole `spec:` of `game.yaml`, as JSON.
    pub spec_json: String,
    /// `suspend: true`: the reconciler leaves this game as it is.
    pub suspended: bool,
    /// Private games are seen by admins and the users in `grants` only.
    pub private: bool,
    /// Users who may see a private game.
    pub grants: Vec<String>,
}

text_enum! {
    /// Where a version is in its life. Only [`VersionState::Ready`] versions are served.
    pub enum VersionState ("versions.state") {
        /// Declared in the specs, not ingested yet.
        Pending => "pending",
        /// Its manifest is recorded; its pack or delta may still be missing.
        Ingested => "ingested",
        /// Manifest, pack and the delta from the previous version exist: friends can install it.
        Ready => "ready",
        /// Something is wrong (e.g. the build no longer matches its digest); not served.
        Stalled => "stalled",
        /// Gone from the specs, but its data is kept because no retention policy prunes it.
        Retired => "retired",
    }
}

/// A version as the specs declare it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSpec {
    /// The game it belongs to.
    pub game: String,
    /// The version's name, e.g. `1.4.0.1`.
    pub name: String,
    /// Its position in the game's version order (dotted numeric, then lexical); 0 is oldest.
    pub order_index: i64,
    /// The build's folder, relative to the NAS root.
    pub source: String,
    /// The tree digest the spec pins, if any (`blake3:<hex>`).
    pub pinned_digest: Option<String>,
    /// The whole `spec:` of the version file, as JSON.
    pub spec_json: String,
}

/// What the reconciler established about a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionObserved {
    /// The tree digest recorded when the build was ingested.
    pub tree_digest: Option<String>,
    /// The content address of the version's manifest artifact.
    pub manifest_address: Option<String>,
    /// The content address of the version's full pack.
    pub pack_address: Option<String>,
    /// Where the version is in its life.
    pub state: VersionState,
}

/// A version row: what the specs say and what was observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The spec-derived part.
    pub spec: VersionSpec,
    /// The observed part.
    pub observed: VersionObserved,
}

text_enum! {
    /// What a user may do.
    pub enum Role ("users.role") {
        /// A friend: sees public games and the private ones granted to them.
        User => "user",
        /// Sees everything, including status.
        Admin => "admin",
    }
}

/// A user as the specs declare it, with the password hash the API checks at login.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The name shown to others.
    pub display_name: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot log in.
    pub disabled: bool,
}

text_enum! {
    /// What an artifact holds.
    pub enum ArtifactKind ("artifacts.kind") {
        /// A tar+zstd pack of a whole version.
        Pack => "pack",
        /// A delta from one version to another.
        Delta => "delta",
        /// A version's manifest.
        Manifest => "manifest",
    }
}

/// An immutable file in the NAS artifact store, named by the digest of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// `blake3:<64 lowercase hex digits>` of the artifact's bytes.
    pub address: String,
    /// What it holds.
    pub kind: ArtifactKind,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is, relative to the artifact store's root.
    pub path: String,
    /// When it was recorded.
    pub created_at: EpochMs,
    /// When its bytes were last hashed and found to match the address.
    pub verified_at: Option<EpochMs>,
}

/// An edge of a game's update graph: the delta artifact that turns one version into another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The game.
    pub game: String,
    /// The version the delta applies to.
    pub from_version: String,
    /// The version it produces.
    pub to_version: String,
    /// The delta artifact's content address.
    pub address: String,
}

impl std::fmt::Debug for User {
    // The hash is no secret in the cryptographic sense, but it has no business in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Whether `address` has the form `blake3:<64 lowercase hex digits>`.
pub fn is_content_address(address: &str) -> bool {
    address.strip_prefix("blake3:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Where the artifact with `address` lives under the artifacts folder, `<hex[0..2]>/<hex>`
/// (what [`Artifact::path`] holds), or `None` when `address` is not a content address.
pub fn artifact_relative_path(address: &str) -> Option<String> {
    if !is_content_address(address) {
        return None;
    }
    let hex = &address["blake3:".len()..];
    Some(format!("{}/{hex}", &hex[..2]))
}

pub(crate) fn sync_state_from_record(record: &dyn Record) -> Result<SyncState, Error> {
    Ok(SyncState {
        observed_commit: record.opt_text(0, "observed_commit")?,
        last_attempted_commit: record.opt_text(1, "last_attempted_commit")?,
        last_applied_commit: record.opt_text(2, "last_applied_commit")?,
    })
}

pub(crate) fn revision_from_record(record: &dyn Record) -> Result<Revision, Error> {
    Ok(Revision {
        commit_id: record.text(0, "revisions.commit_id")?,
        seen_at: record.int(1, "revisions.seen_at")?,
        outcome: Outcome::parse(&record.text(2, "revisions.outcome")?)?,
        errors_json: record.text(3, "revisions.errors_json")?,
    })
}

pub(crate) fn game_from_record(record: &dyn Record) -> Result<Game, Error> {
    let grants_json = record.text(4, "games.grants_json")?;
    Ok(Game {
        name: record.text(0, "games.name")?,
        spec_json: record.text(1, "games.spec_json")?,
        suspended: record.boolean(2, "games.suspended")?,
        private: record.boolean(3, "games.private")?,
        grants: serde_json::from_str(&grants_json).map_err(|source| Error::Json {
            column: "games.grants_json",
            source,
        })?,
    })
}

pub(crate) fn version_from_record(record: &dyn Record) -> Result<Version, Error> {
    Ok(Version {
        spec: VersionSpec {
            game: record.text(0, "versions.game")?,
            name: record.text(1, "versions.name")?,
            order_index: record.int(2, "versions.order_index")?,
            source: record.text(3, "versions.source")?,
            pinned_digest: record.opt_text(4, "versions.pinned_digest")?,
            spec_json: record.text(5, "versions.spec_json")?,
        },
        observed: VersionObserved {
            tree_digest: record.opt_text(6, "versions.tree_digest")?,
            manifest_address: record.opt_text(7, "versions.manifest_address")?,
            pack_address: record.opt_text(8, "versions.pack_address")?,
            state: VersionState::parse(&record.text(9, "versions.state")?)?,
        },
    })
}

pub(crate) fn user_from_record(record: &dyn Record) -> Result<User, Error> {
    Ok(User {
        name: record.text(0, "users.name")?,
        display_name: record.opt_text(1, "users.display_name")?,
        role: Role::parse(&record.text(2, "users.role")?)?,
        password_hash: record.text(3, "users.password_hash")?,
        disabled: record.boolean(4, "users.disabled")?,
    })
}

pub(crate) fn artifact_from_record(record: &dyn Record) -> Result<Artifact, Error> {
    Ok(Artifact {
        address: record.text(0, "artifacts.address")?,
        kind: ArtifactKind::parse(&record.text(1, "artifacts.kind")?)?,
        size: to_u64(record.int(2, "artifacts.size")?, "artifacts.size")?,
        path: record.text(3, "artifacts.path")?,
        created_at: record.int(4, "artifacts.created_at")?,
        verified_at: record.opt_int(5, "artifacts.verified_at")?,
    })
}

pub(crate) fn delta_from_record(record: &dyn Record) -> Result<Delta, Error> {
    Ok(Delta {
        game: record.text(0, "deltas.game")?,
        from_version: record.text(1, "deltas.from_version")?,
        to_version: record.text(2, "deltas.to_version")?,
        address: record.text(3, "deltas.address")?,
    })
}
