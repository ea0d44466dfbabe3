//! Repair deltas: rsync-style deltas for files whose local state is unknown or damaged.
//!
//! The client sends the [`signature`] of each local file that failed verification; the
//! server, which has the true file, answers with a [`repair_delta`]; the client rebuilds
//! the file with [`apply_repair`], which checks the result's size and BLAKE3 hash against
//! the manifest. fast_rsync's rolling checksum and MD4 only find blocks that probably
//! match; they are never trusted, so a wrong match, a damaged delta or a delta for another
//! file ends in an error, never in a wrong file. The formats are in `docs/pack.md`.
//!
//! A signature comes from a client over HTTP, so [`repair_delta`] checks its shape and
//! limits ([`MIN_BLOCK_SIZE`], [`MAX_BLOCK_SIZE`], [`MAX_BLOCKS`]) before allocating
//! anything for it. A repair delta stores whichever is smaller of the zstd-compressed
//! rsync delta and the zstd-compressed whole file.
//!
//! ## Warning
//! Computing a delta costs CPU in proportion to the true file's size, and a crafted
//! signature whose checksums collide with many positions can multiply that (fast_rsync
//! gives up on a checksum after 1024 false matches). Callers serving untrusted clients
//! should limit how many repairs a client may request at once.

use std::io::{self, Read};

use crate::manifest::FileHash;

/// The first eight bytes of every repair delta.
pub const MAGIC: &[u8; 8] = b"MISTRPAR";
/// The repair delta format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The smallest block size a signature may use.
pub const MIN_BLOCK_SIZE: u32 = 256;
/// The largest block size a signature may use.
pub const MAX_BLOCK_SIZE: u32 = 4 << 20;
/// The most blocks a signature may describe; with [`MAX_BLOCK_SIZE`], files up to 1 TiB.
pub const MAX_BLOCKS: usize = 1 << 18;

/// How a repair delta encodes the true file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    /// The whole file, compressed.
    Whole = 0,
    /// A fast_rsync delta against the local file, compressed.
    Rsync = 1,
}

/// Why a signature or repair delta was refused, or a repair failed.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The signature is malformed or exceeds the limits.
    #[error("invalid rsync signature: {0}")]
    InvalidSignature(String),
    /// Not a Mist repair delta at all.
    #[error("not a Mist repair delta (bad magic)")]
    BadMagic,
    /// Made by a newer Mist.
    #[error(
        "repair delta format version {0} is not supported (this Mist reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    /// Damaged: truncated, bit-flipped or inconsistent.
    #[error("corrupt repair delta: {0}")]
    Corrupt(String),
    /// The rebuilt file is not the one the manifest describes.
    #[error(
        "the repaired file does not match the manifest: expected {expected_size} bytes with BLAKE3 {expected}, got {found_size} bytes with {found}"
    )]
    Mismatch {
        /// The manifest's hash.
        expected: FileHash,
        /// The manifest's size.
        expected_size: u64,
        /// The hash of what was rebuilt.
        found: FileHash,
        /// The size of what was rebuilt.
        found_size: u64,
    },
    /// The file is larger than this platform can hold in memory.
    #[error("a file of {0} bytes cannot be repaired in memory on this platform")]
    TooLarge(u64),
    /// Compressing failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
}

/// The fast_rsync signature of `data`, serialized, to send to the server.
///
/// The block size grows with the square root of the length (a balance between signature
/// size and match granularity), rounded up to a multiple of 64 and clamped to
/// [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`]; each block costs 12 bytes (a 4-byte rolling
/// checksum and 8 bytes of MD4). A 1 GiB file gets 32 KiB blocks and a 384 KiB signature.
/// Files over 1 TiB get more than [`MAX_BLOCKS`] blocks, which servers refuse.
pub fn signature(data: &[u8]) -> Vec<u8> {
    let options = fast_rsync::SignatureOptions {
        block_size: block_size_for(data.len() as u64),
        crypto_hash_size: STRONG_HASH_LEN,
    };
    fast_rsync::Signature::calculate(data, options).into_serialized()
}

