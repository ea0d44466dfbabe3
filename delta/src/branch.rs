//! x86 branch prediction: differences of calls and jumps taken against where their
//! targets moved.
//!
//! A linker that moves code or drops a PLT entry changes the operand of every call and jump
//! past the change, though the code did not change. The encoder learns where branch
//! targets went ([`Predictor`]); both sides then rewrite the old operands to the predicted
//! ones before taking or adding differences, so a branch whose target moved as predicted
//! costs nothing.

use std::collections::HashMap;

use crate::format::{DeltaError, corrupt};
use crate::matcher::Control;
use crate::varint::{get_varint, put_varint, unzigzag, zigzag};

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
    pub(crate) fn new(controls: &[Control], targets: Vec<(u64, u64)>) -> Predictor {
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
    pub(crate) fn encode_targets(&self) -> Vec<u8> {
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
    pub(crate) fn decode_targets(
        stream: &[u8],
        old_len: u64,
    ) -> Result<Vec<(u64, u64)>, DeltaError> {
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
#[inline]
pub(crate) fn predict_branches(
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
pub(crate) fn learn_targets(old: &[u8], new: &[u8], controls: &[Control]) -> Vec<(u64, u64)> {
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
pub(crate) fn add_base<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
