//! `mist verify --repair`: fixes the entries `mist verify` finds missing or changed.
//!
//! Directories and symlinks are remade from the manifest alone. For files the client sends
//! the fast_rsync signature of what it has (empty for a missing file) to the server's
//! repair endpoint, which answers per file with an rsync delta or the whole file, whichever
//! is smaller. Each answer is applied with `mist_games::repair::apply_repair`, which checks
//! the result's size and BLAKE3 against the installed manifest, and the file is replaced
//! atomically (a temporary file in the same folder, fsynced, renamed over the old one, with
//! the manifest's mode). Paths are resolved without following symlinks: a symlink where a
//! folder of the game should be is never walked through. Files the manifest does not list
//! are left alone and reported.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use indicatif::ProgressBar;
use mist_games::manifest::{EntryKind, FileHash, Manifest};
use mist_games::repair;
use mist_platform::fs::{self, AtomicWrite};
use mist_platform::units::{count, human_size};
use mist_wire::repair::{RepairFileRequest, RepairRequest};
use serde::Serialize;

use crate::api::{Api, ApiError};
use crate::ops::verify::{self, VerifyReport};
use crate::ops::{self, Context};
use crate::platform;
use crate::state;

/// The most files one repair request names (the server takes up to 4,096).
const MAX_BATCH_FILES: usize = 1024;
/// The most signature bytes (base64) one request carries (the server takes 16 MiB bodies).
const MAX_BATCH_SIGNATURE_BYTES: u64 = 8 << 20;
/// The most true file bytes one request asks for (the server's limit is 256 MiB).
const MAX_BATCH_FILE_BYTES: u64 = 256 << 20;

/// What `mist verify --repair` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    /// The game.
    pub game: String,
    /// The version repaired to.
    pub version: Option<String>,
    /// What verification found before repairing.
    pub found: VerifyReport,
    /// The files, folders and symlinks repaired.
    pub repaired: Vec<RepairedEntry>,
    /// The entries that could not be repaired, with why.
    pub failed: Vec<RepairFailure>,
    /// The bytes of the server's repair answers.
    pub downloaded_bytes: u64,
    /// The total size of the repaired files.
    pub repaired_bytes: u64,
    /// What verification found after repairing.
    pub after: VerifyReport,
}

/// One repaired entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairedEntry {
    /// The manifest path.
    pub path: String,
    /// `rsync` or `whole` for files (as the server chose), `local` for folders and
    /// symlinks made from the manifest.
    pub method: String,
    /// The file's size (0 for folders and symlinks).
    pub size: u64,
    /// The bytes of the repair delta received for it.
    pub delta_bytes: u64,
}

/// An entry that could not be repaired.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairFailure {
    /// The manifest path.
    pub path: String,
    /// Why.
    pub error: String,
}

/// Why one entry could not be repaired; the report shows the message.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    /// A folder on the way to the entry is a symlink.
    #[error("{} is a symlink where the game has a folder; not following it", .0.display())]
    SymlinkForFolder(PathBuf),
    /// A folder on the way to the entry is a file or something else.
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// Something other than a folder stands where the game has a folder.
    #[error(
        "{} is in the way of a folder of the game; move it away and repair again",
        .0.display()
    )]
    InTheWayOfFolder(PathBuf),
    /// A folder stands where the game has a symlink.
    #[error(
        "{} is a folder where the game has a symlink; move it away and repair again",
        .0.display()
    )]
    FolderForSymlink(PathBuf),
    /// A folder stands where the game has a file.
    #[error(
        "{} is a folder where the game has a file; move it away and repair again",
        .0.display()
    )]
    FolderForFile(PathBuf),
    /// The local disk failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done: `inspect`, `create`, `replace`, `read`, `write` or `sync`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause, already in the message.
        error: std::io::Error,
    },
    /// The server's answer is for another file than the manifest's.
    #[error(
        "the server's repair makes another file ({size} bytes, BLAKE3 {blake3}) than the \
         installed manifest's"
    )]
    OtherFile {
        /// The size the server's file has.
        size: u64,
        /// The BLAKE3 the server's file has.
        blake3: String,
    },
    /// The server's repair delta is not base64.
    #[error("the repair delta is not base64")]
    NotBase64,
    /// The repair delta does not rebuild the manifest's file.
    #[error("the repair does not apply: {0}")]
    DoesNotApply(repair::RepairError),
}

/// A damaged file to ask the server about.
struct Wanted {
    path: String,
    size: u64,
    blake3: FileHash,
    executable: bool,
    signature: String,
}

