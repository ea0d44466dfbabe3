//! Games as the specs declare them.

use sqlx::{Any, Executor};

use super::{Game, game_columns, game_from_record};
use crate::{Db, EpochMs, Error, QueryContext};

impl Db {
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
