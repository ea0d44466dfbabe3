//! `mist list` (the server's catalog with what is installed), `mist info` (one game in
//! detail) and `mist status` (the login and the installed games, from local state only).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mist_wire::catalog::GameDetail;
use serde::Serialize;

use super::{Context, connect};
use crate::state::{self, InstalledGame};

/// A row of `mist list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    /// The game.
    pub name: String,
    /// Its title.
    pub title: String,
    /// The newest version.
    pub latest: Option<String>,
    /// Bytes of the newest version's full download.
    pub size: Option<u64>,
    /// The installed version.
    pub installed: Option<String>,
    /// Whether an update to `latest` is waiting.
    pub update_available: bool,
}

/// `mist status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryReport {
    /// The server logged in to.
    pub server: Option<String>,
    /// The user logged in as.
    pub user: Option<String>,
    /// When the token expires, epoch seconds.
    pub token_expires_at: Option<u64>,
    /// The installed games.
    pub games: Vec<InstalledGameStatus>,
}

/// A game in `mist status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledGameStatus {
    /// The game.
    pub game: String,
    /// The installed version; `None` while the first install is unfinished.
    pub version: Option<String>,
    /// The install folder.
    pub dir: PathBuf,
    /// Files in the manifest.
    pub n_files: usize,
    /// Bytes in the manifest.
    pub size: u64,
    /// The version an interrupted step goes to; `mist update` finishes it.
    pub interrupted_towards: Option<String>,
}

/// The catalog with what is installed.
pub async fn list(context: &Context) -> anyhow::Result<Vec<ListRow>> {
    let api = connect(&context.dirs)?;
    let catalog = api.games().await?;
    let installed: BTreeMap<String, InstalledGame> = state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| (installed.game.clone(), installed))
        .collect();
    Ok(catalog
        .games
        .into_iter()
        .map(|game| {
            let installed = installed
                .get(&game.name)
                .and_then(|installed| installed.version.clone());
            let update_available = match (&installed, &game.latest) {
                (Some(installed), Some(latest)) => installed != latest,
                _ => false,
            };
            let size = game.latest.as_ref().and_then(|latest| {
                game.versions
                    .iter()
                    .find(|version| &version.name == latest)
                    .and_then(|version| version.size)
            });
            ListRow {
                name: game.name,
                title: game.title,
                latest: game.latest,
                size,
                installed,
                update_available,
            }
        })
        .collect())
}

/// `mist info`: one game as the server describes it, with the version installed here.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameInfo {
    /// The game, its store metadata and every version with its notes.
    #[serde(flatten)]
    pub game: GameDetail,
    /// The installed version.
    pub installed: Option<String>,
}

/// One game in detail, with what is installed.
pub async fn info(context: &Context, game: &str) -> anyhow::Result<GameInfo> {
    let api = connect(&context.dirs)?;
    let detail = api.game(game).await?;
    let installed = state::list_games(&context.dirs)?
        .into_iter()
        .find(|installed| installed.game == detail.name)
        .and_then(|installed| installed.version);
    Ok(GameInfo {
        game: detail,
        installed,
    })
}

/// What `mist status` shows, from local state only.
pub fn status(context: &Context) -> anyhow::Result<LibraryReport> {
    let credentials = state::load_credentials(&context.dirs)?;
    let games = state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| InstalledGameStatus {
            n_files: installed.manifest.n_files(),
            size: installed.manifest.total_size(),
            interrupted_towards: installed.pending.as_ref().map(|step| step.to.clone()),
            game: installed.game,
            version: installed.version,
            dir: installed.dir,
        })
        .collect();
    Ok(LibraryReport {
        server: credentials.as_ref().map(|c| c.server.clone()),
        user: credentials.as_ref().map(|c| c.user.clone()),
        token_expires_at: credentials.and_then(|c| c.expires_at),
        games,
    })
}

/// The names of every game in the local state.
pub fn installed_games(context: &Context) -> anyhow::Result<Vec<String>> {
    Ok(state::list_games(&context.dirs)?
        .into_iter()
        .map(|installed| installed.game)
        .collect())
}