/// Verifies `game` and repairs what is missing or changed, then verifies again.
pub async fn verify_and_repair(context: &Context, game: &str) -> anyhow::Result<RepairReport> {
    let found = verify::verify(context, game)?;
    let installed = state::load_game(&context.dirs, game)?
        .ok_or_else(|| anyhow!("{game} is not installed; see `mist status`"))?;
    let version = installed
        .version
        .clone()
        .ok_or_else(|| anyhow!("{game} has an unfinished install; run `mist install {game}`"))?;
    let mut report = RepairReport {
        game: game.to_owned(),
        version: Some(version.clone()),
        found: found.clone(),
        repaired: Vec::new(),
        failed: Vec::new(),
        downloaded_bytes: 0,
        repaired_bytes: 0,
        after: found.clone(),
    };
    if found.is_clean() {
        return Ok(report);
    }
    let root = installed.dir.clone();
    let mut damaged: Vec<&str> = found
        .missing
        .iter()
        .chain(&found.changed)
        .map(String::as_str)
        .collect();
    // Manifest order: a folder comes before what it holds.
    damaged.sort_unstable();
    let bar = context.progress.steps("repair", damaged.len() as u64);

    let wanted = repair_locally(&root, &installed.manifest, &damaged, &bar, &mut report);
    if !wanted.is_empty() {
        let api = ops::connect(&context.dirs)?;
        for batch in batches(wanted) {
            repair_batch(&api, game, &version, &root, batch, &bar, &mut report).await?;
        }
    }
    bar.finish_with_message(format!("{} repaired", report.repaired.len()));
    report.repaired.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.after = verify::verify(context, game)?;
    Ok(report)
}

/// Remakes the damaged folders and symlinks from the manifest, and returns the damaged
/// files, signed for the server.
fn repair_locally(
    root: &Path,
    manifest: &Manifest,
    damaged: &[&str],
    bar: &ProgressBar,
    report: &mut RepairReport,
) -> Vec<Wanted> {
    let expected: BTreeMap<&str, &EntryKind> = manifest
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let mut wanted = Vec::new();
    for &path in damaged {
        let Some(kind) = expected.get(path) else {
            continue;
        };
        bar.set_message(path.to_owned());
        let outcome = match kind {
            EntryKind::Dir => repair_dir(root, path).map(|()| None),
            EntryKind::Symlink { target } => repair_symlink(root, path, target).map(|()| None),
            EntryKind::File {
                size,
                executable,
                blake3,
            } => read_local(root, path).map(|local| {
                Some(Wanted {
                    path: path.to_owned(),
                    size: *size,
                    blake3: *blake3,
                    executable: *executable,
                    signature: base64_encode(&repair::signature(&local)),
                })
            }),
        };
        match outcome {
            Ok(Some(file)) => wanted.push(file),
            Ok(None) => {
                report.repaired.push(RepairedEntry {
                    path: path.to_owned(),
                    method: "local".to_owned(),
                    size: 0,
                    delta_bytes: 0,
                });
                bar.inc(1);
            }
            Err(error) => {
                report.failed.push(RepairFailure {
                    path: path.to_owned(),
                    error: error.to_string(),
                });
                bar.inc(1);
            }
        }
    }
    wanted
}

/// Asks the server to repair one batch of files and applies its answers. Fails only when
/// the server cannot be asked at all; a refused batch fails its files in the report.
async fn repair_batch(
    api: &Api,
    game: &str,
    version: &str,
    root: &Path,
    batch: Vec<Wanted>,
    bar: &ProgressBar,
    report: &mut RepairReport,
) -> anyhow::Result<()> {
    let request = RepairRequest {
        files: batch
            .iter()
            .map(|file| RepairFileRequest {
                path: file.path.clone(),
                signature: file.signature.clone(),
            })
            .collect(),
    };
    let (answer, body_bytes) = match api.repair(game, version, &request).await {
        Ok(answer) => answer,
        Err(error @ (ApiError::Unauthorized | ApiError::Network { .. })) => {
            return Err(error.into());
        }
        Err(error) => {
            for file in &batch {
                report.failed.push(RepairFailure {
                    path: file.path.clone(),
                    error: error.to_string(),
                });
                bar.inc(1);
            }
            return Ok(());
        }
    };
    report.downloaded_bytes += body_bytes;
    for (file, repaired) in batch.iter().zip(answer.files) {
        bar.set_message(file.path.clone());
        let delta_bytes = base64_decoded_len(&repaired.delta);
        let outcome = if repaired.size != file.size || repaired.blake3 != file.blake3.to_string() {
            Err(EntryError::OtherFile {
                size: repaired.size,
                blake3: repaired.blake3,
            })
        } else {
            base64_decode(&repaired.delta)
                .ok_or(EntryError::NotBase64)
                .and_then(|delta| apply_file(root, file, &delta))
        };
        match outcome {
            Ok(()) => {
                report.repaired_bytes += file.size;
                report.repaired.push(RepairedEntry {
                    path: file.path.clone(),
                    method: repaired.method.as_str().to_owned(),
                    size: file.size,
                    delta_bytes,
                });
            }
            Err(error) => report.failed.push(RepairFailure {
                path: file.path.clone(),
                error: error.to_string(),
            }),
        }
        bar.inc(1);
    }
    Ok(())
}

