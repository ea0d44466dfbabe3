//! The files `mistpipe` writes (spec scaffolds, hooks, schemas, deltas): each whole or not
//! at all, through `mist_platform::fs`, so a crash or a full disk never leaves half a file.

use std::io::{BufWriter, ErrorKind, Write};
use std::path::Path;

use anyhow::Context;
use mist_platform::fs::{self, AtomicWrite};

use crate::failure::Failure;

/// Writes the new file `path` with `bytes` (and `mode`, or the system's default); fails
/// with an invalid-input error if `path` exists, so nothing is ever overwritten.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    let options = AtomicWrite {
        mode,
        replace: false,
    };
    fs::write_atomic(path, bytes, options).map_err(|error| match error.kind() {
        ErrorKind::AlreadyExists => Failure::invalid(format!(
            "{} already exists; not overwriting it",
            path.display()
        )),
        _ => anyhow::Error::new(error).context(format!("cannot create {}", path.display())),
    })
}

/// Replaces `path` (or creates it) with what `fill` writes.
pub(crate) fn write_replacing(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    fs::write_atomic_with(path, AtomicWrite::default(), |file| {
        let mut out = BufWriter::new(file);
        fill(&mut out)?;
        out.flush()?;
        Ok::<_, anyhow::Error>(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}
