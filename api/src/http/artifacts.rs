//! `GET /v1/artifacts/{digest}`: content-addressed downloads.
//!
//! The digest is checked to be `blake3:<64 lowercase hex>` before anything else, then looked
//! up in the database; the file opened is the one recorded for it, below the artifact store,
//! opened without following a symlink and checked to be a regular file of the recorded
//! size. So no request can name a path: at worst it names an address that is not recorded.
//!
//! The viewer must see at least one version that uses the artifact (as its manifest or pack,
//! or as the target of a delta edge): a private game's artifacts are as hidden as the game.
//!
//! Artifacts never change, so the entity tag is the digest, conditional and range requests
//! are answered from it alone (`range.rs`), and responses may be cached for a year
//! (`private`: they are not public).

use std::path::{Component, Path as FsPath};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use mist_db::state::{Artifact, is_content_address};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use utoipa::{IntoParams, ToSchema};

use crate::access::Viewer;
use crate::http::catalog::Catalog;
use crate::http::context::ApiContext;
use crate::http::error::{Error, InternalError, io_error};
use crate::http::extractor::AuthUser;
use crate::range::{self, Answer, Conditions};
use mist_wire::error::ErrorBody;

/// `Cache-Control` of every artifact: the bytes behind an address never change.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// How much is read from the file per chunk of the response body.
const CHUNK_BYTES: usize = 256 * 1024;

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new().route("/v1/artifacts/{digest}", get(get_artifact))
}

/// Raw bytes, as the OpenAPI document shows a download's body.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[expect(dead_code, reason = "only describes a body in the OpenAPI document")]
pub(crate) struct Binary(Vec<u8>);

/// The path of an artifact.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ArtifactPath {
    /// The artifact's content address, `blake3:<64 lowercase hex digits>`.
    #[param(pattern = r"^blake3:[0-9a-f]{64}$")]
    digest: String,
}

/// Downloads an artifact (a pack, a delta or a manifest), whole or in part.
#[utoipa::path(
    get,
    path = "/v1/artifacts/{digest}",
    tag = "artifacts",
    params(ArtifactPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The artifact", content_type = "application/octet-stream",
         body = Binary),
        (status = 206, description = "The requested range",
         content_type = "application/octet-stream", body = Binary),
        (status = 304, description = "Not modified: the client's copy is this artifact"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such artifact, or hidden", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 503, description = "The artifact store is not available", body = ErrorBody),
    )
)]
pub(crate) async fn get_artifact(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<ArtifactPath>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    if !is_content_address(&path.digest) {
        return Err(Error::NotFound);
    }
    if !may_download(&ctx, &catalog, &viewer, &path.digest).await? {
        return Err(Error::NotFound);
    }
    let artifact = ctx
        .db
        .artifact(&path.digest)
        .await?
        .ok_or(Error::NotFound)?;
    serve_artifact(
        &ctx,
        (&artifact).into(),
        &headers,
        "application/octet-stream",
    )
    .await
}

/// Whether the viewer sees a version that uses the artifact.
async fn may_download(
    ctx: &ApiContext,
    catalog: &Catalog,
    viewer: &Viewer,
    address: &str,
) -> Result<bool, Error> {
    let uses = ctx.db.artifact_uses(address).await?;
    Ok(uses.iter().any(|artifact_use| {
        viewer.sees_version(artifact_use.state)
            && catalog
                .game(&artifact_use.game)
                .is_some_and(|game| viewer.sees_game(game))
    }))
}

/// A file of the artifact store as the database records it: its content address, size and
/// path below the store.
pub(crate) struct StoreFile<'a> {
    pub(crate) address: &'a str,
    pub(crate) size: u64,
    pub(crate) path: &'a str,
}

impl<'a> From<&'a Artifact> for StoreFile<'a> {
    fn from(artifact: &'a Artifact) -> StoreFile<'a> {
        StoreFile {
            address: &artifact.address,
            size: artifact.size,
            path: &artifact.path,
        }
    }
}

