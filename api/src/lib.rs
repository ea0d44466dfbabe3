//! Mist's read API: what friends and `mistpipe` see of the state the reconciler produced.
//!
//! The principal function in this crate is [`router`], which builds the axum [`Router`] of
//! everything under `/v1` from a read-only [`Db`] handle and an [`ApiConfig`]. `mistd` merges
//! it next to its operations routes. Newcomers should start there, then read `http/mod.rs`
//! (the shared state and how the resources are put together) and [`plan`], the pure update
//! planner.
//!
//! The routes (the OpenAPI document at `/v1/openapi.json` is the reference):
//!
//! - `POST /v1/auth/login`: an argon2id password check against the `users` table, answered
//!   with an HS256 JWT; failures are rate-limited per client and per user name.
//! - `GET /v1/games`, `/v1/games/{game}`, `/v1/games/{game}/versions/{version}/manifest`: the
//!   catalog. Friends see public games and private games granted to them, and only Ready
//!   versions; anything else is a 404, exactly as for a game that does not exist.
//! - `GET /v1/games/{game}/update?from=V&to=W`: an update plan from [`plan::plan`].
//! - `GET /v1/artifacts/{digest}`: content-addressed downloads with `Range`, `ETag`,
//!   `If-None-Match`, `If-Range` and immutable caching.
//! - `POST /v1/games/{game}/versions/{version}/repair`: rsync repair deltas for damaged files.
//! - `GET /v1/status`, `GET /v1/events` (Server-Sent Events), `GET /v1/users` (admins).
//!
//! **Architecture Invariant:** the API never writes desired or observed state. It reads the
//! database through whatever handle it is given (`mistd` gives the `api` role a read-only
//! one, and no code here calls a writing method), reads the NAS without writing to it, and
//! writes one file in its life: the generated JWT secret in the data folder
//! ([`JwtSecret::load_or_generate`]).
//!
//! **Architecture Invariant:** no path from a request reaches the file system. A download
//! names an artifact by its content address, which must be `blake3:<64 lowercase hex>` and
//! recorded in the database; the file opened is the one the database records for it, below
//! the artifact store. A repair names files by their manifest paths, and a file's bytes are
//! used only when their BLAKE3 matches the manifest.
#![deny(missing_docs)]

mod access;
mod http;
pub mod plan;
mod range;
mod ratelimit;
mod secret;
mod token;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mist_db::Db;

pub use secret::{JwtSecret, MIN_SECRET_LEN, SecretError};

/// The issuer (`iss`) of the tokens this API makes and accepts, unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "mist";

/// How long a login token is valid, unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The file in the data folder that holds a generated JWT secret.
pub const JWT_SECRET_FILE_NAME: &str = "jwt-secret";

/// Produces the status report (the JSON of `mistd status --json`) from the database.
///
/// The report is made by the reconciler's crate, which this crate must not depend on, so the
/// server passes the function in. `Err` carries a message for the log only.
pub type StatusSource = Arc<
    dyn Fn(Db) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send>>
        + Send
        + Sync,
>;

/// Everything the API needs besides the database.
#[derive(Clone)]
pub struct ApiConfig {
    /// The NAS root. Builds below it are read (never written) to answer repair requests;
    /// `None` answers them with `503`.
    pub nas_root: Option<PathBuf>,
    /// The artifact store, `<nas>/.mist/artifacts`; the `path` the database records for each
    /// artifact is relative to it. `None` answers downloads with `503`.
    pub artifacts_dir: Option<PathBuf>,
    /// The key that signs and checks login tokens.
    pub jwt_secret: JwtSecret,
    /// How long a token is valid after login.
    pub token_lifetime: Duration,
    /// The `iss` claim tokens carry and must carry.
    pub issuer: String,
    /// The status report behind `/v1/status` and `/v1/events`; `None` answers them with `503`.
    pub status: Option<StatusSource>,
    /// Sizes, rates and times.
    pub limits: Limits,
}

/// The API's limits. [`Limits::default`] is what `mistd` serves with.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body, except for repair requests.
    pub max_body_bytes: usize,
    /// The largest repair request body (the rsync signatures of a client's damaged files).
    pub max_repair_body_bytes: usize,
    /// The largest file a repair request may ask for; larger files are fetched in a pack.
    pub max_repair_file_bytes: u64,
    /// How long a request may take to produce its response head. Downloads and event
    /// streams stream their bodies after it, for as long as they need.
    pub request_timeout: Duration,
    /// Failed logins a client address, or a user name, may have in [`Limits::login_window`]
    /// before further attempts are refused with `429` until the window ends.
    pub login_max_failures: u32,
    /// The window of [`Limits::login_max_failures`].
    pub login_window: Duration,
    /// Password checks run at once (each costs an argon2id hash: memory and CPU).
    pub max_concurrent_logins: usize,
    /// Repair requests computed at once (each reads files and runs fast_rsync).
    pub max_concurrent_repairs: usize,
    /// Event streams open at once.
    pub max_event_streams: usize,
    /// How often an event stream looks at the status for changes, and re-checks its user.
    pub events_poll_interval: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 64 * 1024,
            max_repair_body_bytes: 16 * 1024 * 1024,
            max_repair_file_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            login_max_failures: 10,
            login_window: Duration::from_secs(60),
            max_concurrent_logins: 2,
            max_concurrent_repairs: 2,
            max_event_streams: 64,
            events_poll_interval: Duration::from_secs(1),
        }
    }
}

impl ApiConfig {
    /// A configuration with the defaults: the given secret, [`DEFAULT_TOKEN_LIFETIME`],
    /// [`DEFAULT_ISSUER`], default [`Limits`], and no NAS, artifact store or status source.
    pub fn new(jwt_secret: JwtSecret) -> ApiConfig {
        ApiConfig {
            nas_root: None,
            artifacts_dir: None,
            jwt_secret,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            issuer: DEFAULT_ISSUER.to_owned(),
            status: None,
            limits: Limits::default(),
        }
    }
}

/// The read API under `/v1`, with its request tracing, body-size and time limits. It only
/// reads `db`; give it a handle from [`Db::connect_read_only`] where the role allows.
///
/// Client addresses for the login rate limit come from axum's `ConnectInfo<SocketAddr>`, so
/// serve the router with `into_make_service_with_connect_info::<SocketAddr>()`; without it
/// every client shares one address bucket.
pub fn router(db: Db, config: ApiConfig) -> Router {
    http::api_router(db, config)
}

/// The OpenAPI document of the API, as served at `/v1/openapi.json`.
pub fn openapi_json() -> serde_json::Value {
    http::openapi::document()
}
