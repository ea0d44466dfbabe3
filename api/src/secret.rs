//! The key that signs login tokens: read from a file, or generated once into the data folder.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mist_platform::fs::AtomicWrite;

/// The file in the data folder that holds a generated JWT secret.
pub const JWT_SECRET_FILE_NAME: &str = "jwt-secret";

/// The shortest secret accepted: HS256 wants at least as many bytes as the hash.
pub const MIN_SECRET_LEN: usize = 32;

/// The HS256 key for login tokens. Its `Debug` shows nothing of it, and nothing in this crate
/// logs it.
#[derive(Clone)]
pub struct JwtSecret {
    bytes: Arc<[u8]>,
}

/// Why the secret could not be had. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read or written.
    #[error("cannot {action} the JWT secret file {path}")]
    Io {
        /// `read`, `create` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file holds fewer than [`MIN_SECRET_LEN`] bytes (after trimming whitespace).
    #[error(
        "the JWT secret in {path} is too short: use at least {MIN_SECRET_LEN} bytes \
         (e.g. `openssl rand -hex 32`)"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// Neither a secret file nor a data folder to generate one into.
    #[error("no JWT secret: give a secret file (--jwt-secret-file) or a data folder (--data)")]
    Missing,
    /// The system's random source failed.
    #[error("cannot generate a JWT secret: the random source failed")]
    Random,
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

impl JwtSecret {
    /// A secret from bytes (tests, or a secret held elsewhere). Fails when shorter than
    /// [`MIN_SECRET_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Option<JwtSecret> {
        (bytes.len() >= MIN_SECRET_LEN).then(|| JwtSecret {
            bytes: Arc::from(bytes),
        })
    }

    /// Reads the secret from `path`. Surrounding whitespace (the newline of
    /// `openssl rand -hex 32 > file`) is not part of it.
    pub fn read(path: &Path) -> Result<JwtSecret, SecretError> {
        let bytes = fs::read(path).map_err(|source| SecretError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        JwtSecret::from_bytes(bytes.trim_ascii()).ok_or_else(|| SecretError::TooShort {
            path: path.to_path_buf(),
        })
    }

    /// The secret from `file` when given; otherwise the one in `<data>/jwt-secret`, which is
    /// generated (32 random bytes, hex) with mode `0600` the first time. A generated secret
    /// is never printed; tokens survive restarts because it is kept.
    pub fn load_or_generate(
        file: Option<&Path>,
        data_dir: Option<&Path>,
    ) -> Result<JwtSecret, SecretError> {
        if let Some(file) = file {
            return JwtSecret::read(file);
        }
        let data_dir = data_dir.ok_or(SecretError::Missing)?;
        let path = data_dir.join(JWT_SECRET_FILE_NAME);
        match JwtSecret::read(&path) {
            Err(SecretError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                generate_into(&path)
            }
            result => {
                if let Ok(metadata) = fs::metadata(&path)
                    && metadata.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        "the JWT secret file is readable by other users: chmod 600 it"
                    );
                }
                result
            }
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Writes a new secret to `path` with mode 0600, refusing to overwrite: when two processes
/// start at once, the loser reads the winner's file.
fn generate_into(path: &Path) -> Result<JwtSecret, SecretError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|_| SecretError::Random)?;
    let text: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    let io_error = |action| {
        move |source| SecretError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    // Written whole or not at all, and never over an existing file: a reader never sees a
    // part of a secret, and of two processes starting at once the loser reads the winner's.
    let options = AtomicWrite {
        mode: Some(0o600),
        replace: false,
    };
    match mist_platform::fs::write_atomic(path, format!("{text}\n").as_bytes(), options) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return JwtSecret::read(path);
        }
        Err(error) => return Err(io_error("create")(error)),
    }
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(JwtSecret {
        bytes: Arc::from(text.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = JwtSecret::load_or_generate(None, Some(dir.path())).unwrap();
        let path = dir.path().join(JWT_SECRET_FILE_NAME);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = JwtSecret::load_or_generate(None, Some(dir.path())).unwrap();
        assert_eq!(first.bytes(), second.bytes());
        assert_eq!(first.bytes().len(), 64);
        assert_eq!(format!("{first:?}"), "JwtSecret(<redacted>)");
    }

    #[test]
    fn a_given_file_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        fs::write(&file, "short\n").unwrap();
        let error = JwtSecret::load_or_generate(Some(&file), Some(dir.path())).unwrap_err();
        assert!(matches!(error, SecretError::TooShort { .. }), "{error}");
        assert!(!error.to_string().contains("short\n"));
        fs::write(&file, format!("{}\n", "k".repeat(40))).unwrap();
        let secret = JwtSecret::load_or_generate(Some(&file), Some(dir.path())).unwrap();
        assert_eq!(secret.bytes(), "k".repeat(40).as_bytes());
        assert!(!dir.path().join(JWT_SECRET_FILE_NAME).exists());
    }

    #[test]
    fn nothing_to_load_from_is_an_error() {
        assert!(matches!(
            JwtSecret::load_or_generate(None, None),
            Err(SecretError::Missing)
        ));
    }
}
