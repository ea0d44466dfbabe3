//! The library half of `mistd`, the Mist server binary.
//!
//! The principal function is [`run::serve`], which runs `mistd run`: the reconciler
//! ([`mist_reconciler::reconciler::Reconciler`]) and the HTTP [`server::app`] in one
//! process, configured by [`config::Settings`] (flags > `MIST_*` variables > config file >
//! defaults) and stopped by a [`run::Shutdown`]. Next to it:
//!
//! - [`demo`]: [`demo::generate`] makes a demo spec repository and NAS with three synthetic
//!   games and returns a [`demo::DemoLayout`] saying where everything is.
//!
//! The readable form of [`mist_reconciler::status()`] (`mistd status`, and the one-line
//! progress `mistd demo` shows while it converges) is in `mist-status-view`, which
//! `mistpipe status` shares.

#![deny(missing_docs)]

pub mod config;
pub mod demo;
pub mod run;
pub mod server;
