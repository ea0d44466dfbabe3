//! Making a delta: the match search's output split into streams, each coded on its own.

use std::io::Write;

use rayon::prelude::*;

use crate::branch::{Predictor, add_base, learn_targets};
use crate::format::{Codec, DeltaError, Header, Method, Stream, assemble, hash};
use crate::matcher::{self, Control, SearchParams};
use crate::varint::{put_varint, zigzag};

/// The largest input the suffix-array search handles.
pub const MAX_DIFF_INPUT: usize = suffix_array::MAX_LENGTH;
/// Streams up to this size are also tried with zstd when LZMA is on.
const ZSTD_TRY_MAX: usize = 256 * 1024;

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

fn window_log_for(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 31)
}

fn compress_streams<'a>(
    streams: &[&'a [u8]],
    options: &DiffOptions,
) -> Result<Vec<Stream<'a>>, DeltaError> {
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
