//! Applying a delta: checked before, during and after the new file is rebuilt.

use std::io::Read;

use rayon::prelude::*;

use crate::branch::{Predictor, predict_branches};
use crate::format::{Codec, DeltaError, Method, Parsed, StreamInfo, corrupt, hash, parse};
use crate::matcher::Control;
use crate::varint::{get_varint, unzigzag};

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

/// Decodes one stream, refusing one whose decoded length is over `limit` or differs from
/// its row in the stream table.
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
