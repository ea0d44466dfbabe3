//! The library half of `mistd`, the Mist server binary.
//!
//! For now it holds [`demo`]: [`demo::generate`] makes a demo spec repository and NAS with
//! three synthetic games and returns a [`demo::DemoLayout`] saying where everything is. The
//! server itself (reconciler and API, `mistd run`) will be wired in next to it; the layout
//! carries exactly what the server needs to serve the demo (`specs_repo`, `branch`, `nas`,
//! `data`).

#![deny(missing_docs)]

pub mod demo;
