//! The API's configuration: what `mistd` passes to [`crate::router`] besides the database.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mist_db::Db;
use mist_wire::status::StatusReport;

use crate::clientaddr::TrustedProxy;
use crate::secret::JwtSecret;

/// The issuer (`iss`) of the tokens this API makes and accepts, unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "mist";

/// How long a login token is valid, unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Produces the status report (what `mistd status --json` prints) from the database.
///
/// The report is made by the reconciler's crate, which this crate must not depend on, so the
/// server passes the function in. The error is logged, never sent.
pub type StatusSource = Arc<
    dyn Fn(Db) -> Pin<Box<dyn Future<Output = Result<StatusReport, StatusSourceError>> + Send>>
        + Send
        + Sync,
>;

/// Why a [`StatusSource`] could not make the report.
pub type StatusSourceError = Box<dyn std::error::Error + Send + Sync>;

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
    /// The reverse proxies whose `X-Forwarded-For` or `Forwarded` header names the client
    /// (see [`crate::clientaddr`]); from any other peer the headers are ignored.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// A read-write handle on the database where failed logins are counted, shared by every
    /// replica. `None` counts them through the handle given to [`crate::router`], which then
    /// must be writable: through a read-only handle every login fails with `500`.
    pub login_store: Option<Db>,
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
    /// Failed logins for one user from one client address in [`Limits::login_window`] before
    /// that address's further attempts for that user are refused with `429` until the window
    /// ends.
    pub login_max_failures: u32,
    /// Failed logins from one client address, whatever the user names, before its further
    /// attempts are refused.
    pub login_max_client_failures: u32,
    /// Failed logins for one user from all addresses together before the user's further
    /// attempts are refused from every address that has failed for it in the window. An
    /// address that has not still gets its password checked: the ceiling slows a spread-out
    /// attack without locking the user out.
    pub login_max_user_failures: u32,
    /// The window of the login limits; each count's window starts at its first failure.
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
            login_max_client_failures: 30,
            login_max_user_failures: 100,
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
    /// [`DEFAULT_ISSUER`], default [`Limits`], and no NAS, artifact store, status source,
    /// trusted proxy or separate login store.
    pub fn new(jwt_secret: JwtSecret) -> ApiConfig {
        ApiConfig {
            nas_root: None,
            artifacts_dir: None,
            jwt_secret,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            issuer: DEFAULT_ISSUER.to_owned(),
            status: None,
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            login_store: None,
        }
    }
}
