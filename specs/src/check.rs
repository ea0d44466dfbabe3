//! Checks of single values that the JSON Schema cannot express: names, relative paths,
//! digests and password hashes. Each returns the problem as a message, or `Ok`.

/// Longest game or user name.
pub const MAX_NAME_LEN: usize = 63;
/// Longest version name.
pub const MAX_VERSION_LEN: usize = 64;

/// A game or user name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("the name is empty".into());
    };
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name `{name}` is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!(
            "the name `{name}` must start with a lowercase letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "the name `{name}` contains `{bad}`; names use lowercase letters, digits and `-`"
        ));
    }
    Ok(())
}

/// A version name: `[A-Za-z0-9][A-Za-z0-9._+-]{0,63}`, without `..`.
pub fn check_version_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("the version name is empty".into());
    };
    if name.len() > MAX_VERSION_LEN {
        return Err(format!(
            "the version name `{name}` is longer than {MAX_VERSION_LEN} characters"
        ));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(format!(
            "the version name `{name}` must start with a letter or a digit"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
    {
        return Err(format!(
            "the version name `{name}` contains `{bad}`; use letters, digits, `.`, `_`, `+` and `-`"
        ));
    }
    if name.contains("..") || name.ends_with('.') {
        return Err(format!(
            "the version name `{name}` has an empty dotted segment"
        ));
    }
    Ok(())
}

/// A path relative to some root: not empty, not absolute, no `..` or empty segments, `/` as
/// the separator. `what` names the field for the message.
pub fn check_relative_path(path: &str, what: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Err(format!("{what} `{path}` is absolute; it must be relative"));
    }
    if path.contains('\\') {
        return Err(format!(
            "{what} `{path}` contains `\\`; use `/` to separate folders"
        ));
    }
    if path.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    let trimmed = path
        .strip_prefix("./")
        .unwrap_or(path)
        .trim_end_matches('/');
    for segment in trimmed.split('/') {
        match segment {
            ".." => {
                return Err(format!(
                    "{what} `{path}` contains `..`; it must stay inside its root"
                ));
            }
            "" | "." => return Err(format!("{what} `{path}` has an empty or `.` folder name")),
            _ => {}
        }
    }
    Ok(())
}

/// A tree digest: `blake3:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("blake3:") else {
        return Err(format!("digest `{digest}` must start with `blake3:`"));
    };
    if hex.len() != 64 {
        return Err(format!(
            "digest `{digest}` must have 64 hex digits after `blake3:`, it has {}",
            hex.len()
        ));
    }
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "digest `{digest}` contains `{bad}`; only lowercase hex digits are allowed"
        ));
    }
    Ok(())
}

/// An argon2id PHC string with version 19 and parameters `m`, `t` and `p`.
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash).map_err(|e| {
        format!("passwordHash is not a PHC string ({e}); make one with `mistpipe user add`")
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "passwordHash uses `{}`; Mist accepts only argon2id (make one with `mistpipe user add`)",
            parsed.algorithm
        ));
    }
    if parsed.version != Some(19) {
        return Err("passwordHash must be argon2id version 19 (`$v=19$`)".into());
    }
    argon2::Params::try_from(&parsed)
        .map_err(|e| format!("passwordHash has invalid argon2 parameters: {e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("passwordHash lacks a salt or a hash".into());
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
    fn digests() {
        let good = format!("blake3:{}", "ab".repeat(32));
        assert_eq!(check_digest(&good), Ok(()));
        assert!(check_digest(&good.to_uppercase()).is_err());
        assert!(check_digest("sha256:00").is_err());
        assert!(check_digest("blake3:00").is_err());
    }
}
