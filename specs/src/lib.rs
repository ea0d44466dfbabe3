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

/// The line of a commit message (a git trailer) by which an admin confirms a commit that
/// retires more of the Ready versions than one commit may retire unconfirmed: the reconciler
/// holds such a commit until the commit in force carries this line, and
/// `mistpipe confirm-retire` makes such a commit.
pub const CONFIRM_RETIRE_TRAILER: &str = "Mist-Confirm-Retire: yes";

pub mod check;
pub mod diagnostic;
pub mod image;
pub mod indent;
pub mod load;
pub mod model;
pub mod nas;
pub mod order;
pub mod scaffold;
pub mod schema;
pub mod source;
pub mod yaml;
