//! A synthetic asset pack whose releases change the way real ones do.
//!
//! A pack is a header, the records' data (textures, meshes, audio, text: each kind
//! compressible in its own way, none trivially) and an index at the end with every
//! record's name, offset, size and checksum. Release `n` applies `n` rounds of changes to
//! the original: each round inserts a block of new records in the middle (so every later
//! record moves and most index offsets change), modifies a few records in place (some grow)
//! and appends one record at the end.

use super::rng::{Rng, fnv1a64};
use super::text;

/// Records are aligned like this in the pack, padded with zeros.
const RECORD_ALIGN: usize = 16;

/// The shape of a synthetic pack.
pub(crate) struct Pack {
    /// Seeds every byte, e.g. `tidewater/assets`.
    pub(crate) key: &'static str,
    /// Records in the original release.
    pub(crate) n_records: usize,
    /// Records inserted in the middle by each round of changes.
    pub(crate) n_inserted_per_round: usize,
    /// Records modified by each round of changes.
    pub(crate) n_modified_per_round: usize,
}

#[derive(Clone, Copy)]
enum AssetKind {
    Texture,
    Mesh,
    Audio,
    Text,
}

struct Record {
    id: u32,
    kind: AssetKind,
    /// The rounds that modified this record, in order.
    edits: Vec<usize>,
}

impl Pack {
    /// The bytes of release `release` (0 is the original).
    pub(crate) fn build(&self, release: usize) -> Vec<u8> {
        let records = self.records(release);
        let mut out = Vec::new();
        out.extend_from_slice(b"TWPAK\0\x01\0");
        out.extend_from_slice(&(records.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 12]); // The index offset, written last.
        let mut index = Vec::new();
        for record in &records {
            let payload = self.payload(record);
            let offset = out.len();
            let name = self.record_name(record);
            index.extend_from_slice(&(name.len() as u16).to_le_bytes());
            index.extend_from_slice(name.as_bytes());
            index.push(record.kind as u8);
            index.extend_from_slice(&(offset as u64).to_le_bytes());
            index.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            index.extend_from_slice(&(fnv1a64(&payload) as u32).to_le_bytes());
            out.extend_from_slice(&payload);
            out.resize(out.len().next_multiple_of(RECORD_ALIGN), 0);
        }
        let index_offset = out.len() as u64;
        out.extend_from_slice(&index);
        out[12..20].copy_from_slice(&index_offset.to_le_bytes());
        out
    }

    /// The records in pack order after `release` rounds of changes.
    fn records(&self, release: usize) -> Vec<Record> {
        let mut records: Vec<Record> = (0..self.n_records as u32)
            .map(|id| self.new_record(id))
            .collect();
        let mut next_id = self.n_records as u32;
        for round in 1..=release {
            let mut rng = Rng::new(&format!("{}/round/{round}", self.key));
            for _ in 0..self.n_modified_per_round {
                let record_idx = rng.below(records.len());
                records[record_idx].edits.push(round);
            }
            let middle = records.len() / 2;
            let at = rng.range(middle - middle / 3, middle + middle / 3);
            for inserted_idx in 0..self.n_inserted_per_round {
                records.insert(at + inserted_idx, self.new_record(next_id));
                next_id += 1;
            }
            records.push(self.new_record(next_id));
            next_id += 1;
        }
        records
    }

    fn new_record(&self, id: u32) -> Record {
        let mut rng = Rng::new(&format!("{}/record/{id}", self.key));
        let kind = match rng.below(100) {
            0..=39 => AssetKind::Texture,
            40..=59 => AssetKind::Mesh,
            60..=84 => AssetKind::Audio,
            _ => AssetKind::Text,
        };
        Record {
            id,
            kind,
            edits: Vec::new(),
        }
    }

    fn record_name(&self, record: &Record) -> String {
        let mut rng = Rng::new(&format!("{}/name/{}", self.key, record.id));
        let (folder, extension) = match record.kind {
            AssetKind::Texture => ("textures", "tex"),
            AssetKind::Mesh => ("meshes", "msh"),
            AssetKind::Audio => ("sounds", "pcm"),
            AssetKind::Text => ("dialogue", "txt"),
        };
        format!(
            "{folder}/{}_{}_{:04}.{extension}",
            text::name(&mut rng),
            text::name(&mut rng),
            record.id
        )
    }

