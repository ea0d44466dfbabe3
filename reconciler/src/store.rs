//! The artifact store on the NAS: content-addressed, immutable files written atomically.
//!
//! ```text
//! <nas>/.mist/artifacts/<hex[0..2]>/<hex>   an artifact whose address is blake3:<hex>
//! <nas>/.mist/tmp/<run>-<random>            work in progress: artifacts being written,
//!                                           builds being replayed
//! ```
//!
//! The address is the BLAKE3 of the artifact's bytes, so the same bytes always land at the
//! same path and a file, once in place, never changes. Every write goes to a fresh file under
//! `tmp/`, is fsynced, renamed into place and the folder fsynced: a crash at any instant leaves
//! either no artifact or the whole one, never a torn file. What a crash leaves in `tmp/` is
//! removed by [`ArtifactStore::clean_tmp`], which every pass runs.
//!
//! **Invariant:** nothing here writes outside `<nas>/.mist/`; in particular never under
//! `incoming/` or any version's `source`.
//!
//! A reader that must not write to the NAS (the API serving artifacts) finds the artifact
//! folder with [`artifacts_dir`] rather than opening the store, which creates its folders.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use mist_platform::fs::sync_dir;

/// The folder below the NAS root that holds everything the reconciler writes (no version's
/// source may be in it: `mist_specs::nas`).
pub use mist_specs::nas::STATE_DIR;

/// The folder below [`STATE_DIR`] that holds the artifacts.
const ARTIFACTS_DIR: &str = "artifacts";

/// The folder below [`STATE_DIR`] that holds work in progress.
const TMP_DIR: &str = "tmp";

/// Where the artifacts of the store below the NAS root `nas` are: `<nas>/.mist/artifacts`.
/// A path only: nothing is created or read, so a process that must not write to the NAS (the
/// API, which serves the artifacts) can call it.
pub fn artifacts_dir(nas: &Path) -> PathBuf {
    nas.join(STATE_DIR).join(ARTIFACTS_DIR)
}

/// The artifact store.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    /// `<nas>/.mist/artifacts`.
    artifacts: PathBuf,
    /// `<nas>/.mist/tmp`.
    tmp: PathBuf,
    /// Prefix of every temporary name this process makes.
    run_id: String,
    /// When this process opened the store; older temporary files are leftovers.
    run_start: SystemTime,
}

/// An artifact that is in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `blake3:<hex>` of the bytes.
    pub address: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its path relative to the artifacts folder, `<hex[0..2]>/<hex>`.
    pub path: String,
}

/// Writes one artifact: bytes go to a temporary file and are hashed on the way; [`finish`]
/// puts the file in place under its address. Dropping it unfinished removes the temporary
/// file.
///
/// [`finish`]: ArtifactWriter::finish
pub struct ArtifactWriter {
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    n_written: u64,
    tmp_path: PathBuf,
    artifacts: PathBuf,
    cancel: Option<Arc<AtomicBool>>,
    written: Option<Arc<AtomicU64>>,
}

impl ArtifactStore {
    /// Opens (and creates if needed) the store below the NAS root `nas`.
    pub fn open(nas: &Path) -> io::Result<ArtifactStore> {
        let artifacts = artifacts_dir(nas);
        let tmp = nas.join(STATE_DIR).join(TMP_DIR);
        fs::create_dir_all(&artifacts)?;
        // `tmp` may be unusable (say, a file where the folder should be); that is an error of
        // each write, retried with backoff, not a reason to refuse to start.
        let _ = fs::create_dir_all(&tmp);
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(ArtifactStore {
            artifacts,
            tmp,
            run_id: hex::encode(random),
            run_start: SystemTime::now(),
        })
    }

    /// `<nas>/.mist/artifacts`.
    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// `<nas>/.mist/tmp`.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// The path of an artifact relative to the artifacts folder, `<hex[0..2]>/<hex>`, or
    /// `None` when `address` is not `blake3:<64 lowercase hex digits>`.
    pub fn relative_path(address: &str) -> Option<String> {
        mist_db::state::artifact_relative_path(address)
    }

    /// The absolute path of an artifact.
    pub fn path_of(&self, address: &str) -> Option<PathBuf> {
        Self::relative_path(address).map(|relative| self.artifacts.join(relative))
    }

    /// Whether the artifact is on the NAS as a regular file of exactly `size` bytes.
    pub fn is_present(&self, address: &str, size: u64) -> bool {
        self.path_of(address)
            .and_then(|path| fs::symlink_metadata(path).ok())
            .is_some_and(|metadata| metadata.is_file() && metadata.len() == size)
    }

