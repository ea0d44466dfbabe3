//! Reading a package: its header and index checked when it is opened, its file deltas read
//! on demand and checked when used.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mist_delta::decode;
use mist_delta::format::{self as file_format, DeltaError};

use crate::manifest::{EntryKind, FileHash, Manifest};
use crate::treedelta::format::{HEADER_LEN, Header, TreeDeltaError, corrupt, io_error};
use crate::treedelta::index::{Index, Op};
use crate::treedelta::stats::Stats;

/// Random access to the bytes of a package: a file, or bytes in memory.
pub trait ReadAt: Send + Sync {
    /// Fills `buf` from `offset`, failing if the data ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The total length in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    self,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                done += n;
            }
            Ok(())
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= self.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

/// An opened package whose header and index have been checked; file deltas are read on
/// demand and checked when used.
pub struct Package {
    header: Header,
    index: Index,
    data: Box<dyn ReadAt>,
    /// What the package was read from, for error messages.
    origin: PathBuf,
    /// The operations of each shared file delta, by its offset, in index order.
    groups: HashMap<u64, Vec<usize>>,
    /// Decoded shared file deltas that members still need.
    slots: Mutex<HashMap<u64, std::sync::Arc<GroupSlot>>>,
}

impl std::fmt::Debug for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Package")
            .field("header", &self.header)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Package {
    /// Opens a package file and checks its header and index.
    pub fn open(path: &Path) -> Result<Package, TreeDeltaError> {
        let file = File::open(path).map_err(io_error(path, "open"))?;
        Package::read(Box::new(file), path)
    }

    /// Reads a package held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Package, TreeDeltaError> {
        Package::read(Box::new(bytes), Path::new("<memory>"))
    }

    /// Reads and checks the header and index of the package in `data`; `origin` names it in
    /// errors.
    pub fn read(data: Box<dyn ReadAt>, origin: &Path) -> Result<Package, TreeDeltaError> {
        let size = data.size().map_err(io_error(origin, "read"))?;
        let mut head = vec![0u8; (size.min(HEADER_LEN as u64)) as usize];
        data.read_exact_at(&mut head, 0)
            .map_err(io_error(origin, "read"))?;
        let header = Header::parse(&head)?;
        if size != header.package_len() {
            return Err(TreeDeltaError::Corrupt(format!(
                "the package is {size} bytes but its header says {} (truncated or extended)",
                header.package_len()
            )));
        }
        let mut stored = vec![0u8; header.index_len as usize];
        data.read_exact_at(&mut stored, header.index_range().start)
            .map_err(io_error(origin, "read"))?;
        let index = Index::from_stored(&header, &stored)?;
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (idx, op) in index.ops.iter().enumerate() {
            if let Some(range) = op.blob_range() {
                groups.entry(range.start).or_default().push(idx);
            }
        }
        groups.retain(|_, members| members.len() > 1);
        Ok(Package {
            header,
            index,
            data,
            origin: origin.to_owned(),
            groups,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The checked index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The target manifest, rebuilt from `source` (the manifest of the version the delta
    /// applies to) and the index.
    ///
    /// Fails with [`TreeDeltaError::WrongSource`] if `source` does not hash to the header's
    /// source digest, and with [`TreeDeltaError::Corrupt`] if the index does not fit the
    /// source (removes or reads a path the source lacks), gives a malformed manifest, or
    /// gives one that does not hash to the header's target digest.
    pub fn target_manifest(&self, source: &Manifest) -> Result<Manifest, TreeDeltaError> {
        self.check_source(source)?;
        let target = self.index.target_from(source)?;
        if target.tree_digest() != self.header.target {
            return Err(corrupt(
                "the target manifest rebuilt from the index does not match the header's target digest",
            ));
        }
        Ok(target)
    }

    /// Checks that `source` is the manifest of the version the delta applies to.
    pub fn check_source(&self, source: &Manifest) -> Result<(), TreeDeltaError> {
        let found = source.tree_digest();
        if found != self.header.source {
            return Err(TreeDeltaError::WrongSource {
                expected: self.header.source,
                found,
            });
        }
        Ok(())
    }

    /// What the package holds, per kind of operation; `source` is the manifest of the
    /// version the delta applies to (see [`Package::target_manifest`]).
    pub fn stats(&self, source: &Manifest) -> Result<Stats, TreeDeltaError> {
        let target = self.target_manifest(source)?;
        Ok(self.index.stats(&self.header, source, &target))
    }

    /// The raw file delta of a payload operation (unchecked; [`Package::rebuild`] checks it).
    pub fn blob(&self, op: &Op) -> Result<Vec<u8>, TreeDeltaError> {
        let Some(range) = op.blob_range() else {
            return Ok(Vec::new());
        };
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| corrupt("a file delta is too large for this machine"))?;
        let mut blob = vec![0u8; len];
        self.data
            .read_exact_at(&mut blob, self.header.body_start() + range.start)
            .map_err(io_error(&self.origin, "read"))?;
        Ok(blob)
    }

    /// The payload operations that share `op`'s file delta, in index order (`op` alone
    /// for a file delta of its own; nothing for `copy` and `mode`).
    ///
    /// Small files are diffed together: their bases, concatenated in index order, are the
    /// old input of one file delta, and their targets, concatenated, its output. They then
    /// share one compression context and may copy from each other's bases.
    pub fn members<'a>(&'a self, op: &'a Op) -> Vec<&'a Op> {
        let Some(range) = op.blob_range() else {
            return Vec::new();
        };
        match self.groups.get(&range.start) {
            Some(members) => members.iter().map(|&idx| &self.index.ops[idx]).collect(),
            None => vec![op],
        }
    }

    /// Rebuilds the target file of a `patch` or `add` operation, checking that its file
    /// delta is the one the manifests promise before decoding it ([`check_blob`]) and the
    /// output after. `read_base(path, size)` gives the content of a source file: the
    /// operation's base, or, for a file delta shared by several files, each member's base.
    ///
    /// `source` is the manifest [`Package::target_manifest`] accepted; only the bases'
    /// entries are looked up in it (its digest is not recomputed per file). A shared file
    /// delta is decoded once; its output is kept until every member has been taken (or the
    /// package is dropped), at most [`GROUP_MAX`] bytes per group.
    ///
    /// [`GROUP_MAX`]: crate::treedelta::format::GROUP_MAX
    pub fn rebuild<E: From<TreeDeltaError>>(
        &self,
        source: &Manifest,
        op: &Op,
        read_base: &ReadBase<'_, E>,
    ) -> Result<Vec<u8>, E> {
        let members = self.members(op);
        let file_error = |source| TreeDeltaError::FileDelta {
            path: op.path().to_owned(),
            source,
        };
        if members.len() <= 1 {
            let blob = self.blob(op)?;
            check_blob(source, &[op], &blob)?;
            let base = match op {
                Op::Patch { base, .. } => read_base(base, base_entry(source, base)?.0)?,
                _ => Vec::new(),
            };
            return Ok(decode::apply(&base, &blob).map_err(file_error)?);
        }
        let offset = op.blob_range().map_or(0, |range| range.start);
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(offset)
            .or_insert_with(|| {
                std::sync::Arc::new(GroupSlot {
                    output: Mutex::new(None),
                    remaining: AtomicUsize::new(members.len()),
                })
            })
            .clone();
        let output = {
            let mut output = slot
                .output
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match &*output {
                Some(done) => std::sync::Arc::clone(done),
                None => {
                    let blob = self.blob(op)?;
                    check_blob(source, &members, &blob)?;
                    let mut bases = Vec::new();
                    for member in &members {
                        if let Op::Patch { base, .. } = member {
                            bases.extend_from_slice(&read_base(base, base_entry(source, base)?.0)?);
                        }
                    }
                    let done =
                        std::sync::Arc::new(decode::apply(&bases, &blob).map_err(file_error)?);
                    *output = Some(std::sync::Arc::clone(&done));
                    done
                }
            }
        };
        let mut start = 0u64;
        for member in &members {
            let (size, hash) = target_of(member);
            if member.path() == op.path() {
                let range = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(start + size).ok())
                    .filter(|(_, end)| *end <= output.len())
                    .ok_or_else(|| corrupt("a shared file delta is shorter than its files"))?;
                let bytes = output[range.0..range.1].to_vec();
                if *blake3::hash(&bytes).as_bytes() != hash.0 {
                    return Err(TreeDeltaError::FileDelta {
                        path: op.path().to_owned(),
                        source: DeltaError::Corrupt(
                            "the rebuilt file does not have the hash the index gives".into(),
                        ),
                    }
                    .into());
                }
                if slot.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.slots
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .remove(&offset);
                }
                return Ok(bytes);
            }
            start += size;
        }
        Err(corrupt("an operation is not a member of its own file delta").into())
    }
}

