//! Where the client keeps its files, and how it writes them: atomically.
//!
//! The config folder (`MIST_CONFIG_DIR`, else `$XDG_CONFIG_HOME/mist`, else
//! `~/.config/mist`) holds the credentials; the data folder (`MIST_DATA_DIR`, else
//! `$XDG_DATA_HOME/mist`, else `~/.local/share/mist`) holds the installed games' state, the
//! downloads and, by default, the games themselves.

use std::io;
use std::path::{Path, PathBuf};

/// The client's folders.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Credentials live here.
    pub config: PathBuf,
    /// State, downloads and the default library live here.
    pub data: PathBuf,
}

/// Why the folders could not be found.
#[derive(Debug, thiserror::Error)]
#[error("cannot find the {what} folder: set {var} or HOME")]
pub struct NoHomeError {
    what: &'static str,
    var: &'static str,
}

impl Dirs {
    /// The folders named by the environment.
    pub fn from_env() -> Result<Dirs, NoHomeError> {
        let config = pick("MIST_CONFIG_DIR", "XDG_CONFIG_HOME", ".config").ok_or(NoHomeError {
            what: "config",
            var: "MIST_CONFIG_DIR",
        })?;
        let data = pick("MIST_DATA_DIR", "XDG_DATA_HOME", ".local/share").ok_or(NoHomeError {
            what: "data",
            var: "MIST_DATA_DIR",
        })?;
        Ok(Dirs { config, data })
    }

    /// The credentials file (server, user, token), mode 0600.
    pub fn credentials(&self) -> PathBuf {
        self.config.join("credentials.json")
    }

    /// The folder of the installed games' state files.
    pub fn games(&self) -> PathBuf {
        self.data.join("games")
    }

    /// The folder of downloads, finished (`<digest>`) and partial (`<digest>.part`).
    pub fn downloads(&self) -> PathBuf {
        self.data.join("downloads")
    }

    /// Where a game goes when `mist install` is not given `--dir`.
    pub fn default_install_dir(&self, game: &str) -> PathBuf {
        self.data.join("library").join(game)
    }
}

fn pick(own: &str, xdg: &str, under_home: &str) -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty(own) {
        return Some(PathBuf::from(dir));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(dir) = non_empty(xdg)
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
    {
        return Some(dir.join("mist"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(under_home).join("mist"))
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one,
/// never a part: a temporary file beside it, fsynced, renamed over it, then the folder
/// fsynced. The file gets `mode` whatever the umask.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::platform::create_private_dir(dir)?;
    mist_platform::fs::write_atomic(
        path,
        bytes,
        mist_platform::fs::AtomicWrite {
            mode: Some(mode),
            replace: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_writes_replace_the_file_with_the_mode_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/dir/secret.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.json"], "no temporary file left");
    }
}
