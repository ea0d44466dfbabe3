//! The whole observed state in a handful of queries, for a reconcile pass. Start at
//! [`Db::load_snapshot`].
//!
//! A pass compares the desired state with this snapshot in memory and writes only the
//! differences, so a converged pass costs these reads and nothing else: one query per table,
//! all inside one read transaction so the tables agree with each other.
//!
//! On SQLite each table comes back as a single JSON array of rows (`json_group_array`), parsed
//! with serde_json: the driver hands rows one at a time from a worker thread, and for 10,000
//! versions one row per table row is about three times slower. Postgres streams rows fast and
//! builds JSON slowly, so there each table is read as plain rows. Both paths decode with the
//! same functions (see `Record`).
//!
//! A converged pass need not read it all again: every table has triggers that bump the
//! one-row `change_seq` counter whenever a transaction that wrote a row commits (migration
//! `0002_change_seq`). A snapshot remembers the counter it was read at
//! ([`Snapshot::change_seq`]); while [`Db::change_seq`] still returns that value, the snapshot
//! is exactly what a new read would return, and a caller may keep using it.

use sqlx::AnyConnection;

use crate::conditions::{Condition, condition_columns, condition_from_record};
use crate::metadata::{GameMetadata, metadata_columns, metadata_from_record};
use crate::queue::{Job, job_columns, job_from_record};
use crate::state::{
    Artifact, Delta, Game, SyncState, User, Version, artifact_columns, artifact_from_record,
    delta_columns, delta_from_record, game_columns, game_from_record, sync_state_columns,
    sync_state_from_record, user_columns, user_from_record, version_columns, version_from_record,
};
use crate::{Backend, Db, Error, JsonRecord, QueryContext, Record};

/// Everything a reconcile pass compares against, read at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The database's change counter when the snapshot was read (see [`Db::change_seq`]):
    /// while [`Db::change_seq`] still returns it, nothing in the database has changed.
    pub change_seq: i64,
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
    /// Every game's catalog metadata, by game.
    pub metadata: Vec<GameMetadata>,
}

/// How to read one table: the same columns as rows (Postgres) or as one JSON array (SQLite).
struct TableQuery {
    operation: &'static str,
    rows_sql: &'static str,
    json_sql: &'static str,
}

/// Declares a [`TableQuery`] from a column list, a table, a filter and an order.
macro_rules! table_query {
    ($operation:literal, $columns:expr, $table:literal, $filter:literal, $order:literal) => {
        TableQuery {
            operation: $operation,
            rows_sql: concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $table,
                " ",
                $filter,
                " ORDER BY ",
                $order
            ),
            json_sql: concat!(
                "SELECT json_group_array(json_array(",
                $columns,
                ") ORDER BY ",
                $order,
                ") AS records FROM ",
                $table,
                " ",
                $filter
            ),
        }
    };
}

// The tables of a snapshot, each with its order (the order of the snapshot's vectors).
const GAMES: TableQuery = table_query!("snapshot games", game_columns!(), "games", "", "name");
const VERSIONS: TableQuery = table_query!(
    "snapshot versions",
    version_columns!(),
    "versions",
    "",
    "game, order_index, name"
);
const USERS: TableQuery = table_query!("snapshot users", user_columns!(), "users", "", "name");
const ARTIFACTS: TableQuery = table_query!(
    "snapshot artifacts",
    artifact_columns!(),
    "artifacts",
    "",
    "address"
);
const DELTAS: TableQuery = table_query!(
    "snapshot deltas",
    delta_columns!(),
    "deltas",
    "",
    "game, from_version, to_version"
);
const CONDITIONS: TableQuery = table_query!(
    "snapshot conditions",
    condition_columns!(),
    "conditions",
    "",
    "object_kind, object_name, condition_type"
);
const JOBS: TableQuery = table_query!(
    "snapshot jobs",
    job_columns!(),
    "jobs",
    "WHERE state <> 'done'",
    "job_key"
);
const METADATA: TableQuery = table_query!(
    "snapshot game metadata",
    metadata_columns!(),
    "game_metadata",
    "",
    "game"
);

impl Db {
    /// The change counter: a number that moves whenever a transaction that wrote a row of
    /// any table commits — through any handle or process — and stays put otherwise (a
    /// compare-first write that found nothing to change does not move it). One tiny query.
    ///
    /// Triggers maintain it (migration `0002_change_seq`), so no writing method can forget
    /// it. It only ever grows.
    pub async fn change_seq(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT seq FROM change_seq WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .op("read change counter")?;
        row.int(0, "change_seq.seq")
    }

    /// Loads the [`Snapshot`]: ten queries in one read transaction (repeatable read on
    /// Postgres; SQLite's read transactions are snapshots already). The change counter is
    /// read first, in the same transaction, so it describes exactly the rows read.
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
        let connection = &mut *transaction;

        let row = sqlx::query("SELECT seq FROM change_seq WHERE id = 1")
            .fetch_one(&mut *connection)
            .await
            .op("snapshot change counter")?;
        let change_seq = row.int(0, "change_seq.seq")?;

        let row = sqlx::query(concat!(
            "SELECT ",
            sync_state_columns!(),
            " FROM sync_state WHERE id = 1"
        ))
        .fetch_one(&mut *connection)
        .await
        .op("snapshot sync state")?;
        let sync_state = sync_state_from_record(&row)?;

        let games = self
            .load_table(connection, &GAMES, game_from_record)
            .await?;
        let versions = self
            .load_table(connection, &VERSIONS, version_from_record)
            .await?;
        let users = self
            .load_table(connection, &USERS, user_from_record)
            .await?;
        let artifacts = self
            .load_table(connection, &ARTIFACTS, artifact_from_record)
            .await?;
        let deltas = self
            .load_table(connection, &DELTAS, delta_from_record)
            .await?;
        let conditions = self
            .load_table(connection, &CONDITIONS, condition_from_record)
            .await?;
        let jobs = self.load_table(connection, &JOBS, job_from_record).await?;
        let metadata = self
            .load_table(connection, &METADATA, metadata_from_record)
            .await?;

        transaction.commit().await.op("end snapshot")?;
        Ok(Snapshot {
            change_seq,
            sync_state,
            games,
            versions,
            users,
            artifacts,
            deltas,
            conditions,
            jobs,
            metadata,
        })
    }

    async fn load_table<T>(
        &self,
        connection: &mut AnyConnection,
        table_query: &TableQuery,
        decode: fn(&dyn Record) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        match self.backend {
            Backend::Postgres => {
                let rows = sqlx::query(table_query.rows_sql)
                    .fetch_all(connection)
                    .await
                    .op(table_query.operation)?;
                rows.iter().map(|row| decode(row)).collect()
            }
            Backend::Sqlite => {
                let row = sqlx::query(table_query.json_sql)
                    .fetch_one(connection)
                    .await
                    .op(table_query.operation)?;
                let records_json = row.text(0, table_query.operation)?;
                let records: Vec<Vec<serde_json::Value>> = serde_json::from_str(&records_json)
                    .map_err(|source| Error::Json {
                        column: table_query.operation,
                        source,
                    })?;
                records
                    .iter()
                    .map(|record| decode(&JsonRecord(record)))
                    .collect()
            }
        }
    }
}
