//! A game's header image, kept in the spec repository next to its `game.yaml` and named by
//! `spec.headerImage`: where it may be and what it must be ([`read_header_image`]).
//!
//! The path is relative to the game's folder and stays inside it; it names a regular file of
//! the tree (not `game.yaml`, nothing under `versions/`) that is a PNG, JPEG or WebP image by
//! its first bytes, of at most [`MAX_HEADER_IMAGE_SIZE`] bytes.

use std::sync::Arc;

use crate::check::{CheckError, ImageType, MAX_HEADER_IMAGE_SIZE, check_relative_path};
use crate::source::{EntryKind, SourceError, SpecSource};

/// A game's header image from the spec repository, read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderImage {
    /// Its path in the tree, e.g. `games/celeste/header.png`.
    pub path: String,
    /// What kind of image it is.
    pub image_type: ImageType,
    /// Its bytes.
    pub bytes: Arc<[u8]>,
}

impl std::fmt::Debug for HeaderImage {
    /// Shows the size, not the bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderImage")
            .field("path", &self.path)
            .field("image_type", &self.image_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// Why `spec.headerImage` cannot be used. The messages are diagnostics' messages.
#[derive(Debug, thiserror::Error)]
pub enum HeaderImageError {
    /// The path is not a plain relative path.
    #[error(transparent)]
    Path(CheckError),
    /// The path names the game's own spec files.
    #[error("`spec.headerImage` `{0}` names the game's spec files; give an image file")]
    SpecFile(String),
    /// Nothing is at the path.
    #[error("`spec.headerImage` `{0}` does not exist: there is no {1}")]
    Missing(String, String),
    /// Something else than a regular file is at the path.
    #[error("`spec.headerImage` `{0}` is not a regular file")]
    NotAFile(String),
    /// The file is too large.
    #[error(
        "`spec.headerImage` `{path}` is {size} bytes; a header image may be at most \
         {MAX_HEADER_IMAGE_SIZE} bytes (2 MB)"
    )]
    TooLarge {
        /// The path as given.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file is not an image of a kind Mist serves.
    #[error("`spec.headerImage` `{0}` is not a PNG, JPEG or WebP image (by its first bytes)")]
    NotAnImage(String),
}

/// The path in the tree of the header image `path` of the game in `games/<folder>/`.
pub fn header_image_path(folder: &str, path: &str) -> String {
    format!("games/{folder}/{}", path.strip_prefix("./").unwrap_or(path))
}

/// Checks the header image `path` (as `spec.headerImage` gives it) of the game in
/// `games/<folder>/` and reads it. `kind_of` tells what a path of the tree is. The outer
/// error is a tree that cannot be read; the inner one is a problem of the spec.
pub fn read_header_image(
    source: &dyn SpecSource,
    folder: &str,
    path: &str,
    kind_of: impl Fn(&str) -> Option<EntryKind>,
) -> Result<Result<HeaderImage, HeaderImageError>, SourceError> {
    if let Err(problem) = check_relative_path(path, "`spec.headerImage`") {
        return Ok(Err(HeaderImageError::Path(problem)));
    }
    let in_folder = path
        .strip_prefix("./")
        .unwrap_or(path)
        .trim_end_matches('/');
    if in_folder == "game.yaml" || in_folder == "versions" || in_folder.starts_with("versions/") {
        return Ok(Err(HeaderImageError::SpecFile(path.to_owned())));
    }
    let tree_path = header_image_path(folder, in_folder);
    let size = match kind_of(&tree_path) {
        None => return Ok(Err(HeaderImageError::Missing(path.to_owned(), tree_path))),
        Some(EntryKind::File { size }) => size,
        Some(_) => return Ok(Err(HeaderImageError::NotAFile(path.to_owned()))),
    };
    if size > MAX_HEADER_IMAGE_SIZE {
        return Ok(Err(HeaderImageError::TooLarge {
            path: path.to_owned(),
            size,
        }));
    }
    let bytes = source.read(&tree_path, MAX_HEADER_IMAGE_SIZE + 1)?;
    if bytes.len() as u64 > MAX_HEADER_IMAGE_SIZE {
        return Ok(Err(HeaderImageError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        }));
    }
    let Some(image_type) = ImageType::sniff(&bytes) else {
        return Ok(Err(HeaderImageError::NotAnImage(path.to_owned())));
    };
    Ok(Ok(HeaderImage {
        path: tree_path,
        image_type,
        bytes: bytes.into(),
    }))
}

/// Whether a path of the tree (split at `/`) is inside a game's folder but neither its
/// `game.yaml` nor under its `versions/`: such a file is read only as a header image, and is
/// otherwise a stray.
pub(crate) fn in_game_folder_beside_specs(parts: &[&str]) -> bool {
    parts.len() >= 3
        && parts[0] == "games"
        && parts[2] != "versions"
        && !(parts.len() == 3 && parts[2] == "game.yaml")
}

/// Whether `path` is a header image named by a game, or a folder holding one.
pub(crate) fn holds_header_image<'a>(
    path: &str,
    mut images: impl Iterator<Item = &'a String>,
) -> bool {
    images.any(|image| {
        image == path
            || image
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}
