//! File deltas: a small, versioned container around a bsdiff-style patch.
//!
//! [`diff`] turns an old and a new file into a patch; [`apply`] turns the old file and the
//! patch back into the new file. Apply refuses an old file whose size or BLAKE3 hash differs
//! from the one recorded, refuses a patch whose trailing checksum does not match (so any bit
//! flip or truncation is caught before any work), and verifies the output's hash before
//! returning it. The container is specified byte by byte in `docs/delta.md`.
//!
//! The match search is bsdiff's (see [`crate::matcher`]); what differs is how its output is
//! stored. The controls are written column by column as varints, the differences with runs
//! of zeros shortened, and each of the three streams is compressed with whichever of zstd and
//! LZMA makes it smaller — on real executables LZMA wins on the difference and literal
//! streams by about a tenth, and zstd on tiny streams.
//!
//! Memory: diffing needs about `5 × old + 3 × new` bytes (the suffix array is 4 bytes per
//! old byte); inputs beyond [`DiffOptions::memory_budget`] fall back to zstd with the old
//! file as a reference prefix ([`Method::Prefix`]), or to the new file compressed alone.
//! Applying needs about `old + new` bytes.

use std::collections::HashMap;
use std::io::{Read, Write};

use rayon::prelude::*;

use crate::matcher::{self, Control, SearchParams};

/// The first eight bytes of every file delta.
pub const MAGIC: &[u8; 8] = b"MISTFDLT";
/// The container version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the stream table: magic, version, method, two reserved bytes, sizes,
/// hashes, stream count.
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 32 + 32 + 4;
/// One stream-table row: codec, raw length, stored length.
const STREAM_ROW_LEN: usize = 1 + 8 + 8;
/// The trailer: BLAKE3 of everything before it.
const TRAILER_LEN: usize = 32;
/// Streams up to this size are also tried with zstd when LZMA is on.
const ZSTD_TRY_MAX: usize = 256 * 1024;
/// The largest input the suffix-array search handles.
pub const MAX_DIFF_INPUT: usize = suffix_array::MAX_LENGTH;

/// How the new file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// The new file alone, compressed: one stream.
    Full = 0,
    /// bsdiff-style: control, run, difference-literal and extra streams.
    Diff = 1,
    /// The new file compressed by zstd with the old file as reference prefix: one stream.
    Prefix = 2,
    /// As [`Method::Diff`], but the differences of x86 relative calls and jumps are taken
    /// against where their targets moved (see [`predict_branches`]), not against the old
    /// bytes.
    DiffX86 = 3,
}

impl Method {
    /// Whether the delta is made of the four bsdiff-style streams.
    pub fn is_diff(self) -> bool {
        matches!(self, Method::Diff | Method::DiffX86)
    }
}

/// How a stream's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// As they are.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// One xz stream (LZMA2, no integrity check: the trailer covers it).
    Lzma = 2,
}

/// Settings for [`diff`].
#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    /// zstd level (1–22) for zstd streams.
    pub zstd_level: i32,
    /// LZMA preset (0–9, with [`DiffOptions::lzma_extreme`]); `None` disables LZMA.
    pub lzma_preset: Option<u32>,
    /// Use the slower "extreme" LZMA variant.
    pub lzma_extreme: bool,
    /// The most memory the diff may use, in bytes.
    pub memory_budget: u64,
    /// Match search tuning.
    pub search: SearchParams,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            zstd_level: 19,
            lzma_preset: Some(9),
            lzma_extreme: false,
            memory_budget: 4 << 30,
            search: SearchParams::default(),
        }
    }
}

/// Why a delta could not be made or applied.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Not a Mist file delta at all.
    #[error("not a Mist file delta (bad magic)")]
    BadMagic,
    /// Made by a newer Mist.
    #[error(
        "file delta format version {0} is not supported (this Mist reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    /// Damaged: truncated, bit-flipped or inconsistent.
    #[error("corrupt file delta: {0}")]
    Corrupt(String),
    /// The old file is not the one the delta was made from.
    #[error(
        "the old file does not match the delta: expected {expected_size} bytes with BLAKE3 {expected}, found {found_size} bytes with {found}"
    )]
    SourceMismatch {
        /// Hash the delta was made from.
        expected: String,
        /// Size the delta was made from.
        expected_size: u64,
        /// Hash of what was given.
        found: String,
        /// Size of what was given.
        found_size: u64,
    },
    /// The output did not hash as recorded.
    #[error("the rebuilt file does not match: expected BLAKE3 {expected}, found {found}")]
    TargetMismatch {
        /// What the delta promises.
        expected: String,
        /// What came out.
        found: String,
    },
    /// Compressing or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The fixed part of a delta: what it turns into what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The encoding.
    pub method: Method,
    /// Old file size.
    pub source_size: u64,
    /// New file size.
    pub target_size: u64,
    /// Old file BLAKE3.
    pub source_hash: [u8; 32],
    /// New file BLAKE3.
    pub target_hash: [u8; 32],
}

/// One stream of a delta as stored, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// How it is stored.
    pub codec: Codec,
    /// Bytes once decoded.
    pub raw_len: u64,
    /// Bytes in the delta.
    pub stored_len: u64,
}

/// A stream as it will be stored; a raw stream borrows its input instead of copying it,
/// so a huge file stored uncompressed is never held twice.
struct Stream<'a> {
    codec: Codec,
    raw_len: u64,
    stored: std::borrow::Cow<'a, [u8]>,
}

