//! Content-addressed artifacts: immutable files in the NAS artifact store, named by the
//! digest of their bytes.

use super::{Artifact, ArtifactTotals, artifact_columns, artifact_from_record, is_content_address};
use crate::{Db, EpochMs, Error, QueryContext, Record, to_i64, to_u64};

impl Db {
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

    /// How many artifacts are recorded, and their bytes in all.
    pub async fn artifact_totals(&self) -> Result<ArtifactTotals, Error> {
        let row =
            sqlx::query("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM artifacts")
                .fetch_one(&self.pool)
                .await
                .op("sum artifacts")?;
        let record: &dyn Record = &row;
        Ok(ArtifactTotals {
            n_artifacts: to_u64(record.int(0, "artifacts.count")?, "artifacts.count")?,
            bytes: to_u64(record.int(1, "artifacts.size")?, "artifacts.size")?,
        })
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
}
