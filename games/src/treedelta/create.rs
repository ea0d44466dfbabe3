//! Making a package: two builds compared, every changed file diffed (small ones also in
//! groups), and the header, index and file deltas written in a deterministic order.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use mist_delta::encode::{self, DiffOptions};
use mist_delta::format::{self as file_format, Method};
use mist_platform::fs::open_regular_nofollow;

use crate::manifest::{EntryKind, FileInfo, Manifest, files_by_path};
use crate::parallel::{Budget, run_parallel};
use crate::treedelta::choice::{Planned, PlannedOp, plan};
use crate::treedelta::format::{GROUP_MAX, Header, TreeDeltaError, check_untrusted_path, io_error};
use crate::treedelta::index::{Index, Op, Symlink};
use crate::treedelta::stats::Stats;

/// The zstd level of the index; the index is small, so the strongest common level is cheap.
const INDEX_ZSTD_LEVEL: i32 = 19;

/// The largest file (base plus target, in bytes) that joins a group.
const GROUP_FILE_MAX: u64 = 8 << 20;

/// Settings for [`create`].
#[derive(Debug, Clone, Copy)]
pub struct CreateOptions {
    /// How each file delta is made. Its LZMA preset is lowered per file to the smallest one
    /// whose dictionary covers the file (presets 6–9 differ only in dictionary size), which
    /// gives the same compression with far less memory.
    pub file: DiffOptions,
    /// The most memory all diffs running at once may use, in bytes; large files wait for
    /// each other rather than run together.
    pub memory_budget: u64,
    /// Diff threads; 0 means one per CPU.
    pub threads: usize,
    /// The most bytes (bases plus targets) of small files diffed together as one shared
    /// file delta, where that is smaller than their own; 0 gives every file its own. A
    /// client rebuilding any of them holds the whole group in memory. At most [`GROUP_MAX`].
    pub group_max: u64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            file: DiffOptions::default(),
            memory_budget: 4 << 30,
            threads: 0,
            group_max: GROUP_MAX,
        }
    }
}

/// Scans both builds and writes a tree delta that turns `old_root` into `new_root`.
///
/// `progress(bytes_done, bytes_total)` counts the new files' bytes as their diffs finish.
/// Returns what the package holds.
pub fn create(
    old_root: &Path,
    new_root: &Path,
    out: &mut dyn Write,
    options: &CreateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Stats, TreeDeltaError> {
    let old = crate::scan::scan(old_root)?;
    let new = crate::scan::scan(new_root)?;
    create_from_manifests(
        Build {
            root: old_root,
            manifest: &old,
        },
        Build {
            root: new_root,
            manifest: &new,
        },
        out,
        options,
        progress,
    )
}

/// A build folder and its manifest.
#[derive(Debug, Clone, Copy)]
pub struct Build<'a> {
    /// The folder.
    pub root: &'a Path,
    /// Its manifest, e.g. from [`crate::scan::scan`]; files are checked against it as
    /// they are read.
    pub manifest: &'a Manifest,
}