    fn payload(&self, record: &Record) -> Vec<u8> {
        let mut rng = Rng::new(&format!("{}/payload/{}", self.key, record.id));
        let len = match record.kind {
            AssetKind::Texture => rng.range(16, 97) * 1024,
            AssetKind::Mesh => rng.range(8, 49) * 1024,
            AssetKind::Audio => rng.range(24, 97) * 1024,
            AssetKind::Text => rng.range(2, 13) * 1024,
        };
        let mut payload = asset_bytes(record.kind, &mut rng, len);
        for &round in &record.edits {
            // A modification rewrites a region with new content of the same kind, and
            // sometimes adds some at the end.
            let mut rng = Rng::new(&format!("{}/payload/{}/round/{round}", self.key, record.id));
            let region_len = rng.range(512, 4097).min(payload.len());
            let at = rng.below(payload.len() - region_len + 1);
            let region = asset_bytes(record.kind, &mut rng, region_len);
            payload[at..at + region_len].copy_from_slice(&region);
            if rng.chance(1, 2) {
                let extra_len = rng.range(256, 2049);
                let extra = asset_bytes(record.kind, &mut rng, extra_len);
                payload.extend_from_slice(&extra);
            }
        }
        payload
    }
}

/// `len` bytes that look like an asset of `kind`.
fn asset_bytes(kind: AssetKind, rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    match kind {
        AssetKind::Texture => {
            // RGBA rows of gradients with a little noise: about 3 bits of entropy a byte.
            let width = 256usize;
            let slopes: Vec<(usize, usize, u8)> = (0..4)
                .map(|_| (rng.below(4), rng.below(4), rng.byte()))
                .collect();
            let mut pixel_idx = 0usize;
            while out.len() < len {
                let (x, y) = (pixel_idx % width, pixel_idx / width);
                for &(dx, dy, base) in &slopes {
                    let value = base as usize + ((x * dx + y * dy) >> 2) + rng.below(6);
                    out.push(value as u8);
                }
                pixel_idx += 1;
            }
        }
        AssetKind::Mesh => {
            // Vertices as i16 triples on a random walk, then triangle indices that mostly
            // step by one.
            let mut position = [0i16; 3];
            let n_vertices = len / 12;
            for _ in 0..n_vertices {
                for axis in &mut position {
                    *axis = axis.wrapping_add(rng.below(33) as i16 - 16);
                    out.extend_from_slice(&axis.to_le_bytes());
                }
            }
            let mut index = 0u16;
            while out.len() < len {
                index = if rng.chance(1, 10) {
                    rng.below(n_vertices.max(1)) as u16
                } else {
                    index.wrapping_add(1)
                };
                out.extend_from_slice(&index.to_le_bytes());
            }
        }
        AssetKind::Audio => {
            // 16-bit PCM: two triangle waves and some noise.
            let periods = [rng.range(40, 400), rng.range(7, 60)];
            let amplitudes = [rng.range(2000, 12000), rng.range(200, 3000)];
            let mut sample_idx = 0usize;
            while out.len() < len {
                let mut sample = rng.below(129) as i32 - 64;
                for (&period, &amplitude) in periods.iter().zip(&amplitudes) {
                    let phase = sample_idx % period;
                    let triangle = if phase < period / 2 {
                        phase
                    } else {
                        period - phase
                    };
                    sample += (triangle * amplitude * 4 / period) as i32 - amplitude as i32;
                }
                out.extend_from_slice(&(sample as i16).to_le_bytes());
                sample_idx += 1;
            }
        }
        AssetKind::Text => {
            while out.len() < len {
                let speaker = text::name(rng);
                let line = format!("{speaker}: {}\n", text::sentence(rng));
                out.extend_from_slice(line.as_bytes());
            }
        }
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Pack = Pack {
        key: "test/pak",
        n_records: 40,
        n_inserted_per_round: 3,
        n_modified_per_round: 2,
    };

    #[test]
    fn same_release_same_bytes() {
        assert_eq!(SMALL.build(1), SMALL.build(1));
    }

    #[test]
    fn releases_grow() {
        let sizes: Vec<usize> = (0..3).map(|release| SMALL.build(release).len()).collect();
        assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
    }

    #[test]
    fn index_points_at_records() {
        let pack = SMALL.build(2);
        let n_records = u32::from_le_bytes(pack[8..12].try_into().unwrap()) as usize;
        assert_eq!(n_records, 40 + 2 * (3 + 1));
        let mut at = u64::from_le_bytes(pack[12..20].try_into().unwrap()) as usize;
        for _ in 0..n_records {
            let name_len = u16::from_le_bytes(pack[at..at + 2].try_into().unwrap()) as usize;
            at += 2 + name_len + 1;
            let offset = u64::from_le_bytes(pack[at..at + 8].try_into().unwrap()) as usize;
            let size = u32::from_le_bytes(pack[at + 8..at + 12].try_into().unwrap()) as usize;
            let checksum = u32::from_le_bytes(pack[at + 12..at + 16].try_into().unwrap());
            assert_eq!(fnv1a64(&pack[offset..offset + size]) as u32, checksum);
            at += 16;
        }
        assert_eq!(at, pack.len());
    }
}
