//! The commit journal: every step of a commit, written whole or not at all.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::install::fault::{fault_point, sync};
use crate::install::location::Staging;
use crate::install::{InstallError, io_error};
use crate::manifest::{FileHash, TreeDigest};
use crate::treedelta::format::check_untrusted_path;

/// One commit step. In the journal: `{"step":"place","path":…,"object":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum Step {
    /// Move the old file or symlink at `path` to `backup/<slot>`.
    Backup { path: String, slot: u64 },
    /// Remove the old directory at `path` if it is empty (files in neither manifest keep it).
    RemoveDir { path: String },
    /// Make the directory `path`.
    MakeDir { path: String },
    /// Move `objects/<object>` to `path`.
    Place { path: String, object: String },
    /// Make the symlink `path` → `target`.
    Symlink { path: String, target: String },
    /// Change the permission bits of the file `path` from `from` to `to`.
    Chmod { path: String, from: u32, to: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Journal {
    pub(crate) source: TreeDigest,
    pub(crate) target: TreeDigest,
    pub(crate) steps: Vec<Step>,
}

pub(crate) const JOURNAL: &str = "journal";

pub(crate) const JOURNAL_TMP: &str = "journal.tmp";

pub(crate) const ROLLBACK: &str = "rollback";

pub(crate) const JOURNAL_MAGIC: &str = "MISTJRNL1";

/// Writes the journal: `MISTJRNL1`, newline, the BLAKE3 hex of the JSON, newline, the JSON.
/// Written to `journal.tmp`, fsynced and renamed, so `journal` is complete or absent.
pub(crate) fn write_journal(staging: &Staging, journal: &Journal) -> Result<(), InstallError> {
    let json = serde_json::to_vec(journal).expect("a journal always serializes");
    let mut bytes = format!("{JOURNAL_MAGIC}\n{}\n", blake3::hash(&json).to_hex()).into_bytes();
    bytes.extend_from_slice(&json);
    let tmp_path = staging.path.join(JOURNAL_TMP);
    staging
        .dir
        .remove_tree(JOURNAL_TMP, &mut || {})
        .map_err(io_error(&tmp_path, "remove"))?;
    let mut file = staging
        .dir
        .create_file(JOURNAL_TMP, 0o600)
        .map_err(io_error(&tmp_path, "create"))?;
    file.write_all(&bytes)
        .map_err(io_error(&tmp_path, "write"))?;
    fault_point();
    file.sync_all().map_err(io_error(&tmp_path, "sync"))?;
    fault_point();
    drop(file);
    staging
        .dir
        .rename(JOURNAL_TMP, &staging.dir, JOURNAL)
        .map_err(io_error(&tmp_path, "rename"))?;
    fault_point();
    sync(&staging.dir, &staging.path)
}

pub(crate) fn read_journal(staging: &Staging, name: &str) -> Result<Option<Journal>, InstallError> {
    let path = staging.path.join(name);
    if staging
        .dir
        .stat(name)
        .map_err(io_error(&path, "inspect"))?
        .is_none()
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    staging
        .dir
        .open_file(name)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(io_error(&path, "read"))?;
    let damaged = |detail: &str| InstallError::Journal {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    let mut parts = bytes.splitn(3, |b| *b == b'\n');
    let (Some(magic), Some(hash), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(damaged("truncated"));
    };
    if magic != JOURNAL_MAGIC.as_bytes() {
        return Err(damaged("unknown format"));
    }
    if hash != blake3::hash(json).to_hex().as_bytes() {
        return Err(damaged("checksum mismatch"));
    }
    let journal: Journal =
        serde_json::from_slice(json).map_err(|e| damaged(&format!("does not parse: {e}")))?;
    for step in &journal.steps {
        let path = step.path();
        check_untrusted_path(path).map_err(|reason| damaged(&format!("{path:?}: {reason}")))?;
        if let Step::Place { object, .. } = step
            && !is_object_name(object)
        {
            return Err(damaged(&format!("bad object name {object:?}")));
        }
    }
    Ok(Some(journal))
}

pub(crate) fn is_object_name(name: &str) -> bool {
    let (hash, copy) = name.split_once('.').unwrap_or((name, "1"));
    hash.parse::<FileHash>().is_ok() && !copy.is_empty() && copy.bytes().all(|b| b.is_ascii_digit())
}

impl Step {
    pub(crate) fn path(&self) -> &str {
        match self {
            Step::Backup { path, .. }
            | Step::RemoveDir { path }
            | Step::MakeDir { path }
            | Step::Place { path, .. }
            | Step::Symlink { path, .. }
            | Step::Chmod { path, .. } => path,
        }
    }
}
