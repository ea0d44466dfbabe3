//! The commands: each takes a [`Context`], talks to the server, changes installs only
//! through `mist_games::install`, and returns a report that `main` prints as text or JSON.
//!
//! One file per family of commands: [`install`] (`mist install` and `mist update`, with
//! the steps they download and apply in `steps`), [`verify`], [`launch`], [`uninstall`],
//! and [`library`] (`mist list` and `mist status`: the catalog and what is installed).
//! This file holds what they share: the [`Context`] and the saved login.
//!
//! An install or update is a list of steps (a pack, or tree deltas in order). All the
//! steps' downloads start at once (at most [`DownloadOptions::jobs`] run together) and each
//! step is applied as soon as it and the steps before it are ready, so downloading and
//! applying overlap. Before a step is applied the game's state records it as pending; after
//! the engine commits it the state moves to the new version. A run stopped anywhere is
//! finished by the next `mist install` or `mist update`: the engine rolls a half-committed
//! step forward or back, a step already committed is recognised as current, and downloads
//! resume from their partial files.

use anyhow::anyhow;

use crate::api::{self, Api};
use crate::dirs::Dirs;
use crate::download::DownloadOptions;
use crate::progress::Progress;
use crate::state::{self, Credentials};

pub mod install;
pub mod launch;
pub mod library;
mod steps;
pub mod uninstall;
pub mod verify;

/// What every command gets.
#[derive(Clone)]
pub struct Context {
    /// The client's folders.
    pub dirs: Dirs,
    /// Where progress bars go.
    pub progress: Progress,
    /// How to download.
    pub download: DownloadOptions,
}

/// Logs in to `server` and saves the token (mode 0600). Never prints the token.
pub async fn login(
    dirs: &Dirs,
    server: Option<String>,
    user: &str,
    password: &str,
) -> anyhow::Result<Credentials> {
    let saved = state::load_credentials(dirs)?;
    let server = server
        .or_else(|| saved.map(|credentials| credentials.server))
        .ok_or_else(|| anyhow!("no server known yet: pass --server URL"))?;
    let url = api::parse_server(&server)?;
    let response = api::login(&url, user, password).await?;
    let credentials = Credentials {
        server: url.to_string(),
        user: response.user,
        token: response.token,
        expires_at: Some(response.expires_at),
    };
    state::save_credentials(dirs, &credentials)?;
    Ok(credentials)
}

/// The saved login as an [`Api`].
pub fn connect(dirs: &Dirs) -> anyhow::Result<Api> {
    let credentials = state::load_credentials(dirs)?
        .ok_or_else(|| anyhow!("not logged in; run `mist login --server URL` first"))?;
    Ok(Api::new(&credentials.server, credentials.token)?)
}
