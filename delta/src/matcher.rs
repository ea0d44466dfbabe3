//! The match search of a bsdiff-style delta, on a suffix array of the old file.
//!
//! This follows Colin Percival's bsdiff algorithm: walk the new file, find the longest exact
//! match in the old file at each position with the suffix array, and cut the new file into
//! "add" regions (bytes stored as differences against an aligned old region; mostly zeros
//! when code barely changed) and "copy" regions (bytes stored as they are). The new file is
//! split into chunks searched in parallel; each chunk starts a fresh alignment, which costs a
//! few bytes per chunk boundary.

use rayon::prelude::*;
use suffix_array::SuffixArray;

/// One instruction: `add` bytes of new made from old at `old_pos` plus differences, then
/// `copy` bytes taken literally from the extra stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Bytes reconstructed as `old[old_pos + k] + diff[k]`.
    pub add: usize,
    /// Where in old the add region is aligned.
    pub old_pos: usize,
    /// Bytes copied from the extra stream after the add region.
    pub copy: usize,
}

/// Tuning of the search.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams {
    /// Size of the chunks of the new file searched in parallel.
    pub chunk: usize,
    /// A new exact match must beat the current alignment by more than this many bytes.
    /// bsdiff uses 8; 12 made the smallest patches on real executables (ruff 0.5.6 → 0.5.7:
    /// 8 → 2.587 MB, 10 → 2.571, 12 → 2.561, 14 → 2.580, 16 → 2.603).
    pub mismatch: usize,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            chunk: 1 << 20,
            mismatch: 12,
        }
    }
}

/// Computes the controls that rebuild `new` from `old`.
pub fn search(old: &[u8], new: &[u8], sa: &SuffixArray<'_>, params: SearchParams) -> Vec<Control> {
    let chunk = params.chunk.max(64 * 1024);
    let starts: Vec<usize> = (0..new.len()).step_by(chunk).collect();
    let per_chunk: Vec<Vec<Control>> = starts
        .par_iter()
        .map(|&start| {
            let end = (start + chunk).min(new.len());
            search_range(old, new, start, end, sa, params.mismatch)
        })
        .collect();
    per_chunk.into_iter().flatten().collect()
}

const SMALL_MATCH: usize = 12;
const LONG_MATCH: usize = 256;
/// How many times in a row a carried match stands in for a search. Each search is about 25
/// cache misses in the suffix array; on ruff 0.5.6 → 0.5.7, reusing up to 8 times made 31 %
/// fewer searches (3.09 M → 2.12 M) for a 0.23 % larger delta (0 → 2.401 MB, 2 → 2.408,
/// 4 → 2.406, 8 → 2.407).
const MAX_REUSE: usize = 8;

/// The longest prefix the suffix array is searched with. Each step of its binary search
/// compares up to the match length, so unbounded patterns make long matches cost their
/// length 25 times over; a match reaching the bound is extended by comparing forward.
const MAX_PATTERN: usize = 1024;

fn longest_match(sa: &SuffixArray<'_>, old: &[u8], pattern: &[u8]) -> (usize, usize) {
    let capped = &pattern[..pattern.len().min(MAX_PATTERN)];
    let range = sa.search_lcp(capped);
    let (pos, mut len) = (range.start, range.end - range.start);
    if len == capped.len() {
        len += old[pos + len..]
            .iter()
            .zip(&pattern[len..])
            .take_while(|(a, b)| a == b)
            .count();
    }
    (pos, len)
}

/// bsdiff's scan over `new[start..end]`. Matches may extend past `end` in the suffix array
/// lookup but regions are cut at `end`.
fn search_range(
    old: &[u8],
    new: &[u8],
    start: usize,
    end: usize,
    sa: &SuffixArray<'_>,
    mismatch: usize,
) -> Vec<Control> {
    let range = Range {
        old,
        new: &new[..end],
        end,
        sa,
        mismatch,
    };
    let mut controls = Vec::new();
    let mut cursor = Cursor {
        scan: start,
        pos: 0,
        len: 0,
    };
    // Each chunk starts aligned with the same offset in the old file: an unchanged region is
    // then one long add of zero differences rather than literals.
    let first_pos = start.min(old.len());
    let mut last = Alignment {
        scan: start,
        pos: first_pos,
        offset: first_pos as isize - start as isize,
    };
    while cursor.scan < end {
        cursor.scan += cursor.len;
        let old_score = next_match(&range, &last, &mut cursor);
        if cursor.len != old_score || cursor.scan >= end {
            let (len_forward, len_back) = extend(&range, &last, &cursor);
            controls.push(Control {
                add: len_forward,
                old_pos: last.pos,
                copy: (cursor.scan - len_back) - (last.scan + len_forward),
            });
            last = Alignment {
                scan: cursor.scan - len_back,
                pos: cursor.pos - len_back,
                offset: cursor.pos as isize - cursor.scan as isize,
            };
        }
    }
    // The loop may stop with new bytes after the last control (when the scan reached `end`
    // exactly after a match); cover them so the controls always span the whole range.
    let covered: usize = start + controls.iter().map(|c| c.add + c.copy).sum::<usize>();
    if covered < end {
        controls.push(Control {
            add: 0,
            old_pos: last.pos,
            copy: end - covered,
        });
    }
    controls
}