/// Makes a delta that turns `old` into `new`.
pub fn diff(old: &[u8], new: &[u8], options: &DiffOptions) -> Result<Vec<u8>, DeltaError> {
    let header = Header {
        method: Method::Diff,
        source_size: old.len() as u64,
        target_size: new.len() as u64,
        source_hash: *hash(old).as_bytes(),
        target_hash: *hash(new).as_bytes(),
    };
    if old.is_empty() || new.is_empty() {
        return full(header, new, options);
    }
    let needed = 5 * old.len() as u64 + 3 * new.len() as u64;
    if old.len() > MAX_DIFF_INPUT || needed > options.memory_budget {
        // zstd with the old file as reference prefix needs about old + new + its window.
        if old.len() < (1 << 31) && 2 * (old.len() + new.len()) as u64 <= options.memory_budget {
            return prefix(header, old, new, options);
        }
        return full(header, new, options);
    }
    let mut suffix_array = suffix_array::SuffixArray::new(old);
    suffix_array.enable_buckets();
    let controls = matcher::search(old, new, &suffix_array, options.search);
    drop(suffix_array);
    // Branch prediction is kept where it leaves fewer differences to store: on executables
    // whose code or call targets moved, far fewer; elsewhere it changes next to nothing.
    let predictor = Predictor::new(&controls, learn_targets(old, new, &controls));
    let use_prediction = changed_bytes(old, new, &controls, Some(&predictor))
        < changed_bytes(old, new, &controls, None);
    let [ctrl, runs, literals, extra] =
        encode_streams(old, new, &controls, use_prediction.then_some(&predictor));
    let targets = if use_prediction {
        predictor.encode_targets()
    } else {
        Vec::new()
    };
    let streams = if use_prediction {
        compress_streams(&[&ctrl, &runs, &literals, &extra, &targets], options)?
    } else {
        compress_streams(&[&ctrl, &runs, &literals, &extra], options)?
    };
    let header = Header {
        method: if use_prediction {
            Method::DiffX86
        } else {
            Method::Diff
        },
        ..header
    };
    let patch = assemble(header, &streams);
    // Where the delta is no smaller than the new file compressed on its own, store that.
    // Compressing a large file is costly, so this is tried only when the delta is not
    // clearly smaller (a fifth of the raw size is about what zstd reaches on executables).
    if patch.len() as u64 * 5 >= new.len() as u64 || new.len() < (1 << 20) {
        let whole = full(header, new, options)?;
        if whole.len() <= patch.len() {
            return Ok(whole);
        }
    }
    Ok(patch)
}

fn full(header: Header, new: &[u8], options: &DiffOptions) -> Result<Vec<u8>, DeltaError> {
    let streams = compress_streams(&[new], options)?;
    Ok(assemble(
        Header {
            method: Method::Full,
            ..header
        },
        &streams,
    ))
}

fn prefix(
    header: Header,
    old: &[u8],
    new: &[u8],
    options: &DiffOptions,
) -> Result<Vec<u8>, DeltaError> {
    let mut stored = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(
        &mut stored,
        options.zstd_level.min(19),
        old,
    )?;
    encoder.window_log(window_log_for(old.len() + new.len()))?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(false)?;
    encoder.write_all(new)?;
    encoder.finish()?;
    let stream = Stream {
        codec: Codec::Zstd,
        raw_len: new.len() as u64,
        stored: stored.into(),
    };
    Ok(assemble(
        Header {
            method: Method::Prefix,
            ..header
        },
        &[stream],
    ))
}

/// BLAKE3 of `data`, on every core for large inputs (the hashes of both files are a good
/// part of applying a delta).
fn hash(data: &[u8]) -> blake3::Hash {
    if data.len() < (1 << 20) {
        return blake3::hash(data);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_rayon(data);
    hasher.finalize()
}

fn window_log_for(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 31)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(data: &[u8], at: &mut usize) -> Result<u64, DeltaError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data
            .get(*at)
            .ok_or_else(|| corrupt("a stream ends inside a number"))?;
        *at += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a number is longer than 64 bits"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Where each add region of the old file went in the new file, by old position, and where
/// branch targets went: what [`predict_branches`] moves call and jump targets through.
pub(crate) struct Predictor {
    /// `(old_pos, new_pos, len)` of every non-empty add region, sorted by `old_pos` (ties
    /// keep control order).
    regions: Vec<(usize, usize, usize)>,
    /// Old branch targets and their new addresses, sorted by old target: learned from the
    /// files by the encoder (where most branches to a target agree) and stored in the delta.
    /// A linker that drops one PLT entry moves every later entry by 16 bytes while the code
    /// calling them stays; no alignment of the bytes can tell that.
    targets: Vec<(u64, u64)>,
}

impl Predictor {
    fn new(controls: &[Control], targets: Vec<(u64, u64)>) -> Predictor {
        let mut regions = Vec::with_capacity(controls.len());
        let mut new_pos = 0usize;
        for c in controls {
            if c.add > 0 {
                regions.push((c.old_pos, new_pos, c.add));
            }
            new_pos += c.add + c.copy;
        }
        regions.sort_by_key(|&(old_pos, _, _)| old_pos);
        Predictor { regions, targets }
    }

    /// Where the old byte at `old_pos` is in the new file, if the last region starting at
    /// or before it covers it.
    fn aligned(&self, old_pos: usize) -> Option<usize> {
        let idx = self
            .regions
            .partition_point(|&(start, _, _)| start <= old_pos)
            .checked_sub(1)?;
        let (start, new_start, len) = self.regions[idx];
        (old_pos - start < len).then(|| new_start + (old_pos - start))
    }

    /// Where the branch target `old_target` is expected in the new file.
    fn new_target(&self, old_target: u64) -> Option<u64> {
        match self
            .targets
            .binary_search_by_key(&old_target, |&(old, _)| old)
        {
            Ok(idx) => Some(self.targets[idx].1),
            Err(_) => usize::try_from(old_target)
                .ok()
                .and_then(|target| self.aligned(target))
                .map(|target| target as u64),
        }
    }

    /// Encodes the target table: the count, then the old targets as ascending gaps, then
    /// each new address as a zigzag offset from its old one, all varints.
    fn encode_targets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.targets.len() * 3 + 1);
        put_varint(&mut out, self.targets.len() as u64);
        let mut previous = 0u64;
        for &(old, _) in &self.targets {
            put_varint(&mut out, old - previous);
            previous = old;
        }
        for &(old, new) in &self.targets {
            put_varint(&mut out, zigzag(new.wrapping_sub(old) as i64));
        }
        out
    }

    /// Reads a target table written by [`Predictor::encode_targets`].
    fn decode_targets(stream: &[u8], old_len: u64) -> Result<Vec<(u64, u64)>, DeltaError> {
        let mut at = 0usize;
        let count = get_varint(stream, &mut at)?;
        if count > stream.len() as u64 {
            return Err(corrupt("target count exceeds the target stream"));
        }
        let mut targets = Vec::with_capacity(count as usize);
        let mut previous = 0u64;
        for idx in 0..count {
            let gap = get_varint(stream, &mut at)?;
            if idx > 0 && gap == 0 {
                return Err(corrupt("branch targets out of order"));
            }
            previous = previous
                .checked_add(gap)
                .filter(|target| *target < old_len)
                .ok_or_else(|| corrupt("a branch target lies outside the old file"))?;
            targets.push((previous, 0));
        }
        for target in &mut targets {
            let offset = unzigzag(get_varint(stream, &mut at)?);
            target.1 = target.0.wrapping_add(offset as u64);
        }
        if at != stream.len() {
            return Err(corrupt("the target stream has unused bytes"));
        }
        Ok(targets)
    }
}

