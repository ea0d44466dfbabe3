//! What the catalog shows of a game beyond its spec: [`GameMetadata`], one row per game.
//!
//! - The last good fetch of the game's store metadata from Steam ([`FetchedDetails`], its
//!   fields a [`SteamDetails`] stored as JSON): kept, and served, while later fetches fail.
//! - How the latest fetch went ([`FetchAttempt`]): for which app, failures in a row, why the
//!   last one failed and when the next try is due. The reconciler derives the game's
//!   `MetadataStale` condition and its schedule from it.
//! - The header images, each a content-addressed file in the artifact store
//!   ([`StoredImage`]): Steam's, and the one the spec repository gives next to `game.yaml`.
//!
//! Every write compares first where it could be a no-op ([`Db::set_spec_image`]); a fetch's
//! outcome always changes the row (its time moves), and a fetch only runs when one is due.

use sqlx::{Any, Executor};

use crate::{Db, EpochMs, Error, QueryContext, Record, to_i64, to_u64};

// The column list, in the order `metadata_from_record` reads it.
macro_rules! metadata_columns {
    () => {
        "game, app_id, details_json, fetched_at, steam_image_address, steam_image_size, \
         steam_image_type, steam_image_source, spec_image_address, spec_image_size, \
         spec_image_type, attempted_app_id, attempted_at, failures, last_error, retry_at"
    };
}
pub(crate) use metadata_columns;

/// A game's catalog metadata as the database records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GameMetadata {
    /// The game.
    pub game: String,
    /// The last good fetch, if any.
    pub fetched: Option<FetchedDetails>,
    /// Steam's header image, stored.
    pub steam_image: Option<StoredImage>,
    /// The URL Steam's header image was downloaded from (to tell when it changed).
    pub steam_image_source: Option<String>,
    /// The header image of the spec repository, stored.
    pub spec_image: Option<StoredImage>,
    /// The latest fetch tried, if any.
    pub attempt: Option<FetchAttempt>,
}

/// A successful fetch of a game's store metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedDetails {
    /// The Steam app the details are of.
    pub app_id: i64,
    /// The details.
    pub details: SteamDetails,
    /// When they were fetched.
    pub fetched_at: EpochMs,
}

/// The fields of a Steam store page Mist keeps (`game_metadata.details_json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SteamDetails {
    /// The store's short description (plain text).
    #[serde(default)]
    pub description: Option<String>,
    /// Genres, e.g. `Action`, `Indie`.
    #[serde(default)]
    pub genres: Vec<String>,
    /// Developers.
    #[serde(default)]
    pub developers: Vec<String>,
    /// The release date as the store writes it, e.g. `25 Jan, 2018`.
    #[serde(default)]
    pub release_date: Option<String>,
}

/// The latest fetch tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchAttempt {
    /// The Steam app it was for.
    pub app_id: i64,
    /// When it ended.
    pub at: EpochMs,
    /// Failed fetches of this app in a row (0: the latest succeeded).
    pub failures: u32,
    /// Why the latest failed, `"<Reason>: <message>"`.
    pub last_error: Option<String>,
    /// When the next try is due after a failure.
    pub retry_at: Option<EpochMs>,
}

/// An image in the artifact store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    /// `blake3:<hex>` of its bytes: its name in the store.
    pub address: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type, e.g. `image/png`.
    pub media_type: String,
}

