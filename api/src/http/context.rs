//! [`ApiContext`], the state every handler shares, and the strict parsers of the names in
//! paths and queries.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use mist_db::Db;
use mist_wire::catalog::GameDetail;
use tokio::sync::Semaphore;

use crate::config::ApiConfig;
use crate::http::catalog::{CatalogCache, SeqCache};
use crate::http::error::Error;
use crate::pages::board::data::BoardData;
use crate::ratelimit::LoginLimiter;
use crate::token::TokenKeys;

/// What every handler shares.
pub(crate) struct ApiContext {
    /// The database; only read.
    pub(crate) db: Db,
    /// The configuration.
    pub(crate) config: ApiConfig,
    /// Signs and checks tokens.
    pub(crate) tokens: TokenKeys,
    /// The login limits, counted in the database.
    pub(crate) logins: LoginLimiter,
    /// Password checks running at once.
    pub(crate) login_permits: Semaphore,
    /// Repairs running at once.
    pub(crate) repair_permits: Semaphore,
    /// Event streams open at once; a stream holds its permit until it ends.
    pub(crate) event_stream_permits: Arc<Semaphore>,
    /// A hash to check passwords of unknown users against, so that they take as long.
    pub(crate) dummy_hash: OnceLock<String>,
    /// Users, games and versions, reloaded whenever the database changed.
    pub(crate) catalog: CatalogCache,
    /// What the status board shows, reloaded whenever the database changed.
    pub(crate) board: SeqCache<BoardData>,
    /// The game pages' details read since the database last changed, by game and by whether
    /// the viewer is an admin (what a detail holds depends on nothing else): emptied whenever
    /// the database changed, so while it stands still a game page reads only the counter.
    pub(crate) game_details: SeqCache<GameDetails>,
}

/// Game details by game name and whether the viewer is an admin.
pub(crate) type GameDetails = std::sync::Mutex<HashMap<(String, bool), Arc<GameDetail>>>;

/// Parses a game name from a path or query, strictly: anything that is not a valid name is a
/// `404`, like a game that does not exist (a name can never reach the file system anyway).
pub(crate) fn game_name(name: &str) -> Result<&str, Error> {
    mist_specs::check::check_name(name)
        .map(|()| name)
        .map_err(|_| Error::NotFound)
}

/// Parses a version name, strictly, as [`game_name`].
pub(crate) fn version_name(name: &str) -> Result<&str, Error> {
    mist_specs::check::check_version_name(name)
        .map(|()| name)
        .map_err(|_| Error::NotFound)
}
