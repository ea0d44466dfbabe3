//! The pages a browser sees: the store (`/`, `/games/{game}`) for friends, the status board
//! (`/admin`) for admins, and the sign-in form that sets the session cookie.
//!
//! Pages are rendered here from the minijinja templates in `templates/pages/`, embedded in
//! the binary, over the same typed data the API serves (`mist-wire` bodies, made by the same
//! functions as `/v1`). They work without JavaScript; one external script (`board.js`) makes
//! the board follow `/v1/events`. Every page is answered with a Content-Security-Policy that
//! allows no inline script or style.

pub(crate) mod assets;
pub(crate) mod board;
pub(crate) mod render;
pub(crate) mod session;
pub(crate) mod store;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::http::context::ApiContext;

/// Every page, the sign-in and sign-out forms, and the static assets.
pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/", get(store::store))
        .route("/games/{game}", get(store::game_page))
        .route("/admin", get(board::board))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{name}", get(assets::asset))
}