    /// Whether the artifact's bytes still hash to its address.
    pub fn verify(&self, address: &str) -> io::Result<bool> {
        let path = self
            .path_of(address)
            .ok_or_else(|| io::Error::other(format!("invalid address {address}")))?;
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(File::open(path)?)?;
        Ok(format!("blake3:{}", hasher.finalize().to_hex()) == address)
    }

    /// Reads a whole artifact into memory (for manifests, which are small).
    pub fn read(&self, address: &str) -> io::Result<Vec<u8>> {
        let path = self
            .path_of(address)
            .ok_or_else(|| io::Error::other(format!("invalid address {address}")))?;
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Starts writing an artifact.
    pub fn writer(&self) -> io::Result<ArtifactWriter> {
        let tmp_path = self.new_tmp_path();
        // The path goes into the message: the job's log and the board show it, and an admin
        // fixing the NAS needs to know where.
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot create {}: {error}", tmp_path.display()),
                )
            })?;
        Ok(ArtifactWriter {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: blake3::Hasher::new(),
            n_written: 0,
            tmp_path,
            artifacts: self.artifacts.clone(),
            cancel: None,
            written: None,
        })
    }

    /// Writes `bytes` as an artifact.
    pub fn put(&self, bytes: &[u8]) -> io::Result<Stored> {
        let mut writer = self.writer()?;
        writer.write_all(bytes)?;
        writer.finish()
    }

    /// A fresh path below `tmp/` that does not exist yet, for a folder or file this run makes
    /// (a replayed build, say). The caller removes it when done; a crash leaves it to
    /// [`ArtifactStore::clean_tmp`].
    pub fn new_tmp_path(&self) -> PathBuf {
        let mut random = [0u8; 8];
        // getrandom only fails on exotic platforms; a counter keeps names unique anyway.
        let _ = getrandom::fill(&mut random);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp
            .join(format!("{}-{}-{n}", self.run_id, hex::encode(random)))
    }

    /// Deletes an artifact's file (when pruning); returns whether it was there.
    pub fn remove(&self, address: &str) -> io::Result<bool> {
        let Some(path) = self.path_of(address) else {
            return Ok(false);
        };
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes what earlier runs left in `tmp/`: every entry last modified before this
    /// process opened the store and not named by this run. Returns how many were removed.
    ///
    /// ## Warning
    /// Two processes sharing one NAS must not both write to it: a replica that started later
    /// would remove the other's work in progress if that had not been touched since.
    pub fn clean_tmp(&self) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n_removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // Replays put hidden step folders beside their output: `.<run>-…`.
            let bare = name.to_string_lossy();
            if bare.trim_start_matches('.').starts_with(&self.run_id) {
                continue;
            }
            let metadata = entry.metadata()?;
            let old = metadata
                .modified()
                .map(|modified| modified < self.run_start)
                .unwrap_or(true);
            if !old {
                continue;
            }
            let path = entry.path();
            if metadata.is_dir() {
                // Does not follow symlinks inside.
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
            n_removed += 1;
        }
        Ok(n_removed)
    }
}

/// What a cancelled [`ArtifactWriter`]'s writes fail with, inside an [`io::Error`] of kind
/// `Other`. Not `Interrupted`: `write_all`, `io::copy` and compressors retry that kind forever,
/// so a cancelled job would spin on it instead of stopping.
#[derive(Debug, thiserror::Error)]
#[error("the job was cancelled")]
pub struct Cancelled;

/// Whether `error` or one of its sources is [`Cancelled`] (directly or inside an
/// [`io::Error`]): the work failed because its job was cancelled, not for a reason to retry.
pub fn is_cancelled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        let inside_io = error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<Cancelled>());
        if error.is::<Cancelled>() || inside_io {
            return true;
        }
        next = error.source();
    }
    false
}

impl ArtifactWriter {
    /// Makes writes fail with [`Cancelled`] once `cancel` is set, so a long write stops soon
    /// after a shutdown or a lost lease.
    pub fn cancel_on(mut self, cancel: Arc<AtomicBool>) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Counts the bytes written into `written`, for progress reports.
    pub fn count_into(mut self, written: Arc<AtomicU64>) -> Self {
        self.written = Some(written);
        self
    }

    /// Bytes written so far.
    pub fn n_written(&self) -> u64 {
        self.n_written
    }