/// Like [`create`], with manifests the caller already has (a server records one per
/// version).
pub fn create_from_manifests(
    old: Build<'_>,
    new: Build<'_>,
    out: &mut dyn Write,
    options: &CreateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Stats, TreeDeltaError> {
    for entry in old.manifest.entries.iter().chain(&new.manifest.entries) {
        check_untrusted_path(&entry.path).map_err(|reason| TreeDeltaError::UnsupportedPath {
            path: entry.path.clone(),
            reason,
        })?;
    }
    let planned = plan(old.manifest, new.manifest);
    let new_files = files_by_path(new.manifest);
    let old_files = files_by_path(old.manifest);
    let spool_file = tempfile::tempfile().map_err(io_error(Path::new("<temp dir>"), "create"))?;
    let diffs = Diffs {
        old,
        new,
        old_files: &old_files,
        new_files: &new_files,
        options,
        budget: Budget::new(options.memory_budget),
        spool: Mutex::new((spool_file, 0u64)),
    };
    let mut blob_of = diff_files(&diffs, &planned, progress)?;
    diff_groups(&diffs, &planned, &mut blob_of)?;
    let (ops, body_parts, body_len) = lay_out(&planned, &new_files, &blob_of);
    let index = Index {
        ops,
        ..tree_difference(old.manifest, new.manifest)
    };
    debug_assert_eq!(
        index.target_from(old.manifest).ok().as_ref(),
        Some(new.manifest)
    );
    let raw = serde_json::to_vec(&index).expect("an index always serializes");
    let stored = zstd::stream::encode_all(&raw[..], INDEX_ZSTD_LEVEL)
        .map_err(io_error(Path::new("<index>"), "compress"))?;
    let header = Header {
        index_len: stored.len() as u64,
        index_raw_len: raw.len() as u64,
        body_len,
        source: old.manifest.tree_digest(),
        target: new.manifest.tree_digest(),
        index_hash: *blake3::hash(&stored).as_bytes(),
    };
    let spool = diffs
        .spool
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
        .0;
    write_package(out, &header, &stored, spool, &body_parts)?;
    Ok(index.stats(&header, old.manifest, new.manifest))
}

/// What the diffs of one package share: both builds and their files, the settings, the
/// memory budget, and the spool the file deltas are written to as they finish, with its
/// length.
struct Diffs<'a> {
    old: Build<'a>,
    new: Build<'a>,
    old_files: &'a HashMap<&'a str, FileInfo>,
    new_files: &'a HashMap<&'a str, FileInfo>,
    options: &'a CreateOptions,
    budget: Budget,
    spool: Mutex<(File, u64)>,
}

/// Where each payload operation's file delta is, by its index in the plan: whether it is a
/// patch (rather than the file on its own), and its offset and length in the spool.
type BlobOf = HashMap<usize, (bool, u64, u64)>;