/// Calls every x86 `call rel32` (E8) and `jmp rel32` (E9) in the old bytes of the add
/// region `c` (starting at `new_pos` in the new file) with its offset in the region and its
/// old target. Like the BCJ filter, an opcode counts only if its operand reaches within
/// ±16 MiB (the top byte is 00 or FF) and the target is inside the old file; after a branch
/// the scan goes on behind its operand. Only old bytes are read, so the encoder and the
/// decoder see the same branches.
fn for_each_branch(old: &[u8], c: &Control, mut visit: impl FnMut(usize, u64)) {
    let region = &old[c.old_pos..c.old_pos + c.add];
    let mut i = 0usize;
    while i + 5 <= region.len() {
        let Some(found) = memchr::memchr2(0xE8, 0xE9, &region[i..region.len() - 4]) else {
            return;
        };
        i += found;
        if !matches!(region[i + 4], 0x00 | 0xFF) {
            i += 1;
            continue;
        }
        let rel = i32::from_le_bytes([region[i + 1], region[i + 2], region[i + 3], region[i + 4]]);
        let target = (c.old_pos + i + 5) as i64 + i64::from(rel);
        if let Ok(target) = u64::try_from(target)
            && target < old.len() as u64
        {
            visit(i, target);
        }
        i += 5;
    }
}

/// Rewrites, in `base` (the old bytes of add region `c`, which starts at `new_pos` in the
/// new file), the operand of every branch (see [`for_each_branch`]) to reach where its
/// target is expected in the new file: then a branch whose target moved as predicted
/// differs by nothing.
fn predict_branches(
    old: &[u8],
    c: &Control,
    new_pos: usize,
    predictor: &Predictor,
    base: &mut [u8],
) {
    for_each_branch(old, c, |i, target| {
        if let Some(new_target) = predictor.new_target(target) {
            let predicted = new_target as i64 - (new_pos + i + 5) as i64;
            if let Ok(predicted) = i32::try_from(predicted) {
                base[i + 1..i + 5].copy_from_slice(&predicted.to_le_bytes());
            }
        }
    });
}

/// Learns the target table: for every old branch target, the new address most of its
/// branches reach in the new file, kept where that differs from what the alignment predicts
/// and at least two branches agree (a single one costs about what its entry would).
fn learn_targets(old: &[u8], new: &[u8], controls: &[Control]) -> Vec<(u64, u64)> {
    let aligned = Predictor::new(controls, Vec::new());
    let mut votes: HashMap<u64, HashMap<u64, u32>> = HashMap::new();
    let mut new_pos = 0usize;
    for c in controls {
        for_each_branch(old, c, |i, target| {
            let site = new_pos + i;
            let rel =
                i32::from_le_bytes([new[site + 1], new[site + 2], new[site + 3], new[site + 4]]);
            let new_target = (site + 5) as i64 + i64::from(rel);
            if let Ok(new_target) = u64::try_from(new_target) {
                *votes
                    .entry(target)
                    .or_default()
                    .entry(new_target)
                    .or_default() += 1;
            }
        });
        new_pos += c.add + c.copy;
    }
    let mut targets: Vec<(u64, u64)> = votes
        .into_iter()
        .filter_map(|(target, counts)| {
            let (&best, &count) = counts
                .iter()
                .max_by_key(|&(new_target, count)| (*count, std::cmp::Reverse(*new_target)))?;
            (count >= 2 && aligned.new_target(target) != Some(best)).then_some((target, best))
        })
        .collect();
    targets.sort_unstable();
    targets
}

/// The bytes the new file's add region `c` (at `new_pos`) is diffed against: the old bytes,
/// with branch operands predicted when there is a predictor (written into `scratch`).
fn add_base<'a>(
    old: &'a [u8],
    c: &Control,
    new_pos: usize,
    predictor: Option<&Predictor>,
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    let old_region = &old[c.old_pos..c.old_pos + c.add];
    match predictor {
        Some(predictor) => {
            scratch.clear();
            scratch.extend_from_slice(old_region);
            predict_branches(old, c, new_pos, predictor, scratch);
            scratch
        }
        None => old_region,
    }
}

