//! One writing process per SQLite database.
//!
//! SQLite serializes writers inside one file, but two `mistd run` on the same file would run
//! two reconcilers over one queue whose leases are named after the data folder: they would
//! cancel each other's jobs. So a `Db::connect` handle (the reconciler's: it
//! migrates and runs the queue) on SQLite holds an advisory lock
//! on `<database>.lock` for as long as any of its clones lives, and a second *process* that
//! asks for one gets [`WriterError::InUse`], naming the file and the holder's process id.
//! Within one process the lock is shared (tests and `mistd demo` open the same file more
//! than once). Other handles take no lock: `mistd status` reads, and `mistd run --role api`
//! reads and counts failed logins (`Db::connect_unmigrated`), beside a running
//! reconciler. Postgres needs none of this: its queue takes any number of
//! workers.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Another process holds the SQLite database through `Db::connect`.
    #[error(
        "the SQLite database {} is in use by another process{}: only one mistd may run the \
         reconciler on an SQLite database; stop the other one, or move to Postgres \
         (--db postgres://…) to run several",
        database.display(),
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The database file.
        database: PathBuf,
        /// The holder's process id, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or written.
    #[error("cannot use the lock file {}", path.display())]
    LockFile {
        /// The lock file, `<database>.lock`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The lock a read-write SQLite handle holds; released when the last clone of the handle is
/// dropped (the file is closed, and with it the lock).
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

/// The locks this process holds, by database file, so that opening the same file again in
/// this process shares the lock instead of refusing itself.
static HELD: Mutex<Option<HashMap<PathBuf, Weak<WriterLock>>>> = Mutex::new(None);

/// The lock for the SQLite database `url`, or `None` for an in-memory database.
pub(crate) fn lock(url: &str) -> Result<Option<Arc<WriterLock>>, WriterError> {
    let Some(database) = sqlite_file(url) else {
        return Ok(None);
    };
    let lock_path = lock_path_of(&database);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let held = held.get_or_insert_with(HashMap::new);
    held.retain(|_, lock| lock.strong_count() > 0);
    if let Some(lock) = held.get(&lock_path).and_then(Weak::upgrade) {
        return Ok(Some(lock));
    }
    let io_error = |source| WriterError::LockFile {
        path: lock_path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(WriterError::InUse {
                database,
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io_error(source)),
    }
    // Who holds it, for the message the next process gets.
    file.set_len(0).map_err(io_error)?;
    file.rewind().map_err(io_error)?;
    writeln!(file, "{}", std::process::id()).map_err(io_error)?;
    let lock = Arc::new(WriterLock { _file: file });
    held.insert(lock_path, Arc::downgrade(&lock));
    Ok(Some(lock))
}

/// `<database>.lock`, with the folder made absolute so that two spellings of one path share
/// one entry in [`HELD`].
fn lock_path_of(database: &Path) -> PathBuf {
    let name = database
        .file_name()
        .map(|name| format!("{}.lock", name.to_string_lossy()))
        .unwrap_or_else(|| "mist.db.lock".to_owned());
    let folder = database
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(folder)
        .unwrap_or_else(|_| folder.to_owned())
        .join(name)
}

/// The file an SQLite URL names (`sqlite://PATH?…` or `sqlite:PATH?…`, percent-decoded as
/// sqlx decodes it), or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_an_sqlite_url() {
        assert_eq!(
            sqlite_file("sqlite:///data/mist.db?mode=rwc"),
            Some(PathBuf::from("/data/mist.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://a%3Fb%25c.db"),
            Some(PathBuf::from("a?b%c.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/test"), None);
    }

    #[test]
    fn another_holder_is_refused_and_this_process_shares_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("mist.db").display());
        let first = lock(&url).unwrap().unwrap();
        let again = lock(&url).unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "one lock per file in a process"
        );
        drop((first, again));

        // Another holder (as another process would be: a lock on its own open file).
        let other = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("mist.db.lock"))
            .unwrap();
        other.lock().unwrap();
        (&other).write_all(b"4242\n").unwrap();
        match lock(&url) {
            Err(WriterError::InUse { database, pid }) => {
                assert_eq!(database, dir.path().join("mist.db"));
                assert_eq!(pid, Some(4242));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(other);
        assert!(
            lock(&url).unwrap().is_some(),
            "free again once the holder is gone"
        );
    }
}
