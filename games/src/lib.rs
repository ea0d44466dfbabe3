//! Game build content for Mist.
//!
//! The principal type in this crate is the [`manifest::Manifest`]: the list of every
//! file, symlink and directory in a game build, with sizes, executable bits and BLAKE3
//! hashes, made by [`scan::scan`]. Its [`manifest::TreeDigest`] (`blake3:<hex>`)
//! names a build exactly; specs pin it and the reconciler checks builds against it.
//!
//! The manifest types are pure data and never touch the disk; only [`scan::scan`]
//! does I/O. The digest encoding is specified in `docs/manifest.md`.
//!
//! The rooms, from a build to a friend's install:
//!
//! - [`manifest`] and [`scan`]: what a build is, and reading one from a folder;
//! - [`pack`]: a whole version as one deterministic file, and its checked unpacking;
//! - [`treedelta`]: one version turned into the next, file by file (each changed file's
//!   delta is made by the `mist-delta` crate);
//! - `install` (Unix): a pack or a tree delta applied to an install, staged and committed
//!   through a journal so that a crash leaves one version or the other;
//! - `replay` (Unix): a version rebuilt from an older one and the deltas between them;
//! - [`repair`]: rsync-style deltas that fix single damaged files;
//! - private helpers: `confined` (file operations relative to open folders, never through
//!   a symlink), `copy` (reading and copying files while checking them) and `parallel`
//!   (plain threads under a memory budget).
//!
//! Errors keep their cause out of their own message and return it from `source()`; print
//! them with `mist_platform::error::ErrorChain` (or `{:#}` through anyhow) to see it.

#![deny(missing_docs)]

#[cfg(unix)]
mod confined;
#[cfg(unix)]
mod copy;
#[cfg(unix)]
pub mod install;
mod io_error;
pub mod manifest;
pub mod pack;
mod parallel;
pub mod repair;
#[cfg(unix)]
pub mod replay;
pub mod scan;
pub mod treedelta;