/// How [`Package::rebuild`] reads a source file: `(path, size)` to its content.
pub type ReadBase<'a, E> = dyn Fn(&str, u64) -> Result<Vec<u8>, E> + 'a;

/// The decoded output of a shared file delta, while members still need it.
struct GroupSlot {
    output: Mutex<Option<std::sync::Arc<Vec<u8>>>>,
    remaining: AtomicUsize,
}

/// The size and hash of a payload operation's target file.
fn target_of(op: &Op) -> (u64, FileHash) {
    match op {
        Op::Patch { size, blake3, .. } | Op::Add { size, blake3, .. } => (*size, *blake3),
        Op::Copy { .. } | Op::Mode { .. } => (0, FileHash(*blake3::hash(b"").as_bytes())),
    }
}

/// The size and hash of the source file `base`.
fn base_entry(source: &Manifest, base: &str) -> Result<(u64, FileHash), TreeDeltaError> {
    source
        .entries
        .binary_search_by(|entry| entry.path.as_str().cmp(base))
        .ok()
        .and_then(|idx| match source.entries[idx].kind {
            EntryKind::File { size, blake3, .. } => Some((size, blake3)),
            _ => None,
        })
        .ok_or_else(|| TreeDeltaError::Corrupt(format!("{base:?} is not a source file")))
}

