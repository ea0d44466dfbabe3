//! The store: `/` (the games the viewer may see, as cards) and `/games/{game}` (a game's
//! description, its versions with notes, dates and sizes, and how to get it).
//!
//! Both render what `GET /v1/games` and `GET /v1/games/{game}` answer, made by the same
//! functions, so a page never shows what the API would hide.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mist_wire::catalog::{GameDetail, GameSummary, VersionDetail, VersionState};
use serde::Serialize;

use crate::http::context::ApiContext;
use crate::http::games::{game_detail, game_list, visible_game};
use crate::pages::render::{PageError, page};
use crate::pages::session::PageUser;

/// How many colours the generated cover placeholders cycle through (`cover-0` …).
const N_COVER_HUES: u32 = 8;

/// A game's card in the store.
#[derive(Serialize)]
struct Card<'a> {
    name: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    private: bool,
    latest: Option<&'a str>,
    /// The header image's URL; without one, the generated `cover` shows.
    image: Option<&'a str>,
    cover: Cover,
}

/// The generated cover of a game without a header image: its initials on a colour chosen by
/// its name.
#[derive(Serialize)]
struct Cover {
    initials: String,
    hue: u32,
}

impl Cover {
    fn of(name: &str, title: &str) -> Cover {
        let initials: String = title
            .split_whitespace()
            .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
            .take(2)
            .flat_map(char::to_uppercase)
            .collect();
        // FNV-1a: stable across builds and platforms, unlike the std hasher.
        let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        Cover {
            initials: if initials.is_empty() {
                "?".to_owned()
            } else {
                initials
            },
            hue: hash % N_COVER_HUES,
        }
    }
}

/// The card of a game: a [`GameSummary`] or a [`GameDetail`], whose shared fields have the
/// same names (two wire types, one mapping).
macro_rules! card_of {
    ($game:expr) => {{
        let game = $game;
        Card {
            name: &game.name,
            title: &game.title,
            description: game.description.as_deref(),
            private: game.private,
            latest: game.latest.as_deref(),
            image: game.header_image.as_ref().map(|image| image.url.as_str()),
            cover: Cover::of(&game.name, &game.title),
        }
    }};
}

impl<'a> Card<'a> {
    fn of(game: &'a GameSummary) -> Card<'a> {
        card_of!(game)
    }

    fn of_detail(game: &'a GameDetail) -> Card<'a> {
        card_of!(game)
    }
}

/// The store page's data.
#[derive(Serialize)]
struct StorePage<'a> {
    games: Vec<Card<'a>>,
}

/// `GET /`: the games the viewer may see.
pub(crate) async fn store(user: PageUser) -> Result<Response, PageError> {
    let list = game_list(&user.catalog, &user.viewer);
    let games = list.games.iter().map(Card::of).collect();
    page(
        StatusCode::OK,
        "store.html",
        Some(&user.viewer),
        StorePage { games },
    )
}

/// The game page's data.
#[derive(Serialize)]
struct GamePage<'a> {
    /// What the store's card shows.
    #[serde(flatten)]
    card: Card<'a>,
    /// `mist install <game>`.
    install_command: String,
    /// The desktop app's link to the game, `mist://games/<game>`.
    app_link: String,
    /// Newest first.
    versions: Vec<VersionRow<'a>>,
}

/// A version in the game page's history.
#[derive(Serialize)]
struct VersionRow<'a> {
    name: &'a str,
    notes: Option<&'a str>,
    released_at: Option<i64>,
    /// Bytes of the full download.
    size: Option<u64>,
    latest: bool,
    /// Admins only: the version's state, e.g. `stalled`.
    state: Option<&'static str>,
}

impl<'a> VersionRow<'a> {
    fn of(version: &'a VersionDetail, latest: Option<&str>) -> VersionRow<'a> {
        VersionRow {
            name: &version.name,
            notes: version.notes.as_deref(),
            released_at: version.released_at,
            size: version.pack.as_ref().map(|pack| pack.size),
            latest: latest == Some(version.name.as_str()),
            state: version.state.map(state_name),
        }
    }
}

fn state_name(state: VersionState) -> &'static str {
    match state {
        VersionState::Pending => "pending",
        VersionState::Ingested => "ingested",
        VersionState::Ready => "ready",
        VersionState::Stalled => "stalled",
        VersionState::Retired => "retired",
    }
}

/// `GET /games/{game}`: one game; a `404` page when it does not exist or is hidden.
pub(crate) async fn game_page(
    State(ctx): State<Arc<ApiContext>>,
    user: PageUser,
    Path(game): Path<String>,
) -> Result<Response, PageError> {
    // Visibility is the catalog's (cached) answer; the detail comes from the cache when the
    // counter has not moved since another viewer of the same role read it.
    visible_game(&user.catalog, &user.viewer, &game)?;
    let details = ctx
        .game_details
        .get_at(user.catalog.change_seq(), || async {
            Ok::<_, PageError>(Default::default())
        })
        .await?;
    let key = (game, user.viewer.is_admin());
    let cached = details
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get(&key)
        .cloned();
    let detail: Arc<GameDetail> = match cached {
        Some(detail) => detail,
        None => {
            let detail = Arc::new(game_detail(&ctx, &user.catalog, &user.viewer, &key.0).await?);
            details
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert(key, detail.clone());
            detail
        }
    };
    let latest = detail.latest.as_deref();
    let data = GamePage {
        card: Card::of_detail(&detail),
        install_command: format!("mist install {}", detail.name),
        app_link: format!("mist://games/{}", detail.name),
        versions: detail
            .versions
            .iter()
            .rev()
            .map(|version| VersionRow::of(version, latest))
            .collect(),
    };
    page(StatusCode::OK, "game.html", Some(&user.viewer), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_show_initials_and_a_stable_hue() {
        let cover = Cover::of("starfall", "Starfall Tactics");
        assert_eq!(cover.initials, "ST");
        assert_eq!(cover.hue, Cover::of("starfall", "Other").hue);
        assert_eq!(Cover::of("x", "the 3rd (remastered)").initials, "T3");
        assert_eq!(Cover::of("x", "  ").initials, "?");
        assert!(Cover::of("y", "Ωmega").initials == "Ω");
    }
}
