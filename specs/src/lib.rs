//! Mist's spec format.
//!
//! Admins describe games, versions and users as YAML files in a git repository. The types in
//! [`model`] are the format ([`model::Game`], [`model::Version`], [`model::User`]), and the
//! entry point is [`load::load`]: it reads a tree from a directory ([`source::DirSource`]) or
//! from a commit ([`source::GitSource`]), and returns the valid specs together with a
//! [`load::Diagnostic`] for every problem, each naming the file and, where the YAML gives one,
//! the line and column.
//!
//! Parsing is bounded ([`yaml`]): oversized files, alias bombs, deep nesting and invalid
//! UTF-8 are diagnostics, never panics or unbounded memory.
#![deny(missing_docs)]

pub mod check;
pub mod load;
pub mod model;
pub mod order;
pub mod scaffold;
pub mod schema;
pub mod source;
pub mod yaml;
