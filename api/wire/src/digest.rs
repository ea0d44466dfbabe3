//! Content addresses as the API writes them.

/// Whether `digest` is `blake3:` and 64 lowercase hex digits, the only form the server uses
/// for artifacts and trees.
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("blake3:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The download URL of an artifact, relative to the server: `/v1/artifacts/{digest}`.
pub fn artifact_path(digest: &str) -> String {
    format!("/v1/artifacts/{digest}")
}

/// The URL of a game's header image, relative to the server:
/// `/v1/games/{game}/image/{digest}`. The digest in the URL makes it immutable: a new image
/// is a new URL.
pub fn image_path(game: &str, digest: &str) -> String {
    format!("/v1/games/{game}/image/{digest}")
}
