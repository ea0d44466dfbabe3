//! The client's local state: the credentials and one file per installed game.
//!
//! Every file is written with [`dirs::write_atomic`](crate::dirs::write_atomic), so a kill
//! at any moment leaves the previous state or the next one.

use std::io;
use std::path::{Path, PathBuf};

use mist_games::manifest::Manifest;
use serde::{Deserialize, Serialize};

use crate::dirs::{Dirs, write_atomic};
use mist_wire::catalog::LaunchInfo;
use mist_wire::update::StepKind;

/// What `mist login` saved: where the server is and the token it gave.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The server's base URL, e.g. `https://mist.example:8080`.
    pub server: String,
    /// The user name.
    pub user: String,
    /// The bearer token. Never printed.
    pub token: String,
    /// When the token expires, epoch seconds, as the server said.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One game in the client's state: installed, or being installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledGame {
    /// The game's name.
    pub game: String,
    /// The install folder, absolute.
    pub dir: PathBuf,
    /// The version the install holds; `None` while the first install is under way.
    pub version: Option<String>,
    /// The manifest the install matches (empty before the first install).
    pub manifest: Manifest,
    /// How to start the game, as the server said at the last install or update.
    #[serde(default)]
    pub launch: Option<LaunchInfo>,
    /// The version an unfinished first install aims at (`None`: the newest), so that
    /// running `mist install GAME` again finishes the same install.
    #[serde(default)]
    pub wanted: Option<String>,
    /// The step being applied, if a command was stopped during it: the next run applies it
    /// again (the engine finishes or undoes a half-committed step, and a finished one is
    /// recognised) before doing anything else.
    #[serde(default)]
    pub pending: Option<PendingStep>,
}

/// An update step that was about to be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingStep {
    /// A pack or a tree delta.
    pub kind: StepKind,
    /// The version the step makes.
    pub to: String,
    /// The artifact.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// For a pack, the target manifest (a delta carries its own).
    pub target_manifest: Option<Manifest>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("failed to {action} {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause, already in the message.
        error: io::Error,
    },
    /// The file is not what this client writes.
    #[error("{} is damaged: {error}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The cause, already in the message.
        error: serde_json::Error,
    },
}

/// Loads the credentials, `None` if `mist login` never ran.
pub fn load_credentials(dirs: &Dirs) -> Result<Option<Credentials>, StateError> {
    load_json(&dirs.credentials())
}

/// Saves the credentials with mode 0600.
pub fn save_credentials(dirs: &Dirs, credentials: &Credentials) -> Result<(), StateError> {
    save_json(&dirs.credentials(), credentials, 0o600)
}

/// The state file of `game`.
pub fn game_path(dirs: &Dirs, game: &str) -> PathBuf {
    dirs.games().join(format!("{game}.json"))
}

/// Loads a game's state, `None` if it is not installed.
pub fn load_game(dirs: &Dirs, game: &str) -> Result<Option<InstalledGame>, StateError> {
    load_json(&game_path(dirs, game))
}

/// Saves a game's state.
pub fn save_game(dirs: &Dirs, installed: &InstalledGame) -> Result<(), StateError> {
    save_json(&game_path(dirs, &installed.game), installed, 0o644)
}

/// Forgets a game.
pub fn remove_game(dirs: &Dirs, game: &str) -> Result<(), StateError> {
    let path = game_path(dirs, game);
    match std::fs::remove_file(&path) {
        Ok(()) => mist_platform::fs::sync_dir(&dirs.games()).map_err(|error| StateError::Io {
            path: dirs.games(),
            action: "sync",
            error,
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StateError::Io {
            path,
            action: "remove",
            error,
        }),
    }
}

/// Every game in the state, by name.
pub fn list_games(dirs: &Dirs) -> Result<Vec<InstalledGame>, StateError> {
    let dir = dirs.games();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(StateError::Io {
                path: dir,
                action: "read",
                error,
            });
        }
    };
    let mut games = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StateError::Io {
            path: dir.clone(),
            action: "read",
            error,
        })?;
        let name = entry.file_name();
        let Some(game) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
            continue;
        };
        if game.starts_with('.') {
            continue;
        }
        if let Some(installed) = load_game(dirs, game)? {
            games.push(installed);
        }
    }
    games.sort_by(|a, b| a.game.cmp(&b.game));
    Ok(games)
}

fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| StateError::Damaged {
                    path: path.to_owned(),
                    error,
                })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StateError::Io {
            path: path.to_owned(),
            action: "read",
            error,
        }),
    }
}

fn save_json<T: Serialize>(path: &Path, value: &T, mode: u32) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("state serializes");
    bytes.push(b'\n');
    write_atomic(path, &bytes, mode).map_err(|error| StateError::Io {
        path: path.to_owned(),
        action: "write",
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_state_round_trips_and_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config: tmp.path().join("config"),
            data: tmp.path().join("data"),
        };
        let installed = InstalledGame {
            game: "starfall".into(),
            dir: tmp.path().join("games/starfall"),
            version: Some("1.0.0".into()),
            manifest: Manifest { entries: vec![] },
            launch: None,
            wanted: None,
            pending: None,
        };
        save_game(&dirs, &installed).unwrap();
        assert_eq!(
            load_game(&dirs, "starfall").unwrap(),
            Some(installed.clone())
        );
        assert_eq!(list_games(&dirs).unwrap(), [installed]);
        remove_game(&dirs, "starfall").unwrap();
        assert_eq!(load_game(&dirs, "starfall").unwrap(), None);
        assert!(list_games(&dirs).unwrap().is_empty());
    }

    #[test]
    fn credentials_never_show_the_token_in_debug() {
        let credentials = Credentials {
            server: "http://127.0.0.1:1".into(),
            user: "friend".into(),
            token: "secret-token".into(),
            expires_at: None,
        };
        assert!(!format!("{credentials:?}").contains("secret-token"));
    }
}
