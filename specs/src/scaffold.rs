//! Writing spec files: the one way `mistpipe new`, `mistpipe user add` and `mistd demo` render
//! specs from the minijinja templates in `templates/specs/`, hash passwords, and point
//! editors at the schemas.

use crate::model::Kind;

/// Where the schemas live in a spec repository, for the `$schema` comment line.
pub const SCHEMA_DIR: &str = "schemas";

/// argon2id memory cost in KiB: OWASP's recommended configuration (19 MiB, 2 passes, 1 lane).
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// argon2id passes.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default syntax is valid"),
    );
    // Values are placed with `yaml_str`, never auto-escaped as HTML or JSON. The callback is
    // consulted when a template is added, so it must be set first.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // The templates are built into the binaries so that they work from any folder.
    for (name, source) in [
        (
            "game.yaml.j2",
            include_str!("../../templates/specs/game.yaml.j2"),
        ),
        (
            "version.yaml.j2",
            include_str!("../../templates/specs/version.yaml.j2"),
        ),
        (
            "user.yaml.j2",
            include_str!("../../templates/specs/user.yaml.j2"),
        ),
        (
            "pre-commit.sh.j2",
            include_str!("../../templates/specs/pre-commit.sh.j2"),
        ),
    ] {
        env.add_template(name, source)
            .expect("built-in templates parse");
    }
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // A JSON string literal is a valid YAML double-quoted scalar, so any text is safe, once
    // the control characters JSON leaves raw (DEL, C1) are escaped too: YAML forbids them.
    env.add_filter("yaml_str", |value: String| {
        let json = serde_json::to_string(&value).unwrap_or_default();
        json.chars()
            .map(|c| {
                if c.is_control() {
                    format!("\\u{:04X}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
    });
    env
}

/// Renders one of the built-in templates (`game.yaml.j2`, `version.yaml.j2`, `user.yaml.j2`,
/// `pre-commit.sh.j2`).
pub fn render(name: &str, context: minijinja::Value) -> Result<String, minijinja::Error> {
    templates().get_template(name)?.render(context)
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashPasswordError {
    /// argon2 refused the parameters above.
    #[error("argon2 parameters: {0}")]
    Params(argon2::Error),
    /// argon2 failed to hash.
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Hashes a password with argon2id at the parameters above and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, HashPasswordError> {
    use argon2::password_hash::PasswordHasher;
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .map_err(HashPasswordError::Params)?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = hasher
        .hash_password(password.as_bytes())
        .map_err(HashPasswordError::Hash)?;
    Ok(hash.to_string())
}

/// The `$schema` reference from a spec file at `rel` (relative to the repository) to the
/// repository's schema folder.
pub fn schema_ref(rel: &str, kind: Kind) -> String {
    let depth = rel.matches('/').count();
    format!(
        "{}{SCHEMA_DIR}/{}",
        "../".repeat(depth),
        kind.schema_file_name()
    )
}

/// The schema of a kind as the pretty JSON text written to files.
pub fn schema_text(kind: Kind) -> String {
    let mut text =
        serde_json::to_string_pretty(&kind.json_schema()).expect("a JSON value serializes");
    text.push('\n');
    text
}
