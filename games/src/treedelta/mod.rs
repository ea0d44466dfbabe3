//! Tree deltas: one package that turns a whole build into its next version.
//!
//! [`create::create`] compares two build folders and writes a package;
//! [`package::Package`] reads one back, checking everything it holds before any of it is
//! used; [`apply::apply_to_dir`] rebuilds the new version into a fresh folder (what
//! `mistpipe delta apply` and `crate::replay` do), and `crate::install` applies it in place
//! to a friend's install. Newcomers start at `Package`.
//!
//! Per target file the package says one of: unchanged (nothing stored), `mode` (same
//! content, executable bit flipped), `copy` (the content exists in the old version under
//! some path: renames, moves and duplicates cost nothing), `patch` (a
//! [file delta](mist_delta) against the best old file: the same path, else a file of
//! the same name elsewhere, else one with the same extension and the closest size) or `add`
//! (the file compressed alone).
//!
//! The index does not hold the manifests: it holds the target manifest as a difference from
//! the source manifest, so its size follows the change, not the tree. Besides the operations
//! (which carry the new files' entries) it lists the removed paths and the new directories
//! and new or changed symlinks. Applying therefore needs the source manifest from the caller
//! (a client has the manifest of the version it runs; `mistpipe` scans the old folder):
//! [`package::Package::target_manifest`] checks it against the header's source digest,
//! rebuilds the target manifest as source − removed + changed, validates it and checks it
//! against the header's target digest before anything is written.
//!
//! The package is a fixed header, a zstd-compressed JSON index, then the file deltas
//! concatenated in index order; `docs/delta.md` ("Tree delta") specifies it byte by byte.
//! Every piece verifies on its own: the header has a checksum and the BLAKE3 of the index,
//! the index gives the `len` of each file delta (they lie end to end) and the target size
//! and hash of each file, and each file delta carries its own checksum and the hashes of its
//! input and output, which must match the source manifest's entry for its base and the
//! target entry. A client that fetched only the index and some of the file deltas can check
//! each of them.
//!
//! The same inputs and options give the same bytes: operations are chosen and written in
//! path order, whatever order the parallel diffs finish in.
//!
//! Every path in an index is untrusted: [`format::check_untrusted_path`] refuses absolute
//! paths, `..`, `.` and empty components and backslashes, and writing never follows a
//! symlink.
//!
//! The rooms, in the order a package is made and used:
//!
//! - `choice`: how each target file is made, chosen from the manifests alone;
//! - [`create`]: the file deltas made in parallel and the package written;
//! - [`format`](mod@format): the fixed header, the limits and [`format::TreeDeltaError`];
//! - [`index`]: the operations and the target manifest's difference, and their checks
//!   (its JSON shape is the private `index_json` module);
//! - [`package`]: a package opened for reading, its file deltas checked and decoded;
//! - [`stats`]: what a package holds, per kind of operation;
//! - [`apply`]: a package applied into a fresh folder.

pub mod apply;
mod choice;
pub mod create;
pub mod format;
pub mod index;
mod index_json;
pub mod package;
pub mod stats;
