//! Reading and copying files while checking them against what the manifest says.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::manifest::FileInfo;
use crate::treedelta::format::{TreeDeltaError, io_error};

/// Reads a whole old file, refusing one longer than the manifest says.
pub(crate) fn read_at_most(file: File, size: u64, shown: &Path) -> Result<Vec<u8>, TreeDeltaError> {
    let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
    file.take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(shown, "read"))?;
    if bytes.len() as u64 != size {
        return Err(TreeDeltaError::SourceMismatch(format!(
            "{} is {} bytes, expected {size}",
            shown.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Copies `src` into `out`, checking its size and hash against `info`.
pub(crate) fn copy_verified(
    mut src: File,
    out: &mut File,
    info: FileInfo,
    shown: &Path,
) -> Result<(), TreeDeltaError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; (1 << 20).min(info.size as usize + 1)];
    let mut n_copied = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(shown, "read")(error)),
        };
        n_copied += n as u64;
        if n_copied > info.size {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error(shown, "copy"))?;
    }
    if n_copied != info.size || *hasher.finalize().as_bytes() != info.hash.0 {
        return Err(TreeDeltaError::SourceMismatch(format!(
            "{} does not have the content the delta expects",
            shown.display()
        )));
    }
    Ok(())
}