/// How many bytes of the add regions differ from their base, with or without prediction.
fn changed_bytes(
    old: &[u8],
    new: &[u8],
    controls: &[Control],
    predictor: Option<&Predictor>,
) -> usize {
    let mut changed = 0;
    let mut new_pos = 0usize;
    let mut scratch = Vec::new();
    for c in controls {
        let base = add_base(old, c, new_pos, predictor, &mut scratch);
        changed += new[new_pos..new_pos + c.add]
            .iter()
            .zip(base)
            .filter(|(n, o)| n != o)
            .count();
        new_pos += c.add + c.copy;
    }
    changed
}

/// Splits the controls into four streams.
///
/// - controls: the count, then every `add` length, every `copy` length and every seek
///   (zigzag), each column as varints — columns compress better than interleaved rows;
/// - runs: the differences `new - old` over the add regions, all add regions concatenated,
///   described as alternating varints: a run of zero differences, then a run of non-zero
///   ones;
/// - literals: the non-zero differences themselves;
/// - extra: the copy regions as they are.
///
/// Keeping run lengths apart from difference bytes compresses better than either the raw
/// differences or an inline run-length code, and leaves a small stream to decode.
fn encode_streams(
    old: &[u8],
    new: &[u8],
    controls: &[Control],
    predictor: Option<&Predictor>,
) -> [Vec<u8>; 4] {
    let mut ctrl = Vec::with_capacity(controls.len() * 6);
    put_varint(&mut ctrl, controls.len() as u64);
    for c in controls {
        put_varint(&mut ctrl, c.add as u64);
    }
    for c in controls {
        put_varint(&mut ctrl, c.copy as u64);
    }
    let mut expected_old = 0usize;
    for c in controls {
        put_varint(&mut ctrl, zigzag(c.old_pos as i64 - expected_old as i64));
        expected_old = c.old_pos + c.add;
    }

    let mut runs = Vec::new();
    let mut literals = Vec::new();
    let mut extra = Vec::new();
    let (mut zeros, mut nonzeros) = (0u64, 0u64);
    let mut new_pos = 0usize;
    let mut scratch = Vec::new();
    for c in controls {
        let base = add_base(old, c, new_pos, predictor, &mut scratch);
        for (n, o) in new[new_pos..new_pos + c.add].iter().zip(base) {
            let d = n.wrapping_sub(*o);
            if d == 0 {
                if nonzeros > 0 {
                    put_varint(&mut runs, zeros);
                    put_varint(&mut runs, nonzeros);
                    (zeros, nonzeros) = (0, 0);
                }
                zeros += 1;
            } else {
                nonzeros += 1;
                literals.push(d);
            }
        }
        new_pos += c.add;
        extra.extend_from_slice(&new[new_pos..new_pos + c.copy]);
        new_pos += c.copy;
    }
    if zeros > 0 || nonzeros > 0 {
        put_varint(&mut runs, zeros);
        put_varint(&mut runs, nonzeros);
    }
    debug_assert_eq!(new_pos, new.len());
    [ctrl, runs, literals, extra]
}

fn compress_streams<'a>(
    streams: &[&'a [u8]],
    options: &DiffOptions,
) -> Result<Vec<Stream<'a>>, DeltaError> {
    use rayon::prelude::*;
    streams
        .par_iter()
        .map(|raw| compress_one(raw, options))
        .collect()
}

/// Compresses one stream with each coder and keeps the smallest (raw if nothing helps).
fn compress_one<'a>(raw: &'a [u8], options: &DiffOptions) -> Result<Stream<'a>, DeltaError> {
    let raw_len = raw.len() as u64;
    let mut best = Stream {
        codec: Codec::Raw,
        raw_len,
        stored: std::borrow::Cow::Borrowed(raw),
    };
    if raw.is_empty() {
        return Ok(best);
    }
    // LZMA made every stream over a few hundred KiB of real executables 7–12 % smaller than
    // zstd -19 (measured on ruff 0.5.6 → 0.5.7), so zstd is only tried where LZMA is off or
    // the stream is small enough for the attempt to cost nothing.
    if options.lzma_preset.is_none() || raw.len() <= ZSTD_TRY_MAX {
        // The one-shot API tells zstd the input size, so small inputs get small tables;
        // a streaming encoder sets up level-19 tables for an unknown size (~50 ms each).
        use zstd::zstd_safe::CParameter;
        let mut compressor = zstd::bulk::Compressor::new(options.zstd_level)?;
        compressor.include_checksum(false)?;
        compressor.set_parameter(CParameter::WindowLog(window_log_for(raw.len())))?;
        if raw.len() > (8 << 20) {
            compressor.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
        }
        let stored = compressor.compress(raw)?;
        if stored.len() < best.stored.len() {
            best = Stream {
                codec: Codec::Zstd,
                raw_len,
                stored: stored.into(),
            };
        }
    }
    if let Some(preset) = options.lzma_preset {
        let lzma_error = |e: liblzma::stream::Error| DeltaError::Io(std::io::Error::other(e));
        let preset = preset.min(9)
            | if options.lzma_extreme {
                liblzma::stream::PRESET_EXTREME
            } else {
                0
            };
        let mut lzma_options =
            liblzma::stream::LzmaOptions::new_preset(preset).map_err(lzma_error)?;
        // A dictionary larger than the input only costs set-up time and memory.
        let dict = (raw.len() as u64).next_power_of_two().clamp(4096, 64 << 20) as u32;
        lzma_options.dict_size(dict);
        let mut filters = liblzma::stream::Filters::new();
        filters.lzma2(&lzma_options);
        let stream =
            liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::None)
                .map_err(lzma_error)?;
        let mut encoder =
            liblzma::write::XzEncoder::new_stream(Vec::with_capacity(raw.len() / 2), stream);
        encoder.write_all(raw)?;
        let stored = encoder.finish()?;
        if stored.len() < best.stored.len() {
            best = Stream {
                codec: Codec::Lzma,
                raw_len,
                stored: stored.into(),
            };
        }
    }
    Ok(best)
}

