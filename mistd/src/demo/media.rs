//! Level files and music for the demo games.

use super::rng::Rng;
use super::text;

/// A tile-map level: a header, three layers of tiles (terrain in runs, sparse decoration,
/// collision derived from terrain) and a text list of entities. Compresses well, as level
/// files do. `tweaks` lists rounds that repainted a patch of tiles.
pub(crate) fn level(key: &str, title: &str, tweaks: &[usize]) -> Vec<u8> {
    let mut rng = Rng::new(key);
    let width = rng.range(256, 385);
    let height = rng.range(128, 193);
    let mut terrain = vec![0u8; width * height];
    for row in 0..height {
        let mut tile = (row * 4 / height) as u8 + 1;
        let mut col = 0;
        while col < width {
            let run = rng.range(4, 40).min(width - col);
            if rng.chance(1, 3) {
                tile = rng.range(1, 12) as u8;
            }
            terrain[row * width + col..row * width + col + run].fill(tile);
            col += run;
        }
    }
    let mut decoration = vec![0u8; width * height];
    for _ in 0..width * height / 40 {
        decoration[rng.below(width * height)] = rng.range(1, 64) as u8;
    }
    for &round in tweaks {
        let mut rng = Rng::new(&format!("{key}/tweak/{round}"));
        let (patch_w, patch_h) = (rng.range(4, 24), rng.range(4, 16));
        let (x, y) = (rng.below(width - patch_w), rng.below(height - patch_h));
        let tile = rng.range(1, 12) as u8;
        for row in y..y + patch_h {
            terrain[row * width + x..row * width + x + patch_w].fill(tile);
        }
        for _ in 0..rng.range(3, 12) {
            decoration[rng.below(width * height)] = rng.range(1, 64) as u8;
        }
    }
    let collision: Vec<u8> = terrain.iter().map(|&t| u8::from(t >= 8)).collect();

    let mut out = Vec::with_capacity(3 * width * height + 4096);
    out.extend_from_slice(b"LVL1");
    out.extend_from_slice(&(width as u16).to_le_bytes());
    out.extend_from_slice(&(height as u16).to_le_bytes());
    out.extend_from_slice(&(title.len() as u16).to_le_bytes());
    out.extend_from_slice(title.as_bytes());
    out.extend_from_slice(&terrain);
    out.extend_from_slice(&decoration);
    out.extend_from_slice(&collision);
    let mut entities = format!("spawn player {} {}\n", rng.below(width), rng.below(height));
    for _ in 0..rng.range(40, 120) {
        let kind = ["lantern", "moth", "wisp", "chest", "door", "sign"][rng.below(6)];
        entities.push_str(&format!(
            "spawn {kind} {} {} {}\n",
            rng.below(width),
            rng.below(height),
            text::name(&mut rng)
        ));
    }
    out.extend_from_slice(entities.as_bytes());
    out
}

/// A compressed-audio-like file: Ogg page headers around random (incompressible) payload,
/// about `len` bytes long.
pub(crate) fn music(key: &str, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(key);
    let serial = rng.next_u64() as u32;
    let mut out = Vec::with_capacity(len + 4096);
    let mut page_idx = 0u32;
    while out.len() < len {
        let n_segments = 16usize;
        out.extend_from_slice(b"OggS\0");
        out.push(if page_idx == 0 { 2 } else { 0 });
        out.extend_from_slice(&(u64::from(page_idx) * 1024).to_le_bytes());
        out.extend_from_slice(&serial.to_le_bytes());
        out.extend_from_slice(&page_idx.to_le_bytes());
        out.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes()); // The page "CRC".
        out.push(n_segments as u8);
        out.extend(std::iter::repeat_n(255u8, n_segments));
        let start = out.len();
        out.resize(start + 255 * n_segments, 0);
        rng.fill(&mut out[start..]);
        page_idx += 1;
    }
    out
}
