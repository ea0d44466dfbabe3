//! What the catalog shows of a game beyond its versions: [`GameView`], from the game's spec
//! and its catalog metadata (the store's, pulled by the reconciler from Steam, and the header
//! images in the artifact store).
//!
//! The spec wins: its `description` over Steam's, its `headerImage` over Steam's header
//! image. Steam's metadata shows only while the spec has a `steamAppId` (the last good fetch,
//! even while later fetches fail, or while a new id is being fetched).

use mist_db::metadata::{GameMetadata, StoredImage};
use mist_db::state::Game;
use mist_wire::catalog::{ImageLink, LaunchInfo, StoreMetadata};
use mist_wire::digest::image_path;

/// What the catalog shows of a game's spec and metadata. A spec that does not parse (written
/// by another version of Mist) shows the name as the title rather than failing the catalog.
pub(crate) struct GameView {
    pub(crate) title: String,
    pub(crate) description: Option<String>,
    pub(crate) launch: Option<LaunchInfo>,
    pub(crate) store: Option<StoreMetadata>,
    pub(crate) header_image: Option<ImageLink>,
}

impl GameView {
    /// The view of `game` with its `metadata`.
    pub(crate) fn of(game: &Game, metadata: Option<&GameMetadata>) -> GameView {
        let spec = match serde_json::from_str::<mist_specs::model::GameSpec>(&game.spec_json) {
            Ok(spec) => spec,
            Err(error) => {
                tracing::warn!(game = %game.name, %error, "the game's stored spec does not parse");
                return GameView {
                    title: game.name.clone(),
                    description: None,
                    launch: None,
                    store: None,
                    header_image: None,
                };
            }
        };
        // Steam's part counts only while the spec names an app.
        let steam = metadata.filter(|_| spec.steam_app_id.is_some());
        let fetched = steam.and_then(|metadata| metadata.fetched.as_ref());
        let image = metadata
            .filter(|_| spec.header_image.is_some())
            .and_then(|metadata| metadata.spec_image.as_ref())
            .or_else(|| steam.and_then(|metadata| metadata.steam_image.as_ref()));
        GameView {
            title: spec.title,
            description: spec
                .description
                .or_else(|| fetched.and_then(|fetched| fetched.details.description.clone())),
            launch: spec.launch.map(|launch| LaunchInfo {
                executable: launch.executable,
                args: launch.args,
            }),
            store: fetched.map(|fetched| StoreMetadata {
                steam_app_id: u32::try_from(fetched.app_id).unwrap_or_default(),
                genres: fetched.details.genres.clone(),
                developers: fetched.details.developers.clone(),
                release_date: fetched.details.release_date.clone(),
                fetched_at: fetched.fetched_at,
            }),
            header_image: image.map(|image| image_link(&game.name, image)),
        }
    }
}

/// The link to a game's header image.
fn image_link(game: &str, image: &StoredImage) -> ImageLink {
    ImageLink {
        url: image_path(game, &image.address),
        digest: image.address.clone(),
        size: image.size,
        content_type: image.media_type.clone(),
    }
}