fn assemble(header: Header, streams: &[Stream]) -> Vec<u8> {
    let body: usize = streams.iter().map(|s| s.stored.len()).sum();
    let mut out =
        Vec::with_capacity(HEADER_LEN + streams.len() * STREAM_ROW_LEN + body + TRAILER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[FORMAT_VERSION, header.method as u8, 0, 0]);
    out.extend_from_slice(&header.source_size.to_le_bytes());
    out.extend_from_slice(&header.target_size.to_le_bytes());
    out.extend_from_slice(&header.source_hash);
    out.extend_from_slice(&header.target_hash);
    out.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for s in streams {
        out.push(s.codec as u8);
        out.extend_from_slice(&s.raw_len.to_le_bytes());
        out.extend_from_slice(&(s.stored.len() as u64).to_le_bytes());
    }
    for s in streams {
        out.extend_from_slice(&s.stored);
    }
    let trailer = blake3::hash(&out);
    out.extend_from_slice(trailer.as_bytes());
    out
}

struct Parsed<'p> {
    header: Header,
    streams: Vec<(StreamInfo, &'p [u8])>,
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

fn corrupt(message: &str) -> DeltaError {
    DeltaError::Corrupt(message.to_string())
}

/// Reads and checks a delta's header and checksum without applying it.
pub fn read_header(patch: &[u8]) -> Result<Header, DeltaError> {
    parse(patch).map(|p| p.header)
}

/// The streams a delta holds, for `--stats`.
pub fn streams(patch: &[u8]) -> Result<Vec<StreamInfo>, DeltaError> {
    parse(patch).map(|p| p.streams.into_iter().map(|(info, _)| info).collect())
}

fn parse(patch: &[u8]) -> Result<Parsed<'_>, DeltaError> {
    if patch.len() < MAGIC.len() || &patch[..MAGIC.len()] != MAGIC {
        return Err(DeltaError::BadMagic);
    }
    if patch.len() < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt("truncated header"));
    }
    if patch[8] != FORMAT_VERSION {
        return Err(DeltaError::UnsupportedVersion(patch[8]));
    }
    let (content, trailer) = patch.split_at(patch.len() - TRAILER_LEN);
    if blake3::hash(content).as_bytes() != trailer {
        return Err(corrupt("checksum mismatch (truncated or damaged)"));
    }
    let method = match patch[9] {
        0 => Method::Full,
        1 => Method::Diff,
        2 => Method::Prefix,
        3 => Method::DiffX86,
        m => return Err(DeltaError::Corrupt(format!("unknown method {m}"))),
    };
    if patch[10] != 0 || patch[11] != 0 {
        return Err(corrupt("reserved header bytes are set"));
    }
    let mut source_hash = [0u8; 32];
    source_hash.copy_from_slice(&patch[28..60]);
    let mut target_hash = [0u8; 32];
    target_hash.copy_from_slice(&patch[60..92]);
    let header = Header {
        method,
        source_size: le_u64(&patch[12..20]),
        target_size: le_u64(&patch[20..28]),
        source_hash,
        target_hash,
    };
    let mut count = [0u8; 4];
    count.copy_from_slice(&patch[92..96]);
    let n_streams = u32::from_le_bytes(count) as usize;
    let expected_streams = match method {
        Method::Diff => 4,
        Method::DiffX86 => 5,
        Method::Full | Method::Prefix => 1,
    };
    if n_streams != expected_streams {
        return Err(corrupt("wrong number of streams"));
    }
    let table_end = HEADER_LEN + n_streams * STREAM_ROW_LEN;
    if content.len() < table_end {
        return Err(corrupt("truncated stream table"));
    }
    let mut streams = Vec::with_capacity(n_streams);
    let mut at = table_end;
    for row in content[HEADER_LEN..table_end].chunks_exact(STREAM_ROW_LEN) {
        let codec = match row[0] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            2 => Codec::Lzma,
            c => return Err(DeltaError::Corrupt(format!("unknown codec {c}"))),
        };
        let info = StreamInfo {
            codec,
            raw_len: le_u64(&row[1..9]),
            stored_len: le_u64(&row[9..17]),
        };
        let stored_len =
            usize::try_from(info.stored_len).map_err(|_| corrupt("stream too long"))?;
        let end = at
            .checked_add(stored_len)
            .filter(|e| *e <= content.len())
            .ok_or_else(|| corrupt("a stream runs past the end"))?;
        if codec == Codec::Raw && info.raw_len != info.stored_len {
            return Err(corrupt("raw stream length mismatch"));
        }
        streams.push((info, &content[at..end]));
        at = end;
    }
    if at != content.len() {
        return Err(corrupt("bytes after the last stream"));
    }
    Ok(Parsed { header, streams })
}

