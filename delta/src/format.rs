//! The file-delta container: what a delta holds and how its bytes are laid out.
//!
//! A delta is a fixed header (magic, version, [`Method`], both files' sizes and BLAKE3
//! hashes), a table of streams, the streams' bytes and a BLAKE3 trailer over everything
//! before it; `docs/delta.md` specifies it byte by byte. [`read_header`] and [`streams`]
//! check a delta without applying it; [`crate::encode`] writes deltas and
//! [`crate::decode`] applies them.

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
    /// against where their targets moved (the encoder's branch prediction), not against the
    /// old bytes.
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
    #[error("i/o error")]
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
pub(crate) struct Stream<'a> {
    pub(crate) codec: Codec,
    pub(crate) raw_len: u64,
    pub(crate) stored: std::borrow::Cow<'a, [u8]>,
}

/// BLAKE3 of `data`, on every core for large inputs (the hashes of both files are a good
/// part of applying a delta).
pub(crate) fn hash(data: &[u8]) -> blake3::Hash {
    if data.len() < (1 << 20) {
        return blake3::hash(data);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_rayon(data);
    hasher.finalize()
}

pub(crate) fn assemble(header: Header, streams: &[Stream]) -> Vec<u8> {
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

/// A delta whose header, stream table and checksum have been checked.
pub(crate) struct Parsed<'p> {
    pub(crate) header: Header,
    pub(crate) streams: Vec<(StreamInfo, &'p [u8])>,
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

pub(crate) fn corrupt(message: &str) -> DeltaError {
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

pub(crate) fn parse(patch: &[u8]) -> Result<Parsed<'_>, DeltaError> {
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
