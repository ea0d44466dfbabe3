//! File deltas for Mist: one file turned into its next version.
//!
//! The principal functions are [`filedelta::diff`], which makes a delta from an old and a
//! new file, and [`filedelta::apply`], which rebuilds the new file from the old one and the
//! delta, checking both files' BLAKE3 on the way. Newcomers start there; the match search
//! behind `diff` is [`matcher::search`]. The container is specified byte by byte in
//! `docs/delta.md`.
//!
//! This crate is pure computation on byte slices: it never touches the disk.

#![deny(missing_docs)]

pub mod filedelta;
pub mod matcher;
