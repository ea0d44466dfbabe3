//! The metadata job: a game's store metadata fetched from Steam's `appdetails`, and its header
//! image downloaded into the artifact store, so friends never reach Steam.
//!
//! Every outcome of the fetch is recorded in the game's metadata row, which is what the next
//! pass reads: a success replaces the details and the image, a failure (the network, a 429, an
//! app the store does not know, an answer that is not the store's, an image that is not one)
//! keeps them and records why, with the time of the next try (`steam::FetchError::
//! retry_delay`). So the job itself ends well unless the database fails, and the queue's own
//! retries are for that alone.

use std::time::Duration;

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::metadata::{FetchedDetails, GameMetadata, SteamDetails, StoredImage};
use mist_specs::check::{ImageType, MAX_HEADER_IMAGE_SIZE};

use super::error::{ActionError, retry};
use super::run::{Run, blocking};
use crate::steam::{self, FetchError, MAX_ANSWER_BYTES};

/// What a good fetch brings: the details, and Steam's header image with its URL.
type Fetched = (SteamDetails, Option<(StoredImage, String)>);

impl Run {
    /// Fetches the store metadata of `game` (Steam app `app_id`) and records the outcome.
    #[tracing::instrument(skip(self))]
    pub(super) async fn metadata(&self, game: &str, app_id: u32) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        self.progress.stage(0, "fetch", 1);
        let previous = db.game_metadata(game).await.map_err(retry)?;
        self.log(
            LogLevel::Info,
            format!("asking the store about Steam app {app_id}"),
        );
        let fetch_started = std::time::Instant::now();
        let outcome = self.fetch_store(app_id, previous.as_ref()).await;
        let fetch_seconds = fetch_started.elapsed().as_secs_f64();
        self.check_cancel()?;
        let now = self.now();
        let object = ObjectRef::game(game);
        match outcome {
            Ok((details, image)) => {
                self.log(
                    LogLevel::Info,
                    match &image {
                        Some((image, _)) => format!(
                            "fetched the store metadata in {fetch_seconds:.1} s, with a header \
                             image of {} ({}): {}",
                            mist_platform::units::human_size(image.size),
                            image.media_type,
                            image.address
                        ),
                        None => format!(
                            "fetched the store metadata in {fetch_seconds:.1} s; the store has \
                             no header image"
                        ),
                    },
                );
                let fetched = FetchedDetails {
                    app_id: i64::from(app_id),
                    details,
                    fetched_at: now,
                };
                let image = image.as_ref().map(|(image, url)| (image, url.as_str()));
                db.record_metadata_fetched(game, &fetched, image, now)
                    .await
                    .map_err(retry)?;
                tracing::info!(game, app_id, "store metadata fetched");
                self.event(
                    &object,
                    Severity::Normal,
                    "MetadataFetched",
                    &format!("fetched the store metadata of Steam app {app_id}"),
                )
                .await;
            }
            Err(error) => {
                let failures = previous
                    .as_ref()
                    .and_then(|row| row.attempt.as_ref())
                    .filter(|attempt| attempt.app_id == i64::from(app_id))
                    .map_or(1, |attempt| attempt.failures.saturating_add(1));
                let delay = error.retry_delay(failures, &self.ctx.metadata.config);
                let retry_at =
                    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                db.record_metadata_failed(
                    game,
                    i64::from(app_id),
                    &error.to_string(),
                    retry_at,
                    now,
                )
                .await
                .map_err(retry)?;
                tracing::warn!(game, app_id, failures, %error, "store metadata not fetched");
                self.log(
                    LogLevel::Warn,
                    format!(
                        "the store did not answer well after {fetch_seconds:.1} s: {error}; \
                         failure {failures} in a row, next try {}; the last good metadata stays \
                         served",
                        mist_platform::units::utc_minute(retry_at)
                    ),
                );
                self.event(
                    &object,
                    Severity::Warning,
                    "MetadataFetchFailed",
                    &format!("fetching the store metadata of Steam app {app_id} failed: {error}"),
                )
                .await;
            }
        }
        self.progress.set(1, 1);
        Ok(())
    }

    /// Asks the store about `app_id` and downloads the header image it names, unless it is
    /// the one already stored (`previous`).
    async fn fetch_store(
        &self,
        app_id: u32,
        previous: Option<&GameMetadata>,
    ) -> Result<Fetched, FetchError> {
        let metadata = &self.ctx.metadata;
        let url = steam::appdetails_url(&metadata.config.steam_url, app_id);
        let body = get(&metadata.client, &url, MAX_ANSWER_BYTES, "the store").await?;
        let app = steam::parse_appdetails(app_id, &body)?;
        let Some(image_url) = app.header_image else {
            return Ok((app.details, None));
        };
        if let Some(previous) = previous
            && previous.steam_image_source.as_deref() == Some(image_url.as_str())
            && let Some(image) = &previous.steam_image
            && self.ctx.store.is_present(&image.address, image.size)
        {
            return Ok((app.details, Some((image.clone(), image_url))));
        }
        let bytes = get(
            &metadata.client,
            &image_url,
            MAX_HEADER_IMAGE_SIZE,
            "the header image",
        )
        .await
        .map_err(|error| FetchError::Image(error.to_string()))?;
        let Some(image_type) = ImageType::sniff(&bytes) else {
            return Err(FetchError::Image(
                "the header image is not a PNG, JPEG or WebP image".to_owned(),
            ));
        };
        let store = self.ctx.store.clone();
        let stored = blocking(move || store.put(&bytes).map_err(retry))
            .await
            .map_err(|error| match error {
                ActionError::Retry(cause) => {
                    FetchError::Image(format!("cannot store the header image: {cause}"))
                }
                _ => FetchError::Image("cannot store the header image".to_owned()),
            })?;
        let image = StoredImage {
            address: stored.address,
            size: stored.size,
            media_type: image_type.media_type().to_owned(),
        };
        Ok((app.details, Some((image, image_url))))
    }
}

/// `GET url`, its body up to `limit` bytes; `what` names it in errors.
async fn get(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client.get(url).send().await.map_err(|error| {
        FetchError::Network(format!("cannot reach {what}: {}", describe(&error)))
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(FetchError::RateLimited { retry_after });
    }
    if status.is_server_error() {
        return Err(FetchError::Network(format!("{what} answered {status}")));
    }
    if !status.is_success() {
        return Err(FetchError::BadResponse(format!("{what} answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| FetchError::Network(format!("reading {what}: {}", describe(&error))))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(FetchError::BadResponse(format!(
                "{what} is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error and its causes, on one line.
fn describe(error: &reqwest::Error) -> String {
    mist_platform::error::ErrorChain(error).to_string()
}