/// The repair delta that rebuilds `true_data` from the local file that `signature` was
/// computed from.
///
/// The signature is untrusted: it must be an MD4 fast_rsync signature with a block size
/// in [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`], a strong hash of 8 to 16 bytes, whole
/// blocks and at most [`MAX_BLOCKS`] of them, else [`RepairError::InvalidSignature`]
/// before anything is allocated for it. When the rsync delta is not clearly smaller than
/// the file, the whole file is compressed too, and the smaller of the two is returned.
pub fn repair_delta(signature: &[u8], true_data: &[u8]) -> Result<Vec<u8>, RepairError> {
    check_signature(signature)?;
    let signature = fast_rsync::Signature::deserialize(signature.to_vec())
        .map_err(|error| RepairError::InvalidSignature(error.to_string()))?;
    let mut raw = Vec::new();
    fast_rsync::diff(&signature.index(), true_data, &mut raw).map_err(|error| match error {
        fast_rsync::DiffError::InvalidSignature => {
            RepairError::InvalidSignature("fast_rsync refused it".to_owned())
        }
        fast_rsync::DiffError::Io(error) => RepairError::Io(error),
    })?;
    let true_len = true_data.len() as u64;
    if raw.len() as u64 > max_rsync_delta_len(true_len) {
        return encode(Method::Whole, true_data);
    }
    let delta = encode(Method::Rsync, &raw)?;
    // Compressing the whole file as well costs time; it can only win when the delta is a
    // sizeable part of the file (zstd rarely shrinks game data below a quarter).
    if delta.len() as u64 * 4 < true_len {
        return Ok(delta);
    }
    let whole = encode(Method::Whole, true_data)?;
    Ok(if delta.len() < whole.len() {
        delta
    } else {
        whole
    })
}

/// Rebuilds a file from the `local` bytes and a repair `delta`, and checks that the
/// result is `expected_size` bytes with BLAKE3 `expected` (from the manifest).
///
/// Decompression is bounded by what a delta for a file of `expected_size` bytes can need,
/// and the rsync delta is applied with `apply_limited` at `expected_size`, so a damaged
/// or hostile delta cannot make the output or memory grow past that. Any damage, a delta
/// for another local file, or a wrong match of fast_rsync's weak hashes ends in an error.
pub fn apply_repair(
    local: &[u8],
    delta: &[u8],
    expected: &FileHash,
    expected_size: u64,
) -> Result<Vec<u8>, RepairError> {
    let expected_len =
        usize::try_from(expected_size).map_err(|_| RepairError::TooLarge(expected_size))?;
    let (method, raw_len, payload) = read_header(delta)?;
    let max_raw_len = match method {
        Method::Whole => expected_size,
        Method::Rsync => max_rsync_delta_len(expected_size),
    };
    if raw_len > max_raw_len {
        return Err(RepairError::Corrupt(format!(
            "it declares {raw_len} bytes of payload, more than the {max_raw_len} a file of {expected_size} bytes can need"
        )));
    }
    let raw = decompress(payload, raw_len)?;
    let rebuilt = match method {
        Method::Whole => raw,
        Method::Rsync => {
            let mut out = Vec::with_capacity(expected_len);
            fast_rsync::apply_limited(local, &raw, &mut out, expected_len)
                .map_err(|error| RepairError::Corrupt(error.to_string()))?;
            out
        }
    };
    let found = FileHash(*blake3::hash(&rebuilt).as_bytes());
    if rebuilt.len() as u64 != expected_size || found != *expected {
        return Err(RepairError::Mismatch {
            expected: *expected,
            expected_size,
            found,
            found_size: rebuilt.len() as u64,
        });
    }
    Ok(rebuilt)
}

/// The method of a repair delta, after checking its header.
pub fn delta_method(delta: &[u8]) -> Result<Method, RepairError> {
    read_header(delta).map(|(method, _, _)| method)
}

