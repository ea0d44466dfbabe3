//! Mist's read API: what friends and `mistpipe` see of the state the reconciler produced.
//!
//! The principal function in this crate is [`router`], which builds the axum [`Router`] of
//! everything under `/v1` from a read-only [`Db`] handle and an [`ApiConfig`]. `mistd` merges
//! it next to its operations routes. Newcomers should start there, then read `http/mod.rs`
//! (the shared state and how the resources are put together) and [`route`], the pure update
//! planner.
//!
//! The routes (the OpenAPI document at `/v1/openapi.json` is the reference):
//!
//! - `POST /v1/auth/login`: an argon2id password check against the `users` table, answered
//!   with an HS256 JWT; failures are counted in the database per client address, per user and
//!   address, and per user (`ratelimit.rs`), the client's address read through trusted
//!   proxies ([`clientaddr`]).
//! - `GET /v1/games`, `/v1/games/{game}`, `/v1/games/{game}/versions/{version}/manifest`: the
//!   catalog. Friends see public games and private games granted to them, and only Ready
//!   versions; anything else is a 404, exactly as for a game that does not exist.
//! - `GET /v1/games/{game}/update?from=V&to=W`: an update plan from [`route::plan`].
//! - `GET /v1/artifacts/{digest}`: content-addressed downloads with `Range`, `ETag`,
//!   `If-None-Match`, `If-Range` and immutable caching.
//! - `POST /v1/games/{game}/versions/{version}/repair`: rsync repair deltas for damaged files.
//! - `GET /v1/status`, `GET /v1/events` (Server-Sent Events), `GET /v1/users` (admins).
//! - The pages (`pages/`): the sign-in form (`/login`, `/logout`) that sets a session cookie
//!   holding the same token, the store (`/`, `/games/{game}`), the admins' status board
//!   (`/admin`, live from `/v1/events`) and the embedded assets
//!   (`/assets/{name}`), rendered from `templates/pages/` over the same data as `/v1`.
//!
//! **Architecture Invariant:** the API never writes desired or observed state. It reads the
//! database through whatever handle it is given (`mistd` gives the `api` role a read-only
//! one), and its one write to the database is the failed-login counts in their own table,
//! through [`config::ApiConfig::login_store`]. It reads the NAS without writing to it, and
//! writes one file in its life: the generated JWT secret in the data folder
//! ([`secret::JwtSecret::load_or_generate`]).
//!
//! **Architecture Invariant:** no path from a request reaches the file system. A download
//! names an artifact by its content address, which must be `blake3:<64 lowercase hex>` and
//! recorded in the database; the file opened is the one the database records for it, below
//! the artifact store. A repair names files by their manifest paths, and a file's bytes are
//! used only when their BLAKE3 matches the manifest.
#![deny(missing_docs)]

mod access;
pub mod clientaddr;
pub mod config;
mod http;
mod pages;
mod range;
mod ratelimit;
pub mod route;
pub mod secret;
mod token;

use axum::Router;
use mist_db::Db;

use crate::config::ApiConfig;

/// The read API under `/v1`, with its request tracing, body-size and time limits. It only
/// reads `db`; give it a handle from [`Db::connect_read_only`] where the role allows.
///
/// Client addresses for the login limits come from axum's `ConnectInfo<SocketAddr>` (and,
/// from a peer in [`config::ApiConfig::trusted_proxies`], its forwarding headers), so serve
/// the router with `into_make_service_with_connect_info::<SocketAddr>()`; without it every
/// client shares one address bucket.
pub fn router(db: Db, config: ApiConfig) -> Router {
    http::api_router(db, config)
}

/// The OpenAPI document of the API, as served at `/v1/openapi.json`.
pub fn openapi_json() -> serde_json::Value {
    http::openapi::document()
}