impl Db {
    /// Records a successful fetch: the details, Steam's header image (`None`: Steam gave
    /// none) with the URL it came from, and an attempt without failures.
    pub async fn record_metadata_fetched(
        &self,
        game: &str,
        fetched: &FetchedDetails,
        steam_image: Option<(&StoredImage, &str)>,
        now: EpochMs,
    ) -> Result<(), Error> {
        let image = steam_image.map(|(image, _)| image);
        let details_json =
            serde_json::to_string(&fetched.details).map_err(|source| Error::Json {
                column: "game_metadata.details_json",
                source,
            })?;
        sqlx::query(
            "INSERT INTO game_metadata (game, app_id, details_json, fetched_at, \
             steam_image_address, steam_image_size, steam_image_type, steam_image_source, \
             attempted_app_id, attempted_at, failures, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $2, $9, 0, $9) \
             ON CONFLICT (game) DO UPDATE SET app_id = excluded.app_id, \
             details_json = excluded.details_json, fetched_at = excluded.fetched_at, \
             steam_image_address = excluded.steam_image_address, \
             steam_image_size = excluded.steam_image_size, \
             steam_image_type = excluded.steam_image_type, \
             steam_image_source = excluded.steam_image_source, \
             attempted_app_id = excluded.attempted_app_id, \
             attempted_at = excluded.attempted_at, failures = 0, last_error = NULL, \
             retry_at = NULL, updated_at = excluded.updated_at",
        )
        .bind(game)
        .bind(fetched.app_id)
        .bind(&details_json)
        .bind(fetched.fetched_at)
        .bind(image.map(|image| image.address.as_str()))
        .bind(
            image
                .map(|image| to_i64(image.size, "image size"))
                .transpose()?,
        )
        .bind(image.map(|image| image.media_type.as_str()))
        .bind(steam_image.map(|(_, source)| source))
        .bind(now)
        .execute(&self.pool)
        .await
        .op("record metadata fetched")?;
        Ok(())
    }

    /// Records a failed fetch of `app_id`: one more failure in a row (the first, when the
    /// latest attempt was for another app), why, and when to try again. The last good fetch
    /// and the images stay.
    pub async fn record_metadata_failed(
        &self,
        game: &str,
        app_id: i64,
        error: &str,
        retry_at: EpochMs,
        now: EpochMs,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO game_metadata (game, attempted_app_id, attempted_at, failures, \
             last_error, retry_at, updated_at) VALUES ($1, $2, $3, 1, $4, $5, $3) \
             ON CONFLICT (game) DO UPDATE SET \
             failures = CASE WHEN game_metadata.attempted_app_id = excluded.attempted_app_id \
             THEN game_metadata.failures + 1 ELSE 1 END, \
             attempted_app_id = excluded.attempted_app_id, attempted_at = excluded.attempted_at, \
             last_error = excluded.last_error, retry_at = excluded.retry_at, \
             updated_at = excluded.updated_at",
        )
        .bind(game)
        .bind(app_id)
        .bind(now)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await
        .op("record metadata failed")?;
        Ok(())
    }

    /// Sets the spec repository's header image of a game (`None`: it has none); returns
    /// whether anything changed. Writes nothing when the row already says so.
    pub async fn set_spec_image(
        &self,
        game: &str,
        image: Option<&StoredImage>,
        now: EpochMs,
    ) -> Result<bool, Error> {
        set_spec_image_on(&self.pool, game, image, now).await
    }

    /// One game's metadata.
    pub async fn game_metadata(&self, game: &str) -> Result<Option<GameMetadata>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            metadata_columns!(),
            " FROM game_metadata WHERE game = $1"
        ))
        .bind(game)
        .fetch_optional(&self.pool)
        .await
        .op("read game metadata")?
        .map(|row| metadata_from_record(&row))
        .transpose()
    }

    /// Every game's metadata, by game.
    pub async fn all_game_metadata(&self) -> Result<Vec<GameMetadata>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            metadata_columns!(),
            " FROM game_metadata ORDER BY game"
        ))
        .fetch_all(&self.pool)
        .await
        .op("list game metadata")?;
        rows.iter().map(|row| metadata_from_record(row)).collect()
    }
}

