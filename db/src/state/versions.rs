//! Versions: the spec part the reconciler writes from the specs, and the observed part
//! workers write as they ingest and pack.

use super::{Version, VersionObserved, VersionSpec, version_columns, version_from_record};
use crate::{Db, EpochMs, Error, QueryContext};

impl Db {
    /// Inserts or updates the spec part of versions in one transaction; returns how many rows
    /// changed. A new version starts [`VersionState::Pending`](super::VersionState::Pending)
    /// with nothing observed; the observed part of an existing one is left alone.
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
    /// [`VersionState::Retired`](super::VersionState::Retired), not deleted.
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
}
