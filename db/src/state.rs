//! Desired and observed state: the revisions seen, games, versions, users, content-addressed
//! artifacts and the deltas between versions.
//!
//! Every write here compares before it writes. An upsert whose values equal the stored row
//! changes nothing (not even `updated_at`) and returns `false`, so a reconcile pass over a
//! converged state leaves the database untouched. The comparison is done by the database in the
//! same statement (`ON CONFLICT … DO UPDATE … WHERE … IS DISTINCT FROM …`), so it is atomic.

use sqlx::{Any, Executor};

use crate::{Db, EpochMs, Error, QueryContext, Record, text_enum, to_i64, to_u64};

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
    artifact_columns, delta_columns, game_columns, sync_state_columns, user_columns,
    version_columns,
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

impl Db {
    /// The sync state (all `None` before the first pass).
    pub async fn sync_state(&self) -> Result<SyncState, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            sync_state_columns!(),
            " FROM sync_state WHERE id = 1"
        ))
        .fetch_one(&self.pool)
        .await
        .op("read sync state")?;
        sync_state_from_record(&row)
    }

    /// Stores the sync state; returns whether anything changed.
    pub async fn set_sync_state(
        &self,
        sync_state: &SyncState,
        now: EpochMs,
    ) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE sync_state SET observed_commit = $1, last_attempted_commit = $2, \
             last_applied_commit = $3, updated_at = $4 \
             WHERE id = 1 AND (observed_commit IS DISTINCT FROM $1 \
             OR last_attempted_commit IS DISTINCT FROM $2 \
             OR last_applied_commit IS DISTINCT FROM $3)",
        )
        .bind(&sync_state.observed_commit)
        .bind(&sync_state.last_attempted_commit)
        .bind(&sync_state.last_applied_commit)
        .bind(now)
        .execute(&self.pool)
        .await
        .op("write sync state")?;
        Ok(result.rows_affected() > 0)
    }

    /// Records a commit and the outcome of loading it. Recording the same commit again only
    /// writes when the outcome or the errors differ, and keeps the first `seen_at`.
    pub async fn record_revision(&self, revision: &Revision, now: EpochMs) -> Result<bool, Error> {
        let result = sqlx::query(
            "INSERT INTO revisions (commit_id, seen_at, outcome, errors_json, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (commit_id) DO UPDATE SET outcome = excluded.outcome, \
             errors_json = excluded.errors_json, updated_at = excluded.updated_at \
             WHERE revisions.outcome IS DISTINCT FROM excluded.outcome \
             OR revisions.errors_json IS DISTINCT FROM excluded.errors_json",
        )
        .bind(&revision.commit_id)
        .bind(revision.seen_at)
        .bind(revision.outcome.as_str())
        .bind(&revision.errors_json)
        .bind(now)
        .execute(&self.pool)
        .await
        .op("record revision")?;
        Ok(result.rows_affected() > 0)
    }

    /// One revision by commit id.
    pub async fn revision(&self, commit_id: &str) -> Result<Option<Revision>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            revision_columns!(),
            " FROM revisions WHERE commit_id = $1"
        ))
        .bind(commit_id)
        .fetch_optional(&self.pool)
        .await
        .op("read revision")?
        .map(|row| revision_from_record(&row))
        .transpose()
    }

    /// The `limit` most recently first-seen revisions, newest first.
    pub async fn recent_revisions(&self, limit: u32) -> Result<Vec<Revision>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            revision_columns!(),
            " FROM revisions ORDER BY seen_at DESC, commit_id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list revisions")?;
        rows.iter().map(|row| revision_from_record(row)).collect()
    }

    /// Inserts or updates one game; returns whether anything changed.
    pub async fn upsert_game(&self, game: &Game, now: EpochMs) -> Result<bool, Error> {
        upsert_game_on(&self.pool, game, now).await
    }

    /// Inserts or updates games in one transaction; returns how many rows changed.
    pub async fn upsert_games(&self, games: &[Game], now: EpochMs) -> Result<usize, Error> {
        let mut transaction = self.begin_write("upsert games").await?;
        let mut n_changed = 0;
        for game in games {
            n_changed += usize::from(upsert_game_on(&mut *transaction, game, now).await?);
        }
        transaction.commit().await.op("upsert games")?;
        Ok(n_changed)
    }

    /// One game by name.
    pub async fn game(&self, name: &str) -> Result<Option<Game>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            game_columns!(),
            " FROM games WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .op("read game")?
        .map(|row| game_from_record(&row))
        .transpose()
    }

    /// Every game, by name.
    pub async fn games(&self) -> Result<Vec<Game>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            game_columns!(),
            " FROM games ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .op("list games")?;
        rows.iter().map(|row| game_from_record(row)).collect()
    }

    /// Deletes a game that has no versions left; returns whether it existed.
    ///
    /// ## Warning
    /// Only for pruning by an explicit retention policy. A game missing from the specs is not
    /// a reason to delete it.
    pub async fn delete_game(&self, name: &str) -> Result<bool, Error> {
        let result = sqlx::query("DELETE FROM games WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .op("delete game")?;
        Ok(result.rows_affected() > 0)
    }

    /// Inserts or updates the spec part of versions in one transaction; returns how many rows
    /// changed. A new version starts [`VersionState::Pending`] with nothing observed; the
    /// observed part of an existing one is left alone.
    pub async fn upsert_version_specs(
        &self,
        version_specs: &[VersionSpec],
        now: EpochMs,
    ) -> Result<usize, Error> {
        let mut transaction = self.begin_write("upsert versions").await?;
        let mut n_changed = 0;
        for version_spec in version_specs {
            let result = sqlx::query(
                "INSERT INTO versions (game, name, order_index, source, pinned_digest, \
                 spec_json, state, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) \
                 ON CONFLICT (game, name) DO UPDATE SET order_index = excluded.order_index, \
                 source = excluded.source, pinned_digest = excluded.pinned_digest, \
                 spec_json = excluded.spec_json, updated_at = excluded.updated_at \
                 WHERE versions.order_index IS DISTINCT FROM excluded.order_index \
                 OR versions.source IS DISTINCT FROM excluded.source \
                 OR versions.pinned_digest IS DISTINCT FROM excluded.pinned_digest \
                 OR versions.spec_json IS DISTINCT FROM excluded.spec_json",
            )
            .bind(&version_spec.game)
            .bind(&version_spec.name)
            .bind(version_spec.order_index)
            .bind(&version_spec.source)
            .bind(&version_spec.pinned_digest)
            .bind(&version_spec.spec_json)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .op("upsert version")?;
            n_changed += usize::from(result.rows_affected() > 0);
        }
        transaction.commit().await.op("upsert versions")?;
        Ok(n_changed)
    }

    /// Stores what was observed about a version; returns whether anything changed, or
    /// `Ok(None)` when there is no such version.
    pub async fn set_version_observed(
        &self,
        game: &str,
        name: &str,
        observed: &VersionObserved,
        now: EpochMs,
    ) -> Result<Option<bool>, Error> {
        let result = sqlx::query(
            "UPDATE versions SET tree_digest = $3, manifest_address = $4, pack_address = $5, \
             state = $6, updated_at = $7 \
             WHERE game = $1 AND name = $2 AND (tree_digest IS DISTINCT FROM $3 \
             OR manifest_address IS DISTINCT FROM $4 OR pack_address IS DISTINCT FROM $5 \
             OR state IS DISTINCT FROM $6)",
        )
        .bind(game)
        .bind(name)
        .bind(&observed.tree_digest)
        .bind(&observed.manifest_address)
        .bind(&observed.pack_address)
        .bind(observed.state.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .op("write version observation")?;
        if result.rows_affected() > 0 {
            return Ok(Some(true));
        }
        let exists = sqlx::query("SELECT 1 AS one FROM versions WHERE game = $1 AND name = $2")
            .bind(game)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .op("read version")?
            .is_some();
        Ok(exists.then_some(false))
    }

    /// One version.
    pub async fn version(&self, game: &str, name: &str) -> Result<Option<Version>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions WHERE game = $1 AND name = $2"
        ))
        .bind(game)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .op("read version")?
        .map(|row| version_from_record(&row))
        .transpose()
    }

    /// A game's versions in version order, oldest first.
    pub async fn versions_of(&self, game: &str) -> Result<Vec<Version>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions WHERE game = $1 ORDER BY order_index, name"
        ))
        .bind(game)
        .fetch_all(&self.pool)
        .await
        .op("list versions")?;
        rows.iter().map(|row| version_from_record(row)).collect()
    }

    /// Deletes a version and the deltas from and to it, in one transaction; returns whether the
    /// version existed. The artifacts stay (they may be shared); delete them separately.
    ///
    /// ## Warning
    /// Only for pruning by an explicit retention policy. A version missing from the specs is
    /// [`VersionState::Retired`], not deleted.
    pub async fn delete_version(&self, game: &str, name: &str) -> Result<bool, Error> {
        let mut transaction = self.begin_write("delete version").await?;
        sqlx::query(
            "DELETE FROM deltas WHERE game = $1 AND (from_version = $2 OR to_version = $2)",
        )
        .bind(game)
        .bind(name)
        .execute(&mut *transaction)
        .await
        .op("delete deltas of version")?;
        let result = sqlx::query("DELETE FROM versions WHERE game = $1 AND name = $2")
            .bind(game)
            .bind(name)
            .execute(&mut *transaction)
            .await
            .op("delete version")?;
        transaction.commit().await.op("delete version")?;
        Ok(result.rows_affected() > 0)
    }

    /// Inserts or updates users in one transaction; returns how many rows changed.
    pub async fn upsert_users(&self, users: &[User], now: EpochMs) -> Result<usize, Error> {
        let mut transaction = self.begin_write("upsert users").await?;
        let mut n_changed = 0;
        for user in users {
            let result = sqlx::query(
                "INSERT INTO users (name, display_name, role, password_hash, disabled, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
                 role = excluded.role, password_hash = excluded.password_hash, \
                 disabled = excluded.disabled, updated_at = excluded.updated_at \
                 WHERE users.display_name IS DISTINCT FROM excluded.display_name \
                 OR users.role IS DISTINCT FROM excluded.role \
                 OR users.password_hash IS DISTINCT FROM excluded.password_hash \
                 OR users.disabled IS DISTINCT FROM excluded.disabled",
            )
            .bind(&user.name)
            .bind(&user.display_name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(user.disabled)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .op("upsert user")?;
            n_changed += usize::from(result.rows_affected() > 0);
        }
        transaction.commit().await.op("upsert users")?;
        Ok(n_changed)
    }

    /// One user by login name, for the API's login.
    pub async fn user(&self, name: &str) -> Result<Option<User>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .op("read user")?
        .map(|row| user_from_record(&row))
        .transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .op("list users")?;
        rows.iter().map(|row| user_from_record(row)).collect()
    }

    /// Deletes a user (removed from the specs: they can no longer log in); returns whether
    /// they existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, Error> {
        let result = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .op("delete user")?;
        Ok(result.rows_affected() > 0)
    }

    /// Records an artifact; returns whether it was new. Recording the same address again is a
    /// no-op when kind, size and path agree, and [`Error::ArtifactConflict`] when they do not.
    pub async fn record_artifact(&self, artifact: &Artifact) -> Result<bool, Error> {
        if !is_content_address(&artifact.address) {
            return Err(Error::InvalidValue {
                column: "artifacts.address",
                value: artifact.address.clone(),
            });
        }
        let result = sqlx::query(
            "INSERT INTO artifacts (address, kind, size, path, created_at, verified_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (address) DO NOTHING",
        )
        .bind(&artifact.address)
        .bind(artifact.kind.as_str())
        .bind(to_i64(artifact.size, "artifact size")?)
        .bind(&artifact.path)
        .bind(artifact.created_at)
        .bind(artifact.verified_at)
        .execute(&self.pool)
        .await
        .op("record artifact")?;
        if result.rows_affected() > 0 {
            return Ok(true);
        }
        let existing =
            self.artifact(&artifact.address)
                .await?
                .ok_or_else(|| Error::InvalidValue {
                    column: "artifacts.address",
                    value: artifact.address.clone(),
                })?;
        if (existing.kind, existing.size, &existing.path)
            == (artifact.kind, artifact.size, &artifact.path)
        {
            Ok(false)
        } else {
            Err(Error::ArtifactConflict {
                address: artifact.address.clone(),
                existing: format!(
                    "{} of {} bytes at {}",
                    existing.kind, existing.size, existing.path
                ),
                new: format!(
                    "{} of {} bytes at {}",
                    artifact.kind, artifact.size, artifact.path
                ),
            })
        }
    }

    /// Notes that an artifact's bytes were hashed at `at` and matched; returns whether the
    /// artifact exists.
    pub async fn mark_artifact_verified(&self, address: &str, at: EpochMs) -> Result<bool, Error> {
        let result = sqlx::query("UPDATE artifacts SET verified_at = $2 WHERE address = $1")
            .bind(address)
            .bind(at)
            .execute(&self.pool)
            .await
            .op("mark artifact verified")?;
        Ok(result.rows_affected() > 0)
    }

    /// One artifact by address.
    pub async fn artifact(&self, address: &str) -> Result<Option<Artifact>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            artifact_columns!(),
            " FROM artifacts WHERE address = $1"
        ))
        .bind(address)
        .fetch_optional(&self.pool)
        .await
        .op("read artifact")?
        .map(|row| artifact_from_record(&row))
        .transpose()
    }

    /// Deletes an artifact's row; returns whether it existed. Fails while a version or delta
    /// still refers to it.
    pub async fn delete_artifact(&self, address: &str) -> Result<bool, Error> {
        let result = sqlx::query("DELETE FROM artifacts WHERE address = $1")
            .bind(address)
            .execute(&self.pool)
            .await
            .op("delete artifact")?;
        Ok(result.rows_affected() > 0)
    }

    /// Inserts or updates a delta edge; returns whether anything changed.
    pub async fn upsert_delta(&self, delta: &Delta, now: EpochMs) -> Result<bool, Error> {
        let result = sqlx::query(
            "INSERT INTO deltas (game, from_version, to_version, address, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (game, from_version, to_version) DO UPDATE \
             SET address = excluded.address, updated_at = excluded.updated_at \
             WHERE deltas.address IS DISTINCT FROM excluded.address",
        )
        .bind(&delta.game)
        .bind(&delta.from_version)
        .bind(&delta.to_version)
        .bind(&delta.address)
        .bind(now)
        .execute(&self.pool)
        .await
        .op("upsert delta")?;
        Ok(result.rows_affected() > 0)
    }

    /// A game's delta edges, by (from, to).
    pub async fn deltas_of(&self, game: &str) -> Result<Vec<Delta>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delta_columns!(),
            " FROM deltas WHERE game = $1 ORDER BY from_version, to_version"
        ))
        .bind(game)
        .fetch_all(&self.pool)
        .await
        .op("list deltas")?;
        rows.iter().map(|row| delta_from_record(row)).collect()
    }

    /// Deletes a delta edge; returns whether it existed.
    pub async fn delete_delta(
        &self,
        game: &str,
        from_version: &str,
        to_version: &str,
    ) -> Result<bool, Error> {
        let result = sqlx::query(
            "DELETE FROM deltas WHERE game = $1 AND from_version = $2 AND to_version = $3",
        )
        .bind(game)
        .bind(from_version)
        .bind(to_version)
        .execute(&self.pool)
        .await
        .op("delete delta")?;
        Ok(result.rows_affected() > 0)
    }
}