/// Splits the files into requests within the server's limits (a file over a limit goes
/// alone, and the server says why it refuses it).
fn batches(files: Vec<Wanted>) -> Vec<Vec<Wanted>> {
    let mut batches: Vec<Vec<Wanted>> = Vec::new();
    let (mut signature_bytes, mut file_bytes) = (0u64, 0u64);
    for file in files {
        let signature = file.signature.len() as u64 + file.path.len() as u64 + 64;
        let full = batches.last().is_none_or(|batch| {
            batch.len() >= MAX_BATCH_FILES
                || signature_bytes + signature > MAX_BATCH_SIGNATURE_BYTES
                || file_bytes + file.size > MAX_BATCH_FILE_BYTES
        });
        if full {
            batches.push(Vec::new());
            (signature_bytes, file_bytes) = (0, 0);
        }
        signature_bytes += signature;
        file_bytes += file.size;
        batches.last_mut().expect("a batch").push(file);
    }
    batches
}

/// The folder holding `path` under `root`, checked to be a real folder all the way down
/// (no symlink, no file in the way).
fn safe_parent(root: &Path, path: &str) -> Result<(PathBuf, String), EntryError> {
    let (parents, name) = match path.rsplit_once('/') {
        Some((parents, name)) => (Some(parents), name),
        None => (None, path),
    };
    let mut dir = root.to_path_buf();
    for component in parents.into_iter().flat_map(|parents| parents.split('/')) {
        dir.push(component);
        match std::fs::symlink_metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(EntryError::SymlinkForFolder(dir));
            }
            Ok(_) => return Err(EntryError::NotAFolder(dir)),
            Err(error) => return Err(io_error("inspect", &dir)(error)),
        }
    }
    Ok((dir, name.to_owned()))
}

fn repair_dir(root: &Path, path: &str) -> Result<(), EntryError> {
    let (parent, name) = safe_parent(root, path)?;
    let dir = parent.join(name);
    match std::fs::symlink_metadata(&dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(EntryError::InTheWayOfFolder(dir)),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            platform::create_dir(&dir, 0o755).map_err(io_error("create", &dir))?;
            sync_dir(&parent)
        }
        Err(error) => Err(io_error("inspect", &dir)(error)),
    }
}

fn repair_symlink(root: &Path, path: &str, target: &str) -> Result<(), EntryError> {
    let (parent, name) = safe_parent(root, path)?;
    let link = parent.join(&name);
    if std::fs::symlink_metadata(&link).is_ok_and(|metadata| metadata.is_dir()) {
        return Err(EntryError::FolderForSymlink(link));
    }
    let temp = temp_path(&parent, &name);
    let _ = std::fs::remove_file(&temp);
    platform::symlink(target, &temp)
        .and_then(|()| std::fs::rename(&temp, &link))
        .map_err(|error| {
            let _ = std::fs::remove_file(&temp);
            io_error("replace", &link)(error)
        })?;
    sync_dir(&parent)
}

/// The local bytes of a file: empty when it is missing or a symlink (never followed).
fn read_local(root: &Path, path: &str) -> Result<Vec<u8>, EntryError> {
    let (parent, name) = safe_parent(root, path)?;
    let file_path = parent.join(name);
    match std::fs::symlink_metadata(&file_path) {
        Ok(metadata) if metadata.is_file() => {}
        Ok(metadata) if metadata.is_dir() => {
            return Err(EntryError::FolderForFile(file_path));
        }
        Ok(_) => return Ok(Vec::new()),
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("inspect", &file_path)(error)),
    }
    let mut bytes = Vec::new();
    fs::open_regular_nofollow(&file_path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io_error("read", &file_path))?;
    Ok(bytes)
}

/// Rebuilds one file from its local bytes and `delta`, checks it against the manifest and
/// replaces it atomically.
fn apply_file(root: &Path, file: &Wanted, delta: &[u8]) -> Result<(), EntryError> {
    let local = read_local(root, &file.path)?;
    let rebuilt = repair::apply_repair(&local, delta, &file.blake3, file.size)
        .map_err(EntryError::DoesNotApply)?;
    drop(local);
    let (parent, name) = safe_parent(root, &file.path)?;
    write_atomically(&parent, &name, &rebuilt, file.executable)
        .map_err(io_error("write", &parent.join(&name)))
}

