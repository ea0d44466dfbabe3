//! File deltas for Mist: one file turned into its next version.
//!
//! The principal functions are [`encode::diff`], which makes a delta from an old and a new
//! file, and [`decode::apply`], which rebuilds the new file from the old one and the delta,
//! checking both files' BLAKE3 on the way; a newcomer starts with them. [`format`](mod@format) is the
//! container both sides share (specified byte by byte in `docs/delta.md`), and
//! [`matcher::search`] the bsdiff-style match search behind `diff`.
//!
//! The rooms, in the order a delta is made: `matcher` finds the matches; `encode` splits
//! them into streams and codes each (raw, zstd or LZMA); `branch` predicts where x86 call
//! and jump targets moved, so that moved code costs nothing; `varint` writes the numbers;
//! `format` lays out the container; `decode` checks and applies it.
//!
//! This crate is pure computation on byte slices: it never touches the disk. Its one error
//! type, [`format::DeltaError`], keeps an I/O cause out of its message and returns it from
//! `source()`.

#![deny(missing_docs)]

mod branch;
pub mod decode;
pub mod encode;
pub mod format;
pub mod matcher;
mod varint;