async fn upsert_game_on<'e, E>(executor: E, game: &Game, now: EpochMs) -> Result<bool, Error>
where
    E: Executor<'e, Database = Any>,
{
    let grants_json = serde_json::to_string(&game.grants).map_err(|source| Error::Json {
        column: "games.grants_json",
        source,
    })?;
    let result = sqlx::query(
        "INSERT INTO games (name, spec_json, suspended, private, grants_json, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET spec_json = excluded.spec_json, \
         suspended = excluded.suspended, private = excluded.private, \
         grants_json = excluded.grants_json, updated_at = excluded.updated_at \
         WHERE games.spec_json IS DISTINCT FROM excluded.spec_json \
         OR games.suspended IS DISTINCT FROM excluded.suspended \
         OR games.private IS DISTINCT FROM excluded.private \
         OR games.grants_json IS DISTINCT FROM excluded.grants_json",
    )
    .bind(&game.name)
    .bind(&game.spec_json)
    .bind(game.suspended)
    .bind(game.private)
    .bind(grants_json)
    .bind(now)
    .execute(executor)
    .await
    .op("upsert game")?;
    Ok(result.rows_affected() > 0)
}

pub(crate) fn sync_state_from_record(record: &dyn Record) -> Result<SyncState, Error> {
    Ok(SyncState {
        observed_commit: record.opt_text(0, "observed_commit")?,
        last_attempted_commit: record.opt_text(1, "last_attempted_commit")?,
        last_applied_commit: record.opt_text(2, "last_applied_commit")?,
    })
}

fn revision_from_record(record: &dyn Record) -> Result<Revision, Error> {
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
