//! The sync state and the spec commits the reconciler evaluated.

use super::{
    Revision, SyncState, revision_columns, revision_from_record, sync_state_columns,
    sync_state_from_record,
};
use crate::{Db, EpochMs, Error, QueryContext};

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
}