    /// Flushes and fsyncs the file, renames it to its address and fsyncs the folder. When
    /// the artifact is already there (the same bytes were written before), the new copy is
    /// discarded.
    pub fn finish(mut self) -> io::Result<Stored> {
        let file = self.file.take().expect("finish is called once");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let hex = self.hasher.finalize().to_hex().to_string();
        let address = format!("blake3:{hex}");
        let path = mist_db::state::artifact_relative_path(&address)
            .expect("a BLAKE3 hex digest is an address");
        let target = self.artifacts.join(&path);
        let dir = target.parent().expect("an artifact's path has a folder");
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            sync_dir(&self.artifacts)?;
        }
        let already = fs::symlink_metadata(&target)
            .is_ok_and(|metadata| metadata.is_file() && metadata.len() == self.n_written);
        if already {
            fs::remove_file(&self.tmp_path)?;
        } else {
            fs::rename(&self.tmp_path, &target)?;
            sync_dir(dir)?;
        }
        Ok(Stored {
            address,
            size: self.n_written,
            path,
        })
    }
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return Err(io::Error::other(Cancelled));
        }
        let file = self.file.as_mut().expect("not finished");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n_written += n as u64;
        if let Some(written) = &self.written {
            written.store(self.n_written, Ordering::Relaxed);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not finished").flush()
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// Removes a temporary folder or file when dropped.
#[derive(Debug)]
pub struct TmpGuard(pub PathBuf);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.0) {
            Ok(metadata) if metadata.is_dir() => {
                let _ = fs::remove_dir_all(&self.0);
            }
            Ok(_) => {
                let _ = fs::remove_file(&self.0);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_atomic() {
        let nas = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(nas.path()).unwrap();
        let stored = store.put(b"hello").unwrap();
        let hex = blake3::hash(b"hello").to_hex().to_string();
        assert_eq!(stored.address, format!("blake3:{hex}"));
        assert_eq!(stored.path, format!("{}/{hex}", &hex[..2]));
        assert!(store.is_present(&stored.address, 5));
        assert!(!store.is_present(&stored.address, 4));
        assert!(store.verify(&stored.address).unwrap());
        // The same bytes again: same address, nothing left in tmp.
        assert_eq!(store.put(b"hello").unwrap(), stored);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        // An unfinished writer leaves nothing.
        let mut writer = store.writer().unwrap();
        writer.write_all(b"partial").unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn artifacts_dir_is_where_the_store_keeps_artifacts() {
        let nas = tempfile::tempdir().unwrap();
        assert_eq!(
            artifacts_dir(nas.path()),
            nas.path().join(".mist").join("artifacts")
        );
        assert!(!artifacts_dir(nas.path()).exists());
        let store = ArtifactStore::open(nas.path()).unwrap();
        assert_eq!(store.artifacts_dir(), artifacts_dir(nas.path()));
    }

    #[test]
    fn cancelled_writer_fails() {
        let nas = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(nas.path()).unwrap();
        let cancel = Arc::new(AtomicBool::new(true));
        let mut writer = store.writer().unwrap().cancel_on(cancel);
        let error = writer.write(b"x").unwrap_err();
        assert_ne!(error.kind(), io::ErrorKind::Interrupted);
        assert!(is_cancelled(&error), "{error}");
        assert!(!is_cancelled(&io::Error::other("disk full")));
    }

    /// A job cancelled in the middle of a buffered `write_all` stops at once and leaves no
    /// temporary file: the writer's error is not one that `write_all` retries.
    #[test]
    fn cancelled_buffered_write_stops_and_cleans_up() {
        let nas = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(nas.path()).unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let writer = store.writer().unwrap().cancel_on(cancel.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffered = io::BufWriter::new(writer);
            let chunk = vec![7u8; 1 << 16];
            // Some data goes out before the cancellation, the rest after it.
            buffered.write_all(&chunk).unwrap();
            buffered.flush().unwrap();
            cancel.store(true, Ordering::Relaxed);
            let result = (0..1024).try_for_each(|_| {
                buffered.write_all(&chunk)?;
                buffered.flush()
            });
            drop(buffered);
            let _ = done_tx.send(result);
        });
        let result = done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the cancelled write returns instead of retrying forever");
        let error = result.expect_err("a cancelled write fails");
        assert!(is_cancelled(&error), "{error}");
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn clean_tmp_keeps_this_runs_files() {
        let nas = tempfile::tempdir().unwrap();
        let tmp = nas.path().join(STATE_DIR).join("tmp");
        fs::create_dir_all(tmp.join("old-dir/sub")).unwrap();
        fs::write(tmp.join("old-file"), b"x").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        for name in ["old-dir", "old-file"] {
            File::options()
                .read(true)
                .open(tmp.join(name))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let store = ArtifactStore::open(nas.path()).unwrap();
        let mine = store.new_tmp_path();
        fs::write(&mine, b"y").unwrap();
        assert_eq!(store.clean_tmp().unwrap(), 2);
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left, vec![mine]);
    }
}