/// Bytes of MD4 kept per block. Only finding matches depends on it, never correctness:
/// with 8 bytes and the 4-byte rolling checksum, a false match is vanishingly rare.
const STRONG_HASH_LEN: u32 = 8;
/// The accepted range of strong hash lengths; MD4 has 16 bytes.
const STRONG_HASH_LEN_RANGE: std::ops::RangeInclusive<u32> = 8..=16;
/// fast_rsync's magic for MD4 signatures ("rs\x016").
const MD4_SIGNATURE_MAGIC: u32 = 0x7273_0136;
/// Magic, block size and strong hash length, all big-endian `u32`.
const SIGNATURE_HEADER_LEN: usize = 12;
/// Magic, version, method, two reserved bytes, payload length.
const HEADER_LEN: usize = 8 + 1 + 1 + 2 + 8;
/// zstd level for repair deltas, which are made on request: fast, and still good.
const ZSTD_LEVEL: i32 = 6;
/// The largest zstd window a repair delta may need: 128 MiB, zstd's default limit.
const WINDOW_LOG_MAX: u32 = 27;

fn block_size_for(len: u64) -> u32 {
    let by_count = len.div_ceil(MAX_BLOCKS as u64);
    let size = len.isqrt().max(by_count).next_multiple_of(64);
    size.clamp(u64::from(MIN_BLOCK_SIZE), u64::from(MAX_BLOCK_SIZE)) as u32
}

/// The longest rsync delta that a file of `len` bytes can legitimately need.
///
/// fast_rsync writes a 4-byte magic, an end byte, literals (at most `len` bytes, each run
/// with a command of at most 9 bytes) and copies (each at least one block, so at least
/// [`MIN_BLOCK_SIZE`] bytes of output, with a command of at most 17 bytes); literal runs
/// alternate with copies. That is at most `len + 26 × len / 256 + 14` bytes.
fn max_rsync_delta_len(len: u64) -> u64 {
    len.saturating_add(len / 8).saturating_add(64)
}

/// Checks the shape and limits of an untrusted serialized signature, without allocating.
fn check_signature(signature: &[u8]) -> Result<(), RepairError> {
    let invalid = |reason: String| Err(RepairError::InvalidSignature(reason));
    let Some((header, blocks)) = signature.split_first_chunk::<SIGNATURE_HEADER_LEN>() else {
        return invalid(format!(
            "{} bytes is shorter than the {SIGNATURE_HEADER_LEN}-byte header",
            signature.len()
        ));
    };
    let field = |idx: usize| {
        u32::from_be_bytes([
            header[4 * idx],
            header[4 * idx + 1],
            header[4 * idx + 2],
            header[4 * idx + 3],
        ])
    };
    let (magic, block_size, hash_len) = (field(0), field(1), field(2));
    if magic != MD4_SIGNATURE_MAGIC {
        return invalid(format!(
            "magic {magic:#010x} is not that of an MD4 signature"
        ));
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return invalid(format!(
            "block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}"
        ));
    }
    if !STRONG_HASH_LEN_RANGE.contains(&hash_len) {
        return invalid(format!(
            "strong hash length {hash_len} is outside {}..={}",
            STRONG_HASH_LEN_RANGE.start(),
            STRONG_HASH_LEN_RANGE.end()
        ));
    }
    let row_len = 4 + hash_len as usize;
    if blocks.len() % row_len != 0 {
        return invalid(format!(
            "{} bytes of blocks is not a whole number of {row_len}-byte blocks",
            blocks.len()
        ));
    }
    let n_blocks = blocks.len() / row_len;
    if n_blocks > MAX_BLOCKS {
        return invalid(format!(
            "{n_blocks} blocks is more than the {MAX_BLOCKS} allowed"
        ));
    }
    Ok(())
}

