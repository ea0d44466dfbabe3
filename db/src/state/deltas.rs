//! Delta edges: the artifact that turns one version of a game into another.

use super::{Delta, delta_columns, delta_from_record};
use crate::{Db, EpochMs, Error, QueryContext};

impl Db {
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
