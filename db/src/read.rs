//! Reads for the API: whole tables in one query where the state module reads per game, and
//! which versions use an artifact. Nothing here writes.

use crate::state::{
    Artifact, Version, VersionState, artifact_columns, artifact_from_record, version_columns,
    version_from_record,
};
use crate::{Db, Error, QueryContext, Record};

/// A version that uses an artifact: as its manifest or pack, or as the target of a delta
/// edge whose artifact it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactUse {
    /// The game.
    pub game: String,
    /// The version the artifact belongs to, or that the delta produces.
    pub version: String,
    /// That version's state.
    pub state: VersionState,
}

impl Db {
    /// Every version of every game, by game and then version order, in one query.
    pub async fn all_versions(&self) -> Result<Vec<Version>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM versions ORDER BY game, order_index, name"
        ))
        .fetch_all(&self.pool)
        .await
        .op("list all versions")?;
        rows.iter().map(|row| version_from_record(row)).collect()
    }

    /// The size of every pack, by address: what each version's full download weighs.
    pub async fn pack_sizes(&self) -> Result<Vec<(String, u64)>, Error> {
        let rows = sqlx::query("SELECT address, size FROM artifacts WHERE kind = 'pack'")
            .fetch_all(&self.pool)
            .await
            .op("list pack sizes")?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.text(0, "artifacts.address")?,
                    crate::to_u64(row.int(1, "artifacts.size")?, "artifacts.size")?,
                ))
            })
            .collect()
    }

    /// Every version that uses the artifact at `address`, by game and version.
    pub async fn artifact_uses(&self, address: &str) -> Result<Vec<ArtifactUse>, Error> {
        let rows = sqlx::query(
            "SELECT game, name, state FROM versions \
             WHERE manifest_address = $1 OR pack_address = $1 \
             UNION \
             SELECT d.game, v.name, v.state FROM deltas d \
             JOIN versions v ON v.game = d.game AND v.name = d.to_version \
             WHERE d.address = $1 \
             ORDER BY 1, 2",
        )
        .bind(address)
        .fetch_all(&self.pool)
        .await
        .op("list artifact uses")?;
        rows.iter()
            .map(|row| {
                Ok(ArtifactUse {
                    game: row.text(0, "versions.game")?,
                    version: row.text(1, "versions.name")?,
                    state: VersionState::parse(&row.text(2, "versions.state")?)?,
                })
            })
            .collect()
    }

    /// Every artifact a game's versions or delta edges refer to, by address.
    pub async fn artifacts_of_game(&self, game: &str) -> Result<Vec<Artifact>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            artifact_columns!(),
            " FROM artifacts WHERE address IN (\
             SELECT manifest_address FROM versions WHERE game = $1 \
             AND manifest_address IS NOT NULL \
             UNION SELECT pack_address FROM versions WHERE game = $1 \
             AND pack_address IS NOT NULL \
             UNION SELECT address FROM deltas WHERE game = $1) \
             ORDER BY address"
        ))
        .bind(game)
        .fetch_all(&self.pool)
        .await
        .op("list artifacts of game")?;
        rows.iter().map(|row| artifact_from_record(row)).collect()
    }
}