/// Frames `raw` as a repair delta: header, then one zstd frame.
fn encode(method: Method, raw: &[u8]) -> Result<Vec<u8>, RepairError> {
    let mut delta = Vec::with_capacity(HEADER_LEN + raw.len() / 2);
    delta.extend_from_slice(MAGIC);
    delta.push(FORMAT_VERSION);
    delta.push(method as u8);
    delta.extend_from_slice(&[0, 0]);
    delta.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    let mut encoder = zstd::stream::write::Encoder::new(delta, ZSTD_LEVEL)?;
    encoder.set_pledged_src_size(Some(raw.len() as u64))?;
    encoder.include_checksum(true)?;
    encoder
        .window_log((u64::BITS - (raw.len() as u64).leading_zeros()).clamp(10, WINDOW_LOG_MAX))?;
    io::Write::write_all(&mut encoder, raw)?;
    Ok(encoder.finish()?)
}

/// Checks the header; returns the method, the declared payload length and the payload.
fn read_header(delta: &[u8]) -> Result<(Method, u64, &[u8]), RepairError> {
    let Some((header, payload)) = delta.split_first_chunk::<HEADER_LEN>() else {
        return Err(
            if delta.len() >= MAGIC.len() && &delta[..MAGIC.len()] != MAGIC {
                RepairError::BadMagic
            } else {
                RepairError::Corrupt(format!(
                    "{} bytes is shorter than the {HEADER_LEN}-byte header",
                    delta.len()
                ))
            },
        );
    };
    if &header[..8] != MAGIC {
        return Err(RepairError::BadMagic);
    }
    if header[8] != FORMAT_VERSION {
        return Err(RepairError::UnsupportedVersion(header[8]));
    }
    let method = match header[9] {
        0 => Method::Whole,
        1 => Method::Rsync,
        other => return Err(RepairError::Corrupt(format!("unknown method {other}"))),
    };
    if header[10..12] != [0, 0] {
        return Err(RepairError::Corrupt(
            "reserved bytes are not zero".to_owned(),
        ));
    }
    let mut raw_len = [0u8; 8];
    raw_len.copy_from_slice(&header[12..20]);
    Ok((method, u64::from_le_bytes(raw_len), payload))
}

/// Decompresses exactly `raw_len` bytes from one zstd frame that must end the payload.
fn decompress(payload: &[u8], raw_len: u64) -> Result<Vec<u8>, RepairError> {
    let corrupt = |error: io::Error| RepairError::Corrupt(format!("payload: {error}"));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(corrupt)?
        .single_frame();
    decoder.window_log_max(WINDOW_LOG_MAX).map_err(corrupt)?;
    // Reserve at most 64 MiB up front: the declared length is only bounded, not trusted.
    let mut raw = Vec::with_capacity(raw_len.min(64 << 20) as usize);
    (&mut decoder)
        .take(raw_len.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(corrupt)?;
    if raw.len() as u64 != raw_len {
        return Err(RepairError::Corrupt(format!(
            "the payload decompresses to {}{} bytes, the header says {raw_len}",
            raw.len(),
            if raw.len() as u64 > raw_len { "+" } else { "" },
        )));
    }
    // `single_frame` stops at the end of the frame; anything after it is damage.
    let rest = decoder.finish();
    if !rest.is_empty() {
        return Err(RepairError::Corrupt(format!(
            "{} bytes after the compressed payload",
            rest.len()
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes() {
        let cases: &[(u64, u32)] = &[
            (0, MIN_BLOCK_SIZE),
            (1000, MIN_BLOCK_SIZE),
            (1 << 20, 1024),
            (1 << 30, 32768),
            (1 << 40, MAX_BLOCK_SIZE),
            (u64::MAX, MAX_BLOCK_SIZE),
        ];
        for (len, expected) in cases {
            assert_eq!(block_size_for(*len), *expected, "{len}");
        }
        // Up to 1 TiB, a signature stays within the block limit.
        let len = 1u64 << 40;
        assert!(len.div_ceil(u64::from(block_size_for(len))) <= MAX_BLOCKS as u64);
    }
}