fn decompress(
    info: StreamInfo,
    stored: &[u8],
    limit: u64,
    prefix: Option<&[u8]>,
) -> Result<Vec<u8>, DeltaError> {
    if info.raw_len > limit {
        return Err(corrupt("a stream is larger than its bound"));
    }
    let raw_len = usize::try_from(info.raw_len).map_err(|_| corrupt("stream too long"))?;
    let mut out = Vec::with_capacity(raw_len);
    // Reading one byte more than promised notices a stream that is too long without ever
    // holding more than that.
    let result = match info.codec {
        Codec::Raw => {
            out.extend_from_slice(stored);
            Ok(out.len())
        }
        Codec::Zstd => {
            let mut decoder = match prefix {
                Some(p) => zstd::stream::read::Decoder::with_ref_prefix(stored, p)?,
                None => zstd::stream::read::Decoder::with_buffer(stored)?,
            };
            decoder.window_log_max(31)?;
            decoder.take(info.raw_len + 1).read_to_end(&mut out)
        }
        Codec::Lzma => liblzma::read::XzDecoder::new(stored)
            .take(info.raw_len + 1)
            .read_to_end(&mut out),
    };
    result.map_err(|e| {
        DeltaError::Corrupt(format!("a {:?} stream does not decode: {e}", info.codec))
    })?;
    if out.len() != raw_len {
        return Err(corrupt("a stream's length differs from its header"));
    }
    Ok(out)
}

/// Rebuilds the new file from `old` and `patch`, verifying both hashes.
pub fn apply(old: &[u8], patch: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let parsed = parse(patch)?;
    let header = parsed.header;
    // The streams of a diff decode (bounded by the header) while the old file is hashed;
    // nothing is rebuilt before the old file has been checked.
    let (source_hash, decoded) = rayon::join(
        || hash(old),
        || {
            header
                .method
                .is_diff()
                .then(|| decode_diff_streams(&parsed))
        },
    );
    if old.len() as u64 != header.source_size || source_hash.as_bytes() != &header.source_hash {
        return Err(DeltaError::SourceMismatch {
            expected: blake3::Hash::from_bytes(header.source_hash)
                .to_hex()
                .to_string(),
            expected_size: header.source_size,
            found: source_hash.to_hex().to_string(),
            found_size: old.len() as u64,
        });
    }
    let target_len =
        usize::try_from(header.target_size).map_err(|_| corrupt("target too large"))?;
    let target = match (header.method, decoded) {
        (Method::Full, _) => decompress(
            parsed.streams[0].0,
            parsed.streams[0].1,
            header.target_size,
            None,
        )?,
        (Method::Prefix, _) => decompress(
            parsed.streams[0].0,
            parsed.streams[0].1,
            header.target_size,
            Some(old),
        )?,
        (Method::Diff | Method::DiffX86, decoded) => {
            let mut decoded = decoded
                .ok_or_else(|| corrupt("missing streams"))?
                .into_iter();
            let mut next = || {
                decoded
                    .next()
                    .unwrap_or_else(|| Err(corrupt("missing stream")))
            };
            let (ctrl, runs, literals, extra) = (next()?, next()?, next()?, next()?);
            let targets = if header.method == Method::DiffX86 {
                Some(Predictor::decode_targets(&next()?, header.source_size)?)
            } else {
                None
            };
            rebuild(old, &ctrl, &runs, &literals, &extra, target_len, targets)?
        }
    };
    if target.len() != target_len {
        return Err(corrupt("the output's size differs from the header"));
    }
    let target_hash = hash(&target);
    if target_hash.as_bytes() != &header.target_hash {
        return Err(DeltaError::TargetMismatch {
            expected: blake3::Hash::from_bytes(header.target_hash)
                .to_hex()
                .to_string(),
            found: target_hash.to_hex().to_string(),
        });
    }
    Ok(target)
}

/// Decodes the streams of a diff in parallel, each bounded: a control or a run takes at
/// least one byte per byte it covers or is bounded by the target size.
fn decode_diff_streams(parsed: &Parsed<'_>) -> Vec<Result<Vec<u8>, DeltaError>> {
    let header = parsed.header;
    let bound = header.target_size.saturating_mul(2).saturating_add(16);
    let limits = [
        bound,
        bound,
        header.target_size,
        header.target_size,
        header.target_size.saturating_mul(4).saturating_add(16),
    ];
    let mut decoded = Vec::with_capacity(parsed.streams.len());
    parsed
        .streams
        .par_iter()
        .zip(limits)
        .map(|((info, stored), limit)| decompress(*info, stored, limit, None))
        .collect_into_vec(&mut decoded);
    decoded
}

/// Reads the run-length-coded differences one add region at a time.
struct DiffReader<'d> {
    runs: &'d [u8],
    runs_at: usize,
    literals: &'d [u8],
    literals_at: usize,
    zeros_left: u64,
    nonzeros_left: u64,
}

