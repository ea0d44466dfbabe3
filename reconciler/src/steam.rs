//! Steam's store as a source of catalog metadata: where to ask ([`MetadataConfig`],
//! [`appdetails_url`]), what its answer means ([`parse_appdetails`]) and how long to wait after
//! a failure ([`retry_delay`]). Pure: the job that asks is `actions/metadata.rs`.
//!
//! The store answers `GET <url>/api/appdetails?appids=<id>` with
//! `{"<id>": {"success": true, "data": {"short_description": …, "header_image": <URL>,
//! "genres": [{"description": …}], "developers": […], "release_date": {"date": …}}}}`, and
//! `{"<id>": {"success": false}}` for an id it does not know; it answers 429 when asked too
//! often.

use std::time::Duration;

use mist_db::metadata::SteamDetails;
use serde::Deserialize;

/// The store's base URL when none is configured.
pub const DEFAULT_STEAM_URL: &str = "https://store.steampowered.com";

/// The default time between two fetches of a game's metadata (before ±10 % jitter).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest answer read from the store, and the largest header image downloaded.
pub const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

/// How metadata is fetched and refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    /// The store's base URL (`mistd run --steam-url`); requests go to
    /// `<steam_url>/api/appdetails?appids=<id>`.
    pub steam_url: String,
    /// A game's metadata is fetched again this long after the last good fetch (±10 %, by
    /// game, so games fetched together are not refreshed together), and at once when its
    /// `steamAppId` changes.
    pub refresh: Duration,
    /// The wait after a first failure; it doubles with each failure in a row.
    pub retry_base: Duration,
    /// The longest wait after failures.
    pub retry_cap: Duration,
    /// How long one request may take.
    pub timeout: Duration,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            steam_url: DEFAULT_STEAM_URL.to_owned(),
            refresh: DEFAULT_REFRESH,
            retry_base: Duration::from_secs(60),
            retry_cap: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The URL of the store's details of app `app_id`.
pub fn appdetails_url(steam_url: &str, app_id: u32) -> String {
    format!(
        "{}/api/appdetails?appids={app_id}",
        steam_url.trim_end_matches('/')
    )
}

/// Why a fetch failed, by stable reason: the reason is the text before `: ` in what the
/// database records, and the reason of the game's `MetadataStale` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The store could not be reached, timed out or failed (5xx).
    #[error("NetworkError: {0}")]
    Network(String),
    /// The store answered 429; `retry_after` is what it asked for, if it did.
    #[error("RateLimited: the store answered 429 Too Many Requests")]
    RateLimited {
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The store does not know the app, or answered `success: false` for it.
    #[error("UnknownApp: the store has no details for app {0} (it answered `success: false`)")]
    UnknownApp(u32),
    /// The answer was not what the store answers.
    #[error("BadResponse: {0}")]
    BadResponse(String),
    /// The header image could not be downloaded, or is not a PNG, JPEG or WebP image.
    #[error("ImageFailed: {0}")]
    Image(String),
}

impl FetchError {
    /// How long to wait before the next try after `failures` failures in a row, this one
    /// included: `retry_base` doubling up to `retry_cap`, and at least what a 429 asked for.
    pub fn retry_delay(&self, failures: u32, config: &MetadataConfig) -> Duration {
        let backoff = retry_delay(failures, config);
        match self {
            FetchError::RateLimited {
                retry_after: Some(asked),
            } => backoff.max((*asked).min(config.retry_cap)),
            _ => backoff,
        }
    }
}

/// `retry_base · 2^(failures − 1)`, at most `retry_cap`.
pub fn retry_delay(failures: u32, config: &MetadataConfig) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    config
        .retry_base
        .saturating_mul(1 << doublings)
        .min(config.retry_cap)
}

/// What the store said of an app: the details kept, and where its header image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDetails {
    /// The fields Mist keeps.
    pub details: SteamDetails,
    /// The header image's URL, if the store gives one.
    pub header_image: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    success: bool,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    short_description: Option<String>,
    #[serde(default)]
    header_image: Option<String>,
    #[serde(default)]
    genres: Vec<Genre>,
    #[serde(default)]
    developers: Vec<String>,
    #[serde(default)]
    release_date: Option<ReleaseDate>,
}

#[derive(Deserialize)]
struct Genre {
    description: String,
}

#[derive(Deserialize)]
struct ReleaseDate {
    #[serde(default)]
    date: Option<String>,
}

