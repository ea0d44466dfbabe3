//! `mistpipe user passwd|disable|enable|remove`: changing an existing user spec.
//!
//! A user file is changed line by line, so an admin's comments and layout stay: the one
//! `passwordHash:` or `disabled:` line of the `spec:` block is replaced (or `disabled:`
//! added to the block). The result is checked with the same schema and model `validate`
//! uses before it replaces the file, whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::Context;
use mist_specs::load::{LoadOptions, load_dir};
use mist_specs::model::{Kind, User};
use mist_specs::scaffold::hash_password;

use crate::failure::Failure;
use crate::output::write_replacing;

/// What to change.
pub(crate) enum Change {
    /// A new password hash.
    Password(String),
    /// Disabled or enabled.
    Disabled(bool),
}

/// The file of user `name` in `repo`, which must exist.
fn user_file(repo: &Path, name: &str) -> anyhow::Result<PathBuf> {
    mist_specs::check::check_name(name).map_err(|error| Failure::invalid(error.to_string()))?;
    let path = repo.join("users").join(format!("{name}.yaml"));
    if !path.is_file() {
        return Err(Failure::invalid(format!(
            "there is no user `{name}` ({} does not exist); `mistpipe user add {name}` creates one",
            path.display()
        )));
    }
    Ok(path)
}

/// Applies `change` to user `name` in `repo`.
pub(crate) fn change(repo: &Path, name: &str, change: Change) -> anyhow::Result<()> {
    let path = user_file(repo, name)?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (field, value) = match &change {
        Change::Password(password) => (
            "passwordHash",
            format!(
                "\"{}\"",
                hash_password(password).map_err(anyhow::Error::msg)?
            ),
        ),
        Change::Disabled(disabled) => ("disabled", disabled.to_string()),
    };
    let edited = set_spec_field(&text, field, &value).ok_or_else(|| {
        Failure::invalid(format!(
            "{} has no `spec:` block to change; fix it by hand (`mistpipe validate` says what is wrong)",
            path.display()
        ))
    })?;
    check_user(&edited, name).map_err(|problem| {
        Failure::invalid(format!(
            "{} would not be a valid user spec after the change ({problem}); it was left as it is",
            path.display()
        ))
    })?;
    write_replacing(&path, |out| Ok(out.write_all(edited.as_bytes())?))
}

/// Removes user `name` from `repo`, unless a game grants them access: the grant would name
/// a user that does not exist, and `validate` would refuse the repository.
pub(crate) fn remove(repo: &Path, name: &str) -> anyhow::Result<()> {
    let path = user_file(repo, name)?;
    let loaded = load_dir(repo, &LoadOptions::default())
        .with_context(|| format!("cannot read the spec tree in {}", repo.display()))?;
    let granting: Vec<&str> = loaded
        .specs
        .games
        .iter()
        .filter(|(_, game)| game.game.spec.grants.iter().any(|grant| grant == name))
        .map(|(game, _)| game.as_str())
        .collect();
    if !granting.is_empty() {
        return Err(Failure::invalid(format!(
            "{name} is granted {}: remove {name} from their `grants` first, or keep the user \
             and `mistpipe user disable {name}`",
            granting.join(", ")
        )));
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
}

/// `text` with the `field:` line of its top-level `spec:` block set to `value`, or the line
/// added at the end of the block; `None` without a `spec:` block.
fn set_spec_field(text: &str, field: &str, value: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|line| line.trim_end() == "spec:")? + 1;
    let end = (start..lines.len())
        .find(|&idx| {
            let line = lines[idx];
            !line.trim().is_empty() && !line.starts_with([' ', '\t']) && !line.starts_with('#')
        })
        .unwrap_or(lines.len());
    let indent = lines[start..end]
        .iter()
        .find(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map_or("  ", |line| &line[..line.len() - line.trim_start().len()]);
    let wanted = format!("{indent}{field}: {value}");
    let mut edited: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    let key = format!("{indent}{field}:");
    match (start..end).find(|&idx| lines[idx].starts_with(&key)) {
        Some(idx) => edited[idx] = wanted,
        None => {
            // After the block's last indented line (a comment at column 0 after the block
            // belongs to what follows).
            let last = (start..end)
                .rev()
                .find(|&idx| lines[idx].starts_with([' ', '\t']) && !lines[idx].trim().is_empty())
                .map_or(start, |idx| idx + 1);
            edited.insert(last, wanted);
        }
    }
    let mut out = edited.join("\n");
    out.push('\n');
    Some(out)
}

/// Checks `text` as the spec of user `name`: the schema, then the model.
fn check_user(text: &str, name: &str) -> Result<(), String> {
    let root = crate::output::check_spec_text(text, Kind::User)?;
    let user: User = serde_json::from_value(root.to_json()).map_err(|error| error.to_string())?;
    if user.metadata.name != name {
        return Err(format!("its name is {}", user.metadata.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::set_spec_field;

    const USER: &str = "# Alice, since 2024.\napiVersion: mist/v1\nkind: User\nmetadata:\n  \
        name: alice\nspec:\n  role: user   # not an admin\n  passwordHash: \"old\"\n\n# end\n";

    #[test]
    fn a_field_is_replaced_in_place_and_comments_stay() {
        let edited = set_spec_field(USER, "passwordHash", "\"new\"").unwrap();
        assert_eq!(edited, USER.replace("\"old\"", "\"new\""));
    }

    #[test]
    fn a_missing_field_is_added_to_the_spec_block() {
        let edited = set_spec_field(USER, "disabled", "true").unwrap();
        assert!(
            edited.contains("  passwordHash: \"old\"\n  disabled: true\n\n# end\n"),
            "{edited}"
        );
        assert_eq!(set_spec_field("kind: User\n", "disabled", "true"), None);
    }
}