/// What one range's scan reads.
#[derive(Clone, Copy)]
struct Range<'a> {
    old: &'a [u8],
    /// The new file up to the end of the range.
    new: &'a [u8],
    end: usize,
    sa: &'a SuffixArray<'a>,
    mismatch: usize,
}

/// Where the scan is, and the match found there (`pos` in old, `len` bytes). A scan that
/// reaches the end finds nothing new and keeps the match before.
#[derive(Clone, Copy)]
struct Cursor {
    scan: usize,
    pos: usize,
    len: usize,
}

/// Where the last control left the alignment: the new position where its add region ends
/// up to the match, the old position there, and their offset.
#[derive(Clone, Copy)]
struct Alignment {
    scan: usize,
    pos: usize,
    offset: isize,
}

/// Moves the scan to the next exact match that beats the current alignment by more than
/// `mismatch` bytes (or matches it exactly), or to the end of the range, and returns the
/// match's old score: how many of its bytes the current alignment already gets right.
#[inline]
fn next_match(range: &Range<'_>, last: &Alignment, cursor: &mut Cursor) -> usize {
    let Range {
        old,
        new: new_range,
        end,
        sa,
        mismatch,
    } = *range;
    let last_offset = last.offset;
    let Cursor {
        mut scan,
        mut pos,
        mut len,
    } = *cursor;
    let mut old_score = 0usize;
    let mut score_scan = scan;
    // After a medium match that does not beat the alignment, the scan moves one byte and
    // the same match, one byte shorter, is still there: it is reused up to MAX_REUSE
    // times instead of searched again.
    let mut carried: Option<(usize, usize)> = None;
    let mut reused = 0usize;
    while scan < end {
        match carried.take() {
            Some(candidate) if reused < MAX_REUSE => {
                (pos, len) = candidate;
                reused += 1;
            }
            _ => {
                (pos, len) = longest_match(sa, old, &new_range[scan..]);
                reused = 0;
            }
        }
        while score_scan < scan + len {
            let aligned = score_scan as isize + last_offset;
            if aligned >= 0
                && (aligned as usize) < old.len()
                && old[aligned as usize] == new_range[score_scan]
            {
                old_score += 1;
            }
            score_scan += 1;
        }
        if (len == old_score && len != 0) || len > old_score + mismatch {
            break;
        }
        // Short matches are noise and long ones are mostly the current alignment with a
        // few changed bytes: skip over them instead of searching at every byte, which is
        // what makes plain bsdiff slow.
        let step = if len <= SMALL_MATCH {
            len.max(1)
        } else if len > LONG_MATCH {
            len / 4
        } else {
            if len - 1 > SMALL_MATCH {
                carried = Some((pos + 1, len - 1));
            }
            1
        };
        let stop = (scan + step).min(end);
        for (k, byte) in new_range.iter().enumerate().take(stop).skip(scan) {
            let aligned = k as isize + last_offset;
            if aligned >= 0 && (aligned as usize) < old.len() && old[aligned as usize] == *byte {
                old_score = old_score.saturating_sub(1);
            }
        }
        scan = stop;
    }
    *cursor = Cursor { scan, pos, len };
    old_score
}

/// Where the control between the last alignment and the new match is cut: how far the last
/// alignment's add region reaches forward and the new match's backward, each while more of
/// its bytes agree than not, split where the two overlap. Returns both lengths.
#[inline]
fn extend(range: &Range<'_>, last: &Alignment, cursor: &Cursor) -> (usize, usize) {
    let Range {
        old,
        new: new_range,
        end,
        ..
    } = *range;
    let (last_scan, last_pos) = (last.scan, last.pos);
    let Cursor { scan, pos, .. } = *cursor;

    // Extend the previous match forwards while it pays.
    let (mut s, mut best, mut len_forward) = (0isize, 0isize, 0usize);
    let mut i = 0;
    while last_scan + i < scan && last_pos + i < old.len() {
        if old[last_pos + i] == new_range[last_scan + i] {
            s += 1;
        }
        i += 1;
        if s * 2 - i as isize > best * 2 - len_forward as isize {
            best = s;
            len_forward = i;
        }
    }
    // Extend the new match backwards while it pays.
    let mut len_back = 0usize;
    if scan < end {
        let (mut s, mut best) = (0isize, 0isize);
        let mut i = 1;
        while scan >= last_scan + i && pos >= i {
            if old[pos - i] == new_range[scan - i] {
                s += 1;
            }
            if s * 2 - i as isize > best * 2 - len_back as isize {
                best = s;
                len_back = i;
            }
            i += 1;
        }
    }
    // Where the two extensions overlap, split them where it is best.
    if last_scan + len_forward > scan - len_back {
        let overlap = (last_scan + len_forward) - (scan - len_back);
        let (mut s, mut best, mut split) = (0isize, 0isize, 0usize);
        for i in 0..overlap {
            if new_range[last_scan + len_forward - overlap + i]
                == old[last_pos + len_forward - overlap + i]
            {
                s += 1;
            }
            if new_range[scan - len_back + i] == old[pos - len_back + i] {
                s -= 1;
            }
            if s > best {
                best = s;
                split = i + 1;
            }
        }
        len_forward = len_forward + split - overlap;
        len_back -= split;
    }
    (len_forward, len_back)
}