impl DiffReader<'_> {
    /// Adds the next `out.len()` differences onto `out`, which holds the old bytes.
    fn add_into(&mut self, out: &mut [u8]) -> Result<(), DeltaError> {
        let mut i = 0;
        while i < out.len() {
            if self.zeros_left == 0 && self.nonzeros_left == 0 {
                self.zeros_left = get_varint(self.runs, &mut self.runs_at)?;
                self.nonzeros_left = get_varint(self.runs, &mut self.runs_at)?;
                if self.zeros_left == 0 && self.nonzeros_left == 0 {
                    return Err(corrupt("an empty run pair"));
                }
            }
            let room = (out.len() - i) as u64;
            let skip = self.zeros_left.min(room) as usize;
            i += skip;
            self.zeros_left -= skip as u64;
            let take = self.nonzeros_left.min((out.len() - i) as u64) as usize;
            if take > 0 {
                let end = self
                    .literals_at
                    .checked_add(take)
                    .filter(|e| *e <= self.literals.len())
                    .ok_or_else(|| corrupt("the literal stream is too short"))?;
                for (byte, d) in out[i..i + take]
                    .iter_mut()
                    .zip(&self.literals[self.literals_at..end])
                {
                    *byte = byte.wrapping_add(*d);
                }
                self.literals_at = end;
                self.nonzeros_left -= take as u64;
                i += take;
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.runs_at == self.runs.len()
            && self.literals_at == self.literals.len()
            && self.zeros_left == 0
            && self.nonzeros_left == 0
    }
}

fn rebuild(
    old: &[u8],
    ctrl: &[u8],
    runs: &[u8],
    literals: &[u8],
    extra: &[u8],
    target_len: usize,
    targets: Option<Vec<(u64, u64)>>,
) -> Result<Vec<u8>, DeltaError> {
    let mut at = 0usize;
    let n_controls = get_varint(ctrl, &mut at)?;
    // Each control takes at least three bytes, which bounds the count by the stream size.
    if n_controls > ctrl.len() as u64 {
        return Err(corrupt("control count exceeds the control stream"));
    }
    let n_controls = n_controls as usize;
    let mut columns = [
        Vec::with_capacity(n_controls),
        Vec::with_capacity(n_controls),
        Vec::with_capacity(n_controls),
    ];
    for column in &mut columns {
        for _ in 0..n_controls {
            column.push(get_varint(ctrl, &mut at)?);
        }
    }
    if at != ctrl.len() {
        return Err(corrupt("the control stream has unused bytes"));
    }
    let [adds, copies, seeks] = columns;

    // The add regions, checked before anything is written (predicting branch targets needs
    // all of them).
    let mut regions = Vec::with_capacity(n_controls);
    {
        let (mut out_at, mut expected_old) = (0usize, 0i64);
        for idx in 0..n_controls {
            let add = usize::try_from(adds[idx]).map_err(|_| corrupt("huge add"))?;
            let copy = usize::try_from(copies[idx]).map_err(|_| corrupt("huge copy"))?;
            let old_pos = expected_old
                .checked_add(unzigzag(seeks[idx]))
                .ok_or_else(|| corrupt("a seek overflows"))?;
            let old_pos =
                usize::try_from(old_pos).map_err(|_| corrupt("a seek goes before the old file"))?;
            let old_end = old_pos
                .checked_add(add)
                .filter(|e| *e <= old.len())
                .ok_or_else(|| corrupt("an add region lies outside the old file"))?;
            regions.push(Control { add, old_pos, copy });
            out_at = out_at
                .checked_add(add)
                .and_then(|at| at.checked_add(copy))
                .filter(|e| *e <= target_len)
                .ok_or_else(|| corrupt("controls produce more than the target size"))?;
            expected_old = old_end as i64;
        }
    }
    let predictor = targets.map(|targets| Predictor::new(&regions, targets));

    let mut out = vec![0u8; target_len];
    let mut reader = DiffReader {
        runs,
        runs_at: 0,
        literals,
        literals_at: 0,
        zeros_left: 0,
        nonzeros_left: 0,
    };
    // Every region was checked above: its old bytes lie in the old file and the output
    // stays within the target size.
    let (mut out_at, mut extra_at) = (0usize, 0usize);
    for region in &regions {
        let add_end = out_at + region.add;
        out[out_at..add_end].copy_from_slice(&old[region.old_pos..region.old_pos + region.add]);
        if let Some(predictor) = &predictor {
            predict_branches(old, region, out_at, predictor, &mut out[out_at..add_end]);
        }
        reader.add_into(&mut out[out_at..add_end])?;
        let copy_end = add_end + region.copy;
        let extra_end = extra_at
            .checked_add(region.copy)
            .filter(|e| *e <= extra.len())
            .ok_or_else(|| corrupt("the extra stream is too short"))?;
        out[add_end..copy_end].copy_from_slice(&extra[extra_at..extra_end]);
        out_at = copy_end;
        extra_at = extra_end;
    }
    if out_at != target_len || !reader.finished() || extra_at != extra.len() {
        return Err(corrupt("the streams do not add up to the target"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quick() -> DiffOptions {
        DiffOptions {
            zstd_level: 3,
            lzma_preset: Some(1),
            lzma_extreme: false,
            ..DiffOptions::default()
        }
    }

    fn round_trip(old: &[u8], new: &[u8]) -> Vec<u8> {
        let patch = diff(old, new, &quick()).expect("diff");
        assert_eq!(apply(old, &patch).expect("apply"), new);
        patch
    }

    #[test]
    fn edge_cases_round_trip() {
        round_trip(b"", b"");
        round_trip(b"", b"new");
        round_trip(b"old", b"");
        round_trip(b"same", b"same");
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut changed = big.clone();
        changed.splice(1000..1000, b"inserted bytes".iter().copied());
        changed[200_000] ^= 0x55;
        changed.truncate(290_000);
        let patch = round_trip(&big, &changed);
        assert!(
            patch.len() < 2_000,
            "a small change makes a small patch, got {}",
            patch.len()
        );
    }

    #[test]
    fn unchanged_chunks_cost_nothing() {
        // Regression: every search chunk after the first started misaligned, so an unchanged
        // prefix spanning chunks was stored as literals (a 2 MiB delta for a 1-byte change).
        let old: Vec<u8> = (0..3u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut new = old.clone();
        let last = new.len() - 1;
        new[last] ^= 0xFF;
        let patch = round_trip(&old, &new);
        assert!(
            patch.len() < 1_000,
            "a 1-byte change made a {}-byte delta",
            patch.len()
        );
    }

    /// A toy executable: a table of 16-byte stubs, then code calling them. In `new` one stub
    /// is gone, so every later stub sits 16 bytes lower and every call to one changes.
    fn stubs_and_calls(drop_stub: Option<usize>) -> Vec<u8> {
        const STUBS: usize = 200;
        let mut out = Vec::new();
        for stub in (0..STUBS).filter(|stub| Some(*stub) != drop_stub) {
            out.extend_from_slice(&[0xFF, 0x25]);
            out.extend_from_slice(&(stub as u32 * 8).to_le_bytes());
            out.extend_from_slice(&[0x68]);
            out.extend_from_slice(&(stub as u32).to_le_bytes());
            out.extend_from_slice(&[0xE9, 0, 0, 0, 0, 0x90]);
        }
        out.resize(STUBS * 16, 0xCC);
        let stub_at = |stub: usize| match drop_stub {
            Some(gone) if stub > gone => (stub - 1) * 16,
            _ => stub * 16,
        };
        for call in 0..20_000usize {
            let stub = (call * 7919 + call / 3) % STUBS;
            let stub = if Some(stub) == drop_stub { 0 } else { stub };
            out.extend_from_slice(&[0x48, 0x89, (call % 251) as u8]);
            let site = out.len();
            let rel = stub_at(stub) as i64 - (site + 5) as i64;
            out.push(0xE8);
            out.extend_from_slice(&(rel as i32).to_le_bytes());
        }
        out
    }

    #[test]
    fn moved_call_targets_are_predicted() {
        let old = stubs_and_calls(None);
        let new = stubs_and_calls(Some(10));
        let patch = round_trip(&old, &new);
        let header = read_header(&patch).unwrap();
        assert_eq!(header.method, Method::DiffX86);
        // About 18,000 calls changed; predicted, the delta holds the stub table's change.
        assert!(patch.len() < 1_500, "got {} bytes", patch.len());
        // Without branches to predict, the plain method is kept.
        let text_old: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .map(|byte| if byte >= 0xE8 { byte - 0x10 } else { byte })
            .collect();
        let mut text_new = text_old.clone();
        text_new[25_000] = b'!';
        let patch = round_trip(&text_old, &text_new);
        assert_eq!(read_header(&patch).unwrap().method, Method::Diff);
    }

    #[test]
    fn target_tables_are_checked() {
        let table = |targets: &[(u64, u64)]| {
            Predictor {
                regions: Vec::new(),
                targets: targets.to_vec(),
            }
            .encode_targets()
        };
        let good = table(&[(5, 1), (9, 40)]);
        assert_eq!(
            Predictor::decode_targets(&good, 10).unwrap(),
            vec![(5, 1), (9, 40)]
        );
        // A target beyond the old file, a repeated target, a short or padded stream.
        assert!(Predictor::decode_targets(&good, 9).is_err());
        assert!(Predictor::decode_targets(&table(&[(5, 1), (5, 2)]), 10).is_err());
        assert!(Predictor::decode_targets(&good[..good.len() - 1], 10).is_err());
        let mut padded = good.clone();
        padded.push(0);
        assert!(Predictor::decode_targets(&padded, 10).is_err());
        assert!(Predictor::decode_targets(&[0xFF, 0xFF, 0xFF, 0x0F], 10).is_err());
    }

    #[test]
    fn prefix_and_full_fallbacks_round_trip() {
        let old: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut new = old.clone();
        new[5] = 9;
        let tiny_budget = DiffOptions {
            memory_budget: 500_000,
            ..quick()
        };
        let patch = diff(&old, &new, &tiny_budget).unwrap();
        assert_eq!(read_header(&patch).unwrap().method, Method::Prefix);
        assert_eq!(apply(&old, &patch).unwrap(), new);
        let no_budget = DiffOptions {
            memory_budget: 1,
            ..quick()
        };
        let patch = diff(&old, &new, &no_budget).unwrap();
        assert_eq!(read_header(&patch).unwrap().method, Method::Full);
        assert_eq!(apply(&old, &patch).unwrap(), new);
    }

    #[test]
    fn wrong_source_is_refused() {
        let patch = diff(
            b"hello world, this is old",
            b"hello world, this is new",
            &quick(),
        )
        .unwrap();
        let err = apply(b"hello world, this is OLD", &patch).unwrap_err();
        assert!(matches!(err, DeltaError::SourceMismatch { .. }), "{err}");
    }

    #[test]
    fn every_bit_flip_and_truncation_is_rejected() {
        let old: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut new = old.clone();
        new[100..120].copy_from_slice(&[1; 20]);
        new.extend_from_slice(b"tail");
        let patch = diff(&old, &new, &quick()).unwrap();
        for byte in 0..patch.len() {
            let mut damaged = patch.clone();
            damaged[byte] ^= 1 << (byte % 8);
            assert!(
                apply(&old, &damaged).is_err(),
                "flip at byte {byte} accepted"
            );
        }
        for len in 0..patch.len() {
            assert!(
                apply(&old, &patch[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn edited_executables_round_trip(drop_stub in proptest::option::of(0usize..200),
                                         edits in proptest::collection::vec((any::<u32>(), 0u8..3, any::<u8>()), 0..12)) {
            let old = stubs_and_calls(None);
            let mut new = stubs_and_calls(drop_stub);
            for (at, kind, byte) in edits {
                let at = at as usize % new.len();
                match kind {
                    0 => new[at] = byte,
                    1 => new.insert(at, 0xE8),
                    _ => { new.remove(at); }
                }
            }
            round_trip(&old, &new);
        }

        #[test]
        fn random_edits_round_trip(old in proptest::collection::vec(any::<u8>(), 0..4000),
                                   edits in proptest::collection::vec((any::<u16>(), 0u8..4, any::<u8>()), 0..20)) {
            let mut new = old.clone();
            for (at, kind, byte) in edits {
                let at = if new.is_empty() { 0 } else { at as usize % new.len() };
                match kind {
                    0 if !new.is_empty() => new[at] = byte,
                    1 => new.insert(at, byte),
                    2 if !new.is_empty() => { new.remove(at); }
                    _ => new.extend_from_within(..at),
                }
            }
            let patch = diff(&old, &new, &quick()).unwrap();
            prop_assert_eq!(apply(&old, &patch).unwrap(), new);
        }
    }
}
