//! Checks of single values that the JSON Schema cannot express: names, relative paths,
//! digests and password hashes. Each returns `Ok`, or a [`CheckError`] whose message says
//! what is wrong.

/// Longest game or user name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest version name.
pub const MAX_VERSION_LEN: usize = 64;

/// Why a value breaks its rule. The messages are diagnostics' messages as they are shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A game or user name is empty.
    #[error("the name is empty")]
    EmptyName,
    /// A game or user name is too long.
    #[error("the name `{0}` is longer than {MAX_NAME_LEN} characters")]
    NameTooLong(String),
    /// A game or user name starts with something else than a lowercase letter or a digit.
    #[error("the name `{0}` must start with a lowercase letter or a digit")]
    NameStart(String),
    /// A game or user name holds a character names do not use.
    #[error("the name `{name}` contains `{bad}`; names use lowercase letters, digits and `-`")]
    NameCharacter {
        /// The name.
        name: String,
        /// The first character not allowed.
        bad: char,
    },
    /// A version name is empty.
    #[error("the version name is empty")]
    EmptyVersionName,
    /// A version name is too long.
    #[error("the version name `{0}` is longer than {MAX_VERSION_LEN} characters")]
    VersionNameTooLong(String),
    /// A version name starts with something else than a letter or a digit.
    #[error("the version name `{0}` must start with a letter or a digit")]
    VersionNameStart(String),
    /// A version name holds a character version names do not use.
    #[error(
        "the version name `{name}` contains `{bad}`; use letters, digits, `.`, `_`, `+` and `-`"
    )]
    VersionNameCharacter {
        /// The version name.
        name: String,
        /// The first character not allowed.
        bad: char,
    },
    /// A version name has `..` or ends with `.`.
    #[error("the version name `{0}` has an empty dotted segment")]
    VersionNameEmptySegment(String),
    /// A relative path is empty.
    #[error("{what} is empty")]
    EmptyPath {
        /// The field, as the caller names it.
        what: String,
    },
    /// A relative path is absolute.
    #[error("{what} `{path}` is absolute; it must be relative")]
    AbsolutePath {
        /// The field, as the caller names it.
        what: String,
        /// The path.
        path: String,
    },
    /// A relative path uses `\` as a separator.
    #[error("{what} `{path}` contains `\\`; use `/` to separate folders")]
    Backslash {
        /// The field, as the caller names it.
        what: String,
        /// The path.
        path: String,
    },
    /// A relative path holds a NUL character.
    #[error("{what} contains a NUL character")]
    Nul {
        /// The field, as the caller names it.
        what: String,
    },
    /// A relative path climbs out of its root.
    #[error("{what} `{path}` contains `..`; it must stay inside its root")]
    ParentFolder {
        /// The field, as the caller names it.
        what: String,
        /// The path.
        path: String,
    },
    /// A relative path has an empty or `.` segment.
    #[error("{what} `{path}` has an empty or `.` folder name")]
    EmptySegment {
        /// The field, as the caller names it.
        what: String,
        /// The path.
        path: String,
    },
    /// A digest does not start with `blake3:`.
    #[error("digest `{0}` must start with `blake3:`")]
    DigestPrefix(String),
    /// A digest has the wrong number of hex digits.
    #[error("digest `{digest}` must have 64 hex digits after `blake3:`, it has {n_digits}")]
    DigestLength {
        /// The digest.
        digest: String,
        /// How many characters follow `blake3:`.
        n_digits: usize,
    },
    /// A digest holds something else than lowercase hex digits.
    #[error("digest `{digest}` contains `{bad}`; only lowercase hex digits are allowed")]
    DigestCharacter {
        /// The digest.
        digest: String,
        /// The first character not allowed.
        bad: char,
    },
    /// A password hash is not a PHC string.
    #[error("passwordHash is not a PHC string ({0}); make one with `mistpipe user add`")]
    NotPhc(argon2::password_hash::phc::Error),
    /// A password hash uses another algorithm than argon2id.
    #[error(
        "passwordHash uses `{0}`; Mist accepts only argon2id (make one with `mistpipe user add`)"
    )]
    NotArgon2id(String),
    /// A password hash is not argon2 version 19.
    #[error("passwordHash must be argon2id version 19 (`$v=19$`)")]
    Argon2Version,
    /// A password hash has parameters argon2 refuses.
    #[error("passwordHash has invalid argon2 parameters: {0}")]
    Argon2Params(argon2::password_hash::Error),
    /// A password hash lacks its salt or its hash.
    #[error("passwordHash lacks a salt or a hash")]
    NoSaltOrHash,
}