/// Answers a `GET` of a recorded file of the store: `200`, `206`, `304` or `416`, streaming
/// the file.
pub(crate) async fn serve_artifact(
    ctx: &ApiContext,
    artifact: StoreFile<'_>,
    headers: &HeaderMap,
    content_type: &str,
) -> Result<Response, Error> {
    let (mut file, file_path) = open_artifact(ctx, &artifact).await?;
    let len = artifact.size;
    let etag = format!("\"{}\"", artifact.address);
    let header_text = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let conditions = Conditions {
        range: header_text(header::RANGE),
        if_range: header_text(header::IF_RANGE),
        if_none_match: header_text(header::IF_NONE_MATCH),
    };
    let answer = range::answer(conditions, &etag, len);
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, IMMUTABLE)
        .header(header::ACCEPT_RANGES, "bytes");
    let body = match answer {
        Answer::NotModified => {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .map_err(|error| InternalError::Other(error.to_string()).into());
        }
        Answer::Unsatisfiable => return Err(Error::RangeNotSatisfiable { len }),
        Answer::Whole => {
            builder = builder
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, len);
            Body::from_stream(ReaderStream::with_capacity(file, CHUNK_BYTES))
        }
        Answer::Partial { start, end } => {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|error| io_error(file_path.display().to_string(), error))?;
            let n_bytes = end - start + 1;
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_LENGTH, n_bytes)
                .header(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
                        .map_err(|error| InternalError::Other(error.to_string()))?,
                );
            Body::from_stream(ReaderStream::with_capacity(file.take(n_bytes), CHUNK_BYTES))
        }
    };
    builder
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|error| InternalError::Other(error.to_string()).into())
}

/// The recorded file of `artifact`, opened below the store without following a symlink and
/// checked to be a regular file of its recorded size, and its path (for messages).
async fn open_artifact(
    ctx: &ApiContext,
    artifact: &StoreFile<'_>,
) -> Result<(tokio::fs::File, std::path::PathBuf), Error> {
    let artifacts_dir = ctx
        .config
        .artifacts_dir
        .as_deref()
        .ok_or(Error::Unavailable(
            "this server has no artifact store configured",
        ))?;
    if !is_store_relative(artifact.path) {
        return Err(InternalError::Other(format!(
            "artifact {} is recorded at an unsafe path {:?}",
            artifact.address, artifact.path
        ))
        .into());
    }
    let file_path = artifacts_dir.join(artifact.path);
    let opened = {
        let file_path = file_path.clone();
        tokio::task::spawn_blocking(move || mist_platform::fs::open_regular_nofollow(&file_path))
            .await
            .map_err(|error| {
                InternalError::Other(format!("opening an artifact panicked: {error}"))
            })?
    };
    let file = match opened {
        Ok(file) => tokio::fs::File::from_std(file),
        Err(error) => {
            tracing::warn!(path = %file_path.display(), %error, "a recorded artifact cannot be opened");
            return Err(Error::Unavailable(
                "the artifact is not available right now",
            ));
        }
    };
    let metadata = file
        .metadata()
        .await
        .map_err(|error| io_error(file_path.display().to_string(), error))?;
    if !metadata.is_file() || metadata.len() != artifact.size {
        tracing::warn!(
            path = %file_path.display(),
            recorded_size = artifact.size,
            found_size = metadata.len(),
            "a recorded artifact is not a regular file of its recorded size"
        );
        return Err(Error::Unavailable(
            "the artifact is not available right now",
        ));
    }
    Ok((file, file_path))
}

/// Whether a recorded path stays below the store: relative, only plain components.
fn is_store_relative(path: &str) -> bool {
    let path = FsPath::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::is_store_relative;

    #[test]
    fn store_relative_paths() {
        for path in ["ab/abcdef", "x"] {
            assert!(is_store_relative(path), "{path}");
        }
        for path in ["", "/etc/passwd", "../x", "ab/../../x", "./x"] {
            assert!(!is_store_relative(path), "{path}");
        }
    }
}
