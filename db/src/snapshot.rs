//! The whole observed state in a handful of queries, for a reconcile pass. Start at
//! [`Db::load_snapshot`].
//!
//! A pass compares the desired state with this snapshot in memory and writes only the
//! differences, so a converged pass costs these reads and nothing else: one query per table,
//! each a sequential scan in primary-key order, all inside one read transaction so the tables
//! agree with each other.

use crate::queue::{Job, job_columns, job_from_row};
use crate::state::{
    Artifact, Delta, Game, SyncState, User, Version, artifact_from_row, delta_from_row,
    game_from_row, sync_state_from_row, user_from_row, version_from_row, versions_select,
};
use crate::status::{Condition, condition_from_row};
use crate::{Backend, Db, Error, QueryContext};

/// Everything a reconcile pass compares against, read at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The sync state.
    pub sync_state: SyncState,
    /// Every game, by name.
    pub games: Vec<Game>,
    /// Every version, by game and then version order.
    pub versions: Vec<Version>,
    /// Every user, by name.
    pub users: Vec<User>,
    /// Every artifact, by address.
    pub artifacts: Vec<Artifact>,
    /// Every delta edge, by game, from and to.
    pub deltas: Vec<Delta>,
    /// Every condition, by object and type.
    pub conditions: Vec<Condition>,
    /// Every job that is not done, by key. Done jobs are left out: they only pile up, and
    /// enqueueing their keys again is a no-op anyway.
    pub jobs: Vec<Job>,
}

impl Db {
    /// Loads the [`Snapshot`]: eight queries in one read transaction (repeatable read on
    /// Postgres; SQLite's read transactions are snapshots already).
    pub async fn load_snapshot(&self) -> Result<Snapshot, Error> {
        let mut transaction = match self.backend {
            Backend::Sqlite => self.pool.begin().await,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
        .op("begin snapshot")?;

        let row = sqlx::query(
            "SELECT observed_commit, last_attempted_commit, last_applied_commit \
             FROM sync_state WHERE id = 1",
        )
        .fetch_one(&mut *transaction)
        .await
        .op("snapshot sync state")?;
        let sync_state = sync_state_from_row(&row)?;

        let rows = sqlx::query(
            "SELECT name, spec_json, suspended, private, grants_json FROM games ORDER BY name",
        )
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot games")?;
        let games = rows.iter().map(game_from_row).collect::<Result<_, _>>()?;

        let rows = sqlx::query(versions_select!("ORDER BY game, order_index, name"))
            .fetch_all(&mut *transaction)
            .await
            .op("snapshot versions")?;
        let versions = rows.iter().map(version_from_row).collect::<Result<_, _>>()?;

        let rows = sqlx::query(
            "SELECT name, display_name, role, password_hash, disabled FROM users ORDER BY name",
        )
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot users")?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;

        let rows = sqlx::query(
            "SELECT address, kind, size, path, created_at, verified_at FROM artifacts \
             ORDER BY address",
        )
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot artifacts")?;
        let artifacts = rows.iter().map(artifact_from_row).collect::<Result<_, _>>()?;

        let rows = sqlx::query(
            "SELECT game, from_version, to_version, address FROM deltas \
             ORDER BY game, from_version, to_version",
        )
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot deltas")?;
        let deltas = rows.iter().map(delta_from_row).collect::<Result<_, _>>()?;

        let rows = sqlx::query(
            "SELECT object_kind, object_name, condition_type, status, reason, message, since \
             FROM conditions ORDER BY object_kind, object_name, condition_type",
        )
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot conditions")?;
        let conditions = rows
            .iter()
            .map(condition_from_row)
            .collect::<Result<_, _>>()?;

        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state <> 'done' ORDER BY job_key"
        ))
        .fetch_all(&mut *transaction)
        .await
        .op("snapshot jobs")?;
        let jobs = rows.iter().map(job_from_row).collect::<Result<_, _>>()?;

        transaction.commit().await.op("end snapshot")?;
        Ok(Snapshot {
            sync_state,
            games,
            versions,
            users,
            artifacts,
            deltas,
            conditions,
            jobs,
        })
    }
}
