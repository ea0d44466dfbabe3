//! Writing a pack: a build as one deterministic tar stream, compressed by zstd.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use mist_platform::fs::{is_executable, is_symlink_refusal, open_nofollow};

use crate::manifest::{Entry, EntryKind, Manifest};
use crate::pack::{
    BLOCK_LEN, COPY_BUF_LEN, LONG_WINDOW_MIN_LEN, NAME_FIELD_LEN, PackError, PackInfo, TYPE_DIR,
    TYPE_FILE, TYPE_LONG_LINK, TYPE_LONG_NAME, TYPE_SYMLINK, WINDOW_LOG_MAX, io_error, padded,
    read_retrying, tar_len,
};

/// Writes the build at `root`, described by `manifest`, to `out` as a pack, and returns
/// its sizes.
///
/// Entries are written in manifest order: directories with mode `0o755`, files with
/// `0o755` or `0o644` by their executable bit, symlinks with `0o777`; mtime, uid and gid
/// are 0 and names are empty. `level` is the zstd level (1–22); large packs use a
/// 128 MiB window with long-distance matching, which [`unpack`](crate::pack::read::unpack) accepts.
///
/// Every file's bytes are checked against the manifest while being packed, and so are
/// its size, executable bit, and each directory's and symlink's presence and target: a
/// build that changed since its scan is an error. On error, `out` holds a partial pack
/// and must be discarded. Paths below `root` are not checked for symlinks that replaced
/// directories after the scan, but any file read through one would still have to hash
/// as the manifest says.
pub fn write_pack(
    root: &Path,
    manifest: &Manifest,
    out: impl Write,
    level: i32,
) -> Result<PackInfo, PackError> {
    manifest.validate()?;
    let tar_len = tar_len(manifest);
    let mut counter = CountingWriter {
        inner: out,
        n_written: 0,
    };
    let mut encoder =
        zstd::stream::write::Encoder::new(&mut counter, level).map_err(PackError::Write)?;
    encoder
        .set_pledged_src_size(Some(tar_len))
        .map_err(PackError::Write)?;
    encoder.include_checksum(true).map_err(PackError::Write)?;
    encoder
        .include_contentsize(true)
        .map_err(PackError::Write)?;
    if tar_len > LONG_WINDOW_MIN_LEN {
        encoder
            .window_log(WINDOW_LOG_MAX)
            .map_err(PackError::Write)?;
        encoder
            .long_distance_matching(true)
            .map_err(PackError::Write)?;
    }
    let mut buf = vec![0u8; COPY_BUF_LEN];
    for entry in &manifest.entries {
        append_entry(&mut encoder, root, entry, &mut buf)?;
    }
    encoder
        .write_all(&[0; 2 * BLOCK_LEN as usize])
        .map_err(PackError::Write)?;
    // A pledged size that differs from what was written fails here, which would mean
    // `tar_len` no longer describes the writer.
    encoder.finish().map_err(PackError::Write)?;
    counter.flush().map_err(PackError::Write)?;
    Ok(PackInfo {
        tar_len,
        pack_len: counter.n_written,
    })
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    n_written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n_written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A header with everything that could vary fixed: GNU magic, mtime, uid and gid 0, empty
/// user and group names. Names longer than a field are cut, as GNU tar does; the long-name
/// entry before the header holds the whole name.
fn header(name: &[u8], entry_type: u8, mode: u32, size: u64, link_name: &[u8]) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let fields = header.as_old_mut();
    let name = &name[..name.len().min(NAME_FIELD_LEN)];
    fields.name[..name.len()].copy_from_slice(name);
    let link_name = &link_name[..link_name.len().min(NAME_FIELD_LEN)];
    fields.linkname[..link_name.len()].copy_from_slice(link_name);
    fields.linkflag = [entry_type];
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_cksum();
    header
}

/// Writes `data` followed by zeros up to the next block boundary.
fn write_padded(out: &mut impl Write, data: &[u8]) -> Result<(), PackError> {
    out.write_all(data).map_err(PackError::Write)?;
    write_padding(out, data.len() as u64)
}