/// A game or user name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_name(name: &str) -> Result<(), CheckError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(CheckError::EmptyName);
    };
    if name.len() > MAX_NAME_LEN {
        return Err(CheckError::NameTooLong(name.to_owned()));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(CheckError::NameStart(name.to_owned()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(CheckError::NameCharacter {
            name: name.to_owned(),
            bad,
        });
    }
    Ok(())
}

/// A version name: `[A-Za-z0-9][A-Za-z0-9._+-]{0,63}`, without `..`.
pub fn check_version_name(name: &str) -> Result<(), CheckError> {
    let Some(first) = name.chars().next() else {
        return Err(CheckError::EmptyVersionName);
    };
    if name.len() > MAX_VERSION_LEN {
        return Err(CheckError::VersionNameTooLong(name.to_owned()));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(CheckError::VersionNameStart(name.to_owned()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
    {
        return Err(CheckError::VersionNameCharacter {
            name: name.to_owned(),
            bad,
        });
    }
    if name.contains("..") || name.ends_with('.') {
        return Err(CheckError::VersionNameEmptySegment(name.to_owned()));
    }
    Ok(())
}

/// A path relative to some root: not empty, not absolute, no `..` or empty segments, `/` as
/// the separator. `what` names the field for the message.
pub fn check_relative_path(path: &str, what: &str) -> Result<(), CheckError> {
    let what = || what.to_owned();
    let path_owned = || path.to_owned();
    if path.is_empty() {
        return Err(CheckError::EmptyPath { what: what() });
    }
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err(CheckError::AbsolutePath {
            what: what(),
            path: path_owned(),
        });
    }
    if path.contains('\\') {
        return Err(CheckError::Backslash {
            what: what(),
            path: path_owned(),
        });
    }
    if path.contains('\0') {
        return Err(CheckError::Nul { what: what() });
    }
    let trimmed = path
        .strip_prefix("./")
        .unwrap_or(path)
        .trim_end_matches('/');
    for segment in trimmed.split('/') {
        match segment {
            ".." => {
                return Err(CheckError::ParentFolder {
                    what: what(),
                    path: path_owned(),
                });
            }
            "" | "." => {
                return Err(CheckError::EmptySegment {
                    what: what(),
                    path: path_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The largest header image a spec repository may hold next to a `game.yaml`.
pub const MAX_HEADER_IMAGE_SIZE: u64 = 2 * 1024 * 1024;

/// The kinds of image Mist serves as a game's header image, told by their first bytes
/// ([`ImageType::sniff`]), never by a file name or a server's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl ImageType {
    /// The type whose signature `bytes` start with, if any.
    pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageType::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageType::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageType::Webp)
        } else {
            None
        }
    }

    /// The media type, e.g. `image/png`.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
        }
    }

    /// The type of a media type [`ImageType::media_type`] gives.
    pub fn from_media_type(media_type: &str) -> Option<ImageType> {
        [ImageType::Png, ImageType::Jpeg, ImageType::Webp]
            .into_iter()
            .find(|image_type| image_type.media_type() == media_type)
    }
}

/// A tree digest: `blake3:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), CheckError> {
    let Some(hex) = digest.strip_prefix("blake3:") else {
        return Err(CheckError::DigestPrefix(digest.to_owned()));
    };
    if hex.len() != 64 {
        return Err(CheckError::DigestLength {
            digest: digest.to_owned(),
            n_digits: hex.len(),
        });
    }
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(CheckError::DigestCharacter {
            digest: digest.to_owned(),
            bad,
        });
    }
    Ok(())
}

/// An argon2id PHC string with version 19 and parameters `m`, `t` and `p`.
pub fn check_password_hash(hash: &str) -> Result<(), CheckError> {
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash).map_err(CheckError::NotPhc)?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(CheckError::NotArgon2id(parsed.algorithm.to_string()));
    }
    if parsed.version != Some(19) {
        return Err(CheckError::Argon2Version);
    }
    argon2::Params::try_from(&parsed).map_err(CheckError::Argon2Params)?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(CheckError::NoSaltOrHash);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["celeste", "a", "0ad", "hollow-knight", &"a".repeat(63)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Celeste", "-x", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_names() {
        for ok in ["1.4.0.1", "2024-01-02", "1.0+build.5", "v2", "1.0_rc1"] {
            assert_eq!(check_version_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".1", "1..2", "1.", "1/2", "1 2"] {
            assert!(check_version_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        for ok in ["incoming/celeste/1.0", "./a/b", "a/b/"] {
            assert_eq!(check_relative_path(ok, "source"), Ok(()), "{ok}");
        }
        for bad in ["", "/abs", "C:/x", "a/../b", "..", "a//b", "a\\b", "a/./b"] {
            assert!(check_relative_path(bad, "source").is_err(), "{bad}");
        }
    }

    #[test]
    fn images_are_told_by_their_first_bytes() {
        let cases: [(&[u8], Option<ImageType>); 6] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some(ImageType::Png)),
            (&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10], Some(ImageType::Jpeg)),
            (b"RIFF\x10\0\0\0WEBPVP8 ", Some(ImageType::Webp)),
            (b"GIF89a\x01\0\x01\0", None),
            (b"RIFF\x10\0\0\0WAVEfmt ", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(ImageType::sniff(bytes), want, "{bytes:?}");
            if let Some(image_type) = want {
                assert_eq!(ImageType::from_media_type(image_type.media_type()), want);
            }
        }
    }

    #[test]
    fn digests() {
        let good = format!("blake3:{}", "ab".repeat(32));
        assert_eq!(check_digest(&good), Ok(()));
        assert!(check_digest(&good.to_uppercase()).is_err());
        assert!(check_digest("sha256:00").is_err());
        assert!(check_digest("blake3:00").is_err());
    }
}
