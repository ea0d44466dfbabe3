//! The HTTP side: [`api_router`] builds the [`ApiContext`] every handler shares, merges each
//! resource's `router()` and puts the limits and tracing around them.

pub(crate) mod artifacts;
pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod extractor;
pub(crate) mod games;
pub(crate) mod gameview;
pub(crate) mod images;
pub(crate) mod jobs;
pub(crate) mod openapi;
pub(crate) mod repair;
pub(crate) mod status;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use mist_db::Db;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::ApiConfig;
use crate::http::catalog::CatalogCache;
use crate::http::context::ApiContext;
use crate::ratelimit::LoginLimiter;
use crate::token::TokenKeys;

/// The whole API with its state, limits and tracing.
pub(crate) fn api_router(db: Db, config: ApiConfig) -> Router {
    let limits = config.limits.clone();
    let login_store = config.login_store.clone().unwrap_or_else(|| db.clone());
    let ctx = Arc::new(ApiContext {
        db,
        tokens: TokenKeys::new(&config.jwt_secret, &config.issuer, config.token_lifetime),
        logins: LoginLimiter::new(login_store, limits.clone()),
        login_permits: Semaphore::new(limits.max_concurrent_logins.max(1)),
        repair_permits: Semaphore::new(limits.max_concurrent_repairs.max(1)),
        event_stream_permits: Arc::new(Semaphore::new(limits.max_event_streams.max(1))),
        dummy_hash: OnceLock::new(),
        catalog: CatalogCache::default(),
        board: Default::default(),
        game_details: Default::default(),
        config,
    });
    // The dummy hash costs one argon2id hash: make it now, so the first login of an unknown
    // user does not take longer than any other.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let ctx = ctx.clone();
        runtime.spawn_blocking(move || {
            ctx.dummy_hash.get_or_init(auth::make_dummy_hash);
        });
    }
    let small_bodies = Router::new()
        .merge(auth::router())
        .merge(games::router())
        .merge(images::router())
        .merge(artifacts::router())
        .merge(status::router())
        .merge(jobs::router())
        .merge(openapi::router())
        .merge(crate::pages::router())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes));
    let repair = repair::router()
        .layer(DefaultBodyLimit::max(limits.max_repair_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_repair_body_bytes));
    Router::new()
        .merge(small_bodies)
        .merge(repair)
        // The timeout covers producing the response head; downloads and event streams then
        // stream their bodies for as long as they need.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(ctx)
}