/// Diffs every payload file on its own, largest first so the long ones start early.
fn diff_files(
    diffs: &Diffs<'_>,
    planned: &[PlannedOp],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<BlobOf, TreeDeltaError> {
    let (old_files, new_files) = (diffs.old_files, diffs.new_files);
    let mut jobs: Vec<Job<'_>> = planned
        .iter()
        .enumerate()
        .filter_map(|(planned_idx, planned)| {
            let base = match &planned.kind {
                Planned::Patch { base } => Some(base.as_str()),
                Planned::Add => None,
                Planned::Copy { .. } | Planned::Mode => return None,
            };
            let new_size = new_files[planned.path.as_str()].size;
            let base_size = base.map_or(0, |base| old_files[base].size);
            Some(Job {
                planned_idx,
                path: &planned.path,
                base,
                memory: diff_memory(base_size, new_size, &diffs.options.file),
                new_size,
            })
        })
        .collect();
    jobs.sort_by(|a, b| {
        b.memory
            .cmp(&a.memory)
            .then_with(|| a.planned_idx.cmp(&b.planned_idx))
    });
    let total: u64 = jobs.iter().map(|job| job.new_size).sum();
    let progress_state = Mutex::new(0u64);
    progress(0, total);

    let blobs: Vec<(usize, bool, u64, u64)> = run_parallel(&jobs, diffs.options.threads, |job| {
        let _memory = diffs.budget.acquire(job.memory);
        let (is_patch, blob) = diff_job(diffs, job)?;
        let spool_at = spool_append(&diffs.spool, &blob)?;
        {
            let mut done = progress_state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            *done += job.new_size;
            progress(*done, total);
        }
        Ok::<_, TreeDeltaError>((job.planned_idx, is_patch, spool_at, blob.len() as u64))
    })?;
    let mut blob_of: BlobOf = HashMap::new();
    for (planned_idx, is_patch, spool_at, len) in blobs {
        blob_of.insert(planned_idx, (is_patch, spool_at, len));
    }
    Ok(blob_of)
}

/// The file delta of one payload file, and whether it is a patch: a delta that found
/// nothing better than compressing the file alone would still make the client read and
/// check the base, so it is made again as an added file.
fn diff_job(diffs: &Diffs<'_>, job: &Job<'_>) -> Result<(bool, Vec<u8>), TreeDeltaError> {
    let (old_files, new_files) = (diffs.old_files, diffs.new_files);
    let new_bytes = read_build_file(diffs.new.root, job.path, new_files[job.path])?;
    let base_bytes = match job.base {
        Some(base) => read_build_file(diffs.old.root, base, old_files[base])?,
        None => Vec::new(),
    };
    let file_options = tuned(
        &diffs.options.file,
        job.new_size.max(base_bytes.len() as u64),
    );
    let diff_error = |source| TreeDeltaError::FileDelta {
        path: job.path.to_owned(),
        source,
    };
    let mut blob = encode::diff(&base_bytes, &new_bytes, &file_options).map_err(diff_error)?;
    let mut is_patch = job.base.is_some();
    if is_patch && file_format::read_header(&blob).map_err(diff_error)?.method == Method::Full {
        blob = encode::diff(&[], &new_bytes, &file_options).map_err(diff_error)?;
        is_patch = false;
    }
    Ok((is_patch, blob))
}

/// Appends a file delta to the spool and returns where it starts.
fn spool_append(spool: &Mutex<(File, u64)>, blob: &[u8]) -> Result<u64, TreeDeltaError> {
    let mut spool = spool.lock().unwrap_or_else(|poison| poison.into_inner());
    let at = spool.1;
    spool
        .0
        .write_all(blob)
        .map_err(io_error(Path::new("<temp file>"), "write"))?;
    spool.1 += blob.len() as u64;
    Ok(at)
}

/// Diffs small files again, together in groups: one compression context instead of one per
/// file, and matches across files. A group replaces its members' own file deltas only where
/// it is smaller than they are together.
fn diff_groups(
    diffs: &Diffs<'_>,
    planned: &[PlannedOp],
    blob_of: &mut BlobOf,
) -> Result<(), TreeDeltaError> {
    let groups = plan_groups(
        planned,
        blob_of,
        (diffs.old_files, diffs.new_files),
        diffs.options.group_max.min(GROUP_MAX),
    );
    let shared = run_parallel(&groups, diffs.options.threads, |members| {
        diff_group(diffs, planned, blob_of, members)
    })?;
    for (members, shared) in groups.iter().zip(shared) {
        if let Some((spool_at, len)) = shared {
            for idx in members {
                let is_patch = blob_of[idx].0;
                blob_of.insert(*idx, (is_patch, spool_at, len));
            }
        }
    }
    Ok(())
}

/// The shared file delta of one group, spooled, or `None` where the members' own are
/// smaller.
fn diff_group(
    diffs: &Diffs<'_>,
    planned: &[PlannedOp],
    blob_of: &BlobOf,
    members: &[usize],
) -> Result<Option<(u64, u64)>, TreeDeltaError> {
    let (old_files, new_files) = (diffs.old_files, diffs.new_files);
    let (mut bases, mut targets) = (Vec::new(), Vec::new());
    for &planned_idx in members {
        let planned = &planned[planned_idx];
        if let (Planned::Patch { base }, (true, _, _)) = (&planned.kind, blob_of[&planned_idx]) {
            bases.extend(read_build_file(
                diffs.old.root,
                base,
                old_files[base.as_str()],
            )?);
        }
        targets.extend(read_build_file(
            diffs.new.root,
            &planned.path,
            new_files[planned.path.as_str()],
        )?);
    }
    let _memory = diffs.budget.acquire(diff_memory(
        bases.len() as u64,
        targets.len() as u64,
        &diffs.options.file,
    ));
    let file_options = tuned(&diffs.options.file, bases.len().max(targets.len()) as u64);
    let blob = encode::diff(&bases, &targets, &file_options).map_err(|source| {
        TreeDeltaError::FileDelta {
            path: planned[members[0]].path.clone(),
            source,
        }
    })?;
    let separate: u64 = members.iter().map(|idx| blob_of[idx].2).sum();
    if blob.len() as u64 >= separate {
        return Ok(None);
    }
    let at = spool_append(&diffs.spool, &blob)?;
    Ok(Some((at, blob.len() as u64)))
}

/// Lays the file deltas out in index order: the operations, the spool ranges the body is
/// made of in order, and the body's length. A shared file delta is placed once, where its
/// first member is.
fn lay_out(
    planned: &[PlannedOp],
    new_files: &HashMap<&str, FileInfo>,
    blob_of: &BlobOf,
) -> (Vec<Op>, Vec<(u64, u64)>, u64) {
    let mut ops = Vec::with_capacity(planned.len());
    let mut body_parts: Vec<(u64, u64)> = Vec::new();
    let mut placed: HashMap<u64, u64> = HashMap::new();
    let mut offset = 0u64;
    for (planned_idx, planned) in planned.iter().enumerate() {
        let path = planned.path.clone();
        let file = new_files[path.as_str()];
        let op = match &planned.kind {
            Planned::Copy { from } => Op::Copy {
                path,
                from: from.clone(),
                executable: file.executable,
            },
            Planned::Mode => Op::Mode { path },
            Planned::Patch { .. } | Planned::Add => {
                let (is_patch, spool_at, len) = blob_of[&planned_idx];
                let at = match placed.get(&spool_at) {
                    Some(&at) => at,
                    None => {
                        body_parts.push((spool_at, len));
                        placed.insert(spool_at, offset);
                        offset += len;
                        offset - len
                    }
                };
                match &planned.kind {
                    Planned::Patch { base } if is_patch => Op::Patch {
                        path,
                        base: base.clone(),
                        size: file.size,
                        executable: file.executable,
                        blake3: file.hash,
                        offset: at,
                        len,
                    },
                    _ => Op::Add {
                        path,
                        size: file.size,
                        executable: file.executable,
                        blake3: file.hash,
                        offset: at,
                        len,
                    },
                }
            }
        };
        ops.push(op);
    }
    (ops, body_parts, offset)
}

/// Writes the package: the header, the stored index, then the body copied from the spool
/// part by part.
fn write_package(
    out: &mut dyn Write,
    header: &Header,
    stored: &[u8],
    mut spool: File,
    body_parts: &[(u64, u64)],
) -> Result<(), TreeDeltaError> {
    let output = Path::new("<output>");
    out.write_all(&header.encode())
        .map_err(io_error(output, "write"))?;
    out.write_all(stored).map_err(io_error(output, "write"))?;
    let mut buf = vec![0u8; 1 << 20];
    for &(spool_at, len) in body_parts {
        spool
            .seek(SeekFrom::Start(spool_at))
            .map_err(io_error(Path::new("<temp file>"), "seek"))?;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            spool
                .read_exact(&mut buf[..n])
                .map_err(io_error(Path::new("<temp file>"), "read"))?;
            out.write_all(&buf[..n])
                .map_err(io_error(output, "write"))?;
            left -= n as u64;
        }
    }
    out.flush().map_err(io_error(output, "write"))
}

