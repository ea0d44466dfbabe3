//! The static assets, embedded in the binary and served under content-hashed names
//! (`/assets/mist.<hash>.css`), so they can be cached for ever: a new build with other bytes
//! has other names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    /// The name it is served under: stem, hash, extension.
    pub(crate) name: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The style sheet and the board's script.
pub(crate) struct Assets {
    pub(crate) css: Asset,
    pub(crate) js: Asset,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: Asset::new(
        "mist",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../../templates/pages/assets/mist.css"),
    ),
    js: Asset::new(
        "board",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../templates/pages/assets/board.js"),
    ),
});

/// The embedded assets.
pub(crate) fn assets() -> &'static Assets {
    &ASSETS
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        let hash = blake3::hash(bytes).to_hex();
        Asset {
            name: format!("{stem}.{}.{extension}", &hash.as_str()[..16]),
            content_type,
            bytes,
        }
    }

    /// The path the pages link to.
    pub(crate) fn path(&self) -> String {
        format!("/assets/{}", self.name)
    }
}

/// `GET /assets/{name}`: an embedded file by its hashed name, cached for a year.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let assets = assets();
    let Some(asset) = [&assets.css, &assets.js]
        .into_iter()
        .find(|asset| asset.name == name)
    else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
