//! `GET /v1/games/{game}/image/{digest}`: a game's header image.
//!
//! The image is the one the catalog shows for the game ([`GameView`]): the spec's, else
//! Steam's, downloaded by the reconciler into the artifact store, so friends never reach
//! Steam. It obeys the game's access exactly: a game the viewer may not see, a digest that is
//! not the game's image now, and a game without one all answer the same `404`. The digest in
//! the path makes the URL immutable, so the answer carries a strong entity tag (the digest)
//! and may be cached for a year; a changed image is a new URL.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use mist_wire::error::ErrorBody;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::artifacts::{StoreFile, serve_artifact};
use crate::http::context::ApiContext;
use crate::http::error::Error;
use crate::http::extractor::AuthUser;
use crate::http::games::visible_game;
use crate::http::gameview::GameView;

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new().route("/v1/games/{game}/image/{digest}", get(get_image))
}

/// The path of a game's header image.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ImagePath {
    /// The game's name.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    game: String,
    /// The image's content address, `blake3:<64 lowercase hex digits>`, as the game's
    /// `headerImage.url` gives it.
    #[param(pattern = r"^blake3:[0-9a-f]{64}$")]
    digest: String,
}

/// Downloads a game's header image (PNG, JPEG or WebP).
#[utoipa::path(
    get,
    path = "/v1/games/{game}/image/{digest}",
    tag = "catalog",
    params(ImagePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The image",
         content(
             (crate::http::artifacts::Binary = "image/png"),
             (crate::http::artifacts::Binary = "image/jpeg"),
             (crate::http::artifacts::Binary = "image/webp"),
         )),
        (status = 206, description = "Part of the image",
         content(
             (crate::http::artifacts::Binary = "image/png"),
             (crate::http::artifacts::Binary = "image/jpeg"),
             (crate::http::artifacts::Binary = "image/webp"),
         )),
        (status = 304, description = "Not modified: the client's copy is this image"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such game or image, or hidden", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 503, description = "The artifact store is not available", body = ErrorBody),
    )
)]
pub(crate) async fn get_image(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<ImagePath>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let game = visible_game(&catalog, &viewer, &path.game)?;
    let image = GameView::of(game, catalog.metadata_of(&game.name))
        .header_image
        .filter(|image| image.digest == path.digest)
        .ok_or(Error::NotFound)?;
    let store_path =
        mist_db::state::artifact_relative_path(&image.digest).ok_or(Error::NotFound)?;
    let file = StoreFile {
        address: &image.digest,
        size: image.size,
        path: &store_path,
    };
    serve_artifact(&ctx, file, &headers, &image.content_type).await
}