async fn set_spec_image_on<'e, E>(
    executor: E,
    game: &str,
    image: Option<&StoredImage>,
    now: EpochMs,
) -> Result<bool, Error>
where
    E: Executor<'e, Database = Any>,
{
    let size = image
        .map(|image| to_i64(image.size, "image size"))
        .transpose()?;
    let result = match image {
        Some(image) => {
            sqlx::query(
                "INSERT INTO game_metadata (game, spec_image_address, spec_image_size, \
                 spec_image_type, failures, updated_at) VALUES ($1, $2, $3, $4, 0, $5) \
                 ON CONFLICT (game) DO UPDATE SET \
                 spec_image_address = excluded.spec_image_address, \
                 spec_image_size = excluded.spec_image_size, \
                 spec_image_type = excluded.spec_image_type, updated_at = excluded.updated_at \
                 WHERE game_metadata.spec_image_address IS DISTINCT FROM excluded.spec_image_address \
                 OR game_metadata.spec_image_size IS DISTINCT FROM excluded.spec_image_size \
                 OR game_metadata.spec_image_type IS DISTINCT FROM excluded.spec_image_type",
            )
            .bind(game)
            .bind(&image.address)
            .bind(size)
            .bind(&image.media_type)
            .bind(now)
            .execute(executor)
            .await
        }
        None => {
            sqlx::query(
                "UPDATE game_metadata SET spec_image_address = NULL, spec_image_size = NULL, \
                 spec_image_type = NULL, updated_at = $2 \
                 WHERE game = $1 AND spec_image_address IS NOT NULL",
            )
            .bind(game)
            .bind(now)
            .execute(executor)
            .await
        }
    };
    Ok(result.op("set spec image")?.rows_affected() > 0)
}

fn image_from_record(
    record: &dyn Record,
    first_idx: usize,
    columns: [&'static str; 3],
) -> Result<Option<StoredImage>, Error> {
    let address = record.opt_text(first_idx, columns[0])?;
    let size = record.opt_int(first_idx + 1, columns[1])?;
    let media_type = record.opt_text(first_idx + 2, columns[2])?;
    Ok(match (address, size, media_type) {
        (Some(address), Some(size), Some(media_type)) => Some(StoredImage {
            address,
            size: to_u64(size, columns[1])?,
            media_type,
        }),
        _ => None,
    })
}

pub(crate) fn metadata_from_record(record: &dyn Record) -> Result<GameMetadata, Error> {
    let fetched = match (
        record.opt_int(1, "game_metadata.app_id")?,
        record.opt_text(2, "game_metadata.details_json")?,
        record.opt_int(3, "game_metadata.fetched_at")?,
    ) {
        (Some(app_id), Some(details_json), Some(fetched_at)) => Some(FetchedDetails {
            app_id,
            details: serde_json::from_str(&details_json).map_err(|source| Error::Json {
                column: "game_metadata.details_json",
                source,
            })?,
            fetched_at,
        }),
        _ => None,
    };
    let attempt = match (
        record.opt_int(11, "game_metadata.attempted_app_id")?,
        record.opt_int(12, "game_metadata.attempted_at")?,
    ) {
        (Some(app_id), Some(at)) => Some(FetchAttempt {
            app_id,
            at,
            failures: u32::try_from(record.int(13, "game_metadata.failures")?).unwrap_or(u32::MAX),
            last_error: record.opt_text(14, "game_metadata.last_error")?,
            retry_at: record.opt_int(15, "game_metadata.retry_at")?,
        }),
        _ => None,
    };
    Ok(GameMetadata {
        game: record.text(0, "game_metadata.game")?,
        fetched,
        steam_image: image_from_record(
            record,
            4,
            [
                "game_metadata.steam_image_address",
                "game_metadata.steam_image_size",
                "game_metadata.steam_image_type",
            ],
        )?,
        steam_image_source: record.opt_text(7, "game_metadata.steam_image_source")?,
        spec_image: image_from_record(
            record,
            8,
            [
                "game_metadata.spec_image_address",
                "game_metadata.spec_image_size",
                "game_metadata.spec_image_type",
            ],
        )?,
        attempt,
    })
}