/// The index's lists besides the operations: the source paths the target lacks, and the
/// target's directories and symlinks that the source lacks at their path or has otherwise.
fn tree_difference(old: &Manifest, new: &Manifest) -> Index {
    let old_kinds: HashMap<&str, &EntryKind> = old
        .entries
        .iter()
        .map(|entry| (entry.path.as_str(), &entry.kind))
        .collect();
    let new_paths: HashSet<&str> = new.entries.iter().map(|e| e.path.as_str()).collect();
    let removed = old
        .entries
        .iter()
        .filter(|entry| !new_paths.contains(entry.path.as_str()))
        .map(|entry| entry.path.clone())
        .collect();
    let mut dirs = Vec::new();
    let mut symlinks = Vec::new();
    for entry in &new.entries {
        if old_kinds.get(entry.path.as_str()) == Some(&&entry.kind) {
            continue;
        }
        match &entry.kind {
            EntryKind::Dir => dirs.push(entry.path.clone()),
            EntryKind::Symlink { target } => symlinks.push(Symlink {
                path: entry.path.clone(),
                target: target.clone(),
            }),
            // Files are the operations'.
            EntryKind::File { .. } => {}
        }
    }
    Index {
        removed,
        dirs,
        symlinks,
        ops: Vec::new(),
    }
}