fn temp_path(parent: &Path, name: &str) -> PathBuf {
    parent.join(format!(".{name}.mist-repair-{}", std::process::id()))
}

fn write_atomically(
    parent: &Path,
    name: &str,
    bytes: &[u8],
    executable: bool,
) -> std::io::Result<()> {
    let target = parent.join(name);
    if std::fs::symlink_metadata(&target).is_ok_and(|metadata| metadata.is_dir()) {
        return Err(std::io::Error::new(
            ErrorKind::IsADirectory,
            "a folder is in the way",
        ));
    }
    let mode = if executable { 0o755 } else { 0o644 };
    fs::write_atomic(
        &target,
        bytes,
        AtomicWrite {
            mode: Some(mode),
            replace: true,
        },
    )
}

fn sync_dir(dir: &Path) -> Result<(), EntryError> {
    fs::sync_dir(dir).map_err(io_error("sync", dir))
}

/// Turns an I/O failure on `path` into an [`EntryError`] saying what was being done.
fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EntryError {
    let path = path.to_owned();
    move |error| EntryError::Io {
        action,
        path,
        error,
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard, padded base64.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (idx, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if idx <= chunk.len() {
                out.push(char::from(BASE64_ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard, padded base64; `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let value = |byte: u8| -> Option<u32> {
        Some(u32::from(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let n_chunks = text.len() / 4;
    for (idx, chunk) in text.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|&&byte| byte == b'=').count();
        if padding > 2 || (padding > 0 && idx + 1 != n_chunks) {
            return None;
        }
        let mut n = 0u32;
        for &byte in &chunk[..4 - padding] {
            n = (n << 6) | value(byte)?;
        }
        n <<= 6 * padding as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Some(out)
}

fn base64_decoded_len(text: &str) -> u64 {
    let padding = text.bytes().rev().take_while(|&byte| byte == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding) as u64
}

/// Prints a repair report as text, ending with whether the game is intact (on standard
/// error).
pub fn print(stdout: &mut impl Write, report: &RepairReport) -> anyhow::Result<()> {
    for path in &report.found.missing {
        writeln!(stdout, "missing   {path}")?;
    }
    for path in &report.found.changed {
        writeln!(stdout, "changed   {path}")?;
    }
    for path in &report.after.extra {
        writeln!(stdout, "extra     {path} (left alone)")?;
    }
    for entry in &report.repaired {
        if entry.method == "local" {
            writeln!(
                stdout,
                "repaired  {} (remade from the manifest)",
                entry.path
            )?;
        } else {
            writeln!(
                stdout,
                "repaired  {} ({}, {} received for {})",
                entry.path,
                entry.method,
                human_size(entry.delta_bytes),
                human_size(entry.size)
            )?;
        }
    }
    for failure in &report.failed {
        writeln!(stdout, "failed    {}: {}", failure.path, failure.error)?;
    }
    let game = &report.game;
    let version = report.version.as_deref().unwrap_or("?");
    if !report.after.is_clean() {
        eprintln!(
            "{game} is still damaged after the repair: {} missing, {} changed; reinstall it \
             with `mist uninstall {game}` and `mist install {game}`",
            report.after.missing.len(),
            report.after.changed.len()
        );
        return Ok(());
    }
    eprintln!(
        "{game} {version} is intact: {} repaired, {} downloaded for {} of files ({} not from \
         the game left alone)",
        count(report.repaired.len() as u64, "file"),
        human_size(report.downloaded_bytes),
        human_size(report.repaired_bytes),
        count(report.after.extra.len() as u64, "extra file"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, encoded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(base64_encode(plain), encoded);
            assert_eq!(base64_decode(encoded).as_deref(), Some(plain));
            assert_eq!(base64_decoded_len(encoded), plain.len() as u64);
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn symlinked_folders_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("data")).unwrap();
        assert!(safe_parent(tmp.path(), "data/secret").is_err());
        assert!(read_local(tmp.path(), "data/secret").is_err());
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        let (parent, name) = safe_parent(tmp.path(), "real/file").unwrap();
        assert_eq!((parent, name.as_str()), (tmp.path().join("real"), "file"));
    }

    #[test]
    fn files_are_replaced_atomically_with_the_manifest_mode() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("game")).unwrap();
        write_atomically(tmp.path(), "game", b"binary", true).unwrap();
        let metadata = std::fs::symlink_metadata(tmp.path().join("game")).unwrap();
        assert!(metadata.is_file());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read(tmp.path().join("game")).unwrap(), b"binary");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
