//! `GET /v1/status` and `GET /v1/events`.
//!
//! Admins get the whole status report (`mistd status --json`: the spec commits and their
//! errors, every game's versions with conditions and progress, the queue). Friends get, for
//! the games they see, which versions are Ready — nothing about the specs, the queue or
//! versions they may not see.
//!
//! The event stream looks at that same view every
//! [`crate::config::Limits::events_poll_interval`] and sends it as a `status` event whenever it
//! changed (and once at the start); it also checks the user each time, and ends when they are
//! disabled or removed.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use mist_wire::error::ErrorBody;
use mist_wire::status::{STATUS_EVENT, StatusReport, StatusView};
use tokio::sync::OwnedSemaphorePermit;

use crate::access::Viewer;
use crate::http::catalog::Catalog;
use crate::http::context::ApiContext;
use crate::http::error::{Error, InternalError};
use crate::http::extractor::{AuthUser, authorize};
use mist_platform::error::ErrorChain;

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/v1/status", get(get_status))
        .route("/v1/events", get(get_events))
}

/// Shows the status: everything for admins, the readiness of their games for friends.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The status report (admins) or the Ready versions of \
         the caller's games (friends)", body = StatusView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "No status source", body = ErrorBody),
    )
)]
pub(crate) async fn get_status(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
) -> Result<Json<StatusView>, Error> {
    Ok(Json(status_view(&ctx, &catalog, &viewer).await?))
}

/// Streams `status` events (Server-Sent Events) whenever the caller's status view changes.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream; each `status` event holds the view of \
         `/v1/status`", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 503, description = "No status source, or too many streams", body = ErrorBody),
    )
)]
pub(crate) async fn get_events(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, _): AuthUser,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    if ctx.config.status.is_none() {
        return Err(Error::Unavailable("this server has no status source"));
    }
    let permit = ctx
        .event_stream_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::Unavailable("too many event streams are open"))?;
    let stream = futures_util::stream::unfold(
        StreamState {
            ctx,
            viewer,
            last: None,
            first: true,
            _permit: permit,
        },
        next_event,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct StreamState {
    ctx: Arc<ApiContext>,
    viewer: Viewer,
    last: Option<String>,
    first: bool,
    _permit: OwnedSemaphorePermit,
}

/// Waits for the next change of the view; `None` ends the stream.
async fn next_event(mut state: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    loop {
        if !state.first {
            tokio::time::sleep(state.ctx.config.limits.events_poll_interval).await;
        }
        state.first = false;
        let catalog = match state.ctx.catalog.get(&state.ctx.db).await {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "event stream: cannot check the user");
                continue;
            }
        };
        let role = state.viewer.role.as_str();
        if authorize(&catalog, &state.viewer.name, Some(role)).is_err() {
            return None;
        }
        let view = match status_view(&state.ctx, &catalog, &state.viewer).await {
            Ok(view) => match serde_json::to_string(&view) {
                Ok(view) => view,
                Err(error) => {
                    tracing::warn!(%error, "event stream: cannot serialize the status");
                    continue;
                }
            },
            Err(error) => {
                tracing::warn!(error = %error, "event stream: cannot read the status");
                continue;
            }
        };
        if state.last.as_deref() != Some(view.as_str()) {
            let event = Event::default().event(STATUS_EVENT).data(&view);
            state.last = Some(view);
            return Some((Ok(event), state));
        }
    }
}

/// The whole status report, from the configured status source.
pub(crate) async fn status_report(ctx: &ApiContext) -> Result<StatusReport, Error> {
    let source = ctx
        .config
        .status
        .as_ref()
        .ok_or(Error::Unavailable("this server has no status source"))?;
    let report = source(ctx.db.clone()).await.map_err(|error| {
        InternalError::Other(format!(
            "cannot read the status: {}",
            ErrorChain(error.as_ref())
        ))
    })?;
    Ok(report)
}

/// The status as `viewer` may see it.
async fn status_view(
    ctx: &ApiContext,
    catalog: &Catalog,
    viewer: &Viewer,
) -> Result<StatusView, Error> {
    let report = status_report(ctx).await?;
    if viewer.is_admin() {
        return Ok(StatusView::Admin(report));
    }
    let visible: HashSet<&str> = catalog
        .games()
        .iter()
        .filter(|game| viewer.sees_game(game))
        .map(|game| game.name.as_str())
        .collect();
    Ok(StatusView::Friend(
        report.friend_view(|game| visible.contains(game)),
    ))
}
