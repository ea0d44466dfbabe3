//! Repair deltas: round trips, damaged local files, tampered deltas, hostile signatures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mist_games::manifest::FileHash;
use mist_games::repair::{
    MAX_BLOCKS, Method, RepairError, apply_repair, delta_method, repair_delta, signature,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Measuring allocations, per thread, so that tests running in parallel do not disturb
// each other.

struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the bookkeeping only touches
// const-initialized thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|allocated| {
            let now = allocated.get() + layout.size();
            allocated.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = ALLOCATED
            .try_with(|allocated| allocated.set(allocated.get().saturating_sub(layout.size())));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the most bytes this thread had allocated at once
/// during it, beyond what was allocated before.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = f();
    (result, PEAK.with(Cell::get) - before)
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn hash(data: &[u8]) -> FileHash {
    FileHash(*blake3::hash(data).as_bytes())
}

/// The round trip as client and server do it; returns the delta and the rebuilt file.
fn repair(local: &[u8], true_data: &[u8]) -> (Vec<u8>, Result<Vec<u8>, RepairError>) {
    let delta = repair_delta(&signature(local), true_data).unwrap();
    let rebuilt = apply_repair(local, &delta, &hash(true_data), true_data.len() as u64);
    (delta, rebuilt)
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Round trips.

/// A new file made from an old one by a few edits, so that blocks really match.
fn old_and_new() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let edit = (
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..64),
        0..64usize,
    );
    (
        prop::collection::vec(any::<u8>(), 0..6000),
        prop::collection::vec(edit, 0..4),
    )
        .prop_map(|(old, edits)| {
            let mut new = old.clone();
            for (at, insert, n_removed) in edits {
                let start = if new.is_empty() {
                    0
                } else {
                    at.index(new.len())
                };
                let end = (start + n_removed).min(new.len());
                new.splice(start..end, insert);
            }
            (old, new)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Unrelated random strings, including empty ones.
    #[test]
    fn random_strings_round_trip(
        old in prop::collection::vec(any::<u8>(), 0..3000),
        new in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let (_, rebuilt) = repair(&old, &new);
        prop_assert_eq!(rebuilt.unwrap(), new);
    }

    #[test]
    fn edited_strings_round_trip((old, new) in old_and_new()) {
        let (_, rebuilt) = repair(&old, &new);
        prop_assert_eq!(rebuilt.unwrap(), new);
    }
}

/// Typical damage to a local copy of a 300 KB file. Each is repaired exactly, and where
/// most of the file survived, the delta is a small part of the file.
#[test]
fn damaged_local_files_are_repaired() {
    let true_data = noise(300_000, 7);
    type Damage = fn(&[u8]) -> Vec<u8>;
    let cases: &[(&str, Damage, bool)] = &[
        ("intact", |data| data.to_vec(), true),
        (
            "bit flips",
            |data| {
                let mut damaged = data.to_vec();
                for position in [0, 1234, 150_000, 299_999] {
                    damaged[position] ^= 0x10;
                }
                damaged
            },
            true,
        ),
        ("truncated", |data| data[..290_000].to_vec(), true),
        (
            "extended",
            |data| [data, &noise(50_000, 3)[..]].concat(),
            true,
        ),
        ("shifted", |data| [&b"xyz"[..], data].concat(), true),
        (
            "zeroed range",
            |data| {
                let mut damaged = data.to_vec();
                damaged[100_000..140_000].fill(0);
                damaged
            },
            true,
        ),
        ("empty", |_| Vec::new(), false),
        ("unrelated", |data| noise(data.len(), 99), false),
    ];
    let whole_len = zstd::encode_all(&true_data[..], 6).unwrap().len();
    for (name, damage, mostly_intact) in cases {
        let local = damage(&true_data);
        let (delta, rebuilt) = repair(&local, &true_data);
        assert!(rebuilt.unwrap() == true_data, "{name}");
        if *mostly_intact {
            assert_eq!(delta_method(&delta).unwrap(), Method::Rsync, "{name}");
            assert!(
                delta.len() < true_data.len() / 5,
                "{name}: {} byte delta",
                delta.len()
            );
        } else {
            // Nothing to reuse: the whole file, no larger than compressing it alone.
            assert_eq!(delta_method(&delta).unwrap(), Method::Whole, "{name}");
            assert!(delta.len() <= whole_len + 32, "{name}");
        }
    }
}

/// fast_rsync's hashes are never trusted: a delta applied to a local file other than the
/// one it was made for, or checked against the wrong manifest entry, is an error.
#[test]
fn results_are_verified_against_the_manifest() {
    let true_data = noise(50_000, 1);
    let mut local = true_data.clone();
    local[25_000] ^= 1;
    let delta = repair_delta(&signature(&local), &true_data).unwrap();
    assert_eq!(delta_method(&delta).unwrap(), Method::Rsync);
    let size = true_data.len() as u64;

    let mut other_local = local.clone();
    other_local[10_000] ^= 1;
    let result = apply_repair(&other_local, &delta, &hash(&true_data), size);
    assert!(
        matches!(result, Err(RepairError::Mismatch { .. })),
        "{result:?}"
    );

    let result = apply_repair(&local, &delta, &hash(b"another file"), size);
    assert!(
        matches!(result, Err(RepairError::Mismatch { .. })),
        "{result:?}"
    );

    // A smaller expected size stops the output at that size.
    let result = apply_repair(&local, &delta, &hash(&true_data), size - 1);
    assert!(result.is_err(), "{result:?}");
    let result = apply_repair(&local, &delta, &hash(&true_data), size + 1);
    assert!(
        matches!(result, Err(RepairError::Mismatch { .. })),
        "{result:?}"
    );

    // A local file too short for the copies the delta makes.
    let result = apply_repair(&local[..1000], &delta, &hash(&true_data), size);
    assert!(matches!(result, Err(RepairError::Corrupt(_))), "{result:?}");
}

// ---------------------------------------------------------------------------------------
// Damaged deltas.

/// Every single-bit flip and every truncation of a delta fails, or (if it does not change
/// what the delta means) still gives exactly the true file.
#[test]
fn tampered_deltas_are_rejected() {
    let true_data = noise(20_000, 5);
    let mut local = true_data.clone();
    local[5_000..5_100].fill(0);
    for local in [local, Vec::new()] {
        let delta = repair_delta(&signature(&local), &true_data).unwrap();
        let expected = hash(&true_data);
        let size = true_data.len() as u64;
        let mut n_accepted = 0;
        for position in 0..delta.len() {
            let mut damaged = delta.clone();
            damaged[position] ^= 1 << (position % 8);
            if let Ok(rebuilt) = apply_repair(&local, &damaged, &expected, size) {
                assert!(rebuilt == true_data, "flip at {position}");
                n_accepted += 1;
            }
        }
        assert!(
            n_accepted * 100 < delta.len(),
            "{n_accepted} of {}",
            delta.len()
        );
        for cut in 0..delta.len() {
            let result = apply_repair(&local, &delta[..cut], &expected, size);
            assert!(result.is_err(), "truncated to {cut}");
        }
        let mut extended = delta.clone();
        extended.push(0);
        let result = apply_repair(&local, &extended, &expected, size);
        assert!(matches!(result, Err(RepairError::Corrupt(_))), "{result:?}");
    }
}

#[test]
fn delta_headers_are_checked() {
    let true_data = noise(1000, 2);
    let delta = repair_delta(&signature(b""), &true_data).unwrap();
    let expected = hash(&true_data);
    type Edit = fn(&mut Vec<u8>);
    type Check = fn(&RepairError) -> bool;
    let cases: &[(&str, Edit, Check)] = &[
        (
            "magic",
            |d| d[0] = b'X',
            |e| matches!(e, RepairError::BadMagic),
        ),
        (
            "version",
            |d| d[8] = 2,
            |e| matches!(e, RepairError::UnsupportedVersion(2)),
        ),
        (
            "method",
            |d| d[9] = 7,
            |e| matches!(e, RepairError::Corrupt(_)),
        ),
        (
            "reserved",
            |d| d[11] = 1,
            |e| matches!(e, RepairError::Corrupt(_)),
        ),
        // A declared payload far beyond what the file could need is refused before
        // anything is decompressed.
        (
            "huge payload length",
            |d| d[12..20].copy_from_slice(&u64::MAX.to_le_bytes()),
            |e| matches!(e, RepairError::Corrupt(_)),
        ),
        (
            "short payload length",
            |d| d[12] = d[12].wrapping_sub(1),
            |e| matches!(e, RepairError::Corrupt(_)),
        ),
        (
            "empty",
            |d| d.clear(),
            |e| matches!(e, RepairError::Corrupt(_)),
        ),
    ];
    for (name, edit, expected_error) in cases {
        let mut damaged = delta.clone();
        edit(&mut damaged);
        match apply_repair(b"", &damaged, &expected, true_data.len() as u64) {
            Err(error) if expected_error(&error) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// A delta whose payload inflates far beyond its declared length is stopped at the bound.
#[test]
fn delta_decompression_is_bounded() {
    let expected_size = 1000u64;
    let bomb_payload = zstd::encode_all(&vec![0u8; 64 << 20][..], 1).unwrap();
    let mut delta = Vec::new();
    delta.extend_from_slice(b"MISTRPAR\x01\x00\x00\x00");
    delta.extend_from_slice(&expected_size.to_le_bytes());
    delta.extend_from_slice(&bomb_payload);
    let (result, peak) =
        peak_allocation(|| apply_repair(b"", &delta, &hash(&[0; 1000]), expected_size));
    assert!(matches!(result, Err(RepairError::Corrupt(_))), "{result:?}");
    assert!(peak < 1 << 20, "{peak} bytes allocated");
}

// ---------------------------------------------------------------------------------------
// Hostile signatures.

fn signature_bytes(magic: u32, block_size: u32, hash_len: u32, blocks: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&magic.to_be_bytes());
    bytes.extend_from_slice(&block_size.to_be_bytes());
    bytes.extend_from_slice(&hash_len.to_be_bytes());
    bytes.extend_from_slice(blocks);
    bytes
}

const MD4_MAGIC: u32 = 0x7273_0136;
const BLAKE2_MAGIC: u32 = 0x7273_0137;

#[test]
fn hostile_signatures_are_refused_without_large_allocations() {
    let true_data = noise(10_000, 3);
    let too_many_blocks = vec![0xab; (MAX_BLOCKS + 1) * 12];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", noise(1000, 11)),
        (
            "short header",
            signature_bytes(MD4_MAGIC, 1024, 8, &[])[..11].to_vec(),
        ),
        ("blake2", signature_bytes(BLAKE2_MAGIC, 1024, 8, &[0; 12])),
        ("block size 0", signature_bytes(MD4_MAGIC, 0, 8, &[0; 12])),
        ("block size 1", signature_bytes(MD4_MAGIC, 1, 8, &[0; 12])),
        (
            "huge block size",
            signature_bytes(MD4_MAGIC, u32::MAX, 8, &[0; 12]),
        ),
        (
            "hash length 0",
            signature_bytes(MD4_MAGIC, 1024, 0, &[0; 12]),
        ),
        (
            "hash length 17",
            signature_bytes(MD4_MAGIC, 1024, 17, &[0; 21]),
        ),
        (
            "huge hash length",
            signature_bytes(MD4_MAGIC, 1024, u32::MAX, &[0; 12]),
        ),
        (
            "partial block",
            signature_bytes(MD4_MAGIC, 1024, 8, &[0; 13]),
        ),
        (
            "too many blocks",
            signature_bytes(MD4_MAGIC, 1024, 8, &too_many_blocks),
        ),
    ];
    // The measurement sees allocations at all.
    let (buffer, peak) = peak_allocation(|| vec![1u8; 1 << 20]);
    assert!(peak >= buffer.len(), "{peak}");
    for (name, hostile) in cases {
        let (result, peak) = peak_allocation(|| repair_delta(&hostile, &true_data));
        assert!(
            matches!(result, Err(RepairError::InvalidSignature(_))),
            "{name}: {result:?}"
        );
        assert!(peak < 4096, "{name}: {peak} bytes allocated");
    }
}

/// A well-formed signature full of random hashes matches nothing true: the repair is
/// still correct.
#[test]
fn random_well_formed_signatures_still_repair_correctly() {
    let true_data = noise(100_000, 4);
    for (block_size, hash_len) in [(256, 8), (1024, 16), (4 << 20, 12)] {
        let blocks = noise(50 * (4 + hash_len as usize), block_size);
        let hostile = signature_bytes(MD4_MAGIC, block_size, hash_len, &blocks);
        let delta = repair_delta(&hostile, &true_data).unwrap();
        let rebuilt = apply_repair(b"", &delta, &hash(&true_data), true_data.len() as u64);
        assert!(rebuilt.unwrap() == true_data, "{block_size}");
    }
}