fn write_padding(out: &mut impl Write, len: u64) -> Result<(), PackError> {
    let n_zeros = (padded(len) - len) as usize;
    out.write_all(&[0; BLOCK_LEN as usize][..n_zeros])
        .map_err(PackError::Write)
}

/// Writes a GNU long-name (`L`) or long-link (`K`) entry when `name` does not fit a field.
fn write_long_name(out: &mut impl Write, entry_type: u8, name: &[u8]) -> Result<(), PackError> {
    if name.len() <= NAME_FIELD_LEN {
        return Ok(());
    }
    let mut data = name.to_vec();
    data.push(0);
    let long = header(b"././@LongLink", entry_type, 0o644, data.len() as u64, b"");
    out.write_all(long.as_bytes()).map_err(PackError::Write)?;
    write_padded(out, &data)
}

fn append_entry(
    out: &mut impl Write,
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<(), PackError> {
    let path = root.join(&entry.path);
    let name = entry.path.as_bytes();
    let changed = |detail: &str| PackError::Changed {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    match &entry.kind {
        EntryKind::Dir => {
            let metadata =
                fs::symlink_metadata(&path).map_err(io_error(&path, "read metadata of"))?;
            if !metadata.is_dir() {
                return Err(changed("it is no longer a directory"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            let dir_header = header(name, TYPE_DIR, 0o755, 0, b"");
            out.write_all(dir_header.as_bytes())
                .map_err(PackError::Write)
        }
        EntryKind::Symlink { target } => {
            let found = fs::read_link(&path).map_err(io_error(&path, "read symlink"))?;
            if found.as_os_str() != target.as_str() {
                return Err(changed("the symlink points elsewhere"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            write_long_name(out, TYPE_LONG_LINK, target.as_bytes())?;
            let link_header = header(name, TYPE_SYMLINK, 0o777, 0, target.as_bytes());
            out.write_all(link_header.as_bytes())
                .map_err(PackError::Write)
        }
        EntryKind::File {
            size,
            executable,
            blake3,
        } => {
            // Opened without following a symlink that replaced the file, and without blocking
            // if a fifo did.
            let file = match open_nofollow(&path) {
                Ok(file) => file,
                Err(error) if is_symlink_refusal(&error) => {
                    return Err(changed("it was replaced by a symlink"));
                }
                Err(error) => return Err(io_error(&path, "open")(error)),
            };
            let metadata = file
                .metadata()
                .map_err(io_error(&path, "read metadata of"))?;
            if !metadata.is_file() {
                return Err(changed("it is no longer a regular file"));
            }
            if metadata.len() != *size {
                return Err(changed(&format!(
                    "{} bytes in the manifest, {} on disk",
                    size,
                    metadata.len()
                )));
            }
            if is_executable(&metadata) != *executable {
                return Err(changed("its executable bit differs from the manifest"));
            }
            write_long_name(out, TYPE_LONG_NAME, name)?;
            let mode = if *executable { 0o755 } else { 0o644 };
            let file_header = header(name, TYPE_FILE, mode, *size, b"");
            out.write_all(file_header.as_bytes())
                .map_err(PackError::Write)?;
            let mut hasher = blake3::Hasher::new();
            let mut remaining = *size;
            let mut reader = &file;
            while remaining > 0 {
                let want = remaining.min(buf.len() as u64) as usize;
                let n_read = read_retrying(&mut reader, &mut buf[..want])
                    .map_err(io_error(&path, "read"))?;
                if n_read == 0 {
                    return Err(changed("it became shorter while being packed"));
                }
                hasher.update(&buf[..n_read]);
                out.write_all(&buf[..n_read]).map_err(PackError::Write)?;
                remaining -= n_read as u64;
            }
            if read_retrying(&mut reader, &mut buf[..1]).map_err(io_error(&path, "read"))? != 0 {
                return Err(changed("it became longer while being packed"));
            }
            if hasher.finalize().as_bytes() != &blake3.0 {
                return Err(changed("its contents no longer hash as the manifest says"));
            }
            write_padding(out, *size)
        }
    }
}
