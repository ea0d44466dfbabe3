//! What Mist needs from the operating system, written once for every crate.
//!
//! Newcomers start with [`fs`]: [`fs::open_regular_nofollow`] opens a file from untrusted
//! or changing folders without following a symlink or blocking on a fifo, and
//! [`fs::write_atomic`] (configured by its principal type, [`fs::AtomicWrite`]) replaces a
//! file so that a reader or a crash sees the old content or the new, never a part.
//! [`error::ErrorChain`] prints an error with its causes, `a: b: c`, for logs and the last
//! line a binary prints. [`units::human_size`] writes bytes as people read them, and
//! [`password::read`] reads a password the one way every command does.
//!
//! Unix code sits behind `#[cfg(unix)]`; every function also has a Windows (non-Unix)
//! version, so the crates above build there too, with what that system offers (no modes,
//! no directory fsync).

#![deny(missing_docs)]

pub mod error;
pub mod fs;
pub mod password;
pub mod units;
