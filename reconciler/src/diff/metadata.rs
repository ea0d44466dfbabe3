//! The catalog metadata of a game: when its store metadata is fetched, whether its header
//! image from the spec repository is in the store, and whether its metadata is stale.
//!
//! Rules, for each game that is not suspended:
//!
//! - A game with a `steamAppId` is fetched when it never was, at once when the id changed
//!   since the last try, after a failure when its backoff ends (`retry_at`), when Steam's
//!   header image it recorded is gone from the NAS, and otherwise
//!   [`super::DiffConfig::metadata_refresh`] after the last good fetch, ±10 % by game and fetch
//!   time so games fetched together spread out. The job's key carries the time it was due,
//!   so each refresh is new work, and the same due fetch is queued once.
//! - While the latest tries for the game's app failed, its metadata is stale: the reason of
//!   the last failure, how many in a row, what is shown meanwhile (the last good fetch) and
//!   when the next try is.
//! - A header image in the spec repository is put in the artifact store and recorded (by the
//!   pass, which holds its bytes) when the record or the file differs; one removed from the
//!   specs is unrecorded.
//!
//! Nothing here holds up a version's Ready.

use std::time::Duration;

use mist_db::EpochMs;
use mist_db::metadata::{GameMetadata, StoredImage};
use mist_platform::units::utc_minute;

use super::action::Action;
use crate::jobs;

/// A game's catalog metadata, with whether its images are on the NAS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedMetadata {
    /// The row.
    pub row: GameMetadata,
    /// Steam's header image is in the store with its recorded size.
    pub steam_image_present: bool,
    /// The spec repository's header image is in the store with its recorded size.
    pub spec_image_present: bool,
}

/// One game's metadata work and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDiff {
    /// The fetch due, and the spec's image to store or unrecord.
    pub actions: Vec<Action>,
    /// Its `MetadataStale` condition, while it holds.
    pub stale: Option<Stale>,
    /// When its next fetch is due, when it is not due yet.
    pub next_at: Option<EpochMs>,
}

/// What the diff says of a game whose metadata is stale: its `MetadataStale` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// A stable reason, e.g. `RateLimited`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
}

/// One game's metadata work and staleness: the Steam app and header image the specs want,
/// `obs` observed at `now`; `queued` tells whether a job key is queued already; fetches are
/// `refresh` apart.
pub fn diff_metadata(
    name: &str,
    (steam_app_id, header_image): (Option<u32>, Option<&StoredImage>),
    (obs, now): (Option<&ObservedMetadata>, EpochMs),
    queued: impl Fn(&str) -> bool,
    refresh: Duration,
) -> MetadataDiff {
    let mut out = MetadataDiff::default();
    spec_image(name, header_image, obs, &mut out.actions);
    let Some(app_id) = steam_app_id else {
        return out;
    };
    let due = due_at(name, app_id, obs, refresh);
    if now >= due {
        let fetch = Action::Metadata {
            game: name.to_owned(),
            app_id,
            due,
        };
        if !jobs::key(&fetch).is_some_and(|key| queued(&key)) {
            out.actions.push(fetch);
        }
    } else {
        out.next_at = Some(due);
    }
    out.stale = obs.and_then(|obs| stale(app_id, obs));
    out
}

/// The earlier of two times, either of which may be missing.
pub fn earliest(a: Option<EpochMs>, b: Option<EpochMs>) -> Option<EpochMs> {
    a.into_iter().chain(b).min()
}

/// The spec repository's header image: stored and recorded when it is not, unrecorded when
/// the specs no longer have one.
fn spec_image(
    name: &str,
    wanted: Option<&StoredImage>,
    obs: Option<&ObservedMetadata>,
    out: &mut Vec<Action>,
) {
    let recorded = obs.and_then(|obs| obs.row.spec_image.as_ref());
    match wanted {
        Some(wanted) => {
            let in_place =
                recorded == Some(wanted) && obs.is_some_and(|obs| obs.spec_image_present);
            if !in_place {
                out.push(Action::SpecImage {
                    game: name.to_owned(),
                    address: Some(wanted.address.clone()),
                });
            }
        }
        None if recorded.is_some() => out.push(Action::SpecImage {
            game: name.to_owned(),
            address: None,
        }),
        None => {}
    }
}

/// When the game's metadata is next due to be fetched; 0 is "now".
fn due_at(name: &str, app_id: u32, obs: Option<&ObservedMetadata>, refresh: Duration) -> EpochMs {
    let Some(obs) = obs else { return 0 };
    let Some(attempt) = &obs.row.attempt else {
        return 0;
    };
    if attempt.app_id != i64::from(app_id) {
        return 0;
    }
    if attempt.failures > 0 {
        return attempt.retry_at.unwrap_or(attempt.at);
    }
    if obs.row.steam_image.is_some() && !obs.steam_image_present {
        return 0;
    }
    let fetched_at = obs
        .row
        .fetched
        .as_ref()
        .map_or(attempt.at, |fetched| fetched.fetched_at);
    fetched_at.saturating_add(jittered(refresh, name, fetched_at))
}

/// `refresh` ±10 %, the same for the same game and fetch time.
fn jittered(refresh: Duration, name: &str, fetched_at: EpochMs) -> i64 {
    let refresh_ms = i64::try_from(refresh.as_millis()).unwrap_or(i64::MAX);
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let hash = name
        .bytes()
        .chain(fetched_at.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let per_mille = 900 + i64::try_from(hash % 201).unwrap_or(0);
    refresh_ms / 1000 * per_mille
}

/// The game's `MetadataStale` condition while the latest tries for `app_id` failed.
fn stale(app_id: u32, obs: &ObservedMetadata) -> Option<Stale> {
    let attempt = obs.row.attempt.as_ref()?;
    if attempt.app_id != i64::from(app_id) || attempt.failures == 0 {
        return None;
    }
    let error = attempt
        .last_error
        .as_deref()
        .unwrap_or("Failed: unknown error");
    let (reason, why) = error.split_once(": ").unwrap_or(("Failed", error));
    let tries = if attempt.failures == 1 {
        "the last try".to_owned()
    } else {
        format!("{} tries in a row", attempt.failures)
    };
    let shown = match &obs.row.fetched {
        Some(fetched) if fetched.app_id == i64::from(app_id) => format!(
            "the metadata fetched at {} is shown meanwhile",
            utc_minute(fetched.fetched_at)
        ),
        Some(fetched) => format!(
            "the metadata of app {} fetched at {} is shown meanwhile",
            fetched.app_id,
            utc_minute(fetched.fetched_at)
        ),
        None => "no metadata is shown yet".to_owned(),
    };
    let next = attempt.retry_at.map_or_else(String::new, |at| {
        format!("; next try at {}", utc_minute(at))
    });
    Some(Stale {
        reason: reason.to_owned(),
        message: format!("fetching app {app_id} failed ({tries}): {why}; {shown}{next}"),
    })
}
