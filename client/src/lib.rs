//! `mist`, the friends' client of a Mist server.
//!
//! The principal type in this crate is the [`state::InstalledGame`]: what is installed where,
//! at which version, with the manifest the install matches and the update step that may be
//! under way. Every command reads it, talks to the server through [`api::Api`], fetches
//! artifacts with the resumable, verifying [`download::Downloader`] and changes installs only
//! through the content engine (`mist_games::install`), so an install is always one version
//! or the next, never half of each. [`ops`] holds the commands themselves, one module per
//! family, and [`platform`] the few calls that differ from one operating system to another.
#![deny(missing_docs)]

pub mod api;
pub mod dirs;
pub mod download;
pub mod ops;
pub mod platform;
pub mod progress;
pub mod repair;
pub mod state;