struct Job<'a> {
    planned_idx: usize,
    path: &'a str,
    base: Option<&'a str>,
    memory: u64,
    new_size: u64,
}

/// The groups of small payload files worth diffing together: in index order, each file
/// (its base, if its own delta used one, plus its target) at most [`GROUP_FILE_MAX`] bytes,
/// each group at most `group_max` bytes and of at least two files.
fn plan_groups(
    planned: &[PlannedOp],
    blob_of: &HashMap<usize, (bool, u64, u64)>,
    (old_files, new_files): (&HashMap<&str, FileInfo>, &HashMap<&str, FileInfo>),
    group_max: u64,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut bytes = 0u64;
    for (planned_idx, planned) in planned.iter().enumerate() {
        let Some(&(is_patch, _, _)) = blob_of.get(&planned_idx) else {
            continue;
        };
        let base_size = match &planned.kind {
            Planned::Patch { base } if is_patch => old_files[base.as_str()].size,
            _ => 0,
        };
        let size = base_size + new_files[planned.path.as_str()].size;
        if size > GROUP_FILE_MAX.min(group_max) {
            continue;
        }
        if bytes + size > group_max {
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        groups
            .last_mut()
            .expect("there is a group")
            .push(planned_idx);
    }
    groups.retain(|group| group.len() > 1);
    groups
}

/// About what one diff needs at its peak: both files, the suffix array and streams (see
/// `mist_delta::encode`), and three LZMA encoders running in parallel.
fn diff_memory(base_size: u64, new_size: u64, options: &DiffOptions) -> u64 {
    let lzma = tuned(options, base_size.max(new_size))
        .lzma_preset
        .map_or(0, |preset| 3 * lzma_encoder_memory(preset));
    6 * base_size + 4 * new_size + lzma + (64 << 20)
}

/// liblzma's documented encoder memory for the normal-mode presets.
fn lzma_encoder_memory(preset: u32) -> u64 {
    const MIB: u64 = 1 << 20;
    match preset {
        0..=3 => 32 * MIB,
        4..=6 => 94 * MIB,
        7 => 186 * MIB,
        8 => 370 * MIB,
        _ => 674 * MIB,
    }
}

/// `options` for one file of `input_len` bytes: LZMA presets 6–9 differ only in dictionary
/// size (8, 16, 32, 64 MiB), and a dictionary larger than the input gains nothing.
fn tuned(options: &DiffOptions, input_len: u64) -> DiffOptions {
    const MIB: u64 = 1 << 20;
    let needed = match input_len {
        0..=8_388_608 => 6,
        n if n <= 16 * MIB => 7,
        n if n <= 32 * MIB => 8,
        _ => 9,
    };
    DiffOptions {
        lzma_preset: options.lzma_preset.map(|preset| {
            if preset > 6 {
                preset.min(needed)
            } else {
                preset
            }
        }),
        ..*options
    }
}

/// Reads a file of a build and checks it is still what the manifest says.
fn read_build_file(root: &Path, rel: &str, info: FileInfo) -> Result<Vec<u8>, TreeDeltaError> {
    let path = root.join(rel);
    let mut file = open_regular_nofollow(&path).map_err(io_error(&path, "open"))?;
    let mut bytes = Vec::with_capacity(info.size.min(1 << 30) as usize);
    (&mut file)
        .take(info.size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(&path, "read"))?;
    if bytes.len() as u64 != info.size || *blake3::hash(&bytes).as_bytes() != info.hash.0 {
        return Err(TreeDeltaError::Changed { path });
    }
    Ok(bytes)
}
