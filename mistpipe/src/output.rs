//! The files `mistpipe` writes (spec scaffolds, hooks, schemas, deltas): each whole or not
//! at all, through `mist_platform::fs`, so a crash or a full disk never leaves half a file;
//! and the check every spec text passes before it is written.

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

/// Parses `text` as a spec of `kind` and checks it against the kind's schema; the first
/// problem found, if any. Returns the parsed document.
pub(crate) fn check_spec_text(
    text: &str,
    kind: mist_specs::model::Kind,
) -> Result<mist_specs::yaml::Node, String> {
    let root = mist_specs::yaml::parse(text, mist_specs::yaml::Limits::default())
        .map_err(|errors| format!("not valid YAML: {}", errors[0].message))?;
    match mist_specs::schema::validate(&kind.json_schema(), &root)
        .into_iter()
        .next()
    {
        Some(violation) => Err(violation.message),
        None => Ok(root),
    }
}