/// Reads the store's answer (`body`, with HTTP status 200) about `app_id`.
pub fn parse_appdetails(app_id: u32, body: &[u8]) -> Result<AppDetails, FetchError> {
    let answer: std::collections::HashMap<String, Option<Entry>> = serde_json::from_slice(body)
        .map_err(|error| {
            FetchError::BadResponse(format!("the answer is not the store's JSON: {error}"))
        })?;
    let Some(Some(entry)) = answer.get(&app_id.to_string()) else {
        return Err(FetchError::UnknownApp(app_id));
    };
    let data = match (&entry.success, &entry.data) {
        (true, Some(data)) => data,
        _ => return Err(FetchError::UnknownApp(app_id)),
    };
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(plain_text)
            .filter(|text| !text.is_empty())
    };
    Ok(AppDetails {
        details: SteamDetails {
            description: text(&data.short_description),
            genres: data
                .genres
                .iter()
                .map(|genre| plain_text(&genre.description))
                .filter(|genre| !genre.is_empty())
                .collect(),
            developers: data
                .developers
                .iter()
                .map(|developer| plain_text(developer))
                .filter(|developer| !developer.is_empty())
                .collect(),
            release_date: text(&data.release_date.as_ref().and_then(|r| r.date.clone())),
        },
        header_image: data
            .header_image
            .clone()
            .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
    })
}

/// The store's text without markup: tags dropped, the common entities decoded, white space
/// collapsed. The store's short descriptions are plain text with entities, now and then a tag.
fn plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a real answer (Celeste, app 504230), trimmed.
    const CELESTE: &str = r#"{"504230":{"success":true,"data":{"type":"game","name":"Celeste",
        "steam_appid":504230,"short_description":"Help Madeline survive her inner demons on her journey to the top of Celeste Mountain, in this super-tight platformer from the creators of TowerFall. Brave hundreds of hand-crafted challenges, uncover devious secrets, and piece together the mystery of the mountain.",
        "header_image":"https://shared.akamai.steamstatic.com/store_item_assets/steam/apps/504230/header.jpg?t=1714089525",
        "developers":["Maddy Makes Games Inc."],"publishers":["Maddy Makes Games Inc."],
        "genres":[{"id":"1","description":"Action"},{"id":"23","description":"Indie"}],
        "release_date":{"coming_soon":false,"date":"25 Jan, 2018"}}}}"#;

    #[test]
    fn an_answer_gives_the_details_kept() {
        let details = parse_appdetails(504230, CELESTE.as_bytes()).unwrap();
        assert_eq!(details.details.genres, ["Action", "Indie"]);
        assert_eq!(details.details.developers, ["Maddy Makes Games Inc."]);
        assert_eq!(
            details.details.release_date.as_deref(),
            Some("25 Jan, 2018")
        );
        assert!(
            details
                .details
                .description
                .unwrap()
                .starts_with("Help Madeline")
        );
        assert!(
            details
                .header_image
                .unwrap()
                .ends_with("header.jpg?t=1714089525")
        );
    }

    #[test]
    fn failures_are_told_apart() {
        let cases: [(&str, FetchError); 5] = [
            (r#"{"7":{"success":false}}"#, FetchError::UnknownApp(7)),
            (
                r#"{"8":{"success":true,"data":{}}}"#,
                FetchError::UnknownApp(7),
            ),
            (r#"{"7":null}"#, FetchError::UnknownApp(7)),
            (r#"{"7":{"success":true}}"#, FetchError::UnknownApp(7)),
            ("<html>", FetchError::BadResponse(String::new())),
        ];
        for (body, want) in cases {
            let got = parse_appdetails(7, body.as_bytes()).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{body}: {got}"
            );
        }
    }

    #[test]
    fn markup_is_dropped() {
        assert_eq!(
            plain_text("Tom &amp; Jerry&#39;s <b>big</b>\n  day &quot;out&quot;"),
            "Tom & Jerry's big day \"out\""
        );
    }

    #[test]
    fn retries_back_off_and_obey_the_store() {
        let config = MetadataConfig::default();
        assert_eq!(retry_delay(1, &config), Duration::from_secs(60));
        assert_eq!(retry_delay(3, &config), Duration::from_secs(240));
        assert_eq!(retry_delay(40, &config), config.retry_cap);
        let limited = FetchError::RateLimited {
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(limited.retry_delay(1, &config), Duration::from_secs(3600));
        assert_eq!(
            appdetails_url("http://127.0.0.1:9/", 620),
            "http://127.0.0.1:9/api/appdetails?appids=620"
        );
    }
}