/// Checks a fetched file delta against the (already validated) index and the source
/// manifest: its own checksum, and that it turns exactly the source's entries for the bases
/// of `members` (see [`Package::members`]) into exactly their targets. For one file both
/// sizes and hashes are compared; for a shared file delta the sizes of the concatenations
/// (its hashes are checked when it is applied, and each member's output after).
pub fn check_blob(
    source: &Manifest,
    members: &[&Op],
    blob: &[u8],
) -> Result<file_format::Header, TreeDeltaError> {
    let path = members.first().map_or("", |op| op.path());
    let file_header =
        file_format::read_header(blob).map_err(|source| TreeDeltaError::FileDelta {
            path: path.to_owned(),
            source,
        })?;
    let empty = FileHash(*blake3::hash(b"").as_bytes());
    let mut base = (0u64, empty);
    let mut target = (0u64, empty);
    for op in members {
        match op {
            Op::Patch { base: from, .. } => {
                let entry = base_entry(source, from)?;
                base = (base.0 + entry.0, entry.1);
            }
            Op::Add { .. } => {}
            Op::Copy { .. } | Op::Mode { .. } => {
                return Err(TreeDeltaError::Corrupt(format!(
                    "{:?} has no file delta",
                    op.path()
                )));
            }
        }
        let (size, hash) = target_of(op);
        target = (target.0 + size, hash);
    }
    let belongs = if members.len() == 1 {
        (file_header.target_size, FileHash(file_header.target_hash)) == target
            && (file_header.source_size, FileHash(file_header.source_hash)) == base
    } else {
        file_header.target_size == target.0 && file_header.source_size == base.0
    };
    if !belongs {
        return Err(TreeDeltaError::Corrupt(format!(
            "the file delta stored for {path:?} belongs to other files"
        )));
    }
    Ok(file_header)
}
