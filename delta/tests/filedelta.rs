//! File deltas through the public API: round trips, fallbacks, branch prediction and
//! damage.

use mist_delta::decode::apply;
use mist_delta::encode::{DiffOptions, diff};
use mist_delta::format::{DeltaError, Method, read_header};
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
